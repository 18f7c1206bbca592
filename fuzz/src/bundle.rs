//! The `plist` target's harness: any bytes as the bundle's `Info.plist` (or a bare personality)
//! and as the dext's and the app's entitlements, through the test-bed's bundle checks
//! (`tests/testbed/src/bundle/`: plist.rs, personality.rs, entitlements.rs, pci_match.rs), and
//! every string in it as a PCI match string.

use std::path::PathBuf;

use dkraid_testbed::bundle::personality::{self, ClassCatalog, ClassDecl};
use dkraid_testbed::bundle::plist::{expand, PlistFile};
use dkraid_testbed::bundle::{entitlements, pci_match, BuildSettings, Finding, Source, RULES};
use dkraid_testbed::iig;
use dkraid_testbed::pci::DKRAID_CONTROLLER;
use plist::Value;

/// The classes the shipped `iig/` declares, as `lint` sees them (parsed once).
fn catalog() -> &'static ClassCatalog {
    static CATALOG: std::sync::OnceLock<ClassCatalog> = std::sync::OnceLock::new();
    CATALOG.get_or_init(shipped_catalog)
}

fn shipped_catalog() -> ClassCatalog {
    let mut classes = Vec::new();
    for text in [
        include_str!("../../iig/DkRaidController.iig"),
        include_str!("../../iig/DkRaidUserClient.iig"),
    ] {
        let file = iig::parse(text).expect("the shipped iig parses");
        for c in file.classes {
            classes.push(ClassDecl { name: c.name, superclass: c.superclass });
        }
    }
    ClassCatalog { origin: "declared in iig".into(), classes }
}

fn source(name: &str) -> Source {
    Source { path: PathBuf::from(name), display: name.to_string() }
}

/// A finding names a documented rule, the file it was made for, and a line inside it.
fn check_finding(f: &Finding, file: &str, lines: usize) {
    assert!(RULES.iter().any(|r| r.name == f.rule), "undocumented rule {}", f.rule);
    assert_eq!(f.file, file);
    assert!(!f.message.is_empty(), "{f:?}");
    if let Some(line) = f.line {
        assert!(line >= 1 && line <= lines + 1, "line {line} of {lines}: {f:?}");
    }
    let _ = f.to_string();
    let _ = f.to_violation("fuzz");
}

/// The lint's strict reading of a PCI match string agrees with the kernel's: whatever it
/// accepts, the kernel matches exactly the registers it says the list matches.
pub fn check_pci_match(text: &str, probe: u32) {
    for mask in [0xFFFF_FFFFu32, 0xFFFF_FF00] {
        let Ok(entries) = pci_match::parse(text, mask) else {
            continue;
        };
        assert!(!entries.is_empty());
        let mut registers = vec![probe, 0, u32::MAX];
        for e in &entries {
            registers.extend([e.value, e.value ^ probe, !e.value]);
        }
        for reg in registers {
            let strict = entries.iter().any(|e| e.matches(reg));
            let kernel = pci_match::kernel_list_matches(text, mask, reg);
            assert_eq!(
                strict, kernel,
                "{text:?} (default mask {mask:#x}) against {reg:#010x}: lint reads {entries:?}"
            );
        }
        // Round trip: the entries printed parse back to themselves.
        let printed: Vec<String> = entries.iter().map(ToString::to_string).collect();
        assert_eq!(pci_match::parse(&printed.join(" "), mask), Ok(entries.clone()));
    }
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Dictionary(d) => d.iter().for_each(|(k, x)| {
            out.push(k.clone());
            strings(x, out)
        }),
        _ => {}
    }
}

pub fn run(data: &[u8]) {
    let text = std::str::from_utf8(data).ok();
    let lines = text.map_or(1, |t| t.lines().count().max(1));
    let probe = data.iter().fold(0x10F0_1AF4u32, |h, &b| h.rotate_left(5) ^ u32::from(b));
    if let Some(t) = text {
        check_pci_match(t, probe);
        let settings = BuildSettings::default();
        let (expanded, missing) = expand(t, &settings);
        if !t.contains('$') {
            assert_eq!(expanded, t, "text without a placeholder changed");
            assert!(missing.is_empty());
        }
    }
    let classes = catalog();
    for name in ["Info.plist", "personality.plist"] {
        let mut plist = match PlistFile::parse(&source(name), data) {
            Err(f) => {
                assert_eq!(f.rule, "PlistUnreadable", "{f:?}");
                assert!(f.is_error());
                check_finding(&f, name, lines);
                return;
            }
            Ok(p) => p,
        };
        assert!(plist.root.as_dictionary().is_some());
        for f in plist.substitute(&BuildSettings::default()) {
            assert_eq!(f.rule, "BuildSettingUndefined");
            check_finding(&f, name, lines);
        }
        let bundle = personality::check(&plist, Some(classes));
        for f in &bundle.findings {
            check_finding(f, name, lines);
        }
        let without = personality::check(&plist, None);
        assert!(without.findings.len() <= bundle.findings.len(), "a class catalog hid findings");
        for p in &bundle.personalities {
            let m = pci_match::match_device(&p.dict, &DKRAID_CONTROLLER);
            assert!(!m.no_keys || m.explanation.is_empty(), "{m:?}");
            let _ = dkraid_testbed::bundle::matching::registry_properties(&p.dict);
        }
        let mut all = Vec::new();
        strings(&plist.root, &mut all);
        for s in all.iter().take(64) {
            check_pci_match(s, probe);
        }
        // The same bytes as the dext's and the admin app's entitlements.
        let (ents, found) = entitlements::check_dext(&plist, &bundle);
        for f in &found {
            check_finding(f, name, lines);
        }
        for f in entitlements::check_overlap(&plist, &bundle, &ents) {
            check_finding(&f, name, lines);
        }
        let _ = ents.allows(&DKRAID_CONTROLLER);
        let (_, found) = entitlements::check_app(&plist, bundle.bundle_identifier.as_deref());
        for f in &found {
            check_finding(f, name, lines);
        }
        // The checks read the values, not the encoding: the same dictionary written back as
        // XML finds the same problems at the same keys.
        let mut xml = Vec::new();
        if plist.root.to_writer_xml(&mut xml).is_ok() {
            let again = PlistFile::parse(&source(name), &xml).expect("written XML parses back");
            let rewritten = personality::check(&again, Some(classes));
            let keys = |b: &personality::BundleCheck| -> Vec<(&'static str, Option<String>)> {
                b.findings.iter().map(|f| (f.rule, f.key.clone())).collect()
            };
            assert_eq!(keys(&rewritten), keys(&bundle), "findings depend on the encoding");
        }
    }
}
