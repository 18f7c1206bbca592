//! One iSCSI connection (and its session: MaxConnections=1, ErrorRecoveryLevel=0) in the full
//! feature phase: the CmdSN window, SCSI commands with immediate, unsolicited and solicited
//! (R2T) data, Data-In, SCSI Response with sense and residuals, NOP, task management, Text
//! (SendTargets) and Logout. Commands run on a [`Backend`]; the state machine is driven by one
//! thread that takes PDUs from a reader thread and completions from the backend, in order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use super::login::{self, Login, Params, SessionType, Step, COMMAND_WINDOW};
use super::pdu::{self, op, reject, sn_le, sn_lt, Pdu, PduError, RESERVED_TAG};

/// Which way a command moves data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    None,
    In,
    Out,
}

/// One exported logical unit's target: the iSCSI target name and the driver's target ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportedTarget {
    pub name: String,
    pub target: u64,
    pub block_size: u32,
}

/// A SCSI command for the backend.
#[derive(Clone, Debug)]
pub struct ScsiTask {
    /// Unique per server: what ABORT TASK names.
    pub task_ref: u64,
    pub target: u64,
    pub lun: u64,
    pub cdb: Vec<u8>,
    pub direction: Direction,
    /// The buffer length (fRequestedTransferCount).
    pub length: u64,
    pub data_out: Vec<u8>,
}

/// How the backend finished a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScsiDone {
    /// The command reached the device and completed (else: iSCSI response Target Failure).
    pub completed: bool,
    pub status: u8,
    pub sense: Vec<u8>,
    /// Data-in, exactly the bytes the device transferred.
    pub data: Vec<u8>,
}

/// iSCSI task management responses (RFC 7143 §11.6.1).
pub mod tmf {
    pub const FUNCTION_COMPLETE: u8 = 0;
    pub const TASK_DOES_NOT_EXIST: u8 = 1;
    pub const LUN_DOES_NOT_EXIST: u8 = 2;
    pub const ALLEGIANCE_REASSIGNMENT_NOT_SUPPORTED: u8 = 4;
    pub const NOT_SUPPORTED: u8 = 5;
    pub const REJECTED: u8 = 255;
    /// Functions (the request's byte 1).
    pub const ABORT_TASK: u8 = 1;
    pub const ABORT_TASK_SET: u8 = 2;
    pub const CLEAR_ACA: u8 = 3;
    pub const CLEAR_TASK_SET: u8 = 4;
    pub const LOGICAL_UNIT_RESET: u8 = 5;
    pub const TARGET_WARM_RESET: u8 = 6;
    pub const TARGET_COLD_RESET: u8 = 7;
    pub const TASK_REASSIGN: u8 = 8;
}

/// What executes SCSI commands and task management for the sessions.
pub trait Backend: Send + Sync {
    /// The targets exported now.
    fn targets(&self) -> Vec<ExportedTarget>;
    /// Run a command; `done` is called once, from any thread.
    fn submit(&self, task: ScsiTask, done: Box<dyn FnOnce(ScsiDone) + Send>);
    /// A task management function (the SAM numbering of [`tmf`]); `task_ref` for ABORT TASK.
    /// `done` gets the iSCSI response code.
    fn task_management(
        &self,
        function: u8,
        target: u64,
        lun: u64,
        task_ref: Option<u64>,
        done: Box<dyn FnOnce(u8) + Send>,
    );
}

/// Counters and named protocol errors, shared by all connections.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    pub connections: u64,
    pub refused_connections: u64,
    pub logins: u64,
    pub failed_logins: u64,
    pub commands: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub task_management: u64,
    pub rejects: u64,
    pub ignored_out_of_window: u64,
    /// CHECK CONDITION responses by opcode and sense key/ASC/ASCQ, e.g. `0x2a 5/24/00`.
    pub check_conditions: BTreeMap<String, u64>,
    /// The first protocol errors, named.
    pub errors: Vec<String>,
}

impl Stats {
    pub fn error(&mut self, e: String) {
        if self.errors.len() < 32 {
            self.errors.push(e);
        }
    }
}

/// What the connection's thread waits for.
#[derive(Debug)]
pub enum Event {
    Pdu(Pdu),
    ReadFailed(PduError),
    Done { itt: u32, done: ScsiDone },
    TmfDone { itt: u32, function: u8, referenced: Option<u32>, lun: u64, response: u8 },
}

/// A command's SCSI transfer length in bytes as its CDB states it (SPDTL when the command
/// completes normally), for the commands whose length the CDB fixes; `None` for the rest.
pub fn cdb_transfer_length(cdb: &[u8], block_size: u32) -> Option<u64> {
    let bs = u64::from(block_size);
    let b = |i: usize| u64::from(cdb.get(i).copied().unwrap_or(0));
    let be16 = |i: usize| (b(i) << 8) | b(i + 1);
    let be32 = |i: usize| (be16(i) << 16) | be16(i + 2);
    let opcode = *cdb.first()?;
    Some(match opcode {
        // READ(6)/WRITE(6): 0 means 256 blocks.
        0x08 | 0x0A => (if b(4) == 0 { 256 } else { b(4) }) * bs,
        0x28 | 0x2A | 0x2E => be16(7) * bs,
        0xA8 | 0xAA | 0xAE => be32(6) * bs,
        0x88 | 0x8A | 0x8E => be32(10) * bs,
        // VERIFY: data only with BYTCHK 01 (the range) or 11 (one block).
        0x2F | 0xAF | 0x8F => {
            let blocks = match opcode {
                0x2F => be16(7),
                0xAF => be32(6),
                _ => be32(10),
            };
            match (b(1) >> 1) & 3 {
                0 => 0,
                1 => blocks * bs,
                3 => bs,
                _ => return None,
            }
        }
        // WRITE SAME: one block, none with NDOB.
        0x41 => bs,
        0x93 => {
            if b(1) & 1 != 0 {
                0
            } else {
                bs
            }
        }
        // COMPARE AND WRITE: the compare and the write data.
        0x89 => 2 * b(13) * bs,
        0x12 => be16(3),
        0x03 | 0x1A | 0x15 => b(4),
        0x5A | 0x55 | 0x42 => be16(7),
        0x25 => 8,
        0xA0 | 0xA3 => be32(6),
        0x9E => be32(10),
        0x00 | 0x1B | 0x1E | 0x35 | 0x91 | 0x34 | 0x90 => 0,
        _ => return None,
    })
}

/// Set a WRITE or WRITE AND VERIFY CDB's transfer length to `blocks`; false for other
/// commands (or a WRITE(6), whose 0 would mean 256 blocks).
fn truncate_write(cdb: &mut [u8], blocks: u64) -> bool {
    match cdb.first() {
        Some(0x2A | 0x2E) if cdb.len() >= 10 => {
            cdb[7..9].copy_from_slice(&(blocks as u16).to_be_bytes());
            true
        }
        Some(0xAA | 0xAE) if cdb.len() >= 12 => {
            cdb[6..10].copy_from_slice(&(blocks as u32).to_be_bytes());
            true
        }
        Some(0x8A | 0x8E) if cdb.len() >= 16 => {
            cdb[10..14].copy_from_slice(&(blocks as u32).to_be_bytes());
            true
        }
        _ => false,
    }
}

/// The largest buffer a command may use.
pub const MAX_COMMAND_BYTES: u64 = 32 << 20;

/// Where a write's data stands.
#[derive(Debug)]
struct Collecting {
    /// Bytes received so far (in order).
    data: Vec<u8>,
    /// Unsolicited Data-Out still expected (the command's F bit was 0).
    unsolicited: bool,
    unsolicited_sn: u32,
    /// The outstanding R2T: (TTT, end offset, next DataSN).
    r2t: Option<(u32, u32, u32)>,
    r2t_sn: u32,
}

#[derive(Debug)]
struct Task {
    lun: u64,
    lun_bytes: [u8; 8],
    cdb: Vec<u8>,
    edtl: u32,
    direction: Direction,
    spdtl: Option<u64>,
    collecting: Option<Collecting>,
    task_ref: u64,
    submitted: bool,
    /// Terminated by task management: its completion is not reported.
    aborted: bool,
}

/// SCSI status and sense for responses this layer makes itself.
fn check_condition(key: u8, asc: u8, ascq: u8) -> ScsiDone {
    let mut s = vec![0u8; 18];
    s[0] = 0x70;
    s[2] = key;
    s[7] = 10;
    s[12] = asc;
    s[13] = ascq;
    ScsiDone { completed: true, status: 0x02, sense: s, data: Vec::new() }
}

/// The connection. `write` is where PDUs go.
pub struct Connection<W: Write> {
    write: W,
    backend: Arc<dyn Backend>,
    stats: Arc<Mutex<Stats>>,
    events: Sender<Event>,
    portal: String,
    next_tsih: Arc<dyn Fn() -> u16 + Send + Sync>,
    next_task_ref: Arc<dyn Fn() -> u64 + Send + Sync>,
    login: Login,
    full_feature: bool,
    params: Params,
    session_type: SessionType,
    target: Option<ExportedTarget>,
    stat_sn: u32,
    exp_cmd_sn: u32,
    /// Commands that arrived ahead of ExpCmdSN, by CmdSN.
    queued: BTreeMap<u32, Pdu>,
    tasks: HashMap<u32, Task>,
    /// ITTs whose task ended while its Data-Out may still arrive: such PDUs are dropped.
    ended: HashSet<u32>,
    next_ttt: u32,
    closing: bool,
}

impl<W: Write> std::fmt::Debug for Connection<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("full_feature", &self.full_feature)
            .field("exp_cmd_sn", &self.exp_cmd_sn)
            .field("tasks", &self.tasks.len())
            .finish()
    }
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Logout,
    /// The initiator closed it (or it failed); in-flight commands still complete in the
    /// backend, only their responses are lost.
    Dropped(String),
    /// This side closed it: the reason, named.
    Closed(String),
}

impl<W: Write> Connection<W> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        write: W,
        backend: Arc<dyn Backend>,
        stats: Arc<Mutex<Stats>>,
        events: Sender<Event>,
        portal: String,
        next_tsih: Arc<dyn Fn() -> u16 + Send + Sync>,
        next_task_ref: Arc<dyn Fn() -> u64 + Send + Sync>,
    ) -> Connection<W> {
        Connection {
            write,
            backend,
            stats,
            events,
            portal,
            next_tsih,
            next_task_ref,
            login: Login::default(),
            full_feature: false,
            params: Params::default(),
            session_type: SessionType::Normal,
            target: None,
            stat_sn: 0,
            exp_cmd_sn: 0,
            queued: BTreeMap::new(),
            tasks: HashMap::new(),
            ended: HashSet::new(),
            next_ttt: 1,
            closing: false,
        }
    }

    /// Handle events until the connection ends.
    pub fn run(&mut self, events: &Receiver<Event>) -> Ended {
        loop {
            let Ok(event) = events.recv() else {
                return Ended::Dropped("the event channel closed".into());
            };
            if let Some(end) = self.handle(event) {
                return end;
            }
        }
    }

    fn error(&self, e: String) {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).error(e);
    }

    fn stat<F: FnOnce(&mut Stats)>(&self, f: F) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn send(&mut self, p: &Pdu) -> Result<(), Ended> {
        p.write_to(&mut self.write)
            .map_err(|e| Ended::Dropped(format!("ConnectionLost: writing a {p:?}: {e}")))
    }

    fn max_cmd_sn(&self) -> u32 {
        self.exp_cmd_sn.wrapping_add(COMMAND_WINDOW - 1)
    }

    /// StatSN, ExpCmdSN and MaxCmdSN at 24/28/32; StatSN advances.
    fn numbers(&mut self, p: &mut Pdu, with_status: bool) {
        if with_status {
            p.set_u32(24, self.stat_sn);
            self.stat_sn = self.stat_sn.wrapping_add(1);
        }
        p.set_u32(28, self.exp_cmd_sn);
        p.set_u32(32, self.max_cmd_sn());
    }

    fn reject(&mut self, bad: &Pdu, reason: u8, why: String) -> Result<(), Ended> {
        self.error(why);
        self.stat(|s| s.rejects += 1);
        let mut r = Pdu::new(op::REJECT);
        r.bhs[1] = 0x80;
        r.bhs[2] = reason;
        r.set_itt(RESERVED_TAG);
        self.numbers(&mut r, true);
        r.data = bad.bhs.to_vec();
        self.send(&r)
    }

    /// One event; `Some` when the connection ends.
    pub fn handle(&mut self, event: Event) -> Option<Ended> {
        let r = match event {
            Event::Pdu(p) if !self.full_feature => self.on_login(&p),
            Event::Pdu(p) => self.on_pdu(p),
            Event::ReadFailed(PduError::Closed) => {
                return Some(Ended::Dropped("the initiator closed the connection".into()))
            }
            Event::ReadFailed(e @ PduError::DataSegmentTooLong { .. }) => {
                let PduError::DataSegmentTooLong { header, .. } = &e else { unreachable!() };
                let bad = Pdu { bhs: **header, ahs: Vec::new(), data: Vec::new() };
                let why = e.to_string();
                // The stream cannot be trusted past this PDU: reject it and close.
                let _ = self.reject(&bad, reject::PROTOCOL_ERROR, why.clone());
                return Some(Ended::Closed(why));
            }
            Event::ReadFailed(e) => {
                let why = e.to_string();
                self.error(why.clone());
                return Some(Ended::Dropped(why));
            }
            Event::Done { itt, done } => self.on_done(itt, done),
            Event::TmfDone { itt, function, referenced, lun, response } => {
                self.on_tmf_done(itt, function, referenced, lun, response)
            }
        };
        match r {
            Err(end) => Some(end),
            Ok(()) if self.closing => Some(Ended::Logout),
            Ok(()) => None,
        }
    }

    // ----------------------------------------------------------------------- login --

    fn on_login(&mut self, p: &Pdu) -> Result<(), Ended> {
        let targets = self.backend.targets();
        let exists = |name: &str| targets.iter().any(|t| t.name == name);
        let next_tsih = self.next_tsih.clone();
        let mut tsih = move || next_tsih();
        match self.login.step(p, &exists, &mut tsih) {
            Step::Continue(r) => self.send(&r),
            Step::Fail(r, why) => {
                self.error(why.clone());
                self.stat(|s| s.failed_logins += 1);
                let _ = self.send(&r);
                Err(Ended::Closed(why))
            }
            Step::Complete(r) => {
                self.send(&r)?;
                self.full_feature = true;
                self.params = self.login.params;
                self.session_type = self.login.session_type;
                self.stat_sn = self.login.stat_sn;
                self.exp_cmd_sn = self.login.cmd_sn;
                self.target = self
                    .login
                    .target_name
                    .as_ref()
                    .and_then(|n| targets.iter().find(|t| &t.name == n).cloned());
                self.stat(|s| s.logins += 1);
                Ok(())
            }
        }
    }

    // -------------------------------------------------------------- full feature --

    fn on_pdu(&mut self, p: Pdu) -> Result<(), Ended> {
        match p.opcode() {
            op::DATA_OUT => self.on_data_out(&p),
            op::SCSI_COMMAND
            | op::NOP_OUT
            | op::TASK_MGMT_REQUEST
            | op::TEXT_REQUEST
            | op::LOGOUT_REQUEST => {
                if p.opcode() == op::NOP_OUT && p.itt() == RESERVED_TAG {
                    // A reply to a NOP-In this target never sends: nothing to do.
                    return Ok(());
                }
                if p.immediate() {
                    return self.command(p);
                }
                let sn = p.u32_at(24);
                if sn == self.exp_cmd_sn {
                    self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
                    self.command(p)?;
                    while let Some(next) = self.queued.remove(&self.exp_cmd_sn) {
                        self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
                        self.command(next)?;
                    }
                    Ok(())
                } else if sn_lt(self.exp_cmd_sn, sn) && sn_le(sn, self.max_cmd_sn()) {
                    self.queued.insert(sn, p);
                    Ok(())
                } else {
                    // RFC 7143 §3.2.2.1: silently ignored.
                    let (exp, max) = (self.exp_cmd_sn, self.max_cmd_sn());
                    self.error(format!(
                        "CmdSnOutOfWindow: a {} with CmdSN {sn} outside [{exp}, {max}] was \
                         ignored",
                        op::name(p.opcode())
                    ));
                    self.stat(|s| s.ignored_out_of_window += 1);
                    Ok(())
                }
            }
            op::LOGIN_REQUEST => self.reject(
                &p,
                reject::PROTOCOL_ERROR,
                "LoginInFullFeaturePhase: a Login Request after the login completed".into(),
            ),
            op::SNACK_REQUEST => self.reject(
                &p,
                reject::COMMAND_NOT_SUPPORTED,
                "SnackNotSupported: ErrorRecoveryLevel is 0".into(),
            ),
            other => self.reject(
                &p,
                if other >= 0x20 { reject::PROTOCOL_ERROR } else { reject::COMMAND_NOT_SUPPORTED },
                format!(
                    "UnexpectedOpcode: opcode {other:#04x} ({}) from an initiator",
                    op::name(other)
                ),
            ),
        }
    }

    fn command(&mut self, p: Pdu) -> Result<(), Ended> {
        match p.opcode() {
            op::NOP_OUT => {
                let mut r = Pdu::new(op::NOP_IN);
                r.bhs[1] = 0x80;
                r.set_lun_bytes(p.lun_bytes());
                r.set_itt(p.itt());
                r.set_u32(20, RESERVED_TAG);
                self.numbers(&mut r, true);
                r.data = p.data.clone();
                self.send(&r)
            }
            op::SCSI_COMMAND => self.scsi_command(p),
            op::TASK_MGMT_REQUEST => self.task_management(&p),
            op::TEXT_REQUEST => self.text(&p),
            op::LOGOUT_REQUEST => {
                let mut r = Pdu::new(op::LOGOUT_RESPONSE);
                r.bhs[1] = 0x80;
                let reason = p.flags() & 0x7F;
                // 0 close the session, 1 close the connection; 2 (recovery) needs ERL 2.
                r.bhs[2] = if reason <= 1 { 0 } else { 2 };
                r.set_itt(p.itt());
                self.numbers(&mut r, true);
                self.send(&r)?;
                self.closing = true;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn text(&mut self, p: &Pdu) -> Result<(), Ended> {
        let keys = match pdu::parse_text(&p.data) {
            Ok(k) => k,
            Err(e) => return self.reject(p, reject::INVALID_PDU_FIELD, e),
        };
        let mut answers = Vec::new();
        for (k, v) in keys {
            if k == "SendTargets" {
                let all = self.backend.targets();
                let chosen: Vec<&ExportedTarget> = all
                    .iter()
                    .filter(|t| match v.as_str() {
                        "All" => true,
                        "" => self.target.as_ref().is_some_and(|s| s.name == t.name),
                        name => t.name == name,
                    })
                    .collect();
                for t in chosen {
                    answers.push(("TargetName".to_string(), t.name.clone()));
                    answers.push(("TargetAddress".to_string(), format!("{},1", self.portal)));
                }
            } else {
                answers.push((k, "NotUnderstood".into()));
            }
        }
        let mut r = Pdu::new(op::TEXT_RESPONSE);
        r.bhs[1] = 0x80;
        r.set_itt(p.itt());
        r.set_u32(20, RESERVED_TAG);
        self.numbers(&mut r, true);
        r.data = pdu::encode_text(&answers);
        self.send(&r)
    }

    fn scsi_command(&mut self, p: Pdu) -> Result<(), Ended> {
        self.stat(|s| s.commands += 1);
        let itt = p.itt();
        if self.session_type == SessionType::Discovery {
            return self.reject(
                &p,
                reject::PROTOCOL_ERROR,
                "ScsiCommandInDiscoverySession: a discovery session carries no SCSI commands"
                    .into(),
            );
        }
        if self.tasks.contains_key(&itt) {
            return self.reject(
                &p,
                0x07,
                format!("TaskInProgress: ITT {itt:#x} is already a task of this session"),
            );
        }
        let flags = p.flags();
        let (read, write) = (flags & 0x40 != 0, flags & 0x20 != 0);
        let mut cdb = p.bhs[32..48].to_vec();
        // Extended CDB AHS (type 1): the CDB's bytes past 16.
        let mut at = 0;
        while at + 4 <= p.ahs.len() {
            let len = usize::from(u16::from_be_bytes([p.ahs[at], p.ahs[at + 1]]));
            let kind = p.ahs[at + 2];
            let Some(body) = p.ahs.get(at + 3..at + 3 + len) else {
                return self.reject(
                    &p,
                    reject::INVALID_PDU_FIELD,
                    "MalformedAhs: an AHS runs past TotalAHSLength".into(),
                );
            };
            match kind {
                1 => cdb.extend_from_slice(&body[1.min(body.len())..]),
                _ => {
                    return self.reject(
                        &p,
                        reject::INVALID_PDU_FIELD,
                        format!(
                            "UnsupportedAhs: AHS type {kind} (bidirectional commands are not \
                             supported)"
                        ),
                    )
                }
            }
            at += pdu::padded(3 + len);
        }
        let edtl = p.u32_at(20);
        let lun_bytes = p.lun_bytes();
        let lun = pdu::decode_lun(lun_bytes);
        let Some(target) = self.target.clone() else {
            return self.reject(
                &p,
                reject::PROTOCOL_ERROR,
                "NoTarget: the session names none".into(),
            );
        };
        let direction = match (read, write) {
            (true, true) => {
                return self.reject(
                    &p,
                    reject::INVALID_PDU_FIELD,
                    "BidirectionalCommand: R and W both set; not supported".into(),
                )
            }
            (true, false) => Direction::In,
            (false, true) => Direction::Out,
            (false, false) => Direction::None,
        };
        if !p.data.is_empty() && (!write || !self.params.immediate_data) {
            return self.reject(
                &p,
                reject::PROTOCOL_ERROR,
                format!(
                    "UnexpectedImmediateData: {} data bytes with a command that {}",
                    p.data.len(),
                    if write { "may not carry them (ImmediateData=No)" } else { "has no W bit" }
                ),
            );
        }
        if p.data.len() as u64 > u64::from(edtl) || p.data.len() as u32 > self.params.first_burst {
            return self.reject(
                &p,
                reject::PROTOCOL_ERROR,
                format!(
                    "ImmediateDataTooLong: {} bytes, more than the expected length {edtl} or \
                     FirstBurstLength {}",
                    p.data.len(),
                    self.params.first_burst
                ),
            );
        }
        let task_ref = (self.next_task_ref)();
        let spdtl = cdb_transfer_length(&cdb, target.block_size);
        let mut task = Task {
            lun: lun.unwrap_or(u64::MAX),
            lun_bytes,
            cdb,
            edtl,
            direction,
            spdtl,
            collecting: None,
            task_ref,
            submitted: false,
            aborted: false,
        };
        if lun.is_none() {
            self.tasks.insert(itt, task);
            return self.finish(itt, check_condition(0x05, 0x25, 0x00));
        }
        if u64::from(edtl) > MAX_COMMAND_BYTES || spdtl.is_some_and(|s| s > MAX_COMMAND_BYTES) {
            self.ended.insert(itt);
            self.tasks.insert(itt, task);
            return self.finish(itt, check_condition(0x05, 0x24, 0x00));
        }
        if direction == Direction::Out && edtl > 0 {
            let unsolicited = !p.final_bit() && !self.params.initial_r2t;
            if !p.final_bit() && self.params.initial_r2t {
                return self.reject(
                    &p,
                    reject::PROTOCOL_ERROR,
                    "UnsolicitedDataNotAllowed: F is 0 but InitialR2T=Yes".into(),
                );
            }
            task.collecting = Some(Collecting {
                data: p.data.clone(),
                unsolicited,
                unsolicited_sn: 0,
                r2t: None,
                r2t_sn: 0,
            });
            self.tasks.insert(itt, task);
            self.stat(|s| s.bytes_in += p.data.len() as u64);
            return self.advance_write(itt);
        }
        self.tasks.insert(itt, task);
        self.submit(itt)
    }

    /// Send the next R2T or, with all the data in, run the write.
    fn advance_write(&mut self, itt: u32) -> Result<(), Ended> {
        let max_burst = self.params.max_burst;
        let Some(task) = self.tasks.get_mut(&itt) else { return Ok(()) };
        let edtl = task.edtl;
        let lun_bytes = task.lun_bytes;
        let Some(c) = task.collecting.as_mut() else { return Ok(()) };
        if c.unsolicited || c.r2t.is_some() {
            return Ok(());
        }
        let have = c.data.len() as u32;
        if have >= edtl {
            return self.submit(itt);
        }
        let ttt = self.next_ttt;
        self.next_ttt = self.next_ttt.wrapping_add(1).max(1);
        if self.next_ttt == RESERVED_TAG {
            self.next_ttt = 1;
        }
        let len = (edtl - have).min(max_burst);
        c.r2t = Some((ttt, have + len, 0));
        let r2t_sn = c.r2t_sn;
        c.r2t_sn += 1;
        let mut r = Pdu::new(op::R2T);
        r.bhs[1] = 0x80;
        r.set_lun_bytes(lun_bytes);
        r.set_itt(itt);
        r.set_u32(20, ttt);
        self.numbers(&mut r, false);
        r.set_u32(24, self.stat_sn);
        r.set_u32(36, r2t_sn);
        r.set_u32(40, have);
        r.set_u32(44, len);
        self.send(&r)
    }

    fn on_data_out(&mut self, p: &Pdu) -> Result<(), Ended> {
        let itt = p.itt();
        let ttt = p.u32_at(20);
        let data_sn = p.u32_at(36);
        let offset = p.u32_at(40);
        if self.ended.contains(&itt) {
            return Ok(());
        }
        let first_burst = self.params.first_burst;
        let Some(task) = self.tasks.get_mut(&itt) else {
            return self.reject(
                p,
                reject::INVALID_PDU_FIELD,
                format!("UnknownTask: a Data-Out for ITT {itt:#x}, which names no write"),
            );
        };
        let edtl = task.edtl;
        let Some(c) = task.collecting.as_mut() else {
            return self.reject(
                p,
                reject::INVALID_PDU_FIELD,
                format!("UnexpectedDataOut: task {itt:#x} takes no more data"),
            );
        };
        let have = c.data.len() as u32;
        let problem = if ttt == RESERVED_TAG {
            if !c.unsolicited {
                Some(format!("UnexpectedUnsolicitedData: task {itt:#x} expects none"))
            } else if data_sn != c.unsolicited_sn {
                Some(format!(
                    "DataSnMismatch: task {itt:#x} expected DataSN {} and got {data_sn}",
                    c.unsolicited_sn
                ))
            } else if offset != have {
                Some(format!(
                    "BufferOffsetMismatch: task {itt:#x} expected offset {have}, got {offset}"
                ))
            } else if have as usize + p.data.len() > first_burst.min(edtl) as usize {
                Some(format!(
                    "TooMuchUnsolicitedData: task {itt:#x} got more than FirstBurstLength {} \
                     or its expected length {edtl}",
                    first_burst
                ))
            } else {
                None
            }
        } else {
            match c.r2t {
                Some((want_ttt, _, _)) if want_ttt != ttt => Some(format!(
                    "UnknownTargetTransferTag: task {itt:#x} has R2T {want_ttt:#x}, not {ttt:#x}"
                )),
                None => Some(format!("NoR2tOutstanding: task {itt:#x} solicited no data")),
                Some((_, _, sn)) if sn != data_sn => Some(format!(
                    "DataSnMismatch: task {itt:#x} expected DataSN {sn} and got {data_sn}"
                )),
                Some(_) if offset != have => Some(format!(
                    "BufferOffsetMismatch: task {itt:#x} expected offset {have}, got {offset}"
                )),
                Some((_, end, _)) if have as usize + p.data.len() > end as usize => Some(format!(
                    "TooMuchSolicitedData: task {itt:#x} asked for bytes up to {end}, got \
                     {} more",
                    have as usize + p.data.len() - end as usize
                )),
                Some(_) => None,
            }
        };
        if let Some(why) = problem {
            // ErrorRecoveryLevel 0: the command ends without running.
            self.error(why);
            self.ended.insert(itt);
            let mut done = check_condition(0x0B, 0x4B, 0x00);
            done.data.clear();
            if let Some(t) = self.tasks.get_mut(&itt) {
                t.collecting = None;
            }
            return self.finish(itt, done);
        }
        c.data.extend_from_slice(&p.data);
        let n = p.data.len() as u64;
        if ttt == RESERVED_TAG {
            c.unsolicited_sn += 1;
            if p.final_bit() {
                c.unsolicited = false;
            }
        } else if let Some((t, end, sn)) = c.r2t {
            if p.final_bit() || c.data.len() as u32 >= end {
                c.r2t = None;
            } else {
                c.r2t = Some((t, end, sn + 1));
            }
        }
        self.stat(|s| s.bytes_in += n);
        self.advance_write(itt)
    }

    /// Hand the command to the backend.
    fn submit(&mut self, itt: u32) -> Result<(), Ended> {
        let Some(task) = self.tasks.get_mut(&itt) else { return Ok(()) };
        let target = self.target.as_ref().map_or(0, |t| t.target);
        let edtl = u64::from(task.edtl);
        let (length, data_out) = match task.direction {
            Direction::Out => {
                let data = task.collecting.take().map(|c| c.data).unwrap_or_default();
                match task.spdtl {
                    // Overflow: the CDB wants more than the initiator sends. Refused without
                    // writing anything (FCP-4 9.4.2 b, as iSCSI allows).
                    Some(s) if s > edtl => {
                        // A WRITE whose data stops short: FCP-4 9.4.2 a) — the blocks the
                        // data covers are written, nothing past the expected length.
                        let bs = u64::from(self.target.as_ref().map_or(512, |t| t.block_size));
                        match truncate_write(&mut task.cdb, edtl / bs) {
                            true => {
                                let n = (edtl / bs * bs) as usize;
                                (n as u64, data[..n.min(data.len())].to_vec())
                            }
                            // Anything else is refused without writing (FCP-4 9.4.2 b).
                            false => {
                                self.ended.insert(itt);
                                return self.finish(itt, check_condition(0x05, 0x0E, 0x03));
                            }
                        }
                    }
                    // Underflow: the device takes what the CDB says.
                    Some(s) => (s, data[..s as usize].to_vec()),
                    None => (edtl, data),
                }
            }
            Direction::In => (edtl.max(task.spdtl.unwrap_or(0)), Vec::new()),
            Direction::None => (0, Vec::new()),
        };
        let direction = if length == 0 { Direction::None } else { task.direction };
        task.submitted = true;
        let cmd = ScsiTask {
            task_ref: task.task_ref,
            target,
            lun: task.lun,
            cdb: task.cdb.clone(),
            direction,
            length,
            data_out,
        };
        let events = self.events.clone();
        self.backend.submit(
            cmd,
            Box::new(move |done| {
                let _ = events.send(Event::Done { itt, done });
            }),
        );
        Ok(())
    }

    fn on_done(&mut self, itt: u32, done: ScsiDone) -> Result<(), Ended> {
        let aborted = self.tasks.get(&itt).is_none_or(|t| t.aborted);
        if aborted {
            self.tasks.remove(&itt);
            return Ok(());
        }
        self.finish(itt, done)
    }

    /// Data-In, then the SCSI Response with status, sense and residuals; the task ends.
    fn finish(&mut self, itt: u32, done: ScsiDone) -> Result<(), Ended> {
        let Some(task) = self.tasks.remove(&itt) else { return Ok(()) };
        let edtl = u64::from(task.edtl);
        let mut data_sn = 0u32;
        let mut sent = 0u64;
        let (overflow, residual) = match task.direction {
            Direction::In => {
                let n = done.data.len() as u64;
                let give = n.min(edtl) as usize;
                let seg = (self.params.initiator_max_recv as usize).max(512);
                let burst = self.params.max_burst as usize;
                let mut off = 0usize;
                while off < give {
                    let len = seg.min(give - off).min(burst - off % burst);
                    let mut d = Pdu::new(op::DATA_IN);
                    let last = off + len == give;
                    let burst_end = (off + len) % burst == 0;
                    d.bhs[1] = if last || burst_end { 0x80 } else { 0 };
                    d.set_lun_bytes(task.lun_bytes);
                    d.set_itt(itt);
                    d.set_u32(20, RESERVED_TAG);
                    self.numbers(&mut d, false);
                    d.set_u32(36, data_sn);
                    d.set_u32(40, off as u32);
                    d.data = done.data[off..off + len].to_vec();
                    self.send(&d)?;
                    data_sn += 1;
                    off += len;
                }
                sent = give as u64;
                if n > edtl {
                    (true, n - edtl)
                } else {
                    (false, edtl - n)
                }
            }
            Direction::Out => match task.spdtl {
                Some(s) if s > edtl => (true, s - edtl),
                Some(s) => (false, edtl - s),
                None => (false, 0),
            },
            Direction::None => match task.spdtl {
                Some(s) if s > edtl => (true, s - edtl),
                _ => (false, edtl),
            },
        };
        self.stat(|s| s.bytes_out += sent);
        let mut r = Pdu::new(op::SCSI_RESPONSE);
        let mut flags = 0x80u8;
        if residual > 0 {
            flags |= if overflow { 0x04 } else { 0x02 };
        }
        r.bhs[1] = flags;
        r.bhs[2] = if done.completed { 0x00 } else { 0x01 };
        r.bhs[3] = if done.completed { done.status } else { 0 };
        r.set_itt(itt);
        self.numbers(&mut r, true);
        r.set_u32(36, data_sn);
        r.set_u32(44, residual.min(u64::from(u32::MAX)) as u32);
        if done.completed && done.status == 0x02 {
            let key = match done.sense.get(..14) {
                Some(s) => {
                    format!("{:#04x} {:X}/{:02X}/{:02X}", task.cdb[0], s[2] & 0x0F, s[12], s[13])
                }
                None => format!("{:#04x} no sense", task.cdb[0]),
            };
            self.stat(|s| *s.check_conditions.entry(key).or_default() += 1);
        }
        if done.completed && !done.sense.is_empty() {
            let mut seg = (done.sense.len() as u16).to_be_bytes().to_vec();
            seg.extend_from_slice(&done.sense);
            r.data = seg;
        }
        self.send(&r)
    }

    // -------------------------------------------------------------- task management --

    fn tmf_response(&mut self, itt: u32, response: u8) -> Result<(), Ended> {
        let mut r = Pdu::new(op::TASK_MGMT_RESPONSE);
        r.bhs[1] = 0x80;
        r.bhs[2] = response;
        r.set_itt(itt);
        self.numbers(&mut r, true);
        self.send(&r)
    }

    fn task_management(&mut self, p: &Pdu) -> Result<(), Ended> {
        self.stat(|s| s.task_management += 1);
        let function = p.flags() & 0x7F;
        let itt = p.itt();
        let lun = pdu::decode_lun(p.lun_bytes());
        let target = self.target.as_ref().map_or(0, |t| t.target);
        let events = self.events.clone();
        let reply = move |referenced: Option<u32>, lun: u64| -> Box<dyn FnOnce(u8) + Send> {
            Box::new(move |response| {
                let _ = events.send(Event::TmfDone { itt, function, referenced, lun, response });
            })
        };
        match function {
            tmf::ABORT_TASK => {
                let rtt = p.u32_at(20);
                let ref_cmd_sn = p.u32_at(32);
                // A command still waiting for its CmdSN turn: it never runs.
                if let Some(sn) = self
                    .queued
                    .iter()
                    .find(|(_, q)| q.opcode() == op::SCSI_COMMAND && q.itt() == rtt)
                    .map(|(sn, _)| *sn)
                {
                    let _ = ref_cmd_sn;
                    self.queued.remove(&sn);
                    return self.tmf_response(itt, tmf::FUNCTION_COMPLETE);
                }
                let Some(task) = self.tasks.get_mut(&rtt) else {
                    return self.tmf_response(itt, tmf::TASK_DOES_NOT_EXIST);
                };
                if !task.submitted {
                    // Still collecting its data: it ends here.
                    self.tasks.remove(&rtt);
                    self.ended.insert(rtt);
                    return self.tmf_response(itt, tmf::FUNCTION_COMPLETE);
                }
                let (task_ref, tlun) = (task.task_ref, task.lun);
                self.backend.task_management(
                    tmf::ABORT_TASK,
                    target,
                    tlun,
                    Some(task_ref),
                    reply(Some(rtt), tlun),
                );
                Ok(())
            }
            tmf::ABORT_TASK_SET
            | tmf::CLEAR_TASK_SET
            | tmf::LOGICAL_UNIT_RESET
            | tmf::CLEAR_ACA => {
                let Some(lun) = lun else {
                    return self.tmf_response(itt, tmf::LUN_DOES_NOT_EXIST);
                };
                self.backend.task_management(function, target, lun, None, reply(None, lun));
                Ok(())
            }
            tmf::TARGET_WARM_RESET | tmf::TARGET_COLD_RESET => {
                self.backend.task_management(
                    tmf::TARGET_WARM_RESET,
                    target,
                    0,
                    None,
                    reply(None, u64::MAX),
                );
                Ok(())
            }
            tmf::TASK_REASSIGN => {
                self.tmf_response(itt, tmf::ALLEGIANCE_REASSIGNMENT_NOT_SUPPORTED)
            }
            _ => self.tmf_response(itt, tmf::NOT_SUPPORTED),
        }
    }

    fn on_tmf_done(
        &mut self,
        itt: u32,
        function: u8,
        referenced: Option<u32>,
        lun: u64,
        mut response: u8,
    ) -> Result<(), Ended> {
        if response == tmf::FUNCTION_COMPLETE {
            match function {
                tmf::ABORT_TASK => match referenced.and_then(|r| self.tasks.get_mut(&r)) {
                    // Its response went out before the abort took effect.
                    None => response = tmf::TASK_DOES_NOT_EXIST,
                    Some(t) => t.aborted = true,
                },
                tmf::CLEAR_ACA => {}
                _ => {
                    // Every affected task is terminated; none reports a status.
                    let all = function == tmf::TARGET_WARM_RESET;
                    let mut gone = Vec::new();
                    for (k, t) in self.tasks.iter_mut() {
                        if all || t.lun == lun {
                            t.aborted = true;
                            if !t.submitted {
                                gone.push(*k);
                            }
                        }
                    }
                    for k in gone {
                        self.tasks.remove(&k);
                        self.ended.insert(k);
                    }
                    self.queued.retain(|_, q| {
                        q.opcode() != op::SCSI_COMMAND
                            || !(all || pdu::decode_lun(q.lun_bytes()) == Some(lun))
                    });
                }
            }
        }
        self.tmf_response(itt, response)?;
        if function == tmf::TARGET_WARM_RESET && response == tmf::FUNCTION_COMPLETE {
            // A cold reset also ends the connection; warm does not. Both map to the
            // driver's target reset.
        }
        Ok(())
    }
}

/// Run one accepted connection to its end: a reader thread feeds PDUs to the state machine.
pub fn serve_stream(
    stream: std::net::TcpStream,
    backend: Arc<dyn Backend>,
    stats: Arc<Mutex<Stats>>,
    portal: String,
    next_tsih: Arc<dyn Fn() -> u16 + Send + Sync>,
    next_task_ref: Arc<dyn Fn() -> u64 + Send + Sync>,
) -> Ended {
    let _ = stream.set_nodelay(true);
    let (tx, rx) = mpsc::channel();
    let reader = match stream.try_clone() {
        Ok(r) => r,
        Err(e) => return Ended::Dropped(format!("ConnectionLost: {e}")),
    };
    let reader_tx = tx.clone();
    let reader_thread = std::thread::spawn(move || {
        let mut r = std::io::BufReader::new(reader);
        loop {
            match Pdu::read_from(&mut r, login::TARGET_MAX_RECV_DATA_SEGMENT as usize) {
                Ok(p) => {
                    if reader_tx.send(Event::Pdu(p)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = reader_tx.send(Event::ReadFailed(e));
                    return;
                }
            }
        }
    });
    let writer = match stream.try_clone() {
        Ok(w) => w,
        Err(e) => return Ended::Dropped(format!("ConnectionLost: {e}")),
    };
    let mut c = Connection::new(
        std::io::BufWriter::new(writer),
        backend,
        stats,
        tx,
        portal,
        next_tsih,
        next_task_ref,
    );
    let end = c.run(&rx);
    let _ = c.write.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = reader_thread.join();
    end
}
