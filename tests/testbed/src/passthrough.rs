//! `dkraid-sim scsi`: an sg_raw-like pass-through — one CDB from the command line, sent by a
//! kernel client through the simulated kernel into the dext and the core, with the status,
//! sense and data-in reported.

use serde::Serialize;

use crate::tasks::{self, Direction, Request};

/// A CDB given as hex text: spaces, colons and a `0x` prefix allowed; 6 to 16 bytes.
pub fn parse_cdb(text: &str) -> Result<Vec<u8>, String> {
    let cleaned: String = text
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':' && *c != ',')
        .collect();
    if cleaned.is_empty() {
        return Err("the CDB is empty".into());
    }
    if let Some(bad) = cleaned.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("the CDB has a non-hex character {bad:?}"));
    }
    if cleaned.len() % 2 != 0 {
        return Err(format!("the CDB has an odd number of hex digits ({})", cleaned.len()));
    }
    let bytes: Vec<u8> = (0..cleaned.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&cleaned[i..i + 2], 16).unwrap_or(0))
        .collect();
    if !(6..=16).contains(&bytes.len()) {
        return Err(format!("a CDB is 6 to 16 bytes long, this one is {}", bytes.len()));
    }
    Ok(bytes)
}

/// The SAM name of a status byte.
pub fn status_name(status: u32) -> &'static str {
    match status {
        0x00 => "GOOD",
        0x02 => "CHECK CONDITION",
        0x04 => "CONDITION MET",
        0x08 => "BUSY",
        0x18 => "RESERVATION CONFLICT",
        0x28 => "TASK SET FULL",
        0x30 => "ACA ACTIVE",
        0x40 => "TASK ABORTED",
        _ => "UNKNOWN",
    }
}

pub fn sense_key_name(key: u8) -> &'static str {
    match key {
        0x0 => "NO SENSE",
        0x1 => "RECOVERED ERROR",
        0x2 => "NOT READY",
        0x3 => "MEDIUM ERROR",
        0x4 => "HARDWARE ERROR",
        0x5 => "ILLEGAL REQUEST",
        0x6 => "UNIT ATTENTION",
        0x7 => "DATA PROTECT",
        0xB => "ABORTED COMMAND",
        0xE => "MISCOMPARE",
        _ => "OTHER",
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The result, as `--json` prints it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ScsiResult {
    pub status: String,
    pub status_code: u32,
    pub bytes_transferred: u64,
    pub data: String,
    pub sense: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sense_key: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asc: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ascq: Option<u8>,
}

/// What to send.
#[derive(Clone, Debug)]
pub struct ScsiCommand {
    pub target: u64,
    pub lun: u64,
    pub cdb: Vec<u8>,
    /// Data-in length (`--alloc`); ignored with `data_out`.
    pub alloc: u64,
    pub data_out: Option<Vec<u8>>,
}

/// Send it (on a simulated kernel thread).
pub fn run(cmd: &ScsiCommand) -> ScsiResult {
    let (direction, length, out): (Direction, u64, &[u8]) = match &cmd.data_out {
        Some(d) => (Direction::Out, d.len() as u64, d),
        None if cmd.alloc > 0 => (Direction::In, cmd.alloc, &[]),
        None => (Direction::None, 0, &[]),
    };
    let o = tasks::run(&Request {
        target: cmd.target,
        lun: cmd.lun,
        cdb: &cmd.cdb,
        direction,
        length,
        data_out: out,
    });
    let (status, status_code) = match o.service_response {
        Some(2) => (status_name(o.status).to_string(), o.status),
        Some(1) if o.status == 0x04 => ("DEVICE NOT PRESENT".to_string(), o.status),
        Some(r) => (format!("SERVICE RESPONSE {r}"), o.status),
        None => ("NOT ACCEPTED".to_string(), o.status),
    };
    let code = o.sense_code();
    ScsiResult {
        status,
        status_code,
        bytes_transferred: o.bytes,
        data: hex(&o.data),
        sense: hex(&o.sense),
        sense_key: code.map(|c| c.0),
        asc: code.map(|c| c.1),
        ascq: code.map(|c| c.2),
    }
}

/// The human-readable form.
pub fn print(r: &ScsiResult) {
    println!("status             {} ({:#04x})", r.status, r.status_code);
    println!("bytes transferred  {}", r.bytes_transferred);
    if let (Some(k), Some(asc), Some(ascq)) = (r.sense_key, r.asc, r.ascq) {
        println!("sense              {}", r.sense);
        println!(
            "                   {} ({k:#x}), ASC/ASCQ {asc:02X}/{ascq:02X}",
            sense_key_name(k)
        );
    }
    if !r.data.is_empty() {
        println!("data-in");
        let bytes: Vec<u8> = (0..r.data.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&r.data[i..i + 2], 16).unwrap_or(0))
            .collect();
        for (row, chunk) in bytes.chunks(16).enumerate() {
            let hexes: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            let text: String = chunk
                .iter()
                .map(|&b| if (0x20..0x7F).contains(&b) { b as char } else { '.' })
                .collect();
            println!("  {:04x}  {:<48} {text}", row * 16, hexes.join(" "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdb_text() {
        assert_eq!(parse_cdb("12 00 00 00 24 00").unwrap(), [0x12, 0, 0, 0, 0x24, 0]);
        assert_eq!(parse_cdb("0x120000002400").unwrap().len(), 6);
        assert_eq!(parse_cdb("12:00:00:00:24:00").unwrap()[4], 0x24);
        assert!(parse_cdb("").unwrap_err().contains("empty"));
        assert!(parse_cdb("12 00 0").unwrap_err().contains("odd"));
        assert!(parse_cdb("zz0000000000").unwrap_err().contains("non-hex"));
        assert!(parse_cdb("1200").unwrap_err().contains("6 to 16"));
        assert!(parse_cdb(&"00".repeat(17)).unwrap_err().contains("6 to 16"));
    }

    #[test]
    fn names() {
        assert_eq!(status_name(2), "CHECK CONDITION");
        assert_eq!(sense_key_name(3), "MEDIUM ERROR");
        assert_eq!(hex(&[0xAB, 1]), "ab01");
    }
}
