//! `dkraid-sim iscsi`: the disks the driver presents, exported as iSCSI targets (RFC 7143) so
//! independent initiators and test suites (libiscsi's `iscsi-test-cu`) can use them. Every
//! command goes the whole way: the kernel model's `UserProcessParallelTask`, the dext, the core
//! and, in stages `single-io`/`full`, the firmware and the RAID engine.
//!
//! - [`pdu`]: PDUs on the wire, text keys, serial numbers, LUN fields;
//! - [`login`]: login and key negotiation;
//! - [`session`]: the full feature phase of one connection, over a [`session::Backend`];
//! - here: the TCP listener (bounded connections), and the backend that runs commands and task
//!   management on simulated kernel threads of the booted Mac, paced like `serve`.
//!
//! Driver target N is exported as `iqn.2025-01.org.dkraid:sim.tN`, LUN 0.

pub mod login;
pub mod pdu;
pub mod session;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::sched::{self, ThreadId};
use crate::tasks::{self, Request};
use crate::world::with_world;
use session::{Backend, Direction, ExportedTarget, ScsiDone, ScsiTask, Stats};

/// The prefix of every exported target's name; target N is `{TARGET_PREFIX}N`.
pub const TARGET_PREFIX: &str = "iqn.2025-01.org.dkraid:sim.t";

/// What `dkraid-sim iscsi` runs.
#[derive(Clone, Debug)]
pub struct IscsiConfig {
    /// Where to listen, e.g. 127.0.0.1:3260 (port 0: any free port).
    pub listen: String,
    /// Connections served at once; more are refused at login (Out of resources).
    pub max_connections: usize,
    /// The bytes moved through the target over which fault percentages count (faults' PCT).
    pub fault_span: u64,
    /// Set to stop serving (tests); SIGINT and SIGTERM do the same.
    pub stop: Arc<AtomicBool>,
    /// The address actually bound, once listening.
    pub bound: Arc<Mutex<Option<SocketAddr>>>,
}

impl IscsiConfig {
    pub fn new(listen: &str) -> IscsiConfig {
        IscsiConfig {
            listen: listen.to_string(),
            max_connections: 8,
            fault_span: 64 << 20,
            stop: Arc::new(AtomicBool::new(false)),
            bound: Arc::new(Mutex::new(None)),
        }
    }
}

/// What happened while serving.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IscsiReport {
    pub listen: String,
    pub targets: Vec<String>,
    #[serde(flatten)]
    pub stats: Stats,
    pub faults: Vec<crate::faults::Fired>,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn install_interrupt_handler() {
    let handler: extern "C" fn(libc::c_int) = on_interrupt;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs a handler that only stores to an atomic (async-signal-safe); the
        // handler lives for the whole process.
        unsafe { libc::signal(signal, handler as libc::sighandler_t) };
    }
}

/// A request from a connection thread to the simulation.
enum SimRequest {
    Scsi(ScsiTask, Box<dyn FnOnce(ScsiDone) + Send>),
    Tmf {
        function: u8,
        target: u64,
        lun: u64,
        task_ref: Option<u64>,
        done: Box<dyn FnOnce(u8) + Send>,
    },
}

/// The backend the connections see: requests go to the simulation's server thread.
struct SimBackend {
    tx: Mutex<Sender<SimRequest>>,
    targets: Arc<Mutex<Vec<ExportedTarget>>>,
}

impl Backend for SimBackend {
    fn targets(&self) -> Vec<ExportedTarget> {
        self.targets.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn submit(&self, task: ScsiTask, done: Box<dyn FnOnce(ScsiDone) + Send>) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(mpsc::SendError(SimRequest::Scsi(_, done))) =
            tx.send(SimRequest::Scsi(task, done))
        {
            // The simulation stopped: the command never reached the device.
            done(ScsiDone { completed: false, status: 0, sense: Vec::new(), data: Vec::new() });
        }
    }

    fn task_management(
        &self,
        function: u8,
        target: u64,
        lun: u64,
        task_ref: Option<u64>,
        done: Box<dyn FnOnce(u8) + Send>,
    ) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(mpsc::SendError(SimRequest::Tmf { done, .. })) =
            tx.send(SimRequest::Tmf { function, target, lun, task_ref, done })
        {
            done(session::tmf::REJECTED);
        }
    }
}

/// The disks the driver presents now, as targets.
fn current_targets() -> Vec<ExportedTarget> {
    with_world(|w| {
        w.disks
            .iter()
            .filter(|d| d.attached && d.lun == 0)
            .map(|d| ExportedTarget {
                name: format!("{TARGET_PREFIX}{}", d.target),
                target: d.target,
                block_size: d.block_size,
            })
            .collect()
    })
}

/// Refuse a connection over the bound: answer its first Login Request with Out of resources.
fn refuse(mut stream: TcpStream, max: usize) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if let Ok(req) = pdu::Pdu::read_from(&mut stream, 65536) {
        let mut l = login::Login::default();
        let mut r = pdu::Pdu::new(pdu::op::LOGIN_RESPONSE);
        r.bhs[8..14].copy_from_slice(&req.bhs[8..14]);
        r.set_itt(req.itt());
        r.set_u32(24, req.u32_at(28));
        r.bhs[36] = login::status::OUT_OF_RESOURCES.0;
        r.bhs[37] = login::status::OUT_OF_RESOURCES.1;
        let _ = (&mut l, max);
        let _ = r.write_to(&mut stream);
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// The accept loop, on a real thread, until `stop`.
fn accept_loop(
    listener: TcpListener,
    backend: Arc<SimBackend>,
    stats: Arc<Mutex<Stats>>,
    max_connections: usize,
    stop: Arc<AtomicBool>,
) {
    let portal = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let active = Arc::new(AtomicUsize::new(0));
    let tsih = Arc::new(AtomicU16::new(1));
    let task_ref = Arc::new(AtomicU64::new(1));
    let next_tsih: Arc<dyn Fn() -> u16 + Send + Sync> = Arc::new(move || {
        let t = tsih.fetch_add(1, Ordering::SeqCst);
        if t == 0 {
            tsih.fetch_add(1, Ordering::SeqCst)
        } else {
            t
        }
    });
    let next_task_ref: Arc<dyn Fn() -> u64 + Send + Sync> =
        Arc::new(move || task_ref.fetch_add(1, Ordering::SeqCst));
    let _ = listener.set_nonblocking(true);
    while !stop.load(Ordering::SeqCst) {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(_) => continue,
        };
        let _ = stream.set_nonblocking(false);
        if active.load(Ordering::SeqCst) >= max_connections {
            stats.lock().unwrap_or_else(|p| p.into_inner()).refused_connections += 1;
            stats.lock().unwrap_or_else(|p| p.into_inner()).error(format!(
                "TooManyConnections: {max_connections} connections are open; a new one was \
                 refused (login status Out of resources)"
            ));
            std::thread::spawn(move || refuse(stream, max_connections));
            continue;
        }
        active.fetch_add(1, Ordering::SeqCst);
        stats.lock().unwrap_or_else(|p| p.into_inner()).connections += 1;
        let backend: Arc<dyn Backend> = backend.clone();
        let (stats, portal, active) = (stats.clone(), portal.clone(), active.clone());
        let (next_tsih, next_task_ref) = (next_tsih.clone(), next_task_ref.clone());
        std::thread::spawn(move || {
            let end = session::serve_stream(
                stream,
                backend,
                stats.clone(),
                portal,
                next_tsih,
                next_task_ref,
            );
            if let session::Ended::Closed(why) = end {
                let _ = why;
            }
            active.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// The service response of the SCSI parallel family, as an iSCSI TMF response.
fn tmf_response(r: Result<u32, i32>) -> u8 {
    match r {
        // kSCSIServiceResponse_FUNCTION_COMPLETE
        Ok(4) => session::tmf::FUNCTION_COMPLETE,
        _ => session::tmf::REJECTED,
    }
}

/// The server's simulated thread: take requests from the connections, run each command on a
/// simulated kernel thread of its own, until stopped.
pub fn server_thread(
    cfg: IscsiConfig,
    listener: TcpListener,
    report: Rc<RefCell<IscsiReport>>,
    faults: Vec<crate::faults::Fault>,
    seed: u64,
) -> impl FnOnce() + 'static {
    move || {
        install_interrupt_handler();
        let (tx, rx): (Sender<SimRequest>, Receiver<SimRequest>) = mpsc::channel();
        let targets = Arc::new(Mutex::new(current_targets()));
        let backend = Arc::new(SimBackend { tx: Mutex::new(tx), targets: targets.clone() });
        let stats = Arc::new(Mutex::new(Stats::default()));
        let stop = cfg.stop.clone();
        {
            let (stats, stop, max) = (stats.clone(), stop.clone(), cfg.max_connections);
            std::thread::spawn(move || accept_loop(listener, backend, stats, max, stop));
        }
        let running: Rc<RefCell<HashMap<u64, ThreadId>>> = Rc::new(RefCell::new(HashMap::new()));
        let in_flight = Rc::new(Cell::new(0usize));
        let mut schedule = crate::faults::Schedule::new(faults);
        let mut moved = 0u64;
        let span = cfg.fault_span.max(1);
        loop {
            let now_targets = current_targets();
            report.borrow_mut().targets = now_targets.iter().map(|t| t.name.clone()).collect();
            *targets.lock().unwrap_or_else(|p| p.into_inner()) = now_targets;
            let mut got = Vec::new();
            while let Ok(r) = rx.try_recv() {
                got.push(r);
            }
            if got.is_empty() && in_flight.get() == 0 {
                if INTERRUPTED.load(Ordering::SeqCst) || stop.load(Ordering::SeqCst) {
                    break;
                }
                // Idle: virtual time runs no faster than the wall clock.
                if let Ok(r) = rx.recv_timeout(Duration::from_millis(1)) {
                    got.push(r);
                }
                sched::sleep_ns(1_000_000);
            }
            for r in got {
                match r {
                    SimRequest::Scsi(task, done) => {
                        moved += task.length;
                        for f in schedule.due(moved, span) {
                            let report = report.clone();
                            sched::spawn("iscsi-fault", move || {
                                let fired = f.fire(seed);
                                report.borrow_mut().faults.push(fired);
                            });
                        }
                        in_flight.set(in_flight.get() + 1);
                        let (running, in_flight) = (running.clone(), in_flight.clone());
                        sched::spawn("iscsi-initiator", move || {
                            running.borrow_mut().insert(task.task_ref, sched::current());
                            let d = run_task(&task);
                            running.borrow_mut().remove(&task.task_ref);
                            in_flight.set(in_flight.get() - 1);
                            done(d);
                        });
                    }
                    SimRequest::Tmf { function, target, lun, task_ref, done } => {
                        let running = running.clone();
                        in_flight.set(in_flight.get() + 1);
                        let in_flight = in_flight.clone();
                        sched::spawn("iscsi-task-management", move || {
                            let response = match task_ref {
                                Some(r) => {
                                    let thread = running.borrow().get(&r).copied();
                                    let handle = thread.and_then(|t| {
                                        with_world(|w| {
                                            w.family
                                                .pending
                                                .iter()
                                                .find(|(_, p)| {
                                                    p.waiter == t && p.response.is_none()
                                                })
                                                .map(|(h, _)| *h)
                                        })
                                    });
                                    match handle {
                                        None => session::tmf::TASK_DOES_NOT_EXIST,
                                        Some(h) => tmf_response(tasks::task_management(
                                            u32::from(function),
                                            target,
                                            lun,
                                            h,
                                        )),
                                    }
                                }
                                None => tmf_response(tasks::task_management(
                                    u32::from(function),
                                    target,
                                    lun,
                                    0,
                                )),
                            };
                            in_flight.set(in_flight.get() - 1);
                            done(response);
                        });
                    }
                }
            }
            if in_flight.get() > 0 {
                // Let the commands run; poll again soon (virtual time).
                sched::sleep_ns(50_000);
            }
        }
        stop.store(true, Ordering::SeqCst);
        let s = stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
        report.borrow_mut().stats = s;
    }
}

/// One command through the kernel model, as the kernel's SCSI family sends it.
fn run_task(t: &ScsiTask) -> ScsiDone {
    let o = tasks::run(&Request {
        target: t.target,
        lun: t.lun,
        cdb: &t.cdb,
        direction: match t.direction {
            Direction::None => tasks::Direction::None,
            Direction::In => tasks::Direction::In,
            Direction::Out => tasks::Direction::Out,
        },
        length: t.length,
        data_out: &t.data_out,
    });
    match o.service_response {
        // TASK_COMPLETE: the device's status.
        Some(2) => {
            ScsiDone { completed: true, status: o.status as u8, sense: o.sense, data: o.data }
        }
        _ => ScsiDone { completed: false, status: 0, sense: Vec::new(), data: Vec::new() },
    }
}

/// Bind the listener (before the simulation runs, so a bad address is a usage error).
pub fn bind(cfg: &IscsiConfig) -> Result<TcpListener, String> {
    let listener = TcpListener::bind(&cfg.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    *cfg.bound.lock().unwrap_or_else(|p| p.into_inner()) = Some(addr);
    Ok(listener)
}
