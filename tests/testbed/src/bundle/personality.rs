//! The bundle's `Info.plist`: the CFBundle keys a dext needs and each `IOKitPersonalities` entry
//! of a SCSI controller dext (DRIVERKIT.md §8), plus dkraid's own driver settings, which ride in
//! the personality and reach the dext through the registry (`CopyProperties`).

use plist::{Dictionary, Value};

use dkraid_core::limits::MAX_TASK_COUNT;
use dkraid_core::Stage;

use super::pci_match::{self, MATCH_KEYS};
use super::plist::PlistFile;
use super::spelling;
use super::Finding;

/// The family's kernel class every SCSI controller personality names in `IOClass`.
pub const FAMILY_CLASS: &str = "IOUserSCSIParallelInterfaceController";
/// The kext that provides [`FAMILY_CLASS`].
pub const FAMILY_KERNEL_BUNDLE: &str = "com.apple.iokit.IOSCSIParallelFamily";
/// `UserClientProperties`' `IOClass`.
pub const USER_CLIENT_CLASS: &str = "IOUserUserClient";

pub const PCI_PROVIDER: &str = "IOPCIDevice";
pub const RESOURCES_PROVIDER: &str = "IOResources";

/// dkraid's driver settings (optional; checked when present).
pub const BRING_UP_STAGE: &str = "BringUpStage";
pub const FAKE_DISK_BLOCK_SIZE: &str = "FakeDiskBlockSize";
pub const FAKE_DISK_CAPACITY_BYTES: &str = "FakeDiskCapacityBytes";
pub const MAXIMUM_TASK_COUNT: &str = "MaximumTaskCount";

/// Bundle keys: (key, required as an error; otherwise a warning when missing).
pub const BUNDLE_KEYS: &[(&str, bool)] = &[
    ("CFBundleIdentifier", true),
    ("CFBundleExecutable", true),
    ("CFBundlePackageType", true),
    ("CFBundleInfoDictionaryVersion", true),
    ("CFBundleName", true),
    ("CFBundleShortVersionString", true),
    ("CFBundleVersion", true),
    ("OSBundleUsageDescription", false),
];

/// Other top-level keys known to be legitimate (for misspelling suggestions).
const OTHER_BUNDLE_KEYS: &[&str] = &[
    "IOKitPersonalities",
    "CFBundleDevelopmentRegion",
    "CFBundleDisplayName",
    "CFBundleSupportedPlatforms",
    "NSHumanReadableCopyright",
    "OSMinimumDriverKitVersion",
    "OSBundleRequired",
    "LSMinimumSystemVersion",
    "BuildMachineOSBuild",
    "DTCompiler",
    "DTPlatformBuild",
    "DTPlatformName",
    "DTPlatformVersion",
    "DTSDKBuild",
    "DTSDKName",
    "DTXcode",
    "DTXcodeBuild",
];

/// Keys every SCSI controller personality needs, and what goes wrong without each.
pub const REQUIRED_PERSONALITY_KEYS: &[(&str, &str)] = &[
    (
        "CFBundleIdentifier",
        "the personality is not tied to the dext's bundle; use $(PRODUCT_BUNDLE_IDENTIFIER)",
    ),
    (
        "CFBundleIdentifierKernel",
        "without com.apple.iokit.IOSCSIParallelFamily the kernel cannot load \
         IOUserSCSIParallelInterfaceController and the personality never matches",
    ),
    (
        "IOClass",
        "the kernel has no class to instantiate; use IOUserSCSIParallelInterfaceController",
    ),
    ("IOUserClass", "DriverKit does not know which class of the dext to run"),
    (
        "IOUserServerName",
        "DriverKit does not know which dext process to launch; use the bundle identifier",
    ),
    ("IOProviderClass", "the personality matches no provider; use IOPCIDevice"),
];

/// Optional personality keys known to be legitimate (for misspelling suggestions).
const OTHER_PERSONALITY_KEYS: &[&str] = &[
    "IOPCIMatch",
    "IOPCIPrimaryMatch",
    "IOPCISecondaryMatch",
    "IOPCIClassMatch",
    "IOPCITunnelCompatible",
    "IOPCIPauseCompatible",
    "UserClientProperties",
    "IOMatchCategory",
    "IOProbeScore",
    "IOResourceMatch",
    "IONameMatch",
    "IOPropertyMatch",
    "IOMatchDefer",
    "IOKitDebug",
    BRING_UP_STAGE,
    FAKE_DISK_BLOCK_SIZE,
    FAKE_DISK_CAPACITY_BYTES,
    MAXIMUM_TASK_COUNT,
];

/// Block sizes the core's fake disk accepts (`dk_core_config.fake_block_size`).
pub const FAKE_DISK_BLOCK_SIZES: [u64; 4] = [512, 1024, 2048, 4096];

/// Booleans a personality may carry.
const BOOLEAN_KEYS: &[&str] = &["IOPCITunnelCompatible", "IOPCIPauseCompatible"];

/// A class compiled into the dext (or declared in its `.iig` files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassDecl {
    pub name: String,
    pub superclass: String,
}

/// The classes a personality's `IOUserClass` may name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassCatalog {
    /// Where they come from, for messages: "compiled into the dext", "declared in iig".
    pub origin: String,
    pub classes: Vec<ClassDecl>,
}

impl ClassCatalog {
    /// Whether `name` is declared, and if so whether it derives from [`FAMILY_CLASS`]
    /// (following superclasses declared in the catalog).
    pub fn is_controller(&self, name: &str) -> Option<bool> {
        self.derives_from(name, FAMILY_CLASS)
    }

    /// Whether `name` is declared, and if so whether it derives from `base` (an SDK class),
    /// following superclasses declared in the catalog.
    pub fn derives_from(&self, name: &str, base: &str) -> Option<bool> {
        let mut current = self.classes.iter().find(|c| c.name == name)?;
        for _ in 0..=self.classes.len() {
            if current.superclass == base {
                return Some(true);
            }
            match self.classes.iter().find(|c| c.name == current.superclass) {
                Some(next) => current = next,
                None => return Some(false),
            }
        }
        Some(false)
    }

    fn names(&self) -> Vec<&str> {
        self.classes.iter().map(|c| c.name.as_str()).collect()
    }
}

/// One personality.
#[derive(Clone, Debug)]
pub struct Personality {
    pub name: String,
    /// Key path of the personality in the file (empty for a bare personality file).
    pub prefix: Vec<String>,
    pub dict: Dictionary,
}

impl Personality {
    pub fn path<'a>(&'a self, key: &'a str) -> Vec<&'a str> {
        let mut p: Vec<&str> = self.prefix.iter().map(String::as_str).collect();
        p.push(key);
        p
    }

    pub fn string(&self, key: &str) -> Option<&str> {
        self.dict.get(key).and_then(Value::as_string)
    }

    pub fn provider(&self) -> Option<&str> {
        self.string("IOProviderClass")
    }
}

/// What the bundle says, and what is wrong with it.
#[derive(Clone, Debug, Default)]
pub struct BundleCheck {
    /// The bundle's CFBundleIdentifier (after substitution).
    pub bundle_identifier: Option<String>,
    pub personalities: Vec<Personality>,
    pub findings: Vec<Finding>,
}

impl BundleCheck {
    /// Whether any personality matches a PCI device (and so needs `transport.pci`).
    pub fn needs_pci(&self) -> bool {
        self.personalities.is_empty()
            || self.personalities.iter().any(|p| p.provider() != Some(RESOURCES_PROVIDER))
    }

    /// Whether any personality publishes a user client.
    pub fn has_user_client(&self) -> bool {
        self.personalities.iter().any(|p| p.dict.contains_key("UserClientProperties"))
    }
}

/// Whether the file is a bare personality (a dictionary with IOClass/IOProviderClass/...
/// at its root) rather than an `Info.plist`.
pub fn is_bare_personality(root: &Dictionary) -> bool {
    !root.contains_key("IOKitPersonalities")
        && ["IOClass", "IOUserClass", "IOProviderClass"].iter().any(|k| root.contains_key(k))
}

/// Check a loaded, substituted `Info.plist` (or a bare personality). `classes`: the classes
/// `IOUserClass` may name; None skips that check.
pub fn check(plist: &PlistFile, classes: Option<&ClassCatalog>) -> BundleCheck {
    let root = plist.dict();
    let mut out = BundleCheck::default();
    if is_bare_personality(root) {
        let name = plist
            .source
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "personality".into());
        out.bundle_identifier =
            root.get("CFBundleIdentifier").and_then(Value::as_string).map(str::to_string);
        out.personalities.push(Personality { name, prefix: Vec::new(), dict: root.clone() });
    } else {
        check_bundle_keys(plist, &mut out);
        collect_personalities(plist, &mut out);
    }
    let bundle_id = out.bundle_identifier.clone();
    for p in &out.personalities {
        let mut f = check_personality(plist, p, bundle_id.as_deref(), classes);
        out.findings.append(&mut f);
    }
    out
}

fn check_bundle_keys(plist: &PlistFile, out: &mut BundleCheck) {
    let root = plist.dict();
    let known: Vec<&str> =
        BUNDLE_KEYS.iter().map(|(k, _)| *k).chain(OTHER_BUNDLE_KEYS.iter().copied()).collect();
    let mut misspelled_of = Vec::new();
    for key in root.keys() {
        if let Some(meant) = spelling::suggest(key, &known) {
            if !root.contains_key(meant) {
                misspelled_of.push(meant);
                out.findings.push(plist.finding_at(
                    "BundleMisspelledKey",
                    true,
                    &[key],
                    format!(
                        "{key:?} is not a bundle key — did you mean {meant:?}? The bundle has \
                         no {meant}."
                    ),
                ));
            }
        }
    }
    for (key, required) in BUNDLE_KEYS {
        if root.contains_key(key) || misspelled_of.contains(key) {
            continue;
        }
        let why = match *key {
            "CFBundleIdentifier" => "sysextd cannot install a bundle without an identifier",
            "CFBundleExecutable" => "DriverKit cannot find the dext's executable",
            "CFBundlePackageType" => "a dext bundle's package type is DEXT",
            "OSBundleUsageDescription" => {
                "System Settings shows it when the user approves the extension"
            }
            _ => "system extension installation and upgrades read it",
        };
        let f = plist.finding_at(
            "BundleMissingKey",
            *required,
            &[key],
            format!("{key} is missing: {why}"),
        );
        out.findings.push(f);
    }
    if let Some(v) = root.get("CFBundlePackageType") {
        if v.as_string() != Some("DEXT") {
            out.findings.push(plist.finding_at(
                "BundlePackageType",
                true,
                &["CFBundlePackageType"],
                format!(
                    "CFBundlePackageType is {}: a DriverKit extension's is DEXT \
                     ($(PRODUCT_BUNDLE_PACKAGE_TYPE) in a DriverKit target)",
                    describe(v)
                ),
            ));
        }
    }
    out.bundle_identifier =
        root.get("CFBundleIdentifier").and_then(Value::as_string).map(str::to_string);
}

fn collect_personalities(plist: &PlistFile, out: &mut BundleCheck) {
    let root = plist.dict();
    let Some(value) = root.get("IOKitPersonalities") else {
        // A misspelled IOKitPersonalities was reported as BundleMisspelledKey.
        let misspelled = out.findings.iter().any(|f| {
            f.rule == "BundleMisspelledKey" && f.message.contains("\"IOKitPersonalities\"?")
        });
        if !misspelled {
            out.findings.push(
                plist.finding_at(
                    "PersonalityMissingKey",
                    true,
                    &["IOKitPersonalities"],
                    "IOKitPersonalities is missing: the kernel has nothing to match the dext with"
                        .into(),
                ),
            );
        }
        return;
    };
    let Some(dict) = value.as_dictionary() else {
        out.findings.push(plist.finding_at(
            "PersonalityValueType",
            true,
            &["IOKitPersonalities"],
            format!(
                "IOKitPersonalities must be a dictionary of personalities; found {}",
                kind(value)
            ),
        ));
        return;
    };
    if dict.is_empty() {
        out.findings.push(plist.finding_at(
            "PersonalityMissingKey",
            true,
            &["IOKitPersonalities"],
            "IOKitPersonalities is empty: the kernel has nothing to match the dext with".into(),
        ));
    }
    for (name, p) in dict.iter() {
        match p.as_dictionary() {
            Some(d) => out.personalities.push(Personality {
                name: name.clone(),
                prefix: vec!["IOKitPersonalities".into(), name.clone()],
                dict: d.clone(),
            }),
            None => out.findings.push(plist.finding_at(
                "PersonalityValueType",
                true,
                &["IOKitPersonalities", name],
                format!("personality {name:?} must be a dictionary; found {}", kind(p)),
            )),
        }
    }
}

fn known_personality_keys() -> Vec<&'static str> {
    REQUIRED_PERSONALITY_KEYS
        .iter()
        .map(|(k, _)| *k)
        .chain(OTHER_PERSONALITY_KEYS.iter().copied())
        .collect()
}

/// Check one personality.
pub fn check_personality(
    plist: &PlistFile,
    p: &Personality,
    bundle_id: Option<&str>,
    classes: Option<&ClassCatalog>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let err = |rule: &'static str, key: &str, message: String| {
        plist.finding_at(rule, true, &p.path(key), message)
    };
    let known = known_personality_keys();

    // Near misses of known keys: the kernel ignores them silently.
    let mut misspelled_of: Vec<&str> = Vec::new();
    for key in p.dict.keys() {
        if let Some(meant) = spelling::suggest(key, &known) {
            if !p.dict.contains_key(meant) {
                misspelled_of.push(meant);
                out.push(err(
                    "PersonalityMisspelledKey",
                    key,
                    format!(
                        "{key:?} is not a personality key — did you mean {meant:?}? The kernel \
                         ignores unknown keys, so this personality has no {meant}."
                    ),
                ));
            }
        }
    }

    for (key, why) in REQUIRED_PERSONALITY_KEYS {
        if !p.dict.contains_key(key) && !misspelled_of.contains(key) {
            out.push(err("PersonalityMissingKey", key, format!("{key} is missing: {why}")));
        }
    }
    // Required strings of the wrong type.
    for (key, _) in REQUIRED_PERSONALITY_KEYS {
        if let Some(v) = p.dict.get(key) {
            if v.as_string().is_none() {
                out.push(err(
                    "PersonalityValueType",
                    key,
                    format!("{key} must be a string; found {}", kind(v)),
                ));
            }
        }
    }

    if let Some(class) = p.string("IOClass") {
        if class != FAMILY_CLASS {
            let what = if class == "IOUserService" {
                "IOUserService is for dexts without a family".to_string()
            } else if classes.is_some_and(|c| c.is_controller(class).is_some()) {
                format!("{class} is the dext's own class, which belongs in IOUserClass")
            } else {
                format!("the kernel would instantiate {class}")
            };
            out.push(err(
                "PersonalityIOClass",
                "IOClass",
                format!(
                    "IOClass is {class:?}: a SCSI controller dext's personality must name the \
                     family's kernel class {FAMILY_CLASS} ({what})"
                ),
            ));
        }
    }

    if let Some(kernel) = p.string("CFBundleIdentifierKernel") {
        if kernel != FAMILY_KERNEL_BUNDLE {
            out.push(err(
                "PersonalityKernelBundle",
                "CFBundleIdentifierKernel",
                format!(
                    "CFBundleIdentifierKernel is {kernel:?}: it must be {FAMILY_KERNEL_BUNDLE}, \
                     the kext that provides {FAMILY_CLASS}; otherwise the personality never \
                     matches"
                ),
            ));
        }
    }

    match p.provider() {
        Some(PCI_PROVIDER) => {
            let has_pci_key = MATCH_KEYS.iter().any(|k| p.dict.contains_key(k.name));
            let misspelled_pci = MATCH_KEYS.iter().any(|k| misspelled_of.contains(&k.name));
            if !has_pci_key && !misspelled_pci {
                out.push(err(
                    "PersonalityMissingKey",
                    "IOPCIPrimaryMatch",
                    "IOPCIPrimaryMatch (or IOPCIMatch) is missing: an IOPCIDevice personality \
                     without a PCI match key offers the dext every PCI device"
                        .into(),
                ));
            }
        }
        Some(RESOURCES_PROVIDER)
            if !p.dict.contains_key("IOResourceMatch")
                && !misspelled_of.contains(&"IOResourceMatch") =>
        {
            out.push(err(
                "PersonalityMissingKey",
                "IOResourceMatch",
                "IOResourceMatch is missing: a virtual HBA on IOResources matches with \
                 IOResourceMatch = IOKit"
                    .into(),
            ));
        }
        Some(RESOURCES_PROVIDER) => {}
        Some(other) => out.push(err(
            "PersonalityProviderClass",
            "IOProviderClass",
            format!(
                "IOProviderClass is {other:?}: a SCSI controller dext attaches to {PCI_PROVIDER} \
                 (or {RESOURCES_PROVIDER} for a virtual HBA)"
            ),
        )),
        None => {}
    }

    for key in MATCH_KEYS {
        let Some(v) = p.dict.get(key.name) else { continue };
        match v.as_string() {
            Some(text) => {
                if let Err(e) = pci_match::parse(text, key.default_mask) {
                    out.push(err(
                        "PersonalityPciMatchSyntax",
                        key.name,
                        format!("{} {text:?}: {e}", key.name),
                    ));
                }
            }
            None => out.push(err(
                "PersonalityPciMatchSyntax",
                key.name,
                format!(
                    "{} must be a string like \"0x10f01af4\" (device << 16 | vendor); found {}",
                    key.name,
                    kind(v)
                ),
            )),
        }
    }

    if let (Some(user_class), Some(catalog)) = (p.string("IOUserClass"), classes) {
        match catalog.is_controller(user_class) {
            Some(true) => {}
            Some(false) => out.push(err(
                "PersonalityUserClass",
                "IOUserClass",
                format!(
                    "IOUserClass {user_class:?} does not derive from {FAMILY_CLASS}: the \
                     family cannot drive it"
                ),
            )),
            None => {
                let names = catalog.names();
                let hint = spelling::suggest(user_class, &names)
                    .map(|s| format!(" — did you mean {s:?}?"))
                    .unwrap_or_default();
                out.push(err(
                    "PersonalityUserClass",
                    "IOUserClass",
                    format!(
                        "IOUserClass {user_class:?} names no class {} ({}){hint}",
                        catalog.origin,
                        if names.is_empty() { "none".to_string() } else { names.join(", ") }
                    ),
                ));
            }
        }
    }

    if let Some(bundle_id) = bundle_id {
        if let Some(id) = p.string("CFBundleIdentifier") {
            if id != bundle_id {
                out.push(err(
                    "PersonalityBundleIdentifier",
                    "CFBundleIdentifier",
                    format!(
                        "the personality's CFBundleIdentifier {id:?} is not the bundle's \
                         {bundle_id:?}: the kernel looks for the dext in another bundle"
                    ),
                ));
            }
        }
        if let Some(server) = p.string("IOUserServerName") {
            if server != bundle_id {
                out.push(plist.finding_at(
                    "PersonalityServerName",
                    false,
                    &p.path("IOUserServerName"),
                    format!(
                        "IOUserServerName {server:?} differs from the bundle identifier \
                         {bundle_id:?}; Apple's templates use $(PRODUCT_BUNDLE_IDENTIFIER) for both"
                    ),
                ));
            }
        }
    }

    for key in BOOLEAN_KEYS {
        if let Some(v) = p.dict.get(key) {
            if v.as_boolean().is_none() {
                out.push(err(
                    "PersonalityValueType",
                    key,
                    format!("{key} must be a Boolean (<true/>); found {}", kind(v)),
                ));
            }
        }
    }

    if let Some(v) = p.dict.get("UserClientProperties") {
        out.extend(check_user_client(plist, p, v, classes));
    }

    out.extend(check_driver_settings(plist, p));
    out
}

fn check_user_client(
    plist: &PlistFile,
    p: &Personality,
    v: &Value,
    classes: Option<&ClassCatalog>,
) -> Vec<Finding> {
    let path = p.path("UserClientProperties");
    let f =
        |message: String| plist.finding_at("PersonalityUserClientProperties", true, &path, message);
    let Some(d) = v.as_dictionary() else {
        return vec![f(format!(
            "UserClientProperties must be a dictionary {{IOClass = {USER_CLIENT_CLASS}, \
             IOUserClass = <your user client>}}; found {}",
            kind(v)
        ))];
    };
    let mut out = Vec::new();
    match d.get("IOClass").and_then(Value::as_string) {
        Some(USER_CLIENT_CLASS) => {}
        Some(other) => out.push(f(format!(
            "UserClientProperties' IOClass is {other:?}: NewUserClient creates the client from \
             it, and a dext's user client is {USER_CLIENT_CLASS}"
        ))),
        None => out.push(f(format!(
            "UserClientProperties has no IOClass: NewUserClient needs IOClass = {USER_CLIENT_CLASS}"
        ))),
    }
    match (d.get("IOUserClass").and_then(Value::as_string), classes) {
        (None, _) => out.push(f(
            "UserClientProperties has no IOUserClass: NewUserClient needs the dext's user-client \
             class"
                .into(),
        )),
        (Some(name), Some(catalog)) => match catalog.derives_from(name, "IOUserClient") {
            Some(true) => {}
            Some(false) => out.push(f(format!(
                "UserClientProperties' IOUserClass {name:?} does not derive from IOUserClient: \
                 IOService::Create makes it, and NewUserClient cannot hand it out"
            ))),
            None => {
                let names = catalog.names();
                let hint = spelling::suggest(name, &names)
                    .map(|s| format!(" — did you mean {s:?}?"))
                    .unwrap_or_default();
                out.push(f(format!(
                    "UserClientProperties' IOUserClass {name:?} names no class {} ({}){hint}: no \
                     app can connect",
                    catalog.origin,
                    if names.is_empty() { "none".to_string() } else { names.join(", ") }
                )));
            }
        },
        (Some(_), None) => {}
    }
    out
}

/// `BringUpStage` must name a stage; the fake disk's geometry and the task count must be in
/// range. All optional: the dext defaults them.
fn check_driver_settings(plist: &PlistFile, p: &Personality) -> Vec<Finding> {
    let mut out = Vec::new();
    let err = |rule: &'static str, key: &str, message: String| {
        plist.finding_at(rule, true, &p.path(key), message)
    };
    if let Some(v) = p.dict.get(BRING_UP_STAGE) {
        match v.as_string() {
            Some(name) => {
                if Stage::parse(name).is_err() {
                    out.push(err(
                        "PersonalityBringUpStage",
                        BRING_UP_STAGE,
                        format!(
                            "BringUpStage is {name:?}: not a bring-up stage; valid stages are {}",
                            stage_names()
                        ),
                    ));
                }
            }
            None => out.push(err(
                "PersonalityBringUpStage",
                BRING_UP_STAGE,
                format!(
                    "BringUpStage must be a string (the dext reads an OSString); found {}",
                    kind(v)
                ),
            )),
        }
    }
    let integer = |key: &str| -> Result<Option<u64>, Finding> {
        match p.dict.get(key) {
            None => Ok(None),
            Some(v) => v.as_unsigned_integer().map(Some).ok_or_else(|| {
                err(
                    "PersonalityDriverSetting",
                    key,
                    format!("{key} must be a non-negative <integer>; found {}", describe(v)),
                )
            }),
        }
    };
    // dk_core_config's fake_block_size and fake_capacity_bytes, as the core validates them.
    let mut block_size = None;
    match integer(FAKE_DISK_BLOCK_SIZE) {
        Ok(Some(bs)) if !FAKE_DISK_BLOCK_SIZES.contains(&bs) => out.push(err(
            "PersonalityDriverSetting",
            FAKE_DISK_BLOCK_SIZE,
            format!("FakeDiskBlockSize is {bs}: the fake disk's block size is 512, 1024, 2048 or 4096 bytes"),
        )),
        Ok(bs) => block_size = bs,
        Err(f) => out.push(f),
    }
    match integer(FAKE_DISK_CAPACITY_BYTES) {
        Ok(Some(0)) => out.push(err(
            "PersonalityDriverSetting",
            FAKE_DISK_CAPACITY_BYTES,
            "FakeDiskCapacityBytes is 0: the fake disk needs at least one block".into(),
        )),
        Ok(Some(n)) if n % block_size.unwrap_or(512) != 0 => out.push(err(
            "PersonalityDriverSetting",
            FAKE_DISK_CAPACITY_BYTES,
            format!(
                "FakeDiskCapacityBytes is {n}: not a whole number of {}-byte blocks",
                block_size.unwrap_or(512)
            ),
        )),
        Ok(_) => {}
        Err(f) => out.push(f),
    }
    match integer(MAXIMUM_TASK_COUNT) {
        Ok(Some(n)) if n == 0 || n > u64::from(MAX_TASK_COUNT) => out.push(err(
            "PersonalityDriverSetting",
            MAXIMUM_TASK_COUNT,
            format!(
                "MaximumTaskCount is {n}: the core maps 1 to {MAX_TASK_COUNT} tasks \
                 (UserReportMaximumTaskCount, then UserMapHBAData once per task)"
            ),
        )),
        Ok(_) => {}
        Err(f) => out.push(f),
    }
    out
}

pub fn stage_names() -> String {
    Stage::ALL.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
}

/// "a string", "an integer", ...
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Boolean(_) => "a Boolean",
        Value::Dictionary(_) => "a dictionary",
        Value::Array(_) => "an array",
        Value::Data(_) => "data",
        Value::Date(_) => "a date",
        Value::Real(_) => "a real number",
        _ => "a UID",
    }
}

/// A value for messages: strings quoted, scalars printed, containers by kind.
pub fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Integer(i) => format!("the integer {i}"),
        Value::Boolean(b) => format!("the Boolean {b}"),
        Value::Real(r) => format!("the real number {r}"),
        other => kind(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BuildSettings, Source};
    use super::*;

    fn dkraid_classes() -> ClassCatalog {
        ClassCatalog {
            origin: "compiled into the dext".into(),
            classes: vec![
                ClassDecl { name: "DkRaidController".into(), superclass: FAMILY_CLASS.into() },
                ClassDecl { name: "DkRaidUserClient".into(), superclass: "IOUserClient".into() },
            ],
        }
    }

    fn shipped_with(edit: impl FnOnce(&mut String)) -> PlistFile {
        let path = super::super::repo_root().join("Info.plist");
        let mut text = std::fs::read_to_string(path).unwrap();
        edit(&mut text);
        let mut p = PlistFile::parse(
            &Source { path: "Info.plist".into(), display: "Info.plist".into() },
            text.as_bytes(),
        )
        .unwrap();
        assert!(p.substitute(&BuildSettings::default()).is_empty());
        p
    }

    fn rules(c: &BundleCheck) -> Vec<(&str, Option<&str>)> {
        c.findings.iter().map(|f| (f.rule, f.key.as_deref())).collect()
    }

    #[test]
    fn the_shipped_plist_is_clean() {
        let c = check(&shipped_with(|_| {}), Some(&dkraid_classes()));
        assert!(c.findings.is_empty(), "{:#?}", c.findings);
        assert_eq!(c.bundle_identifier.as_deref(), Some("org.dkraid.driver"));
        assert_eq!(c.personalities.len(), 1);
        assert_eq!(c.personalities[0].name, "DkRaidController");
        assert!(c.needs_pci() && c.has_user_client());
    }

    #[test]
    fn wrong_values_are_named() {
        let c = check(
            &shipped_with(|t| {
                *t = t
                    .replace(
                        "<string>IOUserSCSIParallelInterfaceController</string>",
                        "<string>IOUserService</string>",
                    )
                    .replace(
                        "<string>com.apple.iokit.IOSCSIParallelFamily</string>",
                        "<string>com.apple.iokit.IOSCSIFamily</string>",
                    )
                    .replace(
                        "<string>DkRaidController</string>",
                        "<string>DkRaidControler</string>",
                    )
                    .replace("<string>pipeline</string>", "<string>stage0</string>")
                    .replace("<integer>512</integer>", "<integer>520</integer>")
                    .replace("<integer>1099511627776</integer>", "<integer>1000</integer>")
                    .replace("<integer>128</integer>", "<integer>0</integer>");
            }),
            Some(&dkraid_classes()),
        );
        let k = |s: &str| Some(format!("IOKitPersonalities:DkRaidController:{s}"));
        let got: Vec<(&str, Option<String>)> =
            c.findings.iter().map(|f| (f.rule, f.key.clone())).collect();
        assert_eq!(
            got,
            [
                ("PersonalityIOClass", k("IOClass")),
                ("PersonalityKernelBundle", k("CFBundleIdentifierKernel")),
                ("PersonalityUserClass", k("IOUserClass")),
                ("PersonalityBringUpStage", k("BringUpStage")),
                ("PersonalityDriverSetting", k("FakeDiskBlockSize")),
                ("PersonalityDriverSetting", k("FakeDiskCapacityBytes")),
                ("PersonalityDriverSetting", k("MaximumTaskCount")),
            ]
        );
        assert_eq!(
            c.findings[0].message,
            "IOClass is \"IOUserService\": a SCSI controller dext's personality must name the \
             family's kernel class IOUserSCSIParallelInterfaceController (IOUserService is for \
             dexts without a family)"
        );
        assert_eq!(
            c.findings[2].message,
            "IOUserClass \"DkRaidControler\" names no class compiled into the dext \
             (DkRaidController, DkRaidUserClient) — did you mean \"DkRaidController\"?"
        );
        assert_eq!(
            c.findings[3].message,
            "BringUpStage is \"stage0\": not a bring-up stage; valid stages are pipeline, \
             fake-block, single-io, full"
        );
    }

    #[test]
    fn missing_and_misspelled_keys() {
        let c = check(
            &shipped_with(|t| {
                *t = t
                    .replace("<key>CFBundleIdentifierKernel</key>\n\t\t\t<string>com.apple.iokit.IOSCSIParallelFamily</string>\n", "")
                    .replace("<key>IOPCIPrimaryMatch</key>", "<key>IOPCIPrimaryMacth</key>")
                    .replace("<key>CFBundleExecutable</key>", "<key>CFBundleExecutible</key>");
            }),
            Some(&dkraid_classes()),
        );
        assert_eq!(
            rules(&c),
            [
                ("BundleMisspelledKey", Some("CFBundleExecutible")),
                (
                    "PersonalityMisspelledKey",
                    Some("IOKitPersonalities:DkRaidController:IOPCIPrimaryMacth")
                ),
                (
                    "PersonalityMissingKey",
                    Some("IOKitPersonalities:DkRaidController:CFBundleIdentifierKernel")
                ),
            ]
        );
        assert_eq!(
            c.findings[1].message,
            "\"IOPCIPrimaryMacth\" is not a personality key — did you mean \"IOPCIPrimaryMatch\"? \
             The kernel ignores unknown keys, so this personality has no IOPCIPrimaryMatch."
        );
    }

    #[test]
    fn class_catalogs_follow_superclasses() {
        let cat = ClassCatalog {
            origin: "declared in iig".into(),
            classes: vec![
                ClassDecl { name: "Base".into(), superclass: FAMILY_CLASS.into() },
                ClassDecl { name: "Derived".into(), superclass: "Base".into() },
                ClassDecl { name: "Other".into(), superclass: "IOService".into() },
                ClassDecl { name: "Loop".into(), superclass: "Loop".into() },
            ],
        };
        assert_eq!(cat.is_controller("Base"), Some(true));
        assert_eq!(cat.is_controller("Derived"), Some(true));
        assert_eq!(cat.is_controller("Other"), Some(false));
        assert_eq!(cat.is_controller("Loop"), Some(false));
        assert_eq!(cat.is_controller("Nope"), None);
    }

    #[test]
    fn a_bare_personality_file_is_one_personality() {
        let xml = r#"<plist version="1.0"><dict>
<key>IOClass</key><string>IOUserSCSIParallelInterfaceController</string>
<key>IOProviderClass</key><string>IOResources</string>
</dict></plist>"#;
        let p = PlistFile::parse(
            &Source { path: "/tmp/virtual.plist".into(), display: "v.plist".into() },
            xml.as_bytes(),
        )
        .unwrap();
        let c = check(&p, None);
        assert_eq!(c.personalities[0].name, "virtual");
        assert!(!c.needs_pci());
        let missing: Vec<_> = c
            .findings
            .iter()
            .filter(|f| f.rule == "PersonalityMissingKey")
            .map(|f| f.key.clone().unwrap())
            .collect();
        assert_eq!(
            missing,
            [
                "CFBundleIdentifier",
                "CFBundleIdentifierKernel",
                "IOUserClass",
                "IOUserServerName",
                "IOResourceMatch"
            ]
        );
    }
}
