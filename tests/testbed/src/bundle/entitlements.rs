//! The entitlements of a SCSI controller dext and of the app that installs it and talks to it
//! (DRIVERKIT.md §8). A missing or misspelled entitlement fails without a word on a Mac: the
//! dext is not allowed to match, or the app's `IOServiceOpen` is refused — so each key is
//! checked exactly, and a near miss names the real key.

use plist::{Dictionary, Value};

use super::pci_match::{self, MatchEntry};
use super::personality::{describe, kind, BundleCheck, PCI_PROVIDER};
use super::plist::PlistFile;
use super::spelling;
use super::Finding;
use crate::pci::SimPciDevice;

pub const DRIVERKIT: &str = "com.apple.developer.driverkit";
pub const TRANSPORT_PCI: &str = "com.apple.developer.driverkit.transport.pci";
pub const FAMILY_SCSI_CONTROLLER: &str = "com.apple.developer.driverkit.family.scsicontroller";
pub const ALLOW_ANY_USERCLIENT_ACCESS: &str =
    "com.apple.developer.driverkit.allow-any-userclient-access";
pub const USERCLIENT_ACCESS: &str = "com.apple.developer.driverkit.userclient-access";
pub const SYSTEM_EXTENSION_INSTALL: &str = "com.apple.developer.system-extension.install";

/// Entitlement keys known to be legitimate: a key equal to one of these is never reported as a
/// misspelling of another.
pub const KNOWN: &[&str] = &[
    DRIVERKIT,
    TRANSPORT_PCI,
    FAMILY_SCSI_CONTROLLER,
    ALLOW_ANY_USERCLIENT_ACCESS,
    USERCLIENT_ACCESS,
    SYSTEM_EXTENSION_INSTALL,
    "com.apple.developer.driverkit.transport.usb",
    "com.apple.developer.driverkit.transport.hid",
    "com.apple.developer.driverkit.transport.serial",
    "com.apple.developer.driverkit.family.audio",
    "com.apple.developer.driverkit.family.block-storage-device",
    "com.apple.developer.driverkit.family.hid.device",
    "com.apple.developer.driverkit.family.hid.eventservice",
    "com.apple.developer.driverkit.family.midi",
    "com.apple.developer.driverkit.family.networking",
    "com.apple.developer.driverkit.family.serial",
    "com.apple.developer.driverkit.family.video",
    "com.apple.developer.driverkit.allow-third-party-userclients",
    "com.apple.developer.driverkit.communicates-with-drivers",
    "com.apple.developer.driverkit.builtin",
    "com.apple.developer.driverkit.install",
    "com.apple.developer.team-identifier",
    "com.apple.application-identifier",
    "com.apple.security.app-sandbox",
    "com.apple.security.get-task-allow",
    "com.apple.security.files.user-selected.read-only",
    "keychain-access-groups",
];

/// What the dext's entitlements allow.
#[derive(Clone, Debug, Default)]
pub struct DextEntitlements {
    /// Each `transport.pci` entry's PCI keys (entries that did not parse are left out).
    pub pci_entries: Vec<Dictionary>,
    pub allow_any_userclient_access: bool,
}

impl DextEntitlements {
    /// Whether some `transport.pci` entry lets the dext match `device` (each entry is matched
    /// like a personality's PCI keys).
    pub fn allows(&self, device: &SimPciDevice) -> bool {
        self.pci_entries.iter().any(|e| pci_match::match_device(e, device).matched)
    }
}

/// Near misses of known keys among `file`'s keys, reported; returns the known keys they
/// stand for.
fn misspellings(file: &PlistFile, out: &mut Vec<Finding>) -> Vec<&'static str> {
    let mut meant_keys = Vec::new();
    for key in file.dict().keys() {
        if let Some(meant) = spelling::suggest(key, KNOWN) {
            if !file.dict().contains_key(meant) {
                meant_keys.push(meant);
                out.push(file.finding_at(
                    "EntitlementMisspelled",
                    true,
                    &[key],
                    format!(
                        "{key:?} is not an entitlement — did you mean {meant:?}? A misspelled \
                         entitlement is ignored, so the bundle does not have {meant}."
                    ),
                ));
            }
        }
    }
    meant_keys
}

fn missing(file: &PlistFile, key: &str, why: &str) -> Finding {
    file.finding_at("EntitlementMissing", true, &[key], format!("{key} is missing: {why}"))
}

fn require_true(file: &PlistFile, key: &str, out: &mut Vec<Finding>) {
    if let Some(v) = file.dict().get(key) {
        if v.as_boolean() != Some(true) {
            out.push(file.finding_at(
                "EntitlementValue",
                true,
                &[key],
                format!("{key} must be <true/>; found {}", describe(v)),
            ));
        }
    }
}

/// Check the dext's entitlements against what the bundle needs.
pub fn check_dext(file: &PlistFile, bundle: &BundleCheck) -> (DextEntitlements, Vec<Finding>) {
    let mut out = Vec::new();
    let misspelled = misspellings(file, &mut out);
    let d = file.dict();
    let mut ents = DextEntitlements::default();
    let require = |key: &str, why: &str, out: &mut Vec<Finding>| {
        if !d.contains_key(key) && !misspelled.contains(&key) {
            out.push(missing(file, key, why));
        }
    };
    require(DRIVERKIT, "every DriverKit extension needs it to run at all", &mut out);
    if bundle.needs_pci() {
        require(
            TRANSPORT_PCI,
            "without it the dext may not match any PCI device (an array of \
             {IOPCIPrimaryMatch = \"0xDDDDVVVV\"} dictionaries)",
            &mut out,
        );
    }
    require(
        FAMILY_SCSI_CONTROLLER,
        "without it the dext may not be an IOUserSCSIParallelInterfaceController",
        &mut out,
    );
    require_true(file, DRIVERKIT, &mut out);
    require_true(file, FAMILY_SCSI_CONTROLLER, &mut out);

    if let Some(v) = d.get(TRANSPORT_PCI) {
        ents.pci_entries = check_transport_pci(file, v, &mut out);
    }
    if let Some(v) = d.get(ALLOW_ANY_USERCLIENT_ACCESS) {
        match v.as_boolean() {
            Some(b) => ents.allow_any_userclient_access = b,
            None => out.push(file.finding_at(
                "EntitlementValue",
                true,
                &[ALLOW_ANY_USERCLIENT_ACCESS],
                format!("{ALLOW_ANY_USERCLIENT_ACCESS} must be a Boolean; found {}", kind(v)),
            )),
        }
    }
    (ents, out)
}

fn check_transport_pci(file: &PlistFile, v: &Value, out: &mut Vec<Finding>) -> Vec<Dictionary> {
    let Some(items) = v.as_array() else {
        out.push(file.finding_at(
            "EntitlementValue",
            true,
            &[TRANSPORT_PCI],
            format!(
                "{TRANSPORT_PCI} must be an array of match dictionaries \
                 ({{IOPCIPrimaryMatch = \"0xDDDDVVVV\"}}); found {}",
                kind(v)
            ),
        ));
        return Vec::new();
    };
    if items.is_empty() {
        out.push(file.finding_at(
            "EntitlementValue",
            true,
            &[TRANSPORT_PCI],
            format!("{TRANSPORT_PCI} is an empty array: it allows no PCI device"),
        ));
    }
    let mut entries = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let index = i.to_string();
        let Some(dict) = item.as_dictionary() else {
            out.push(file.finding_at(
                "EntitlementValue",
                true,
                &[TRANSPORT_PCI, &index],
                format!("{TRANSPORT_PCI} item {i} must be a dictionary; found {}", kind(item)),
            ));
            continue;
        };
        let keys: Vec<_> =
            pci_match::MATCH_KEYS.iter().filter(|k| dict.contains_key(k.name)).collect();
        if keys.is_empty() {
            out.push(file.finding_at(
                "EntitlementValue",
                true,
                &[TRANSPORT_PCI, &index],
                format!(
                    "{TRANSPORT_PCI} item {i} has no IOPCIPrimaryMatch (or IOPCIMatch): it \
                     allows no device"
                ),
            ));
            continue;
        }
        let mut ok = true;
        for k in keys {
            let value = dict.get(k.name).and_then(Value::as_string);
            let problem = match value {
                None => Some("must be a string like \"0x10f01af4\"".to_string()),
                Some(t) => pci_match::parse(t, k.default_mask).err().map(|e| format!("{t:?}: {e}")),
            };
            if let Some(p) = problem {
                ok = false;
                out.push(file.finding_at(
                    "EntitlementValue",
                    true,
                    &[TRANSPORT_PCI, &index, k.name],
                    format!("{TRANSPORT_PCI} item {i}: {} {p}", k.name),
                ));
            }
        }
        if ok {
            entries.push(dict.clone());
        }
    }
    entries
}

/// Whether a `transport.pci` entry can allow some device a PCI personality matches: an entry
/// and a personality overlap when one of the entry's IOPCIPrimaryMatch/IOPCIMatch values and
/// one of the personality's agree on every bit both masks keep. Personalities matching only by
/// class are not checked.
pub fn check_overlap(
    file: &PlistFile,
    bundle: &BundleCheck,
    ents: &DextEntitlements,
) -> Vec<Finding> {
    let id_keys = ["IOPCIPrimaryMatch", "IOPCIMatch"];
    let ids = |d: &Dictionary| -> Vec<MatchEntry> {
        pci_match::entries(d)
            .into_iter()
            .filter(|(k, _)| id_keys.contains(&k.name))
            .flat_map(|(_, e)| e)
            .collect()
    };
    let allowed: Vec<MatchEntry> = ents.pci_entries.iter().flat_map(ids).collect();
    if ents.pci_entries.is_empty() || allowed.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for p in &bundle.personalities {
        if p.provider() != Some(PCI_PROVIDER) {
            continue;
        }
        let wanted = ids(&p.dict);
        if wanted.is_empty() {
            continue;
        }
        if !wanted.iter().any(|w| allowed.iter().any(|a| a.overlaps(w))) {
            let show =
                |v: &[MatchEntry]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ");
            out.push(file.finding_at(
                "EntitlementPciNoOverlap",
                true,
                &[TRANSPORT_PCI],
                format!(
                    "{TRANSPORT_PCI} allows {} but personality {:?} matches {}: the dext would \
                     never be allowed to match its own device",
                    show(&allowed),
                    p.name,
                    show(&wanted)
                ),
            ));
        }
    }
    out
}

/// Check the admin app's entitlements: it must be allowed to install system extensions and to
/// open the dext's user client.
pub fn check_app(file: &PlistFile, dext_bundle_id: Option<&str>) -> (Vec<String>, Vec<Finding>) {
    let mut out = Vec::new();
    let misspelled = misspellings(file, &mut out);
    let d = file.dict();
    if !d.contains_key(SYSTEM_EXTENSION_INSTALL) && !misspelled.contains(&SYSTEM_EXTENSION_INSTALL)
    {
        out.push(missing(
            file,
            SYSTEM_EXTENSION_INSTALL,
            "the app cannot submit the dext to OSSystemExtensionManager",
        ));
    }
    require_true(file, SYSTEM_EXTENSION_INSTALL, &mut out);
    let mut access = Vec::new();
    match d.get(USERCLIENT_ACCESS) {
        None if !misspelled.contains(&USERCLIENT_ACCESS) => out.push(missing(
            file,
            USERCLIENT_ACCESS,
            "the app cannot open the dext's user client (an array naming the dext's bundle \
             identifier)",
        )),
        None => {}
        Some(v) => {
            // A single string or an array of strings.
            let strings: Option<Vec<String>> = match v {
                Value::String(s) => Some(vec![s.clone()]),
                Value::Array(a) => a.iter().map(|x| x.as_string().map(str::to_string)).collect(),
                _ => None,
            };
            match strings {
                None => out.push(file.finding_at(
                    "EntitlementValue",
                    true,
                    &[USERCLIENT_ACCESS],
                    format!(
                        "{USERCLIENT_ACCESS} must be an array of dext bundle identifiers; found {}",
                        kind(v)
                    ),
                )),
                Some(list) => {
                    if let Some(id) = dext_bundle_id {
                        if !list.iter().any(|s| s == id) {
                            out.push(file.finding_at(
                                "EntitlementUserClientAccess",
                                true,
                                &[USERCLIENT_ACCESS],
                                format!(
                                    "{USERCLIENT_ACCESS} names {list:?}, not the dext's bundle \
                                     identifier {id:?}: IOServiceOpen on the dext is refused"
                                ),
                            ));
                        }
                    }
                    access = list;
                }
            }
        }
    }
    (access, out)
}

/// A dext with a user client must let someone open it: `allow-any-userclient-access` on the
/// dext, or an app whose `userclient-access` names it.
pub fn check_user_client_access(
    dext_file: &PlistFile,
    bundle: &BundleCheck,
    ents: &DextEntitlements,
    app_access: Option<&[String]>,
) -> Vec<Finding> {
    if !bundle.has_user_client() || ents.allow_any_userclient_access {
        return Vec::new();
    }
    let named = match (app_access, bundle.bundle_identifier.as_deref()) {
        (Some(list), Some(id)) => list.iter().any(|s| s == id),
        _ => false,
    };
    if named {
        return Vec::new();
    }
    vec![dext_file.finding_at(
        "EntitlementUserClientAccess",
        true,
        &[ALLOW_ANY_USERCLIENT_ACCESS],
        format!(
            "the personality publishes UserClientProperties but nothing may open it: set \
             {ALLOW_ANY_USERCLIENT_ACCESS} on the dext, or give the app {USERCLIENT_ACCESS} \
             naming the dext"
        ),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::personality::Personality;
    use super::super::{BuildSettings, Source};
    use super::*;

    fn load(text: &str) -> PlistFile {
        let src = Source { path: "x.entitlements".into(), display: "x.entitlements".into() };
        let mut p = PlistFile::parse(&src, text.as_bytes()).unwrap();
        p.substitute(&BuildSettings::default());
        p
    }

    fn shipped(name: &str) -> String {
        std::fs::read_to_string(super::super::repo_root().join(name)).unwrap()
    }

    fn pci_bundle(matching: &str) -> BundleCheck {
        let mut d = Dictionary::new();
        d.insert("IOProviderClass".into(), Value::String(PCI_PROVIDER.into()));
        d.insert("IOPCIPrimaryMatch".into(), Value::String(matching.into()));
        d.insert("UserClientProperties".into(), Value::Dictionary(Dictionary::new()));
        BundleCheck {
            bundle_identifier: Some("org.dkraid.driver".into()),
            personalities: vec![Personality { name: "P".into(), prefix: vec![], dict: d }],
            findings: vec![],
        }
    }

    #[test]
    fn the_shipped_entitlements_are_clean() {
        let bundle = pci_bundle("0x10f01af4");
        let dext = load(&shipped(super::super::SHIPPED_DEXT_ENTITLEMENTS));
        let (ents, f) = check_dext(&dext, &bundle);
        assert!(f.is_empty(), "{f:#?}");
        assert!(ents.allows(&crate::pci::DKRAID_CONTROLLER));
        assert!(ents.allow_any_userclient_access);
        assert!(check_overlap(&dext, &bundle, &ents).is_empty());
        let app = load(&shipped(super::super::SHIPPED_APP_ENTITLEMENTS));
        let (access, f) = check_app(&app, Some("org.dkraid.driver"));
        assert!(f.is_empty(), "{f:#?}");
        assert_eq!(access, ["org.dkraid.driver"]);
    }

    #[test]
    fn a_misspelled_family_entitlement_names_the_real_key() {
        let text = shipped(super::super::SHIPPED_DEXT_ENTITLEMENTS).replace(
            FAMILY_SCSI_CONTROLLER,
            "com.apple.developer.driverkit.family.scsi-controller",
        );
        let (_, f) = check_dext(&load(&text), &pci_bundle("0x10f01af4"));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].rule, "EntitlementMisspelled");
        assert_eq!(
            f[0].key.as_deref(),
            Some("com.apple.developer.driverkit.family.scsi-controller")
        );
        assert_eq!(
            f[0].message,
            "\"com.apple.developer.driverkit.family.scsi-controller\" is not an entitlement — \
             did you mean \"com.apple.developer.driverkit.family.scsicontroller\"? A misspelled \
             entitlement is ignored, so the bundle does not have \
             com.apple.developer.driverkit.family.scsicontroller."
        );
    }

    #[test]
    fn values_are_checked() {
        let text = r#"<plist version="1.0"><dict>
<key>com.apple.developer.driverkit</key><string>yes</string>
<key>com.apple.developer.driverkit.transport.pci</key>
<array><dict><key>IOPCIPrimaryMatch</key><string>0x10f0,1af4</string></dict><string>x</string><dict/></array>
<key>com.apple.developer.driverkit.allow-any-userclient-access</key><integer>1</integer>
</dict></plist>"#;
        let (ents, f) = check_dext(&load(text), &pci_bundle("0x10f01af4"));
        let got: Vec<_> = f.iter().map(|f| (f.rule, f.key.clone().unwrap())).collect();
        assert_eq!(
            got,
            [
                ("EntitlementMissing", FAMILY_SCSI_CONTROLLER.to_string()),
                ("EntitlementValue", DRIVERKIT.to_string()),
                ("EntitlementValue", format!("{TRANSPORT_PCI}:0:IOPCIPrimaryMatch")),
                ("EntitlementValue", format!("{TRANSPORT_PCI}:1")),
                ("EntitlementValue", format!("{TRANSPORT_PCI}:2")),
                ("EntitlementValue", ALLOW_ANY_USERCLIENT_ACCESS.to_string()),
            ]
        );
        assert_eq!(f[1].message, "com.apple.developer.driverkit must be <true/>; found \"yes\"");
        assert!(ents.pci_entries.is_empty());
        assert!(!ents.allows(&crate::pci::DKRAID_CONTROLLER));
    }

    #[test]
    fn transport_pci_must_overlap_the_personality() {
        let dext = load(&shipped(super::super::SHIPPED_DEXT_ENTITLEMENTS));
        let bundle = pci_bundle("0x00731000");
        let (ents, _) = check_dext(&dext, &bundle);
        let f = check_overlap(&dext, &bundle, &ents);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, "EntitlementPciNoOverlap");
        assert!(
            f[0].message.contains(
                "allows 0x10f01af4&0xffffffff but personality \"P\" matches 0x00731000&0xffffffff"
            ),
            "{}",
            f[0].message
        );
        // A vendor-wide personality overlaps.
        assert!(check_overlap(&dext, &pci_bundle("0x00001af4&0x0000ffff"), &ents).is_empty());
    }

    #[test]
    fn user_client_access_needs_someone_allowed() {
        let no_any = r#"<plist version="1.0"><dict>
<key>com.apple.developer.driverkit</key><true/>
<key>com.apple.developer.driverkit.transport.pci</key><array><dict><key>IOPCIPrimaryMatch</key><string>0x10f01af4</string></dict></array>
<key>com.apple.developer.driverkit.family.scsicontroller</key><true/>
</dict></plist>"#;
        let dext = load(no_any);
        let bundle = pci_bundle("0x10f01af4");
        let (ents, f) = check_dext(&dext, &bundle);
        assert!(f.is_empty());
        let f = check_user_client_access(&dext, &bundle, &ents, None);
        assert_eq!(f[0].rule, "EntitlementUserClientAccess");
        let app = vec!["org.dkraid.driver".to_string()];
        assert!(check_user_client_access(&dext, &bundle, &ents, Some(&app)).is_empty());
        let other = vec!["com.example.other".to_string()];
        assert_eq!(check_user_client_access(&dext, &bundle, &ents, Some(&other)).len(), 1);
    }

    #[test]
    fn the_app_names_the_dext() {
        let text = shipped(super::super::SHIPPED_APP_ENTITLEMENTS)
            .replace("org.dkraid.driver", "org.dkraid.drivr");
        let (_, f) = check_app(&load(&text), Some("org.dkraid.driver"));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, "EntitlementUserClientAccess");
        assert_eq!(
            f[0].message,
            "com.apple.developer.driverkit.userclient-access names [\"org.dkraid.drivr\"], not \
             the dext's bundle identifier \"org.dkraid.driver\": IOServiceOpen on the dext is refused"
        );
        let text = shipped(super::super::SHIPPED_APP_ENTITLEMENTS)
            .replace(SYSTEM_EXTENSION_INSTALL, "com.apple.developer.system-extensions.install");
        let (_, f) = check_app(&load(&text), Some("org.dkraid.driver"));
        assert_eq!(f.iter().map(|f| f.rule).collect::<Vec<_>>(), ["EntitlementMisspelled"]);
        let (_, f) = check_app(&load(r#"<plist version="1.0"><dict/></plist>"#), None);
        assert_eq!(
            f.iter().map(|f| f.rule).collect::<Vec<_>>(),
            ["EntitlementMissing", "EntitlementMissing"]
        );
    }
}
