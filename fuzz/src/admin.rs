//! The `admin` target's harness: the input is the structure input an app sent to the user
//! client's ExternalMethod (the driver's side, [`decode_request`]) and, read the other way, a
//! response the app got back (the app's side, [`decode_response`] and [`decode_list`]).

use dkraid_core::admin::wire::{
    command, status, DriveEntry, EventEntry, ListHeader, VolumeEntry, MAX_REQUEST_BYTES,
    REQUEST_HEADER_BYTES, RESPONSE_HEADER_BYTES,
};
use dkraid_core::admin::{
    decode_list, decode_request, decode_response, encode_request, encode_response, is_destructive,
    AdminError,
};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// An error is one of the protocol's named statuses, and says so when printed.
fn check_named(e: &AdminError) {
    let name = status::name(e.status()).unwrap_or_else(|| panic!("{e:?} has no status name"));
    assert_ne!(e.status(), status::OK, "{e:?} reports OK");
    assert_eq!(e.name(), name);
    let shown = e.to_string();
    assert!(shown.starts_with(&format!("{name}: ")), "{shown:?}");
    assert!(shown.len() > name.len() + 2, "{shown:?} says nothing");
}

/// The request side: a request that decodes re-encodes to exactly its bytes (the protocol's
/// promise: no reserved field, unused drive slot or trailing byte survives decoding); one that
/// does not is refused with a request error by name.
pub fn check_request(data: &[u8]) {
    match decode_request(data) {
        Ok(req) => {
            let cmd = req.body.command();
            assert_eq!(u16::from_le_bytes([data[6], data[7]]), cmd, "the header's command");
            assert!(command::name(cmd).is_some(), "decoded an unnamed command {cmd:#x}");
            assert_eq!(req.body.is_destructive(), is_destructive(cmd));
            assert_eq!(Some(req.body.payload().len()), command::request_payload_bytes(cmd));
            let mut out = vec![0u8; MAX_REQUEST_BYTES];
            let n = encode_request(&mut out, req.sequence, &req.body)
                .unwrap_or_else(|e| panic!("a decoded request does not re-encode: {e}"));
            assert_eq!(&out[..n], data, "decode then encode is not the identity");
            // Too small an output is refused by name, not written past.
            let mut short = vec![0u8; n - 1];
            assert_eq!(
                encode_request(&mut short, req.sequence, &req.body),
                Err(AdminError::OutputTooSmall { needed: n, available: n - 1 })
            );
        }
        Err(e) => {
            check_named(&e);
            assert!(
                !matches!(
                    e,
                    AdminError::OutputTooSmall { .. }
                        | AdminError::NotPermitted { .. }
                        | AdminError::BadResponse { .. }
                ),
                "{e:?} is not a decoding error"
            );
            if let AdminError::ShortRequest { got, needed } = e {
                assert_eq!((got, needed), (data.len(), REQUEST_HEADER_BYTES));
                assert!(got < needed);
            }
            if let AdminError::RequestTooLarge { got, max } = e {
                assert_eq!((got, max), (data.len(), MAX_REQUEST_BYTES));
            }
        }
    }
}

fn check_list<T>(payload: &[u8])
where
    T: FromBytes + KnownLayout + Immutable + Unaligned,
{
    match decode_list::<T>(payload) {
        Ok((total, entries)) => {
            let header = core::mem::size_of::<ListHeader>();
            assert_eq!(header + entries.len() * core::mem::size_of::<T>(), payload.len());
            assert!(entries.len() as u64 <= u64::from(total), "count past the total");
        }
        Err(e) => {
            assert!(matches!(e, AdminError::BadResponse { .. }), "{e:?}");
            check_named(&e);
        }
    }
}

/// The app's side: a response header that decodes re-encodes to the same bytes, and its
/// payload's list (whatever entry type the app expected) is checked against its size.
pub fn check_response(data: &[u8]) {
    match decode_response(data) {
        Ok(r) => {
            assert_eq!(RESPONSE_HEADER_BYTES + r.payload.len(), data.len());
            let mut out = vec![0u8; data.len()];
            let n = encode_response(&mut out, r.command, r.sequence, r.status, r.payload)
                .unwrap_or_else(|e| panic!("a decoded response does not re-encode: {e}"));
            assert_eq!(&out[..n], data, "decode then encode of a response is not the identity");
            check_list::<VolumeEntry>(r.payload);
            check_list::<DriveEntry>(r.payload);
            check_list::<EventEntry>(r.payload);
        }
        Err(e) => {
            check_named(&e);
            assert!(
                matches!(
                    e,
                    AdminError::ShortRequest { .. }
                        | AdminError::BadMagic { .. }
                        | AdminError::UnsupportedVersion { .. }
                        | AdminError::PayloadSizeMismatch { .. }
                ),
                "{e:?}"
            );
        }
    }
}

pub fn run(data: &[u8]) {
    check_request(data);
    check_response(data);
}
