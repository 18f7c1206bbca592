//! Scenario tests for the bundle: `dkraid-sim lint` on the shipped bundle and on copies broken
//! one rule at a time, and `dkraid-sim boot` matching (or refusing) those copies the way the
//! kernel would. Each broken copy must produce the exact finding: rule, file, key and message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const FAMILY_SCSI: &str = "com.apple.developer.driverkit.family.scsicontroller";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dkraid-sim")).args(args).output().expect("run dkraid-sim")
}

fn json_of(out: &Output) -> Value {
    let stdout = String::from_utf8(out.stdout.clone()).expect("UTF-8 output");
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"))
}

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("dkraid-bundle-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// A copy of the shipped file `relative`, edited; returns its path.
    fn copy(&self, relative: &str, edit: impl FnOnce(String) -> String) -> String {
        let text = std::fs::read_to_string(repo().join(relative)).unwrap();
        let edited = edit(text.clone());
        assert_ne!(edited, text, "the edit of {relative} changed nothing");
        let name = Path::new(relative).file_name().unwrap();
        let path = self.0.join(name);
        std::fs::write(&path, edited).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// A copy of the shipped directory `relative` (files only).
    fn copy_dir(&self, relative: &str) -> PathBuf {
        let to = self.0.join(relative);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(repo().join(relative)).unwrap() {
            let e = e.unwrap();
            if e.path().is_file() {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
        to
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `lint --json` with `args`: (exit code, findings).
fn lint(args: &[&str]) -> (i32, Vec<Value>) {
    let mut all = vec!["lint", "--json"];
    all.extend_from_slice(args);
    let out = sim(&all);
    let json = json_of(&out);
    let findings = json["findings"].as_array().expect("a findings list").clone();
    (out.status.code().unwrap_or(-1), findings)
}

/// `boot --json` with `args`: (exit code, report).
fn boot(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["boot", "--json"];
    all.extend_from_slice(args);
    let out = sim(&all);
    (out.status.code().unwrap_or(-1), json_of(&out))
}

/// The one finding with `rule`.
fn finding<'a>(findings: &'a [Value], rule: &str) -> &'a Value {
    let hits: Vec<&Value> = findings.iter().filter(|f| f["rule"] == rule).collect();
    assert_eq!(hits.len(), 1, "expected one {rule} in {findings:#?}");
    hits[0]
}

/// The one boot violation with `rule`.
fn violation<'a>(report: &'a Value, rule: &str) -> &'a Value {
    let v = report["violations"].as_array().expect("violations");
    let hits: Vec<&Value> = v.iter().filter(|x| x["rule"] == rule).collect();
    assert_eq!(hits.len(), 1, "expected one {rule} in {report:#}");
    hits[0]
}

/// A boot the kernel refused: exit 1, nothing started, each expected rule named in
/// DRIVERKIT.md §8 with its file and key.
fn assert_refused(code: i32, report: &Value, rule: &str, file: &str, key: &str, message: &str) {
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["started"], false);
    assert_eq!(report["tasks_mapped"], 0);
    assert_eq!(report["timeline"], serde_json::json!([]), "no dext code ran");
    assert!(report["outcome"].as_str().unwrap().starts_with("not started: the kernel refused"));
    let v = violation(report, rule);
    assert_eq!(v["section"], "DRIVERKIT.md §8");
    assert_eq!(v["queue"], "kernel");
    let values = v["values"].as_str().unwrap();
    assert!(values.starts_with(&format!("file={file} key={key}")), "{values}");
    assert_eq!(v["message"], message);
}

/// The finding's rule, severity, file, key and message, exactly.
fn assert_finding(f: &Value, rule: &str, file: &str, key: &str, message: &str) {
    assert_eq!(f["rule"], rule, "{f:#}");
    assert_eq!(f["severity"], "error", "{f:#}");
    assert_eq!(f["file"], file, "{f:#}");
    assert_eq!(f["key"], key, "{f:#}");
    assert!(f["line"].as_u64().is_some_and(|l| l > 0), "{f:#}");
    assert_eq!(f["message"], message, "{f:#}");
}

fn remove_key(text: &str, key: &str) -> String {
    // The key line and its value line.
    let lines: Vec<&str> = text.lines().collect();
    let at =
        lines.iter().position(|l| l.trim() == format!("<key>{key}</key>")).expect("key present");
    let mut out: Vec<&str> = lines[..at].to_vec();
    out.extend_from_slice(&lines[at + 2..]);
    out.join("\n") + "\n"
}

// ------------------------------------------------------------------------ the shipped one --

#[test]
fn the_shipped_bundle_lints_clean() {
    let out = sim(&["lint"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim(),
        "lint: clean (Info.plist, entitlements/DkRaidDriver.entitlements, \
         entitlements/DkRaidAdmin.entitlements, iig, dext, project.yml)"
    );
}

#[test]
fn lint_json_is_one_object_with_a_findings_list() {
    let out = sim(&["lint", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let json = json_of(&out);
    assert_eq!(json["findings"], serde_json::json!([]));
    assert_eq!(json["errors"], 0);
    assert_eq!(json["checked"]["plist"], "Info.plist");
    assert_eq!(json["checked"]["iig"], "iig");
    assert_eq!(json["checked"]["project"], "project.yml");
}

// --------------------------------------------------------------------- the Mac project --

/// A copy of project.yml, edited, beside copies of the files it names (so that its relative
/// paths resolve), and the lint arguments that check the copy's bundle with it.
fn project_copy(s: &Scratch, edit: impl FnOnce(String) -> String) -> Vec<String> {
    std::fs::create_dir_all(s.0.join("entitlements")).unwrap();
    for f in [
        "Info.plist",
        "entitlements/DkRaidDriver.entitlements",
        "entitlements/DkRaidAdmin.entitlements",
    ] {
        std::fs::copy(repo().join(f), s.0.join(f)).unwrap();
    }
    let project = s.copy("project.yml", edit);
    let at = |f: &str| s.0.join(f).to_str().unwrap().to_string();
    vec![
        "--project".into(),
        project,
        "--plist".into(),
        at("Info.plist"),
        "--entitlements".into(),
        at("entitlements/DkRaidDriver.entitlements"),
        "--app-entitlements".into(),
        at("entitlements/DkRaidAdmin.entitlements"),
    ]
}

#[test]
fn the_project_is_checked_against_the_bundle_lint_was_given() {
    let s = Scratch::new("project-copy");
    let args = project_copy(&s, |t| t.replace("# XcodeGen spec", "# A copy of the XcodeGen spec"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, findings) = lint(&args);
    assert_eq!(code, 0, "{findings:#?}");
    assert_eq!(findings, Vec::<Value>::new());
}

#[test]
fn a_project_with_another_bundle_identifier_fails_lint() {
    let s = Scratch::new("project-bundle-id");
    let args = project_copy(&s, |t| {
        t.replace(
            "PRODUCT_BUNDLE_IDENTIFIER: org.dkraid.driver",
            "PRODUCT_BUNDLE_IDENTIFIER: com.example.raid",
        )
    });
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, findings) = lint(&args);
    assert_eq!(code, 1);
    let f = finding(&findings, "ProjectBundleIdentifier");
    assert_eq!(f["file"], args[1]);
    assert_eq!(f["key"], "targets:DkRaidDriver:settings:base:PRODUCT_BUNDLE_IDENTIFIER");
    assert!(f["line"].as_u64().is_some_and(|l| l > 0));
    assert!(f["message"].as_str().unwrap().contains("builds \"com.example.raid\""), "{f:#}");
    assert_eq!(findings.len(), 1, "{findings:#?}");
    // The text output names the rule, the file and the key.
    let mut all = vec!["lint"];
    all.extend_from_slice(&args);
    let out = sim(&all);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(
            "error[ProjectBundleIdentifier] \
             targets:DkRaidDriver:settings:base:PRODUCT_BUNDLE_IDENTIFIER:"
        ),
        "{text}"
    );
}

#[test]
fn a_project_whose_app_does_not_embed_the_dext_fails_lint() {
    let s = Scratch::new("project-embed");
    let args = project_copy(&s, |t| {
        t.replace("      - target: DkRaidDriver\n", "      - target: Other\n")
    });
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, findings) = lint(&args);
    assert_eq!(code, 1);
    let f = finding(&findings, "ProjectHostApp");
    assert_eq!(f["key"], "targets");
    assert_eq!(findings.len(), 1, "{findings:#?}");
}

#[test]
fn a_missing_project_file_is_a_named_finding() {
    let (code, findings) = lint(&["--project", "/nonexistent/project.yml"]);
    assert_eq!(code, 1);
    let f = finding(&findings, "ProjectUnreadable");
    assert_eq!(f["file"], "/nonexistent/project.yml");
    assert!(f["message"].as_str().unwrap().starts_with("cannot read /nonexistent/project.yml"));
}

#[test]
fn another_bundle_is_linted_without_the_shipped_project() {
    let s = Scratch::new("project-none");
    let plist =
        s.copy("Info.plist", |t| t.replace("<string>pipeline</string>", "<string>full</string>"));
    let out = sim(&["lint", "--json", "--plist", &plist]);
    assert_eq!(out.status.code(), Some(0));
    let json = json_of(&out);
    assert_eq!(json["checked"]["project"], Value::Null);
}

#[test]
fn the_shipped_bundle_boots_and_its_personality_reaches_the_registry() {
    let (code, r) = boot(&[]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["violations"], serde_json::json!([]));
    assert_eq!(r["stage"], "pipeline");
    assert_eq!(r["pci_device"], "1af4:10f0 (subsystem 1af4:10f0, class 010400)");
    assert_eq!(
        r["personality"],
        "DkRaidController in Info.plist: IOPCIPrimaryMatch \"0x10f01af4\" matched register \
         0x00 = 0x10f01af4"
    );
    let p = &r["properties"];
    assert_eq!(p["BringUpStage"], "pipeline");
    assert_eq!(p["IOUserClass"], "DkRaidController");
    assert_eq!(p["IOClass"], "IOUserSCSIParallelInterfaceController");
    assert_eq!(p["IOUserServerName"], "org.dkraid.driver", "build settings substituted");
    assert_eq!(p["FakeDiskBlockSize"], 512);
    assert_eq!(p["FakeDiskCapacityBytes"], 1u64 << 40);
    assert_eq!(p["MaximumTaskCount"], 128);
    assert_eq!(p["IOPCITunnelCompatible"], true);
    // The dext read its stage from the registry.
    let logs: Vec<&str> =
        r["logs"].as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap()).collect();
    assert!(logs.iter().any(|l| l.contains("stage pipeline")), "{logs:?}");
}

#[test]
fn the_list_of_rules_names_every_rule() {
    let out = sim(&["lint", "--list-rules"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for rule in [
        "PersonalityIOClass",
        "PersonalityKernelBundle",
        "PersonalityMissingKey",
        "PersonalityMisspelledKey",
        "PersonalityUserClass",
        "EntitlementMissing",
        "EntitlementMisspelled",
        "UndeclaredQueueName",
        "QueueNotRegistered",
    ] {
        assert!(text.lines().any(|l| l.starts_with(rule)), "{rule} missing:\n{text}");
    }
}

// ---------------------------------------------------------------- broken personalities --

#[test]
fn a_removed_cfbundleidentifierkernel_is_named() {
    let s = Scratch::new("kernel-missing");
    let plist = s.copy("Info.plist", |t| remove_key(&t, "CFBundleIdentifierKernel"));
    let key = "IOKitPersonalities:DkRaidController:CFBundleIdentifierKernel";
    let message = "CFBundleIdentifierKernel is missing: without \
                   com.apple.iokit.IOSCSIParallelFamily the kernel cannot load \
                   IOUserSCSIParallelInterfaceController and the personality never matches";
    let (code, findings) = lint(&["--plist", &plist]);
    assert_eq!(code, 1);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_finding(&findings[0], "PersonalityMissingKey", &plist, key, message);
    let (code, r) = boot(&["--personality", &plist]);
    assert_refused(code, &r, "PersonalityMissingKey", &plist, key, message);
}

#[test]
fn a_wrong_cfbundleidentifierkernel_is_named() {
    let s = Scratch::new("kernel-wrong");
    let plist = s.copy("Info.plist", |t| {
        t.replace(
            "com.apple.iokit.IOSCSIParallelFamily",
            "com.apple.iokit.IOSCSIArchitectureModelFamily",
        )
    });
    let key = "IOKitPersonalities:DkRaidController:CFBundleIdentifierKernel";
    let message = "CFBundleIdentifierKernel is \"com.apple.iokit.IOSCSIArchitectureModelFamily\": \
                   it must be com.apple.iokit.IOSCSIParallelFamily, the kext that provides \
                   IOUserSCSIParallelInterfaceController; otherwise the personality never matches";
    let (code, findings) = lint(&["--plist", &plist]);
    assert_eq!(code, 1);
    assert_finding(
        finding(&findings, "PersonalityKernelBundle"),
        "PersonalityKernelBundle",
        &plist,
        key,
        message,
    );
    let (code, r) = boot(&["--personality", &plist]);
    assert_refused(code, &r, "PersonalityKernelBundle", &plist, key, message);
}

#[test]
fn an_ioclass_that_is_not_the_family_class_is_named() {
    let s = Scratch::new("ioclass");
    let plist = s.copy("Info.plist", |t| {
        t.replace(
            "<key>IOClass</key>\n\t\t\t<string>IOUserSCSIParallelInterfaceController</string>",
            "<key>IOClass</key>\n\t\t\t<string>DkRaidController</string>",
        )
    });
    let key = "IOKitPersonalities:DkRaidController:IOClass";
    let message = "IOClass is \"DkRaidController\": a SCSI controller dext's personality must \
                   name the family's kernel class IOUserSCSIParallelInterfaceController \
                   (DkRaidController is the dext's own class, which belongs in IOUserClass)";
    let (code, findings) = lint(&["--plist", &plist]);
    assert_eq!(code, 1);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_finding(&findings[0], "PersonalityIOClass", &plist, key, message);
    let (code, r) = boot(&["--personality", &plist]);
    assert_refused(code, &r, "PersonalityIOClass", &plist, key, message);
}

#[test]
fn an_iouserclass_that_names_no_compiled_class_is_named() {
    let s = Scratch::new("userclass");
    let plist = s.copy("Info.plist", |t| {
        t.replace("<string>DkRaidController</string>", "<string>DkRaidControllerV2</string>")
    });
    let key = "IOKitPersonalities:DkRaidController:IOUserClass";
    let (code, r) = boot(&["--personality", &plist]);
    assert_refused(
        code,
        &r,
        "PersonalityUserClass",
        &plist,
        key,
        "IOUserClass \"DkRaidControllerV2\" names no class compiled into the dext \
         (DkRaidController, DkRaidUserClient) — did you mean \"DkRaidController\"?",
    );
    let (code, findings) = lint(&["--plist", &plist]);
    assert_eq!(code, 1);
    assert_finding(
        finding(&findings, "PersonalityUserClass"),
        "PersonalityUserClass",
        &plist,
        key,
        "IOUserClass \"DkRaidControllerV2\" names no class declared in iig (DkRaidController, \
         DkRaidUserClient) \
         — did you mean \"DkRaidController\"?",
    );
}

#[test]
fn a_user_client_class_that_names_no_compiled_class_is_named() {
    let s = Scratch::new("userclientclass");
    let plist = s.copy("Info.plist", |t| {
        t.replace("<string>DkRaidUserClient</string>", "<string>DkRaidUserClnt</string>")
    });
    let key = "IOKitPersonalities:DkRaidController:UserClientProperties";
    let (code, r) = boot(&["--personality", &plist]);
    assert_refused(
        code,
        &r,
        "PersonalityUserClientProperties",
        &plist,
        key,
        "UserClientProperties' IOUserClass \"DkRaidUserClnt\" names no class compiled into the \
         dext (DkRaidController, DkRaidUserClient) — did you mean \"DkRaidUserClient\"?: no app \
         can connect",
    );
    let (code, findings) = lint(&["--plist", &plist]);
    assert_eq!(code, 1);
    let f = finding(&findings, "PersonalityUserClientProperties");
    assert!(f["message"].as_str().unwrap().contains("names no class declared in iig"), "{f:#}");
    // The controller's class is no user client.
    let plist = s.copy("Info.plist", |t| {
        t.replace("<string>DkRaidUserClient</string>", "<string>DkRaidController</string>")
    });
    let (code, findings) = lint(&["--plist", &plist]);
    assert_eq!(code, 1);
    let f = finding(&findings, "PersonalityUserClientProperties");
    assert!(f["message"].as_str().unwrap().contains("does not derive from IOUserClient"), "{f:#}");
}

#[test]
fn a_removed_iouserservername_is_named() {
    let s = Scratch::new("servername");
    let plist = s.copy("Info.plist", |t| remove_key(&t, "IOUserServerName"));
    let key = "IOKitPersonalities:DkRaidController:IOUserServerName";
    let message = "IOUserServerName is missing: DriverKit does not know which dext process to \
                   launch; use the bundle identifier";
    let (code, findings) = lint(&["--plist", &plist]);
    assert_eq!(code, 1);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_finding(&findings[0], "PersonalityMissingKey", &plist, key, message);
    let (code, r) = boot(&["--personality", &plist]);
    assert_refused(code, &r, "PersonalityMissingKey", &plist, key, message);
}

#[test]
fn a_misspelled_pci_match_key_names_the_real_one() {
    let s = Scratch::new("pcimatch-misspelled");
    let plist = s.copy("Info.plist", |t| {
        t.replace("<key>IOPCIPrimaryMatch</key>", "<key>IOPCIPrimaryMacth</key>")
    });
    let key = "IOKitPersonalities:DkRaidController:IOPCIPrimaryMacth";
    let message = "\"IOPCIPrimaryMacth\" is not a personality key — did you mean \
                   \"IOPCIPrimaryMatch\"? The kernel ignores unknown keys, so this personality \
                   has no IOPCIPrimaryMatch.";
    let (code, findings) = lint(&["--plist", &plist]);
    assert_eq!(code, 1);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_finding(&findings[0], "PersonalityMisspelledKey", &plist, key, message);
    let (code, r) = boot(&["--personality", &plist]);
    assert_refused(code, &r, "PersonalityMisspelledKey", &plist, key, message);
    // Without a PCI key the personality matches nothing either.
    violation(&r, "PersonalityNoMatch");
}

#[test]
fn an_invalid_bringupstage_is_named_and_the_stage_flag_overrides_it() {
    let s = Scratch::new("stage-invalid");
    let plist =
        s.copy("Info.plist", |t| t.replace("<string>pipeline</string>", "<string>stage0</string>"));
    let key = "IOKitPersonalities:DkRaidController:BringUpStage";
    let message = "BringUpStage is \"stage0\": not a bring-up stage; valid stages are pipeline, \
                   fake-block, single-io, full";
    let (code, r) = boot(&["--personality", &plist]);
    assert_refused(code, &r, "PersonalityBringUpStage", &plist, key, message);
    let (code, findings) = lint(&["--plist", &plist]);
    assert_eq!(code, 1);
    assert_finding(
        finding(&findings, "PersonalityBringUpStage"),
        "PersonalityBringUpStage",
        &plist,
        key,
        message,
    );
    // --stage replaces the property before anyone reads it.
    let (code, r) = boot(&["--personality", &plist, "--stage", "pipeline"]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["properties"]["BringUpStage"], "pipeline");
}

#[test]
fn the_stage_comes_from_the_personality() {
    let s = Scratch::new("stage-full");
    let plist =
        s.copy("Info.plist", |t| t.replace("<string>pipeline</string>", "<string>full</string>"));
    let (code, r) = boot(&["--personality", &plist]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!((r["stage"].as_str(), r["targets"].clone()), (Some("full"), serde_json::json!([0])));
    assert_eq!(r["properties"]["BringUpStage"], "full");
    let (code, r) = boot(&["--personality", &plist, "--stage", "pipeline"]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["stage"], "pipeline");
}

#[test]
fn an_undefined_build_setting_is_named() {
    let s = Scratch::new("build-setting");
    let plist = s.copy("Info.plist", |t| t.replace("$(EXECUTABLE_NAME)", "$(EXECUTABLE_NAMES)"));
    let (code, findings) = lint(&["--plist", &plist]);
    assert_eq!(code, 1);
    assert_finding(
        finding(&findings, "BuildSettingUndefined"),
        "BuildSettingUndefined",
        &plist,
        "CFBundleExecutable",
        "$(EXECUTABLE_NAMES) names no build setting: Xcode expands it to an empty string \
         (define it in the target, or pass --set EXECUTABLE_NAMES=VALUE to dkraid-sim)",
    );
    let (code, _) = lint(&["--plist", &plist, "--set", "EXECUTABLE_NAMES=dkraid"]);
    assert_eq!(code, 0);
}

// ---------------------------------------------------------------------- PCI matching --

#[test]
fn another_pci_device_is_not_matched() {
    let (code, r) = boot(&["--pci-device", "1000:0073"]);
    assert_refused(
        code,
        &r,
        "PersonalityNoMatch",
        "Info.plist",
        "IOKitPersonalities",
        "no personality matches the simulated PCI device 1000:0073 (subsystem 1000:0073, class \
         010400): \"DkRaidController\": IOPCIPrimaryMatch \"0x10f01af4\" does not match \
         register 0x00 = 0x00731000",
    );
    let out = sim(&["boot", "--pci-device", "10f0"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn iopcimatch_lists_and_masks_match_subsystem_ids() {
    let s = Scratch::new("iopcimatch");
    // A list: an LSI controller, then a vendor-wide match of the subsystem vendor with a mask.
    let plist = s.copy("Info.plist", |t| {
        t.replace(
            "<key>IOPCIPrimaryMatch</key>\n\t\t\t<string>0x10f01af4</string>",
            "<key>IOPCIMatch</key>\n\t\t\t<string>0x00731000 0x00001028&amp;0x0000ffff</string>",
        )
    });
    // IOPCIMatch also tries the subsystem IDs: 1028:1f4d matches the second value.
    let (code, r) = boot(&["--personality", &plist, "--pci-device", "1af4:10f0:1028:1f4d"]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(
        r["personality"],
        format!(
            "DkRaidController in {plist}: IOPCIMatch \"0x00731000 0x00001028&0x0000ffff\" \
             matched register 0x2c = 0x1f4d1028"
        )
    );
    // IOPCIPrimaryMatch with the same list does not look at the subsystem IDs.
    let primary = s.copy("Info.plist", |t| {
        t.replace(
            "<key>IOPCIPrimaryMatch</key>\n\t\t\t<string>0x10f01af4</string>",
            "<key>IOPCIPrimaryMatch</key>\n\t\t\t<string>0x00731000 0x00001028&amp;0x0000ffff</string>",
        )
    });
    let (code, r) = boot(&["--personality", &primary, "--pci-device", "1af4:10f0:1028:1f4d"]);
    assert_eq!(code, 1);
    violation(&r, "PersonalityNoMatch");
}

#[test]
fn a_malformed_pci_match_is_named() {
    let s = Scratch::new("pcimatch-syntax");
    let plist = s.copy("Info.plist", |t| {
        t.replace("<string>0x10f01af4</string>", "<string>0x10f0,0x1af4</string>")
    });
    let (code, findings) = lint(&["--plist", &plist, "--no-app"]);
    assert_eq!(code, 1);
    assert_finding(
        finding(&findings, "PersonalityPciMatchSyntax"),
        "PersonalityPciMatchSyntax",
        &plist,
        "IOKitPersonalities:DkRaidController:IOPCIPrimaryMatch",
        "IOPCIPrimaryMatch \"0x10f0,0x1af4\": at character 7: ',' after \"0x10f0\": values are \
         separated by spaces (the kernel stops reading the list here)",
    );
}

// ---------------------------------------------------------------------- entitlements --

#[test]
fn the_family_entitlement_misspelled_as_scsi_controller_names_the_real_key() {
    let s = Scratch::new("scsi-controller");
    let ents = s.copy("entitlements/DkRaidDriver.entitlements", |t| {
        t.replace(FAMILY_SCSI, "com.apple.developer.driverkit.family.scsi-controller")
    });
    let key = "com.apple.developer.driverkit.family.scsi-controller";
    let message = "\"com.apple.developer.driverkit.family.scsi-controller\" is not an \
                   entitlement — did you mean \
                   \"com.apple.developer.driverkit.family.scsicontroller\"? A misspelled \
                   entitlement is ignored, so the bundle does not have \
                   com.apple.developer.driverkit.family.scsicontroller.";
    let (code, findings) = lint(&["--entitlements", &ents]);
    assert_eq!(code, 1);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_finding(&findings[0], "EntitlementMisspelled", &ents, key, message);
    let (code, r) = boot(&["--entitlements", &ents]);
    assert_refused(code, &r, "EntitlementMisspelled", &ents, key, message);
    assert_eq!(violation(&r, "EntitlementMisspelled")["call"], "check entitlements");
}

#[test]
fn a_removed_driverkit_entitlement_is_named() {
    let s = Scratch::new("driverkit-missing");
    let ents = s.copy("entitlements/DkRaidDriver.entitlements", |t| {
        remove_key(&t, "com.apple.developer.driverkit")
    });
    let key = "com.apple.developer.driverkit";
    let message =
        "com.apple.developer.driverkit is missing: every DriverKit extension needs it to run at all";
    let (code, findings) = lint(&["--entitlements", &ents]);
    assert_eq!(code, 1);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_finding(&findings[0], "EntitlementMissing", &ents, key, message);
    let (code, r) = boot(&["--entitlements", &ents]);
    assert_refused(code, &r, "EntitlementMissing", &ents, key, message);
}

#[test]
fn transport_pci_must_cover_the_device() {
    let s = Scratch::new("transport-pci");
    let ents = s.copy("entitlements/DkRaidDriver.entitlements", |t| {
        t.replace("<string>0x10f01af4</string>", "<string>0x00731000</string>")
    });
    let key = "com.apple.developer.driverkit.transport.pci";
    let (code, r) = boot(&["--entitlements", &ents]);
    assert_refused(
        code,
        &r,
        "EntitlementPciNoMatch",
        &ents,
        key,
        "com.apple.developer.driverkit.transport.pci does not allow the PCI device 1af4:10f0 \
         (subsystem 1af4:10f0, class 010400) that personality \"DkRaidController\" matched: the \
         kernel does not let the dext match it",
    );
    let (code, findings) = lint(&["--entitlements", &ents]);
    assert_eq!(code, 1);
    assert_finding(
        finding(&findings, "EntitlementPciNoOverlap"),
        "EntitlementPciNoOverlap",
        &ents,
        key,
        "com.apple.developer.driverkit.transport.pci allows 0x00731000&0xffffffff but \
         personality \"DkRaidController\" matches 0x10f01af4&0xffffffff: the dext would never \
         be allowed to match its own device",
    );
}

#[test]
fn the_admin_app_must_name_the_dext() {
    let s = Scratch::new("app");
    let app = s.copy("entitlements/DkRaidAdmin.entitlements", |t| {
        t.replace(
            "com.apple.developer.system-extension.install",
            "com.apple.developer.systemextension.install",
        )
    });
    let (code, findings) = lint(&["--app-entitlements", &app]);
    assert_eq!(code, 1);
    assert_finding(
        finding(&findings, "EntitlementMisspelled"),
        "EntitlementMisspelled",
        &app,
        "com.apple.developer.systemextension.install",
        "\"com.apple.developer.systemextension.install\" is not an entitlement — did you mean \
         \"com.apple.developer.system-extension.install\"? A misspelled entitlement is ignored, \
         so the bundle does not have com.apple.developer.system-extension.install.",
    );
    // Another dext bundle identifier: the app's userclient-access no longer names it.
    let (code, findings) = lint(&["--set", "PRODUCT_BUNDLE_IDENTIFIER=com.example.raid"]);
    assert_eq!(code, 1);
    assert_finding(
        finding(&findings, "EntitlementUserClientAccess"),
        "EntitlementUserClientAccess",
        "entitlements/DkRaidAdmin.entitlements",
        "com.apple.developer.driverkit.userclient-access",
        "com.apple.developer.driverkit.userclient-access names [\"org.dkraid.driver\"], not the \
         dext's bundle identifier \"com.example.raid\": IOServiceOpen on the dext is refused",
    );
}

// --------------------------------------------------------------------------- queues --

fn line_of(path: &Path, needle: &str) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} in {}", path.display())) as u64
        + 1
}

#[test]
fn a_queue_name_without_its_declaration_is_named() {
    let s = Scratch::new("queue-undeclared");
    let iig = s.copy_dir("iig");
    let dext = s.copy_dir("dext");
    // Drop every QUEUENAME(InterruptQueue) from the copy of the .iig (InterruptOccurred's and
    // ServiceTimerOccurred's): the dext still registers "InterruptQueue", which no method
    // declares any more.
    let iig_file = iig.join("DkRaidController.iig");
    let text = std::fs::read_to_string(&iig_file).unwrap();
    let edited = text.replace(" QUEUENAME(InterruptQueue);", ";");
    assert_ne!(edited, text);
    std::fs::write(&iig_file, edited).unwrap();
    let (iig_arg, dext_arg) = (iig.to_str().unwrap(), dext.to_str().unwrap());
    let (code, findings) = lint(&["--iig", iig_arg, "--dext", dext_arg]);
    assert_eq!(code, 1);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    let cpp = dext.join("DkRaidController.cpp");
    assert_eq!(f["rule"], "UndeclaredQueueName");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["file"], cpp.to_str().unwrap());
    assert_eq!(f["line"], line_of(&cpp, "SetDispatchQueue(kDkRaidInterruptQueueName"));
    assert_eq!(
        f["message"],
        "SetDispatchQueue(\"InterruptQueue\", …): no method of the class hierarchy is declared \
         QUEUENAME(InterruptQueue), so DriverKit returns kIOReturnBadArgument (0xe00002c2); \
         declared: AuxiliaryQueue, IOUserClientQueueExternalMethod, TargetQueue"
    );
}

#[test]
fn a_literal_queue_name_without_its_declaration_is_named() {
    let s = Scratch::new("queue-literal");
    let dext = s.copy_dir("dext");
    let cpp = dext.join("DkRaidController.cpp");
    let text = std::fs::read_to_string(&cpp).unwrap();
    let anchor = "    DKRAID_CHECK(\"SetDispatchQueue(InterruptQueue)\",";
    assert!(text.contains(anchor));
    let edited = text.replacen(
        anchor,
        &format!("    SetDispatchQueue(\"IOQueue\", ivars->targetQueue);\n{anchor}"),
        1,
    );
    std::fs::write(&cpp, edited).unwrap();
    let (code, findings) = lint(&["--dext", dext.to_str().unwrap()]);
    assert_eq!(code, 1);
    let f = finding(&findings, "UndeclaredQueueName");
    assert_eq!(f["line"], line_of(&cpp, "SetDispatchQueue(\"IOQueue\", ivars->targetQueue);"));
    assert!(f["message"].as_str().unwrap().starts_with("SetDispatchQueue(\"IOQueue\", …)"));
}

#[test]
fn the_undeclared_queue_variant_is_caught_without_booting() {
    // The variant's extra SetDispatchQueue sits behind #if defined(DKRAID_VARIANT_…).
    let (code, findings) = lint(&["--define", "DKRAID_VARIANT_UNDECLARED_QUEUE"]);
    assert_eq!(code, 1);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f["rule"], "UndeclaredQueueName");
    assert_eq!(f["file"], "dext/DkRaidController.cpp");
    assert_eq!(
        f["line"],
        line_of(&repo().join("dext/DkRaidController.cpp"), "SetDispatchQueue(\"IOQueue\"")
    );
}

#[test]
fn a_declared_queue_that_is_never_registered_is_named() {
    let s = Scratch::new("queue-unregistered");
    let dext = s.copy_dir("dext");
    let cpp = dext.join("DkRaidController.cpp");
    let text = std::fs::read_to_string(&cpp).unwrap();
    let call = "SetDispatchQueue(kDkRaidAuxiliaryQueueName, ivars->auxiliaryQueue)";
    assert!(text.contains(call));
    std::fs::write(&cpp, text.replace(call, "kIOReturnSuccess")).unwrap();
    let (code, findings) = lint(&["--dext", dext.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f["rule"], "QueueNotRegistered");
    assert_eq!(f["file"], "iig/DkRaidController.iig");
    assert_eq!(
        f["message"],
        "the SDK declares IOUserSCSIParallelInterfaceController::UserCreateTargetForID \
         QUEUENAME(AuxiliaryQueue) but DriverKit does not create that queue: without it a \
         target create never dispatches and start wedges; no SetDispatchQueue(\"AuxiliaryQueue\", …) \
         in the dext's sources"
    );
}
