//! The admin round trip over any [`Transport`]: SUBMIT (async) → the completion whose
//! `args[0]` is our ticket (other completions are kept) → FETCH(ticket) → decode. All
//! encoding and decoding is `dkraid_core::admin`'s.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use dkraid_core::admin::wire::{
    ControllerInfo, DriveEntry, DriveRef, EventEntry, EventsSince, HotspareSet, IoStats,
    RebuildStart, StageInfo, VolumeCreate, VolumeEntry, VolumeRef, MAX_EVENTS_PER_REQUEST,
    MAX_REQUEST_BYTES,
};
use dkraid_core::admin::{decode_list, decode_response, encode_request, status, Body};
use dkraid_core::IOReturn;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use crate::error::{Error, ErrorKind, Result};
use crate::transport::{selector, AsyncMessage, Transport, MAX_STRUCT_OUT};

/// How long a completion may take before the request is given up.
pub const COMPLETION_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times a SUBMIT refused with `kIOReturnNoResources` is tried again.
pub const NO_RESOURCES_RETRIES: u32 = 8;
/// How long to wait for some completion (a request slot freeing up) before trying again.
pub const NO_RESOURCES_WAIT: Duration = Duration::from_millis(250);
/// The most completions kept for later (other tickets, event notifications).
const MAX_PENDING: usize = 1024;

/// A connection to the driver's admin interface.
#[derive(Debug)]
pub struct Client<T: Transport> {
    transport: T,
    /// Completions that arrived while we waited for another one.
    pending: VecDeque<AsyncMessage>,
    sequence: u32,
    timeout: Duration,
    retry_wait: Duration,
}

/// A decoded OK response: the command it answers and its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub command: u16,
    pub payload: Vec<u8>,
}

fn read<T: FromBytes + KnownLayout + Immutable + Unaligned>(
    payload: &[u8],
    what: &str,
) -> Result<T> {
    T::read_from_bytes(payload).map_err(|_| {
        Error::protocol(format!(
            "BadResponse: a {what} payload is {} bytes, expected {}",
            payload.len(),
            std::mem::size_of::<T>()
        ))
    })
}

fn list<T: FromBytes + KnownLayout + Immutable + Unaligned + Clone>(
    payload: &[u8],
) -> Result<(u32, Vec<T>)> {
    let (total, entries) = decode_list::<T>(payload)
        .map_err(|e| Error::protocol(format!("the driver's response does not parse: {e}")))?;
    Ok((total, entries.to_vec()))
}

fn is_submit_completion(m: &AsyncMessage) -> bool {
    m.args.len() == 2
}

fn is_event_notification(m: &AsyncMessage) -> bool {
    m.args.len() == 1
}

impl<T: Transport> Client<T> {
    /// A client over an already open transport.
    pub fn new(transport: T) -> Client<T> {
        Client {
            transport,
            pending: VecDeque::new(),
            sequence: 0,
            timeout: COMPLETION_TIMEOUT,
            retry_wait: NO_RESOURCES_WAIT,
        }
    }

    /// Opens `transport` (IOServiceOpen / OPEN) and wraps it.
    pub fn open(mut transport: T) -> Result<Client<T>> {
        transport.open()?;
        Ok(Client::new(transport))
    }

    /// Sets how long a completion may take (default [`COMPLETION_TIMEOUT`]) and how long to
    /// wait between `NoResources` retries.
    pub fn with_timeouts(mut self, completion: Duration, retry_wait: Duration) -> Client<T> {
        self.timeout = completion;
        self.retry_wait = retry_wait;
        self
    }

    /// The transport, e.g. for test-bed control commands.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    fn keep(&mut self, m: AsyncMessage) {
        if self.pending.len() == MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(m);
    }

    /// SUBMIT with retries on `kIOReturnNoResources`: returns the ticket.
    fn submit(&mut self, request: &[u8]) -> Result<u64> {
        let mut attempt = 0;
        loop {
            let reply = self.transport.call(selector::SUBMIT, &[], request, 0, 1, true)?;
            if reply.kern_return == IOReturn::kIOReturnNoResources.0
                && attempt < NO_RESOURCES_RETRIES
            {
                attempt += 1;
                // Every request slot is busy: wait for some completion to free one.
                if let Some(m) = self.transport.wait_async(self.retry_wait)? {
                    self.keep(m);
                }
                continue;
            }
            if reply.kern_return != 0 {
                let mut e = Error::from_kern_return(reply.kern_return, "SUBMIT");
                if reply.kern_return == IOReturn::kIOReturnNoResources.0 {
                    e.message = format!(
                        "every request slot of the driver stayed busy after {} retries \
                         (kIOReturnNoResources); try again in a moment",
                        NO_RESOURCES_RETRIES
                    );
                }
                return Err(e);
            }
            return match reply.scalars_out.as_slice() {
                [ticket] => Ok(*ticket),
                other => Err(Error::protocol(format!(
                    "SUBMIT returned {} scalars, expected 1 (the ticket)",
                    other.len()
                ))),
            };
        }
    }

    /// Waits for the completion of `ticket`, keeping every other completion.
    fn wait_for(&mut self, ticket: u64) -> Result<AsyncMessage> {
        if let Some(i) =
            self.pending.iter().position(|m| is_submit_completion(m) && m.args[0] == ticket)
        {
            if let Some(m) = self.pending.remove(i) {
                return Ok(m);
            }
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timed_out(ticket));
            }
            match self.transport.wait_async(left)? {
                Some(m) if is_submit_completion(&m) && m.args[0] == ticket => return Ok(m),
                Some(m) => self.keep(m),
                None => return Err(self.timed_out(ticket)),
            }
        }
    }

    fn timed_out(&self, ticket: u64) -> Error {
        Error::protocol(format!(
            "the driver did not complete request ticket {ticket} within {} s",
            self.timeout.as_secs_f64()
        ))
    }

    /// One admin request: its OK payload, or the error its status names.
    pub fn request(&mut self, body: &Body<'_>) -> Result<Reply> {
        self.sequence = self.sequence.wrapping_add(1);
        let sequence = self.sequence;
        let mut buf = [0u8; MAX_REQUEST_BYTES];
        let n = encode_request(&mut buf, sequence, body)
            .map_err(|e| Error::protocol(format!("raidctl could not encode its request: {e}")))?;
        let ticket = self.submit(&buf[..n])?;
        let done = self.wait_for(ticket)?;
        if done.status != 0 {
            return Err(Error::from_kern_return(done.status, "the request's completion"));
        }
        let reply =
            self.transport.call(selector::FETCH, &[ticket], &[], MAX_STRUCT_OUT, 0, false)?;
        if reply.kern_return != 0 {
            return Err(Error::from_kern_return(reply.kern_return, "FETCH"));
        }
        let announced = done.args[1];
        if announced != reply.struct_out.len() as u64 {
            return Err(Error::protocol(format!(
                "BadResponse: the completion announced {announced} response bytes, FETCH \
                 returned {}",
                reply.struct_out.len()
            )));
        }
        let response = decode_response(&reply.struct_out)
            .map_err(|e| Error::protocol(format!("the driver's response does not parse: {e}")))?;
        if response.sequence != sequence || response.command != body.command() {
            return Err(Error::protocol(format!(
                "BadResponse: the response answers command {:#04x} sequence {}, we sent \
                 command {:#04x} sequence {sequence}",
                response.command,
                response.sequence,
                body.command()
            )));
        }
        if response.status != status::OK {
            return Err(Error::from_status(response.status, body.command()));
        }
        Ok(Reply { command: response.command, payload: response.payload.to_vec() })
    }

    // ---- the commands ----

    pub fn controller_show(&mut self) -> Result<ControllerInfo> {
        read(&self.request(&Body::ControllerShow)?.payload, "CONTROLLER_SHOW")
    }

    pub fn stage_get(&mut self) -> Result<u32> {
        let info: StageInfo = read(&self.request(&Body::StageGet)?.payload, "STAGE_GET")?;
        Ok(info.stage.get())
    }

    /// `(total, volumes)`: fewer than `total` came back if they did not fit one response.
    pub fn volume_list(&mut self) -> Result<(u32, Vec<VolumeEntry>)> {
        list(&self.request(&Body::VolumeList)?.payload)
    }

    pub fn volume_show(&mut self, volume: u16) -> Result<VolumeEntry> {
        let r = VolumeRef { volume: U16::new(volume), reserved: U16::new(0) };
        read(&self.request(&Body::VolumeShow(&r))?.payload, "VOLUME_SHOW")
    }

    pub fn drive_list(&mut self) -> Result<(u32, Vec<DriveEntry>)> {
        list(&self.request(&Body::DriveList)?.payload)
    }

    pub fn drive_show(&mut self, drive: u16) -> Result<DriveEntry> {
        let r = DriveRef { drive: U16::new(drive), reserved: U16::new(0) };
        read(&self.request(&Body::DriveShow(&r))?.payload, "DRIVE_SHOW")
    }

    /// Every event after `since`, oldest first (as many requests as it takes).
    pub fn events_since(&mut self, since: u64) -> Result<Vec<EventEntry>> {
        let mut out: Vec<EventEntry> = Vec::new();
        let mut after = since;
        loop {
            let req =
                EventsSince { sequence: U64::new(after), max: U32::new(MAX_EVENTS_PER_REQUEST) };
            let (total, batch) =
                list::<EventEntry>(&self.request(&Body::EventsSince(&req))?.payload)?;
            let Some(last) = batch.last().map(|e| e.sequence.get()) else {
                return Ok(out);
            };
            if last <= after {
                return Err(Error::protocol(format!(
                    "BadResponse: EVENTS_SINCE {after} returned event {last}, not a newer one"
                )));
            }
            let complete = batch.len() as u64 >= u64::from(total);
            out.extend(batch);
            after = last;
            if complete {
                return Ok(out);
            }
        }
    }

    /// `volume` [`dkraid_core::admin::wire::ALL_VOLUMES`] is the whole controller.
    pub fn io_stats(&mut self, volume: u16) -> Result<IoStats> {
        let r = VolumeRef { volume: U16::new(volume), reserved: U16::new(0) };
        read(&self.request(&Body::IoStats(&r))?.payload, "IO_STATS")
    }

    pub fn volume_create(&mut self, create: &VolumeCreate) -> Result<VolumeEntry> {
        read(&self.request(&Body::VolumeCreate(create))?.payload, "VOLUME_CREATE")
    }

    pub fn volume_delete(&mut self, volume: u16) -> Result<()> {
        let r = VolumeRef { volume: U16::new(volume), reserved: U16::new(0) };
        self.request(&Body::VolumeDelete(&r)).map(drop)
    }

    /// `volume` [`dkraid_core::admin::wire::GLOBAL_SPARE`] for a global spare.
    pub fn hotspare_set(&mut self, drive: u16, volume: u16) -> Result<()> {
        let r = HotspareSet { drive: U16::new(drive), volume: U16::new(volume) };
        self.request(&Body::HotspareSet(&r)).map(drop)
    }

    pub fn hotspare_clear(&mut self, drive: u16) -> Result<()> {
        let r = DriveRef { drive: U16::new(drive), reserved: U16::new(0) };
        self.request(&Body::HotspareClear(&r)).map(drop)
    }

    pub fn rebuild_start(&mut self, volume: u16, drive: u16) -> Result<()> {
        let r = RebuildStart { volume: U16::new(volume), drive: U16::new(drive) };
        self.request(&Body::RebuildStart(&r)).map(drop)
    }

    // ---- events ----

    /// WATCH_EVENTS: from now on a completion `[newest_sequence]` arrives whenever the
    /// firmware announces new events. Returns the newest sequence now.
    pub fn watch_events(&mut self) -> Result<u64> {
        let reply = self.transport.call(selector::WATCH_EVENTS, &[], &[], 0, 1, true)?;
        if reply.kern_return != 0 {
            return Err(Error::from_kern_return(reply.kern_return, "WATCH_EVENTS"));
        }
        match reply.scalars_out.as_slice() {
            [newest] => Ok(*newest),
            other => Err(Error::protocol(format!(
                "WATCH_EVENTS returned {} scalars, expected 1 (the newest sequence)",
                other.len()
            ))),
        }
    }

    /// The next event notification's newest sequence, or `None` if none came within
    /// `timeout`. Request completions that arrive meanwhile are kept.
    pub fn next_event_notification(&mut self, timeout: Duration) -> Result<Option<u64>> {
        if let Some(i) = self.pending.iter().position(is_event_notification) {
            if let Some(m) = self.pending.remove(i) {
                return self.notification(m).map(Some);
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.transport.wait_async(left)? {
                Some(m) if is_event_notification(&m) => return self.notification(m).map(Some),
                Some(m) => self.keep(m),
                None => return Ok(None),
            }
            if left.is_zero() {
                return Ok(None);
            }
        }
    }

    fn notification(&self, m: AsyncMessage) -> Result<u64> {
        if m.status != 0 {
            let mut e = Error::from_kern_return(m.status, "the event watch");
            if e.kind == ErrorKind::Protocol {
                e.message = format!("{} (the driver ended the event watch)", e.message);
            }
            return Err(e);
        }
        Ok(m.args[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::CallReply;
    use dkraid_core::admin::wire::{command, ALL_VOLUMES};
    use dkraid_core::admin::{
        decode_request, encode_error, encode_list, encode_response, AdminError,
    };
    use zerocopy::IntoBytes;

    /// What the fake driver does with one SUBMIT.
    #[derive(Clone, Debug)]
    enum Step {
        /// Refuse the SUBMIT with this kern_return.
        Refuse(i32),
        /// Accept it as `ticket`; deliver `before` completions first, then (unless
        /// `complete` is false) ours.
        Accept { ticket: u64, before: Vec<AsyncMessage>, complete: bool },
    }

    type Responder = dyn FnMut(&dkraid_core::admin::Request<'_>, &mut [u8]) -> usize;

    /// A scripted in-memory driver: answers each SUBMIT by `steps`, and each request with
    /// `respond`.
    struct Fake {
        steps: VecDeque<Step>,
        respond: Box<Responder>,
        asyncs: VecDeque<AsyncMessage>,
        responses: Vec<(u64, Vec<u8>)>,
        calls: Vec<u32>,
        waits: usize,
    }

    impl Fake {
        fn new(
            steps: Vec<Step>,
            respond: impl FnMut(&dkraid_core::admin::Request<'_>, &mut [u8]) -> usize + 'static,
        ) -> Fake {
            Fake {
                steps: steps.into(),
                respond: Box::new(respond),
                asyncs: VecDeque::new(),
                responses: Vec::new(),
                calls: Vec::new(),
                waits: 0,
            }
        }
    }

    impl Transport for Fake {
        fn open(&mut self) -> Result<()> {
            Ok(())
        }
        fn call(
            &mut self,
            sel: u32,
            scalars_in: &[u64],
            struct_in: &[u8],
            cap: usize,
            scalar_cap: usize,
            is_async: bool,
        ) -> Result<CallReply> {
            self.calls.push(sel);
            assert_eq!(scalar_cap, if sel == selector::FETCH { 0 } else { 1 });
            match sel {
                selector::SUBMIT => {
                    assert!(is_async);
                    let step = self.steps.pop_front().unwrap_or(Step::Accept {
                        ticket: 100 + self.calls.len() as u64,
                        before: vec![],
                        complete: true,
                    });
                    match step {
                        Step::Refuse(kr) => Ok(CallReply { kern_return: kr, ..Default::default() }),
                        Step::Accept { ticket, before, complete } => {
                            let req =
                                decode_request(struct_in).expect("raidctl sends valid requests");
                            let mut out = [0u8; 4096];
                            let n = (self.respond)(&req, &mut out);
                            self.responses.push((ticket, out[..n].to_vec()));
                            self.asyncs.extend(before);
                            if complete {
                                self.asyncs.push_back(AsyncMessage {
                                    status: 0,
                                    args: vec![ticket, n as u64],
                                });
                            }
                            Ok(CallReply {
                                kern_return: 0,
                                scalars_out: vec![ticket],
                                struct_out: vec![],
                            })
                        }
                    }
                }
                selector::FETCH => {
                    assert!(!is_async);
                    assert_eq!(cap, 4096);
                    let ticket = scalars_in[0];
                    match self.responses.iter().position(|(t, _)| *t == ticket) {
                        Some(i) => {
                            let (_, bytes) = self.responses.remove(i);
                            Ok(CallReply { kern_return: 0, scalars_out: vec![], struct_out: bytes })
                        }
                        None => Ok(CallReply {
                            kern_return: IOReturn::kIOReturnNotFound.0,
                            ..Default::default()
                        }),
                    }
                }
                selector::WATCH_EVENTS => {
                    Ok(CallReply { kern_return: 0, scalars_out: vec![41], struct_out: vec![] })
                }
                _ => Ok(CallReply {
                    kern_return: IOReturn::kIOReturnBadArgument.0,
                    ..Default::default()
                }),
            }
        }
        fn wait_async(&mut self, _timeout: Duration) -> Result<Option<AsyncMessage>> {
            self.waits += 1;
            Ok(self.asyncs.pop_front())
        }
    }

    fn info_response(req: &dkraid_core::admin::Request<'_>, out: &mut [u8]) -> usize {
        let info = ControllerInfo {
            max_commands: U32::new(64),
            drives: U32::new(8),
            stage: U32::new(3),
            ..Default::default()
        };
        encode_response(out, req.body.command(), req.sequence, status::OK, info.as_bytes()).unwrap()
    }

    fn client(fake: Fake) -> Client<Fake> {
        Client::new(fake).with_timeouts(Duration::from_millis(50), Duration::from_millis(1))
    }

    #[test]
    fn round_trip() {
        let mut c = client(Fake::new(vec![], info_response));
        let info = c.controller_show().unwrap();
        assert_eq!(info.max_commands.get(), 64);
        assert_eq!(info.stage.get(), 3);
        assert_eq!(c.transport.calls, vec![selector::SUBMIT, selector::FETCH]);
    }

    #[test]
    fn completions_for_other_tickets_are_kept_for_later() {
        let other = AsyncMessage { status: 0, args: vec![5, 92] };
        let event = AsyncMessage { status: 0, args: vec![77] };
        let steps = vec![
            Step::Accept { ticket: 5, before: vec![], complete: false },
            Step::Accept { ticket: 6, before: vec![event.clone(), other.clone()], complete: true },
        ];
        let mut c = client(Fake::new(steps, info_response));
        // Ticket 5's completion never comes in time: a timeout, exit 7.
        let e = c.controller_show().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Protocol);
        assert!(e.message.contains("ticket 5"), "{e}");
        // Ticket 6 completes after an event and ticket 5's late completion: both are kept.
        c.controller_show().unwrap();
        assert_eq!(c.pending, VecDeque::from(vec![event, other.clone()]));
        assert_eq!(c.next_event_notification(Duration::ZERO).unwrap(), Some(77));
        assert_eq!(c.pending, VecDeque::from(vec![other]));
        assert_eq!(c.next_event_notification(Duration::ZERO).unwrap(), None);
    }

    #[test]
    fn unrelated_pending_completions_stay() {
        let mut c = client(Fake::new(vec![], info_response));
        c.pending.push_back(AsyncMessage { status: 0, args: vec![9, 4] });
        // A completion for ticket 101 sits in the fake's queue; the pending one stays.
        c.controller_show().unwrap();
        assert_eq!(c.pending.len(), 1);
    }

    #[test]
    fn no_resources_then_success() {
        let steps = vec![
            Step::Refuse(IOReturn::kIOReturnNoResources.0),
            Step::Refuse(IOReturn::kIOReturnNoResources.0),
        ];
        let mut c = client(Fake::new(steps, info_response));
        c.controller_show().unwrap();
        let submits = c.transport.calls.iter().filter(|&&s| s == selector::SUBMIT).count();
        assert_eq!(submits, 3);
    }

    #[test]
    fn no_resources_for_ever_is_busy() {
        let steps = vec![Step::Refuse(IOReturn::kIOReturnNoResources.0); 20];
        let mut c = client(Fake::new(steps, info_response));
        let e = c.controller_show().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Busy);
        assert_eq!(e.exit_code(), 6);
        assert!(e.message.contains("try again"), "{e}");
    }

    #[test]
    fn refused_submits_map_to_their_errors() {
        let cases = [
            (IOReturn::kIOReturnNotPermitted.0, ErrorKind::Permission),
            (IOReturn::kIOReturnNotPrivileged.0, ErrorKind::Permission),
            (IOReturn::kIOReturnNotReady.0, ErrorKind::Busy),
            (IOReturn::kIOReturnBadArgument.0, ErrorKind::Protocol),
        ];
        for (kr, kind) in cases {
            let mut c = client(Fake::new(vec![Step::Refuse(kr)], info_response));
            assert_eq!(c.controller_show().unwrap_err().kind, kind);
        }
    }

    #[test]
    fn error_statuses_become_errors() {
        let mut c = client(Fake::new(vec![], |req, out| {
            let e = AdminError::NotPermitted { command: req.body.command() };
            encode_error(out, req.body.command(), req.sequence, &e).unwrap()
        }));
        let e = c.volume_delete(1).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Permission);
        assert!(e.message.contains("org.dkraid.admin.configure"));
        assert_eq!(e.status, Some(status::NOT_PERMITTED));
    }

    #[test]
    fn a_response_to_another_request_is_bad() {
        let mut c = client(Fake::new(vec![], |req, out| {
            encode_response(out, req.body.command(), req.sequence + 1, status::OK, &[]).unwrap()
        }));
        let e = c.volume_delete(1).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Protocol);
        assert!(e.message.contains("BadResponse"), "{e}");
        let mut c = client(Fake::new(vec![], |_, out| {
            out[..4].copy_from_slice(b"nope");
            4
        }));
        assert_eq!(c.volume_delete(1).unwrap_err().kind, ErrorKind::Protocol);
    }

    #[test]
    fn lists_and_events_decode() {
        let mut c = client(Fake::new(vec![], |req, out| match req.body {
            dkraid_core::admin::Body::EventsSince(p) => {
                let all: Vec<EventEntry> = (1..=5u64)
                    .map(|s| EventEntry {
                        sequence: U64::new(s),
                        code: U16::new(1),
                        ..Default::default()
                    })
                    .collect();
                let from = p.sequence.get() as usize;
                // At most two per response, to exercise paging.
                let rest = &all[from.min(5)..];
                let mut buf = vec![0u8; 36 + 32];
                let n = encode_list(&mut buf, command::EVENTS_SINCE, req.sequence, rest).unwrap();
                out[..n].copy_from_slice(&buf[..n]);
                n
            }
            dkraid_core::admin::Body::IoStats(p) => {
                assert_eq!(p.volume.get(), ALL_VOLUMES);
                let s = IoStats { reads: U64::new(3), ..Default::default() };
                encode_response(out, req.body.command(), req.sequence, 0, s.as_bytes()).unwrap()
            }
            _ => {
                let d = [DriveEntry { id: U16::new(2), ..Default::default() }];
                encode_list(out, req.body.command(), req.sequence, &d).unwrap()
            }
        }));
        let events = c.events_since(0).unwrap();
        let seqs: Vec<u64> = events.iter().map(|e| e.sequence.get()).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        let (total, drives) = c.drive_list().unwrap();
        assert_eq!((total, drives[0].id.get()), (1, 2));
        assert_eq!(c.io_stats(ALL_VOLUMES).unwrap().reads.get(), 3);
        assert_eq!(c.watch_events().unwrap(), 41);
    }
}
