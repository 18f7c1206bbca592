//! The `iig` target's harness: any text through the test-bed's `.iig` translator
//! (`tests/testbed/src/iig.rs`) — parse, `QUEUENAME` bindings, the generated header and glue.

use dkraid_testbed::iig;

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Line numbers count from 1; an error may point one past a last line without a newline.
    let lines = text.lines().count().max(1);
    match iig::parse(text) {
        Err(e) => {
            assert!(e.line >= 1 && e.line <= lines + 1, "line {} of {lines}", e.line);
            assert!(!e.message.is_empty());
            assert!(e.to_string().starts_with(&format!("line {}: ", e.line)));
        }
        Ok(file) => {
            assert!(!file.classes.is_empty(), "a file without a class parsed");
            let mut with_queue = 0;
            for c in &file.classes {
                assert!(!c.name.is_empty() && !c.superclass.is_empty());
                assert!(c.line >= 1 && c.line <= lines, "class line {} of {lines}", c.line);
                for m in &c.methods {
                    assert!(!m.name.is_empty() && !m.ret.is_empty(), "{m:?}");
                    assert!(
                        m.line >= c.line && m.line <= lines,
                        "method line {} of {lines}",
                        m.line
                    );
                    for p in &m.params {
                        assert!(is_identifier(&p.name), "parameter name {:?}", p.name);
                        assert!(p.decl.contains(&p.name), "{p:?}");
                    }
                    with_queue += usize::from(m.queue_name.is_some());
                }
            }
            let bindings = iig::queue_bindings(&file);
            assert_eq!(bindings.len(), with_queue);
            for b in &bindings {
                let class = file.classes.iter().find(|c| c.name == b.class).expect("class");
                assert!(class.methods.iter().any(|m| m.name == b.method && m.line == b.line));
            }
            let header = iig::generate_header(&file, "fuzz.iig");
            for c in &file.classes {
                assert!(header.contains(&c.name), "the header lacks class {}", c.name);
            }
            let _ = iig::generate_glue(&file, "fuzz.h", "fuzz_class_info");
        }
    }
}
