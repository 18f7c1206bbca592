//! The test-bed's socket protocol: how `raidctl --socket PATH` reaches `dkraid-sim serve`, the
//! same user-client calls (`IOServiceOpen`, `IOConnectCall…Method`, async completions,
//! `IOServiceClose`) that the macOS transport makes through IOKit, plus a test-bed-only
//! `SIM_CONTROL` message. Standard library only, so the test-bed's server can use it as is.
//!
//! Every message is a frame: a `u32` little-endian length of what follows (1..=65536), a `u8`
//! type, then the type's fields, all little-endian:
//!
//! | type | message | fields |
//! |---|---|---|
//! | `0x01` | [`Message::Open`] | u32 user_client_type, u16 n, n × (u16 len + UTF-8) entitlements |
//! | `0x81` | [`Message::OpenReply`] | i32 kern_return |
//! | `0x02` | [`Message::Call`] | u32 selector, u8 flags (bit 0 async), u16 n, n × u64, u32 len + bytes, u32 struct_out_capacity, u16 scalar_out_capacity |
//! | `0x82` | [`Message::CallReply`] | i32 kern_return, u16 n, n × u64, u32 len + bytes |
//! | `0x03` | [`Message::Close`] | none |
//! | `0x83` | [`Message::CloseReply`] | i32 kern_return |
//! | `0x10` | [`Message::SimControl`] | u32 len + UTF-8 command |
//! | `0x90` | [`Message::SimControlReply`] | i32 status, u32 len + UTF-8 text |
//! | `0xA0` | [`Message::Async`] | i32 status, u16 n, n × u64 args (unsolicited, between replies) |
//!
//! Replies come in request order; `Async` messages may arrive between any of them. Decoding
//! never panics and never trusts a length: a truncated frame, a frame with bytes left over, a
//! length out of range, an unknown type and text that is not UTF-8 are each a named
//! [`WireError`].

use std::fmt;
use std::io::{self, Read, Write};

/// The largest frame body (type + fields) a length prefix may announce.
pub const MAX_MESSAGE_BYTES: usize = 65536;
/// The length prefix's size.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// [`Message::Call::flags`] bit 0: the call is asynchronous (it has an async completion).
pub const CALL_FLAG_ASYNC: u8 = 0x01;

/// Message type bytes.
pub mod msg_type {
    pub const OPEN: u8 = 0x01;
    pub const CALL: u8 = 0x02;
    pub const CLOSE: u8 = 0x03;
    pub const SIM_CONTROL: u8 = 0x10;
    pub const OPEN_REPLY: u8 = 0x81;
    pub const CALL_REPLY: u8 = 0x82;
    pub const CLOSE_REPLY: u8 = 0x83;
    pub const SIM_CONTROL_REPLY: u8 = 0x90;
    pub const ASYNC: u8 = 0xA0;
}

/// One message of the socket protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// client → server: `IOServiceOpen` with the entitlements the client process holds.
    Open { user_client_type: u32, entitlements: Vec<String> },
    /// server → client: the `IOServiceOpen` result.
    OpenReply { kern_return: i32 },
    /// client → server: `IOConnectCall…Method`.
    Call {
        selector: u32,
        /// Bit 0 ([`CALL_FLAG_ASYNC`]): asynchronous. Other bits are carried as they came.
        flags: u8,
        scalars: Vec<u64>,
        struct_in: Vec<u8>,
        struct_out_capacity: u32,
        /// How many scalar outputs the caller takes (`IOConnectCallMethod`'s `*outputCnt`):
        /// the user client's dispatch table checks it. 0..=16.
        scalar_out_capacity: u16,
    },
    /// server → client: the call's result.
    CallReply { kern_return: i32, scalars: Vec<u64>, struct_out: Vec<u8> },
    /// client → server: `IOServiceClose`.
    Close,
    /// server → client: the close's result.
    CloseReply { kern_return: i32 },
    /// client → server: a test-bed control command (`fail-drive 3`, `status`, `shutdown`, …).
    SimControl { command: String },
    /// server → client: 0 ok, and the command's text output.
    SimControlReply { status: i32, text: String },
    /// server → client, unsolicited: an async completion (status, args).
    Async { status: i32, args: Vec<u64> },
}

impl Message {
    /// The type byte.
    pub const fn type_byte(&self) -> u8 {
        match self {
            Message::Open { .. } => msg_type::OPEN,
            Message::OpenReply { .. } => msg_type::OPEN_REPLY,
            Message::Call { .. } => msg_type::CALL,
            Message::CallReply { .. } => msg_type::CALL_REPLY,
            Message::Close => msg_type::CLOSE,
            Message::CloseReply { .. } => msg_type::CLOSE_REPLY,
            Message::SimControl { .. } => msg_type::SIM_CONTROL,
            Message::SimControlReply { .. } => msg_type::SIM_CONTROL_REPLY,
            Message::Async { .. } => msg_type::ASYNC,
        }
    }

    /// The message's name, for errors and logs.
    pub const fn name(&self) -> &'static str {
        match self {
            Message::Open { .. } => "OPEN",
            Message::OpenReply { .. } => "OPEN reply",
            Message::Call { .. } => "CALL",
            Message::CallReply { .. } => "CALL reply",
            Message::Close => "CLOSE",
            Message::CloseReply { .. } => "CLOSE reply",
            Message::SimControl { .. } => "SIM_CONTROL",
            Message::SimControlReply { .. } => "SIM_CONTROL reply",
            Message::Async { .. } => "ASYNC",
        }
    }

    /// A [`Message::Call`] with the async flag set as `is_async` says.
    pub fn call(
        selector: u32,
        is_async: bool,
        scalars: Vec<u64>,
        struct_in: Vec<u8>,
        struct_out_capacity: u32,
        scalar_out_capacity: u16,
    ) -> Message {
        let flags = if is_async { CALL_FLAG_ASYNC } else { 0 };
        Message::Call {
            selector,
            flags,
            scalars,
            struct_in,
            struct_out_capacity,
            scalar_out_capacity,
        }
    }
}

/// Everything that can be wrong with a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The length prefix is 0 or more than [`MAX_MESSAGE_BYTES`].
    LengthOutOfRange { length: u64 },
    /// The frame ends before the field `what` (`needed` more bytes, `available` left).
    Truncated { what: &'static str, needed: usize, available: usize },
    /// Bytes left over after the message's last field (or after the frame's announced length).
    TrailingBytes { message: &'static str, extra: usize },
    /// A type byte that is not in the table.
    UnknownType { got: u8 },
    /// A text field that is not UTF-8.
    InvalidUtf8 { what: &'static str },
    /// A message too big for its count or length fields, or for a frame (encoding side).
    TooLarge { what: &'static str, got: usize, max: usize },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::LengthOutOfRange { length } => write!(
                f,
                "LengthOutOfRange: a frame announces {length} bytes, frames carry 1..={MAX_MESSAGE_BYTES}"
            ),
            WireError::Truncated { what, needed, available } => write!(
                f,
                "Truncated: {what} needs {needed} bytes, {available} left in the frame"
            ),
            WireError::TrailingBytes { message, extra } => {
                write!(f, "TrailingBytes: {extra} bytes after the end of a {message} message")
            }
            WireError::UnknownType { got } => write!(f, "UnknownType: message type {got:#04x}"),
            WireError::InvalidUtf8 { what } => write!(f, "InvalidUtf8: {what} is not UTF-8"),
            WireError::TooLarge { what, got, max } => {
                write!(f, "TooLarge: {what} is {got}, at most {max} fit")
            }
        }
    }
}

impl std::error::Error for WireError {}

// ---- encoding ----

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// A u16 count and that many u64s (at most `u16::MAX`; [`check`] refuses more).
    fn u64s(&mut self, vs: &[u64]) {
        let vs = &vs[..vs.len().min(usize::from(u16::MAX))];
        self.u16(vs.len() as u16);
        for &v in vs {
            self.u64(v);
        }
    }
    /// A u32 length and the bytes (at most `u32::MAX`; [`check`] refuses more).
    fn bytes32(&mut self, b: &[u8]) {
        let b = &b[..b.len().min(u32::MAX as usize)];
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    /// A u16 length and the bytes (at most `u16::MAX`; [`check`] refuses more).
    fn bytes16(&mut self, b: &[u8]) {
        let b = &b[..b.len().min(usize::from(u16::MAX))];
        self.u16(b.len() as u16);
        self.0.extend_from_slice(b);
    }
}

/// The frame's body: the type byte and the fields, without the length prefix.
pub fn encode_body(msg: &Message) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64));
    w.u8(msg.type_byte());
    match msg {
        Message::Open { user_client_type, entitlements } => {
            w.u32(*user_client_type);
            let list = &entitlements[..entitlements.len().min(usize::from(u16::MAX))];
            w.u16(list.len() as u16);
            for e in list {
                w.bytes16(e.as_bytes());
            }
        }
        Message::OpenReply { kern_return } | Message::CloseReply { kern_return } => {
            w.i32(*kern_return)
        }
        Message::Call {
            selector,
            flags,
            scalars,
            struct_in,
            struct_out_capacity,
            scalar_out_capacity,
        } => {
            w.u32(*selector);
            w.u8(*flags);
            w.u64s(scalars);
            w.bytes32(struct_in);
            w.u32(*struct_out_capacity);
            w.u16(*scalar_out_capacity);
        }
        Message::CallReply { kern_return, scalars, struct_out } => {
            w.i32(*kern_return);
            w.u64s(scalars);
            w.bytes32(struct_out);
        }
        Message::Close => {}
        Message::SimControl { command } => w.bytes32(command.as_bytes()),
        Message::SimControlReply { status, text } => {
            w.i32(*status);
            w.bytes32(text.as_bytes());
        }
        Message::Async { status, args } => {
            w.i32(*status);
            w.u64s(args);
        }
    }
    w.0
}

/// The whole frame: the length prefix, the type byte and the fields. A message within the
/// limits ([`check`]) decodes back to itself; one beyond them is cut to fit its count fields
/// and [`write_message`] refuses it.
pub fn encode(msg: &Message) -> Vec<u8> {
    let body = encode_body(msg);
    let mut frame = Vec::with_capacity(LENGTH_PREFIX_BYTES + body.len());
    frame.extend_from_slice(&(body.len().min(u32::MAX as usize) as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Whether `msg` fits the protocol: its lists fit their u16 counts, its strings their length
/// fields, and the frame [`MAX_MESSAGE_BYTES`].
pub fn check(msg: &Message) -> Result<(), WireError> {
    let max16 = usize::from(u16::MAX);
    let too_large = |what, got, max| Err(WireError::TooLarge { what, got, max });
    match msg {
        Message::Open { entitlements, .. } => {
            if entitlements.len() > max16 {
                return too_large("the entitlement count", entitlements.len(), max16);
            }
            if let Some(e) = entitlements.iter().find(|e| e.len() > max16) {
                return too_large("an entitlement's length", e.len(), max16);
            }
        }
        Message::Call { scalars, .. } | Message::CallReply { scalars, .. }
            if scalars.len() > max16 =>
        {
            return too_large("the scalar count", scalars.len(), max16);
        }
        Message::Async { args, .. } if args.len() > max16 => {
            return too_large("the argument count", args.len(), max16);
        }
        _ => {}
    }
    let body = encode_body(msg).len();
    if body > MAX_MESSAGE_BYTES {
        return too_large("the frame", body, MAX_MESSAGE_BYTES);
    }
    Ok(())
}

// ---- decoding ----

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, what: &'static str, n: usize) -> Result<&'a [u8], WireError> {
        let available = self.bytes.len() - self.at;
        if n > available {
            return Err(WireError::Truncated { what, needed: n, available });
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(what, N)?);
        Ok(out)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        self.array(what).map(u16::from_le_bytes)
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        self.array(what).map(u32::from_le_bytes)
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, WireError> {
        self.array(what).map(i32::from_le_bytes)
    }
    fn u64s(&mut self, count: &'static str, what: &'static str) -> Result<Vec<u64>, WireError> {
        let n = usize::from(self.u16(count)?);
        // Never allocate from a count: the bytes must be there first.
        let raw = self.take(what, n * 8)?;
        Ok(raw
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                u64::from_le_bytes(b)
            })
            .collect())
    }
    fn bytes32(&mut self, len: &'static str, what: &'static str) -> Result<&'a [u8], WireError> {
        let n = self.u32(len)?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        self.take(what, n)
    }
    fn string32(&mut self, len: &'static str, what: &'static str) -> Result<String, WireError> {
        let raw = self.bytes32(len, what)?;
        utf8(raw, what)
    }
    fn end(&self, message: &'static str) -> Result<(), WireError> {
        let extra = self.bytes.len() - self.at;
        if extra == 0 {
            Ok(())
        } else {
            Err(WireError::TrailingBytes { message, extra })
        }
    }
}

fn utf8(raw: &[u8], what: &'static str) -> Result<String, WireError> {
    std::str::from_utf8(raw).map(str::to_owned).map_err(|_| WireError::InvalidUtf8 { what })
}

/// Decodes a frame's body (the type byte and the fields, without the length prefix), which
/// must be exactly one message.
pub fn decode_body(body: &[u8]) -> Result<Message, WireError> {
    if body.is_empty() || body.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::LengthOutOfRange { length: body.len() as u64 });
    }
    let mut r = Reader { bytes: body, at: 0 };
    let ty = r.u8("the message type")?;
    let msg = match ty {
        msg_type::OPEN => {
            let user_client_type = r.u32("OPEN user_client_type")?;
            let n = r.u16("OPEN entitlement count")?;
            let mut entitlements = Vec::new();
            for _ in 0..n {
                let len = usize::from(r.u16("OPEN entitlement length")?);
                let raw = r.take("OPEN entitlement", len)?;
                entitlements.push(utf8(raw, "OPEN entitlement")?);
            }
            Message::Open { user_client_type, entitlements }
        }
        msg_type::OPEN_REPLY => {
            Message::OpenReply { kern_return: r.i32("OPEN reply kern_return")? }
        }
        msg_type::CALL => {
            let selector = r.u32("CALL selector")?;
            let flags = r.u8("CALL flags")?;
            let scalars = r.u64s("CALL scalar count", "CALL scalars")?;
            let struct_in = r.bytes32("CALL struct_in length", "CALL struct_in")?.to_vec();
            let struct_out_capacity = r.u32("CALL struct_out_capacity")?;
            let scalar_out_capacity = r.u16("CALL scalar_out_capacity")?;
            Message::Call {
                selector,
                flags,
                scalars,
                struct_in,
                struct_out_capacity,
                scalar_out_capacity,
            }
        }
        msg_type::CALL_REPLY => {
            let kern_return = r.i32("CALL reply kern_return")?;
            let scalars = r.u64s("CALL reply scalar count", "CALL reply scalars")?;
            let struct_out =
                r.bytes32("CALL reply struct_out length", "CALL reply struct_out")?.to_vec();
            Message::CallReply { kern_return, scalars, struct_out }
        }
        msg_type::CLOSE => Message::Close,
        msg_type::CLOSE_REPLY => {
            Message::CloseReply { kern_return: r.i32("CLOSE reply kern_return")? }
        }
        msg_type::SIM_CONTROL => Message::SimControl {
            command: r.string32("SIM_CONTROL length", "SIM_CONTROL command")?,
        },
        msg_type::SIM_CONTROL_REPLY => {
            let status = r.i32("SIM_CONTROL reply status")?;
            let text = r.string32("SIM_CONTROL reply length", "SIM_CONTROL reply text")?;
            Message::SimControlReply { status, text }
        }
        msg_type::ASYNC => {
            let status = r.i32("ASYNC status")?;
            let args = r.u64s("ASYNC argument count", "ASYNC args")?;
            Message::Async { status, args }
        }
        got => return Err(WireError::UnknownType { got }),
    };
    r.end(msg.name())?;
    Ok(msg)
}

/// Decodes one whole frame (the length prefix, then exactly the bytes it announces).
pub fn decode(frame: &[u8]) -> Result<Message, WireError> {
    let mut r = Reader { bytes: frame, at: 0 };
    let length = r.u32("the length prefix")?;
    let n = check_length(length)?;
    let available = frame.len() - LENGTH_PREFIX_BYTES;
    if available < n {
        return Err(WireError::Truncated { what: "the frame", needed: n, available });
    }
    if available > n {
        return Err(WireError::TrailingBytes { message: "frame", extra: available - n });
    }
    decode_body(&frame[LENGTH_PREFIX_BYTES..])
}

fn check_length(length: u32) -> Result<usize, WireError> {
    match usize::try_from(length) {
        Ok(n) if (1..=MAX_MESSAGE_BYTES).contains(&n) => Ok(n),
        _ => Err(WireError::LengthOutOfRange { length: u64::from(length) }),
    }
}

/// Why [`read_message`] returned no message.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the stream cleanly, between messages.
    Closed,
    /// The stream failed (or ended inside a frame: `UnexpectedEof`).
    Io(io::Error),
    /// The frame arrived whole but does not decode.
    Wire(WireError),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Closed => f.write_str("the peer closed the connection"),
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Wire(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl From<WireError> for ReadError {
    fn from(e: WireError) -> Self {
        ReadError::Wire(e)
    }
}

/// Reads one frame from `r` and decodes it. The body is only allocated once the length prefix
/// has been checked against [`MAX_MESSAGE_BYTES`].
pub fn read_message<R: Read + ?Sized>(r: &mut R) -> Result<Message, ReadError> {
    let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
    let mut got = 0;
    while got < prefix.len() {
        match r.read(&mut prefix[got..]) {
            Ok(0) if got == 0 => return Err(ReadError::Closed),
            Ok(0) => {
                return Err(ReadError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stream ended inside a length prefix",
                )))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    let n = check_length(u32::from_le_bytes(prefix))?;
    let mut body = vec![0u8; n];
    r.read_exact(&mut body)?;
    Ok(decode_body(&body)?)
}

/// Writes one frame to `w` (and flushes). A message beyond the limits ([`check`]) is refused
/// with `InvalidInput` and nothing is written.
pub fn write_message<W: Write + ?Sized>(w: &mut W, msg: &Message) -> io::Result<()> {
    check(msg).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    w.write_all(&encode(msg))?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_variant() -> Vec<Message> {
        vec![
            Message::Open {
                user_client_type: 0,
                entitlements: vec!["org.dkraid.admin.configure".into(), "é".into(), String::new()],
            },
            Message::Open { user_client_type: 7, entitlements: vec![] },
            Message::OpenReply { kern_return: 0 },
            Message::OpenReply { kern_return: 0xe00002e2_u32 as i32 },
            Message::call(0, true, vec![], vec![0x44, 0x4B, 0x41, 0x44], 0, 1),
            Message::call(1, false, vec![u64::MAX, 3], vec![], 4096, 0),
            Message::Call {
                selector: 9,
                flags: 0xFE,
                scalars: vec![1],
                struct_in: vec![1; 300],
                struct_out_capacity: 1,
                scalar_out_capacity: 16,
            },
            Message::CallReply { kern_return: 0, scalars: vec![42], struct_out: vec![] },
            Message::CallReply { kern_return: -1, scalars: vec![], struct_out: vec![9; 4096] },
            Message::Close,
            Message::CloseReply { kern_return: 0 },
            Message::SimControl { command: "fail-drive 3".into() },
            Message::SimControl { command: String::new() },
            Message::SimControlReply { status: 0, text: "ok\nstage full".into() },
            Message::SimControlReply { status: 1, text: String::new() },
            Message::Async { status: 0, args: vec![5, 1234] },
            Message::Async { status: 0, args: vec![] },
        ]
    }

    #[test]
    fn every_variant_round_trips() {
        for msg in every_variant() {
            check(&msg).unwrap();
            let frame = encode(&msg);
            assert_eq!(decode(&frame).unwrap(), msg, "{msg:?}");
            assert_eq!(decode_body(&frame[4..]).unwrap(), msg);
            let mut cursor = io::Cursor::new(Vec::new());
            write_message(&mut cursor, &msg).unwrap();
            assert_eq!(cursor.get_ref(), &frame);
            cursor.set_position(0);
            assert_eq!(read_message(&mut cursor).unwrap(), msg);
            assert!(matches!(read_message(&mut cursor), Err(ReadError::Closed)));
        }
    }

    #[test]
    fn layout_is_the_documented_one() {
        let frame = encode(&Message::call(2, true, vec![7], vec![0xAA, 0xBB], 16, 1));
        let expected: Vec<u8> = [
            &[28, 0, 0, 0][..],
            &[0x02],
            &[2, 0, 0, 0],
            &[1],
            &[1, 0],
            &[7, 0, 0, 0, 0, 0, 0, 0],
            &[2, 0, 0, 0, 0xAA, 0xBB],
            &[16, 0, 0, 0],
            &[1, 0],
        ]
        .concat();
        assert_eq!(frame, expected);
        let frame = encode(&Message::Open { user_client_type: 0, entitlements: vec!["ab".into()] });
        assert_eq!(frame, [11, 0, 0, 0, 0x01, 0, 0, 0, 0, 1, 0, 2, 0, b'a', b'b'][..]);
        let frame = encode(&Message::Async { status: -2, args: vec![1] });
        assert_eq!(
            frame,
            [15, 0, 0, 0, 0xA0, 0xFE, 0xFF, 0xFF, 0xFF, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn every_truncation_is_named() {
        for msg in every_variant() {
            let frame = encode(&msg);
            for cut in 0..frame.len() {
                let short = &frame[..cut];
                let err = decode(short).unwrap_err();
                assert!(matches!(err, WireError::Truncated { .. }), "{msg:?} cut at {cut}: {err}");
                // The body alone, cut short, with a consistent (shorter) length: still named.
                if cut > 4 {
                    let body = &frame[4..cut];
                    match decode_body(body) {
                        Err(WireError::Truncated { .. }) => {}
                        // Cutting a trailing empty list or string can leave a valid prefix of
                        // a different shape only if the cut removes whole fields: never here,
                        // every field is present in every frame.
                        other => panic!("{msg:?} body cut at {cut}: {other:?}"),
                    }
                }
                // And a stream that ends there.
                let mut cursor = io::Cursor::new(short.to_vec());
                match read_message(&mut cursor) {
                    Err(ReadError::Closed) => assert_eq!(cut, 0),
                    Err(ReadError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
                    other => panic!("{msg:?} stream cut at {cut}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn trailing_bytes_are_named() {
        for msg in every_variant() {
            let mut frame = encode(&msg);
            frame.push(0);
            assert_eq!(
                decode(&frame),
                Err(WireError::TrailingBytes { message: "frame", extra: 1 })
            );
            // The prefix agrees with the longer body: the message itself has a byte too many.
            let n = (frame.len() - 4) as u32;
            frame[..4].copy_from_slice(&n.to_le_bytes());
            assert_eq!(
                decode(&frame),
                Err(WireError::TrailingBytes { message: msg.name(), extra: 1 })
            );
        }
    }

    #[test]
    fn lengths_out_of_range_are_named() {
        let oversized = [0x01, 0x00, 0x01, 0x00, 0x03]; // 65537
        assert_eq!(decode(&oversized), Err(WireError::LengthOutOfRange { length: 65537 }));
        let mut cursor = io::Cursor::new(oversized.to_vec());
        assert!(matches!(
            read_message(&mut cursor),
            Err(ReadError::Wire(WireError::LengthOutOfRange { length: 65537 }))
        ));
        let huge = u32::MAX.to_le_bytes();
        assert_eq!(decode(&huge), Err(WireError::LengthOutOfRange { length: u64::from(u32::MAX) }));
        assert_eq!(decode(&[0, 0, 0, 0]), Err(WireError::LengthOutOfRange { length: 0 }));
        assert_eq!(decode_body(&[]), Err(WireError::LengthOutOfRange { length: 0 }));
        // The largest frame is accepted.
        let max = Message::CallReply {
            kern_return: 0,
            scalars: vec![],
            struct_out: vec![0; MAX_MESSAGE_BYTES - 11],
        };
        check(&max).unwrap();
        assert_eq!(decode(&encode(&max)).unwrap(), max);
        let over = Message::CallReply {
            kern_return: 0,
            scalars: vec![],
            struct_out: vec![0; MAX_MESSAGE_BYTES - 10],
        };
        assert!(matches!(check(&over), Err(WireError::TooLarge { what: "the frame", .. })));
        let err = write_message(&mut Vec::new(), &over).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(decode(&encode(&over)).is_err());
    }

    #[test]
    fn inner_lengths_are_never_trusted() {
        // A CALL whose struct_in claims 4 GiB in a 20-byte frame.
        let mut body = vec![msg_type::CALL, 0, 0, 0, 0, 0, 0, 0];
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_body(&body), Err(WireError::Truncated { .. })));
        // An ASYNC claiming 65535 args with none present.
        let body = [msg_type::ASYNC, 0, 0, 0, 0, 0xFF, 0xFF];
        assert_eq!(
            decode_body(&body),
            Err(WireError::Truncated { what: "ASYNC args", needed: 65535 * 8, available: 0 })
        );
    }

    #[test]
    fn unknown_types_and_bad_text_are_named() {
        for ty in 0..=255u8 {
            let known = [0x01, 0x02, 0x03, 0x10, 0x81, 0x82, 0x83, 0x90, 0xA0];
            if !known.contains(&ty) {
                assert_eq!(decode(&[1, 0, 0, 0, ty]), Err(WireError::UnknownType { got: ty }));
            }
        }
        let body = [msg_type::SIM_CONTROL, 2, 0, 0, 0, 0xC3, 0x28];
        assert_eq!(decode_body(&body), Err(WireError::InvalidUtf8 { what: "SIM_CONTROL command" }));
        let body = [msg_type::OPEN, 0, 0, 0, 0, 1, 0, 1, 0, 0xFF];
        assert_eq!(decode_body(&body), Err(WireError::InvalidUtf8 { what: "OPEN entitlement" }));
    }

    #[test]
    fn errors_display_their_names() {
        let e = WireError::LengthOutOfRange { length: 70000 };
        assert!(e.to_string().starts_with("LengthOutOfRange"));
        let e = WireError::UnknownType { got: 0x42 };
        assert_eq!(e.to_string(), "UnknownType: message type 0x42");
    }
}
