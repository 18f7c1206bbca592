//! A translator for the subset of Apple's `.iig` interface language a dext class uses: it turns
//! `iig/*.iig` into a host C++ header with the `IMPL`/`_Args` glue the DriverKit shim expects,
//! a small C++ file with the class's factory, `CreateAction…` methods and action trampolines,
//! and the table of `QUEUENAME` bindings the simulated kernel routes calls by.
//!
//! Used by the test-bed's build script (`#[path]`-included) and by `dkraid-sim lint`.
//! Only std; no panics on malformed input: every problem is an [`IigError`] with a line number.

use std::fmt;

/// A method declared in a class body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Method {
    pub name: String,
    pub ret: String,
    /// Parameters with `TARGET`/`TYPE(...)` annotations removed, as C++ text.
    pub params: Vec<Param>,
    pub is_override: bool,
    pub local_only: bool,
    /// `TYPE(Class::Method)`: an asynchronous action handler.
    pub action_type: Option<String>,
    pub queue_name: Option<String>,
    pub is_const: bool,
    pub line: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// The declaration text, e.g. `uint64_t * id`.
    pub decl: String,
    /// The parameter's name (last identifier), e.g. `id`.
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Class {
    pub name: String,
    pub superclass: String,
    pub methods: Vec<Method>,
    pub line: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IigFile {
    /// `#include` targets, as written between `<>` or `""`.
    pub includes: Vec<String>,
    pub classes: Vec<Class>,
}

/// A `QUEUENAME` binding: `method` runs on the queue registered as `queue`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueBinding {
    pub class: String,
    pub method: String,
    pub queue: String,
    pub line: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IigError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for IigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, IigError> {
    Err(IigError { line, message: message.into() })
}

/// Remove comments, keeping newlines so line numbers stay right.
fn strip_comments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if bytes[i..].starts_with(b"/*") {
            i += 2;
            while i < bytes.len() && !bytes[i..].starts_with(b"*/") {
                if bytes[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i = (i + 2).min(bytes.len());
        } else {
            let ch = text[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Take `NAME(` ... `)` (balanced) out of `text`, returning the inner text and the rest.
fn take_annotation(text: &str, name: &str) -> (Option<String>, String) {
    let Some(start) = find_word(text, name) else {
        return (None, text.to_string());
    };
    let after = &text[start + name.len()..];
    let trimmed = after.trim_start();
    if !trimmed.starts_with('(') {
        return (None, text.to_string());
    }
    let open = start + name.len() + (after.len() - trimmed.len());
    match matching_paren(text, open) {
        Some(close) => {
            let inner = text[open + 1..close].trim().to_string();
            let rest = format!("{}{}", &text[..start], &text[close + 1..]);
            (Some(inner), rest)
        }
        None => (None, text.to_string()),
    }
}

/// The byte offset of the `)` matching the `(` at `open`.
fn matching_paren(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, ch) in text[open..].char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(open + k);
                }
            }
            _ => {}
        }
    }
    None
}

/// The byte offset of `word` as a whole identifier.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(pos) = text[from..].find(word) {
        let at = from + pos;
        let before_ok = text[..at].chars().next_back().is_none_or(|c| !is_ident(c));
        let after_ok = text[at + word.len()..].chars().next().is_none_or(|c| !is_ident(c));
        if before_ok && after_ok {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

fn remove_word(text: &str, word: &str) -> (bool, String) {
    match find_word(text, word) {
        Some(at) => (true, format!("{}{}", &text[..at], &text[at + word.len()..])),
        None => (false, text.to_string()),
    }
}

fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Split at top-level commas (not inside (), [], <>).
fn split_params(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for ch in text.chars() {
        match ch {
            '(' | '[' | '<' => depth += 1,
            ')' | ']' | '>' => depth -= 1,
            ',' if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

fn parse_param(text: &str, line: usize) -> Result<Param, IigError> {
    let (_, text) = take_annotation(text, "TYPE");
    let (_, text) = remove_word(&text, "TARGET");
    let decl = squeeze(&text);
    // The name is the last identifier before any array brackets.
    let head = decl.split('[').next().unwrap_or("");
    let name: String = head
        .chars()
        .rev()
        .skip_while(|c| c.is_whitespace())
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let ty = head.trim_end()[..head.trim_end().len() - name.len()].trim();
    if name.is_empty() || ty.is_empty() || name.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return err(line, format!("parameter `{decl}` has no name"));
    }
    Ok(Param { decl, name })
}

fn parse_method(text: &str, line: usize) -> Result<Method, IigError> {
    let (queue_name, text) = take_annotation(text, "QUEUENAME");
    let open =
        text.find('(').ok_or(IigError { line, message: "no `(` in a declaration".into() })?;
    // The matching `)` of the parameter list.
    let close = matching_paren(&text, open);
    let close = close.ok_or(IigError { line, message: "unbalanced parentheses".into() })?;
    let head = squeeze(&text[..open]);
    let params_text = &text[open + 1..close];
    let tail = text[close + 1..].to_string();

    let (action_type, tail) = take_annotation(&tail, "TYPE");
    let (is_override, tail) = remove_word(&tail, "override");
    let (local_only, tail) = remove_word(&tail, "LOCALONLY");
    let (is_const, tail) = remove_word(&tail, "const");
    let (_, tail) = remove_word(&tail, "KERNEL");
    let tail = squeeze(&tail);
    if !(tail.is_empty() || tail == "= 0" || tail == "=0") {
        return err(line, format!("unexpected `{tail}` after the parameter list"));
    }

    let mut words: Vec<&str> = head.split(' ').filter(|w| !w.is_empty()).collect();
    if words.first() == Some(&"virtual") {
        words.remove(0);
    }
    let Some(name) = words.pop() else {
        return err(line, "a declaration without a name");
    };
    if words.is_empty() {
        return err(line, format!("`{name}` has no return type"));
    }
    let ret = words.join(" ");
    let params = if squeeze(params_text).is_empty() || squeeze(params_text) == "void" {
        Vec::new()
    } else {
        split_params(params_text)
            .iter()
            .map(|p| parse_param(p, line))
            .collect::<Result<Vec<_>, _>>()?
    };
    Ok(Method {
        name: name.to_string(),
        ret,
        params,
        is_override,
        local_only,
        action_type,
        queue_name,
        is_const,
        line,
    })
}

/// Parse an `.iig` file.
pub fn parse(text: &str) -> Result<IigFile, IigError> {
    let text = strip_comments(text);
    let mut includes = Vec::new();
    let mut classes = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if let Some(rest) = line.strip_prefix("#include") {
            let rest = rest.trim();
            let target = rest.trim_matches(|c| c == '<' || c == '>' || c == '"');
            includes.push(target.to_string());
            i += 1;
            continue;
        }
        if line.starts_with("class ") {
            let class_line = i + 1;
            // Header: up to the `{`.
            let mut header = String::new();
            while i < lines.len() && !lines[i].contains('{') {
                header.push_str(lines[i]);
                header.push(' ');
                i += 1;
            }
            if i == lines.len() {
                return err(class_line, "a class without a body");
            }
            header.push_str(lines[i].split('{').next().unwrap_or(""));
            let header = squeeze(&header.replace("KERNEL", " "));
            let rest = header.strip_prefix("class ").unwrap_or(&header);
            let (name, superclass) = match rest.split_once(':') {
                Some((n, s)) => (n.trim(), s.trim().trim_start_matches("public").trim()),
                None => return err(class_line, "a class without a superclass"),
            };
            if name.is_empty() || superclass.is_empty() {
                return err(class_line, "cannot read the class name and superclass");
            }
            // Body: statements up to the matching `};`.
            let mut methods = Vec::new();
            let mut stmt = String::new();
            let mut stmt_line = i + 1;
            let mut after_brace = lines[i].split_once('{').map(|x| x.1).unwrap_or("").to_string();
            let mut closed = false;
            loop {
                let current = std::mem::take(&mut after_brace);
                for ch in current.chars() {
                    if ch == '}' && stmt.trim().is_empty() {
                        closed = true;
                        break;
                    }
                    if ch == ';' {
                        let s = squeeze(&stmt);
                        if !s.is_empty() {
                            methods.push(parse_method(&s, stmt_line)?);
                        }
                        stmt.clear();
                        continue;
                    }
                    if stmt.trim().is_empty() && !ch.is_whitespace() {
                        stmt_line = i + 1;
                    }
                    stmt.push(ch);
                    // Access specifiers end with ':' and are not statements.
                    let t = stmt.trim();
                    if t == "public:" || t == "protected:" || t == "private:" {
                        stmt.clear();
                    }
                }
                if closed {
                    break;
                }
                stmt.push(' ');
                i += 1;
                if i >= lines.len() {
                    return err(class_line, format!("class {name} is not closed"));
                }
                after_brace = lines[i].to_string();
            }
            if let Some(first) = classes.iter().find(|c: &&Class| c.name == name) {
                return err(
                    class_line,
                    format!("class {name} is declared twice (first at line {})", first.line),
                );
            }
            classes.push(Class {
                name: name.to_string(),
                superclass: superclass.to_string(),
                methods,
                line: class_line,
            });
        }
        i += 1;
    }
    if classes.is_empty() {
        return err(1, "no class declared");
    }
    Ok(IigFile { includes, classes })
}

/// Every `QUEUENAME` in the file.
pub fn queue_bindings(file: &IigFile) -> Vec<QueueBinding> {
    file.classes
        .iter()
        .flat_map(|c| {
            c.methods.iter().filter_map(move |m| {
                m.queue_name.as_ref().map(|q| QueueBinding {
                    class: c.name.clone(),
                    method: m.name.clone(),
                    queue: q.clone(),
                    line: m.line,
                })
            })
        })
        .collect()
}

/// OSObject's own virtuals: implemented as plain C++ methods, not through `IMPL`.
/// Methods a dext overrides as plain C++ virtuals: `init`/`free`, and the SDK's LOCALONLY
/// `IOUserClient::ExternalMethod` (iig generates no `_Impl` for a method that never crosses a
/// process boundary).
fn is_plain_virtual(m: &Method) -> bool {
    matches!(m.name.as_str(), "init" | "free" | "ExternalMethod")
}

fn param_list(m: &Method) -> String {
    m.params.iter().map(|p| p.decl.clone()).collect::<Vec<_>>().join(", ")
}

/// The host header for one class (`DkRaidController.h`).
pub fn generate_header(file: &IigFile, source_name: &str) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "/* Generated by dkraid-testbed's iig translator from {source_name}. Do not edit. */\n"
    ));
    let guard = file.classes.first().map(|c| c.name.as_str()).unwrap_or("iig");
    out.push_str(&format!("#ifndef {guard}_h\n#define {guard}_h\n\n"));
    for inc in &file.includes {
        let translated = inc.strip_suffix(".iig").map(|s| format!("{s}.h")).unwrap_or(inc.clone());
        out.push_str(&format!("#include <{translated}>\n"));
    }
    out.push('\n');
    for class in &file.classes {
        let c = &class.name;
        for m in class.methods.iter().filter(|m| !m.local_only && !is_plain_virtual(m)) {
            out.push_str(&format!("#define {c}_{}_Args {}\n", m.name, param_list(m)));
        }
        out.push_str(&format!("\nstruct {c}_IVars;\n\n"));
        out.push_str(&format!("class {c} : public {} {{\n", class.superclass));
        out.push_str(&format!("    typedef {} super;\n\npublic:\n", class.superclass));
        out.push_str(&format!("    {c}_IVars *ivars = nullptr;\n"));
        out.push_str(&format!("    static const char *DkSimClassName() {{ return \"{c}\"; }}\n\n"));
        for m in &class.methods {
            let konst = if m.is_const { " const" } else { "" };
            if m.local_only || is_plain_virtual(m) {
                let ov = if m.is_override { " override" } else { "" };
                let virt = if is_plain_virtual(m) { "virtual " } else { "" };
                out.push_str(&format!(
                    "    {virt}{} {}({}){konst}{ov};\n",
                    m.ret,
                    m.name,
                    param_list(m)
                ));
                continue;
            }
            let ov = if m.is_override { " override" } else { "" };
            let virt = if m.is_override { "" } else { "virtual " };
            out.push_str(&format!(
                "    {virt}{} {}_Impl({c}_{}_Args){konst}{ov};\n",
                m.ret, m.name, m.name
            ));
            if m.action_type.is_some() {
                out.push_str(&format!(
                    "    kern_return_t CreateAction{}(size_t referenceSize, OSAction **action);\n",
                    m.name
                ));
                out.push_str(&format!(
                    "    static void {}_DkSimInvoke(OSObject *target, OSAction *action, const uint64_t *args);\n",
                    m.name
                ));
            }
        }
        out.push_str("};\n\n");
    }
    out.push_str(&format!("#endif /* {guard}_h */\n"));
    out
}

/// The C++ glue for one class: action creation and trampolines, the class's QUEUENAME table and
/// its registration. `info_symbol` names the extern "C" function returning the class info (one
/// per variant build).
pub fn generate_glue(file: &IigFile, header_name: &str, info_symbol: &str) -> String {
    let mut out = String::new();
    out.push_str("/* Generated by dkraid-testbed's iig translator. Do not edit. */\n");
    out.push_str("#include <DriverKit/DriverKit.h>\n#include <dksim/runtime.h>\n");
    out.push_str(&format!("#include \"{header_name}\"\n\n"));
    for class in &file.classes {
        let c = &class.name;
        for m in class.methods.iter().filter(|m| m.action_type.is_some()) {
            let queue =
                m.queue_name.as_deref().map(|q| format!("\"{q}\"")).unwrap_or("nullptr".into());
            out.push_str(&format!(
                "kern_return_t {c}::CreateAction{n}(size_t referenceSize, OSAction **action)\n{{\n    \
                 return OSAction::DkSimCreate(this, {c}::{n}_DkSimInvoke, \"{n}\", {queue}, referenceSize, action);\n}}\n\n",
                n = m.name
            ));
            // Trampoline: the action, then every further parameter from the argument words.
            let mut args = vec!["action".to_string()];
            for (k, p) in m.params.iter().enumerate().skip(1) {
                args.push(format!("({})args[{}]", p.decl.trim_end_matches(&p.name).trim(), k - 1));
            }
            out.push_str(&format!(
                "void {c}::{n}_DkSimInvoke(OSObject *target, OSAction *action, const uint64_t *args)\n{{\n    \
                 (void)args;\n    static_cast<{c} *>(target)->{n}_Impl({});\n}}\n\n",
                args.join(", "),
                n = m.name
            ));
        }
        out.push_str(&format!("static const DkSimQueueBinding {c}_queue_bindings[] = {{\n"));
        for m in class.methods.iter().filter(|m| m.queue_name.is_some()) {
            out.push_str(&format!(
                "    {{\"{}\", \"{}\"}},\n",
                m.name,
                m.queue_name.as_deref().unwrap_or_default()
            ));
        }
        out.push_str("    {nullptr, nullptr},\n};\n\n");
        out.push_str(&format!(
            "static OSObject *{c}_new(void)\n{{\n    {c} *object = new {c}();\n    \
             if (!object->init()) {{\n        object->release();\n        return nullptr;\n    }}\n    \
             return object;\n}}\n\n"
        ));
        out.push_str(&format!(
            "extern \"C\" const DkSimClassInfo *{info_symbol}(void)\n{{\n    \
             static const DkSimClassInfo info = {{\"{c}\", \"{}\", {c}_new, {c}_queue_bindings}};\n    \
             return &info;\n}}\n",
            class.superclass
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
#include <DriverKit/IOService.iig>
/* a comment ( with parens */
class Foo : public IOService
{
public:
    virtual bool init() override;
    virtual kern_return_t Start(IOService * provider) override;
    virtual kern_return_t UserMapHBAData(uint32_t * uniqueTaskID) override;
    virtual void Work(OSAction * action TARGET, uint64_t time)
        TYPE(IOTimerDispatchSource::TimerOccurred) QUEUENAME(WorkQueue);
    kern_return_t Helper(int a, const char * b) LOCALONLY;
    virtual kern_return_t Process(SCSIUserParallelTask request, OSAction * c TYPE(X::Y)) = 0;
};
"#;

    #[test]
    fn parses_methods_and_annotations() {
        let f = parse(SAMPLE).unwrap();
        assert_eq!(f.includes, ["DriverKit/IOService.iig"]);
        let c = &f.classes[0];
        assert_eq!((c.name.as_str(), c.superclass.as_str()), ("Foo", "IOService"));
        let names: Vec<_> = c.methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["init", "Start", "UserMapHBAData", "Work", "Helper", "Process"]);
        let work = &c.methods[3];
        assert_eq!(work.action_type.as_deref(), Some("IOTimerDispatchSource::TimerOccurred"));
        assert_eq!(work.queue_name.as_deref(), Some("WorkQueue"));
        assert_eq!(work.params[0].decl, "OSAction * action");
        assert_eq!(work.params[1].name, "time");
        assert!(c.methods[4].local_only);
        assert_eq!(c.methods[5].params[1].decl, "OSAction * c");
        assert_eq!(queue_bindings(&f)[0].queue, "WorkQueue");
        assert_eq!(queue_bindings(&f)[0].line, 10);
    }

    #[test]
    fn generates_impl_glue() {
        let f = parse(SAMPLE).unwrap();
        let h = generate_header(&f, "Foo.iig");
        assert!(h.contains("#include <DriverKit/IOService.h>"));
        assert!(h.contains("#define Foo_Start_Args IOService * provider"));
        assert!(h.contains("kern_return_t Start_Impl(Foo_Start_Args) override;"));
        assert!(
            h.contains("kern_return_t CreateActionWork(size_t referenceSize, OSAction **action);")
        );
        assert!(h.contains("kern_return_t Helper(int a, const char * b);"));
        assert!(h.contains("virtual bool init() override;"));
        let g = generate_glue(&f, "Foo.h", "dksim_class_Foo");
        assert!(g.contains("{\"Work\", \"WorkQueue\"}"));
        assert!(g.contains("->Work_Impl(action, (uint64_t)args[0])"));
    }

    /// Found by the `iig` fuzz target (docs/FUZZING.md): a second `class X` was accepted, and
    /// its methods and `QUEUENAME`s were attributed to the first.
    #[test]
    fn a_class_declared_twice_is_an_error() {
        let text = "class A : public IOService {\n kern_return_t Start() override;\n};\n\
                    class A : public IOService {\n void Stop() QUEUENAME(Q);\n};\n";
        let e = parse(text).unwrap_err();
        assert_eq!(e.line, 4);
        assert_eq!(e.message, "class A is declared twice (first at line 1)");
    }

    #[test]
    fn malformed_input_is_an_error_with_a_line() {
        assert_eq!(parse("nothing here").unwrap_err().message, "no class declared");
        let e = parse("class A : public B {\n  virtual void x(int) ;\n};").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("has no name"), "{e}");
        let e = parse("class A : public B {\n void f() banana;\n};").unwrap_err();
        assert!(e.message.contains("banana"), "{e}");
        assert!(parse("class A : public B {\n void f();\n").is_err());
        assert!(parse("class A {\n};").is_err());
    }
}
