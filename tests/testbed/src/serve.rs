//! `dkraid-sim serve`: a booted simulated Mac that keeps running, paced to the wall clock, and
//! serves the admin app's path into the dext (`crate::userclient`) on a Unix socket in
//! `raidctl`'s `sockwire` messages. Each OPEN is an `IOServiceOpen` by a process holding the
//! entitlements it lists, each CALL an `IOConnectCall…Method`, each CLOSE an `IOServiceClose`;
//! async completions go back as ASYNC messages. SIM_CONTROL commands drive the test-bed
//! itself: `fail-drive N`, `stall-firmware MS`, `status`, `shutdown`.
//!
//! Optionally a verify workload runs on the first disk the whole time, pass after pass, so the
//! admin path is exercised under I/O; the final report says whether any block read back wrong.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use crate::sockwire::{self, Message};
use serde::Serialize;

use crate::sched;
use crate::userclient;
use crate::world::with_world;

/// How far virtual time may run per wall-clock millisecond while idle: 1 ms.
const TICK: Duration = Duration::from_millis(1);

/// What `serve` runs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub socket: PathBuf,
    /// A verify workload repeated on the first disk until shutdown.
    pub workload: Option<crate::workload::IoConfig>,
}

/// What happened while serving.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServeReport {
    pub connections: u64,
    pub calls: u64,
    pub async_completions: u64,
    /// Verify passes completed.
    pub passes: u64,
    pub ios: u64,
    pub errors: u64,
    pub mismatches: u64,
    pub first_error: Option<String>,
    pub first_mismatch: Option<String>,
}

/// Set by SIGINT or SIGTERM: stop serving as a `shutdown` would.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C (or a SIGTERM) ends `serve` cleanly: the connections close, the driver stops and the
/// report is printed.
fn install_interrupt_handler() {
    let handler: extern "C" fn(libc::c_int) = on_interrupt;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs a handler that only stores to an atomic (async-signal-safe); the
        // handler lives for the whole process.
        unsafe { libc::signal(signal, handler as libc::sighandler_t) };
    }
}

enum Event {
    Message(u64, Message),
    Closed(u64),
}

/// The socket side, on real threads: accept connections and forward every message.
fn listen(listener: UnixListener, tx: Sender<Event>, writers: Sender<(u64, UnixStream)>) {
    let mut next = 0u64;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        next += 1;
        let key = next;
        let Ok(writer) = stream.try_clone() else { continue };
        if writers.send((key, writer)).is_err() {
            return;
        }
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(stream);
            loop {
                match sockwire::read_message(&mut reader) {
                    Ok(m) => {
                        if tx.send(Event::Message(key, m)).is_err() {
                            return;
                        }
                    }
                    Err(_) => {
                        let _ = tx.send(Event::Closed(key));
                        return;
                    }
                }
            }
        });
    }
}

type Writers = Rc<RefCell<BTreeMap<u64, UnixStream>>>;

fn send(writers: &Writers, key: u64, m: &Message) {
    if let Some(w) = writers.borrow_mut().get_mut(&key) {
        let _ = w.write_all(&sockwire::encode(m));
    }
}

/// The server's simulated thread: run until a `shutdown` control message, SIGINT or SIGTERM.
pub fn serve_thread(
    listener: UnixListener,
    report: Rc<RefCell<ServeReport>>,
    stop: Rc<RefCell<bool>>,
) -> impl FnOnce() + 'static {
    move || {
        install_interrupt_handler();
        let (tx, rx): (Sender<Event>, Receiver<Event>) = mpsc::channel();
        let (wtx, wrx) = mpsc::channel();
        std::thread::spawn(move || listen(listener, tx, wtx));
        let writers: Writers = Rc::new(RefCell::new(BTreeMap::new()));
        // Socket connection → user-client connection.
        let connections: Rc<RefCell<BTreeMap<u64, u64>>> = Rc::new(RefCell::new(BTreeMap::new()));
        loop {
            while let Ok((key, w)) = wrx.try_recv() {
                writers.borrow_mut().insert(key, w);
            }
            while let Ok(event) = rx.try_recv() {
                match event {
                    Event::Closed(key) => {
                        writers.borrow_mut().remove(&key);
                        if let Some(id) = connections.borrow_mut().remove(&key) {
                            sched::spawn("raidctl-exit", move || {
                                userclient::service_close(id);
                            });
                        }
                    }
                    Event::Message(key, m) => {
                        handle(key, m, &writers, &connections, &report, &stop);
                    }
                }
            }
            // Completions the dext sent, to their callers.
            for (&key, &id) in connections.borrow().iter() {
                for a in userclient::take_asyncs(id) {
                    report.borrow_mut().async_completions += 1;
                    send(&writers, key, &Message::Async { status: a.status, args: a.args });
                }
            }
            if INTERRUPTED.load(Ordering::SeqCst) {
                *stop.borrow_mut() = true;
            }
            if *stop.borrow() {
                return;
            }
            std::thread::sleep(TICK);
            sched::sleep_ns(TICK.as_nanos() as u64);
        }
    }
}

fn handle(
    key: u64,
    m: Message,
    writers: &Writers,
    connections: &Rc<RefCell<BTreeMap<u64, u64>>>,
    report: &Rc<RefCell<ServeReport>>,
    stop: &Rc<RefCell<bool>>,
) {
    let writers = writers.clone();
    match m {
        Message::Open { user_client_type, entitlements } => {
            let connections = connections.clone();
            report.borrow_mut().connections += 1;
            sched::spawn("raidctl-open", move || {
                let r = if user_client_type != 0 {
                    // Only type 0 exists; the dext refuses others, the kernel passes it on.
                    dkraid_core::IOReturn::kIOReturnUnsupported.0
                } else {
                    match userclient::service_open(&entitlements) {
                        Ok(id) => {
                            connections.borrow_mut().insert(key, id);
                            0
                        }
                        Err(r) => r,
                    }
                };
                send(&writers, key, &Message::OpenReply { kern_return: r });
            });
        }
        Message::Call {
            selector,
            flags,
            scalars,
            struct_in,
            struct_out_capacity,
            scalar_out_capacity,
        } => {
            report.borrow_mut().calls += 1;
            let id = connections.borrow().get(&key).copied();
            sched::spawn("raidctl-call", move || {
                let reply = match id {
                    Some(id) => userclient::call(
                        id,
                        selector,
                        &scalars,
                        &struct_in,
                        struct_out_capacity,
                        scalar_out_capacity,
                        flags & sockwire::CALL_FLAG_ASYNC != 0,
                    ),
                    None => userclient::CallReply {
                        kern_return: dkraid_core::IOReturn::kIOReturnNotOpen.0,
                        ..Default::default()
                    },
                };
                send(
                    &writers,
                    key,
                    &Message::CallReply {
                        kern_return: reply.kern_return,
                        scalars: reply.scalars,
                        struct_out: reply.structure,
                    },
                );
            });
        }
        Message::Close => {
            let id = connections.borrow_mut().remove(&key);
            sched::spawn("raidctl-close", move || {
                let r = match id {
                    Some(id) => userclient::service_close(id),
                    None => dkraid_core::IOReturn::kIOReturnNotOpen.0,
                };
                send(&writers, key, &Message::CloseReply { kern_return: r });
            });
        }
        Message::SimControl { command } => {
            let (status, text) = control(&command, report, stop);
            send(&writers, key, &Message::SimControlReply { status, text });
        }
        // Replies and async messages only travel server → client.
        other => {
            send(
                &writers,
                key,
                &Message::SimControlReply {
                    status: 1,
                    text: format!("unexpected {} message from a client", other.name()),
                },
            );
        }
    }
}

/// A test-bed control command: `fail-drive N`, `stall-firmware MS`, `status`, `shutdown`.
fn control(
    command: &str,
    report: &Rc<RefCell<ServeReport>>,
    stop: &Rc<RefCell<bool>>,
) -> (i32, String) {
    let words: Vec<&str> = command.split_whitespace().collect();
    match words.as_slice() {
        ["fail-drive", d] => {
            let Ok(d) = d.parse::<u16>() else {
                return (1, format!("fail-drive: {d:?} is not a drive number"));
            };
            let Some(c) = with_world(|w| w.controller.clone()) else {
                return (1, "fail-drive: this stage has no RAID controller".into());
            };
            match c.fail_drive(d) {
                Ok(()) => (0, format!("drive {d} failed")),
                Err(e) => (1, format!("fail-drive {d}: {e:?}")),
            }
        }
        ["stall-firmware", ms] => {
            let Ok(ms) = ms.parse::<u64>() else {
                return (1, format!("stall-firmware: {ms:?} is not a number of milliseconds"));
            };
            let Some(c) = with_world(|w| w.controller.clone()) else {
                return (1, "stall-firmware: this stage has no RAID controller".into());
            };
            c.stall(ms.saturating_mul(1_000_000));
            (0, format!("the firmware takes no requests for {ms} ms"))
        }
        ["status"] => {
            let r = report.borrow().clone();
            let status = serde_json::json!({
                "virtual_time_ns": sched::now_ns(),
                "serve": r,
                "violations": with_world(|w| w.violations.len()),
            });
            (0, status.to_string())
        }
        ["shutdown"] => {
            *stop.borrow_mut() = true;
            (0, "shutting down".into())
        }
        _ => (
            1,
            format!(
                "unknown command {command:?}; valid: fail-drive N, stall-firmware MS, status, \
                 shutdown"
            ),
        ),
    }
}

/// The workload, pass after pass, until `stop`; each pass's result is added to the report.
pub fn workload_thread(
    cfg: crate::workload::IoConfig,
    seed: u64,
    report: Rc<RefCell<ServeReport>>,
    stop: Rc<RefCell<bool>>,
) -> impl FnOnce() + 'static {
    move || {
        let mut pass = 0u64;
        while !*stop.borrow() {
            let disk = with_world(|w| w.disks.iter().find(|d| d.attached).cloned());
            let Some(disk) = disk else {
                report.borrow_mut().first_error.get_or_insert("no attached disk".into());
                return;
            };
            let workload = match crate::workload::Workload::new(cfg, &disk, None) {
                Ok(w) => w.with_faults(Vec::new(), seed.wrapping_add(pass)),
                Err(e) => {
                    report.borrow_mut().first_error.get_or_insert(e);
                    return;
                }
            };
            let finished = Rc::new(RefCell::new(0u32));
            for i in 0..cfg.queue_depth {
                let client = workload.client();
                let finished = finished.clone();
                sched::spawn(&format!("io-client-{i}"), move || {
                    client();
                    *finished.borrow_mut() += 1;
                });
            }
            while *finished.borrow() < cfg.queue_depth {
                sched::sleep_ns(1_000_000);
            }
            let r = workload.report(Duration::ZERO);
            let mut s = report.borrow_mut();
            s.passes += 1;
            s.ios += r.ios;
            s.errors += r.errors;
            s.mismatches += r.mismatches;
            if s.first_error.is_none() {
                s.first_error = r.first_error.clone();
            }
            if s.first_mismatch.is_none() {
                s.first_mismatch =
                    r.mismatch_list.first().map(|m| format!("LBA {}: {}", m.lba, m.found));
            }
            pass += 1;
        }
    }
}
