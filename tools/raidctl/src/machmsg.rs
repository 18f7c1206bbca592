//! IOKit's async completion message, taken apart (used by the macOS transport; plain byte
//! parsing, so it is built and tested everywhere).
//!
//! A completion arrives on the notification port as a Mach message: `mach_msg_header_t`
//! (24 bytes), a body and port descriptors if the message is complex, then
//! `OSNotificationHeader64` (u32 size, u32 type = `kIOAsyncCompletionNotificationType` with a
//! size adjustment in bits 30-31, the 8 × u64 async reference), then
//! `IOAsyncCompletionContent`: the `IOReturn` result and the u64 args (packed).

use crate::error::{Error, Result};
use crate::transport::AsyncMessage;

/// `kOSAsyncRef64Count`.
pub const ASYNC_REF64_COUNT: usize = 8;
/// `kIOAsyncCompletionNotificationType`.
pub const ASYNC_COMPLETION_NOTIFICATION: u32 = 150;
const NOTIFICATION_TYPE_MASK: u32 = 0xfff;
const NOTIFICATION_SIZE_ADJ_SHIFT: u32 = 30;
const NOTIFICATION_SIZE_MASK: u32 = 3;
/// `MACH_MSGH_BITS_COMPLEX`.
pub const MACH_MSGH_BITS_COMPLEX: u32 = 0x8000_0000;
/// `sizeof(mach_msg_header_t)`.
pub const MACH_MSG_HEADER_BYTES: usize = 24;
/// `sizeof(mach_msg_port_descriptor_t)`.
pub const PORT_DESCRIPTOR_BYTES: usize = 12;
/// `sizeof(OSNotificationHeader64)`: size, type, then the 8 × u64 reference.
pub const NOTIFICATION_HEADER_BYTES: usize = 8 + 8 * ASYNC_REF64_COUNT;

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Takes an async completion apart: the Mach header, port descriptors if the message is
/// complex, `OSNotificationHeader64`, then `IOAsyncCompletionContent` (result, args).
pub fn parse_completion(msg: &[u8]) -> Result<AsyncMessage> {
    let bad = |what: &str| Error::protocol(format!("a malformed async completion: {what}"));
    let bits = u32_at(msg, 0).ok_or_else(|| bad("no header"))?;
    let msgh_size = u32_at(msg, 4).ok_or_else(|| bad("no size"))? as usize;
    if msgh_size > msg.len() {
        return Err(bad("larger than the buffer"));
    }
    let mut at = MACH_MSG_HEADER_BYTES;
    if bits & MACH_MSGH_BITS_COMPLEX != 0 {
        let descriptors = u32_at(msg, at).ok_or_else(|| bad("no body"))? as usize;
        at += 4 + descriptors.saturating_mul(PORT_DESCRIPTOR_BYTES);
    }
    let kind = u32_at(msg, at + 4).ok_or_else(|| bad("no notification header"))?;
    if kind & NOTIFICATION_TYPE_MASK != ASYNC_COMPLETION_NOTIFICATION {
        return Err(bad(&format!("notification type {}", kind & NOTIFICATION_TYPE_MASK)));
    }
    let content = at + NOTIFICATION_HEADER_BYTES;
    let size_adj = ((kind >> NOTIFICATION_SIZE_ADJ_SHIFT) & NOTIFICATION_SIZE_MASK) as usize;
    let status = u32_at(msg, content).ok_or_else(|| bad("no result"))? as i32;
    let args_at = content + 4;
    let arg_bytes = msgh_size.saturating_sub(args_at).saturating_sub(size_adj);
    let args = (0..arg_bytes / 8)
        .map(|i| u64_at(msg, args_at + 8 * i).ok_or_else(|| bad("args past the end")))
        .collect::<Result<Vec<u64>>>()?;
    Ok(AsyncMessage { status, args })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A completion message as the kernel builds it (native byte order).
    fn message(complex: Option<u32>, result: i32, args: &[u64], size_adj: u32) -> Vec<u8> {
        let mut m = vec![0u8; MACH_MSG_HEADER_BYTES];
        if let Some(n) = complex {
            m[..4].copy_from_slice(&MACH_MSGH_BITS_COMPLEX.to_ne_bytes());
            m.extend_from_slice(&n.to_ne_bytes());
            m.extend(std::iter::repeat_n(0xEE, n as usize * PORT_DESCRIPTOR_BYTES));
        }
        let kind = ASYNC_COMPLETION_NOTIFICATION | (size_adj << NOTIFICATION_SIZE_ADJ_SHIFT);
        m.extend_from_slice(&((4 + 8 * args.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend(std::iter::repeat_n(0xAB, 8 * ASYNC_REF64_COUNT));
        m.extend_from_slice(&result.to_ne_bytes());
        for a in args {
            m.extend_from_slice(&a.to_ne_bytes());
        }
        m.extend(std::iter::repeat_n(0, size_adj as usize));
        let size = m.len() as u32;
        m[4..8].copy_from_slice(&size.to_ne_bytes());
        // The trailer the kernel appends past msgh_size.
        m.extend_from_slice(&[0x77; 52]);
        m
    }

    #[test]
    fn completions_parse() {
        let m = message(None, 0, &[7, 36], 0);
        assert_eq!(parse_completion(&m).unwrap(), AsyncMessage { status: 0, args: vec![7, 36] });
        let m = message(Some(1), -5, &[41], 0);
        assert_eq!(parse_completion(&m).unwrap(), AsyncMessage { status: -5, args: vec![41] });
        let m = message(None, 0, &[1, 2, 3], 3);
        assert_eq!(parse_completion(&m).unwrap().args, vec![1, 2, 3]);
        let m = message(None, 0, &[], 0);
        assert_eq!(parse_completion(&m).unwrap().args, Vec::<u64>::new());
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert!(parse_completion(&[0; 10]).is_err());
        let mut m = message(None, 0, &[1], 0);
        m[MACH_MSG_HEADER_BYTES + 4] = 100; // a matching notification, not a completion
        assert!(parse_completion(&m).is_err());
        let mut m = message(None, 0, &[1], 0);
        m[4..8].copy_from_slice(&10_000u32.to_ne_bytes());
        assert!(parse_completion(&m).is_err());
        // A complex message claiming more descriptors than there are bytes.
        let mut m = message(Some(1), 0, &[1], 0);
        m[MACH_MSG_HEADER_BYTES..MACH_MSG_HEADER_BYTES + 4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(parse_completion(&m).is_err());
        for cut in 0..40 {
            assert!(parse_completion(&message(None, 0, &[1], 0)[..cut]).is_err());
        }
    }
}
