//! `dkraid-sim`: boot the dkraid dext on a simulated Mac and name every DriverKit rule it breaks.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use dkraid_core::Stage;
use dkraid_testbed::boot::{self, BootConfig, EmergencyOutput};
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
    /// Boot the dext and report the timeline, the summary and every violation.
    Boot {
        /// Bring-up stage: pipeline, fake-block, single-io, full.
        #[arg(long, default_value = "pipeline")]
        stage: String,
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
        trace_out: Option<std::path::PathBuf>,
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
        Command::Boot { stage, seed, variant, page_size, json, trace_out } => {
            let stage = match Stage::parse(&stage) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("dkraid-sim: {e}");
                    return ExitCode::from(2);
                }
            };
            if stage != Stage::Pipeline {
                eprintln!(
                    "dkraid-sim: stage {stage} is not built yet; this test-bed boots stage \
                     pipeline (the SCSI emulation, fake block device and firmware stages come \
                     with their issues)"
                );
                return ExitCode::from(2);
            }
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
            boot::set_emergency_output(EmergencyOutput { json });
            let config = BootConfig {
                stage,
                seed,
                variant,
                page_size: match page_size {
                    PageSize::K16 => 16384,
                    PageSize::K4 => 4096,
                },
                ..BootConfig::default()
            };
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
