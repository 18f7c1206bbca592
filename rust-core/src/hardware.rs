//! Stages 2 and 3: the controller's hardware, driven through the firmware driver. Everything
//! here runs from [`Hardware::service`], which the dext calls from its interrupt handler and its
//! timer (never blocking, never looping on the device):
//!
//! - bring the firmware up (bounded waits, from `UserStartController`'s asynchronous work);
//! - stage 2 (`single-io`): one read of LBA 0 of volume 0, its result checked and logged;
//! - stage 3 (`full`): the volumes the firmware lists become targets, one create at a time;
//!   volume events (created, deleted) become target creates and destroys (hot plug);
//! - replies become responses for the kernel; timeouts are aborted; a controller reset
//!   completes every outstanding task exactly once with a retryable status;
//! - admin requests ([`crate::admin::engine`]) get the control frame after the stage's own
//!   work and the aborts, one at a time.

use zerocopy::FromBytes;

use crate::abi;
use crate::admin::engine::AdminEngine;
use crate::admin::wire::status as admin_status;
use crate::firmware::wire::{mgmt, EventEntry, VolumeEntry};
use crate::firmware::{ControlKind, Firmware, FirmwareError, Step};
use crate::platform::Platform;
use crate::stage::Stage;
use crate::targets::{OpKind, TargetOp, Targets};
use crate::task_pool::TaskPool;

/// How many times stage 2 sends its read before a UNIT ATTENTION counts as a failure.
pub const SINGLE_IO_ATTEMPTS: u8 = 3;

/// How often the timer wants to run once everything is up (timeouts).
pub const TICK_NS: u64 = 100_000_000;

/// Bring-up attempts (the first one included) before the controller is declared dead. Real RAID
/// firmware can take minutes to come READY after a reset; each attempt waits up to
/// `INIT_TIMEOUT_NS` for READY and again for OPERATIONAL, then the controller is reset and the
/// next attempt starts after a back-off of 1 s doubling to 32 s: about 4.5 minutes in all.
pub const BRINGUP_ATTEMPTS: u32 = 8;
pub const BRINGUP_FIRST_BACKOFF_NS: u64 = 1_000_000_000;
pub const BRINGUP_MAX_BACKOFF_NS: u64 = 32_000_000_000;

/// The back-off after the `failures`-th failed bring-up (1-based).
pub const fn bringup_backoff_ns(failures: u32) -> u64 {
    let shift = if failures == 0 { 0 } else { failures - 1 };
    let ns = if shift >= 6 { u64::MAX } else { BRINGUP_FIRST_BACKOFF_NS << shift };
    if ns > BRINGUP_MAX_BACKOFF_NS {
        BRINGUP_MAX_BACKOFF_NS
    } else {
        ns
    }
}

/// The stage's own work, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    BringUp,
    /// A bring-up failed: the controller is reset and brought up again at `at_ns`.
    RetryBringUp {
        at_ns: u64,
    },
    /// Stage 2: the read is to be sent, or is in flight; `attempts` counts the sends.
    SingleIo {
        sent: bool,
        attempts: u8,
    },
    /// Stage 3: LIST_VOLUMES to send, or in flight.
    ListVolumes {
        sent: bool,
    },
    /// Events announced beyond this sequence are to be fetched.
    Running,
    Failed(FirmwareError),
}

/// What stage 2's read found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SingleIoResult {
    pub status: u8,
    pub bytes: u32,
    pub first_bytes: [u8; 8],
}

/// The hardware's state.
#[derive(Debug)]
pub struct Hardware {
    stage: Stage,
    firmware: Firmware,
    started: bool,
    work: Work,
    /// The last event sequence fetched.
    events_fetched: u32,
    /// Bring-ups that failed in a row (0 once the firmware is operational).
    bringup_failures: u32,
    pub single_io: Option<SingleIoResult>,
}

impl Hardware {
    pub const fn new(stage: Stage) -> Hardware {
        Hardware {
            stage,
            firmware: Firmware::new(),
            started: false,
            work: Work::BringUp,
            events_fetched: 0,
            bringup_failures: 0,
            single_io: None,
        }
    }

    pub fn firmware(&self) -> &Firmware {
        &self.firmware
    }

    /// The firmware needs a service pass soon, though no task is outstanding to arm the timer.
    pub fn needs_service(&self) -> bool {
        self.firmware.needs_service()
    }

    pub fn is_operational(&self) -> bool {
        self.firmware.is_operational()
    }

    /// The controller is dead for good (its bring-up failed `BRINGUP_ATTEMPTS` times, or in a
    /// way a reset cannot cure): I/O gets a hard error, not BUSY.
    pub fn failed(&self) -> Option<FirmwareError> {
        match self.work {
            Work::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Submit a task to the firmware (the caller has marked it Submitted).
    pub fn submit<P: Platform>(
        &mut self,
        platform: &mut P,
        pool: &TaskPool,
        id: crate::task_pool::TaskId,
        task: &abi::dk_scsi_user_parallel_task,
        now_ns: u64,
    ) -> Result<(), crate::firmware::RequestError> {
        self.firmware.submit(platform, pool, id, task, now_ns)
    }

    /// One service pass. Completed tasks' responses go to `completed` (without fTargetID; the
    /// caller fills it). Returns when to be called again (0: only on interrupts).
    #[allow(clippy::too_many_arguments)]
    pub fn service<P: Platform>(
        &mut self,
        platform: &mut P,
        pool: &mut TaskPool,
        targets: &mut Targets,
        tasks: u32,
        now_ns: u64,
        admin: &mut AdminEngine,
        mut completed: impl FnMut(abi::dk_scsi_user_parallel_response),
    ) -> u64 {
        if let Work::Failed(_) = self.work {
            // No firmware to carry admin requests out.
            admin.firmware_failed();
            return 0;
        }
        if !self.started {
            if let Err(e) = self.firmware.start(platform, tasks, now_ns) {
                log::error!("dkraid: {e}");
                self.work = Work::Failed(e);
                admin.firmware_failed();
                return 0;
            }
            self.started = true;
        }
        if let Work::RetryBringUp { at_ns } = self.work {
            if now_ns < at_ns {
                return at_ns - now_ns;
            }
            self.firmware.reset(platform, pool, now_ns, |_, r| completed(r));
            self.work = Work::BringUp;
        }
        if self.work == Work::BringUp {
            match self.firmware.step(platform, now_ns) {
                Step::Pending { poll_in_ns } => return poll_in_ns,
                Step::Failed(e) => return self.bringup_failed(e, now_ns, admin),
                Step::Operational => {
                    self.bringup_failures = 0;
                    self.work = match self.stage {
                        Stage::SingleIo => Work::SingleIo { sent: false, attempts: 0 },
                        _ => Work::ListVolumes { sent: false },
                    };
                }
            }
        }
        // Replies.
        let done = self.firmware.interrupt(platform, pool, |_, r| completed(r));
        if let Some(done) = done {
            self.control_done(done, targets, admin);
        }
        // The stage's own work, one control request at a time.
        match self.work {
            // READ(10) of LBA 0, one 512-byte block, of volume 0.
            Work::SingleIo { sent: false, attempts }
                if self
                    .firmware
                    .control_io(platform, 0, &[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], 512)
                    .is_ok() =>
            {
                self.work = Work::SingleIo { sent: true, attempts: attempts + 1 };
            }
            Work::ListVolumes { sent: false }
                if self.firmware.management(platform, mgmt::LIST_VOLUMES, [0; 4]).is_ok() =>
            {
                self.work = Work::ListVolumes { sent: true };
            }
            Work::Running if self.firmware.last_event > self.events_fetched => {
                let since = [self.events_fetched, 0, 0, 0];
                let _ = self.firmware.management(platform, mgmt::EVENTS_SINCE, since);
            }
            _ => {}
        }
        // Timeouts, and a reset when an abort does not come back.
        if self.firmware.tick(platform, pool, now_ns) {
            self.firmware.reset(platform, pool, now_ns, |_, r| completed(r));
            self.work = Work::BringUp;
            // The reset dropped the admin request the firmware held: the app tries again.
            admin.firmware_lost(admin_status::BUSY);
            return crate::firmware::driver::POLL_INTERVAL_NS;
        }
        // Admin's turn: after the stage's own work and the aborts, never while the stage still
        // wants the control frame for itself.
        if !self.stage_wants_control() && !self.firmware.control_busy() {
            if let Some((ticket, opcode, args)) = admin.next_to_send() {
                if self.firmware.admin_management(platform, opcode, args).is_ok() {
                    admin.sent(ticket);
                }
            }
        }
        match self.work {
            Work::SingleIo { .. } | Work::ListVolumes { .. } => {
                crate::firmware::driver::POLL_INTERVAL_NS
            }
            _ if admin.has_queued() => crate::firmware::driver::POLL_INTERVAL_NS,
            // Timeouts matter while the firmware owns tasks or a control request; idle, wait
            // for interrupts.
            _ if pool.count_in(crate::task_pool::SlotState::Submitted) > 0
                || self.firmware.control_busy() =>
            {
                TICK_NS
            }
            _ => 0,
        }
    }

    /// A bring-up attempt failed: retry after a back-off, or give up for good.
    fn bringup_failed(&mut self, e: FirmwareError, now_ns: u64, admin: &mut AdminEngine) -> u64 {
        self.bringup_failures += 1;
        let n = self.bringup_failures;
        // A reset cures a firmware that is slow, stalled or faulted; not one whose facts do not
        // fit the driver, nor memory the host could not map.
        let curable = matches!(e, FirmwareError::Timeout { .. } | FirmwareError::Fault { .. });
        if !curable || n >= BRINGUP_ATTEMPTS {
            log::error!(
                "dkraid: the controller is dead: bring-up failed {n} time(s), last: {e}; every \
                 I/O now fails with HARDWARE ERROR 44/00 (internal target failure)"
            );
            self.work = Work::Failed(e);
            admin.firmware_failed();
            return 0;
        }
        let backoff = bringup_backoff_ns(n);
        log::warn!(
            "dkraid: firmware bring-up attempt {n} of {BRINGUP_ATTEMPTS} failed: {e}; resetting \
             the controller and trying again in {} s",
            backoff / 1_000_000_000
        );
        self.work = Work::RetryBringUp { at_ns: now_ns.saturating_add(backoff) };
        backoff
    }

    /// Whether the stage has work of its own for the control frame that is not sent yet.
    fn stage_wants_control(&self) -> bool {
        match self.work {
            Work::BringUp
            | Work::RetryBringUp { .. }
            | Work::SingleIo { sent: false, .. }
            | Work::ListVolumes { .. } => true,
            Work::Running => self.firmware.last_event > self.events_fetched,
            Work::SingleIo { sent: true, .. } | Work::Failed(_) => false,
        }
    }

    fn control_done(
        &mut self,
        done: crate::firmware::ControlDone,
        targets: &mut Targets,
        admin: &mut AdminEngine,
    ) {
        if let ControlKind::Admin { opcode } = done.kind {
            let bytes =
                (done.reply.transferred.get() as usize).min(self.firmware.control_data().len());
            let data = &self.firmware.control_data()[..bytes];
            admin.firmware_done(opcode, &done.reply, data, self.stage);
            return;
        }
        match (done.kind, self.work) {
            (ControlKind::Io, Work::SingleIo { sent: true, attempts }) => {
                // A new volume's first command reports the reset (UNIT ATTENTION 29/00), as
                // SCSI requires; a host retries it, and so does stage 2, a bounded number of times.
                if done.reply.scsi_status == 0x02 && attempts < SINGLE_IO_ATTEMPTS {
                    let sense = self.firmware.control_sense();
                    if done
                        .reply
                        .reply_flags()
                        .contains(crate::firmware::wire::ReplyFlags::SENSE_VALID)
                        && sense[2] & 0x0f == 0x06
                    {
                        log::info!(
                            "dkraid: single-io: UNIT ATTENTION {:02x}/{:02x} on volume 0, retrying",
                            sense[12],
                            sense[13]
                        );
                        self.work = Work::SingleIo { sent: false, attempts };
                        return;
                    }
                }
                let data = self.firmware.control_data();
                let mut first = [0u8; 8];
                first.copy_from_slice(&data[..8]);
                let r = SingleIoResult {
                    status: done.reply.scsi_status,
                    bytes: done.reply.transferred.get(),
                    first_bytes: first,
                };
                if r.status == 0 && r.bytes == 512 {
                    log::info!("dkraid: single-io: READ(10) of LBA 0 on volume 0: GOOD, 512 bytes, {:02x?}", r.first_bytes);
                } else {
                    log::error!(
                        "dkraid: single-io: READ(10) of LBA 0 on volume 0 failed: status {:#04x}, {} bytes",
                        r.status, r.bytes
                    );
                }
                self.single_io = Some(r);
                self.work = Work::Running;
            }
            (
                ControlKind::Management { opcode: mgmt::LIST_VOLUMES },
                Work::ListVolumes { sent: true },
            ) => {
                let bytes =
                    (done.reply.transferred.get() as usize).min(self.firmware.control_data().len());
                let data = &self.firmware.control_data()[..bytes];
                for entry in data.chunks_exact(32) {
                    if let Ok(v) = VolumeEntry::read_from_bytes(entry) {
                        let target = u64::from(v.id.get());
                        if !targets.is_reachable(target) {
                            if let Err(e) = targets.push(TargetOp { kind: OpKind::Create, target })
                            {
                                log::error!("dkraid: volume {target}: {e}");
                            }
                        }
                    }
                }
                self.work = Work::Running;
            }
            (ControlKind::Management { opcode: mgmt::EVENTS_SINCE }, _) => {
                let fetched_before = self.events_fetched;
                let bytes =
                    (done.reply.transferred.get() as usize).min(self.firmware.control_data().len());
                let data = &self.firmware.control_data()[..bytes];
                for entry in data.chunks_exact(16) {
                    let Ok(e) = EventEntry::read_from_bytes(entry) else { continue };
                    let seq = e.sequence.get() as u32;
                    if seq <= self.events_fetched {
                        continue;
                    }
                    self.events_fetched = seq;
                    let target = u64::from(e.volume.get());
                    let op = match e.code.get() {
                        crate::firmware::wire::event::VOLUME_CREATED => Some(OpKind::Create),
                        crate::firmware::wire::event::VOLUME_DELETED => Some(OpKind::Destroy),
                        _ => None,
                    };
                    // The event log starts with the array's history (volumes LIST_VOLUMES
                    // already exposed): only a change of what is reachable is target work.
                    let op = match op {
                        Some(OpKind::Create) if targets.is_reachable(target) => None,
                        Some(OpKind::Destroy) if !targets.is_reachable(target) => None,
                        other => other,
                    };
                    if let Some(kind) = op {
                        if let Err(err) = targets.push(TargetOp { kind, target }) {
                            log::error!("dkraid: event {seq} on volume {target}: {err}");
                        }
                    }
                }
                // Announced but not delivered (a failed or empty answer): asking again would
                // keep the control frame from everyone else, so those events are given up.
                let announced = self.firmware.last_event;
                if self.events_fetched == fetched_before && announced > fetched_before {
                    log::error!(
                        "dkraid: the firmware announced events up to {announced} but EVENTS_SINCE \
                         {fetched_before} returned none newer (status {:#04x}); skipping them",
                        done.reply.scsi_status
                    );
                    self.events_fetched = announced;
                }
            }
            _ => {}
        }
    }

    /// Abort a submitted task as soon as the firmware can take an abort (its deadline is made
    /// due; the timer path sends the ABORT_TASK). False if it is not the firmware's.
    pub fn abort_now(&mut self, task: crate::task_pool::TaskId) -> bool {
        self.firmware.expire(task)
    }

    /// The newest event sequence the firmware announced (0: none).
    pub fn event_sequence(&self) -> u64 {
        u64::from(self.firmware.last_event)
    }

    pub fn release<P: Platform>(&mut self, platform: &mut P) {
        self.firmware.release(platform);
    }
}

#[cfg(test)]
mod bringup_tests {
    use super::*;

    #[test]
    fn the_bring_up_back_off_doubles_to_its_cap_and_the_attempts_fit_a_documented_window() {
        let waits: Vec<u64> = (1..BRINGUP_ATTEMPTS).map(bringup_backoff_ns).collect();
        assert_eq!(waits[..6], [1, 2, 4, 8, 16, 32].map(|s| s * 1_000_000_000));
        assert!(waits.iter().all(|w| *w <= BRINGUP_MAX_BACKOFF_NS));
        assert_eq!(bringup_backoff_ns(u32::MAX), BRINGUP_MAX_BACKOFF_NS, "no overflow");
        // Worst case: every attempt waits INIT_TIMEOUT for READY and again for OPERATIONAL.
        let worst = u64::from(BRINGUP_ATTEMPTS) * 2 * crate::firmware::driver::INIT_TIMEOUT_NS
            + waits.iter().sum::<u64>();
        assert!(worst <= 5 * 60 * 1_000_000_000, "{worst} ns");
    }
}
