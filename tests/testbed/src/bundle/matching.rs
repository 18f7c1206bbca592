//! The kernel's side of loading the dext on the simulated Mac, before any dext code runs: read
//! the bundle's `Info.plist` and the dext's entitlements (build settings substituted), refuse
//! a bundle that breaks a rule of DRIVERKIT.md §8 — naming the rule, the file and the key —
//! match each personality against the simulated PCI device as IOPCIFamily does, check that the
//! `transport.pci` entitlement allows that device, and publish the matched personality's
//! properties in the registry, where the dext's `CopyProperties` finds them (`BringUpStage`,
//! the fake disk's geometry, the maximum task count).

use plist::Value;

use dkraid_core::Stage;

use super::entitlements;
use super::pci_match;
use super::personality::{self, ClassCatalog, BRING_UP_STAGE};
use super::plist::PlistFile;
use super::{BuildSettings, Finding, Source};
use crate::pci::SimPciDevice;
use crate::world::Property;

/// Timeline names of the two checks, used as the `call` of their violations.
pub const CALL_MATCH: &str = "match personality";
pub const CALL_ENTITLEMENTS: &str = "check entitlements";

/// What to match.
#[derive(Clone, Debug)]
pub struct MatchRequest {
    pub plist: Source,
    pub entitlements: Source,
    pub settings: BuildSettings,
    pub device: SimPciDevice,
    /// The classes compiled into the dext build being booted.
    pub compiled: ClassCatalog,
    /// `--stage`: replaces the personality's `BringUpStage` before anything reads it.
    pub stage_override: Option<Stage>,
}

/// A personality matched: what the registry publishes and the stage it selects.
#[derive(Clone, Debug, PartialEq)]
pub struct Matched {
    pub personality: String,
    /// How it matched, e.g. `DkRaidController in Info.plist: IOPCIPrimaryMatch "0x10f01af4"
    /// matched register 0x00 = 0x10f01af4`.
    pub explanation: String,
    /// The personality's scalar properties, in the file's order.
    pub properties: Vec<(String, Property)>,
    pub stage: Stage,
    /// Where the stage came from, for messages.
    pub stage_source: String,
    /// `UserClientProperties`' `IOUserClass`: the class `IOService::Create` makes for
    /// `NewUserClient` (None: the personality publishes no user client).
    pub user_client_class: Option<String>,
}

/// A refusal: findings (all errors) with the call each belongs to.
pub type Refusal = Vec<(Finding, &'static str)>;

/// Load, check and match. `Err` lists every error; warnings are lint's business.
pub fn match_dext(req: &MatchRequest) -> Result<Matched, Refusal> {
    let mut refusal: Refusal = Vec::new();
    let mut plist = match PlistFile::load(&req.plist) {
        Ok(p) => Some(p),
        Err(f) => {
            refusal.push((f, CALL_MATCH));
            None
        }
    };
    let mut ents_file = match PlistFile::load(&req.entitlements) {
        Ok(p) => Some(p),
        Err(f) => {
            refusal.push((f, CALL_ENTITLEMENTS));
            None
        }
    };
    let (Some(plist), Some(ents_file)) = (plist.as_mut(), ents_file.as_mut()) else {
        return Err(refusal);
    };
    refusal.extend(plist.substitute(&req.settings).into_iter().map(|f| (f, CALL_MATCH)));
    refusal.extend(ents_file.substitute(&req.settings).into_iter().map(|f| (f, CALL_ENTITLEMENTS)));

    if let Some(stage) = req.stage_override {
        override_stage(plist, stage);
    }
    let bundle = personality::check(plist, Some(&req.compiled));
    refusal
        .extend(bundle.findings.iter().filter(|f| f.is_error()).cloned().map(|f| (f, CALL_MATCH)));
    let (ents, ent_findings) = entitlements::check_dext(ents_file, &bundle);
    refusal
        .extend(ent_findings.into_iter().filter(Finding::is_error).map(|f| (f, CALL_ENTITLEMENTS)));

    // The kernel offers the device to each personality in turn.
    let mut matched = None;
    let mut misses = Vec::new();
    for p in &bundle.personalities {
        if p.provider() != Some(personality::PCI_PROVIDER) {
            misses.push(format!(
                "{:?} attaches to {} (not IOPCIDevice)",
                p.name,
                p.provider().unwrap_or("no provider class")
            ));
            continue;
        }
        let m = pci_match::match_device(&p.dict, &req.device);
        if m.matched {
            matched = Some((p, m.explanation.join("; ")));
            break;
        }
        misses.push(format!(
            "{:?}: {}",
            p.name,
            if m.no_keys { "no PCI match key".to_string() } else { m.explanation.join("; ") }
        ));
    }
    let Some((p, how)) = matched else {
        if !bundle.personalities.is_empty() {
            let f = plist.finding_at(
                "PersonalityNoMatch",
                true,
                &["IOKitPersonalities"],
                format!(
                    "no personality matches the simulated PCI device {}: {}",
                    req.device,
                    misses.join("; ")
                ),
            );
            refusal.push((f, CALL_MATCH));
        }
        return Err(refusal);
    };
    if !ents.pci_entries.is_empty() && !ents.allows(&req.device) {
        let f = ents_file.finding_at(
            "EntitlementPciNoMatch",
            true,
            &[entitlements::TRANSPORT_PCI],
            format!(
                "{} does not allow the PCI device {} that personality {:?} matched: the kernel \
                 does not let the dext match it",
                entitlements::TRANSPORT_PCI,
                req.device,
                p.name
            ),
        );
        refusal.push((f, CALL_ENTITLEMENTS));
    }
    if !refusal.is_empty() {
        return Err(refusal);
    }

    let properties = registry_properties(&p.dict);
    let (stage, stage_source) = match (req.stage_override, p.string(BRING_UP_STAGE)) {
        (Some(s), _) => (s, "--stage".to_string()),
        (None, Some(name)) => (
            Stage::parse(name).unwrap_or(Stage::Pipeline),
            format!("BringUpStage in {}", plist.file()),
        ),
        (None, None) => (Stage::Pipeline, "the dext's default (no BringUpStage)".to_string()),
    };
    let user_client_class = p
        .dict
        .get("UserClientProperties")
        .and_then(|v| v.as_dictionary())
        .and_then(|d| d.get("IOUserClass"))
        .and_then(|v| v.as_string())
        .map(str::to_string);
    Ok(Matched {
        personality: p.name.clone(),
        explanation: format!("{} in {}: {how}", p.name, plist.file()),
        properties,
        stage,
        stage_source,
        user_client_class,
    })
}

/// Set `BringUpStage` in every personality (the `--stage` flag).
fn override_stage(plist: &mut PlistFile, stage: Stage) {
    let root = plist.dict_mut();
    let bare = personality::is_bare_personality(root);
    let value = Value::String(stage.name().to_string());
    if bare {
        root.insert(BRING_UP_STAGE.into(), value);
        return;
    }
    if let Some(ps) = root.get_mut("IOKitPersonalities").and_then(Value::as_dictionary_mut) {
        for p in ps.values_mut() {
            if let Some(d) = p.as_dictionary_mut() {
                d.insert(BRING_UP_STAGE.into(), value.clone());
            }
        }
    }
}

/// A personality's strings, integers and Booleans become the service's properties (IOKit
/// merges the matched personality into the registry entry); arrays and dictionaries are not
/// modelled.
pub fn registry_properties(dict: &plist::Dictionary) -> Vec<(String, Property)> {
    dict.iter()
        .filter_map(|(k, v)| {
            let p = match v {
                Value::String(s) => Property::String(s.clone()),
                Value::Boolean(b) => Property::Boolean(*b),
                Value::Integer(i) => Property::Number(
                    i.as_unsigned().or_else(|| i.as_signed().map(|s| s as u64)).unwrap_or(0),
                ),
                _ => return None,
            };
            Some((k.clone(), p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::personality::{ClassDecl, FAMILY_CLASS};
    use crate::bundle::{SHIPPED_DEXT_ENTITLEMENTS, SHIPPED_PLIST};
    use crate::pci::DKRAID_CONTROLLER;

    fn request() -> MatchRequest {
        MatchRequest {
            plist: Source::shipped(SHIPPED_PLIST),
            entitlements: Source::shipped(SHIPPED_DEXT_ENTITLEMENTS),
            settings: BuildSettings::default(),
            device: DKRAID_CONTROLLER,
            compiled: ClassCatalog {
                origin: "compiled into the dext".into(),
                classes: vec![
                    ClassDecl { name: "DkRaidController".into(), superclass: FAMILY_CLASS.into() },
                    ClassDecl {
                        name: "DkRaidUserClient".into(),
                        superclass: "IOUserClient".into(),
                    },
                ],
            },
            stage_override: None,
        }
    }

    #[test]
    fn the_shipped_bundle_matches_the_simulated_controller() {
        let m = match_dext(&request()).unwrap();
        assert_eq!(m.personality, "DkRaidController");
        assert_eq!(
            m.explanation,
            "DkRaidController in Info.plist: IOPCIPrimaryMatch \"0x10f01af4\" matched register \
             0x00 = 0x10f01af4"
        );
        assert_eq!(m.stage, Stage::Pipeline);
        assert_eq!(m.stage_source, "BringUpStage in Info.plist");
        let get = |k: &str| m.properties.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("BringUpStage"), Some(Property::String("pipeline".into())));
        assert_eq!(get("IOUserClass"), Some(Property::String("DkRaidController".into())));
        assert_eq!(get("IOUserServerName"), Some(Property::String("org.dkraid.driver".into())));
        assert_eq!(get("FakeDiskBlockSize"), Some(Property::Number(512)));
        assert_eq!(get("MaximumTaskCount"), Some(Property::Number(128)));
        assert_eq!(get("IOPCITunnelCompatible"), Some(Property::Boolean(true)));
        assert_eq!(get("UserClientProperties"), None, "dictionaries are not modelled");
    }

    #[test]
    fn the_stage_flag_overrides_the_personality() {
        let mut req = request();
        req.stage_override = Some(Stage::FakeBlock);
        let m = match_dext(&req).unwrap();
        assert_eq!((m.stage, m.stage_source.as_str()), (Stage::FakeBlock, "--stage"));
        assert!(m
            .properties
            .contains(&("BringUpStage".into(), Property::String("fake-block".into()))));
    }

    #[test]
    fn another_device_is_not_matched() {
        let mut req = request();
        req.device = SimPciDevice::parse_ids("1000:0073").unwrap();
        let refusal = match_dext(&req).unwrap_err();
        assert_eq!(refusal.len(), 1);
        let (f, call) = &refusal[0];
        assert_eq!((f.rule, *call), ("PersonalityNoMatch", CALL_MATCH));
        assert_eq!(
            f.message,
            "no personality matches the simulated PCI device 1000:0073 (subsystem 1000:0073, \
             class 010400): \"DkRaidController\": IOPCIPrimaryMatch \"0x10f01af4\" does not \
             match register 0x00 = 0x00731000"
        );
    }

    #[test]
    fn a_class_that_is_not_compiled_refuses_the_start() {
        let mut req = request();
        req.compiled.classes[0].name = "OtherController".into();
        let refusal = match_dext(&req).unwrap_err();
        let rules: Vec<_> = refusal.iter().map(|(f, _)| f.rule).collect();
        assert_eq!(rules, ["PersonalityUserClass"]);
    }
}
