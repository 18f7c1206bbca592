//! The command line's array description: `--drives 6x2GiB --volume raid5:0-4[:strip=64k]
//! --spare 5`, parsed into an [`ArraySpec`] and built into a configured [`Raid`]. Every error
//! quotes the token it is about.

use std::fmt;

use super::drive::DriveId;
use super::engine::{Backing, Raid, RaidConfig, VolumeRequest, DEFAULT_STRIP_BYTES};
use super::layout::Level;
use crate::workload::parse_size;

/// At most this many drives on the controller (a 240-slot expander is not the point here).
pub const MAX_DRIVES: usize = 128;

/// A bad token and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    pub token: String,
    pub reason: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.token, self.reason)
    }
}

impl std::error::Error for SpecError {}

fn err<T>(token: &str, reason: impl Into<String>) -> Result<T, SpecError> {
    Err(SpecError { token: token.to_string(), reason: reason.into() })
}

/// The drives, volumes and spares of an array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArraySpec {
    /// Capacity of each drive in bytes.
    pub drives: Vec<u64>,
    pub volumes: Vec<VolumeRequest>,
    pub spares: Vec<DriveId>,
}

/// The array that shows the product off: six 2 GiB drives, a RAID 5 over drives 0–4 with a
/// 64 KiB strip (8 GiB), drive 5 a hot spare.
impl Default for ArraySpec {
    fn default() -> Self {
        ArraySpec {
            drives: vec![2 << 30; 6],
            volumes: vec![VolumeRequest::new(Level::Raid5, vec![0, 1, 2, 3, 4])],
            spares: vec![5],
        }
    }
}

/// `6x2GiB`, `2GiB` (one drive), or groups: `4x2GiB,2x4GiB`.
pub fn parse_drives(text: &str) -> Result<Vec<u64>, SpecError> {
    let mut drives = Vec::new();
    for group in text.split(',') {
        let group = group.trim();
        let (count, size) = match group.split_once(['x', 'X']) {
            Some((n, size)) => {
                let n: usize = n
                    .trim()
                    .parse()
                    .or_else(|_| err(group, format!("{n:?} is not a drive count (e.g. 6x2GiB)")))?;
                (n, size)
            }
            None => (1, group),
        };
        if count == 0 {
            return err(group, "a group needs at least one drive");
        }
        let bytes = parse_size(size).or_else(|e| err(group, e))?;
        if bytes == 0 || bytes % 512 != 0 {
            return err(group, format!("{bytes} bytes is not a positive multiple of 512"));
        }
        drives.extend(std::iter::repeat_n(bytes, count));
        if drives.len() > MAX_DRIVES {
            return err(text, format!("more than {MAX_DRIVES} drives"));
        }
    }
    Ok(drives)
}

/// `0-4`, `0,2,4`, `0-2,5`.
pub fn parse_drive_list(text: &str) -> Result<Vec<DriveId>, SpecError> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let number = |s: &str| -> Result<DriveId, SpecError> {
            s.trim().parse().or_else(|_| err(part, format!("{s:?} is not a drive number")))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (number(a)?, number(b)?);
                if a > b {
                    return err(part, format!("the range runs backwards ({a} > {b})"));
                }
                out.extend(a..=b);
            }
            None => out.push(number(part)?),
        }
    }
    Ok(out)
}

fn parse_level(text: &str) -> Option<Level> {
    match text.to_ascii_lowercase().as_str() {
        "raid0" | "r0" => Some(Level::Raid0),
        "raid1" | "r1" => Some(Level::Raid1),
        "raid5" | "r5" => Some(Level::Raid5),
        "raid10" | "r10" => Some(Level::Raid10),
        _ => None,
    }
}

/// `raid5:0-4`, `raid10:0-3:strip=128k`, `raid1:0,1:block=4096:cache=wt`.
pub fn parse_volume(text: &str) -> Result<VolumeRequest, SpecError> {
    let mut parts = text.split(':');
    let level = parts.next().unwrap_or("");
    let Some(level) = parse_level(level) else {
        return err(
            text,
            format!("unknown RAID level {level:?} (use raid0, raid1, raid5 or raid10)"),
        );
    };
    let Some(drives) = parts.next() else {
        return err(text, "no drives (e.g. raid5:0-4)");
    };
    let mut req = VolumeRequest::new(level, parse_drive_list(drives)?);
    for option in parts {
        let Some((key, value)) = option.split_once('=') else {
            return err(option, "an option is key=value (strip=64k, block=4096, cache=wb|wt)");
        };
        match key {
            "strip" => req.strip_bytes = parse_size(value).or_else(|e| err(option, e))?,
            "block" => {
                req.block_size = match value {
                    "512" => 512,
                    "4096" | "4k" => 4096,
                    _ => return err(option, "the block size is 512 or 4096"),
                }
            }
            "cache" => {
                req.write_back = match value.to_ascii_lowercase().as_str() {
                    "wb" => true,
                    "wt" => false,
                    _ => return err(option, "the cache is wb (write-back) or wt (write-through)"),
                }
            }
            _ => return err(option, format!("unknown option {key:?} (strip, block, cache)")),
        }
    }
    Ok(req)
}

fn drive_list_text(drives: &[DriveId]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < drives.len() {
        let mut j = i;
        while j + 1 < drives.len() && drives[j + 1] == drives[j] + 1 {
            j += 1;
        }
        parts.push(if j > i + 1 {
            format!("{}-{}", drives[i], drives[j])
        } else if j == i + 1 {
            format!("{},{}", drives[i], drives[j])
        } else {
            drives[i].to_string()
        });
        i = j + 1;
    }
    parts.join(",")
}

fn size_text(bytes: u64) -> String {
    for (unit, shift) in [("G", 30), ("M", 20), ("k", 10)] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// A volume request the way `--volume` writes it (defaults left out).
pub fn volume_text(req: &VolumeRequest) -> String {
    let mut s = format!("raid{}:{}", req.level.number(), drive_list_text(&req.drives));
    if req.strip_bytes != DEFAULT_STRIP_BYTES {
        s += &format!(":strip={}", size_text(req.strip_bytes));
    }
    if req.block_size != 512 {
        s += &format!(":block={}", req.block_size);
    }
    if !req.write_back {
        s += ":cache=wt";
    }
    s
}

impl ArraySpec {
    /// From the command line. With nothing given, the default array; `--volume` or `--spare`
    /// without `--drives` use the default's drives; `--drives` alone makes drives and no
    /// volumes.
    pub fn parse(
        drives: Option<&str>,
        volumes: &[&str],
        spares: &[&str],
    ) -> Result<ArraySpec, SpecError> {
        if drives.is_none() && volumes.is_empty() && spares.is_empty() {
            return Ok(ArraySpec::default());
        }
        let drives = match drives {
            Some(text) => parse_drives(text)?,
            None => ArraySpec::default().drives,
        };
        let exists = |token: &str, list: &[DriveId]| -> Result<(), SpecError> {
            match list.iter().find(|&&d| d as usize >= drives.len()) {
                Some(d) => err(
                    token,
                    format!("drive {d} does not exist (drives are 0-{})", drives.len() - 1),
                ),
                None => Ok(()),
            }
        };
        let mut spec =
            ArraySpec { drives: drives.clone(), volumes: Vec::new(), spares: Vec::new() };
        for &text in volumes {
            let req = parse_volume(text)?;
            exists(text, &req.drives)?;
            spec.volumes.push(req);
        }
        for &text in spares {
            let list = parse_drive_list(text)?;
            exists(text, &list)?;
            spec.spares.extend(list);
        }
        Ok(spec)
    }

    /// The controller with these drives (in memory or in files), volumes and hot spares. An
    /// error from the engine is reported against the token that caused it.
    pub fn build(&self, backing: &Backing) -> Result<Raid, SpecError> {
        let mut config = RaidConfig::new(self.drives.clone());
        config.backing = backing.clone();
        let token = match backing {
            Backing::Memory => "--drives".to_string(),
            Backing::Files(dir) => dir.display().to_string(),
        };
        let mut raid = Raid::new(&config).or_else(|e| err(&token, e.to_string()))?;
        for req in &self.volumes {
            raid.create_volume(req).or_else(|e| err(&volume_text(req), e.to_string()))?;
        }
        for &d in &self.spares {
            raid.set_hot_spare(d).or_else(|e| err(&d.to_string(), e.to_string()))?;
        }
        Ok(raid)
    }
}

/// The default array in memory.
impl Default for Raid {
    fn default() -> Self {
        match ArraySpec::default().build(&Backing::Memory) {
            Ok(raid) => raid,
            Err(e) => unreachable!("the default array is valid: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drives() {
        assert_eq!(parse_drives("6x2GiB").unwrap(), vec![2 << 30; 6]);
        assert_eq!(parse_drives("1GiB").unwrap(), vec![1 << 30]);
        assert_eq!(parse_drives("2x1M, 1x4M").unwrap(), vec![1 << 20, 1 << 20, 4 << 20]);
        let e = parse_drives("6x2GiB,zx1M").unwrap_err();
        assert_eq!(e.token, "zx1M");
        assert!(e.reason.contains("not a drive count"), "{e}");
        assert_eq!(parse_drives("6x2Q").unwrap_err().token, "6x2Q");
        assert_eq!(parse_drives("0x1M").unwrap_err().token, "0x1M");
        assert!(parse_drives("1x1000").unwrap_err().reason.contains("multiple of 512"));
        assert!(parse_drives("200x1M").unwrap_err().reason.contains("more than 128"));
    }

    #[test]
    fn drive_lists() {
        assert_eq!(parse_drive_list("0-4").unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(parse_drive_list("0,2,4").unwrap(), vec![0, 2, 4]);
        assert_eq!(parse_drive_list("0-1,5").unwrap(), vec![0, 1, 5]);
        assert_eq!(parse_drive_list("4-2").unwrap_err().token, "4-2");
        let e = parse_drive_list("0,x").unwrap_err();
        assert_eq!(e.to_string(), "\"x\": \"x\" is not a drive number");
    }

    #[test]
    fn volumes() {
        let v = parse_volume("raid5:0-4").unwrap();
        assert_eq!(v, VolumeRequest::new(Level::Raid5, vec![0, 1, 2, 3, 4]));
        let v = parse_volume("raid10:0-3:strip=128k:block=4096:cache=wt").unwrap();
        assert_eq!(
            (v.level, v.strip_bytes, v.block_size, v.write_back),
            (Level::Raid10, 128 << 10, 4096, false)
        );
        assert_eq!(volume_text(&v), "raid10:0-3:strip=128k:block=4096:cache=wt");
        assert_eq!(volume_text(&parse_volume("raid1:0,1").unwrap()), "raid1:0,1");
        assert_eq!(volume_text(&parse_volume("raid0:0,2,4").unwrap()), "raid0:0,2,4");
        let e = parse_volume("raid7:0-4").unwrap_err();
        assert_eq!(e.token, "raid7:0-4");
        assert!(e.reason.contains("unknown RAID level \"raid7\""));
        assert_eq!(parse_volume("raid5").unwrap_err().reason, "no drives (e.g. raid5:0-4)");
        assert_eq!(parse_volume("raid5:0-4:stripe=4k").unwrap_err().token, "stripe=4k");
        assert_eq!(parse_volume("raid5:0-4:strip=big").unwrap_err().token, "strip=big");
        assert_eq!(parse_volume("raid5:0-4:block=1024").unwrap_err().token, "block=1024");
    }

    #[test]
    fn whole_array() {
        assert_eq!(ArraySpec::parse(None, &[], &[]).unwrap(), ArraySpec::default());
        let spec = ArraySpec::parse(Some("6x2GiB"), &["raid5:0-4"], &["5"]).unwrap();
        assert_eq!(spec, ArraySpec::default());
        let e = ArraySpec::parse(Some("4x1GiB"), &["raid5:0-4"], &[]).unwrap_err();
        assert_eq!(e.to_string(), "\"raid5:0-4\": drive 4 does not exist (drives are 0-3)");
        let e = ArraySpec::parse(Some("4x1GiB"), &[], &["7"]).unwrap_err();
        assert_eq!(e.token, "7");
        // The engine's refusals name the volume they are about.
        let spec = ArraySpec::parse(Some("4x1M"), &["raid5:0,1"], &[]).unwrap();
        let e = spec.build(&Backing::Memory).unwrap_err();
        assert_eq!(e.to_string(), "\"raid5:0,1\": RAID 5 needs at least 3 drives, got 2");
        let spec = ArraySpec::parse(Some("4x1M"), &["raid1:0,1", "raid0:1,2"], &[]).unwrap();
        let e = spec.build(&Backing::Memory).unwrap_err();
        assert_eq!(e.to_string(), "\"raid0:1,2\": drive 1 is already in volume 0");
        let spec = ArraySpec::parse(Some("4x1M"), &["raid5:0-2:strip=3000"], &[]).unwrap();
        let e = spec.build(&Backing::Memory).unwrap_err();
        assert_eq!(e.reason, "strip size 3000 is not a power of two");
        let spec = ArraySpec::parse(Some("4x1M"), &["raid5:0-2"], &["2"]).unwrap();
        let e = spec.build(&Backing::Memory).unwrap_err();
        assert_eq!(e.to_string(), "\"2\": drive 2 is already in volume 0");
    }

    #[test]
    fn the_default_array_shows_the_product_off() {
        let raid = Raid::default();
        let v = raid.volume(0).unwrap();
        assert_eq!(v.level, Level::Raid5);
        assert_eq!(v.drives, vec![0, 1, 2, 3, 4]);
        assert_eq!(v.strip_bytes, 64 << 10);
        assert_eq!(v.capacity_bytes, 8 << 30);
        assert_eq!(raid.drive(5).unwrap().state, super::super::DriveState::HotSpare);
        assert_eq!(raid.controller_info().hot_spares, 1);
        // Six 2 GiB drives cost nothing until written.
        assert!(raid.drives().iter().all(|d| d.allocated_bytes == 0));
    }
}
