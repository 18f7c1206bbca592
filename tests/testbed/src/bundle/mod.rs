//! The dext bundle — `Info.plist`, the entitlements — and the checks macOS applies to it before a
//! SCSI controller dext ever runs (DRIVERKIT.md §8), plus the `QUEUENAME` consistency of its
//! sources (DRIVERKIT.md §3). Used two ways:
//!
//! - `dkraid-sim lint` ([`lint`]) checks a bundle without booting it and prints every
//!   [`Finding`] with its rule and where it is;
//! - `dkraid-sim boot` ([`matching`]) matches the personality against the simulated PCI device
//!   as the kernel does and refuses to start the dext on any error, naming the key.
//!
//! Modules, by what they check:
//!
//! - [`plist`]: reading a property list, locating keys, substituting Xcode build settings;
//! - [`personality`]: the bundle keys and each `IOKitPersonalities` entry;
//! - [`pci_match`]: `IOPCIMatch`/`IOPCIPrimaryMatch` strings, evaluated as IOPCIFamily does;
//! - [`entitlements`]: the dext's and the admin app's entitlements;
//! - [`spelling`]: which known key a misspelled one meant;
//! - [`queues`]: `QUEUENAME` in `.iig` files vs `SetDispatchQueue` in the dext's sources;
//! - [`project`]: the Mac build's XcodeGen `project.yml` against the bundle.
//!
//! Every rule is listed in [`RULES`] and documented in docs/BUNDLE.md.

pub mod entitlements;
pub mod lint;
pub mod matching;
pub mod pci_match;
pub mod personality;
pub mod plist;
pub mod project;
pub mod queues;
pub mod spelling;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::verifier::Violation;

/// How bad a finding is. Errors fail `lint` and refuse a boot; warnings do neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One broken rule in a bundle or its sources.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule's name, e.g. `PersonalityIOClass` (see [`RULES`]).
    pub rule: &'static str,
    pub severity: Severity,
    /// The file, as given on the command line (relative to the repository for the defaults).
    pub file: String,
    /// The key's path in a property list, PlistBuddy style without the leading colon:
    /// `IOKitPersonalities:DkRaidController:IOClass`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// 1-based line, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// A sentence a driver writer can act on.
    pub message: String,
}

impl Finding {
    pub fn error(rule: &'static str, file: &str, message: String) -> Finding {
        Finding {
            rule,
            severity: Severity::Error,
            file: file.to_string(),
            key: None,
            line: None,
            message,
        }
    }

    pub fn warning(rule: &'static str, file: &str, message: String) -> Finding {
        Finding { severity: Severity::Warning, ..Finding::error(rule, file, message) }
    }

    pub fn at_key(mut self, key: impl Into<String>) -> Finding {
        self.key = Some(key.into());
        self
    }

    pub fn at_line(mut self, line: Option<usize>) -> Finding {
        self.line = line;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Where the rule is written down.
    pub fn section(&self) -> &'static str {
        RULES.iter().find(|r| r.name == self.rule).map(|r| r.section).unwrap_or("DRIVERKIT.md §8")
    }

    /// The finding as a boot-report violation: the kernel refused the bundle before any dext
    /// code ran.
    pub fn to_violation(&self, call: &str) -> Violation {
        let mut values = format!("file={}", self.file);
        if let Some(k) = &self.key {
            values.push_str(&format!(" key={k}"));
        }
        if let Some(l) = self.line {
            values.push_str(&format!(" line={l}"));
        }
        Violation {
            rule: self.rule,
            queue: "kernel".into(),
            call: call.into(),
            values,
            section: self.section(),
            message: self.message.clone(),
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ": {}[{}]", self.severity, self.rule)?;
        if let Some(k) = &self.key {
            write!(f, " {k}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A rule: its name, what it means, where DRIVERKIT.md explains it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub name: &'static str,
    pub meaning: &'static str,
    pub section: &'static str,
}

const S8: &str = "DRIVERKIT.md §8";
const S3: &str = "DRIVERKIT.md §3";
const MAC: &str = "MAC-BUILD.md";

/// Every rule `lint` and boot-time matching apply.
pub const RULES: &[Rule] = &[
    Rule {
        name: "PlistUnreadable",
        meaning: "the file is missing or not a property list",
        section: S8,
    },
    Rule {
        name: "BuildSettingUndefined",
        meaning:
            "a $(SETTING) placeholder names no build setting (Xcode would expand it to nothing)",
        section: S8,
    },
    Rule {
        name: "BundleMissingKey",
        meaning: "a CFBundle key a dext bundle needs is missing",
        section: S8,
    },
    Rule {
        name: "BundleMisspelledKey",
        meaning: "a top-level key is a near miss of a bundle key (the real key is named)",
        section: S8,
    },
    Rule { name: "BundlePackageType", meaning: "CFBundlePackageType is not DEXT", section: S8 },
    Rule {
        name: "PersonalityMissingKey",
        meaning: "IOKitPersonalities, or a key every SCSI controller personality needs, is missing",
        section: S8,
    },
    Rule {
        name: "PersonalityMisspelledKey",
        meaning: "a personality key is a near miss of a known key (the real key is named)",
        section: S8,
    },
    Rule {
        name: "PersonalityIOClass",
        meaning: "IOClass is not IOUserSCSIParallelInterfaceController",
        section: S8,
    },
    Rule {
        name: "PersonalityKernelBundle",
        meaning: "CFBundleIdentifierKernel is not com.apple.iokit.IOSCSIParallelFamily",
        section: S8,
    },
    Rule {
        name: "PersonalityProviderClass",
        meaning: "IOProviderClass is neither IOPCIDevice nor IOResources (a virtual HBA)",
        section: S8,
    },
    Rule {
        name: "PersonalityUserClass",
        meaning: "IOUserClass names no compiled class deriving from \
                  IOUserSCSIParallelInterfaceController",
        section: S8,
    },
    Rule {
        name: "PersonalityBundleIdentifier",
        meaning: "the personality's CFBundleIdentifier is not the bundle's",
        section: S8,
    },
    Rule {
        name: "PersonalityServerName",
        meaning: "IOUserServerName differs from the bundle identifier (warning)",
        section: S8,
    },
    Rule {
        name: "PersonalityValueType",
        meaning: "a personality key has the wrong type (e.g. IOPCITunnelCompatible not a Boolean)",
        section: S8,
    },
    Rule {
        name: "PersonalityPciMatchSyntax",
        meaning: "an IOPCI*Match string is not a list of 0xDDDDVVVV[&0xMASK] values",
        section: S8,
    },
    Rule {
        name: "PersonalityUserClientProperties",
        meaning: "UserClientProperties is not {IOClass = IOUserUserClient, IOUserClass = ...}, or \
                  its IOUserClass is no class of the dext deriving from IOUserClient",
        section: S8,
    },
    Rule {
        name: "PersonalityBringUpStage",
        meaning: "BringUpStage is not one of pipeline, fake-block, single-io, full",
        section: S8,
    },
    Rule {
        name: "PersonalityDriverSetting",
        meaning: "a driver setting (fake disk geometry, maximum task count) is out of range",
        section: S8,
    },
    Rule {
        name: "PersonalityNoMatch",
        meaning: "boot: no personality matches the simulated PCI device",
        section: S8,
    },
    Rule { name: "EntitlementMissing", meaning: "a required entitlement is missing", section: S8 },
    Rule {
        name: "EntitlementMisspelled",
        meaning: "an entitlement key is a near miss of a known one (the real key is named)",
        section: S8,
    },
    Rule {
        name: "EntitlementValue",
        meaning: "an entitlement has the wrong type or value",
        section: S8,
    },
    Rule {
        name: "EntitlementPciNoMatch",
        meaning: "boot: transport.pci does not cover the simulated PCI device",
        section: S8,
    },
    Rule {
        name: "EntitlementPciNoOverlap",
        meaning: "lint: transport.pci covers no device a PCI personality matches",
        section: S8,
    },
    Rule {
        name: "EntitlementUserClientAccess",
        meaning: "no entitlement lets the admin app open the dext's user client",
        section: S8,
    },
    Rule { name: "IigUnreadable", meaning: "an .iig file cannot be read or parsed", section: S3 },
    Rule {
        name: "UndeclaredQueueName",
        meaning: "SetDispatchQueue registers a name no QUEUENAME declares (kIOReturnBadArgument)",
        section: S3,
    },
    Rule {
        name: "QueueNotRegistered",
        meaning: "a QUEUENAME (the dext's or the SDK's) is never registered with SetDispatchQueue",
        section: S3,
    },
    Rule {
        name: "QueueNameUnresolved",
        meaning:
            "a SetDispatchQueue name is neither a string literal nor a #define of one (warning)",
        section: S3,
    },
    // project.yml (bundle/project.rs).
    Rule {
        name: "ProjectUnreadable",
        meaning: "project.yml is missing, not YAML, or has no targets",
        section: MAC,
    },
    Rule {
        name: "ProjectDextTarget",
        meaning: "the project has no driver-extension target (or more than one)",
        section: MAC,
    },
    Rule {
        name: "ProjectDextSdk",
        meaning: "the dext target's SDKROOT is not driverkit",
        section: MAC,
    },
    Rule {
        name: "ProjectDeploymentTarget",
        meaning: "DRIVERKIT_DEPLOYMENT_TARGET is missing or below 20.4 (SCSIControllerDriverKit)",
        section: MAC,
    },
    Rule {
        name: "ProjectBundleIdentifier",
        meaning:
            "the dext target's PRODUCT_BUNDLE_IDENTIFIER is not Info.plist's CFBundleIdentifier",
        section: MAC,
    },
    Rule {
        name: "ProjectDextInfoPlist",
        meaning: "the dext target's INFOPLIST_FILE is not the Info.plist lint checked",
        section: MAC,
    },
    Rule {
        name: "ProjectDextEntitlements",
        meaning:
            "the dext target's CODE_SIGN_ENTITLEMENTS is not the entitlements file lint checked",
        section: MAC,
    },
    Rule {
        name: "ProjectFrameworks",
        meaning: "the dext target does not link DriverKit, PCIDriverKit or SCSIControllerDriverKit",
        section: MAC,
    },
    Rule {
        name: "ProjectHostApp",
        meaning: "no application target embeds the dext in Contents/Library/SystemExtensions",
        section: MAC,
    },
    Rule {
        name: "ProjectAppEntitlements",
        meaning: "the host app's entitlements lack com.apple.developer.system-extension.install",
        section: MAC,
    },
];

/// Xcode build settings the bundle's `$(NAME)` placeholders are expanded with. The defaults
/// stand in for dkraid's Xcode target; `--set NAME=VALUE` changes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildSettings(pub BTreeMap<String, String>);

/// The dext's bundle identifier in the default build settings (a placeholder: a shipping
/// build uses its team's reverse-DNS prefix).
pub const DEFAULT_DEXT_BUNDLE_ID: &str = "org.dkraid.driver";

/// The development team in the default build settings (10 characters, as Apple's are).
pub const DEFAULT_DEVELOPMENT_TEAM: &str = "DKRAIDTEAM";

impl Default for BuildSettings {
    fn default() -> Self {
        let pairs = [
            ("PRODUCT_BUNDLE_IDENTIFIER", DEFAULT_DEXT_BUNDLE_ID),
            // A dext bundle is named after its bundle identifier (DRIVERKIT.md §8).
            ("PRODUCT_NAME", DEFAULT_DEXT_BUNDLE_ID),
            ("EXECUTABLE_NAME", DEFAULT_DEXT_BUNDLE_ID),
            ("PRODUCT_BUNDLE_PACKAGE_TYPE", "DEXT"),
            ("MARKETING_VERSION", "0.1.0"),
            ("CURRENT_PROJECT_VERSION", "1"),
            ("DEVELOPMENT_LANGUAGE", "en"),
            // The team the driver is built for: destructive admin commands need a client
            // signed by it (DkRaidAdminTeamIdentifier; raidctl's default --team-id).
            ("DEVELOPMENT_TEAM", DEFAULT_DEVELOPMENT_TEAM),
        ];
        BuildSettings(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }
}

impl BuildSettings {
    /// Apply `NAME=VALUE`.
    pub fn set(&mut self, assignment: &str) -> Result<(), String> {
        let (name, value) = assignment
            .split_once('=')
            .ok_or_else(|| format!("{assignment:?} is not NAME=VALUE"))?;
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(format!("{name:?} is not a build setting name"));
        }
        self.0.insert(name.to_string(), value.to_string());
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// The repository this test-bed was built from (the shipped bundle's home).
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The shipped bundle's files, relative to [`repo_root`].
pub const SHIPPED_PLIST: &str = "Info.plist";
pub const SHIPPED_DEXT_ENTITLEMENTS: &str = "entitlements/DkRaidDriver.entitlements";
pub const SHIPPED_APP_ENTITLEMENTS: &str = "entitlements/DkRaidAdmin.entitlements";
pub const SHIPPED_IIG_DIR: &str = "iig";
pub const SHIPPED_DEXT_DIR: &str = "dext";
/// The Mac build's XcodeGen spec (docs/MAC-BUILD.md).
pub const SHIPPED_PROJECT: &str = "project.yml";

/// A file to check: where to read it and how findings name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub path: PathBuf,
    pub display: String,
}

impl Source {
    /// A shipped file, named relative to the repository.
    pub fn shipped(relative: &str) -> Source {
        Source { path: repo_root().join(relative), display: relative.to_string() }
    }

    /// A file the user named, shown as given.
    pub fn given(path: &Path) -> Source {
        Source { path: path.to_path_buf(), display: path.display().to_string() }
    }

    /// `given` when `Some`, the shipped file otherwise.
    pub fn or_shipped(path: Option<&Path>, relative: &str) -> Source {
        path.map(Source::given).unwrap_or_else(|| Source::shipped(relative))
    }

    /// A file inside this source's directory, named the same way.
    pub fn child(&self, name: &str) -> Source {
        Source {
            path: self.path.join(name),
            display: Path::new(&self.display).join(name).display().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_is_unique_and_documented() {
        let mut names: Vec<_> = RULES.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RULES.len());
        let doc = std::fs::read_to_string(repo_root().join("docs/BUNDLE.md"))
            .expect("docs/BUNDLE.md documents the rules");
        for r in RULES {
            assert!(doc.contains(&format!("`{}`", r.name)), "docs/BUNDLE.md lacks {}", r.name);
        }
    }

    #[test]
    fn build_settings_accept_assignments() {
        let mut s = BuildSettings::default();
        assert_eq!(s.get("PRODUCT_BUNDLE_IDENTIFIER"), Some("org.dkraid.driver"));
        s.set("PRODUCT_BUNDLE_IDENTIFIER=com.example.raid").unwrap();
        assert_eq!(s.get("PRODUCT_BUNDLE_IDENTIFIER"), Some("com.example.raid"));
        s.set("EMPTY=").unwrap();
        assert_eq!(s.get("EMPTY"), Some(""));
        assert!(s.set("NOEQUALS").is_err());
        assert!(s.set("1BAD=x").is_err());
        assert!(s.set("BAD NAME=x").is_err());
    }

    #[test]
    fn findings_print_with_place_and_rule() {
        let f = Finding::error("PersonalityIOClass", "Info.plist", "m".into())
            .at_key("IOKitPersonalities:X:IOClass")
            .at_line(Some(7));
        assert_eq!(
            f.to_string(),
            "Info.plist:7: error[PersonalityIOClass] IOKitPersonalities:X:IOClass: m"
        );
        let v = f.to_violation("match personality");
        assert_eq!(v.values, "file=Info.plist key=IOKitPersonalities:X:IOClass line=7");
        assert_eq!(v.section, "DRIVERKIT.md §8");
        let q = Finding::warning("QueueNameUnresolved", "dext/a.cpp", "m".into());
        assert_eq!(q.section(), "DRIVERKIT.md §3");
        assert!(!q.is_error());
    }
}
