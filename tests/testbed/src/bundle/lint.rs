//! `dkraid-sim lint`: check a SCSI controller dext's bundle without booting it — the
//! `Info.plist` (bundle keys, every personality), the dext's and the admin app's entitlements,
//! and the `QUEUENAME` consistency between the `.iig` files and the queue names the dext's
//! sources register, and the Mac build's `project.yml` against all of them. Every finding
//! carries its rule and where it is; any error fails.

use serde::Serialize;

use super::entitlements;
use super::personality;
use super::plist::PlistFile;
use super::project;
use super::queues;
use super::{BuildSettings, Finding, Severity, Source};

/// What to lint.
#[derive(Clone, Debug)]
pub struct LintRequest {
    pub plist: Source,
    pub entitlements: Source,
    /// The admin app's entitlements; None skips the app's checks.
    pub app_entitlements: Option<Source>,
    pub iig_dir: Source,
    pub dext_dir: Source,
    /// `--define NAME[=VALUE]` for the sources' conditionals.
    pub defines: Vec<(String, String)>,
    pub settings: BuildSettings,
    /// The Mac build's XcodeGen `project.yml`; None skips the project's checks.
    pub project: Option<Source>,
}

/// The files that were checked.
#[derive(Clone, Debug, Serialize)]
pub struct Checked {
    pub plist: String,
    pub entitlements: String,
    pub app_entitlements: Option<String>,
    pub iig: String,
    pub dext: String,
    pub project: Option<String>,
}

/// The result: one JSON object with `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct LintReport {
    pub checked: Checked,
    pub findings: Vec<Finding>,
    pub errors: usize,
    pub warnings: usize,
}

impl LintReport {
    pub fn ok(&self) -> bool {
        self.errors == 0
    }
}

/// Run every check.
pub fn lint(req: &LintRequest) -> LintReport {
    let mut findings = Vec::new();

    // The .iig files: the classes IOUserClass may name, and the QUEUENAMEs.
    let iig = queues::scan_iig(&req.iig_dir);
    findings.extend(iig.findings.iter().cloned());
    let catalog = iig.catalog(&format!("declared in {}", req.iig_dir.display));

    // Info.plist.
    let bundle = match PlistFile::load(&req.plist) {
        Ok(mut p) => {
            findings.extend(p.substitute(&req.settings));
            let b = personality::check(&p, Some(&catalog));
            findings.extend(b.findings.iter().cloned());
            Some(b)
        }
        Err(f) => {
            findings.push(f);
            None
        }
    };
    let bundle = bundle.unwrap_or_default();

    // The app's entitlements (read first: the dext's user-client check needs them).
    let mut app_access = None;
    if let Some(app) = &req.app_entitlements {
        match PlistFile::load(app) {
            Ok(mut p) => {
                let subst = p.substitute(&req.settings);
                let (access, f) = entitlements::check_app(&p, bundle.bundle_identifier.as_deref());
                app_access = Some((access, subst, f));
            }
            Err(f) => app_access = Some((Vec::new(), Vec::new(), vec![f])),
        }
    }

    // The dext's entitlements.
    match PlistFile::load(&req.entitlements) {
        Ok(mut p) => {
            findings.extend(p.substitute(&req.settings));
            let (ents, f) = entitlements::check_dext(&p, &bundle);
            findings.extend(f);
            findings.extend(entitlements::check_overlap(&p, &bundle, &ents));
            let access = app_access.as_ref().map(|(a, _, _)| a.as_slice());
            findings.extend(entitlements::check_user_client_access(&p, &bundle, &ents, access));
        }
        Err(f) => findings.push(f),
    }
    if let Some((_, subst, f)) = app_access {
        findings.extend(subst);
        findings.extend(f);
    }

    // QUEUENAME vs SetDispatchQueue.
    let (registrations, f) = queues::scan_sources(&req.dext_dir, &req.defines);
    findings.extend(f);
    if iig.findings.is_empty() {
        findings.extend(queues::check(&iig.declared, &registrations));
    }

    // The Mac build's project.yml against the bundle.
    if let Some(p) = &req.project {
        let against = project::Against {
            plist: &req.plist,
            entitlements: &req.entitlements,
            bundle_identifier: bundle.bundle_identifier.as_deref(),
        };
        findings.extend(project::check(p, against));
    }

    let errors = findings.iter().filter(|f| f.severity == Severity::Error).count();
    LintReport {
        checked: Checked {
            plist: req.plist.display.clone(),
            entitlements: req.entitlements.display.clone(),
            app_entitlements: req.app_entitlements.as_ref().map(|s| s.display.clone()),
            iig: req.iig_dir.display.clone(),
            dext: req.dext_dir.display.clone(),
            project: req.project.as_ref().map(|s| s.display.clone()),
        },
        warnings: findings.len() - errors,
        errors,
        findings,
    }
}

/// Print for people (one line per finding and a summary) or as one JSON object.
pub fn print(report: &LintReport, json: bool) {
    if json {
        println!("{}", serde_json::to_string(report).unwrap_or_default());
        return;
    }
    for f in &report.findings {
        println!("{f}");
    }
    let c = &report.checked;
    let mut files = vec![c.plist.as_str(), c.entitlements.as_str()];
    if let Some(a) = &c.app_entitlements {
        files.push(a);
    }
    files.push(c.iig.as_str());
    files.push(c.dext.as_str());
    if let Some(p) = &c.project {
        files.push(p);
    }
    if report.findings.is_empty() {
        println!("lint: clean ({})", files.join(", "));
    } else {
        println!(
            "lint: {} error{}, {} warning{} ({})",
            report.errors,
            if report.errors == 1 { "" } else { "s" },
            report.warnings,
            if report.warnings == 1 { "" } else { "s" },
            files.join(", ")
        );
    }
}

/// `NAME` or `NAME=VALUE` (a bare NAME is defined as 1, as `-D` does).
pub fn parse_define(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').unwrap_or((text, "1"));
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok((name.to_string(), value.to_string()))
    } else {
        Err(format!("{name:?} is not a macro name"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    fn shipped() -> LintRequest {
        LintRequest {
            plist: Source::shipped(SHIPPED_PLIST),
            entitlements: Source::shipped(SHIPPED_DEXT_ENTITLEMENTS),
            app_entitlements: Some(Source::shipped(SHIPPED_APP_ENTITLEMENTS)),
            iig_dir: Source::shipped(SHIPPED_IIG_DIR),
            dext_dir: Source::shipped(SHIPPED_DEXT_DIR),
            defines: Vec::new(),
            settings: BuildSettings::default(),
            project: Some(Source::shipped(SHIPPED_PROJECT)),
        }
    }

    #[test]
    fn the_shipped_bundle_lints_clean() {
        let r = lint(&shipped());
        assert!(r.findings.is_empty(), "{:#?}", r.findings);
        assert!(r.ok());
    }

    #[test]
    fn another_bundle_identifier_breaks_the_apps_access() {
        let mut req = shipped();
        req.settings.set("PRODUCT_BUNDLE_IDENTIFIER=com.example.raid").unwrap();
        let r = lint(&req);
        let rules: Vec<_> = r.findings.iter().map(|f| (f.rule, f.file.as_str())).collect();
        assert_eq!(
            rules,
            [
                ("EntitlementUserClientAccess", "entitlements/DkRaidAdmin.entitlements"),
                ("ProjectBundleIdentifier", "project.yml"),
            ]
        );
    }

    #[test]
    fn defines() {
        assert_eq!(parse_define("X"), Ok(("X".into(), "1".into())));
        assert_eq!(parse_define("X=0"), Ok(("X".into(), "0".into())));
        assert!(parse_define("=1").is_err());
        assert!(parse_define("9X").is_err());
    }
}
