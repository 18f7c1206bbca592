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
        self.w
            .write_all(s.as_bytes())
            .and_then(|()| self.w.flush())
            .map_err(|e| Error::protocol(format!("writing the output failed: {e}")))
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
                     which has no controller to ask; admin commands need stage full (3) \
                     (NotReady)",
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
        _ => {}
    }
    e
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
