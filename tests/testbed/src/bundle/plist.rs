//! Reading a property list (XML, binary or ASCII, with the `plist` crate), finding the line a
//! key is on, and expanding Xcode build-setting placeholders (`$(PRODUCT_BUNDLE_IDENTIFIER)`)
//! the way Xcode does when it copies `Info.plist` and the entitlements into a build.

use plist::{Dictionary, Value};

use super::{BuildSettings, Finding, Source};

/// A loaded property list.
#[derive(Clone, Debug)]
pub struct PlistFile {
    pub source: Source,
    /// The text, for line numbers (None for a binary plist).
    text: Option<String>,
    pub root: Value,
}

impl PlistFile {
    /// Read and parse `source`; a missing file or a parse error is a `PlistUnreadable` finding.
    pub fn load(source: &Source) -> Result<PlistFile, Finding> {
        let file = &source.display;
        let bytes = std::fs::read(&source.path).map_err(|e| {
            Finding::error("PlistUnreadable", file, format!("cannot read {file}: {e}"))
        })?;
        PlistFile::parse(source, &bytes)
    }

    /// Parse `bytes` as the contents of `source`.
    pub fn parse(source: &Source, bytes: &[u8]) -> Result<PlistFile, Finding> {
        let file = &source.display;
        let text = std::str::from_utf8(bytes).ok().map(str::to_string);
        let root = Value::from_reader(std::io::Cursor::new(bytes)).map_err(|e| {
            let message = e.to_string();
            let line = text.as_deref().and_then(|t| line_of_offset_in_message(t, &message));
            Finding::error(
                "PlistUnreadable",
                file,
                format!("{file} is not a property list: {message}"),
            )
            .at_line(line)
        })?;
        if root.as_dictionary().is_none() {
            return Err(Finding::error(
                "PlistUnreadable",
                file,
                format!("{file}: the root of the property list is not a dictionary"),
            ));
        }
        Ok(PlistFile { source: source.clone(), text, root })
    }

    pub fn file(&self) -> &str {
        &self.source.display
    }

    pub fn dict(&self) -> &Dictionary {
        self.root.as_dictionary().expect("checked in parse")
    }

    pub fn dict_mut(&mut self) -> &mut Dictionary {
        self.root.as_dictionary_mut().expect("checked in parse")
    }

    /// The line of the deepest key of `path` that can be found (XML plists only): each key is
    /// looked for after the previous one, so `["IOKitPersonalities", "X", "IOClass"]` finds
    /// the `IOClass` inside personality `X`. A key that is absent gives its parent's line (the
    /// root `<dict>`'s for a top-level key).
    pub fn line_of(&self, path: &[&str]) -> Option<usize> {
        let text = self.text.as_deref()?;
        let mut from = 0;
        let mut line = text.find("<dict>").map(|at| text[..at].matches('\n').count() + 1);
        for key in path {
            let needle = format!("<key>{}</key>", xml_escape(key));
            match text[from..].find(&needle) {
                Some(at) => {
                    from += at + needle.len();
                    line = Some(text[..from].matches('\n').count() + 1);
                }
                None => break,
            }
        }
        line
    }

    /// A finding at `path` (key and line).
    pub fn finding_at(
        &self,
        rule: &'static str,
        error: bool,
        path: &[&str],
        message: String,
    ) -> Finding {
        let f = if error {
            Finding::error(rule, self.file(), message)
        } else {
            Finding::warning(rule, self.file(), message)
        };
        f.at_key(key_path(path)).at_line(self.line_of(path))
    }

    /// Expand every `$(NAME)` / `${NAME}` in string values (not keys), as Xcode does for
    /// `Info.plist` and entitlements. An undefined setting expands to nothing, as in Xcode, and
    /// is a `BuildSettingUndefined` finding.
    pub fn substitute(&mut self, settings: &BuildSettings) -> Vec<Finding> {
        let mut undefined = Vec::new();
        let mut path = Vec::new();
        substitute_value(&mut self.root, settings, &mut path, &mut undefined);
        undefined
            .into_iter()
            .map(|(path, name)| {
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                self.finding_at(
                    "BuildSettingUndefined",
                    true,
                    &refs,
                    format!(
                        "$({name}) names no build setting: Xcode expands it to an empty string \
                         (define it in the target, or pass --set {name}=VALUE to dkraid-sim)"
                    ),
                )
            })
            .collect()
    }
}

/// `a:b:c`.
pub fn key_path(path: &[&str]) -> String {
    path.join(":")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The plist crate reports `(offset N)`; turn it into a line.
fn line_of_offset_in_message(text: &str, message: &str) -> Option<usize> {
    let rest = &message[message.rfind("offset ")? + "offset ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let offset: usize = digits.parse().ok()?;
    let offset = offset.min(text.len());
    Some(text.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1)
}

fn substitute_value(
    value: &mut Value,
    settings: &BuildSettings,
    path: &mut Vec<String>,
    undefined: &mut Vec<(Vec<String>, String)>,
) {
    match value {
        Value::String(s) => {
            let (expanded, missing) = expand(s, settings);
            *s = expanded;
            undefined.extend(missing.into_iter().map(|m| (path.clone(), m)));
        }
        Value::Array(items) => {
            for (k, item) in items.iter_mut().enumerate() {
                path.push(k.to_string());
                substitute_value(item, settings, path, undefined);
                path.pop();
            }
        }
        Value::Dictionary(d) => {
            for (k, item) in d.iter_mut() {
                path.push(k.clone());
                substitute_value(item, settings, path, undefined);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Expand build settings in `text`; returns the result and the names that were undefined.
/// Supports `$(NAME)`, `${NAME}`, and the modifiers `:rfc1034identifier`, `:lower`, `:upper`
/// (`$(PRODUCT_NAME:rfc1034identifier)`); other modifiers leave the value unchanged. A `$`
/// not followed by `(` or `{`, and an unterminated placeholder, stay as written.
pub fn expand(text: &str, settings: &BuildSettings) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let close = match after.chars().next() {
            Some('(') => ')',
            Some('{') => '}',
            _ => {
                out.push('$');
                rest = after;
                continue;
            }
        };
        let Some(end) = after.find(close) else {
            out.push_str(&rest[at..]);
            rest = "";
            break;
        };
        let inner = &after[1..end];
        let (name, modifier) = match inner.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (inner, None),
        };
        match settings.get(name) {
            Some(v) => out.push_str(&apply_modifier(v, modifier)),
            None => missing.push(name.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    (out, missing)
}

fn apply_modifier(value: &str, modifier: Option<&str>) -> String {
    match modifier {
        Some("rfc1034identifier") => value
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' })
            .collect(),
        Some("lower") => value.to_lowercase(),
        Some("upper") => value.to_uppercase(),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(name: &str) -> Source {
        Source { path: name.into(), display: name.into() }
    }

    const XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>CFBundleIdentifier</key>
	<string>$(PRODUCT_BUNDLE_IDENTIFIER)</string>
	<key>IOKitPersonalities</key>
	<dict>
		<key>A</key>
		<dict>
			<key>IOClass</key>
			<string>X</string>
			<key>Name</key>
			<string>${PRODUCT_NAME:rfc1034identifier} $(NOPE)</string>
		</dict>
	</dict>
	<key>List</key>
	<array>
		<string>$(PRODUCT_BUNDLE_IDENTIFIER)</string>
	</array>
	<key>Count</key>
	<integer>3</integer>
</dict>
</plist>
"#;

    #[test]
    fn parses_xml_and_finds_lines() {
        let p = PlistFile::parse(&src("Info.plist"), XML.as_bytes()).unwrap();
        assert_eq!(p.dict().get("Count").and_then(Value::as_unsigned_integer), Some(3));
        assert_eq!(p.line_of(&["CFBundleIdentifier"]), Some(5));
        assert_eq!(p.line_of(&["IOKitPersonalities", "A", "IOClass"]), Some(11));
        // An absent key: its parent's line.
        assert_eq!(p.line_of(&["IOKitPersonalities", "A", "IOUserClass"]), Some(9));
        assert_eq!(p.line_of(&["Nothing"]), Some(4), "the root dictionary");
    }

    #[test]
    fn substitutes_build_settings_everywhere_and_reports_undefined_ones() {
        let mut p = PlistFile::parse(&src("Info.plist"), XML.as_bytes()).unwrap();
        let mut settings = BuildSettings::default();
        settings.set("PRODUCT_NAME=My Driver").unwrap();
        let findings = p.substitute(&settings);
        let d = p.dict();
        assert_eq!(
            d.get("CFBundleIdentifier").and_then(Value::as_string),
            Some("org.dkraid.driver")
        );
        let a = d.get("IOKitPersonalities").unwrap().as_dictionary().unwrap().get("A").unwrap();
        assert_eq!(
            a.as_dictionary().unwrap().get("Name").and_then(Value::as_string),
            Some("My-Driver ")
        );
        let list = d.get("List").unwrap().as_array().unwrap();
        assert_eq!(list[0].as_string(), Some("org.dkraid.driver"));
        assert_eq!(findings.len(), 1);
        let f = &findings[0];
        assert_eq!(f.rule, "BuildSettingUndefined");
        assert_eq!(f.key.as_deref(), Some("IOKitPersonalities:A:Name"));
        assert_eq!(f.line, Some(13));
        assert!(f.message.starts_with("$(NOPE) names no build setting"), "{}", f.message);
    }

    #[test]
    fn expansion_edge_cases() {
        let s = BuildSettings::default();
        assert_eq!(expand("a$b", &s).0, "a$b");
        assert_eq!(expand("$(PRODUCT_BUNDLE_IDENTIFIER:upper)", &s).0, "ORG.DKRAID.DRIVER");
        assert_eq!(expand("$(EXECUTABLE_NAME:unknownmod)", &s).0, "org.dkraid.driver");
        assert_eq!(expand("x$(OPEN", &s), ("x$(OPEN".to_string(), vec![]));
        assert_eq!(expand("$(A)$(B)", &s), (String::new(), vec!["A".into(), "B".into()]));
        assert_eq!(expand("no placeholders", &s).0, "no placeholders");
        assert_eq!(expand("", &s).0, "");
    }

    #[test]
    fn unreadable_files_are_findings() {
        let e =
            PlistFile::parse(&src("bad.plist"), b"<plist><dict><key>A</key></plist>").unwrap_err();
        assert_eq!(e.rule, "PlistUnreadable");
        assert!(e.message.starts_with("bad.plist is not a property list"), "{}", e.message);
        let e = PlistFile::parse(&src("arr.plist"), br#"<plist version="1.0"><array/></plist>"#)
            .unwrap_err();
        assert!(e.message.contains("root of the property list is not a dictionary"));
        let e = PlistFile::load(&src("/nonexistent/x.plist")).unwrap_err();
        assert!(e.message.starts_with("cannot read /nonexistent/x.plist"), "{}", e.message);
    }

    #[test]
    fn reads_binary_plists() {
        let mut d = Dictionary::new();
        d.insert("IOClass".into(), Value::String("X".into()));
        let mut bin = Vec::new();
        Value::Dictionary(d).to_writer_binary(&mut bin).unwrap();
        let p = PlistFile::parse(&src("bin.plist"), &bin).unwrap();
        assert_eq!(p.dict().get("IOClass").and_then(Value::as_string), Some("X"));
        assert_eq!(p.line_of(&["IOClass"]), None);
    }
}
