//! `dkraid-sim`: boot the dkraid dext on a simulated Mac and name every DriverKit rule it breaks.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use dkraid_core::Stage;
use dkraid_testbed::boot::{self, BootConfig, EmergencyOutput};
use dkraid_testbed::bundle::lint::{self, LintRequest};
use dkraid_testbed::bundle::matching::{self, MatchRequest};
use dkraid_testbed::bundle::{self as bundle_files, BuildSettings, Source};
use dkraid_testbed::pci::SimPciDevice;
use dkraid_testbed::{cli_output, trace, variants};

#[derive(Parser)]
#[command(name = "dkraid-sim", version, about = "Boot the dkraid dext on a simulated Mac")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum PageSize {
    #[value(name = "16k")]
    K16,
    #[value(name = "4k")]
    K4,
}

#[derive(Subcommand)]
enum Command {
    /// Match the bundle's personality against the simulated PCI device, boot the dext, and
    /// report the timeline, the summary and every violation.
    Boot {
        /// Bring-up stage: pipeline, fake-block, single-io, full [default: the personality's
        /// BringUpStage, else pipeline].
        #[arg(long)]
        stage: Option<String>,
        /// Seed of the deterministic scheduler.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Boot a deliberately broken build (see `dkraid-sim variants`).
        #[arg(long)]
        variant: Option<String>,
        /// IOVMPageSize of the simulated Mac.
        #[arg(long, value_enum, default_value = "16k")]
        page_size: PageSize,
        /// Print one JSON object instead of the timeline and summary.
        #[arg(long)]
        json: bool,
        /// Write the run in Chrome Trace Event format (Perfetto, chrome://tracing).
        #[arg(long)]
        trace_out: Option<PathBuf>,
        /// The bundle's Info.plist (or a file holding one personality) [default: Info.plist].
        #[arg(long, value_name = "FILE")]
        personality: Option<PathBuf>,
        /// The dext's entitlements [default: entitlements/DkRaidDriver.entitlements].
        #[arg(long, value_name = "FILE")]
        entitlements: Option<PathBuf>,
        /// The simulated PCI function, VENDOR:DEVICE[:SUBVENDOR:SUBSYSTEM] in hex
        /// [default: 1af4:10f0].
        #[arg(long, value_name = "IDS")]
        pci_device: Option<String>,
        /// An Xcode build setting for $(NAME) in the bundle (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        settings: Vec<String>,
    },
    /// Check a DriverKit SCSI controller bundle without booting it: the personality, the
    /// entitlements, and QUEUENAME vs SetDispatchQueue in the sources.
    Lint {
        /// The bundle's Info.plist [default: Info.plist].
        #[arg(long, value_name = "FILE")]
        plist: Option<PathBuf>,
        /// The dext's entitlements [default: entitlements/DkRaidDriver.entitlements].
        #[arg(long, value_name = "FILE")]
        entitlements: Option<PathBuf>,
        /// The admin app's entitlements [default: entitlements/DkRaidAdmin.entitlements].
        #[arg(long, value_name = "FILE")]
        app_entitlements: Option<PathBuf>,
        /// Skip the admin app's entitlements.
        #[arg(long, conflicts_with = "app_entitlements")]
        no_app: bool,
        /// The directory of the dext's .iig files [default: iig].
        #[arg(long, value_name = "DIR")]
        iig: Option<PathBuf>,
        /// The directory of the dext's C/C++ sources [default: dext].
        #[arg(long, value_name = "DIR")]
        dext: Option<PathBuf>,
        /// A macro for the sources' #if conditionals, NAME or NAME=VALUE (repeatable).
        #[arg(long, value_name = "NAME[=VALUE]")]
        define: Vec<String>,
        /// An Xcode build setting for $(NAME) in the bundle (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        settings: Vec<String>,
        /// Print one JSON object with a `findings` list.
        #[arg(long)]
        json: bool,
        /// List the rules and exit.
        #[arg(long)]
        list_rules: bool,
    },
    /// List the broken variants and what each breaks.
    Variants,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Variants => {
            for v in variants::VARIANTS {
                println!("{:<22} {} (caught as {})", v.name, v.description, v.expected_rule);
            }
            ExitCode::SUCCESS
        }
        Command::Lint {
            plist,
            entitlements,
            app_entitlements,
            no_app,
            iig,
            dext,
            define,
            settings,
            json,
            list_rules,
        } => {
            if list_rules {
                for r in bundle_files::RULES {
                    println!("{:<32} {} ({})", r.name, r.meaning, r.section);
                }
                return ExitCode::SUCCESS;
            }
            let settings = match build_settings(&settings) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let mut defines = Vec::new();
            for d in &define {
                match lint::parse_define(d) {
                    Ok(pair) => defines.push(pair),
                    Err(e) => {
                        eprintln!("dkraid-sim: --define {d}: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            let request = LintRequest {
                plist: Source::or_shipped(plist.as_deref(), bundle_files::SHIPPED_PLIST),
                entitlements: Source::or_shipped(
                    entitlements.as_deref(),
                    bundle_files::SHIPPED_DEXT_ENTITLEMENTS,
                ),
                app_entitlements: (!no_app).then(|| {
                    Source::or_shipped(
                        app_entitlements.as_deref(),
                        bundle_files::SHIPPED_APP_ENTITLEMENTS,
                    )
                }),
                iig_dir: Source::or_shipped(iig.as_deref(), bundle_files::SHIPPED_IIG_DIR),
                dext_dir: Source::or_shipped(dext.as_deref(), bundle_files::SHIPPED_DEXT_DIR),
                defines,
                settings,
            };
            let report = lint::lint(&request);
            lint::print(&report, json);
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Command::Boot {
            stage,
            seed,
            variant,
            page_size,
            json,
            trace_out,
            personality,
            entitlements,
            pci_device,
            settings,
        } => {
            let stage_override = match stage.as_deref().map(Stage::parse) {
                None => None,
                Some(Ok(s)) => Some(s),
                Some(Err(e)) => {
                    eprintln!("dkraid-sim: {e}");
                    return ExitCode::from(2);
                }
            };
            let variant = match variant.as_deref().map(|n| (n, variants::find(n))) {
                None => None,
                Some((_, Some(v))) => Some(v),
                Some((name, None)) => {
                    let names: Vec<_> = variants::VARIANTS.iter().map(|v| v.name).collect();
                    eprintln!(
                        "dkraid-sim: no variant {name:?}; valid variants are {}",
                        names.join(", ")
                    );
                    return ExitCode::from(2);
                }
            };
            let device = match pci_device.as_deref().map(SimPciDevice::parse_ids) {
                None => SimPciDevice::default(),
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    eprintln!("dkraid-sim: --pci-device: {e}");
                    return ExitCode::from(2);
                }
            };
            let settings = match build_settings(&settings) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let mut config = BootConfig {
                stage: stage_override.unwrap_or(Stage::Pipeline),
                seed,
                variant,
                page_size: match page_size {
                    PageSize::K16 => 16384,
                    PageSize::K4 => 4096,
                },
                device,
                ..BootConfig::default()
            };
            // The kernel matches the bundle before any dext code runs.
            let request = MatchRequest {
                plist: Source::or_shipped(personality.as_deref(), bundle_files::SHIPPED_PLIST),
                entitlements: Source::or_shipped(
                    entitlements.as_deref(),
                    bundle_files::SHIPPED_DEXT_ENTITLEMENTS,
                ),
                settings,
                device,
                compiled: boot::compiled_classes(variant),
                stage_override,
            };
            let matched = match matching::match_dext(&request) {
                Ok(m) => m,
                Err(refusal) => {
                    cli_output::print_report(&boot::refused(&config, &refusal), json);
                    return ExitCode::from(1);
                }
            };
            let stage = matched.stage;
            if stage != Stage::Pipeline {
                eprintln!(
                    "dkraid-sim: stage {stage} (from {}) is not built yet; this test-bed boots \
                     stage pipeline (the SCSI emulation, fake block device and firmware stages \
                     come with their issues)",
                    matched.stage_source
                );
                return ExitCode::from(2);
            }
            config.stage = stage;
            config.matched = Some(matched);
            boot::set_emergency_output(EmergencyOutput { json });
            let report = boot::boot(&config);
            if let Some(path) = trace_out {
                if let Err(e) =
                    std::fs::write(&path, trace::chrome_trace(&report.timeline, &report.logs))
                {
                    eprintln!("dkraid-sim: writing {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
            cli_output::print_report(&report, json);
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// `--set NAME=VALUE` over the default build settings; exit status 2 on a bad one.
fn build_settings(assignments: &[String]) -> Result<BuildSettings, ExitCode> {
    let mut settings = BuildSettings::default();
    for a in assignments {
        if let Err(e) = settings.set(a) {
            eprintln!("dkraid-sim: --set {a}: {e}");
            return Err(ExitCode::from(2));
        }
    }
    Ok(settings)
}
