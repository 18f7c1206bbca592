//! Output: StorCLI-like aligned tables (a header row, a dashed rule, columns padded to the
//! widest cell), human names for states and sizes, and the JSON shapes (`docs/RAIDCTL.md`).

use dkraid_core::admin::wire::{
    drive_state, event, volume_state, ControllerInfo, DriveEntry, EventEntry, IoStats, VolumeEntry,
    LATENCY_BUCKETS, NO_VOLUME,
};
use dkraid_core::Stage;
use serde_json::{json, Value};

/// Event codes beyond the first nine (hot spares, media errors, …; `docs/CONTROLLER.md`):
/// every event keeps its sequence number, so raidctl names these too rather than showing a gap.
pub use dkraid_core::admin::wire::event as event_ext;

/// Every event: code, `--until` name, human name.
pub const EVENTS: [(u16, &str, &str); 16] = [
    (event::DRIVE_FAILED, "drive-failed", "Drive failed"),
    (event::VOLUME_DEGRADED, "volume-degraded", "Volume degraded"),
    (event::REBUILD_STARTED, "rebuild-started", "Rebuild started"),
    (event::REBUILD_PROGRESS, "rebuild-progress", "Rebuild progress"),
    (event::REBUILD_FINISHED, "rebuild-finished", "Rebuild finished"),
    (event::VOLUME_CREATED, "volume-created", "Volume created"),
    (event::VOLUME_DELETED, "volume-deleted", "Volume deleted"),
    (event::VOLUME_OFFLINE, "volume-offline", "Volume offline"),
    (event::SPARE_ACTIVE, "spare-active", "Spare active"),
    (event_ext::HOT_SPARE_ADDED, "hot-spare-added", "Hot spare added"),
    (event_ext::HOT_SPARE_REMOVED, "hot-spare-removed", "Hot spare removed"),
    (event_ext::VOLUME_OPTIMAL, "volume-optimal", "Volume optimal"),
    (event_ext::REBUILD_ABORTED, "rebuild-aborted", "Rebuild aborted"),
    (event_ext::MEDIA_ERROR_CORRECTED, "media-error-corrected", "Media error corrected"),
    (event_ext::MEDIA_ERROR_UNRECOVERED, "media-error-unrecovered", "Media error unrecovered"),
    (event_ext::REBUILD_PUNCTURE, "rebuild-puncture", "Rebuild puncture"),
];

/// The code of an event named as `--until` takes it (`rebuild-finished`).
pub fn event_code(name: &str) -> Option<u16> {
    let name = name.to_ascii_lowercase();
    EVENTS.iter().find(|e| e.1 == name).map(|e| e.0)
}

/// `(slug, human name)` of an event code; unknown codes get `event-N` / `Event N`.
pub fn event_names(code: u16) -> (String, String) {
    match EVENTS.iter().find(|e| e.0 == code) {
        Some(e) => (e.1.to_string(), e.2.to_string()),
        None => (format!("event-{code}"), format!("Event {code}")),
    }
}

/// StorCLI's short volume state, and a long one.
pub fn volume_state_names(state: u8) -> (&'static str, &'static str) {
    match state {
        volume_state::OPTIMAL => ("Optl", "optimal"),
        volume_state::DEGRADED => ("Dgrd", "degraded"),
        volume_state::PARTIALLY_DEGRADED => ("Pdgd", "partially degraded"),
        volume_state::OFFLINE => ("OfLn", "offline"),
        volume_state::REBUILDING => ("Rbld", "rebuilding"),
        _ => ("Unkn", "unknown"),
    }
}

/// StorCLI's short drive state (GHS/DHS for a global/dedicated spare), and a long one.
pub fn drive_state_names(d: &DriveEntry) -> (&'static str, &'static str) {
    match d.state {
        drive_state::ONLINE => ("Onln", "online"),
        drive_state::OFFLINE => ("Offln", "offline"),
        drive_state::UNCONFIGURED_GOOD => ("UGood", "unconfigured good"),
        drive_state::UNCONFIGURED_BAD => ("UBad", "unconfigured bad"),
        drive_state::REBUILD => ("Rbld", "rebuild"),
        drive_state::HOT_SPARE if d.volume.get() == NO_VOLUME => ("GHS", "global hot spare"),
        drive_state::HOT_SPARE => ("DHS", "dedicated hot spare"),
        drive_state::MISSING => ("Msng", "missing"),
        _ => ("Unkn", "unknown"),
    }
}

/// The stage's name (`full`), or `stage N`.
pub fn stage_name(stage: u32) -> String {
    match Stage::from_number(stage) {
        Some(s) => s.name().to_string(),
        None => format!("stage {stage}"),
    }
}

/// A size in binary units with three decimals: `512 B`, `1.000 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.3} {}", UNITS[unit])
}

/// `RAID5`.
pub fn level_name(level: u8) -> String {
    format!("RAID{level}")
}

/// The drive IDs of a membership bitmap, in order.
pub fn bitmap_drives(bits: u64) -> Vec<u16> {
    (0..64u16).filter(|d| bits & (1u64 << d) != 0).collect()
}

/// `0-4,7`: a compact list of sorted IDs.
pub fn compact_ids(ids: &[u16]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut end = start;
        while i + 1 < ids.len() && ids[i + 1] == end + 1 {
            i += 1;
            end = ids[i];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(",")
    }
}

/// The byte capacity of a volume.
pub fn volume_bytes(v: &VolumeEntry) -> u64 {
    v.capacity_blocks.get().saturating_mul(u64::from(v.block_size.get()))
}

/// The latency bucket's range: `<1 us`, `1-2 us`, `>=16384 us`.
pub fn latency_bucket_label(bucket: usize) -> String {
    match bucket {
        0 => "<1 us".to_string(),
        b if b + 1 >= LATENCY_BUCKETS => format!(">={} us", 1u64 << (b - 1)),
        b => format!("{}-{} us", 1u64 << (b - 1), 1u64 << b),
    }
}

fn nul_padded(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn opt_id(id: u16) -> Option<u16> {
    (id != NO_VOLUME).then_some(id)
}

// ---- tables ----

/// An aligned table: a header row, a dashed rule as wide as the table, then the rows; every
/// column padded to its widest cell, two spaces between columns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, every line ending in `\n`, no trailing spaces.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).chain([self.header.len()]).max().unwrap_or(0);
        let mut widths = vec![0usize; columns];
        for line in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in line.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let format_line = |line: &Vec<String>| -> String {
            let mut s = String::new();
            for (i, w) in widths.iter().enumerate() {
                let cell = line.get(i).map(String::as_str).unwrap_or("");
                if i > 0 {
                    s.push_str("  ");
                }
                s.push_str(cell);
                s.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
            }
            let mut s = s.trim_end().to_string();
            s.push('\n');
            s
        };
        let total = widths.iter().sum::<usize>() + 2 * columns.saturating_sub(1);
        let mut out = format_line(&self.header);
        out.push_str(&"-".repeat(total));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&format_line(row));
        }
        out
    }
}

/// Property/value pairs as a two-column table.
pub fn properties(pairs: &[(&str, String)]) -> String {
    let mut t = Table::new(&["Property", "Value"]);
    for (k, v) in pairs {
        t.row(vec![k.to_string(), v.clone()]);
    }
    t.render()
}

pub fn controller_table(info: &ControllerInfo, stage: u32) -> String {
    properties(&[
        ("Controller", "0".to_string()),
        ("Serial Number", nul_padded(&info.serial)),
        ("Firmware Version", nul_padded(&info.firmware_version)),
        ("Driver Version", nul_padded(&info.driver_version)),
        ("Bring-up Stage", format!("{} ({stage})", stage_name(stage))),
        ("Max Commands", info.max_commands.get().to_string()),
        ("Max Targets", info.max_targets.get().to_string()),
        ("Drives", info.drives.get().to_string()),
        ("Volumes", info.volumes.get().to_string()),
    ])
}

pub fn volumes_table(volumes: &[VolumeEntry]) -> String {
    let mut t = Table::new(&["VD", "TYPE", "State", "Size", "Strip", "BlkSz", "Drives", "Rbld%"]);
    for v in volumes {
        let state = v.state;
        let rebuild = if state == volume_state::REBUILDING {
            format!("{}%", v.rebuild_percent)
        } else {
            "-".to_string()
        };
        t.row(vec![
            v.id.get().to_string(),
            level_name(v.level),
            volume_state_names(state).0.to_string(),
            human_size(volume_bytes(v)),
            format!("{} KiB", v.strip_kib.get()),
            v.block_size.get().to_string(),
            compact_ids(&bitmap_drives(v.drives.get())),
            rebuild,
        ]);
    }
    t.render()
}

pub const VOLUME_LEGEND: &str =
    "VD=Volume ID|Optl=Optimal|Dgrd=Degraded|Pdgd=Partially Degraded|OfLn=Offline|Rbld=Rebuilding\n";
pub const DRIVE_LEGEND: &str =
    "EID=Enclosure|Slt=Slot|DID=Drive ID|DG=Volume|Onln=Online|Offln=Offline|\
UGood=Unconfigured Good|UBad=Unconfigured Bad|Rbld=Rebuild|GHS=Global Hot Spare|\
DHS=Dedicated Hot Spare|Msng=Missing\n";

pub fn drives_table(drives: &[DriveEntry]) -> String {
    let mut t = Table::new(&["EID:Slt", "DID", "State", "DG", "Size", "MedErr"]);
    for d in drives {
        let id = d.id.get();
        t.row(vec![
            format!("0:{id}"),
            id.to_string(),
            drive_state_names(d).0.to_string(),
            opt_id(d.volume.get()).map_or("-".to_string(), |v| v.to_string()),
            human_size(d.capacity_bytes.get()),
            d.media_errors.get().to_string(),
        ]);
    }
    t.render()
}

/// One rebuild: the drive, its volume, the volume's progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rebuild {
    pub drive: u16,
    pub volume: Option<u16>,
    pub percent: Option<u8>,
}

pub fn rebuilds_table(rebuilds: &[Rebuild]) -> String {
    let mut t = Table::new(&["EID:Slt", "DID", "DG", "Progress%", "Status"]);
    for r in rebuilds {
        t.row(vec![
            format!("0:{}", r.drive),
            r.drive.to_string(),
            r.volume.map_or("-".to_string(), |v| v.to_string()),
            r.percent.map_or("-".to_string(), |p| p.to_string()),
            "In progress".to_string(),
        ]);
    }
    t.render()
}

fn id_cell(id: u16) -> String {
    opt_id(id).map_or("-".to_string(), |v| v.to_string())
}

fn percent_applies(code: u16) -> bool {
    matches!(
        code,
        event::REBUILD_PROGRESS
            | event::REBUILD_STARTED
            | event::REBUILD_FINISHED
            | event_ext::VOLUME_OPTIMAL
    )
}

pub fn events_table(events: &[EventEntry]) -> String {
    let mut t = Table::new(&["Seq", "Event", "VD", "DID", "Percent"]);
    for e in events {
        t.row(event_row(e));
    }
    t.render()
}

fn event_row(e: &EventEntry) -> Vec<String> {
    let code = e.code.get();
    vec![
        e.sequence.get().to_string(),
        event_names(code).1,
        id_cell(e.volume.get()),
        id_cell(e.drive.get()),
        if percent_applies(code) { format!("{}%", e.percent) } else { "-".to_string() },
    ]
}

/// One event as a line for `--follow` (no header): the columns of [`events_table`], padded to
/// fixed widths so consecutive lines line up.
pub fn event_line(e: &EventEntry) -> String {
    let cells = event_row(e);
    let widths = [6, 23, 3, 3, 0];
    let mut s = String::new();
    for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            s.push_str("  ");
        }
        s.push_str(&format!("{c:<w$}"));
    }
    s.trim_end().to_string()
}

/// The header for `--follow`, aligned with [`event_line`].
pub fn event_follow_header() -> String {
    let h = format!("{:<6}  {:<23}  {:<3}  {:<3}  {}", "Seq", "Event", "VD", "DID", "Percent");
    format!("{h}\n{}", "-".repeat(h.len()))
}

pub fn io_stats_tables(s: &IoStats) -> String {
    let mut out = properties(&[
        ("Reads", s.reads.get().to_string()),
        ("Writes", s.writes.get().to_string()),
        ("Read", human_size(s.read_bytes.get())),
        ("Written", human_size(s.write_bytes.get())),
        ("Errors", s.errors.get().to_string()),
    ]);
    out.push('\n');
    let mut t = Table::new(&["Latency", "Completions"]);
    for (i, c) in s.latency_us_log2.iter().enumerate() {
        t.row(vec![latency_bucket_label(i), c.get().to_string()]);
    }
    out.push_str(&t.render());
    out
}

// ---- JSON ----

pub fn controller_json(info: &ControllerInfo, stage: u32) -> Value {
    json!({
        "id": 0,
        "serial": nul_padded(&info.serial),
        "firmware_version": nul_padded(&info.firmware_version),
        "driver_version": nul_padded(&info.driver_version),
        "stage": stage,
        "stage_name": stage_name(stage),
        "max_commands": info.max_commands.get(),
        "max_targets": info.max_targets.get(),
        "drives": info.drives.get(),
        "volumes": info.volumes.get(),
    })
}

pub fn volume_json(v: &VolumeEntry) -> Value {
    let (state, state_name) = volume_state_names(v.state);
    json!({
        "id": v.id.get(),
        "level": v.level,
        "type": level_name(v.level),
        "state": state,
        "state_name": state_name,
        "capacity_blocks": v.capacity_blocks.get(),
        "block_size": v.block_size.get(),
        "capacity_bytes": volume_bytes(v),
        "size": human_size(volume_bytes(v)),
        "strip_kib": v.strip_kib.get(),
        "drive_count": v.drive_count,
        "drives": bitmap_drives(v.drives.get()),
        "rebuild_percent": (v.state == volume_state::REBUILDING).then_some(v.rebuild_percent),
    })
}

pub fn drive_json(d: &DriveEntry) -> Value {
    let (state, state_name) = drive_state_names(d);
    let spare = match (d.state, opt_id(d.volume.get())) {
        (drive_state::HOT_SPARE, None) => Some("global"),
        (drive_state::HOT_SPARE, Some(_)) => Some("dedicated"),
        _ => None,
    };
    json!({
        "id": d.id.get(),
        "enclosure": 0,
        "slot": d.id.get(),
        "state": state,
        "state_name": state_name,
        "volume": opt_id(d.volume.get()),
        "spare": spare,
        "capacity_bytes": d.capacity_bytes.get(),
        "size": human_size(d.capacity_bytes.get()),
        "media_errors": d.media_errors.get(),
    })
}

pub fn event_json(e: &EventEntry) -> Value {
    let code = e.code.get();
    let (slug, name) = event_names(code);
    json!({
        "sequence": e.sequence.get(),
        "code": code,
        "event": slug,
        "name": name,
        "volume": opt_id(e.volume.get()),
        "drive": opt_id(e.drive.get()),
        "percent": percent_applies(code).then_some(e.percent),
    })
}

pub fn io_stats_json(s: &IoStats) -> Value {
    let buckets: Vec<u64> = s.latency_us_log2.iter().map(|c| c.get()).collect();
    json!({
        "reads": s.reads.get(),
        "writes": s.writes.get(),
        "read_bytes": s.read_bytes.get(),
        "write_bytes": s.write_bytes.get(),
        "errors": s.errors.get(),
        "latency_us_log2": buckets,
    })
}

pub fn rebuild_json(r: &Rebuild) -> Value {
    json!({ "drive": r.drive, "volume": r.volume, "percent": r.percent })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::little_endian::{U16, U32, U64};

    #[test]
    fn tables_align_every_column() {
        let mut t = Table::new(&["A", "Long header", "C"]);
        t.row(vec!["wide cell".into(), "x".into(), "1".into()]);
        t.row(vec!["y".into(), "z".into(), "12345".into()]);
        let text = t.render();
        assert_eq!(
            text,
            "A          Long header  C\n\
             -----------------------------\n\
             wide cell  x            1\n\
             y          z            12345\n"
        );
        // Every column starts at the same offset on every line.
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2].find('x'), lines[0].find("Long"));
        assert_eq!(lines[3].find("12345"), lines[0].find('C'));
        // The rule is as wide as the widest line.
        assert_eq!(lines[1].len(), lines[3].len());
        // An empty table is a header and a rule.
        assert_eq!(Table::new(&["X", "Y"]).render(), "X  Y\n----\n");
    }

    #[test]
    fn sizes_and_names() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1024), "1.000 KiB");
        assert_eq!(human_size(1 << 30), "1.000 GiB");
        assert_eq!(human_size(3 * (1 << 29)), "1.500 GiB");
        assert_eq!(human_size(u64::MAX), "16.000 EiB");
        assert_eq!(compact_ids(&[0, 1, 2, 3, 4, 7, 9, 10]), "0-4,7,9-10");
        assert_eq!(compact_ids(&[]), "-");
        assert_eq!(bitmap_drives(0b1011 | 1 << 63), vec![0, 1, 3, 63]);
        assert_eq!(latency_bucket_label(0), "<1 us");
        assert_eq!(latency_bucket_label(1), "1-2 us");
        assert_eq!(latency_bucket_label(14), "8192-16384 us");
        assert_eq!(latency_bucket_label(15), ">=16384 us");
        assert_eq!(event_code("rebuild-finished"), Some(event::REBUILD_FINISHED));
        assert_eq!(event_code("nope"), None);
        assert_eq!(event_names(1).1, "Drive failed");
        assert_eq!(event_names(99).0, "event-99");
        let states: Vec<&str> = (0..=5).map(|s| volume_state_names(s).0).collect();
        assert_eq!(states, ["Optl", "Dgrd", "Pdgd", "OfLn", "Rbld", "Unkn"]);
        let drive =
            |state, volume| DriveEntry { state, volume: U16::new(volume), ..Default::default() };
        let names: Vec<&str> = [
            (0, 0),
            (1, 0),
            (2, NO_VOLUME),
            (3, NO_VOLUME),
            (4, 1),
            (5, NO_VOLUME),
            (5, 1),
            (6, 0),
        ]
        .iter()
        .map(|&(s, v)| drive_state_names(&drive(s, v)).0)
        .collect();
        assert_eq!(names, ["Onln", "Offln", "UGood", "UBad", "Rbld", "GHS", "DHS", "Msng"]);
        assert_eq!(stage_name(3), "full");
        assert_eq!(stage_name(9), "stage 9");
    }

    fn volume() -> VolumeEntry {
        VolumeEntry {
            id: U16::new(1),
            state: volume_state::REBUILDING,
            level: 5,
            block_size: U32::new(512),
            capacity_blocks: U64::new(2 * 1024 * 1024),
            strip_kib: U32::new(64),
            rebuild_percent: 42,
            drive_count: 3,
            reserved: U16::new(0),
            drives: U64::new(0b10110),
        }
    }

    #[test]
    fn json_shapes() {
        let v = volume_json(&volume());
        assert_eq!(
            v,
            json!({
                "id": 1, "level": 5, "type": "RAID5", "state": "Rbld", "state_name": "rebuilding",
                "capacity_blocks": 2097152, "block_size": 512, "capacity_bytes": 1073741824u64,
                "size": "1.000 GiB", "strip_kib": 64, "drive_count": 3, "drives": [1, 2, 4],
                "rebuild_percent": 42
            })
        );
        let d = DriveEntry {
            id: U16::new(5),
            state: drive_state::HOT_SPARE,
            volume: U16::new(NO_VOLUME),
            capacity_bytes: U64::new(1 << 30),
            media_errors: U32::new(2),
            ..Default::default()
        };
        assert_eq!(
            drive_json(&d),
            json!({
                "id": 5, "enclosure": 0, "slot": 5, "state": "GHS", "state_name": "global hot spare",
                "volume": null, "spare": "global", "capacity_bytes": 1073741824u64,
                "size": "1.000 GiB", "media_errors": 2
            })
        );
        let e = EventEntry {
            sequence: U64::new(7),
            code: U16::new(event::REBUILD_PROGRESS),
            volume: U16::new(1),
            drive: U16::new(NO_VOLUME),
            percent: 50,
            reserved: 0,
        };
        assert_eq!(
            event_json(&e),
            json!({
                "sequence": 7, "code": 4, "event": "rebuild-progress", "name": "Rebuild progress",
                "volume": 1, "drive": null, "percent": 50
            })
        );
        let s = IoStats { reads: U64::new(1), ..Default::default() };
        let j = io_stats_json(&s);
        assert_eq!(j["reads"], 1);
        assert_eq!(j["latency_us_log2"].as_array().unwrap().len(), LATENCY_BUCKETS);
        let info = ControllerInfo {
            serial: *b"SN-0001\0\0\0\0\0\0\0\0\0",
            stage: U32::new(3),
            ..Default::default()
        };
        let c = controller_json(&info, 3);
        assert_eq!(c["serial"], "SN-0001");
        assert_eq!(c["stage_name"], "full");
    }

    #[test]
    fn volume_and_event_tables() {
        let text = volumes_table(&[volume()]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "VD  TYPE   State  Size       Strip   BlkSz  Drives  Rbld%");
        assert_eq!(lines[2], "1   RAID5  Rbld   1.000 GiB  64 KiB  512    1-2,4   42%");
        let e = EventEntry {
            sequence: U64::new(12),
            code: U16::new(event::DRIVE_FAILED),
            volume: U16::new(0),
            drive: U16::new(3),
            percent: 0,
            reserved: 0,
        };
        let text = events_table(&[e]);
        assert!(
            text.lines().nth(2).unwrap().starts_with("12   Drive failed  0   3    -"),
            "{text}"
        );
        let line = event_line(&e);
        let header = event_follow_header();
        let h = header.lines().next().unwrap();
        assert_eq!(line.find("Drive failed"), h.find("Event"));
        assert_eq!(line.find(" 3 ").map(|i| i + 1), h.find("DID"));
    }
}
