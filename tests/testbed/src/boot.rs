//! Booting the dext on the simulated Mac: the kernel matches the controller, starts it (with
//! the 60 s registry-busy watchdog running), lets its asynchronous work settle, stops it and
//! releases it, then checks for leaks. The result is a [`Report`].

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Serialize;

use dkraid_core::Stage;

use crate::bundle::matching::{Matched, Refusal};
use crate::bundle::personality::{ClassCatalog, ClassDecl};
use crate::kernel::REGISTRY_BUSY_TIMEOUT_NS;
use crate::pci::SimPciDevice;
use crate::runtime::{self, DkSimClassInfo, Obj};
use crate::sched::{self, describe_chain, Outcome, Scheduler, Teardown};
use crate::trace::{Event, LogLine};
use crate::variants::{self, Variant};
use crate::verifier::Violation;
use crate::world::{self, violation, with_world, Property, RegistryProperty, World};

/// What to boot.
#[derive(Clone, Debug)]
pub struct BootConfig {
    pub stage: Stage,
    pub seed: u64,
    pub variant: Option<&'static Variant>,
    pub page_size: u64,
    /// `mach_timebase_info` of the simulated Mac: Apple silicon's 125/3 unless asked otherwise.
    pub timebase: crate::timebase::Timebase,
    /// Wall-clock limit for a simulated thread that never reaches a scheduling point.
    pub spin_limit: Duration,
    /// The PCI function the controller is offered.
    pub device: SimPciDevice,
    /// The personality the kernel matched (`bundle::matching`): its properties are the
    /// service's registry properties, and its stage must be `stage`. None: the dext sees only
    /// `BringUpStage = stage` and `IOUserClass`.
    pub matched: Option<Matched>,
    /// What a kernel client does once the controller started and its disks attached.
    pub action: Option<Action>,
    /// The simulated RAID controller behind the PCI function in stages `single-io` and `full`
    /// (`docs/CONTROLLER.md`); None: its default (the RAID engine's default array).
    pub controller: Option<crate::controller::ControllerConfig>,
    /// Faults injected into the controller during the action's workload (`crate::faults`).
    pub faults: Vec<crate::faults::Fault>,
}

/// Work for the booted system: a block workload, or one pass-through command.
#[derive(Clone, Debug)]
pub enum Action {
    Io(crate::workload::IoConfig),
    Scsi(crate::passthrough::ScsiCommand),
    /// `dkraid-sim serve`: the admin path on a Unix socket until a `shutdown`.
    Serve(crate::serve::ServeConfig),
    /// `dkraid-sim iscsi`: the disks exported as iSCSI targets until stopped.
    Iscsi(crate::iscsi::IscsiConfig),
}

impl Default for BootConfig {
    fn default() -> Self {
        BootConfig {
            stage: Stage::Pipeline,
            seed: 1,
            variant: None,
            page_size: 16384,
            timebase: crate::timebase::Timebase::APPLE_SILICON,
            spin_limit: Duration::from_secs(10),
            device: SimPciDevice::default(),
            matched: None,
            action: None,
            controller: None,
            faults: Vec::new(),
        }
    }
}

/// The result of a boot. Everything in it is a function of the config: two boots with the same
/// config serialize to the same bytes.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub seed: u64,
    pub stage: String,
    pub variant: Option<String>,
    pub page_size: u64,
    /// The simulated Mac's `mach_timebase_info`, e.g. `apple-silicon (125/3)`.
    pub timebase: String,
    /// The simulated PCI function, e.g. `1af4:10f0 (subsystem 1af4:10f0, class 010400)`.
    pub pci_device: String,
    /// Which personality matched and how (None when no bundle was matched).
    pub personality: Option<String>,
    /// The registry properties the dext's `CopyProperties` saw.
    pub properties: BTreeMap<String, Property>,
    pub outcome: String,
    pub started: bool,
    pub registered: bool,
    pub tasks_mapped: usize,
    pub queues_registered: Vec<String>,
    pub targets: Vec<u64>,
    /// The disks macOS would see (stage 1 and up).
    pub disks: Vec<crate::disk::DiskReport>,
    /// `dkraid-sim io`'s result.
    pub io: Option<crate::workload::IoReport>,
    /// `dkraid-sim scsi`'s result.
    pub scsi: Option<crate::passthrough::ScsiResult>,
    /// `dkraid-sim serve`'s result.
    pub serve: Option<crate::serve::ServeReport>,
    /// `dkraid-sim iscsi`'s result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iscsi: Option<crate::iscsi::IscsiReport>,
    /// Why the action could not run (no disk, a workload that does not fit, ...).
    pub action_error: Option<String>,
    /// The simulated controller's firmware state after the run (stages 2 and 3), e.g.
    /// `OPERATIONAL`.
    pub firmware_state: Option<String>,
    /// The RAID volumes as the controller's firmware left them (stages 2 and 3).
    pub volumes: Vec<crate::raid::VolumeInfo>,
    pub violations: Vec<Violation>,
    pub virtual_time_ns: u64,
    pub scheduling_points: u64,
    /// A fingerprint of the order in which the simulated threads made their shim calls.
    pub interleaving: String,
    pub timeline: Vec<Event>,
    pub logs: Vec<LogLine>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

extern "C" {
    fn dksim_class_info_default() -> *const DkSimClassInfo;
}

include!(concat!(env!("OUT_DIR"), "/variant_class_info.rs"));

fn class_info(variant: Option<&Variant>) -> &'static DkSimClassInfo {
    let p = match variant {
        // SAFETY: generated functions returning pointers to static class info.
        None => unsafe { dksim_class_info_default() },
        Some(v) => variant_class_info(v.name).expect("every variant is built"),
    };
    // SAFETY: non-NULL pointers to statics in the dext builds.
    unsafe { &*p }
}

fn class_bindings(info: &DkSimClassInfo) -> world::ClassBindings {
    let mut dext = Vec::new();
    let mut p = info.queue_bindings;
    // SAFETY: the generated table ends with {NULL, NULL}; strings are literals.
    unsafe {
        while !(*p).method.is_null() {
            let m = std::ffi::CStr::from_ptr((*p).method).to_string_lossy().into_owned();
            let q = std::ffi::CStr::from_ptr((*p).queue).to_string_lossy().into_owned();
            dext.push((m, q));
            p = p.add(1);
        }
    }
    // SAFETY: a literal.
    let name = unsafe { std::ffi::CStr::from_ptr(info.name) }.to_string_lossy().into_owned();
    world::ClassBindings { name, dext }
}

/// How fatal errors (a CPU fault on an IOVA, a spinning thread) print the report before the
/// process ends.
#[derive(Clone, Copy, Debug)]
pub struct EmergencyOutput {
    pub json: bool,
}

static EMERGENCY: OnceLock<EmergencyOutput> = OnceLock::new();
static EMERGENCY_CONFIG: OnceLock<(u64, Option<&'static str>, u64)> = OnceLock::new();

pub fn set_emergency_output(out: EmergencyOutput) {
    let _ = EMERGENCY.set(out);
}

fn on_iova_fault(address: u64) -> ! {
    let queue = world::current_queue_name();
    let v = world::try_with_world(|w| {
        let v = Violation {
            rule: "CpuDereferencedIova",
            queue: queue.clone(),
            call: world::current_call(w),
            values: format!("address={address:#x}"),
            section: "DRIVERKIT.md §5",
            message: format!(
                "the CPU dereferenced {address:#x}, a device address (IOVA) from PrepareForDMA. \
                 Device addresses are for the hardware; the dext's CPU mapping of a buffer is \
                 GetAddressRange's."
            ),
        };
        w.violations.push(v.clone());
        v
    });
    let report = world::try_with_world(|w| {
        let (seed, variant, page) = EMERGENCY_CONFIG.get().copied().unwrap_or((0, None, 0));
        partial_report(w, seed, variant, page, "stopped: CPU fault on an IOVA".into())
    });
    let json = EMERGENCY.get().is_some_and(|e| e.json);
    match report {
        Some(r) => crate::cli_output::print_report(&r, json),
        None => eprintln!("{v:?}"),
    }
    std::process::exit(1);
}

fn partial_report(
    w: &World,
    seed: u64,
    variant: Option<&str>,
    page_size: u64,
    outcome: String,
) -> Report {
    Report {
        seed,
        stage: w.stage.name().to_string(),
        variant: variant.map(str::to_string),
        page_size,
        timebase: w.timebase.name().to_string(),
        pci_device: w.pci_device.to_string(),
        personality: None,
        properties: w
            .properties
            .iter()
            .map(|p| (p.key.to_string_lossy().into_owned(), p.value.clone()))
            .collect(),
        outcome,
        started: w.family.registered,
        registered: w.family.registered,
        tasks_mapped: w.family.task_ids.len(),
        queues_registered: w.registered.keys().cloned().collect(),
        targets: w.family.targets.iter().copied().collect(),
        disks: w.disks.clone(),
        io: None,
        scsi: None,
        serve: None,
        iscsi: None,
        action_error: None,
        firmware_state: None,
        volumes: Vec::new(),
        violations: w.violations.clone(),
        virtual_time_ns: 0,
        scheduling_points: 0,
        interleaving: String::new(),
        timeline: w.events.clone(),
        logs: w.logs.clone(),
    }
}

/// Boot the dext once.
pub fn boot(config: &BootConfig) -> Report {
    boot_with_progress(config, None)
}

/// What the action phase produced.
#[derive(Default)]
struct ActionResult {
    io: Option<crate::workload::IoReport>,
    scsi: Option<crate::passthrough::ScsiResult>,
    serve: Option<crate::serve::ServeReport>,
    iscsi: Option<crate::iscsi::IscsiReport>,
    error: Option<String>,
}

/// Run the action on the booted system (on kernel client threads); `false` if the run did not
/// settle (a deadlock or a stop), so the controller must not be stopped normally.
fn run_action(
    scheduler: &mut Scheduler,
    config: &BootConfig,
    action: &Action,
    progress: Option<crate::workload::Progress>,
    out: &mut ActionResult,
) -> bool {
    let outcome = match action {
        Action::Io(cfg) => {
            let disk = with_world(|w| w.disks.iter().find(|d| d.attached).cloned());
            let Some(disk) = disk else {
                out.error = Some(format!(
                    "no disk to run I/O on: stage {} exposes no attached disk",
                    with_world(|w| w.stage)
                ));
                return true;
            };
            let workload = match crate::workload::Workload::new(*cfg, &disk, progress) {
                Ok(w) => w.with_faults(config.faults.clone(), config.seed),
                Err(e) => {
                    out.error = Some(e);
                    return true;
                }
            };
            for i in 0..cfg.queue_depth {
                scheduler.spawn(&format!("io-client-{i}"), workload.client());
            }
            let wall = std::time::Instant::now();
            let outcome = scheduler.run();
            out.io = Some(workload.report(wall.elapsed()));
            outcome
        }
        Action::Serve(cfg) => {
            let listener = match std::os::unix::net::UnixListener::bind(&cfg.socket) {
                Ok(l) => l,
                Err(e) => {
                    out.error = Some(format!("cannot listen on {}: {e}", cfg.socket.display()));
                    return true;
                }
            };
            eprintln!("dkraid-sim: serving the admin user client on {}", cfg.socket.display());
            let report = std::rc::Rc::new(std::cell::RefCell::new(Default::default()));
            let stop = std::rc::Rc::new(std::cell::RefCell::new(false));
            scheduler.spawn(
                "admin-server",
                crate::serve::serve_thread(listener, report.clone(), stop.clone()),
            );
            if let Some(io) = cfg.workload {
                scheduler.spawn(
                    "workload",
                    crate::serve::workload_thread(io, config.seed, report.clone(), stop.clone()),
                );
            }
            let outcome = scheduler.run();
            let _ = std::fs::remove_file(&cfg.socket);
            out.serve = Some(report.borrow().clone());
            outcome
        }
        Action::Iscsi(cfg) => {
            let listener = match crate::iscsi::bind(cfg) {
                Ok(l) => l,
                Err(e) => {
                    out.error = Some(e);
                    return true;
                }
            };
            let listen = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
            eprintln!("dkraid-sim: iSCSI target listening on {listen}");
            let report = std::rc::Rc::new(std::cell::RefCell::new(crate::iscsi::IscsiReport {
                listen,
                ..Default::default()
            }));
            scheduler.spawn(
                "iscsi-server",
                crate::iscsi::server_thread(
                    cfg.clone(),
                    listener,
                    report.clone(),
                    config.faults.clone(),
                    config.seed,
                ),
            );
            let outcome = scheduler.run();
            out.iscsi = Some(report.borrow().clone());
            outcome
        }
        Action::Scsi(cmd) => {
            let slot = std::rc::Rc::new(std::cell::RefCell::new(None));
            let filled = slot.clone();
            let cmd = cmd.clone();
            scheduler.spawn("scsi-client", move || {
                *filled.borrow_mut() = Some(crate::passthrough::run(&cmd));
            });
            let outcome = scheduler.run();
            out.scsi = slot.borrow_mut().take();
            outcome
        }
    };
    match &outcome {
        Outcome::Deadlock { chain, all_blocked } => {
            report_deadlock(chain, all_blocked);
            false
        }
        Outcome::Stopped { .. } => false,
        _ => true,
    }
}

/// Boot the dext once; `progress` hears about an I/O workload's bytes as they complete.
pub fn boot_with_progress(
    config: &BootConfig,
    progress: Option<crate::workload::Progress>,
) -> Report {
    crate::memory::install_iova_fault_handler(on_iova_fault);
    let _ = EMERGENCY_CONFIG.set((config.seed, config.variant.map(|v| v.name), config.page_size));
    let info = class_info(config.variant);
    let mut w = World::new(config.stage, config.page_size);
    w.timebase = config.timebase;
    w.class = class_bindings(info);
    w.pci_device = config.device;
    w.properties = match &config.matched {
        Some(m) => m.properties.iter().map(|(k, v)| RegistryProperty::new(k, v.clone())).collect(),
        None => vec![
            RegistryProperty::new("BringUpStage", Property::String(config.stage.name().into())),
            RegistryProperty::new("IOUserClass", Property::String(w.class.name.clone())),
        ],
    };
    // SAFETY: set before any dext code runs; read by the dext through IOLib.h.
    unsafe { runtime::IOVMPageSize = config.page_size };
    // SAFETY: a counter read.
    w.object_baseline = unsafe { runtime::dksim_live_objects() };
    World::install(w);
    let hardware = matches!(config.stage, Stage::SingleIo | Stage::Full);

    let mut scheduler = Scheduler::new(config.seed)
        .with_teardown(Teardown::Leak)
        .with_spin_watchdog(config.spin_limit, |spin| {
            eprintln!(
                "SpinWatchdog: simulated thread {} ran {} ms of wall-clock time without \
                 reaching a scheduling point; its last call was {}",
                spin.thread_name, spin.wall_ms, spin.last_call
            );
            std::process::exit(3);
        });

    let mut controller = None;
    if hardware {
        match crate::controller::Controller::try_new(config.controller.clone().unwrap_or_default())
        {
            Ok(c) => {
                with_world(|w| w.controller = Some(c.clone()));
                c.start_on(&mut scheduler);
                controller = Some(c);
            }
            Err(e) => {
                drop(scheduler);
                let w = World::take().expect("installed above");
                let mut report = partial_report(
                    &w,
                    config.seed,
                    config.variant.map(|v| v.name),
                    config.page_size,
                    format!("not started: the controller's array could not be built: {e}"),
                );
                report.action_error = Some(e);
                return report;
            }
        }
    }
    with_world(|w| {
        w.user_clients.class = user_client_class_info(config.variant.map(|v| v.name)).map(|p| {
            // SAFETY: a pointer to the build's static class info.
            let info = unsafe { &*p };
            // SAFETY: a literal.
            let name = unsafe { std::ffi::CStr::from_ptr(info.name) }.to_string_lossy();
            (name.into_owned(), info.create as usize)
        });
        w.user_clients.properties_class = match &config.matched {
            Some(m) => m.user_client_class.clone(),
            // Without a bundle the personality is the shipped one's: its user client.
            None => w.user_clients.class.as_ref().map(|(n, _)| n.clone()),
        };
    });
    let create = info.create;
    scheduler.spawn("kernel", move || start_phase(create));
    let outcome = scheduler.run();
    let mut outcome_text = outcome.to_string();
    let mut stopped = false;
    match &outcome {
        Outcome::Deadlock { chain, all_blocked } => {
            report_deadlock(chain, all_blocked);
            stopped = true;
        }
        Outcome::Stopped { .. } => stopped = true,
        Outcome::TimeLimit { .. } | Outcome::Finished => {}
    }
    let started = with_world(|w| w.family.registered);
    let mut action_result = ActionResult::default();
    if let (false, true, Some(action)) = (stopped, started, config.action.as_ref()) {
        if !run_action(&mut scheduler, config, action, progress, &mut action_result) {
            stopped = true;
        }
    }
    if !stopped && with_world(|w| w.family.controller != 0) {
        scheduler.spawn("kernel", || {
            // Apps holding connections see them closed before the controller stops.
            crate::userclient::close_all();
            stop_phase();
        });
        let outcome = scheduler.run();
        if let Outcome::Deadlock { chain, all_blocked } = &outcome {
            report_deadlock(chain, all_blocked);
        }
        outcome_text = format!("{outcome_text}; stop: {outcome}");
    }
    let virtual_time_ns = scheduler.now_ns();
    let scheduling_points = scheduler.scheduling_points();
    let interleaving = format!("{:016x}", scheduler.fingerprint());
    drop(scheduler);
    let w = World::take().expect("the world outlives the run");
    let mut report = partial_report(
        &w,
        config.seed,
        config.variant.map(|v| v.name),
        config.page_size,
        outcome_text,
    );
    report.started = started;
    report.io = action_result.io;
    report.scsi = action_result.scsi;
    report.serve = action_result.serve;
    report.iscsi = action_result.iscsi;
    report.action_error = action_result.error;
    if let Some(c) = &controller {
        report.firmware_state = Some(crate::controller::fw_state_name(c.fw_state()));
        if let Some(raid) = c.raid() {
            report.volumes = raid.borrow().volumes();
        }
        // The firmware thread was halted in the stop phase; without one (a deadlock) the
        // leaked thread keeps a handle, and this one goes with the report.
    }
    drop(controller);
    report.personality = config.matched.as_ref().map(|m| m.explanation.clone());
    report.virtual_time_ns = virtual_time_ns;
    report.scheduling_points = scheduling_points;
    report.interleaving = interleaving;
    report
}

/// The report of a boot the kernel refused before any dext code ran: the bundle broke a rule
/// of DRIVERKIT.md §8 (each finding is a violation naming its file and key).
pub fn refused(config: &BootConfig, refusal: &Refusal) -> Report {
    let n = refusal.len();
    let mut w = World::new(config.stage, config.page_size);
    w.pci_device = config.device;
    w.violations = refusal.iter().map(|(f, call)| f.to_violation(call)).collect();
    partial_report(
        &w,
        config.seed,
        config.variant.map(|v| v.name),
        config.page_size,
        format!(
            "not started: the kernel refused the bundle ({n} error{})",
            if n == 1 { "" } else { "s" }
        ),
    )
}

/// The classes compiled into a build of the dext (what a personality's `IOUserClass` may name).
pub fn compiled_classes(variant: Option<&Variant>) -> ClassCatalog {
    let decl = |info: &DkSimClassInfo| {
        // SAFETY: literals in the generated class info.
        let (name, superclass) = unsafe {
            (
                std::ffi::CStr::from_ptr(info.name).to_string_lossy().into_owned(),
                std::ffi::CStr::from_ptr(info.superclass).to_string_lossy().into_owned(),
            )
        };
        ClassDecl { name, superclass }
    };
    let mut classes = vec![decl(class_info(variant))];
    if let Some(p) = user_client_class_info(variant.map(|v| v.name)) {
        // SAFETY: a pointer to the build's static class info.
        classes.push(decl(unsafe { &*p }));
    }
    ClassCatalog { origin: "compiled into the dext".into(), classes }
}

fn report_deadlock(chain: &[sched::Blocked], all: &[sched::Blocked]) {
    let text = describe_chain(chain);
    let others: Vec<sched::Blocked> =
        all.iter().filter(|b| !chain.iter().any(|c| c.thread == b.thread)).cloned().collect();
    with_world(|w| {
        w.violations.push(Violation {
            rule: "Deadlock",
            queue: chain.first().map(|b| b.name.clone()).unwrap_or_default(),
            call: chain.first().map(|b| b.call.clone()).unwrap_or_default(),
            values: if others.is_empty() {
                String::new()
            } else {
                format!("also blocked: {}", describe_chain(&others))
            },
            section: "DRIVERKIT.md §4",
            message: format!("no simulated thread can run: {text}"),
        })
    });
}

/// The kernel thread: match, create, start.
fn start_phase(create: unsafe extern "C" fn() -> Obj) {
    let default = world::create_queue("Default");
    with_world(|w| {
        w.default_queue = default;
        w.registered.insert("Default".into(), default);
    });
    // SAFETY: the generated factory: `new` + `init()`.
    let controller = world::traced("init", || unsafe { create() });
    if controller.is_null() {
        violation("InitFailed", "DRIVERKIT.md §1", String::new(), "init() returned false".into());
        return;
    }
    // SAFETY: creating the provider nub has no preconditions.
    let provider = unsafe { runtime::dksim_pci_device_new(1) };
    with_world(|w| {
        w.family.controller = controller as usize;
        w.family.provider = provider as usize;
    });
    sched::spawn("registry-watchdog", registry_watchdog);
    let (c, p) = (controller as usize, provider as usize);
    let r = world::dext_call("Start", move || {
        // SAFETY: live controller and provider.
        unsafe { runtime::dksim_invoke_Start(c as Obj, p as Obj) }
    });
    world::set_last_result("Start", world::ioreturn_name(r));
    with_world(|w| w.family.start_returned = true);
    if r != 0 {
        return;
    }
    check_queue_registrations();
}

/// Every QUEUENAME the dext declares must have a queue registered under it (DRIVERKIT.md §3).
fn check_queue_registrations() {
    let missing: Vec<(String, String)> = with_world(|w| {
        w.class.dext.iter().filter(|(_, q)| !w.registered.contains_key(q)).cloned().collect()
    });
    for (method, queue) in missing {
        violation(
            "QueueNotRegistered",
            "DRIVERKIT.md §3",
            format!("method={method} QUEUENAME={queue}"),
            format!(
                "{method} is declared QUEUENAME({queue}) but no queue was registered under that \
                 name in Start: it runs on Default instead"
            ),
        );
    }
}

/// The kernel's 60 s registry-busy panic, polled once per virtual second so that a finished
/// start ends it early.
fn registry_watchdog() {
    let step = 1_000_000_000;
    let mut waited = 0;
    while waited < REGISTRY_BUSY_TIMEOUT_NS {
        sched::sleep_ns(step);
        waited += step;
        if with_world(|w| w.family.start_returned) {
            return;
        }
    }
    let busy = with_world(|w| {
        w.call_stacks
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(t, s)| (*t, s.join(" > ")))
            .collect::<Vec<_>>()
    });
    let where_ = busy
        .iter()
        .map(|(t, s)| format!("{} is in {s}", crate::sched::thread_name_of(*t)))
        .collect::<Vec<_>>()
        .join("; ");
    let class = with_world(|w| w.class.name.clone());
    // Name the stuck queue and call: the first thread still inside a call.
    let (queue, call) = busy
        .first()
        .map(|(t, s)| {
            (
                crate::sched::thread_name_of(*t),
                s.rsplit(" > ").next().unwrap_or_default().to_string(),
            )
        })
        .unwrap_or_else(|| ("kernel".into(), "Start".into()));
    with_world(|w| {
        w.violations.push(Violation {
            rule: "RegistryBusyTimeout",
            queue,
            call,
            values: format!("timeout=60s {where_}"),
            section: "DRIVERKIT.md §1",
            message: format!(
                "kernel panic: the registry stayed busy for 60 s because the start of {class} \
                 never finished ({where_}). Nothing in start may wait for a later callback."
            ),
        })
    });
    if let Some((chain, all)) = sched::deadlock_snapshot() {
        report_deadlock(&chain, &all);
    }
    sched::stop("kernel panic: registry busy timeout".into());
}

/// The kernel thread, second phase: stop and release the controller, then look for leaks.
fn stop_phase() {
    let (c, p) = with_world(|w| (w.family.controller, w.family.provider));
    let r = world::dext_call("Stop", move || {
        // SAFETY: live controller and provider.
        unsafe { runtime::dksim_invoke_Stop(c as Obj, p as Obj) }
    });
    world::set_last_result("Stop", world::ioreturn_name(r));
    // SAFETY: the kernel's references; the controller's free() runs here.
    world::traced("free", || unsafe { runtime::dksim_object_release(c as Obj) });
    // SAFETY: as above.
    unsafe { runtime::dksim_object_release(p as Obj) };
    with_world(|w| {
        w.family.controller = 0;
        w.family.provider = 0;
    });
    // The device's firmware thread ends with the driver (its registers keep answering).
    if let Some(c) = crate::controller::current() {
        c.halt();
    }
    let (buffers, commands, baseline) =
        with_world(|w| (w.memory.live_buffers(), w.memory.live_commands(), w.object_baseline));
    // SAFETY: a counter read.
    let objects = unsafe { runtime::dksim_live_objects() };
    if buffers != 0 || commands != 0 || objects != baseline {
        violation(
            "LeakAfterStop",
            "DRIVERKIT.md §2",
            format!(
                "buffers={buffers} dma_commands={commands} objects={}",
                objects.saturating_sub(baseline)
            ),
            "after Stop and the last release, the dext still holds DriverKit objects".into(),
        );
    }
}

/// The names of the variants and what each breaks.
pub fn variant_list() -> &'static [Variant] {
    variants::VARIANTS
}
