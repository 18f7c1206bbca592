//! PCI matching as IOPCIFamily does it (`IOPCIBridge::pciMatchNub` / `matchKeys`).
//!
//! A match string is a list of 32-bit values `0xDDDDVVVV` (device << 16 | vendor), separated
//! by spaces, each optionally followed by `&0xMASK`; a value matches a configuration register
//! when `value & mask == register & mask`, and the list matches when any value does. Which
//! register depends on the key:
//!
//! | key | registers | default mask |
//! |---|---|---|
//! | `IOPCIMatch` | 0x00 (device/vendor), then 0x2c (subsystem/subsystem vendor) | `0xffffffff` |
//! | `IOPCIPrimaryMatch` | 0x00 | `0xffffffff` |
//! | `IOPCISecondaryMatch` | 0x2c | `0xffffffff` |
//! | `IOPCIClassMatch` | 0x08 (class code << 8 \| revision) | `0xffffff00` |
//!
//! Every key present must match. The kernel parses with `strtoul(…, 16)`, so `0x` is optional
//! and it stops silently at anything else; [`parse`] is strict and names the problem, for lint.

use std::fmt;

use plist::Dictionary;

use crate::pci::SimPciDevice;

/// One `value&mask`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchEntry {
    pub value: u32,
    pub mask: u32,
}

impl MatchEntry {
    pub fn matches(&self, register: u32) -> bool {
        self.value & self.mask == register & self.mask
    }

    /// Whether some register value satisfies both entries.
    pub fn overlaps(&self, other: &MatchEntry) -> bool {
        (self.value ^ other.value) & self.mask & other.mask == 0
    }
}

impl fmt::Display for MatchEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08x}&0x{:08x}", self.value, self.mask)
    }
}

/// The PCI matching keys of a personality or a `transport.pci` entitlement entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchKey {
    pub name: &'static str,
    /// Configuration registers tried in order; the first match wins.
    pub registers: &'static [u8],
    pub default_mask: u32,
}

pub const IOPCI_MATCH: MatchKey =
    MatchKey { name: "IOPCIMatch", registers: &[0x00, 0x2C], default_mask: 0xFFFF_FFFF };
pub const IOPCI_PRIMARY_MATCH: MatchKey =
    MatchKey { name: "IOPCIPrimaryMatch", registers: &[0x00], default_mask: 0xFFFF_FFFF };
pub const IOPCI_SECONDARY_MATCH: MatchKey =
    MatchKey { name: "IOPCISecondaryMatch", registers: &[0x2C], default_mask: 0xFFFF_FFFF };
pub const IOPCI_CLASS_MATCH: MatchKey =
    MatchKey { name: "IOPCIClassMatch", registers: &[0x08], default_mask: 0xFFFF_FF00 };

/// In the kernel's order.
pub const MATCH_KEYS: [MatchKey; 4] =
    [IOPCI_MATCH, IOPCI_PRIMARY_MATCH, IOPCI_SECONDARY_MATCH, IOPCI_CLASS_MATCH];

/// A syntax problem in a match string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset in the string.
    pub at: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.at + 1, self.message)
    }
}

/// Parse a match string strictly. An empty string is an error (it matches nothing).
pub fn parse(text: &str, default_mask: u32) -> Result<Vec<MatchEntry>, SyntaxError> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < bytes.len() && bytes[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i == bytes.len() {
            break;
        }
        let value = hex(text, &mut i)?;
        let after_value = i;
        skip_ws(&mut i);
        let mask = if i < bytes.len() && bytes[i] == b'&' {
            // The kernel skips only spaces between a value and its `&`: after any other
            // whitespace it takes the value with the default mask and stops at the `&`.
            if let Some(k) = bytes[after_value..i].iter().position(|&b| b != b' ') {
                return Err(SyntaxError {
                    at: after_value + k,
                    message: format!(
                        "{:?} before '&': the kernel skips only spaces between a value and its \
                         mask, so it reads {:?} with the default mask and stops at the '&'",
                        bytes[after_value + k] as char,
                        &text[..after_value].trim_start()
                    ),
                });
            }
            i += 1;
            skip_ws(&mut i);
            hex(text, &mut i)?
        } else {
            default_mask
        };
        out.push(MatchEntry { value, mask });
    }
    if out.is_empty() {
        return Err(SyntaxError {
            at: 0,
            message: "no value: an empty list matches nothing".into(),
        });
    }
    Ok(out)
}

fn hex(text: &str, i: &mut usize) -> Result<u32, SyntaxError> {
    let bytes = text.as_bytes();
    let start = *i;
    if bytes[*i..].starts_with(b"0x") || bytes[*i..].starts_with(b"0X") {
        *i += 2;
    }
    let digits_start = *i;
    while *i < bytes.len() && bytes[*i].is_ascii_hexdigit() {
        *i += 1;
    }
    let digits = &text[digits_start..*i];
    if digits.is_empty() {
        let found =
            text[start..].chars().next().map(|c| format!("{c:?}")).unwrap_or("the end".into());
        return Err(SyntaxError {
            at: start,
            message: format!("expected a hexadecimal value like 0x10f01af4, found {found}"),
        });
    }
    if *i < bytes.len() && !bytes[*i].is_ascii_whitespace() && bytes[*i] != b'&' {
        let c = text[*i..].chars().next().unwrap_or(' ');
        return Err(SyntaxError {
            at: *i,
            message: format!(
                "{c:?} after {:?}: values are separated by spaces (the kernel stops reading \
                 the list here)",
                &text[start..*i]
            ),
        });
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > 8 {
        return Err(SyntaxError {
            at: start,
            message: format!(
                "{} is wider than 32 bits (0xDDDDVVVV: device << 16 | vendor)",
                &text[start..*i]
            ),
        });
    }
    Ok(u32::from_str_radix(significant, 16).unwrap_or(0))
}

/// Evaluate a match string as `matchKeys` does: values in order until one matches; a value
/// that does not parse ends the list (no match from there on).
pub fn kernel_list_matches(text: &str, default_mask: u32, register: u32) -> bool {
    let mut rest = text;
    loop {
        let trimmed = rest.trim_start();
        let (value, after) = strtoul16(trimmed);
        let Some(value) = value else { return false };
        let after = after.trim_start_matches(' ');
        let (mask, after) = match after.strip_prefix('&') {
            Some(m) => {
                let (mask, after) = strtoul16(m.trim_start());
                (mask.unwrap_or(0), after)
            }
            None => (default_mask, after),
        };
        if (MatchEntry { value, mask }).matches(register) {
            return true;
        }
        rest = after;
    }
}

/// `strtoul(s, &end, 16)` truncated to 32 bits: the value (None when no digits) and the rest.
fn strtoul16(s: &str) -> (Option<u32>, &str) {
    let body = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    let n = body.bytes().take_while(u8::is_ascii_hexdigit).count();
    if n == 0 {
        return (None, s);
    }
    let v = body[..n].bytes().fold(0u64, |v, b| {
        v.saturating_mul(16).saturating_add(u64::from((b as char).to_digit(16).unwrap_or(0)))
    });
    // strtoul saturates at ULONG_MAX; IOPCIFamily keeps the low 32 bits.
    (Some(v as u32), &body[n..])
}

/// How a dictionary's PCI keys fared against a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceMatch {
    /// No PCI matching key at all.
    pub no_keys: bool,
    /// Every key present matched.
    pub matched: bool,
    /// One line per key: `IOPCIPrimaryMatch "0x10f01af4" matched register 0x00 = 0x10f01af4`.
    pub explanation: Vec<String>,
}

/// Evaluate the PCI matching keys of `dict` against `device`, as `pciMatchNub` does: every key
/// present must match; a key that is not a string fails.
pub fn match_device(dict: &Dictionary, device: &SimPciDevice) -> DeviceMatch {
    let mut matched = true;
    let mut any = false;
    let mut explanation = Vec::new();
    for key in MATCH_KEYS {
        let Some(value) = dict.get(key.name) else { continue };
        any = true;
        let Some(text) = value.as_string() else {
            matched = false;
            explanation.push(format!("{} is not a string", key.name));
            continue;
        };
        let hit = key
            .registers
            .iter()
            .find(|&&r| kernel_list_matches(text, key.default_mask, device.register(r)));
        match hit {
            Some(r) => explanation.push(format!(
                "{} {text:?} matched register {r:#04x} = {:#010x}",
                key.name,
                device.register(*r)
            )),
            None => {
                matched = false;
                let regs: Vec<String> = key
                    .registers
                    .iter()
                    .map(|r| format!("{r:#04x} = {:#010x}", device.register(*r)))
                    .collect();
                explanation.push(format!(
                    "{} {text:?} does not match register {}",
                    key.name,
                    regs.join(" or ")
                ));
            }
        }
    }
    DeviceMatch { no_keys: !any, matched: any && matched, explanation }
}

/// The entries of every PCI key in `dict` that parse (for overlap checks).
pub fn entries(dict: &Dictionary) -> Vec<(MatchKey, Vec<MatchEntry>)> {
    MATCH_KEYS
        .iter()
        .filter_map(|k| {
            let text = dict.get(k.name)?.as_string()?;
            parse(text, k.default_mask).ok().map(|e| (*k, e))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::DKRAID_CONTROLLER;
    use plist::Value;

    fn e(value: u32, mask: u32) -> MatchEntry {
        MatchEntry { value, mask }
    }

    #[test]
    fn parses_lists_and_masks() {
        assert_eq!(parse("0x10f01af4", !0), Ok(vec![e(0x10F0_1AF4, !0)]));
        assert_eq!(
            parse("0x10f01af4 0x00001af4&0x0000FFFF", !0),
            Ok(vec![e(0x10F0_1AF4, !0), e(0x0000_1AF4, 0xFFFF)])
        );
        assert_eq!(parse("  10f01af4 &  ffff  ", !0), Ok(vec![e(0x10F0_1AF4, 0xFFFF)]));
        assert_eq!(parse("0x01040000", 0xFFFF_FF00), Ok(vec![e(0x0104_0000, 0xFFFF_FF00)]));
        assert_eq!(parse("0x0", !0), Ok(vec![e(0, !0)]));
        assert_eq!(parse("0x00000000010f01af4", !0), Ok(vec![e(0x10F0_1AF4, !0)]));
    }

    #[test]
    fn rejects_what_the_kernel_would_stop_at() {
        let err = |t: &str| parse(t, !0).unwrap_err().to_string();
        assert_eq!(err(""), "at character 1: no value: an empty list matches nothing");
        assert!(err("0x10f0,0x1af4").contains("',' after \"0x10f0\""), "{}", err("0x10f0,0x1af4"));
        assert!(err("0x1af4:0x10f0").contains("':'"));
        assert!(err("vendor").contains("expected a hexadecimal value"));
        assert!(err("0x10f01af4&").contains("found the end"));
        assert!(err("0x110f01af4").contains("wider than 32 bits"));
        assert!(err("1af4 0xZZ").contains("at character 6"));
    }

    /// Found by the `plist` fuzz target (docs/FUZZING.md): lint read "0x1\t&0x2" as 0x1&0x2,
    /// the kernel as 0x1 with the default mask (it skips only spaces before the `&`).
    #[test]
    fn only_spaces_may_come_between_a_value_and_its_mask() {
        for text in ["0x1\t&0x2", "0x1\n&0x2", "0x1 \r &0x2"] {
            let e = parse(text, !0).unwrap_err();
            assert!(e.message.contains("before '&'"), "{text:?}: {e}");
            assert!(!kernel_list_matches(text, !0, 0x5), "the kernel does not read the mask");
        }
        assert_eq!(parse("0x1   &0x2", !0), Ok(vec![e(1, 2)]));
        assert!(kernel_list_matches("0x1   &0x2", !0, 0x5));
        assert_eq!(parse("0x1 & \t0x2", !0), Ok(vec![e(1, 2)]), "whitespace after '&' is fine");
        assert!(kernel_list_matches("0x1 & \t0x2", !0, 0x5));
    }

    #[test]
    fn the_kernel_evaluation_tries_each_value_with_its_mask() {
        let reg = 0x10F0_1AF4;
        assert!(kernel_list_matches("0x10f01af4", !0, reg));
        assert!(kernel_list_matches("0x12341000 0x10f01af4", !0, reg), "a later value");
        assert!(kernel_list_matches("0x00001af4&0x0000ffff", !0, reg), "vendor only");
        assert!(kernel_list_matches("0xffff1af4&0x0000ffff", !0, reg), "masked-out bits");
        assert!(!kernel_list_matches("0x10f11af4", !0, reg));
        assert!(!kernel_list_matches("0x00731000 junk 0x10f01af4", !0, reg), "stops at junk");
        assert!(!kernel_list_matches("", !0, reg));
        assert!(kernel_list_matches("10F01AF4", !0, reg), "0x is optional");
        assert!(kernel_list_matches("0x10f01af4 & 0xffffffff", !0, reg));
    }

    fn dict(pairs: &[(&str, &str)]) -> Dictionary {
        let mut d = Dictionary::new();
        for (k, v) in pairs {
            d.insert(k.to_string(), Value::String(v.to_string()));
        }
        d
    }

    #[test]
    fn primary_secondary_and_any_match_against_the_device() {
        let mut sub = DKRAID_CONTROLLER;
        sub.subsystem_vendor_id = 0x1028;
        sub.subsystem_id = 0x1F4D;
        // IOPCIMatch: primary or subsystem IDs.
        assert!(match_device(&dict(&[("IOPCIMatch", "0x1f4d1028")]), &sub).matched);
        assert!(match_device(&dict(&[("IOPCIMatch", "0x10f01af4")]), &sub).matched);
        // IOPCIPrimaryMatch: only the primary IDs.
        assert!(!match_device(&dict(&[("IOPCIPrimaryMatch", "0x1f4d1028")]), &sub).matched);
        assert!(match_device(&dict(&[("IOPCIPrimaryMatch", "0x10f01af4")]), &sub).matched);
        // IOPCISecondaryMatch: only the subsystem IDs.
        assert!(match_device(&dict(&[("IOPCISecondaryMatch", "0x1f4d1028")]), &sub).matched);
        assert!(!match_device(&dict(&[("IOPCISecondaryMatch", "0x10f01af4")]), &sub).matched);
        // IOPCIClassMatch: class code, revision masked off by default.
        assert!(match_device(&dict(&[("IOPCIClassMatch", "0x01040000")]), &sub).matched);
        assert!(!match_device(&dict(&[("IOPCIClassMatch", "0x01060000")]), &sub).matched);
        assert!(
            match_device(&dict(&[("IOPCIClassMatch", "0x01000000&0xff000000")]), &sub).matched,
            "any mass-storage controller"
        );
    }

    #[test]
    fn every_key_present_must_match() {
        let d = dict(&[("IOPCIPrimaryMatch", "0x10f01af4"), ("IOPCIClassMatch", "0x01060000")]);
        let m = match_device(&d, &DKRAID_CONTROLLER);
        assert!(!m.matched);
        assert_eq!(
            m.explanation,
            [
                "IOPCIPrimaryMatch \"0x10f01af4\" matched register 0x00 = 0x10f01af4",
                "IOPCIClassMatch \"0x01060000\" does not match register 0x08 = 0x01040001",
            ]
        );
        let none = match_device(&Dictionary::new(), &DKRAID_CONTROLLER);
        assert!(none.no_keys && !none.matched);
        let mut d = Dictionary::new();
        d.insert("IOPCIMatch".into(), Value::Integer(0x10F0_1AF4u64.into()));
        let m = match_device(&d, &DKRAID_CONTROLLER);
        assert!(!m.matched);
        assert_eq!(m.explanation, ["IOPCIMatch is not a string"]);
    }

    #[test]
    fn overlap_of_value_mask_pairs() {
        assert!(e(0x10F0_1AF4, !0).overlaps(&e(0x10F0_1AF4, !0)));
        assert!(!e(0x10F0_1AF4, !0).overlaps(&e(0x10F1_1AF4, !0)));
        assert!(e(0x10F0_1AF4, !0).overlaps(&e(0x0000_1AF4, 0xFFFF)));
        assert!(!e(0x0000_1000, 0xFFFF).overlaps(&e(0x10F0_1AF4, !0)));
        assert!(e(0, 0).overlaps(&e(0x1234_5678, !0)), "mask 0 matches everything");
    }
}
