//! Carrying out a [`Command`] over a [`Client`]: the requests it takes, the output (a table
//! or JSON), and errors a person can act on — in particular why a volume cannot be created.

use std::io::Write;
use std::time::Duration;

use dkraid_core::admin::wire::{
    drive_state, DriveEntry, VolumeCreate, VolumeEntry, ALL_VOLUMES, GLOBAL_SPARE,
    MAX_VOLUME_DRIVES, NO_VOLUME,
};
use dkraid_core::admin::{level_minimum_drives, status};
use serde_json::{json, Value};
use zerocopy::little_endian::{U16, U32};

use crate::cli::{Command, CreateSpec};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::render::{self, Rebuild};
use crate::transport::Transport;

/// How often `--follow` asks for events even without a notification.
pub const FOLLOW_POLL: Duration = Duration::from_secs(5);

/// Where output goes, and in which form.
struct Out<'a> {
    w: &'a mut dyn Write,
    json: bool,
}

impl Out<'_> {
    fn text(&mut self, s: &str) -> Result<()> {
        self.w.write_all(s.as_bytes()).and_then(|()| self.w.flush()).map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => {
                Error::new(crate::error::ErrorKind::OutputClosed, "the output was closed")
            }
            _ => Error::protocol(format!("writing the output failed: {e}")),
        })
    }
    fn json(&mut self, v: &Value) -> Result<()> {
        let text = serde_json::to_string_pretty(v)
            .map_err(|e| Error::protocol(format!("JSON output failed: {e}")))?;
        self.text(&format!("{text}\n"))
    }
    /// One JSON object on one line (`--follow`).
    fn json_line(&mut self, v: &Value) -> Result<()> {
        self.text(&format!("{v}\n"))
    }
}

/// Carries out `cmd`, writing its output to `w`.
pub fn execute<T: Transport>(
    client: &mut Client<T>,
    cmd: &Command,
    json: bool,
    w: &mut dyn Write,
) -> Result<()> {
    let mut out = Out { w, json };
    match execute_inner(client, cmd, &mut out) {
        Ok(()) => Ok(()),
        Err(e) => Err(explain(client, cmd, e)),
    }
}

/// Makes an error from the controller specific to the command that met it.
fn explain<T: Transport>(client: &mut Client<T>, cmd: &Command, mut e: Error) -> Error {
    match e.status {
        Some(status::NOT_READY) => {
            if let Ok(stage) = client.stage_get() {
                e.message = format!(
                    "the controller is not ready: the driver runs bring-up stage {} ({stage}), \
                     which has no controller to ask; admin commands need stage single-io (2) or \
                     full (3) (NotReady)",
                    render::stage_name(stage)
                );
            }
        }
        Some(status::NOT_FOUND) => {
            let what = match cmd {
                Command::VolumeShow { volume, .. } | Command::VolumeDelete { volume } => {
                    Some(format!("volume {volume} does not exist (see /c0/vall show)"))
                }
                Command::RebuildStart { volume, drive } => Some(format!(
                    "volume {volume} or drive {drive} does not exist (see /c0/vall show and \
                     /c0/eall/sall show)"
                )),
                Command::DrivesShow { drive: Some(d) }
                | Command::RebuildShow { drive: Some(d) }
                | Command::HotspareSet { drive: d, volume: None }
                | Command::HotspareDelete { drive: d } => {
                    Some(format!("drive {d} does not exist (see /c0/eall/sall show)"))
                }
                Command::HotspareSet { drive, volume: Some(v) } => Some(format!(
                    "drive {drive} or volume {v} does not exist (see /c0/eall/sall show and \
                     /c0/vall show)"
                )),
                _ => None,
            };
            if let Some(what) = what {
                e.message = format!("{what} (NotFound)");
            }
        }
        Some(status::REJECTED) => {
            if let Some(why) = rejected_because(client, cmd) {
                e.message = format!("{why} (Rejected)");
            }
        }
        _ => {}
    }
    e
}

/// `drive N is Onln (online) in volume 0`, from DRIVE_SHOW.
fn drive_situation<T: Transport>(
    client: &mut Client<T>,
    drive: u16,
) -> Option<(DriveEntry, String)> {
    let d = client.drive_show(drive).ok()?;
    let (short, long) = render::drive_state_names(&d);
    let volume = d.volume.get();
    let place = match (volume, d.state) {
        (NO_VOLUME, _) => String::new(),
        (v, drive_state::HOT_SPARE) => format!(" for volume {v}"),
        (v, _) => format!(" in volume {v}"),
    };
    Some((d, format!("drive {drive} is {short} ({long}){place}")))
}

/// Why the controller refused a configuration command, from what it reports now.
fn rejected_because<T: Transport>(client: &mut Client<T>, cmd: &Command) -> Option<String> {
    match *cmd {
        Command::HotspareSet { drive, .. } => {
            let (d, situation) = drive_situation(client, drive)?;
            (d.state != drive_state::UNCONFIGURED_GOOD).then(|| {
                format!(
                    "cannot make drive {drive} a hot spare: {situation}; a spare must be \
                     Unconfigured Good"
                )
            })
        }
        Command::HotspareDelete { drive } => {
            let (d, situation) = drive_situation(client, drive)?;
            (d.state != drive_state::HOT_SPARE)
                .then(|| format!("drive {drive} is not a hot spare: {situation}"))
        }
        Command::RebuildStart { volume, drive } => {
            let v = client.volume_show(volume).ok()?;
            let (vstate, vlong) = render::volume_state_names(v.state);
            if v.state == dkraid_core::admin::wire::volume_state::OPTIMAL
                || v.state == dkraid_core::admin::wire::volume_state::REBUILDING
            {
                return Some(format!(
                    "cannot start a rebuild of volume {volume}: it is {vstate} ({vlong}), a \
                     rebuild needs a degraded volume"
                ));
            }
            let (d, situation) = drive_situation(client, drive)?;
            let usable = d.state == drive_state::UNCONFIGURED_GOOD
                || (d.state == drive_state::HOT_SPARE
                    && (d.volume.get() == NO_VOLUME || d.volume.get() == volume));
            (!usable).then(|| {
                format!(
                    "cannot rebuild volume {volume} onto drive {drive}: {situation}; the \
                     target must be Unconfigured Good or a spare of that volume"
                )
            })
        }
        Command::VolumeDelete { volume } => {
            let v = client.volume_show(volume).ok()?;
            (v.state == dkraid_core::admin::wire::volume_state::REBUILDING).then(|| {
                format!("cannot delete volume {volume} while it rebuilds ({}%)", v.rebuild_percent)
            })
        }
        _ => None,
    }
}

fn execute_inner<T: Transport>(client: &mut Client<T>, cmd: &Command, out: &mut Out) -> Result<()> {
    match cmd {
        Command::ControllerShow { all } => controller_show(client, *all, out),
        Command::Events { since, follow, until } => {
            if *follow {
                follow_events(client, *since, *until, out)
            } else {
                show_events(client, *since, out)
            }
        }
        Command::VolumeCreate(spec) => create(client, spec, out),
        Command::VolumesShow { all } => volumes_show(client, *all, out),
        Command::VolumeShow { volume, all } => volume_show(client, *volume, *all, out),
        Command::VolumeDelete { volume } => {
            client.volume_delete(*volume)?;
            if out.json {
                out.json(&json!({ "deleted": { "volume": volume } }))
            } else {
                out.text(&format!("Volume {volume} deleted.\n"))
            }
        }
        Command::RebuildStart { volume, drive } => {
            client.rebuild_start(*volume, *drive)?;
            if out.json {
                out.json(&json!({
                    "rebuild": { "action": "start", "volume": volume, "drive": drive }
                }))
            } else {
                out.text(&format!(
                    "Rebuild of volume {volume} onto drive {drive} started; follow it with \
                     /c0/eall/sall show rebuild.\n"
                ))
            }
        }
        Command::DrivesShow { drive: Some(d) } => {
            let entry = client.drive_show(*d)?;
            if out.json {
                out.json(&json!({ "drive": render::drive_json(&entry) }))
            } else {
                out.text(&format!("{}\n{}", render::drives_table(&[entry]), render::DRIVE_LEGEND))
            }
        }
        Command::DrivesShow { drive: None } => {
            let (total, drives) = client.drive_list()?;
            if out.json {
                let list: Vec<Value> = drives.iter().map(render::drive_json).collect();
                out.json(&json!({ "drives": list, "total": total }))
            } else {
                let mut s = render::drives_table(&drives);
                s.push_str(&truncated_note(drives.len(), total));
                s.push('\n');
                s.push_str(render::DRIVE_LEGEND);
                out.text(&s)
            }
        }
        Command::RebuildShow { drive } => rebuild_show(client, *drive, out),
        Command::HotspareSet { drive, volume } => {
            client.hotspare_set(*drive, volume.unwrap_or(GLOBAL_SPARE))?;
            if out.json {
                out.json(&json!({
                    "hotspare": { "action": "set", "drive": drive, "volume": volume }
                }))
            } else {
                match volume {
                    None => out.text(&format!("Drive {drive} is now a global hot spare.\n")),
                    Some(v) => out.text(&format!(
                        "Drive {drive} is now a dedicated hot spare of volume {v}.\n"
                    )),
                }
            }
        }
        Command::HotspareDelete { drive } => {
            client.hotspare_clear(*drive)?;
            if out.json {
                out.json(&json!({
                    "hotspare": { "action": "delete", "drive": drive, "volume": null }
                }))
            } else {
                out.text(&format!("Drive {drive} is no longer a hot spare.\n"))
            }
        }
    }
}

fn truncated_note(shown: usize, total: u32) -> String {
    if (shown as u64) < u64::from(total) {
        format!("({shown} of {total} shown: the rest did not fit one response)\n")
    } else {
        String::new()
    }
}

fn controller_show<T: Transport>(client: &mut Client<T>, all: bool, out: &mut Out) -> Result<()> {
    let info = client.controller_show()?;
    let stage = info.stage.get();
    if !all {
        return if out.json {
            out.json(&json!({ "controller": render::controller_json(&info, stage) }))
        } else {
            out.text(&render::controller_table(&info, stage))
        };
    }
    let (vtotal, volumes) = client.volume_list()?;
    let (dtotal, drives) = client.drive_list()?;
    let stats = client.io_stats(ALL_VOLUMES)?;
    if out.json {
        let v: Vec<Value> = volumes.iter().map(render::volume_json).collect();
        let d: Vec<Value> = drives.iter().map(render::drive_json).collect();
        return out.json(&json!({
            "controller": render::controller_json(&info, stage),
            "volumes": v,
            "drives": d,
            "io_stats": render::io_stats_json(&stats),
        }));
    }
    let mut s = render::controller_table(&info, stage);
    s.push_str(&format!("\nVolumes ({}):\n", volumes.len()));
    s.push_str(&render::volumes_table(&volumes));
    s.push_str(&truncated_note(volumes.len(), vtotal));
    s.push_str(&format!("\nDrives ({}):\n", drives.len()));
    s.push_str(&render::drives_table(&drives));
    s.push_str(&truncated_note(drives.len(), dtotal));
    s.push_str("\nI/O statistics (whole controller):\n");
    s.push_str(&render::io_stats_tables(&stats));
    s.push('\n');
    s.push_str(render::VOLUME_LEGEND);
    s.push_str(render::DRIVE_LEGEND);
    out.text(&s)
}

/// The drives of a volume: members (its bitmap) and its dedicated spares.
fn volume_drives(v: &VolumeEntry, drives: &[DriveEntry]) -> Vec<DriveEntry> {
    let members = v.drives.get();
    drives
        .iter()
        .filter(|d| {
            let id = d.id.get();
            (id < 64 && members & (1u64 << id) != 0) || d.volume.get() == v.id.get()
        })
        .copied()
        .collect()
}

fn volumes_show<T: Transport>(client: &mut Client<T>, all: bool, out: &mut Out) -> Result<()> {
    let (total, volumes) = client.volume_list()?;
    let drives = if all { Some(client.drive_list()?.1) } else { None };
    if out.json {
        let v: Vec<Value> = volumes.iter().map(render::volume_json).collect();
        let mut j = json!({ "volumes": v, "total": total });
        if let Some(drives) = &drives {
            let in_volumes: Vec<Value> = drives
                .iter()
                .filter(|d| d.volume.get() != NO_VOLUME)
                .map(render::drive_json)
                .collect();
            j["drives"] = Value::Array(in_volumes);
        }
        return out.json(&j);
    }
    let mut s = render::volumes_table(&volumes);
    s.push_str(&truncated_note(volumes.len(), total));
    if let Some(drives) = &drives {
        for v in &volumes {
            s.push_str(&format!("\nDrives of volume {}:\n", v.id.get()));
            s.push_str(&render::drives_table(&volume_drives(v, drives)));
        }
    }
    s.push('\n');
    s.push_str(render::VOLUME_LEGEND);
    if drives.is_some() {
        s.push_str(render::DRIVE_LEGEND);
    }
    out.text(&s)
}

fn volume_show<T: Transport>(
    client: &mut Client<T>,
    volume: u16,
    all: bool,
    out: &mut Out,
) -> Result<()> {
    let v = client.volume_show(volume)?;
    if !all {
        return if out.json {
            out.json(&json!({ "volume": render::volume_json(&v) }))
        } else {
            out.text(&format!("{}\n{}", render::volumes_table(&[v]), render::VOLUME_LEGEND))
        };
    }
    let (_, drives) = client.drive_list()?;
    let members = volume_drives(&v, &drives);
    let stats = client.io_stats(volume)?;
    if out.json {
        let d: Vec<Value> = members.iter().map(render::drive_json).collect();
        return out.json(&json!({
            "volume": render::volume_json(&v),
            "drives": d,
            "io_stats": render::io_stats_json(&stats),
        }));
    }
    let mut s = render::volumes_table(&[v]);
    s.push_str(&format!("\nDrives of volume {volume}:\n"));
    s.push_str(&render::drives_table(&members));
    s.push_str(&format!("\nI/O statistics of volume {volume}:\n"));
    s.push_str(&render::io_stats_tables(&stats));
    s.push('\n');
    s.push_str(render::VOLUME_LEGEND);
    s.push_str(render::DRIVE_LEGEND);
    out.text(&s)
}

fn rebuild_show<T: Transport>(
    client: &mut Client<T>,
    drive: Option<u16>,
    out: &mut Out,
) -> Result<()> {
    let drives = match drive {
        Some(d) => vec![client.drive_show(d)?],
        None => client.drive_list()?.1,
    };
    let (_, volumes) = client.volume_list()?;
    let rebuilds = rebuilds(&drives, &volumes);
    if out.json {
        let r: Vec<Value> = rebuilds.iter().map(render::rebuild_json).collect();
        return out.json(&json!({ "rebuilds": r }));
    }
    if rebuilds.is_empty() {
        return match drive {
            Some(d) => out.text(&format!("Drive {d} is not being rebuilt.\n")),
            None => out.text("No drive is being rebuilt.\n"),
        };
    }
    out.text(&render::rebuilds_table(&rebuilds))
}

/// The drives in rebuild, with their volume's progress.
pub fn rebuilds(drives: &[DriveEntry], volumes: &[VolumeEntry]) -> Vec<Rebuild> {
    drives
        .iter()
        .filter(|d| d.state == drive_state::REBUILD)
        .map(|d| {
            let id = d.id.get();
            let volume = volumes.iter().find(|v| {
                v.id.get() == d.volume.get() || (id < 64 && v.drives.get() & (1u64 << id) != 0)
            });
            Rebuild {
                drive: id,
                volume: volume.map(|v| v.id.get()),
                percent: volume.map(|v| v.rebuild_percent),
            }
        })
        .collect()
}

fn show_events<T: Transport>(client: &mut Client<T>, since: u64, out: &mut Out) -> Result<()> {
    let events = client.events_since(since)?;
    let newest = events.last().map_or(since, |e| e.sequence.get());
    if out.json {
        let list: Vec<Value> = events.iter().map(render::event_json).collect();
        return out.json(&json!({ "events": list, "since": since, "newest": newest }));
    }
    if events.is_empty() {
        return out.text(&format!("No events after sequence {since}.\n"));
    }
    out.text(&render::events_table(&events))
}

fn follow_events<T: Transport>(
    client: &mut Client<T>,
    since: u64,
    until: Option<u16>,
    out: &mut Out,
) -> Result<()> {
    // Watch first, then read: an event that arrives in between is both notified and read.
    let mut newest = client.watch_events()?;
    let mut last = since;
    if !out.json {
        out.text(&format!("{}\n", render::event_follow_header()))?;
    }
    let mut first = true;
    loop {
        if first || newest > last {
            first = false;
            for e in client.events_since(last)? {
                last = last.max(e.sequence.get());
                if out.json {
                    out.json_line(&render::event_json(&e))?;
                } else {
                    out.text(&format!("{}\n", render::event_line(&e)))?;
                }
                if until == Some(e.code.get()) {
                    return Ok(());
                }
            }
        }
        match client.next_event_notification(FOLLOW_POLL)? {
            Some(n) => newest = newest.max(n),
            // No notification: ask anyway, in case one was lost.
            None => newest = newest.max(last + 1),
        }
    }
}

fn create<T: Transport>(client: &mut Client<T>, spec: &CreateSpec, out: &mut Out) -> Result<()> {
    let mut drives = [U16::new(0); MAX_VOLUME_DRIVES];
    for (slot, d) in drives.iter_mut().zip(&spec.drives) {
        *slot = U16::new(*d);
    }
    let req = VolumeCreate {
        level: spec.level,
        drive_count: spec.drives.len().min(MAX_VOLUME_DRIVES) as u8,
        reserved: U16::new(0),
        strip_kib: U32::new(spec.strip_kib),
        block_size: U32::new(spec.block_size),
        drives,
    };
    let v = match client.volume_create(&req) {
        Ok(v) => v,
        Err(e) => return Err(create_failure(client, spec, e)),
    };
    if out.json {
        out.json(&json!({ "created": render::volume_json(&v) }))
    } else {
        out.text(&format!(
            "Volume {} created.\n{}\n{}",
            v.id.get(),
            render::volumes_table(&[v]),
            render::VOLUME_LEGEND
        ))
    }
}

fn describe_spec(spec: &CreateSpec) -> String {
    let mut sorted = spec.drives.clone();
    sorted.sort_unstable();
    sorted.dedup();
    format!(
        "the {} volume on drives {}",
        render::level_name(spec.level),
        render::compact_ids(&sorted)
    )
}

/// Why VOLUME_CREATE failed, in terms of the drives asked for.
fn create_failure<T: Transport>(client: &mut Client<T>, spec: &CreateSpec, mut e: Error) -> Error {
    let what = describe_spec(spec);
    match e.status {
        Some(status::REJECTED) | Some(status::NOT_FOUND) => {
            let name = status::name(e.status.unwrap_or(0)).unwrap_or("Rejected");
            match client.drive_list() {
                Ok((_, drives)) => {
                    let reasons = diagnose_create(spec, &drives);
                    e.message = if reasons.is_empty() {
                        format!(
                            "cannot create {what}: the controller refused it ({name}); every \
                             requested drive is Unconfigured Good and large enough"
                        )
                    } else {
                        format!("cannot create {what}: {} ({name})", reasons.join("; "))
                    };
                }
                Err(_) => {
                    e.message = format!("cannot create {what}: the controller refused it ({name})")
                }
            }
        }
        Some(status::DRIVE_COUNT_FOR_LEVEL) => {
            let count = spec.drives.len();
            let min = level_minimum_drives(spec.level).unwrap_or(0);
            e.message = if spec.level == 10 && count >= usize::from(min) {
                format!(
                    "cannot create {what}: RAID 10 takes an even number of drives, got {count} \
                     (DriveCountForLevel)"
                )
            } else {
                format!(
                    "cannot create {what}: RAID {} takes at least {min} drives, got {count} \
                     (DriveCountForLevel)",
                    spec.level
                )
            };
        }
        Some(status::DUPLICATE_DRIVE) => {
            let mut seen = Vec::new();
            let dup = spec.drives.iter().find(|d| {
                let again = seen.contains(*d);
                seen.push(**d);
                again
            });
            if let Some(d) = dup {
                e.message =
                    format!("cannot create {what}: drive {d} is listed twice (DuplicateDrive)");
            }
        }
        Some(status::FIELD_OUT_OF_RANGE) => {
            e.message = format!(
                "cannot create {what}: the controller refused a value (FieldOutOfRange): drive \
                 IDs are 0..=63, strip={} must be a power of two 4..=1024 (KiB), blocksize={} \
                 must be 512 or 4096",
                spec.strip_kib, spec.block_size
            );
        }
        _ => {}
    }
    e
}

/// Names each requested drive that cannot go into a new volume, and why.
pub fn diagnose_create(spec: &CreateSpec, drives: &[DriveEntry]) -> Vec<String> {
    let mut reasons = Vec::new();
    let mut requested: Vec<u16> = Vec::new();
    for d in &spec.drives {
        if !requested.contains(d) {
            requested.push(*d);
        }
    }
    let mut existing: Vec<u16> = drives.iter().map(|d| d.id.get()).collect();
    existing.sort_unstable();
    let mut good: Vec<&DriveEntry> = Vec::new();
    for id in &requested {
        let Some(d) = drives.iter().find(|d| d.id.get() == *id) else {
            reasons.push(format!(
                "drive {id} does not exist (the controller has drives {})",
                render::compact_ids(&existing)
            ));
            continue;
        };
        if d.state != drive_state::UNCONFIGURED_GOOD {
            let (short, long) = render::drive_state_names(d);
            let volume = d.volume.get();
            let place = if volume == NO_VOLUME {
                String::new()
            } else if d.state == drive_state::HOT_SPARE {
                format!(" for volume {volume}")
            } else {
                format!(" in volume {volume}")
            };
            reasons.push(format!(
                "drive {id} is {short} ({long}){place}; a new volume needs Unconfigured Good drives"
            ));
            continue;
        }
        good.push(d);
    }
    let strip_bytes = u64::from(spec.strip_kib) * 1024;
    for d in &good {
        let cap = d.capacity_bytes.get();
        if cap < strip_bytes.max(1) {
            reasons.push(format!(
                "drive {} is too small ({}; one {} KiB strip does not fit)",
                d.id.get(),
                render::human_size(cap),
                spec.strip_kib
            ));
        }
    }
    if reasons.is_empty() && good.len() > 1 {
        let smallest = good.iter().min_by_key(|d| d.capacity_bytes.get());
        let largest = good.iter().max_by_key(|d| d.capacity_bytes.get());
        if let (Some(s), Some(l)) = (smallest, largest) {
            if s.capacity_bytes.get() < l.capacity_bytes.get() {
                reasons.push(format!(
                    "drive {} is too small for this volume ({}, drive {} has {}); members \
                     should be the same size",
                    s.id.get(),
                    render::human_size(s.capacity_bytes.get()),
                    l.id.get(),
                    render::human_size(l.capacity_bytes.get())
                ));
            }
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_closed_output_is_no_error_and_other_write_failures_are() {
        struct Closed(std::io::ErrorKind);
        impl std::io::Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from(self.0))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut w = Closed(std::io::ErrorKind::BrokenPipe);
        let e = Out { w: &mut w, json: false }.text("x\n").unwrap_err();
        assert_eq!((e.kind, e.exit_code()), (crate::error::ErrorKind::OutputClosed, 0));
        let mut w = Closed(std::io::ErrorKind::PermissionDenied);
        let e = Out { w: &mut w, json: false }.text("x\n").unwrap_err();
        assert_eq!(e.exit_code(), 7);
    }

    use std::collections::VecDeque;

    use dkraid_core::admin::wire::{
        volume_state, ControllerInfo, EventEntry, IoStats, StageInfo, VolumeEntry,
    };
    use dkraid_core::admin::{decode_request, encode_list, encode_response, Body};
    use dkraid_core::IOReturn;
    use zerocopy::little_endian::U64;
    use zerocopy::IntoBytes;

    use super::*;
    use crate::cli::{parse, Parsed};
    use crate::error::ErrorKind;
    use crate::transport::{selector, AsyncMessage, CallReply};

    const GIB: u64 = 1 << 30;

    /// An in-memory driver with a small array: volume 0 (RAID 1 on drives 0-1), volume 1
    /// (RAID 5 on drives 2-4, rebuilding onto drive 4 at 42%), drive 5 a global spare, drives
    /// 6-7 unconfigured good (drive 7 smaller).
    struct Driver {
        stage: u32,
        volumes: Vec<VolumeEntry>,
        drives: Vec<DriveEntry>,
        events: Vec<EventEntry>,
        /// Event batches that appear, one per wait, each with a notification.
        later: VecDeque<Vec<EventEntry>>,
        /// The status VOLUME_CREATE answers (OK: it creates the volume).
        create_status: u32,
        /// Every other configuration command answers Rejected.
        reject_config: bool,
        asyncs: VecDeque<AsyncMessage>,
        ready: Vec<(u64, Vec<u8>)>,
        next_ticket: u64,
        requests: Vec<u16>,
    }

    fn drive(id: u16, state: u8, volume: u16, capacity: u64) -> DriveEntry {
        DriveEntry {
            id: U16::new(id),
            state,
            volume: U16::new(volume),
            capacity_bytes: U64::new(capacity),
            ..Default::default()
        }
    }

    fn event(seq: u64, code: u16, volume: u16, drive: u16, percent: u8) -> EventEntry {
        EventEntry {
            sequence: U64::new(seq),
            code: U16::new(code),
            volume: U16::new(volume),
            drive: U16::new(drive),
            percent,
            reserved: 0,
        }
    }

    impl Driver {
        fn new() -> Driver {
            let vol = |id: u16, level: u8, state: u8, pct: u8, bits: u64, n: u8| VolumeEntry {
                id: U16::new(id),
                state,
                level,
                block_size: U32::new(512),
                capacity_blocks: U64::new(2 * 1024 * 1024),
                strip_kib: U32::new(64),
                rebuild_percent: pct,
                drive_count: n,
                reserved: U16::new(0),
                drives: U64::new(bits),
            };
            use dkraid_core::admin::wire::event as ev;
            Driver {
                stage: 3,
                volumes: vec![
                    vol(0, 1, volume_state::OPTIMAL, 0, 0b11, 2),
                    vol(1, 5, volume_state::REBUILDING, 42, 0b11100, 3),
                ],
                drives: vec![
                    drive(0, drive_state::ONLINE, 0, GIB),
                    drive(1, drive_state::ONLINE, 0, GIB),
                    drive(2, drive_state::ONLINE, 1, GIB),
                    drive(3, drive_state::ONLINE, 1, GIB),
                    drive(4, drive_state::REBUILD, 1, GIB),
                    drive(5, drive_state::HOT_SPARE, NO_VOLUME, GIB),
                    drive(6, drive_state::UNCONFIGURED_GOOD, NO_VOLUME, GIB),
                    drive(7, drive_state::UNCONFIGURED_GOOD, NO_VOLUME, GIB / 2),
                ],
                events: vec![
                    event(1, ev::DRIVE_FAILED, 1, 4, 0),
                    event(2, ev::VOLUME_DEGRADED, 1, NO_VOLUME, 0),
                    event(3, ev::REBUILD_STARTED, 1, 4, 0),
                ],
                later: VecDeque::new(),
                create_status: status::OK,
                reject_config: false,
                asyncs: VecDeque::new(),
                ready: Vec::new(),
                next_ticket: 1,
                requests: Vec::new(),
            }
        }

        fn answer(&mut self, input: &[u8], out: &mut [u8]) -> usize {
            let req = match decode_request(input) {
                Ok(req) => req,
                // Refused by name, as the driver does: the header's command and sequence.
                Err(e) => {
                    let cmd = u16::from_le_bytes([input[6], input[7]]);
                    let seq = u32::from_le_bytes([input[12], input[13], input[14], input[15]]);
                    return encode_response(out, cmd, seq, e.status(), &[]).unwrap();
                }
            };
            let (cmd, seq) = (req.body.command(), req.sequence);
            self.requests.push(cmd);
            let ok = |out: &mut [u8], payload: &[u8]| {
                encode_response(out, cmd, seq, status::OK, payload).unwrap()
            };
            let fail = |out: &mut [u8], s: u32| encode_response(out, cmd, seq, s, &[]).unwrap();
            if self.stage < 3 && !matches!(req.body, Body::StageGet) {
                return fail(out, status::NOT_READY);
            }
            if self.reject_config && req.body.is_destructive() {
                return fail(out, status::REJECTED);
            }
            match req.body {
                Body::ControllerShow => {
                    let info = ControllerInfo {
                        max_commands: U32::new(128),
                        max_targets: U32::new(128),
                        drives: U32::new(self.drives.len() as u32),
                        volumes: U32::new(self.volumes.len() as u32),
                        stage: U32::new(self.stage),
                        firmware_version: *b"FW 1.2.3\0\0\0\0\0\0\0\0",
                        serial: *b"DKR-0001\0\0\0\0\0\0\0\0",
                        driver_version: *b"0.1.0\0\0\0\0\0\0\0\0\0\0\0",
                        ..Default::default()
                    };
                    ok(out, info.as_bytes())
                }
                Body::StageGet => ok(out, StageInfo { stage: U32::new(self.stage) }.as_bytes()),
                Body::VolumeList => encode_list(out, cmd, seq, &self.volumes).unwrap(),
                Body::DriveList => encode_list(out, cmd, seq, &self.drives).unwrap(),
                Body::VolumeShow(r) => match self.volumes.iter().find(|v| v.id == r.volume) {
                    Some(v) => ok(out, v.as_bytes()),
                    None => fail(out, status::NOT_FOUND),
                },
                Body::DriveShow(r) => match self.drives.iter().find(|d| d.id == r.drive) {
                    Some(d) => ok(out, d.as_bytes()),
                    None => fail(out, status::NOT_FOUND),
                },
                Body::EventsSince(p) => {
                    let after: Vec<EventEntry> = self
                        .events
                        .iter()
                        .filter(|e| e.sequence.get() > p.sequence.get())
                        .copied()
                        .collect();
                    encode_list(out, cmd, seq, &after).unwrap()
                }
                Body::IoStats(_) => {
                    let mut s = IoStats { reads: U64::new(10), ..Default::default() };
                    s.latency_us_log2[3] = U64::new(10);
                    ok(out, s.as_bytes())
                }
                Body::VolumeCreate(c) => {
                    if self.create_status != status::OK {
                        return fail(out, self.create_status);
                    }
                    let mut bits = 0u64;
                    for d in &c.drives[..usize::from(c.drive_count)] {
                        bits |= 1 << d.get();
                    }
                    let v = VolumeEntry {
                        id: U16::new(2),
                        level: c.level,
                        block_size: c.block_size,
                        capacity_blocks: U64::new(1024),
                        strip_kib: c.strip_kib,
                        drive_count: c.drive_count,
                        drives: U64::new(bits),
                        ..Default::default()
                    };
                    ok(out, v.as_bytes())
                }
                Body::VolumeDelete(r) if r.volume.get() > 1 => fail(out, status::NOT_FOUND),
                _ => ok(out, &[]),
            }
        }
    }

    impl Transport for Driver {
        fn open(&mut self) -> Result<()> {
            Ok(())
        }
        fn call(
            &mut self,
            sel: u32,
            scalars_in: &[u64],
            struct_in: &[u8],
            _cap: usize,
            _scap: usize,
            _is_async: bool,
        ) -> Result<CallReply> {
            let reply = |kern_return, scalars_out, struct_out| CallReply {
                kern_return,
                scalars_out,
                struct_out,
            };
            Ok(match sel {
                selector::SUBMIT => {
                    let mut out = vec![0u8; 4096];
                    let n = self.answer(struct_in, &mut out);
                    out.truncate(n);
                    let ticket = self.next_ticket;
                    self.next_ticket += 1;
                    self.ready.push((ticket, out));
                    self.asyncs.push_back(AsyncMessage { status: 0, args: vec![ticket, n as u64] });
                    reply(0, vec![ticket], vec![])
                }
                selector::FETCH => match self.ready.iter().position(|r| r.0 == scalars_in[0]) {
                    Some(i) => reply(0, vec![], self.ready.remove(i).1),
                    None => reply(IOReturn::kIOReturnNotFound.0, vec![], vec![]),
                },
                selector::WATCH_EVENTS => {
                    let newest = self.events.last().map_or(0, |e| e.sequence.get());
                    reply(0, vec![newest], vec![])
                }
                _ => reply(IOReturn::kIOReturnBadArgument.0, vec![], vec![]),
            })
        }
        fn wait_async(&mut self, _timeout: Duration) -> Result<Option<AsyncMessage>> {
            if let Some(m) = self.asyncs.pop_front() {
                return Ok(Some(m));
            }
            match self.later.pop_front() {
                Some(batch) => {
                    self.events.extend(batch);
                    let newest = self.events.last().map_or(0, |e| e.sequence.get());
                    Ok(Some(AsyncMessage { status: 0, args: vec![newest] }))
                }
                None => Err(Error::protocol("the test driver has nothing more to say")),
            }
        }
    }

    fn run_with(driver: Driver, line: &str) -> (Result<()>, String, Driver) {
        let Ok(Parsed::Run(inv)) = parse(line.split_whitespace()) else {
            panic!("{line} does not parse")
        };
        let mut client = Client::new(driver);
        let mut out = Vec::new();
        let r = execute(&mut client, &inv.command, inv.json, &mut out);
        let driver = std::mem::replace(client.transport_mut(), Driver::new());
        (r, String::from_utf8(out).unwrap(), driver)
    }

    fn text(line: &str) -> String {
        let (r, out, _) = run_with(Driver::new(), line);
        r.unwrap_or_else(|e| panic!("{line}: {e}"));
        out
    }

    fn json_of(line: &str) -> Value {
        serde_json::from_str(&text(line)).unwrap()
    }

    #[test]
    fn controller_show() {
        let out = text("/c0 show");
        assert!(out.contains("Bring-up Stage    full (3)"), "{out}");
        assert!(out.contains("Serial Number     DKR-0001"), "{out}");
        let j = json_of("/c0 show J");
        assert_eq!(j["controller"]["stage_name"], "full");
        assert_eq!(j["controller"]["drives"], 8);
        let out = text("/c0 show all");
        for needle in ["Volumes (2):", "Drives (8):", "I/O statistics", "4-8 us", "RAID5"] {
            assert!(out.contains(needle), "{needle}: {out}");
        }
        let j = json_of("/c0 show all J");
        assert_eq!(j["volumes"].as_array().unwrap().len(), 2);
        assert_eq!(j["drives"].as_array().unwrap().len(), 8);
        assert_eq!(j["io_stats"]["reads"], 10);
    }

    #[test]
    fn volumes_and_drives() {
        let out = text("/c0/vall show");
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("VD  TYPE"), "{out}");
        assert!(lines[2].starts_with("0   RAID1  Optl   1.000 GiB"), "{out}");
        assert!(lines[3].contains("Rbld") && lines[3].contains("2-4") && lines[3].ends_with("42%"));
        let j = json_of("/c0/v1 show all J");
        assert_eq!(j["volume"]["drives"], json!([2, 3, 4]));
        let ids: Vec<u64> =
            j["drives"].as_array().unwrap().iter().map(|d| d["id"].as_u64().unwrap()).collect();
        assert_eq!(ids, [2, 3, 4]);
        assert_eq!(j["io_stats"]["latency_us_log2"][3], 10);
        let out = text("/c0/v1 show all");
        assert!(out.contains("Drives of volume 1:") && out.contains("0:4"), "{out}");
        let out = text("/c0/eall/sall show");
        assert!(out.contains("0:5      5    GHS"), "{out}");
        assert!(out.contains("0:7      7    UGood  -   512.000 MiB"), "{out}");
        let j = json_of("/c0/e0/s5 show J");
        assert_eq!(j["drive"]["spare"], "global");
        let out = text("/c0/eall/sall show rebuild");
        assert!(out.lines().nth(2).unwrap().starts_with("0:4      4    1   42"), "{out}");
        let j = json_of("/c0/eall/sall show rebuild J");
        assert_eq!(j["rebuilds"], json!([{ "drive": 4, "volume": 1, "percent": 42 }]));
        assert_eq!(text("/c0/s6 show rebuild"), "Drive 6 is not being rebuilt.\n");
    }

    #[test]
    fn configuration_commands() {
        let out = text("/c0 add vd type=raid1 drives=6-7 strip=128");
        assert!(out.starts_with("Volume 2 created.\n"), "{out}");
        assert!(out.contains("RAID1") && out.contains("128 KiB") && out.contains("6-7"), "{out}");
        let j = json_of("/c0 add vd type=raid1 drives=6-7 J");
        assert_eq!(j["created"]["drives"], json!([6, 7]));
        assert_eq!(text("/c0/v1 del"), "Volume 1 deleted.\n");
        assert_eq!(json_of("/c0/v1 del J"), json!({ "deleted": { "volume": 1 } }));
        assert_eq!(text("/c0/s6 set hotspare"), "Drive 6 is now a global hot spare.\n");
        assert_eq!(
            text("/c0/s6 set hotspare dgs=1"),
            "Drive 6 is now a dedicated hot spare of volume 1.\n"
        );
        assert_eq!(
            json_of("/c0/s6 set hotspare dgs=1 J"),
            json!({ "hotspare": { "action": "set", "drive": 6, "volume": 1 } })
        );
        assert_eq!(text("/c0/s5 delete hotspare"), "Drive 5 is no longer a hot spare.\n");
        assert!(
            text("/c0/v1 start rebuild drive=6").starts_with("Rebuild of volume 1 onto drive 6")
        );
        let (_, _, d) = run_with(Driver::new(), "/c0/v1 start rebuild drive=6");
        assert_eq!(d.requests, [dkraid_core::admin::command::REBUILD_START]);
    }

    #[test]
    fn events() {
        let out = text("/c0 show events");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "Seq  Event            VD  DID  Percent");
        assert_eq!(lines[2], "1    Drive failed     1   4    -");
        assert_eq!(lines[3], "2    Volume degraded  1   -    -");
        assert_eq!(text("/c0 show events since=3"), "No events after sequence 3.\n");
        let j = json_of("/c0 show events since=1 J");
        assert_eq!(j["newest"], 3);
        assert_eq!(j["events"][0]["event"], "volume-degraded");
        assert_eq!(j["events"][1]["percent"], 0);
    }

    #[test]
    fn follow_until_an_event() {
        use dkraid_core::admin::wire::event as ev;
        let mut d = Driver::new();
        d.later.push_back(vec![event(4, ev::REBUILD_PROGRESS, 1, 4, 50)]);
        d.later.push_back(vec![
            event(5, ev::REBUILD_PROGRESS, 1, 4, 100),
            event(6, ev::REBUILD_FINISHED, 1, 4, 100),
            event(7, ev::SPARE_ACTIVE, 1, 5, 0),
        ]);
        let (r, out, _) = run_with(d, "/c0 show events since=2 --follow --until=rebuild-finished");
        r.unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2 + 4, "{out}");
        assert!(lines[2].starts_with("3 ") && lines[2].contains("Rebuild started"), "{out}");
        assert!(lines[3].contains("Rebuild progress") && lines[3].ends_with("50%"), "{out}");
        assert!(lines[5].starts_with("6 ") && lines[5].contains("Rebuild finished"), "{out}");
        // JSON: one object per line.
        let mut d = Driver::new();
        d.later.push_back(vec![event(4, ev::REBUILD_FINISHED, 1, 4, 100)]);
        let (r, out, _) = run_with(d, "/c0 show events --follow --until=rebuild-finished J");
        r.unwrap();
        let seqs: Vec<u64> = out
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["sequence"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        // An event already in the log stops it at once.
        let (r, out, _) = run_with(Driver::new(), "/c0 show events --until=drive-failed J");
        r.unwrap();
        assert_eq!(out.lines().count(), 1);
    }

    #[test]
    fn create_failures_name_the_drives() {
        let mut d = Driver::new();
        d.create_status = status::REJECTED;
        let (r, _, _) = run_with(d, "/c0 add vd type=raid5 drives=3,5-6,9");
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Rejected);
        assert_eq!(e.exit_code(), 5);
        assert_eq!(
            e.message,
            "cannot create the RAID5 volume on drives 3,5-6,9: drive 3 is Onln (online) in \
             volume 0; a new volume needs Unconfigured Good drives; drive 5 is GHS (global hot \
             spare); a new volume needs Unconfigured Good drives; drive 9 does not exist (the \
             controller has drives 0-7) (Rejected)"
                .replace("in volume 0", "in volume 1")
        );
        let mut d = Driver::new();
        d.create_status = status::NOT_FOUND;
        let (r, _, _) = run_with(d, "/c0 add vd type=raid1 drives=6-7");
        let e = r.unwrap_err();
        assert!(e.message.contains("drive 7 is too small for this volume (512.000 MiB"), "{e}");
        assert!(e.message.ends_with("(NotFound)"), "{e}");
        let mut d = Driver::new();
        d.create_status = status::DRIVE_COUNT_FOR_LEVEL;
        let (r, _, _) = run_with(d, "/c0 add vd type=raid5 drives=6-7");
        let e = r.unwrap_err();
        assert_eq!(e.exit_code(), 5);
        assert!(e.message.contains("RAID 5 takes at least 3 drives, got 2"), "{e}");
        let mut d = Driver::new();
        d.create_status = status::DRIVE_COUNT_FOR_LEVEL;
        let (r, _, _) = run_with(d, "/c0 add vd type=raid10 drives=0-4");
        assert!(r.unwrap_err().message.contains("RAID 10 takes an even number of drives, got 5"));
        let mut d = Driver::new();
        d.create_status = status::DUPLICATE_DRIVE;
        let (r, _, _) = run_with(d, "/c0 add vd type=raid5 drives=6,7,6");
        assert!(r.unwrap_err().message.contains("drive 6 is listed twice (DuplicateDrive)"));
        let mut d = Driver::new();
        d.create_status = status::FIELD_OUT_OF_RANGE;
        let (r, _, _) = run_with(d, "/c0 add vd type=raid1 drives=6-7 strip=48");
        assert!(r.unwrap_err().message.contains("strip=48 must be a power of two"));
    }

    #[test]
    fn diagnosis_of_single_drives() {
        let spec =
            |drives: Vec<u16>| CreateSpec { level: 1, drives, strip_kib: 64, block_size: 512 };
        let drives = Driver::new().drives;
        assert!(diagnose_create(&spec(vec![6]), &drives).is_empty());
        let mut tiny = drives.clone();
        tiny[6].capacity_bytes = U64::new(4096);
        assert_eq!(
            diagnose_create(&spec(vec![6]), &tiny),
            ["drive 6 is too small (4.000 KiB; one 64 KiB strip does not fit)"]
        );
        let mut dedicated = drives.clone();
        dedicated[5].volume = U16::new(1);
        assert_eq!(
            diagnose_create(&spec(vec![5]), &dedicated),
            ["drive 5 is DHS (dedicated hot spare) for volume 1; a new volume needs \
              Unconfigured Good drives"]
        );
        let mut bad = drives;
        bad[6].state = drive_state::UNCONFIGURED_BAD;
        assert_eq!(
            diagnose_create(&spec(vec![6, 6]), &bad),
            ["drive 6 is UBad (unconfigured bad); a new volume needs Unconfigured Good drives"]
        );
    }

    #[test]
    fn rejections_are_explained() {
        let rejecting = || {
            let mut d = Driver::new();
            d.reject_config = true;
            d
        };
        let cases = [
            (
                "/c0/s2 set hotspare",
                "cannot make drive 2 a hot spare: drive 2 is Onln (online) in volume 1; a spare \
                 must be Unconfigured Good (Rejected)",
            ),
            ("/c0/s6 delete hotspare", "drive 6 is not a hot spare: drive 6 is UGood"),
            (
                "/c0/v0 start rebuild drive=6",
                "cannot start a rebuild of volume 0: it is Optl (optimal)",
            ),
            ("/c0/v1 del", "cannot delete volume 1 while it rebuilds (42%)"),
        ];
        for (line, needle) in cases {
            let (r, _, _) = run_with(rejecting(), line);
            let e = r.unwrap_err();
            assert_eq!(e.exit_code(), 5, "{line}");
            assert!(e.message.contains(needle), "{line}: {e}");
        }
        let mut d = rejecting();
        d.volumes[0].state = volume_state::DEGRADED;
        let (r, _, _) = run_with(d, "/c0/v0 start rebuild drive=3");
        let e = r.unwrap_err();
        assert!(
            e.message.contains(
                "cannot rebuild volume 0 onto drive 3: drive 3 is Onln (online) in volume 1"
            ),
            "{e}"
        );
        // Nothing to explain: the controller's word stands.
        let mut d = rejecting();
        d.volumes[0].state = volume_state::DEGRADED;
        let (r, _, _) = run_with(d, "/c0/v0 start rebuild drive=6");
        assert_eq!(r.unwrap_err().message, "the controller refused REBUILD_START (Rejected)");
    }

    #[test]
    fn not_found_and_not_ready_are_specific() {
        let (r, _, _) = run_with(Driver::new(), "/c0/v7 show");
        let e = r.unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::Rejected, "volume 7 does not exist (see /c0/vall show) (NotFound)")
        );
        let (r, _, _) = run_with(Driver::new(), "/c0/e0/s9 show");
        assert!(r.unwrap_err().message.starts_with("drive 9 does not exist"));
        let mut d = Driver::new();
        d.stage = 2;
        let (r, _, _) = run_with(d, "/c0 show");
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Busy);
        assert_eq!(e.exit_code(), 6);
        assert!(e.message.contains("bring-up stage single-io (2)"), "{e}");
    }
}
