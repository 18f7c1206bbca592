//! The Mac build's XcodeGen spec (`project.yml`) against the bundle: a project that builds a
//! dext whose bundle identifier, `Info.plist` or entitlements differ from the ones the rest of
//! `lint` checked, that forgets a DriverKit framework, targets a DriverKit older than
//! SCSIControllerDriverKit, or whose host app does not embed the dext or may not install it,
//! builds fine in Xcode and then fails on the Mac without a useful word. Each of those is a
//! finding here, in `project.yml` (key `targets:<target>:settings:base:<SETTING>` style, with
//! its line) or in the file it names.
//!
//! What is read, as XcodeGen reads it: `targets` (a mapping of target name to target), each
//! target's `type`, `settings` (flat, or `base` + `configs:<name>`; the project's top-level
//! `settings` apply where a target sets nothing), `dependencies` (`sdk:`, `framework:`,
//! `target:` with `embed` and `copy`), `entitlements: {path, properties}` and
//! `options:bundleIdPrefix`. `$(NAME)` in a setting is expanded with the target's and the
//! project's own settings plus `SRCROOT` (the project's directory) and `TARGET_NAME`. Not read:
//! `include`d files, target templates and `.xcconfig` files (a setting only they define is
//! reported missing, saying so).

use std::path::{Path, PathBuf};

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};

use super::plist::{self, PlistFile};
use super::{BuildSettings, Finding, Source};

/// The lowest `DRIVERKIT_DEPLOYMENT_TARGET`: SCSIControllerDriverKit first shipped in 20.4.
pub const MIN_DRIVERKIT: (u32, u32) = (20, 4);
/// The frameworks a PCI SCSI controller dext links.
pub const REQUIRED_FRAMEWORKS: [&str; 3] = ["DriverKit", "PCIDriverKit", "SCSIControllerDriverKit"];
/// The entitlement an app needs to submit an `OSSystemExtensionRequest`.
pub const INSTALL_ENTITLEMENT: &str = "com.apple.developer.system-extension.install";

const DEXT_TYPES: [&str; 2] = ["driver-extension", "com.apple.product-type.driver-extension"];
const APP_TYPES: [&str; 2] = ["application", "com.apple.product-type.application"];

/// What the project is checked against: the files and identifier the rest of `lint` used.
#[derive(Clone, Copy, Debug)]
pub struct Against<'a> {
    /// The bundle's `Info.plist`.
    pub plist: &'a Source,
    /// The dext's entitlements.
    pub entitlements: &'a Source,
    /// `Info.plist`'s `CFBundleIdentifier`, expanded with lint's build settings (None when the
    /// plist could not be read or has none: the comparison is then skipped).
    pub bundle_identifier: Option<&'a str>,
}

/// Check `project` (an XcodeGen `project.yml`) against the bundle.
pub fn check(project: &Source, against: Against<'_>) -> Vec<Finding> {
    match Project::load(project) {
        Ok(p) => p.check(against),
        Err(f) => vec![f],
    }
}

type Node = MarkedYamlOwned;

/// A loaded `project.yml`.
struct Project {
    source: Source,
    /// The text, as characters (saphyr's markers count characters).
    chars: Vec<char>,
    root: Node,
    /// The directory relative paths in the project are resolved against (`SRCROOT`).
    dir: PathBuf,
}

/// One definition of a build setting: its text (expanded), where it is.
#[derive(Clone, Debug)]
struct Setting {
    value: String,
    key: String,
    line: usize,
    /// Names `$(NAME)` referred to that nothing defines.
    undefined: Vec<String>,
}

/// A target of the project.
struct Target<'a> {
    name: String,
    node: &'a Node,
}

fn get<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    node.data.as_mapping_get(key)
}

fn line(node: &Node) -> usize {
    node.span.start.line()
}

fn entries(node: &Node) -> Vec<(String, &Node)> {
    match node.data.as_mapping() {
        Some(map) => {
            map.iter().filter_map(|(k, v)| Some((k.data.as_str()?.to_string(), v))).collect()
        }
        None => Vec::new(),
    }
}

impl Project {
    fn load(source: &Source) -> Result<Project, Finding> {
        let file = &source.display;
        let unreadable = |m: String| Finding::error("ProjectUnreadable", file, m);
        let text = std::fs::read_to_string(&source.path)
            .map_err(|e| unreadable(format!("cannot read {file}: {e}")))?;
        let docs = Node::load_from_str(&text).map_err(|e| {
            unreadable(format!("{file} is not YAML: {e}")).at_line(Some(e.marker().line()))
        })?;
        let Some(root) = docs.into_iter().next() else {
            return Err(unreadable(format!("{file} is empty")));
        };
        if root.data.as_mapping().is_none() {
            return Err(unreadable(format!(
                "{file}: the top level is not a mapping (an XcodeGen spec has name:, targets:, …)"
            ))
            .at_line(Some(line(&root))));
        }
        match get(&root, "targets") {
            Some(t) if t.data.as_mapping().is_some() => {}
            Some(t) => {
                return Err(unreadable(format!("{file}: targets is not a mapping of targets"))
                    .at_key("targets")
                    .at_line(Some(line(t))))
            }
            None => {
                return Err(unreadable(format!("{file} has no targets"))
                    .at_key("targets")
                    .at_line(Some(line(&root))))
            }
        }
        let dir = source
            .path
            .parent()
            .map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Ok(Project { source: source.clone(), chars: text.chars().collect(), root, dir })
    }

    fn file(&self) -> &str {
        &self.source.display
    }

    fn error(&self, rule: &'static str, key: &str, line: usize, message: String) -> Finding {
        Finding::error(rule, self.file(), message).at_key(key).at_line(Some(line))
    }

    /// A scalar as written: strings as they are, numbers and Booleans as in the source (so
    /// that `20.10` stays `20.10`).
    fn scalar(&self, node: &Node) -> Option<String> {
        match &node.data {
            YamlDataOwned::Value(ScalarOwned::String(s)) => Some(s.clone()),
            YamlDataOwned::Representation(s, _, _) => Some(s.clone()),
            YamlDataOwned::Value(ScalarOwned::Null) => None,
            YamlDataOwned::Value(_) => {
                let (start, end) = (node.span.start.index(), node.span.end.index());
                let text: String = self.chars.get(start..end)?.iter().collect();
                Some(text.trim().to_string())
            }
            YamlDataOwned::Tagged(_, inner) => self.scalar(inner),
            _ => None,
        }
    }

    /// A setting's value: a scalar, or a list's items joined by spaces (as Xcode joins them).
    fn words(&self, node: &Node) -> Option<String> {
        match node.data.as_sequence() {
            Some(items) => {
                let words: Vec<String> = items.iter().filter_map(|i| self.scalar(i)).collect();
                Some(words.join(" "))
            }
            None => self.scalar(node),
        }
    }

    fn targets(&self) -> Vec<Target<'_>> {
        let targets = get(&self.root, "targets").expect("checked in load");
        entries(targets).into_iter().map(|(name, node)| Target { name, node }).collect()
    }

    fn target_type(&self, t: &Target<'_>) -> Option<String> {
        get(t.node, "type").and_then(|n| self.scalar(n))
    }

    /// Every definition of `name` in a settings node at `prefix`: `base` and each config's, or
    /// the flat mapping's.
    fn definitions(
        &self,
        settings: &Node,
        prefix: &str,
        name: &str,
    ) -> Vec<(String, usize, String)> {
        let structured = ["base", "configs", "groups"].iter().any(|k| get(settings, k).is_some());
        let mut out = Vec::new();
        let mut take = |node: &Node, key: String| {
            if let Some(v) = get(node, name) {
                if let Some(text) = self.words(v) {
                    out.push((text, line(v), key));
                }
            }
        };
        if structured {
            if let Some(base) = get(settings, "base") {
                take(base, format!("{prefix}:base:{name}"));
            }
            if let Some(configs) = get(settings, "configs") {
                for (config, node) in entries(configs) {
                    take(node, format!("{prefix}:configs:{config}:{name}"));
                }
            }
        } else {
            take(settings, format!("{prefix}:{name}"));
        }
        out
    }

    /// The base (or flat) scalar settings of a settings node, for `$(NAME)` expansion.
    fn base_settings(&self, settings: Option<&Node>, into: &mut BuildSettings) {
        let Some(settings) = settings else { return };
        let structured = ["base", "configs", "groups"].iter().any(|k| get(settings, k).is_some());
        let base = if structured { get(settings, "base") } else { Some(settings) };
        for (name, node) in base.map(entries).unwrap_or_default() {
            if let Some(text) = self.words(node) {
                into.0.insert(name, text);
            }
        }
    }

    /// The settings `$(NAME)` in `t`'s settings expand with.
    fn expansion(&self, t: &Target<'_>) -> BuildSettings {
        let mut s = BuildSettings(Default::default());
        self.base_settings(get(&self.root, "settings"), &mut s);
        self.base_settings(get(t.node, "settings"), &mut s);
        s.0.insert("SRCROOT".into(), self.dir.display().to_string());
        s.0.insert("PROJECT_DIR".into(), self.dir.display().to_string());
        s.0.insert("TARGET_NAME".into(), t.name.clone());
        s.0.entry("PRODUCT_NAME".into()).or_insert_with(|| t.name.clone());
        s.0.entry("inherited".into()).or_default();
        s
    }

    /// Every definition of setting `name` for target `t`: the target's own, or (when it has
    /// none) the project's.
    fn setting(&self, t: &Target<'_>, name: &str) -> Vec<Setting> {
        let mut found = Vec::new();
        if let Some(s) = get(t.node, "settings") {
            found = self.definitions(s, &format!("targets:{}:settings", t.name), name);
        }
        if found.is_empty() {
            if let Some(s) = get(&self.root, "settings") {
                found = self.definitions(s, "settings", name);
            }
        }
        let settings = self.expansion(t);
        found
            .into_iter()
            .map(|(text, line, key)| {
                let (mut value, mut undefined) = (text, Vec::new());
                // Nested placeholders ($(A) defined as $(B)), a few levels deep.
                for _ in 0..4 {
                    if !value.contains("$(") && !value.contains("${") {
                        break;
                    }
                    let (v, u) = plist::expand(&value, &settings);
                    value = v;
                    undefined.extend(u);
                }
                undefined.sort();
                undefined.dedup();
                Setting { value: value.trim().to_string(), key, line, undefined }
            })
            .collect()
    }

    /// Where a setting that is missing should be: the target's `settings:base`.
    fn missing_key(&self, t: &Target<'_>, name: &str) -> (String, usize) {
        let settings = get(t.node, "settings");
        let at = settings.and_then(|s| get(s, "base")).or(settings).unwrap_or(t.node);
        (format!("targets:{}:settings:base:{name}", t.name), line(at))
    }

    fn missing_note(&self, t: &Target<'_>) -> &'static str {
        if get(t.node, "configFiles").is_some() || get(&self.root, "configFiles").is_some() {
            " (lint reads no .xcconfig files: set it in project.yml)"
        } else {
            ""
        }
    }

    fn undefined_note(s: &Setting) -> String {
        if s.undefined.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = s.undefined.iter().map(|n| format!("$({n})")).collect();
            format!(" ({} defined nowhere in the project)", names.join(", "))
        }
    }

    /// A path setting resolved against the project's directory.
    fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    fn check(&self, against: Against<'_>) -> Vec<Finding> {
        let mut findings = Vec::new();
        let targets = self.targets();
        let dexts: Vec<&Target<'_>> = targets
            .iter()
            .filter(|t| self.target_type(t).is_some_and(|ty| DEXT_TYPES.contains(&ty.as_str())))
            .collect();
        let targets_line = get(&self.root, "targets").map(line).unwrap_or(1);
        let dext = match dexts.as_slice() {
            [] => {
                findings.push(self.error(
                    "ProjectDextTarget",
                    "targets",
                    targets_line,
                    "no target has type driver-extension: the project builds no dext".into(),
                ));
                return findings;
            }
            [one] => *one,
            more => {
                let names: Vec<&str> = more.iter().map(|t| t.name.as_str()).collect();
                findings.push(self.error(
                    "ProjectDextTarget",
                    "targets",
                    targets_line,
                    format!(
                        "{} driver-extension targets ({}): lint checks one dext against one \
                         Info.plist",
                        names.len(),
                        names.join(", ")
                    ),
                ));
                return findings;
            }
        };
        self.check_dext(dext, against, &mut findings);
        self.check_host_app(&targets, dext, &mut findings);
        findings
    }

    fn check_dext(&self, t: &Target<'_>, against: Against<'_>, out: &mut Vec<Finding>) {
        let note = self.missing_note(t);

        // SDKROOT = driverkit.
        let sdk = self.setting(t, "SDKROOT");
        if sdk.is_empty() {
            let (key, line) = self.missing_key(t, "SDKROOT");
            out.push(self.error(
                "ProjectDextSdk",
                &key,
                line,
                format!("the dext target {} sets no SDKROOT: it must be driverkit{note}", t.name),
            ));
        }
        for s in &sdk {
            if s.value != "driverkit" {
                out.push(self.error(
                    "ProjectDextSdk",
                    &s.key,
                    s.line,
                    format!(
                        "SDKROOT is {:?}: a dext is built with the DriverKit SDK (driverkit){}",
                        s.value,
                        Self::undefined_note(s)
                    ),
                ));
            }
        }

        // DRIVERKIT_DEPLOYMENT_TARGET >= 20.4.
        let (want_major, want_minor) = MIN_DRIVERKIT;
        let deployment = self.setting(t, "DRIVERKIT_DEPLOYMENT_TARGET");
        if deployment.is_empty() {
            let (key, line) = self.missing_key(t, "DRIVERKIT_DEPLOYMENT_TARGET");
            out.push(self.error(
                "ProjectDeploymentTarget",
                &key,
                line,
                format!(
                    "the dext target {} sets no DRIVERKIT_DEPLOYMENT_TARGET: set it to \
                     {want_major}.{want_minor} or later (SCSIControllerDriverKit needs DriverKit \
                     {want_major}.{want_minor}){note}",
                    t.name
                ),
            ));
        }
        for s in &deployment {
            let problem = match parse_version(&s.value) {
                None => Some(format!("is {:?}, not a version like 20.4", s.value)),
                Some(v) if v < (want_major, want_minor) => Some(format!(
                    "is {}, below {want_major}.{want_minor}: SCSIControllerDriverKit first \
                     shipped in DriverKit {want_major}.{want_minor} (macOS 11.3)",
                    s.value
                )),
                Some(_) => None,
            };
            if let Some(problem) = problem {
                out.push(self.error(
                    "ProjectDeploymentTarget",
                    &s.key,
                    s.line,
                    format!("DRIVERKIT_DEPLOYMENT_TARGET {problem}{}", Self::undefined_note(s)),
                ));
            }
        }

        // PRODUCT_BUNDLE_IDENTIFIER = Info.plist's CFBundleIdentifier.
        let mut ids = self.setting(t, "PRODUCT_BUNDLE_IDENTIFIER");
        if ids.is_empty() {
            if let Some(prefix) = get(&self.root, "options")
                .and_then(|o| get(o, "bundleIdPrefix"))
                .and_then(|p| self.scalar(p).map(|v| (v, line(p))))
            {
                ids.push(Setting {
                    value: format!("{}.{}", prefix.0, t.name),
                    key: "options:bundleIdPrefix".into(),
                    line: prefix.1,
                    undefined: Vec::new(),
                });
            }
        }
        if ids.is_empty() {
            let (key, line) = self.missing_key(t, "PRODUCT_BUNDLE_IDENTIFIER");
            out.push(self.error(
                "ProjectBundleIdentifier",
                &key,
                line,
                format!(
                    "the dext target {} sets no PRODUCT_BUNDLE_IDENTIFIER (and the project no \
                     options:bundleIdPrefix){note}",
                    t.name
                ),
            ));
        }
        if let Some(bundle_id) = against.bundle_identifier {
            for s in &ids {
                if s.value != bundle_id {
                    out.push(self.error(
                        "ProjectBundleIdentifier",
                        &s.key,
                        s.line,
                        format!(
                            "the dext target {} builds {:?}, but {}'s CFBundleIdentifier is {:?} \
                             (as lint expands it; the entitlements name that identifier): make \
                             them equal, or lint with --set PRODUCT_BUNDLE_IDENTIFIER={}{}",
                            t.name,
                            s.value,
                            against.plist.display,
                            bundle_id,
                            s.value,
                            Self::undefined_note(s)
                        ),
                    ));
                }
            }
        }

        // INFOPLIST_FILE and the entitlements: the files lint was given.
        self.check_file_setting(
            t,
            "INFOPLIST_FILE",
            None,
            against.plist,
            "ProjectDextInfoPlist",
            "Info.plist",
            out,
        );
        let entitlements_path = get(t.node, "entitlements").and_then(|e| get(e, "path"));
        self.check_file_setting(
            t,
            "CODE_SIGN_ENTITLEMENTS",
            entitlements_path,
            against.entitlements,
            "ProjectDextEntitlements",
            "entitlements",
            out,
        );

        // The frameworks.
        let linked = self.linked_frameworks(t);
        let deps_key = format!("targets:{}:dependencies", t.name);
        let deps_line = get(t.node, "dependencies").map(line).unwrap_or(line(t.node));
        for framework in REQUIRED_FRAMEWORKS {
            if !linked.iter().any(|l| l == framework) {
                out.push(self.error(
                    "ProjectFrameworks",
                    &deps_key,
                    deps_line,
                    format!(
                        "the dext target {} does not link {framework}.framework: add `- sdk: \
                         System/DriverKit/System/Library/Frameworks/{framework}.framework` to \
                         its dependencies (or -framework {framework} to OTHER_LDFLAGS)",
                        t.name
                    ),
                ));
            }
        }
    }

    /// The frameworks a target links: `sdk:`/`framework:` dependencies and `-framework X` in
    /// OTHER_LDFLAGS.
    fn linked_frameworks(&self, t: &Target<'_>) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(deps) = get(t.node, "dependencies").and_then(|d| d.data.as_sequence()) {
            for dep in deps {
                let link = get(dep, "link").and_then(|l| l.data.as_bool()).unwrap_or(true);
                let path = get(dep, "sdk").or_else(|| get(dep, "framework"));
                if let (true, Some(path)) = (link, path.and_then(|p| self.scalar(p))) {
                    let file = path.rsplit('/').next().unwrap_or(&path);
                    if let Some(name) = file.strip_suffix(".framework") {
                        out.push(name.to_string());
                    }
                }
            }
        }
        for s in self.setting(t, "OTHER_LDFLAGS") {
            let words: Vec<&str> = s.value.split_whitespace().collect();
            for pair in words.windows(2) {
                if pair[0] == "-framework" {
                    out.push(pair[1].to_string());
                }
            }
        }
        out
    }

    /// A setting naming a file (or XcodeGen's `entitlements: path:`) must name `expected`.
    #[allow(clippy::too_many_arguments)]
    fn check_file_setting(
        &self,
        t: &Target<'_>,
        name: &str,
        alternative: Option<&Node>,
        expected: &Source,
        rule: &'static str,
        what: &str,
        out: &mut Vec<Finding>,
    ) {
        let mut defs = self.setting(t, name);
        if defs.is_empty() {
            if let Some(node) = alternative {
                if let Some(value) = self.scalar(node) {
                    defs.push(Setting {
                        value,
                        key: format!("targets:{}:entitlements:path", t.name),
                        line: line(node),
                        undefined: Vec::new(),
                    });
                }
            }
        }
        if defs.is_empty() {
            let (key, line) = self.missing_key(t, name);
            out.push(self.error(
                rule,
                &key,
                line,
                format!(
                    "the dext target {} sets no {name}: it must name {} (the {what} lint \
                     checked){}",
                    t.name,
                    expected.display,
                    self.missing_note(t)
                ),
            ));
            return;
        }
        let want = expected.path.canonicalize().ok();
        for s in defs {
            let resolved = self.resolve(&s.value);
            let message = match (resolved.canonicalize(), &want) {
                (Ok(have), Some(want)) if &have == want => continue,
                (Ok(_), _) => format!(
                    "{name} is {:?}, but lint checked {} as the dext's {what}: the Mac build \
                     would use another file{}",
                    s.value,
                    expected.display,
                    Self::undefined_note(&s)
                ),
                (Err(e), _) => format!(
                    "{name} is {:?}, which does not exist ({}: {e}); lint checked {}{}",
                    s.value,
                    resolved.display(),
                    expected.display,
                    Self::undefined_note(&s)
                ),
            };
            out.push(self.error(rule, &s.key, s.line, message));
        }
    }

    fn check_host_app(&self, targets: &[Target<'_>], dext: &Target<'_>, out: &mut Vec<Finding>) {
        let mut embedders = Vec::new();
        for t in targets {
            if !self.target_type(t).is_some_and(|ty| APP_TYPES.contains(&ty.as_str())) {
                continue;
            }
            let Some(deps) = get(t.node, "dependencies").and_then(|d| d.data.as_sequence()) else {
                continue;
            };
            for (i, dep) in deps.iter().enumerate() {
                let Some(name) = get(dep, "target").and_then(|n| self.scalar(n)) else { continue };
                if name != dext.name {
                    continue;
                }
                let key = format!("targets:{}:dependencies:{i}", t.name);
                // XcodeGen embeds an application's dependencies unless told not to.
                if let Some(embed) = get(dep, "embed") {
                    if embed.data.as_bool() != Some(true) {
                        out.push(self.error(
                            "ProjectHostApp",
                            &format!("{key}:embed"),
                            line(embed),
                            format!(
                                "the app {} depends on the dext {} without embedding it \
                                 (embed: true): OSSystemExtensionRequest finds a dext only in \
                                 the app's Contents/Library/SystemExtensions",
                                t.name, dext.name
                            ),
                        ));
                        continue;
                    }
                }
                if let Some(copy) = get(dep, "copy") {
                    let dest = get(copy, "destination").and_then(|d| self.scalar(d));
                    let sub = get(copy, "subpath").and_then(|d| self.scalar(d)).unwrap_or_default();
                    let sub = sub.trim_end_matches('/');
                    let ok = matches!(
                        (dest.as_deref(), sub),
                        (Some("productsDirectory"), "$(SYSTEM_EXTENSIONS_FOLDER_PATH)")
                            | (Some("wrapper"), "Contents/Library/SystemExtensions")
                    );
                    if !ok {
                        out.push(self.error(
                            "ProjectHostApp",
                            &format!("{key}:copy"),
                            line(copy),
                            format!(
                                "the app {} copies the dext to {} {:?}, not to its system \
                                 extensions folder (destination: productsDirectory, subpath: \
                                 $(SYSTEM_EXTENSIONS_FOLDER_PATH) = Contents/Library/\
                                 SystemExtensions)",
                                t.name,
                                dest.as_deref().unwrap_or("(no destination)"),
                                sub
                            ),
                        ));
                        continue;
                    }
                }
                embedders.push(t);
            }
        }
        if embedders.is_empty() {
            out.push(self.error(
                "ProjectHostApp",
                "targets",
                get(&self.root, "targets").map(line).unwrap_or(1),
                format!(
                    "no application target embeds the dext {}: add `- target: {}` with `embed: \
                     true` to the host app's dependencies (Embed System Extensions)",
                    dext.name, dext.name
                ),
            ));
        }
        for app in embedders {
            self.check_app_entitlements(app, out);
        }
    }

    fn check_app_entitlements(&self, app: &Target<'_>, out: &mut Vec<Finding>) {
        let rule = "ProjectAppEntitlements";
        let why = "the app cannot submit an OSSystemExtensionRequest without it \
                   (OSSystemExtensionErrorMissingEntitlement)";
        // XcodeGen can write the entitlements from `entitlements: properties:`.
        let ents = get(app.node, "entitlements");
        if let Some(props) = ents.and_then(|e| get(e, "properties")) {
            let value = get(props, INSTALL_ENTITLEMENT);
            if value.and_then(|v| v.data.as_bool()) != Some(true) {
                out.push(self.error(
                    rule,
                    &format!("targets:{}:entitlements:properties:{INSTALL_ENTITLEMENT}", app.name),
                    value.map(line).unwrap_or(line(props)),
                    format!(
                        "the app {} does not set {INSTALL_ENTITLEMENT} to true: {why}",
                        app.name
                    ),
                ));
            }
            return;
        }
        let mut defs = self.setting(app, "CODE_SIGN_ENTITLEMENTS");
        if defs.is_empty() {
            if let Some(path) = ents.and_then(|e| get(e, "path")) {
                if let Some(value) = self.scalar(path) {
                    defs.push(Setting {
                        value,
                        key: format!("targets:{}:entitlements:path", app.name),
                        line: line(path),
                        undefined: Vec::new(),
                    });
                }
            }
        }
        if defs.is_empty() {
            let (key, line) = self.missing_key(app, "CODE_SIGN_ENTITLEMENTS");
            out.push(self.error(
                rule,
                &key,
                line,
                format!(
                    "the app {} has no entitlements (CODE_SIGN_ENTITLEMENTS): it needs \
                     {INSTALL_ENTITLEMENT}; {why}{}",
                    app.name,
                    self.missing_note(app)
                ),
            ));
            return;
        }
        for s in defs {
            let path = self.resolve(&s.value);
            let source = Source {
                display: if Path::new(&s.value).is_absolute() {
                    s.value.clone()
                } else {
                    Path::new(&self.source.display)
                        .parent()
                        .unwrap_or(Path::new(""))
                        .join(&s.value)
                        .display()
                        .to_string()
                },
                path,
            };
            match PlistFile::load(&source) {
                Err(f) => out.push(self.error(
                    rule,
                    &s.key,
                    s.line,
                    format!(
                        "the app's entitlements {:?} cannot be read: {}{}",
                        s.value,
                        f.message,
                        Self::undefined_note(&s)
                    ),
                )),
                Ok(p) => {
                    let value = p.dict().get(INSTALL_ENTITLEMENT);
                    if value.and_then(|v| v.as_boolean()) != Some(true) {
                        let state = if value.is_some() { "is not true" } else { "is missing" };
                        out.push(p.finding_at(
                            rule,
                            true,
                            &[INSTALL_ENTITLEMENT],
                            format!(
                                "{INSTALL_ENTITLEMENT} {state} in the entitlements of the app {} \
                                 ({} in {}): {why}",
                                app.name,
                                s.key,
                                self.file()
                            ),
                        ));
                    }
                }
            }
        }
    }
}

/// `20.4`, `21`, `20.4.1` → (major, minor).
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = match parts.next() {
        Some(m) => m.parse().ok()?,
        None => 0,
    };
    if let Some(patch) = parts.next() {
        patch.parse::<u32>().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    /// A scratch copy of the shipped project and the files it names, one per test.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str, edit: impl FnOnce(String) -> String) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("dkraid-project-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("entitlements")).unwrap();
            for f in [SHIPPED_PLIST, SHIPPED_DEXT_ENTITLEMENTS, SHIPPED_APP_ENTITLEMENTS] {
                std::fs::copy(repo_root().join(f), dir.join(f)).unwrap();
            }
            let text = std::fs::read_to_string(repo_root().join(SHIPPED_PROJECT)).unwrap();
            let edited = edit(text.clone());
            std::fs::write(dir.join("project.yml"), edited).unwrap();
            Scratch(dir)
        }

        fn source(&self, relative: &str) -> Source {
            Source { path: self.0.join(relative), display: relative.to_string() }
        }

        fn lint(&self) -> Vec<Finding> {
            self.lint_as(Some(DEFAULT_DEXT_BUNDLE_ID))
        }

        fn lint_as(&self, bundle_identifier: Option<&str>) -> Vec<Finding> {
            let plist = self.source(SHIPPED_PLIST);
            let entitlements = self.source(SHIPPED_DEXT_ENTITLEMENTS);
            check(
                &self.source("project.yml"),
                Against { plist: &plist, entitlements: &entitlements, bundle_identifier },
            )
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn replace(text: &str, from: &str, to: &str) -> String {
        assert!(text.contains(from), "project.yml has no {from:?}");
        text.replacen(from, to, 1)
    }

    /// The one finding, with its rule and key; returns it.
    fn only(findings: &[Finding], rule: &str, key: &str) -> Finding {
        assert_eq!(findings.len(), 1, "{findings:#?}");
        let f = &findings[0];
        assert_eq!((f.rule, f.key.as_deref()), (rule, Some(key)), "{f:#?}");
        assert!(f.is_error());
        assert!(f.line.is_some_and(|l| l > 0), "{f:#?}");
        f.clone()
    }

    const DEXT: &str = "targets:DkRaidDriver:settings:base";

    #[test]
    fn the_shipped_project_passes() {
        let f = check(
            &Source::shipped(SHIPPED_PROJECT),
            Against {
                plist: &Source::shipped(SHIPPED_PLIST),
                entitlements: &Source::shipped(SHIPPED_DEXT_ENTITLEMENTS),
                bundle_identifier: Some(DEFAULT_DEXT_BUNDLE_ID),
            },
        );
        assert!(f.is_empty(), "{f:#?}");
        assert!(Scratch::new("copy", |t| t).lint().is_empty());
    }

    #[test]
    fn a_missing_or_broken_file_is_unreadable() {
        let s = Scratch::new("unreadable", |t| t);
        let missing = s.source("nope.yml");
        let plist = s.source(SHIPPED_PLIST);
        let ents = s.source(SHIPPED_DEXT_ENTITLEMENTS);
        let against = Against { plist: &plist, entitlements: &ents, bundle_identifier: None };
        let f = check(&missing, against);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, "ProjectUnreadable");
        assert!(f[0].message.starts_with("cannot read nope.yml"), "{f:?}");

        std::fs::write(s.0.join("bad.yml"), "name: x\ntargets: [unclosed\n").unwrap();
        let f = check(&s.source("bad.yml"), against);
        assert_eq!(f[0].rule, "ProjectUnreadable");
        assert!(f[0].message.starts_with("bad.yml is not YAML"), "{f:?}");
        assert!(f[0].line.is_some());

        std::fs::write(s.0.join("none.yml"), "name: x\n").unwrap();
        let f = check(&s.source("none.yml"), against);
        assert_eq!((f[0].rule, f[0].key.as_deref()), ("ProjectUnreadable", Some("targets")));
        assert_eq!(f[0].message, "none.yml has no targets");

        std::fs::write(s.0.join("list.yml"), "- a\n- b\n").unwrap();
        let f = check(&s.source("list.yml"), against);
        assert!(f[0].message.contains("the top level is not a mapping"), "{f:?}");
    }

    #[test]
    fn no_dext_target() {
        let s = Scratch::new("no-dext", |t| replace(&t, "type: driver-extension", "type: tool"));
        let f = only(&s.lint(), "ProjectDextTarget", "targets");
        assert_eq!(f.message, "no target has type driver-extension: the project builds no dext");
        assert_eq!(f.file, "project.yml");
    }

    #[test]
    fn another_bundle_identifier() {
        let s = Scratch::new("bundle-id", |t| {
            replace(
                &t,
                "PRODUCT_BUNDLE_IDENTIFIER: org.dkraid.driver",
                "PRODUCT_BUNDLE_IDENTIFIER: com.example.raid",
            )
        });
        let f = only(
            &s.lint(),
            "ProjectBundleIdentifier",
            &format!("{DEXT}:PRODUCT_BUNDLE_IDENTIFIER"),
        );
        assert!(
            f.message.starts_with(
                "the dext target DkRaidDriver builds \"com.example.raid\", but Info.plist's \
                 CFBundleIdentifier is \"org.dkraid.driver\""
            ),
            "{}",
            f.message
        );
        // The same project passes when lint expands Info.plist with that identifier.
        assert!(s.lint_as(Some("com.example.raid")).is_empty());
        // ... and is not compared when the plist gave no identifier.
        assert!(s.lint_as(None).is_empty());
    }

    #[test]
    fn a_bundle_identifier_from_a_placeholder_or_the_prefix() {
        let s = Scratch::new("bundle-id-var", |t| {
            let t = replace(
                &t,
                "PRODUCT_BUNDLE_IDENTIFIER: org.dkraid.driver",
                "PRODUCT_BUNDLE_IDENTIFIER: $(DKRAID_ID).driver",
            );
            replace(
                &t,
                "    MARKETING_VERSION: \"0.1.0\"",
                "    DKRAID_ID: org.dkraid\n    MARKETING_VERSION: \"0.1.0\"",
            )
        });
        assert!(s.lint().is_empty(), "{:#?}", s.lint());
        let s = Scratch::new("bundle-id-undefined", |t| {
            replace(
                &t,
                "PRODUCT_BUNDLE_IDENTIFIER: org.dkraid.driver",
                "PRODUCT_BUNDLE_IDENTIFIER: $(NOPE).driver",
            )
        });
        let f = only(
            &s.lint(),
            "ProjectBundleIdentifier",
            &format!("{DEXT}:PRODUCT_BUNDLE_IDENTIFIER"),
        );
        assert!(f.message.contains("builds \".driver\""), "{}", f.message);
        assert!(f.message.ends_with("($(NOPE) defined nowhere in the project)"), "{}", f.message);
        // Without the setting, XcodeGen's bundleIdPrefix + target name.
        let s = Scratch::new("bundle-id-prefix", |t| {
            let t = replace(&t, "        PRODUCT_BUNDLE_IDENTIFIER: org.dkraid.driver\n", "");
            replace(&t, "options:\n", "options:\n  bundleIdPrefix: org.dkraid\n")
        });
        let f = only(&s.lint(), "ProjectBundleIdentifier", "options:bundleIdPrefix");
        assert!(f.message.contains("builds \"org.dkraid.DkRaidDriver\""), "{}", f.message);
        let s = Scratch::new("bundle-id-none", |t| {
            replace(&t, "        PRODUCT_BUNDLE_IDENTIFIER: org.dkraid.driver\n", "")
        });
        only(&s.lint(), "ProjectBundleIdentifier", &format!("{DEXT}:PRODUCT_BUNDLE_IDENTIFIER"));
    }

    #[test]
    fn another_entitlements_file() {
        let s = Scratch::new("dext-ents", |t| {
            replace(
                &t,
                "CODE_SIGN_ENTITLEMENTS: entitlements/DkRaidDriver.entitlements",
                "CODE_SIGN_ENTITLEMENTS: entitlements/DkRaidAdmin.entitlements",
            )
        });
        let f =
            only(&s.lint(), "ProjectDextEntitlements", &format!("{DEXT}:CODE_SIGN_ENTITLEMENTS"));
        assert_eq!(
            f.message,
            "CODE_SIGN_ENTITLEMENTS is \"entitlements/DkRaidAdmin.entitlements\", but lint \
             checked entitlements/DkRaidDriver.entitlements as the dext's entitlements: the Mac \
             build would use another file"
        );
        let s = Scratch::new("dext-ents-missing", |t| {
            replace(
                &t,
                "CODE_SIGN_ENTITLEMENTS: entitlements/DkRaidDriver.entitlements",
                "CODE_SIGN_ENTITLEMENTS: entitlements/Gone.entitlements",
            )
        });
        let f =
            only(&s.lint(), "ProjectDextEntitlements", &format!("{DEXT}:CODE_SIGN_ENTITLEMENTS"));
        assert!(f.message.contains("which does not exist"), "{}", f.message);
        let s = Scratch::new("dext-ents-none", |t| {
            replace(
                &t,
                "        CODE_SIGN_ENTITLEMENTS: entitlements/DkRaidDriver.entitlements\n",
                "",
            )
        });
        let f =
            only(&s.lint(), "ProjectDextEntitlements", &format!("{DEXT}:CODE_SIGN_ENTITLEMENTS"));
        assert!(f
            .message
            .starts_with("the dext target DkRaidDriver sets no CODE_SIGN_ENTITLEMENTS"));
    }

    #[test]
    fn another_info_plist() {
        let s = Scratch::new("plist", |t| {
            replace(&t, "INFOPLIST_FILE: Info.plist", "INFOPLIST_FILE: dext/Info.plist")
        });
        let f = only(&s.lint(), "ProjectDextInfoPlist", &format!("{DEXT}:INFOPLIST_FILE"));
        assert!(f
            .message
            .starts_with("INFOPLIST_FILE is \"dext/Info.plist\", which does not exist"));
    }

    #[test]
    fn an_old_or_missing_deployment_target() {
        let s = Scratch::new("dk-old", |t| {
            replace(
                &t,
                "DRIVERKIT_DEPLOYMENT_TARGET: \"20.4\"",
                "DRIVERKIT_DEPLOYMENT_TARGET: 20.0",
            )
        });
        let f = only(
            &s.lint(),
            "ProjectDeploymentTarget",
            &format!("{DEXT}:DRIVERKIT_DEPLOYMENT_TARGET"),
        );
        assert_eq!(
            f.message,
            "DRIVERKIT_DEPLOYMENT_TARGET is 20.0, below 20.4: SCSIControllerDriverKit first \
             shipped in DriverKit 20.4 (macOS 11.3)"
        );
        // A YAML number keeps its text: 20.10 is not 20.1.
        let s = Scratch::new("dk-num", |t| {
            replace(
                &t,
                "DRIVERKIT_DEPLOYMENT_TARGET: \"20.4\"",
                "DRIVERKIT_DEPLOYMENT_TARGET: 20.10",
            )
        });
        assert!(s.lint().is_empty(), "{:#?}", s.lint());
        let s = Scratch::new("dk-bad", |t| {
            replace(
                &t,
                "DRIVERKIT_DEPLOYMENT_TARGET: \"20.4\"",
                "DRIVERKIT_DEPLOYMENT_TARGET: latest",
            )
        });
        let f = only(
            &s.lint(),
            "ProjectDeploymentTarget",
            &format!("{DEXT}:DRIVERKIT_DEPLOYMENT_TARGET"),
        );
        assert_eq!(f.message, "DRIVERKIT_DEPLOYMENT_TARGET is \"latest\", not a version like 20.4");
        let s = Scratch::new("dk-none", |t| {
            replace(&t, "        DRIVERKIT_DEPLOYMENT_TARGET: \"20.4\"\n", "")
        });
        let f = only(
            &s.lint(),
            "ProjectDeploymentTarget",
            &format!("{DEXT}:DRIVERKIT_DEPLOYMENT_TARGET"),
        );
        assert!(f
            .message
            .starts_with("the dext target DkRaidDriver sets no DRIVERKIT_DEPLOYMENT_TARGET"));
        // A config that overrides it is checked too.
        let s = Scratch::new("dk-config", |t| {
            replace(&t, "        SKIP_INSTALL: YES\n", "        SKIP_INSTALL: YES\n      configs:\n        Debug:\n          DRIVERKIT_DEPLOYMENT_TARGET: \"19.0\"\n")
        });
        only(
            &s.lint(),
            "ProjectDeploymentTarget",
            "targets:DkRaidDriver:settings:configs:Debug:DRIVERKIT_DEPLOYMENT_TARGET",
        );
    }

    #[test]
    fn the_wrong_sdk() {
        let s = Scratch::new("sdk", |t| replace(&t, "SDKROOT: driverkit", "SDKROOT: macosx"));
        let f = only(&s.lint(), "ProjectDextSdk", &format!("{DEXT}:SDKROOT"));
        assert_eq!(
            f.message,
            "SDKROOT is \"macosx\": a dext is built with the DriverKit SDK (driverkit)"
        );
    }

    #[test]
    fn a_missing_framework() {
        for framework in ["SCSIControllerDriverKit", "PCIDriverKit", "DriverKit"] {
            let s = Scratch::new(&format!("fw-{framework}"), |t| {
                replace(&t, &format!("      - sdk: System/DriverKit/System/Library/Frameworks/{framework}.framework\n"), "")
            });
            let f = only(&s.lint(), "ProjectFrameworks", "targets:DkRaidDriver:dependencies");
            assert!(
                f.message.starts_with(&format!(
                    "the dext target DkRaidDriver does not link {framework}.framework"
                )),
                "{}",
                f.message
            );
        }
        // -framework in OTHER_LDFLAGS counts.
        let s = Scratch::new("fw-ldflags", |t| {
            let t = replace(
                &t,
                "      - sdk: System/DriverKit/System/Library/Frameworks/PCIDriverKit.framework\n",
                "",
            );
            replace(&t, "        SKIP_INSTALL: YES\n", "        SKIP_INSTALL: YES\n        OTHER_LDFLAGS: [\"$(inherited)\", \"-framework\", PCIDriverKit]\n")
        });
        assert!(s.lint().is_empty(), "{:#?}", s.lint());
    }

    #[test]
    fn the_app_does_not_embed_the_dext() {
        let s = Scratch::new("no-embed", |t| {
            replace(
                &t,
                "        embed: true\n        codeSign: false",
                "        embed: false\n        codeSign: false",
            )
        });
        let f = s.lint();
        assert_eq!(f.len(), 2, "{f:#?}");
        assert_eq!(
            (f[0].rule, f[0].key.as_deref()),
            ("ProjectHostApp", Some("targets:DkRaid:dependencies:0:embed"))
        );
        assert_eq!((f[1].rule, f[1].key.as_deref()), ("ProjectHostApp", Some("targets")));
        assert!(f[1].message.starts_with("no application target embeds the dext DkRaidDriver"));

        let s = Scratch::new("no-dep", |t| {
            replace(&t, "      - target: DkRaidDriver\n", "      - target: SomethingElse\n")
        });
        only(&s.lint(), "ProjectHostApp", "targets");

        let s = Scratch::new("wrong-copy", |t| {
            replace(
                &t,
                "subpath: $(SYSTEM_EXTENSIONS_FOLDER_PATH)",
                "subpath: $(PLUGINS_FOLDER_PATH)",
            )
        });
        let f = s.lint();
        assert_eq!(f.len(), 2, "{f:#?}");
        assert_eq!(f[0].key.as_deref(), Some("targets:DkRaid:dependencies:0:copy"));
        assert!(
            f[0].message
                .contains("copies the dext to productsDirectory \"$(PLUGINS_FOLDER_PATH)\""),
            "{}",
            f[0].message
        );

        // Without `copy`, XcodeGen's own Embed System Extensions phase is right.
        let s = Scratch::new("default-copy", |t| {
            replace(&t, "        copy:\n          destination: productsDirectory\n          subpath: $(SYSTEM_EXTENSIONS_FOLDER_PATH)\n", "")
        });
        assert!(s.lint().is_empty(), "{:#?}", s.lint());
    }

    #[test]
    fn the_app_may_not_install_the_dext() {
        // An entitlements file without the install entitlement: the finding is in that file.
        let s = Scratch::new("app-ents", |t| t);
        let app = s.0.join(SHIPPED_APP_ENTITLEMENTS);
        let text = std::fs::read_to_string(&app).unwrap();
        let edited = replace(
            &text,
            "\t<key>com.apple.developer.system-extension.install</key>\n\t<true/>\n",
            "",
        );
        std::fs::write(&app, edited).unwrap();
        let f = only(&s.lint(), "ProjectAppEntitlements", INSTALL_ENTITLEMENT);
        assert_eq!(f.file, "entitlements/DkRaidAdmin.entitlements");
        assert!(
            f.message.starts_with(&format!(
                "{INSTALL_ENTITLEMENT} is missing in the entitlements of the app DkRaid"
            )),
            "{}",
            f.message
        );

        let s = Scratch::new("app-ents-none", |t| {
            replace(
                &t,
                "        CODE_SIGN_ENTITLEMENTS: entitlements/DkRaidAdmin.entitlements\n",
                "",
            )
        });
        let f = only(
            &s.lint(),
            "ProjectAppEntitlements",
            "targets:DkRaid:settings:base:CODE_SIGN_ENTITLEMENTS",
        );
        assert!(f.message.starts_with("the app DkRaid has no entitlements"));

        let s = Scratch::new("app-ents-gone", |t| {
            replace(
                &t,
                "CODE_SIGN_ENTITLEMENTS: entitlements/DkRaidAdmin.entitlements",
                "CODE_SIGN_ENTITLEMENTS: entitlements/Gone.entitlements",
            )
        });
        let f = only(
            &s.lint(),
            "ProjectAppEntitlements",
            "targets:DkRaid:settings:base:CODE_SIGN_ENTITLEMENTS",
        );
        assert!(f.message.contains("cannot be read"), "{}", f.message);

        // XcodeGen-generated entitlements are read from the project.
        let s = Scratch::new("app-ents-props", |t| {
            replace(&t, "        CODE_SIGN_ENTITLEMENTS: entitlements/DkRaidAdmin.entitlements\n", "")
                .replacen("    deploymentTarget: \"11.3\"\n    sources:\n      - path: mac/HostApp", "    deploymentTarget: \"11.3\"\n    entitlements:\n      path: gen/App.entitlements\n      properties:\n        com.apple.developer.system-extension.install: false\n    sources:\n      - path: mac/HostApp", 1)
        });
        only(
            &s.lint(),
            "ProjectAppEntitlements",
            &format!("targets:DkRaid:entitlements:properties:{INSTALL_ENTITLEMENT}"),
        );
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("20.4"), Some((20, 4)));
        assert_eq!(parse_version("21"), Some((21, 0)));
        assert_eq!(parse_version("20.4.1"), Some((20, 4)));
        assert_eq!(parse_version("20.x"), None);
        assert_eq!(parse_version("20.4.1.2"), None);
        assert_eq!(parse_version(""), None);
    }
}
