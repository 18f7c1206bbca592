//! `QUEUENAME` consistency (DRIVERKIT.md §3), checked from the sources without building them:
//! every name the dext passes to `SetDispatchQueue` must be `"Default"` or appear in a
//! `QUEUENAME` of its class hierarchy (its `.iig` files, and the SDK's
//! `UserCreateTargetForID QUEUENAME(AuxiliaryQueue)` for a SCSI controller), and every such
//! `QUEUENAME` must be registered.
//!
//! The dext's sources are read with a small preprocessor: comments and string literals are
//! respected, `#if`/`#ifdef`/`#ifndef`/`#elif`/`#else`/`#endif` are evaluated (`defined(X)`,
//! `!`, `&&`, `||`, parentheses, integers; an unknown identifier is 0) against the macros the
//! files `#define` plus `--define NAME[=VALUE]`, and a `SetDispatchQueue` whose first argument
//! is a string literal or a macro defined as one is resolved.

use std::collections::BTreeMap;
use std::path::Path;

use super::personality::{ClassCatalog, ClassDecl, FAMILY_CLASS};
use super::{Finding, Source};
use crate::iig;
use crate::world::{SDK_QUEUE_BINDINGS, SDK_QUEUE_NAME_MACROS, USER_CLIENT_SDK_QUEUE_BINDINGS};

/// A `QUEUENAME` a method is declared with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declared {
    pub class: String,
    pub method: String,
    pub queue: String,
    /// The `.iig` file and line (for the SDK's, the line of the class deriving from it).
    pub file: String,
    pub line: usize,
    pub from_sdk: bool,
}

/// A `SetDispatchQueue(name, …)` call in the dext's sources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The resolved name, or None when the argument is neither a literal nor a macro of one.
    pub name: Option<String>,
    /// The argument as written.
    pub argument: String,
    pub file: String,
    pub line: usize,
}

/// The `.iig` files of a directory: their classes and `QUEUENAME`s.
#[derive(Clone, Debug, Default)]
pub struct IigScan {
    pub classes: Vec<ClassDecl>,
    pub declared: Vec<Declared>,
    pub findings: Vec<Finding>,
}

impl IigScan {
    pub fn catalog(&self, origin: &str) -> ClassCatalog {
        ClassCatalog { origin: origin.to_string(), classes: self.classes.clone() }
    }
}

fn sorted_files(dir: &Path, extensions: &[&str]) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| extensions.iter().any(|x| n.ends_with(&format!(".{x}"))))
        .collect();
    names.sort();
    Ok(names)
}

/// Parse every `*.iig` in `dir`.
pub fn scan_iig(dir: &Source) -> IigScan {
    let mut scan = IigScan::default();
    let names = match sorted_files(&dir.path, &["iig"]) {
        Ok(n) => n,
        Err(e) => {
            scan.findings.push(Finding::error(
                "IigUnreadable",
                &dir.display,
                format!("cannot read the .iig directory {}: {e}", dir.display),
            ));
            return scan;
        }
    };
    if names.is_empty() {
        scan.findings.push(Finding::error(
            "IigUnreadable",
            &dir.display,
            format!("{} has no .iig file: no class or QUEUENAME to check against", dir.display),
        ));
    }
    for name in names {
        let src = dir.child(&name);
        let text = match std::fs::read_to_string(&src.path) {
            Ok(t) => t,
            Err(e) => {
                scan.findings.push(Finding::error(
                    "IigUnreadable",
                    &src.display,
                    format!("cannot read {}: {e}", src.display),
                ));
                continue;
            }
        };
        let file = match iig::parse(&text) {
            Ok(f) => f,
            Err(e) => {
                scan.findings.push(
                    Finding::error(
                        "IigUnreadable",
                        &src.display,
                        format!("{} does not parse: {}", src.display, e.message),
                    )
                    .at_line(Some(e.line)),
                );
                continue;
            }
        };
        for class in &file.classes {
            scan.classes
                .push(ClassDecl { name: class.name.clone(), superclass: class.superclass.clone() });
        }
        for b in iig::queue_bindings(&file) {
            scan.declared.push(Declared {
                class: b.class,
                method: b.method,
                queue: b.queue,
                file: src.display.clone(),
                line: b.line,
                from_sdk: false,
            });
        }
        for class in &file.classes {
            let (sdk_class, bindings) = match class.superclass.as_str() {
                FAMILY_CLASS => (FAMILY_CLASS, SDK_QUEUE_BINDINGS),
                "IOUserClient" => ("IOUserClient", USER_CLIENT_SDK_QUEUE_BINDINGS),
                _ => continue,
            };
            {
                for (method, queue) in bindings {
                    scan.declared.push(Declared {
                        class: sdk_class.into(),
                        method: method.to_string(),
                        queue: queue.to_string(),
                        file: src.display.clone(),
                        line: class.line,
                        from_sdk: true,
                    });
                }
            }
        }
    }
    scan
}

/// Every `SetDispatchQueue` call in the sources of `dir` (`.cpp .cc .c .mm .h .hpp`).
pub fn scan_sources(
    dir: &Source,
    defines: &[(String, String)],
) -> (Vec<Registration>, Vec<Finding>) {
    let names = match sorted_files(&dir.path, &["cpp", "cc", "cxx", "c", "mm", "h", "hpp"]) {
        Ok(n) => n,
        Err(e) => {
            return (
                Vec::new(),
                vec![Finding::error(
                    "IigUnreadable",
                    &dir.display,
                    format!("cannot read the dext source directory {}: {e}", dir.display),
                )],
            )
        }
    };
    let mut files = Vec::new();
    for name in names {
        let src = dir.child(&name);
        if let Ok(text) = std::fs::read_to_string(&src.path) {
            files.push((src.display, text));
        }
    }
    // Pass 1: macros defined in active code, headers first (they are included before use).
    let mut macros: BTreeMap<String, String> = SDK_QUEUE_NAME_MACROS
        .iter()
        .map(|(name, value)| (name.to_string(), format!("\"{value}\"")))
        .chain(defines.iter().cloned())
        .collect();
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|&i| !is_header(&files[i].0));
    for &i in &order {
        active_lines(&strip_comments(&files[i].1), &mut macros);
    }
    // Pass 2: the calls, with every macro known.
    let mut out = Vec::new();
    for (display, text) in &files {
        let mut local = macros.clone();
        let code = strip_comments(text);
        let active = active_lines(&code, &mut local);
        for call in find_calls(&code, "SetDispatchQueue") {
            if !active.get(call.line - 1).copied().unwrap_or(false) {
                continue;
            }
            let name = resolve(&call.first_argument, &local);
            out.push(Registration {
                name,
                argument: call.first_argument,
                file: display.clone(),
                line: call.line,
            });
        }
    }
    (out, Vec::new())
}

fn is_header(name: &str) -> bool {
    name.ends_with(".h") || name.ends_with(".hpp")
}

/// Compare declarations and registrations.
pub fn check(declared: &[Declared], registered: &[Registration]) -> Vec<Finding> {
    let mut out = Vec::new();
    for r in registered {
        match &r.name {
            None => out.push(
                Finding::warning(
                    "QueueNameUnresolved",
                    &r.file,
                    format!(
                        "SetDispatchQueue({}, …): the name is neither a string literal nor a \
                         #define of one, so it cannot be checked against the QUEUENAMEs",
                        r.argument
                    ),
                )
                .at_line(Some(r.line)),
            ),
            Some(name) if name == "Default" => {}
            Some(name) => {
                if !declared.iter().any(|d| &d.queue == name) {
                    let known: Vec<&str> = {
                        let mut v: Vec<&str> = declared.iter().map(|d| d.queue.as_str()).collect();
                        v.sort_unstable();
                        v.dedup();
                        v
                    };
                    out.push(
                        Finding::error(
                            "UndeclaredQueueName",
                            &r.file,
                            format!(
                                "SetDispatchQueue(\"{name}\", …): no method of the class \
                                 hierarchy is declared QUEUENAME({name}), so DriverKit returns \
                                 kIOReturnBadArgument (0xe00002c2); declared: {}",
                                if known.is_empty() { "none".into() } else { known.join(", ") }
                            ),
                        )
                        .at_line(Some(r.line)),
                    );
                }
            }
        }
    }
    for d in declared {
        if registered.iter().any(|r| r.name.as_deref() == Some(d.queue.as_str())) {
            continue;
        }
        let whose = if d.from_sdk {
            format!("the SDK declares {}::{} QUEUENAME({})", d.class, d.method, d.queue)
        } else {
            format!("{}::{} is declared QUEUENAME({})", d.class, d.method, d.queue)
        };
        let consequence = if d.from_sdk {
            " but DriverKit does not create that queue: without it a target create never \
             dispatches and start wedges"
        } else {
            ": until a queue is registered under that name the method runs on Default"
        };
        out.push(
            Finding::error(
                "QueueNotRegistered",
                &d.file,
                format!(
                    "{whose}{consequence}; no SetDispatchQueue(\"{}\", …) in the dext's sources",
                    d.queue
                ),
            )
            .at_line(Some(d.line)),
        );
    }
    out
}

/// Remove `//` and `/* */` comments outside string and character literals, keeping newlines.
pub fn strip_comments(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' => {
                let q = b[i];
                out.push(q);
                i += 1;
                while i < b.len() && b[i] != q && b[i] != b'\n' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        out.push(b[i]);
                        i += 1;
                    }
                    out.push(b[i]);
                    i += 1;
                }
                if i < b.len() && b[i] == q {
                    out.push(q);
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    if b[i] == b'\n' {
                        out.push(b'\n');
                    }
                    i += 1;
                }
                i = (i + 2).min(b.len());
                out.push(b' ');
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Which lines (0-based) are active, evaluating conditionals; `#define`/`#undef` in active
/// lines update `macros`. Continuation lines (`\` at the end) belong to their directive.
pub fn active_lines(code: &str, macros: &mut BTreeMap<String, String>) -> Vec<bool> {
    // Each frame: (parent active, this branch active, some branch taken).
    let mut stack: Vec<(bool, bool, bool)> = Vec::new();
    let mut active = Vec::new();
    let lines: Vec<&str> = code.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let mut line = lines[i].to_string();
        let first = i;
        while line.ends_with('\\') && i + 1 < lines.len() {
            line.pop();
            i += 1;
            line.push(' ');
            line.push_str(lines[i]);
        }
        let on = stack.last().is_none_or(|f| f.0 && f.1);
        let trimmed = line.trim_start();
        if let Some(directive) = trimmed.strip_prefix('#') {
            let directive = directive.trim_start();
            let (word, rest) = split_word(directive);
            match word {
                "if" => {
                    let v = on && eval(rest, macros) != 0;
                    stack.push((on, v, v));
                }
                "ifdef" | "ifndef" => {
                    let name = split_word(rest).0;
                    let d = macros.contains_key(name);
                    let v = on && (d == (word == "ifdef"));
                    stack.push((on, v, v));
                }
                "elif" => {
                    if let Some(f) = stack.last_mut() {
                        let v = f.0 && !f.2 && eval(rest, macros) != 0;
                        f.1 = v;
                        f.2 |= v;
                    }
                }
                "else" => {
                    if let Some(f) = stack.last_mut() {
                        f.1 = f.0 && !f.2;
                        f.2 = true;
                    }
                }
                "endif" => {
                    stack.pop();
                }
                "define" if on => {
                    let (name, value) = split_word(rest);
                    if !name.is_empty() && !name.contains('(') {
                        macros.insert(name.to_string(), value.trim().to_string());
                    }
                }
                "undef" if on => {
                    macros.remove(split_word(rest).0);
                }
                _ => {}
            }
            // The directive line itself is never code.
            active.extend(std::iter::repeat_n(false, i - first + 1));
        } else {
            active.extend(std::iter::repeat_n(on, i - first + 1));
        }
        i += 1;
    }
    active
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    (&s[..end], &s[end..])
}

/// Evaluate a preprocessor condition: `defined(X)`, `defined X`, `!`, `&&`, `||`, `==`, `!=`,
/// parentheses, integers, macros (their value, evaluated; unknown identifiers are 0).
pub fn eval(expr: &str, macros: &BTreeMap<String, String>) -> i64 {
    let tokens = tokenize(expr);
    let mut p = Parser { tokens: &tokens, at: 0, macros, depth: 0 };
    p.or()
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Num(i64),
    Op(&'static str),
}

fn tokenize(s: &str) -> Vec<Tok> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && ((b[i] as char).is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(s[start..i].to_string()));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i] as char).is_ascii_alphanumeric() {
                i += 1;
            }
            let t = s[start..i].trim_end_matches(['u', 'U', 'l', 'L']);
            let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                i64::from_str_radix(h, 16).unwrap_or(0)
            } else {
                t.parse().unwrap_or(0)
            };
            out.push(Tok::Num(v));
        } else {
            let two = s.get(i..i + 2).unwrap_or("");
            let op = ["&&", "||", "==", "!=", ">=", "<="].into_iter().find(|o| *o == two);
            match op {
                Some(o) => {
                    out.push(Tok::Op(o));
                    i += 2;
                }
                None => {
                    let one = match c {
                        '!' => "!",
                        '(' => "(",
                        ')' => ")",
                        '<' => "<",
                        '>' => ">",
                        _ => "?",
                    };
                    out.push(Tok::Op(one));
                    i += 1;
                }
            }
        }
    }
    out
}

struct Parser<'a> {
    tokens: &'a [Tok],
    at: usize,
    macros: &'a BTreeMap<String, String>,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at)
    }

    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> i64 {
        let mut v = self.and();
        while self.eat("||") {
            let r = self.and();
            v = i64::from(v != 0 || r != 0);
        }
        v
    }

    fn and(&mut self) -> i64 {
        let mut v = self.cmp();
        while self.eat("&&") {
            let r = self.cmp();
            v = i64::from(v != 0 && r != 0);
        }
        v
    }

    fn cmp(&mut self) -> i64 {
        let v = self.unary();
        for op in ["==", "!=", ">=", "<=", ">", "<"] {
            if self.eat(op) {
                let r = self.unary();
                return i64::from(match op {
                    "==" => v == r,
                    "!=" => v != r,
                    ">=" => v >= r,
                    "<=" => v <= r,
                    ">" => v > r,
                    _ => v < r,
                });
            }
        }
        v
    }

    fn unary(&mut self) -> i64 {
        if self.eat("!") {
            return i64::from(self.unary() == 0);
        }
        if self.eat("(") {
            let v = self.or();
            self.eat(")");
            return v;
        }
        match self.peek().cloned() {
            Some(Tok::Num(n)) => {
                self.at += 1;
                n
            }
            Some(Tok::Ident(id)) if id == "defined" => {
                self.at += 1;
                let paren = self.eat("(");
                let name = match self.peek().cloned() {
                    Some(Tok::Ident(n)) => {
                        self.at += 1;
                        n
                    }
                    _ => String::new(),
                };
                if paren {
                    self.eat(")");
                }
                i64::from(self.macros.contains_key(&name))
            }
            Some(Tok::Ident(id)) => {
                self.at += 1;
                match self.macros.get(&id) {
                    Some(value) if self.depth < 16 => {
                        let tokens = tokenize(value);
                        let mut inner = Parser {
                            tokens: &tokens,
                            at: 0,
                            macros: self.macros,
                            depth: self.depth + 1,
                        };
                        if tokens.is_empty() {
                            0
                        } else {
                            inner.or()
                        }
                    }
                    _ => 0,
                }
            }
            _ => {
                self.at += 1;
                0
            }
        }
    }
}

/// A call `name(first, …)` outside string literals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub first_argument: String,
    /// 1-based line of the name.
    pub line: usize,
}

/// Calls of the identifier `name` in comment-free `code`: the identifier, not inside a string
/// or character literal, not preceded by an identifier character, followed by `(`.
pub fn find_calls(code: &str, name: &str) -> Vec<Call> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        match b[i] {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b'"' | b'\'' => i = skip_literal(b, i),
            _ if b[i..].starts_with(name.as_bytes())
                && (i == 0 || !ident(b[i - 1]))
                && b.get(i + name.len()).is_none_or(|&c| !ident(c)) =>
            {
                let call_line = line;
                let mut j = i + name.len();
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                if b.get(j) == Some(&b'(') {
                    if let Some(arg) = first_argument(code, j + 1) {
                        out.push(Call { first_argument: arg, line: call_line });
                    }
                }
                i += name.len();
            }
            _ => i += 1,
        }
    }
    out
}

fn skip_literal(b: &[u8], start: usize) -> usize {
    let q = b[start];
    let mut i = start + 1;
    while i < b.len() && b[i] != q && b[i] != b'\n' {
        if b[i] == b'\\' {
            i += 1;
        }
        i += 1;
    }
    (i + 1).min(b.len())
}

/// The text of the first argument starting at `from` (just after `(`), up to the top-level `,`
/// or `)`.
fn first_argument(code: &str, from: usize) -> Option<String> {
    let b = code.as_bytes();
    let mut depth = 0i32;
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' => {
                i = skip_literal(b, i);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' if depth == 0 => break,
            b')' | b']' | b'}' => depth -= 1,
            b',' if depth == 0 => break,
            _ => {}
        }
        i += 1;
    }
    (i < b.len()).then(|| code[from..i].split_whitespace().collect::<Vec<_>>().join(" "))
}

/// A string literal, or a macro (transitively) defined as one.
fn resolve(argument: &str, macros: &BTreeMap<String, String>) -> Option<String> {
    let mut text = argument.trim().to_string();
    for _ in 0..16 {
        if let Some(s) = string_literal(&text) {
            return Some(s);
        }
        let (word, rest) = split_word(&text);
        if word.is_empty() || !rest.trim().is_empty() {
            return None;
        }
        text = macros.get(word)?.trim().to_string();
    }
    None
}

/// `"abc"` (one literal, simple escapes) → `abc`.
fn string_literal(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('"') && !inner.contains("\\\"") {
        return None;
    }
    Some(inner.replace("\\\"", "\"").replace("\\\\", "\\"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn conditions() {
        let macros = m(&[("A", "1"), ("B", ""), ("ZERO", "0"), ("ALIAS", "A")]);
        for (e, v) in [
            ("defined(A)", 1),
            ("defined B", 1),
            ("!defined(C)", 1),
            ("defined(A) && !defined(B)", 0),
            ("defined(C) || (A && !ZERO)", 1),
            ("ZERO", 0),
            ("ALIAS", 1),
            ("UNKNOWN", 0),
            ("0x10 == 16", 1),
            ("A != 1", 0),
            ("2 > 1 && 1 >= 1 && 0 < 1 && 1 <= 1", 1),
            ("1UL", 1),
        ] {
            assert_eq!(eval(e, &macros), v, "{e}");
        }
    }

    #[test]
    fn active_lines_follow_conditionals_and_defines() {
        let code = "\
a
#if defined(X)
b
#elif defined(Y)
c
#else
d
#endif
#ifndef GUARD
#define GUARD
e
#endif
#define LONG \\
  \"v\"
#undef Y
#ifdef Y
f
#endif
";
        let mut macros = m(&[("Y", "")]);
        let active = active_lines(code, &mut macros);
        let on: Vec<&str> =
            code.lines().zip(&active).filter(|(_, a)| **a).map(|(l, _)| l).collect();
        assert_eq!(on, ["a", "c", "e"]);
        assert_eq!(macros.get("LONG").map(String::as_str), Some("\"v\""));
        assert!(macros.contains_key("GUARD"));
        assert!(!macros.contains_key("Y"));
    }

    #[test]
    fn finds_calls_outside_strings_and_comments() {
        let code = strip_comments(
            "CHECK(\"SetDispatchQueue(Nope)\", SetDispatchQueue(kName, q));\n\
             // SetDispatchQueue(\"Commented\", q);\n\
             /* SetDispatchQueue(\"Block\", q); */ x = 1;\n\
             this->SetDispatchQueue (\n  \"Split\" , q);\n\
             MySetDispatchQueue(\"Other\", q);\n\
             SetDispatchQueue(names[(i)], q);\n",
        );
        let calls = find_calls(&code, "SetDispatchQueue");
        let got: Vec<(&str, usize)> =
            calls.iter().map(|c| (c.first_argument.as_str(), c.line)).collect();
        assert_eq!(got, [("kName", 1), ("\"Split\"", 4), ("names[(i)]", 7)]);
    }

    #[test]
    fn resolves_literals_and_macros() {
        let macros = m(&[("kQ", "\"TargetQueue\""), ("kAlias", "kQ"), ("kExpr", "prefix \"x\"")]);
        assert_eq!(resolve("\"IOQueue\"", &macros).as_deref(), Some("IOQueue"));
        assert_eq!(resolve("kQ", &macros).as_deref(), Some("TargetQueue"));
        assert_eq!(resolve("kAlias", &macros).as_deref(), Some("TargetQueue"));
        assert_eq!(resolve("kExpr", &macros), None);
        assert_eq!(resolve("kUnknown", &macros), None);
        assert_eq!(resolve("name()", &macros), None);
    }

    fn decl(queue: &str, sdk: bool) -> Declared {
        Declared {
            class: if sdk { FAMILY_CLASS.into() } else { "C".into() },
            method: if sdk { "UserCreateTargetForID".into() } else { "Work".into() },
            queue: queue.into(),
            file: "iig/C.iig".into(),
            line: 3,
            from_sdk: sdk,
        }
    }

    fn reg(name: Option<&str>, line: usize) -> Registration {
        Registration {
            name: name.map(str::to_string),
            argument: name.map(|n| format!("\"{n}\"")).unwrap_or("x".into()),
            file: "dext/C.cpp".into(),
            line,
        }
    }

    #[test]
    fn declarations_and_registrations_must_agree() {
        let declared = [decl("AuxiliaryQueue", true), decl("WorkQueue", false)];
        let ok =
            [reg(Some("AuxiliaryQueue"), 1), reg(Some("WorkQueue"), 2), reg(Some("Default"), 3)];
        assert!(check(&declared, &ok).is_empty());

        let f =
            check(&declared, &[reg(Some("WorkQueue"), 2), reg(Some("IOQueue"), 9), reg(None, 10)]);
        let got: Vec<(&str, &str, Option<usize>)> =
            f.iter().map(|f| (f.rule, f.file.as_str(), f.line)).collect();
        assert_eq!(
            got,
            [
                ("UndeclaredQueueName", "dext/C.cpp", Some(9)),
                ("QueueNameUnresolved", "dext/C.cpp", Some(10)),
                ("QueueNotRegistered", "iig/C.iig", Some(3)),
            ]
        );
        assert_eq!(
            f[0].message,
            "SetDispatchQueue(\"IOQueue\", …): no method of the class hierarchy is declared \
             QUEUENAME(IOQueue), so DriverKit returns kIOReturnBadArgument (0xe00002c2); \
             declared: AuxiliaryQueue, WorkQueue"
        );
        assert_eq!(
            f[2].message,
            "the SDK declares IOUserSCSIParallelInterfaceController::UserCreateTargetForID \
             QUEUENAME(AuxiliaryQueue) but DriverKit does not create that queue: without it a \
             target create never dispatches and start wedges; no SetDispatchQueue(\"AuxiliaryQueue\", …) \
             in the dext's sources"
        );
    }

    #[test]
    fn the_shipped_sources_are_consistent() {
        let root = super::super::repo_root();
        let iig = scan_iig(&Source { path: root.join("iig"), display: "iig".into() });
        assert!(iig.findings.is_empty(), "{:?}", iig.findings);
        let queues: Vec<&str> = iig.declared.iter().map(|d| d.queue.as_str()).collect();
        assert_eq!(
            queues,
            [
                "TargetQueue",
                "InterruptQueue",
                "InterruptQueue",
                "AuxiliaryQueue",
                // DkRaidUserClient's, from IOUserClient.iig.
                "IOUserClientQueueExternalMethod"
            ]
        );
        let dext = Source { path: root.join("dext"), display: "dext".into() };
        let (regs, f) = scan_sources(&dext, &[]);
        assert!(f.is_empty());
        let names: Vec<&str> = regs.iter().filter_map(|r| r.name.as_deref()).collect();
        assert_eq!(
            names,
            ["AuxiliaryQueue", "TargetQueue", "InterruptQueue", "IOUserClientQueueExternalMethod"]
        );
        assert!(check(&iig.declared, &regs).is_empty());
        // The undeclared-queue variant's extra registration is found when its switch is on.
        let (regs, _) =
            scan_sources(&dext, &[("DKRAID_VARIANT_UNDECLARED_QUEUE".into(), "1".into())]);
        let f = check(&iig.declared, &regs);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, "UndeclaredQueueName");
        assert!(f[0].message.starts_with("SetDispatchQueue(\"IOQueue\", …)"));
    }
}
