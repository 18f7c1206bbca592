//! `dkraid-sim`: boot the dkraid dext on a simulated Mac and name every DriverKit rule it breaks.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use dkraid_core::Stage;
use dkraid_testbed::boot::{self, BootConfig, EmergencyOutput};
use dkraid_testbed::bundle::lint::{self, LintRequest};
use dkraid_testbed::bundle::matching::{self, MatchRequest};
use dkraid_testbed::bundle::{self as bundle_files, BuildSettings, Source};
use dkraid_testbed::controller::{ArraySpec, ControllerConfig};
use dkraid_testbed::pci::SimPciDevice;
use dkraid_testbed::{cli_output, faults, passthrough, raid, trace, variants, workload};

#[derive(Parser)]
#[command(name = "dkraid-sim", version, about = "Boot the dkraid dext on a simulated Mac")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `mach_timebase_info` of the simulated Mac.
#[derive(Clone, Copy, ValueEnum)]
enum TimebaseArg {
    /// A 24 MHz tick: numer 125, denom 3.
    AppleSilicon,
    /// A tick is a nanosecond: numer 1, denom 1.
    Intel,
}

#[derive(Clone, Copy, ValueEnum)]
enum PageSize {
    #[value(name = "16k")]
    K16,
    #[value(name = "4k")]
    K4,
}

/// How to boot: the flags `boot`, `io` and `scsi` share.
#[derive(Args, Clone)]
struct BootArgs {
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
    /// mach_absolute_time's tick of the simulated Mac: apple-silicon (125/3 ns) or intel (1 ns).
    #[arg(long, value_enum, default_value = "apple-silicon")]
    timebase: TimebaseArg,
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
    /// Stages single-io and full: the controller's drives, COUNTxSIZE[,...] (e.g. 6x2GiB)
    /// [default: 6x2GiB, a RAID 5 over drives 0-4 and drive 5 a hot spare].
    #[arg(long, value_name = "SPEC")]
    drives: Option<String>,
    /// A RAID volume, LEVEL:DRIVES[:strip=64k][:block=4096][:cache=wt] (e.g. raid5:0-4);
    /// repeatable; volume N is target N.
    #[arg(long = "volume", value_name = "SPEC")]
    volumes: Vec<String>,
    /// Hot-spare drives (e.g. 5 or 5,6); repeatable.
    #[arg(long = "spare", value_name = "DRIVES")]
    spares: Vec<String>,
    /// Keep the drives in sparse files, drive-NN.img, in this directory [default: memory].
    #[arg(long, value_name = "DIR")]
    backing: Option<PathBuf>,
}

/// `io`'s fault injection (`dkraid_testbed::faults`); PCT is a percentage of the bytes done.
#[derive(Args, Clone, Default)]
struct FaultArgs {
    /// Fail drive D when PCT% of the workload is done (repeatable).
    #[arg(long, value_name = "D:PCT")]
    fail_drive: Vec<String>,
    /// The controller resets itself (drops everything in flight) at PCT% (repeatable).
    #[arg(long, value_name = "PCT")]
    reset_at: Vec<String>,
    /// The firmware takes no request for MS milliseconds from PCT% (repeatable).
    #[arg(long, value_name = "MS:PCT")]
    stall_firmware: Vec<String>,
    /// The firmware never posts the next N replies (from the start).
    #[arg(long, value_name = "N")]
    drop_replies: Option<String>,
    /// N reply-ring entries of random bytes at PCT% (repeatable).
    #[arg(long, value_name = "N:PCT")]
    garbage_replies: Vec<String>,
    /// Create a volume at PCT% (hot plug), LEVEL:DRIVES[:...]@PCT (repeatable).
    #[arg(long, value_name = "SPEC@PCT")]
    create_volume: Vec<String>,
    /// Delete volume V at PCT% (hot unplug) (repeatable).
    #[arg(long, value_name = "V:PCT")]
    delete_volume: Vec<String>,
    /// The controller loses its write-back cache unflushed at PCT% (acknowledged writes
    /// vanish: what `--verify` exists to catch).
    #[arg(long, value_name = "PCT")]
    lose_cache: Option<String>,
    /// The kernel aborts its newest outstanding task (UserAbortTaskRequest) at PCT%
    /// (repeatable).
    #[arg(long, value_name = "PCT")]
    abort_task: Vec<String>,
    /// The kernel resets target T (UserTargetResetRequest) at PCT% (repeatable).
    #[arg(long, value_name = "T:PCT")]
    target_reset: Vec<String>,
}

impl FaultArgs {
    fn parse(&self) -> Result<Vec<faults::Fault>, String> {
        use faults::Fault;
        let mut out = Vec::new();
        for t in &self.fail_drive {
            out.push(Fault::fail_drive(t)?);
        }
        for t in &self.reset_at {
            out.push(Fault::reset_at(t)?);
        }
        for t in &self.stall_firmware {
            out.push(Fault::stall(t)?);
        }
        if let Some(t) = &self.drop_replies {
            out.push(Fault::drop_replies(t)?);
        }
        for t in &self.garbage_replies {
            out.push(Fault::garbage(t)?);
        }
        for t in &self.create_volume {
            out.push(Fault::create_volume(t)?);
        }
        for t in &self.delete_volume {
            out.push(Fault::delete_volume(t)?);
        }
        if let Some(t) = &self.lose_cache {
            out.push(Fault::lose_cache(t)?);
        }
        for t in &self.abort_task {
            out.push(Fault::abort_task(t)?);
        }
        for t in &self.target_reset {
            out.push(Fault::target_reset(t)?);
        }
        Ok(out)
    }
}

// Parsed once per process: the size of the biggest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Match the bundle's personality against the simulated PCI device, boot the dext, and
    /// report the timeline, the summary and every violation.
    Boot {
        #[command(flatten)]
        boot: BootArgs,
        /// Print one JSON object instead of the timeline and summary.
        #[arg(long)]
        json: bool,
        /// Write the run in Chrome Trace Event format (Perfetto, chrome://tracing).
        #[arg(long)]
        trace_out: Option<PathBuf>,
    },
    /// Boot, then run a block workload through the whole stack (kernel model, dext, core,
    /// backend) and report I/Os, bytes, throughput in wall time and latency in virtual time.
    Io {
        #[command(flatten)]
        boot: BootArgs,
        /// Write this many bytes (e.g. 1GiB).
        #[arg(
            long,
            value_name = "SIZE",
            conflicts_with_all = ["read", "verify"],
            required_unless_present_any = ["read", "verify"]
        )]
        write: Option<String>,
        /// Read this many bytes.
        #[arg(long, value_name = "SIZE", conflicts_with = "verify")]
        read: Option<String>,
        /// Write this many bytes of a checksummed pattern, then read them back and report
        /// every block that differs, by LBA (like fio's verify).
        #[arg(long, value_name = "SIZE")]
        verify: Option<String>,
        #[command(flatten)]
        faults: FaultArgs,
        /// Bytes per I/O (e.g. 1MiB).
        #[arg(long, value_name = "SIZE", default_value = "1MiB")]
        block: String,
        /// I/Os in flight.
        #[arg(long, default_value_t = 32)]
        qd: u32,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Boot, then send one CDB to a target through the simulated kernel (an sg_raw for the
    /// simulated Mac) and print the status, sense and data-in.
    Scsi {
        #[command(flatten)]
        boot: BootArgs,
        #[arg(long, default_value_t = 0)]
        target: u64,
        #[arg(long, default_value_t = 0)]
        lun: u64,
        /// The CDB in hex, e.g. "12 00 00 00 24 00".
        #[arg(long, value_name = "HEX")]
        cdb: String,
        /// Data-in bytes to accept.
        #[arg(long, value_name = "N", default_value_t = 0)]
        alloc: u64,
        /// Send this file as data-out.
        #[arg(long, value_name = "FILE", conflicts_with = "alloc")]
        data_out: Option<PathBuf>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Boot, then keep the simulated Mac running (paced to the wall clock) and serve the
    /// dext's user client on a Unix socket for `raidctl --socket PATH`, until a client sends
    /// the `shutdown` control command. Prints the report (with `--json`, one JSON object).
    Serve {
        #[command(flatten)]
        boot: BootArgs,
        /// The Unix socket to listen on (removed on exit).
        #[arg(long, value_name = "PATH")]
        socket: PathBuf,
        /// Run a verify workload of this many bytes on the first disk, pass after pass, while
        /// serving; any error or mismatch fails the command.
        #[arg(long, value_name = "SIZE")]
        verify: Option<String>,
        /// Bytes per I/O of the workload.
        #[arg(long, value_name = "SIZE", default_value = "64KiB")]
        block: String,
        /// The workload's I/Os in flight.
        #[arg(long, default_value_t = 4)]
        qd: u32,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Boot, then export the disks the driver presents as iSCSI targets (RFC 7143), target N
    /// as iqn.2025-01.org.dkraid:sim.tN LUN 0, until SIGINT or SIGTERM; then print the report.
    /// Every command goes through the kernel model, the dext, the core and the controller.
    Iscsi {
        #[command(flatten)]
        boot: BootArgs,
        /// Address and port to listen on (port 0: any free port).
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:3260")]
        listen: String,
        /// Connections served at once; more are refused at login.
        #[arg(long, default_value_t = 8)]
        max_connections: usize,
        #[command(flatten)]
        faults: FaultArgs,
        /// The data moved through the target over which the faults' PCT counts.
        #[arg(long, value_name = "SIZE", default_value = "64MiB")]
        fault_span: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Send a control command to a running `serve`: `fail-drive N` (the drive dies now),
    /// `status` (JSON), `shutdown` (stop serving, stop the driver, print the report).
    Ctl {
        /// The server's socket.
        #[arg(long, value_name = "PATH")]
        socket: PathBuf,
        /// The command and its arguments.
        #[arg(required = true, num_args = 1..)]
        command: Vec<String>,
    },
    /// Check a DriverKit SCSI controller bundle without booting it: the personality, the
    /// entitlements, QUEUENAME vs SetDispatchQueue in the sources, and the Mac build's
    /// project.yml against them.
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
        /// The Mac build's XcodeGen project.yml [default: project.yml when linting the shipped
        /// bundle (no --plist/--entitlements/--app-entitlements/--iig/--dext); none otherwise].
        #[arg(long, value_name = "FILE")]
        project: Option<PathBuf>,
        /// Print one JSON object with a `findings` list.
        #[arg(long)]
        json: bool,
        /// List the rules and exit.
        #[arg(long)]
        list_rules: bool,
    },
    /// Run many seeds, each a random but deterministic array, verify workload and fault
    /// schedule (`dkraid-sim io ... --json` in child processes), and report every seed that
    /// failed with the `dkraid-sim io` command that reproduces it (docs/CAMPAIGN.md).
    Campaign {
        /// How many seeds to run.
        #[arg(long, value_name = "N")]
        seeds: u64,
        /// The first seed.
        #[arg(long, value_name = "S", default_value_t = 1)]
        first_seed: u64,
        /// The fault schedules: random, or none (random arrays and workloads only).
        #[arg(long, value_enum, default_value = "random")]
        faults: CampaignFaults,
        /// Seeds run at once [default: the CPU count].
        #[arg(long, value_name = "J")]
        jobs: Option<usize>,
        /// Run every seed against a broken build (see `dkraid-sim variants`).
        #[arg(long)]
        variant: Option<String>,
        /// Wall-clock seconds a seed may take before it is killed and reported.
        #[arg(long, value_name = "SECS", default_value_t = 120)]
        timeout: u64,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List the broken variants and what each breaks.
    Variants,
}

#[derive(Clone, Copy, ValueEnum)]
enum CampaignFaults {
    Random,
    None,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Campaign { seeds, first_seed, faults, jobs, variant, timeout, json } => {
            run_campaign(seeds, first_seed, faults, jobs, variant, timeout, json)
        }
        Command::Variants => {
            for v in variants::VARIANTS {
                let scenario = v.scenario.map(|s| format!(" [{s}]")).unwrap_or_default();
                println!(
                    "{:<22} {} (caught as {}){scenario}",
                    v.name, v.description, v.expected_rule
                );
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
            project,
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
            // The shipped project goes with the shipped bundle; another bundle names its own.
            let shipped_bundle = plist.is_none()
                && entitlements.is_none()
                && app_entitlements.is_none()
                && iig.is_none()
                && dext.is_none();
            let project = match project {
                Some(p) => Some(Source::given(&p)),
                None => shipped_bundle.then(|| Source::shipped(bundle_files::SHIPPED_PROJECT)),
            };
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
                project,
            };
            let report = lint::lint(&request);
            lint::print(&report, json);
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Command::Boot { boot: args, json, trace_out } => {
            let config = match prepare(&args, json, None) {
                Ok(c) => c,
                Err(code) => return code,
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
            exit_for(&report)
        }
        Command::Io { boot: args, write, read, verify, faults, block, qd, json } => {
            let (is_write, size) = match (&write, &read, &verify) {
                (Some(w), _, _) => (true, w),
                (None, Some(r), _) => (false, r),
                (None, None, Some(v)) => (true, v),
                (None, None, None) => unreachable!("clap requires --write, --read or --verify"),
            };
            let faults = match faults.parse() {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("dkraid-sim: {e}");
                    return ExitCode::from(2);
                }
            };
            let sizes =
                workload::parse_size(size).and_then(|t| Ok((t, workload::parse_size(&block)?)));
            let (total_bytes, block_bytes) = match sizes {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("dkraid-sim: {e}");
                    return ExitCode::from(2);
                }
            };
            let io = workload::IoConfig {
                write: is_write,
                total_bytes,
                block_bytes,
                queue_depth: qd,
                verify: verify.is_some(),
            };
            let mut config = match prepare(&args, json, Some(boot::Action::Io(io))) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if !faults.is_empty() && !matches!(config.stage, Stage::SingleIo | Stage::Full) {
                eprintln!(
                    "dkraid-sim: fault injection acts on the RAID controller, which stage {} does \
                     not use; use --stage full",
                    config.stage
                );
                return ExitCode::from(2);
            }
            config.faults = faults;
            let work_bytes = if io.verify { 2 * total_bytes } else { total_bytes };
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(work_bytes),
                indicatif::ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {bytes}/{total_bytes} [{bar:40}] {bytes_per_sec} {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let progress_bar = bar.clone();
            let progress: workload::Progress =
                std::rc::Rc::new(move |done| progress_bar.set_position(done));
            let report = boot::boot_with_progress(&config, Some(progress));
            bar.finish_and_clear();
            // Failed I/Os or blocks that did not read back as written fail the command.
            let failed = report.io.as_ref().is_some_and(|io| io.errors > 0 || io.mismatches > 0);
            let code = print_action(&report, json, |r| {
                if let Some(io) = &r.io {
                    if json {
                        let mut v = serde_json::to_value(io).unwrap_or_default();
                        add_report_fields(&mut v, r);
                        v["seed"] = r.seed.into();
                        v["disks"] = serde_json::to_value(&r.disks).unwrap_or_default();
                        println!("{v}");
                    } else {
                        workload::print(io);
                    }
                }
            });
            if failed && report.action_error.is_none() {
                ExitCode::from(1)
            } else {
                code
            }
        }
        Command::Serve { boot: args, socket, verify, block, qd, json } => {
            let workload = match &verify {
                None => None,
                Some(size) => {
                    match workload::parse_size(size)
                        .and_then(|t| Ok((t, workload::parse_size(&block)?)))
                    {
                        Ok((total_bytes, block_bytes)) => Some(workload::IoConfig {
                            write: true,
                            total_bytes,
                            block_bytes,
                            queue_depth: qd,
                            verify: true,
                        }),
                        Err(e) => {
                            eprintln!("dkraid-sim: {e}");
                            return ExitCode::from(2);
                        }
                    }
                }
            };
            if socket.exists() {
                // A server that was killed leaves its socket behind: nobody answers on it.
                if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                    eprintln!("dkraid-sim: another server is listening on {}", socket.display());
                    return ExitCode::from(2);
                }
                if let Err(e) = std::fs::remove_file(&socket) {
                    eprintln!("dkraid-sim: cannot remove the stale {}: {e}", socket.display());
                    return ExitCode::from(2);
                }
            }
            let cfg = dkraid_testbed::serve::ServeConfig { socket, workload };
            let config = match prepare(&args, json, Some(boot::Action::Serve(cfg))) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let report = boot::boot(&config);
            let failed = report
                .serve
                .as_ref()
                .is_some_and(|s| s.errors > 0 || s.mismatches > 0 || s.first_error.is_some());
            let code = print_action(&report, json, |r| {
                if let Some(s) = &r.serve {
                    if json {
                        let mut v = serde_json::to_value(s).unwrap_or_default();
                        add_report_fields(&mut v, r);
                        v["outcome"] = r.outcome.clone().into();
                        println!("{v}");
                    } else {
                        println!(
                            "served {} connections, {} calls, {} async completions; workload: \
                             {} passes, {} I/Os, {} errors, {} mismatches",
                            s.connections,
                            s.calls,
                            s.async_completions,
                            s.passes,
                            s.ios,
                            s.errors,
                            s.mismatches
                        );
                    }
                }
            });
            if failed && report.action_error.is_none() {
                ExitCode::from(1)
            } else {
                code
            }
        }
        Command::Iscsi { boot: args, listen, max_connections, faults, fault_span, json } => {
            let faults = match faults.parse() {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("dkraid-sim: {e}");
                    return ExitCode::from(2);
                }
            };
            let span = match workload::parse_size(&fault_span) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("dkraid-sim: --fault-span: {e}");
                    return ExitCode::from(2);
                }
            };
            let mut cfg = dkraid_testbed::iscsi::IscsiConfig::new(&listen);
            cfg.max_connections = max_connections.max(1);
            cfg.fault_span = span;
            let mut config = match prepare(&args, json, Some(boot::Action::Iscsi(cfg))) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if !faults.is_empty() && !matches!(config.stage, Stage::SingleIo | Stage::Full) {
                eprintln!(
                    "dkraid-sim: fault injection acts on the RAID controller, which stage {} does \
                     not use; use --stage full",
                    config.stage
                );
                return ExitCode::from(2);
            }
            config.faults = faults;
            let report = boot::boot(&config);
            print_action(&report, json, |r| {
                if let Some(s) = &r.iscsi {
                    if json {
                        let mut v = serde_json::to_value(s).unwrap_or_default();
                        add_report_fields(&mut v, r);
                        v["outcome"] = r.outcome.clone().into();
                        println!("{v}");
                    } else {
                        println!(
                            "served {} connections ({} refused), {} logins ({} failed), {} \
                             commands, {} bytes in, {} bytes out, {} task management, {} \
                             rejects, {} out-of-window commands ignored",
                            s.stats.connections,
                            s.stats.refused_connections,
                            s.stats.logins,
                            s.stats.failed_logins,
                            s.stats.commands,
                            s.stats.bytes_in,
                            s.stats.bytes_out,
                            s.stats.task_management,
                            s.stats.rejects,
                            s.stats.ignored_out_of_window
                        );
                        for f in &s.faults {
                            println!("fault: {} -> {}", f.fault, f.result);
                        }
                        for e in &s.stats.errors {
                            println!("protocol error: {e}");
                        }
                    }
                }
            })
        }
        Command::Ctl { socket, command } => {
            use dkraid_testbed::sockwire::{self, Message};
            let stream = match std::os::unix::net::UnixStream::connect(&socket) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!(
                        "dkraid-sim: no server on {}: {e} (start one with dkraid-sim serve \
                         --socket {})",
                        socket.display(),
                        socket.display()
                    );
                    return ExitCode::from(3);
                }
            };
            let mut writer = match stream.try_clone() {
                Ok(w) => w,
                Err(e) => {
                    eprintln!("dkraid-sim: {e}");
                    return ExitCode::from(3);
                }
            };
            let mut reader = std::io::BufReader::new(stream);
            let request = Message::SimControl { command: command.join(" ") };
            let reply = sockwire::write_message(&mut writer, &request)
                .map_err(|e| e.to_string())
                .and_then(|()| sockwire::read_message(&mut reader).map_err(|e| e.to_string()));
            match reply {
                Ok(Message::SimControlReply { status: 0, text }) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Ok(Message::SimControlReply { text, .. }) => {
                    eprintln!("dkraid-sim: {text}");
                    ExitCode::from(1)
                }
                Ok(other) => {
                    eprintln!("dkraid-sim: the server answered with {}", other.name());
                    ExitCode::from(1)
                }
                Err(e) => {
                    eprintln!("dkraid-sim: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Scsi { boot: args, target, lun, cdb, alloc, data_out, json } => {
            let cdb = match passthrough::parse_cdb(&cdb) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("dkraid-sim: --cdb: {e}");
                    return ExitCode::from(2);
                }
            };
            let data_out = match data_out.as_deref().map(std::fs::read) {
                None => None,
                Some(Ok(d)) => Some(d),
                Some(Err(e)) => {
                    eprintln!("dkraid-sim: --data-out: {e}");
                    return ExitCode::from(2);
                }
            };
            let cmd = passthrough::ScsiCommand { target, lun, cdb, alloc, data_out };
            let config = match prepare(&args, json, Some(boot::Action::Scsi(cmd))) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let report = boot::boot(&config);
            print_action(&report, json, |r| {
                if let Some(s) = &r.scsi {
                    if json {
                        println!("{}", serde_json::to_string(s).unwrap_or_default());
                    } else {
                        passthrough::print(s);
                    }
                }
            })
        }
    }
}

/// `dkraid-sim campaign`: 0 when every seed passed, 1 when one failed, 2 on bad arguments.
fn run_campaign(
    seeds: u64,
    first_seed: u64,
    faults: CampaignFaults,
    jobs: Option<usize>,
    variant: Option<String>,
    timeout: u64,
    json: bool,
) -> ExitCode {
    use dkraid_testbed::campaign;
    if seeds == 0 {
        eprintln!("dkraid-sim: --seeds 0: a campaign runs at least one seed");
        return ExitCode::from(2);
    }
    if first_seed.checked_add(seeds).is_none() {
        eprintln!("dkraid-sim: --first-seed {first_seed} --seeds {seeds}: the seeds overflow u64");
        return ExitCode::from(2);
    }
    if jobs == Some(0) {
        eprintln!("dkraid-sim: --jobs 0: a campaign needs at least one job");
        return ExitCode::from(2);
    }
    if timeout == 0 {
        eprintln!("dkraid-sim: --timeout 0: a seed needs some wall time");
        return ExitCode::from(2);
    }
    if let Some(name) = &variant {
        if variants::find(name).is_none() {
            let names: Vec<_> = variants::VARIANTS.iter().map(|v| v.name).collect();
            eprintln!("dkraid-sim: no variant {name:?}; valid variants are {}", names.join(", "));
            return ExitCode::from(2);
        }
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("dkraid-sim: cannot find this binary to run the seeds: {e}");
            return ExitCode::from(2);
        }
    };
    let jobs = jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    let cfg = campaign::CampaignConfig {
        exe,
        first_seed,
        seeds,
        jobs,
        mode: match faults {
            CampaignFaults::Random => campaign::FaultMode::Random,
            CampaignFaults::None => campaign::FaultMode::None,
        },
        variant,
        timeout: std::time::Duration::from_secs(timeout),
    };
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(seeds),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} seeds {pos}/{len} [{bar:40}] {per_sec} {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = campaign::run(&cfg, &|done, failed| {
        bar.set_position(done);
        if failed > 0 {
            bar.set_message(format!("{failed} failed"));
        }
    });
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        campaign::print(&report);
    }
    if report.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// 0 without violations, 1 with.
fn exit_for(report: &boot::Report) -> ExitCode {
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Print an action's result; violations and an action that could not run go to stderr.
fn print_action(report: &boot::Report, json: bool, print: impl Fn(&boot::Report)) -> ExitCode {
    if let Some(e) = &report.action_error {
        eprintln!("dkraid-sim: {e}");
        return ExitCode::from(2);
    }
    print(report);
    if !report.ok() {
        if !json {
            println!();
        }
        for v in &report.violations {
            eprintln!("violation: {v}");
        }
    }
    exit_for(report)
}

/// What an action's JSON carries of its boot: the stage, violations, targets, the volumes and
/// firmware state the controller was left in, and the driver's log.
fn add_report_fields(v: &mut serde_json::Value, r: &boot::Report) {
    v["stage"] = r.stage.clone().into();
    v["page_size"] = r.page_size.into();
    v["timebase"] = r.timebase.clone().into();
    v["violations"] = serde_json::to_value(&r.violations).unwrap_or_default();
    v["targets"] = serde_json::to_value(&r.targets).unwrap_or_default();
    v["firmware_state"] = serde_json::to_value(&r.firmware_state).unwrap_or_default();
    v["volumes"] = serde_json::to_value(&r.volumes).unwrap_or_default();
    v["logs"] = serde_json::to_value(&r.logs).unwrap_or_default();
}

/// Parse the boot flags, match the bundle as the kernel does, and build the boot's config.
fn prepare(
    args: &BootArgs,
    json: bool,
    action: Option<boot::Action>,
) -> Result<BootConfig, ExitCode> {
    let stage_override = match args.stage.as_deref().map(Stage::parse) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            eprintln!("dkraid-sim: {e}");
            return Err(ExitCode::from(2));
        }
    };
    let variant = match args.variant.as_deref().map(|n| (n, variants::find(n))) {
        None => None,
        Some((_, Some(v))) => Some(v),
        Some((name, None)) => {
            let names: Vec<_> = variants::VARIANTS.iter().map(|v| v.name).collect();
            eprintln!("dkraid-sim: no variant {name:?}; valid variants are {}", names.join(", "));
            return Err(ExitCode::from(2));
        }
    };
    let device = match args.pci_device.as_deref().map(SimPciDevice::parse_ids) {
        None => SimPciDevice::default(),
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            eprintln!("dkraid-sim: --pci-device: {e}");
            return Err(ExitCode::from(2));
        }
    };
    let settings = build_settings(&args.settings)?;
    let mut config = BootConfig {
        stage: stage_override.unwrap_or(Stage::Pipeline),
        seed: args.seed,
        variant,
        page_size: match args.page_size {
            PageSize::K16 => 16384,
            PageSize::K4 => 4096,
        },
        timebase: match args.timebase {
            TimebaseArg::AppleSilicon => dkraid_testbed::timebase::Timebase::APPLE_SILICON,
            TimebaseArg::Intel => dkraid_testbed::timebase::Timebase::INTEL,
        },
        device,
        action,
        ..BootConfig::default()
    };
    // The kernel matches the bundle before any dext code runs.
    let request = MatchRequest {
        plist: Source::or_shipped(args.personality.as_deref(), bundle_files::SHIPPED_PLIST),
        entitlements: Source::or_shipped(
            args.entitlements.as_deref(),
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
            return Err(ExitCode::from(1));
        }
    };
    let stage = matched.stage;
    let array_given = args.drives.is_some()
        || !args.volumes.is_empty()
        || !args.spares.is_empty()
        || args.backing.is_some();
    if matches!(stage, Stage::SingleIo | Stage::Full) {
        config.controller = Some(controller_config(args)?);
    } else if array_given {
        eprintln!(
            "dkraid-sim: --drives/--volume/--spare/--backing describe the RAID controller, \
             which stage {stage} (from {}) does not use; use --stage single-io or full",
            matched.stage_source
        );
        return Err(ExitCode::from(2));
    }
    config.stage = stage;
    config.matched = Some(matched);
    boot::set_emergency_output(EmergencyOutput { json });
    Ok(config)
}

/// The simulated controller from `--drives/--volume/--spare/--backing`; exit status 2 on a bad
/// spec (the error quotes the token).
fn controller_config(args: &BootArgs) -> Result<ControllerConfig, ExitCode> {
    let volumes: Vec<&str> = args.volumes.iter().map(String::as_str).collect();
    let spares: Vec<&str> = args.spares.iter().map(String::as_str).collect();
    let spec = match raid::ArraySpec::parse(args.drives.as_deref(), &volumes, &spares) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dkraid-sim: {e}");
            return Err(ExitCode::from(2));
        }
    };
    let backing = match &args.backing {
        None => raid::Backing::Memory,
        Some(dir) => {
            if let Err(e) = std::fs::create_dir_all(dir) {
                eprintln!("dkraid-sim: --backing {}: {e}", dir.display());
                return Err(ExitCode::from(2));
            }
            raid::Backing::Files(dir.clone())
        }
    };
    // Build it once here so a spec the engine refuses is a usage error, not a failed boot.
    if let Err(e) = spec.build(&backing) {
        eprintln!("dkraid-sim: {e}");
        return Err(ExitCode::from(2));
    }
    Ok(ControllerConfig::with_array(ArraySpec::Raid { spec, backing }))
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

#[cfg(test)]
mod campaign_cli_tests {
    use super::*;
    use dkraid_testbed::campaign::{FaultMode, Plan};

    /// Every command the campaign generates is one `dkraid-sim io` accepts: clap parses it,
    /// its faults and its array are valid.
    #[test]
    fn every_generated_command_parses() {
        for seed in 0..2000 {
            let plan = Plan::generate(seed, FaultMode::Random, Some("late-slot-free"));
            let cli = Cli::try_parse_from(
                std::iter::once("dkraid-sim".to_string()).chain(plan.args.clone()),
            )
            .unwrap_or_else(|e| panic!("seed {seed}: {e}: {}", plan.command()));
            let Command::Io { boot, faults, .. } = cli.command else {
                panic!("seed {seed}: not an io command");
            };
            assert!(faults.parse().is_ok(), "seed {seed}: {}", plan.command());
            assert!(controller_config(&boot).is_ok(), "seed {seed}: {}", plan.command());
        }
    }
}
