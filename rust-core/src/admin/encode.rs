//! Encoding: responses (the driver's side) and requests (the app's side) into caller buffers,
//! never past their end.

use zerocopy::little_endian::{U16, U32};
use zerocopy::{Immutable, IntoBytes};

use super::decode::{AdminError, Body};
use super::wire::{
    status, ListHeader, RequestHeader, ResponseHeader, MAGIC, MAX_REQUEST_BYTES,
    REQUEST_HEADER_BYTES, RESPONSE_HEADER_BYTES, VERSION,
};

fn too_small(needed: usize, available: usize) -> AdminError {
    AdminError::OutputTooSmall { needed, available }
}

fn response_header(
    command: u16,
    sequence: u32,
    status: u32,
    payload_bytes: usize,
) -> ResponseHeader {
    ResponseHeader {
        magic: U32::new(MAGIC),
        version: U16::new(VERSION),
        command: U16::new(command),
        status: U32::new(status),
        // Payloads are bounded by the caller's buffer; a length past u32 cannot be a response.
        payload_bytes: U32::new(u32::try_from(payload_bytes).unwrap_or(u32::MAX)),
        sequence: U32::new(sequence),
    }
}

/// Writes a response (header + `payload`) at the start of `out`; returns the bytes written.
pub fn encode_response(
    out: &mut [u8],
    command: u16,
    sequence: u32,
    status: u32,
    payload: &[u8],
) -> Result<usize, AdminError> {
    let needed = RESPONSE_HEADER_BYTES + payload.len();
    if out.len() < needed || u32::try_from(payload.len()).is_err() {
        return Err(too_small(needed, out.len()));
    }
    let header = response_header(command, sequence, status, payload.len());
    out[..RESPONSE_HEADER_BYTES].copy_from_slice(header.as_bytes());
    out[RESPONSE_HEADER_BYTES..needed].copy_from_slice(payload);
    Ok(needed)
}

/// Writes the error response for a request that failed: no payload, the error's status.
/// `command` and `sequence` are the request's where it had them, else 0.
pub fn encode_error(
    out: &mut [u8],
    command: u16,
    sequence: u32,
    error: &AdminError,
) -> Result<usize, AdminError> {
    encode_response(out, command, sequence, error.status(), &[])
}

/// Writes an OK list response: a [`ListHeader`] whose `total` is `entries.len()`, then as
/// many entries as fit in `out` (`count` says how many; fewer than `total` means the app's
/// buffer was too small). Fails only if not even the headers fit.
pub fn encode_list<T: IntoBytes + Immutable>(
    out: &mut [u8],
    command: u16,
    sequence: u32,
    entries: &[T],
) -> Result<usize, AdminError> {
    let entry = core::mem::size_of::<T>();
    let room = list_room(out.len(), entry)?;
    let count = entries.len().min(room);
    let body = entries[..count].as_bytes();
    out[LIST_ENTRIES..LIST_ENTRIES + body.len()].copy_from_slice(body);
    Ok(list_headers(out, command, sequence, entries.len(), count, entry))
}

/// As [`encode_list`], for entries made one at a time (translated from another format, say)
/// rather than held in a slice: `total` is how many there are in all, `entries` yields them
/// in order and is read only as far as the entries fit (and at most `total`).
pub fn encode_list_iter<T: IntoBytes + Immutable>(
    out: &mut [u8],
    command: u16,
    sequence: u32,
    total: usize,
    entries: impl IntoIterator<Item = T>,
) -> Result<usize, AdminError> {
    let entry = core::mem::size_of::<T>();
    let room = list_room(out.len(), entry)?;
    let mut count = 0;
    for e in entries.into_iter().take(room.min(total)) {
        let at = LIST_ENTRIES + count * entry;
        out[at..at + entry].copy_from_slice(e.as_bytes());
        count += 1;
    }
    Ok(list_headers(out, command, sequence, total, count, entry))
}

/// Where a list response's entries start: after the response header and the list header.
const LIST_ENTRIES: usize = RESPONSE_HEADER_BYTES + core::mem::size_of::<ListHeader>();

/// How many entries of `entry` bytes fit in a list response in `available` bytes.
fn list_room(available: usize, entry: usize) -> Result<usize, AdminError> {
    if available < LIST_ENTRIES {
        return Err(too_small(LIST_ENTRIES, available));
    }
    Ok((available - LIST_ENTRIES).checked_div(entry).unwrap_or(0).min(u32::MAX as usize))
}

/// Writes the two headers of a list response whose `count` entries are in place; returns the
/// response's size.
fn list_headers(
    out: &mut [u8],
    command: u16,
    sequence: u32,
    total: usize,
    count: usize,
    entry: usize,
) -> usize {
    let list = ListHeader {
        total: U32::new(u32::try_from(total).unwrap_or(u32::MAX)),
        count: U32::new(count as u32),
        entry_bytes: U32::new(entry as u32),
        reserved: U32::new(0),
    };
    let payload_bytes = core::mem::size_of::<ListHeader>() + count * entry;
    let header = response_header(command, sequence, status::OK, payload_bytes);
    out[..RESPONSE_HEADER_BYTES].copy_from_slice(header.as_bytes());
    out[RESPONSE_HEADER_BYTES..LIST_ENTRIES].copy_from_slice(list.as_bytes());
    RESPONSE_HEADER_BYTES + payload_bytes
}

/// Writes a request (the app's side); returns the bytes written. A decoded request re-encodes
/// to exactly the bytes it was decoded from.
pub fn encode_request(out: &mut [u8], sequence: u32, body: &Body<'_>) -> Result<usize, AdminError> {
    let payload = body.payload();
    let needed = REQUEST_HEADER_BYTES + payload.len();
    if needed > MAX_REQUEST_BYTES {
        return Err(AdminError::RequestTooLarge { got: needed, max: MAX_REQUEST_BYTES });
    }
    if out.len() < needed {
        return Err(too_small(needed, out.len()));
    }
    let header = RequestHeader {
        magic: U32::new(MAGIC),
        version: U16::new(VERSION),
        command: U16::new(body.command()),
        payload_bytes: U32::new(payload.len() as u32),
        sequence: U32::new(sequence),
    };
    out[..REQUEST_HEADER_BYTES].copy_from_slice(header.as_bytes());
    out[REQUEST_HEADER_BYTES..needed].copy_from_slice(payload);
    Ok(needed)
}
