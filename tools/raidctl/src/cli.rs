//! The command line, StorCLI style:
//! `raidctl [--socket PATH] [--json] [--unentitled | --team-id ID] <object-path> <verb...> [J]`.
//! Parsed by hand: the grammar (an object path, then verb words and `key=value` pairs, then an
//! optional `J`) is StorCLI's, not a conventional flag syntax.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::render::{event_code, EVENTS};

/// The objects that exist, for error messages.
pub const VALID_PATHS: &str =
    "/c0, /c0/vall, /c0/vN, /c0/eall/sall, /c0/e0/sall, /c0/eall/sN, /c0/e0/sN, /c0/sN";

/// The most drives a volume takes.
pub const MAX_DRIVES: usize = dkraid_core::admin::wire::MAX_VOLUME_DRIVES;

/// Default strip size in KiB.
pub const DEFAULT_STRIP_KIB: u32 = 64;
/// Default logical block size in bytes.
pub const DEFAULT_BLOCK_SIZE: u32 = 512;

/// The usage text (`raidctl --help`).
pub const HELP: &str = "\
raidctl — dkraid's RAID admin tool (StorCLI vocabulary)

usage: raidctl [--socket PATH] [--json] [--unentitled | --team-id ID] <object-path> <verb...> [J]

objects and verbs:
  /c0 show                          the controller and its bring-up stage
  /c0 show all                      ... plus every volume, drive and the I/O statistics
  /c0 show events [since=N]         the event log (after sequence N)
      [--follow] [--until=EVENT]    keep printing new events (until EVENT has been printed)
  /c0 add vd type=raid0|raid1|raid5|raid10 drives=0-4|0,2,4-6 [strip=64] [blocksize=512|4096]
  /c0/vall show [all]               every volume
  /c0/vN show [all]                 one volume (all: its drives and I/O statistics)
  /c0/vN del                        delete a volume
  /c0/vN start rebuild drive=N      rebuild volume N onto drive N
  /c0/eall/sall show                every drive (enclosure e0 or eall; slot = drive ID)
  /c0/e0/sN show                    one drive
  /c0/eall/sall show rebuild        the drives being rebuilt, with progress
  /c0/sN set hotspare [dgs=V]       make drive N a global spare (dgs: dedicated to volume V)
  /c0/sN delete hotspare            make it Unconfigured Good again

options:
  --socket PATH   talk to the test-bed (`dkraid-sim serve --socket PATH`) instead of the
                  driver (macOS: IOKit)
  --json, J       JSON instead of tables (--follow: one JSON object per line)
  --unentitled    (--socket) connect without any entitlement, as an unsigned copy would
  --team-id ID    (--socket) connect as a copy signed by team ID (10 characters A-Z, 0-9;
                  default DKRAIDTEAM, the test-bed's DEVELOPMENT_TEAM): destructive commands
                  need org.dkraid.admin.configure AND the driver's own team
  -h, --help      this text;   -V, --version   the version

event names (--until): drive-failed, volume-degraded, rebuild-started, rebuild-progress,
  rebuild-finished, volume-created, volume-deleted, volume-offline, spare-active,
  hot-spare-added, hot-spare-removed, volume-optimal, rebuild-aborted, media-error-corrected,
  media-error-unrecovered, rebuild-puncture

exit codes:
  0 ok
  2 usage: an invalid path, verb or value
  3 no test-bed server at the socket, or the driver is not loaded
  4 permission denied: the command needs the entitlement org.dkraid.admin.configure and a
    binary signed by the driver's team
  5 the controller refused the command (no such volume or drive, drive in use, bad level...)
  6 busy or not ready: try again
  7 protocol or transport error (a response that does not parse, a broken socket, a timeout)
";

/// A RAID level for `add vd`.
pub const LEVELS: [(&str, u8); 4] = [("raid0", 0), ("raid1", 1), ("raid5", 5), ("raid10", 10)];

/// `add vd`'s parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateSpec {
    pub level: u8,
    pub drives: Vec<u16>,
    pub strip_kib: u32,
    pub block_size: u32,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `/c0 show [all]`.
    ControllerShow { all: bool },
    /// `/c0 show events [since=N] [--follow] [--until=EVENT]`.
    Events { since: u64, follow: bool, until: Option<u16> },
    /// `/c0 add vd ...`.
    VolumeCreate(CreateSpec),
    /// `/c0/vall show [all]`.
    VolumesShow { all: bool },
    /// `/c0/vN show [all]`.
    VolumeShow { volume: u16, all: bool },
    /// `/c0/vN del`.
    VolumeDelete { volume: u16 },
    /// `/c0/vN start rebuild drive=N`.
    RebuildStart { volume: u16, drive: u16 },
    /// `/c0/eall/sall show`, `/c0/e0/sN show` (`None`: every drive).
    DrivesShow { drive: Option<u16> },
    /// `/c0/eall/sall show rebuild`.
    RebuildShow { drive: Option<u16> },
    /// `/c0/sN set hotspare [dgs=V]` (`volume` `None`: global).
    HotspareSet { drive: u16, volume: Option<u16> },
    /// `/c0/sN delete hotspare`.
    HotspareDelete { drive: u16 },
}

impl Command {
    /// Whether the command changes the configuration (needs the admin entitlement).
    pub const fn is_destructive(&self) -> bool {
        matches!(
            self,
            Command::VolumeCreate(_)
                | Command::VolumeDelete { .. }
                | Command::RebuildStart { .. }
                | Command::HotspareSet { .. }
                | Command::HotspareDelete { .. }
        )
    }
}

/// A whole command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    pub socket: Option<PathBuf>,
    pub json: bool,
    pub unentitled: bool,
    /// (--socket) the team the modelled binary is signed by; None: the default team.
    pub team_id: Option<String>,
    pub command: Command,
}

/// The result of parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    Help,
    Version,
    Run(Invocation),
}

/// The object a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Object {
    Controller,
    AllVolumes,
    Volume(u16),
    /// `None`: every drive.
    Drives(Option<u16>),
}

impl Object {
    fn valid_verbs(self) -> &'static str {
        match self {
            Object::Controller => {
                "show, show all, show events [since=N] [--follow] [--until=EVENT], \
                 add vd type=raidL drives=LIST [strip=KiB] [blocksize=512|4096]"
            }
            Object::AllVolumes => "show, show all",
            Object::Volume(_) => "show, show all, del, start rebuild drive=N",
            Object::Drives(None) => "show, show rebuild",
            Object::Drives(Some(_)) => {
                "show, show rebuild, set hotspare, set hotspare dgs=N, delete hotspare"
            }
        }
    }
}

fn invalid_path(path: &str, why: &str) -> Error {
    Error::usage(format!("invalid path \"{path}\": {why}; valid objects: {VALID_PATHS}"))
}

fn number<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `N`, or `all` (`None`), after the prefix letter.
fn id_or_all(segment: &str, letter: char) -> Option<Option<u16>> {
    let rest = segment.strip_prefix(letter)?;
    if rest == "all" {
        Some(None)
    } else {
        number::<u16>(rest).map(Some)
    }
}

fn parse_path(path: &str) -> Result<Object> {
    let lower = path.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix('/') else {
        return Err(invalid_path(path, "an object path starts with /c0"));
    };
    let segs: Vec<&str> = rest.split('/').collect();
    let controller = segs[0];
    match controller.strip_prefix('c').and_then(number::<u32>) {
        Some(0) => {}
        Some(n) => {
            return Err(invalid_path(path, &format!("controller {n} does not exist, only /c0")))
        }
        None => return Err(invalid_path(path, "an object path starts with /c0")),
    }
    let bad = || invalid_path(path, "no such object");
    match &segs[1..] {
        [] => Ok(Object::Controller),
        [v] if v.starts_with('v') => match id_or_all(v, 'v').ok_or_else(bad)? {
            None => Ok(Object::AllVolumes),
            Some(n) => Ok(Object::Volume(n)),
        },
        [s] if s.starts_with('s') => Ok(Object::Drives(id_or_all(s, 's').ok_or_else(bad)?)),
        [e, s] if e.starts_with('e') => {
            match id_or_all(e, 'e').ok_or_else(bad)? {
                None | Some(0) => {}
                Some(n) => {
                    return Err(invalid_path(
                        path,
                        &format!("enclosure {n} does not exist, only e0 (or eall)"),
                    ))
                }
            }
            Ok(Object::Drives(id_or_all(s, 's').ok_or_else(bad)?))
        }
        _ => Err(bad()),
    }
}

/// Parses `0-4`, `0,2,4-6`: the drives in the order given (duplicates are kept for the
/// controller to refuse, by name).
pub fn parse_drive_list(text: &str) -> Result<Vec<u16>> {
    let bad = |why: String| Error::usage(format!("invalid drives={text}: {why}"));
    if text.is_empty() {
        return Err(bad("no drives (e.g. drives=0-4 or drives=0,2,4-6)".into()));
    }
    let mut out = Vec::new();
    for item in text.split(',') {
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (a, b),
            None => (item, item),
        };
        let (Some(lo), Some(hi)) = (number::<u16>(lo), number::<u16>(hi)) else {
            return Err(bad(format!(
                "\"{item}\" is not a drive ID or a range A-B of drive IDs (0..=63)"
            )));
        };
        if lo > hi {
            return Err(bad(format!("the range {item} runs backwards")));
        }
        if usize::from(hi - lo) + 1 + out.len() > MAX_DRIVES {
            return Err(bad(format!("a volume takes at most {MAX_DRIVES} drives")));
        }
        out.extend(lo..=hi);
    }
    Ok(out)
}

/// Splits `key=value` (the key lowercased).
fn key_value(word: &str) -> Option<(String, &str)> {
    let (k, v) = word.split_once('=')?;
    Some((k.to_ascii_lowercase(), v))
}

fn parse_number<T: std::str::FromStr>(key: &str, value: &str, what: &str) -> Result<T> {
    number(value).ok_or_else(|| Error::usage(format!("invalid {key}={value}: expected {what}")))
}

fn parse_create(path: &str, words: &[String]) -> Result<CreateSpec> {
    let mut level = None;
    let mut drives = None;
    let mut strip_kib = DEFAULT_STRIP_KIB;
    let mut block_size = DEFAULT_BLOCK_SIZE;
    let keys = "type=raid0|raid1|raid5|raid10, drives=LIST, strip=KiB, blocksize=512|4096";
    for w in words {
        let Some((key, value)) = key_value(w) else {
            return Err(Error::usage(format!(
                "invalid argument \"{w}\" for {path} add vd; valid: {keys}"
            )));
        };
        match key.as_str() {
            "type" => {
                let v = value.to_ascii_lowercase();
                let Some(&(_, l)) = LEVELS.iter().find(|(name, _)| *name == v) else {
                    return Err(Error::usage(format!(
                        "invalid type={value}; valid: raid0, raid1, raid5, raid10"
                    )));
                };
                level = Some(l);
            }
            "drives" => drives = Some(parse_drive_list(value)?),
            "strip" => {
                let v = value.to_ascii_lowercase();
                let digits = v.trim_end_matches("kib").trim_end_matches("kb").trim_end_matches('k');
                strip_kib = parse_number("strip", digits, "a strip size in KiB (e.g. strip=64)")
                    .map_err(|_| {
                        Error::usage(format!(
                            "invalid strip={value}: expected a strip size in KiB (e.g. strip=64)"
                        ))
                    })?;
            }
            "blocksize" => {
                block_size = parse_number("blocksize", value, "512 or 4096")?;
            }
            _ => {
                return Err(Error::usage(format!(
                    "invalid argument \"{w}\" for {path} add vd; valid: {keys}"
                )))
            }
        }
    }
    let Some(level) = level else {
        return Err(Error::usage(format!("{path} add vd needs type=raid0|raid1|raid5|raid10")));
    };
    let Some(drives) = drives else {
        return Err(Error::usage(format!("{path} add vd needs drives=LIST (e.g. drives=0-4)")));
    };
    Ok(CreateSpec { level, drives, strip_kib, block_size })
}

/// Options that apply to `show events` only.
#[derive(Default)]
struct EventOptions {
    follow: bool,
    until: Option<u16>,
}

fn parse_command(path: &str, words: &[String], ev: &EventOptions) -> Result<Command> {
    let object = parse_path(path)?;
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let v: Vec<&str> = lower.iter().map(String::as_str).collect();
    let invalid = || {
        if words.is_empty() {
            Error::usage(format!("missing verb for {path}; valid: {}", object.valid_verbs()))
        } else {
            Error::usage(format!(
                "invalid verb \"{}\" for {path}; valid: {}",
                words.join(" "),
                object.valid_verbs()
            ))
        }
    };
    let number_arg = |word: &str, key: &str, what: &str| -> Result<Option<u64>> {
        match key_value(word) {
            Some((k, value)) if k == key => parse_number(key, value, what).map(Some),
            _ => Ok(None),
        }
    };
    let command = match (object, v.as_slice()) {
        (Object::Controller, ["show"]) => Command::ControllerShow { all: false },
        (Object::Controller, ["show", "all"]) => Command::ControllerShow { all: true },
        (Object::Controller, ["show", "events", rest @ ..]) => {
            let since = match rest {
                [] => 0,
                [w] => number_arg(w, "since", "an event sequence number")?.ok_or_else(invalid)?,
                _ => return Err(invalid()),
            };
            return Ok(Command::Events { since, follow: ev.follow, until: ev.until });
        }
        (Object::Controller, ["add", "vd", ..]) => {
            Command::VolumeCreate(parse_create(path, &words[2..])?)
        }
        (Object::AllVolumes, ["show"]) => Command::VolumesShow { all: false },
        (Object::AllVolumes, ["show", "all"]) => Command::VolumesShow { all: true },
        (Object::Volume(volume), ["show"]) => Command::VolumeShow { volume, all: false },
        (Object::Volume(volume), ["show", "all"]) => Command::VolumeShow { volume, all: true },
        (Object::Volume(volume), ["del"] | ["delete"]) => Command::VolumeDelete { volume },
        (Object::Volume(volume), ["start", "rebuild", w]) => {
            let drive = number_arg(w, "drive", "a drive ID")?.ok_or_else(invalid)?;
            let drive = u16::try_from(drive)
                .map_err(|_| Error::usage(format!("invalid {w}: drive IDs are 0..=63")))?;
            Command::RebuildStart { volume, drive }
        }
        (Object::Volume(_), ["start", "rebuild"]) => {
            return Err(Error::usage(format!(
                "{path} start rebuild needs drive=N (the drive to rebuild onto)"
            )))
        }
        (Object::Drives(drive), ["show"]) => Command::DrivesShow { drive },
        (Object::Drives(drive), ["show", "rebuild"]) => Command::RebuildShow { drive },
        (Object::Drives(Some(drive)), ["set", "hotspare"]) => {
            Command::HotspareSet { drive, volume: None }
        }
        (Object::Drives(Some(drive)), ["set", "hotspare", w]) => {
            let vol = number_arg(w, "dgs", "a volume ID")?.ok_or_else(invalid)?;
            let vol = u16::try_from(vol)
                .map_err(|_| Error::usage(format!("invalid {w}: volume IDs are 0..=127")))?;
            Command::HotspareSet { drive, volume: Some(vol) }
        }
        (Object::Drives(Some(drive)), ["delete" | "del", "hotspare"]) => {
            Command::HotspareDelete { drive }
        }
        (Object::Drives(None), ["set" | "delete" | "del", "hotspare", ..]) => {
            return Err(Error::usage(format!(
                "{path} names every drive; a hot spare is one drive, e.g. /c0/s5 {}",
                words.join(" ")
            )))
        }
        _ => return Err(invalid()),
    };
    if ev.follow || ev.until.is_some() {
        return Err(Error::usage("--follow and --until apply to /c0 show events only"));
    }
    Ok(command)
}

/// Parses the arguments after the program name.
pub fn parse<I, S>(args: I) -> Result<Parsed>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut socket = None;
    let mut json = false;
    let mut unentitled = false;
    let mut team_id = None;
    let mut ev = EventOptions::default();
    let mut positional: Vec<String> = Vec::new();
    let mut args = args.into_iter().map(Into::into);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match name.as_str() {
            "-h" | "--help" | "help" if positional.is_empty() || name != "help" => {
                return Ok(Parsed::Help)
            }
            "-V" | "--version" => return Ok(Parsed::Version),
            "--json" => json = true,
            "--unentitled" => unentitled = true,
            "--follow" => ev.follow = true,
            "--socket" | "--until" | "--team-id" => {
                let value = match inline {
                    Some(v) => v,
                    None => {
                        args.next().ok_or_else(|| Error::usage(format!("{name} needs a value")))?
                    }
                };
                if name == "--team-id" {
                    if !is_team_identifier(&value) {
                        return Err(Error::usage(format!(
                            "invalid --team-id {value:?}: a team identifier is 10 characters \
                             of A-Z and 0-9"
                        )));
                    }
                    team_id = Some(value);
                } else if name == "--socket" {
                    if value.is_empty() {
                        return Err(Error::usage("--socket needs a path"));
                    }
                    socket = Some(PathBuf::from(value));
                } else {
                    let code = event_code(&value).ok_or_else(|| {
                        let names: Vec<&str> = EVENTS.iter().map(|e| e.1).collect();
                        Error::usage(format!(
                            "invalid --until={value}; valid events: {}",
                            names.join(", ")
                        ))
                    })?;
                    ev.until = Some(code);
                    ev.follow = true;
                }
            }
            n if n.starts_with('-')
                && n.len() > 1
                && !n[1..].starts_with(|c: char| c.is_ascii_digit()) =>
            {
                return Err(Error::usage(format!(
                    "unknown option {arg}; valid: --socket PATH, --json, --unentitled, \
                     --team-id ID, --follow, --until=EVENT, --help, --version"
                )))
            }
            _ => positional.push(arg),
        }
    }
    if positional.last().is_some_and(|w| w == "J" || w == "j") && positional.len() > 1 {
        positional.pop();
        json = true;
    }
    let Some((path, words)) = positional.split_first() else {
        return Err(Error::usage(format!(
            "missing object path; e.g. raidctl /c0 show (valid objects: {VALID_PATHS}; \
             raidctl --help for more)"
        )));
    };
    if !path.starts_with('/') {
        return Err(invalid_path(path, "an object path starts with /c0"));
    }
    if unentitled && team_id.is_some() {
        return Err(Error::usage(
            "--unentitled and --team-id contradict each other: an unsigned copy has no team",
        ));
    }
    let command = parse_command(path, words, &ev)?;
    Ok(Parsed::Run(Invocation { socket, json, unentitled, team_id, command }))
}

/// Apple team identifiers: 10 characters of A-Z and 0-9.
pub fn is_team_identifier(id: &str) -> bool {
    id.len() == 10 && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn run(line: &str) -> Invocation {
        match parse(line.split_whitespace()) {
            Ok(Parsed::Run(inv)) => inv,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn cmd(line: &str) -> Command {
        run(line).command
    }

    fn err(line: &str) -> Error {
        match parse(line.split_whitespace()) {
            Err(e) => e,
            Ok(p) => panic!("{line} parsed: {p:?}"),
        }
    }

    #[test]
    fn every_form_parses() {
        use Command::*;
        assert_eq!(cmd("/c0 show"), ControllerShow { all: false });
        assert_eq!(cmd("/c0 show all"), ControllerShow { all: true });
        assert_eq!(cmd("/c0/vall show"), VolumesShow { all: false });
        assert_eq!(cmd("/c0/vall show all"), VolumesShow { all: true });
        assert_eq!(cmd("/c0/v0 show"), VolumeShow { volume: 0, all: false });
        assert_eq!(cmd("/c0/v0 show all"), VolumeShow { volume: 0, all: true });
        assert_eq!(cmd("/c0/eall/sall show"), DrivesShow { drive: None });
        assert_eq!(cmd("/c0/e0/s3 show"), DrivesShow { drive: Some(3) });
        assert_eq!(cmd("/c0/eall/s3 show"), DrivesShow { drive: Some(3) });
        assert_eq!(cmd("/c0/e0/sall show"), DrivesShow { drive: None });
        assert_eq!(cmd("/c0/s3 show"), DrivesShow { drive: Some(3) });
        assert_eq!(
            cmd("/c0 add vd type=raid5 drives=0-4"),
            VolumeCreate(CreateSpec {
                level: 5,
                drives: vec![0, 1, 2, 3, 4],
                strip_kib: 64,
                block_size: 512
            })
        );
        assert_eq!(
            cmd("/c0 add vd type=RAID10 drives=0,2,4-6 strip=128 blocksize=4096"),
            VolumeCreate(CreateSpec {
                level: 10,
                drives: vec![0, 2, 4, 5, 6],
                strip_kib: 128,
                block_size: 4096
            })
        );
        for (t, l) in [("raid0", 0), ("raid1", 1)] {
            let VolumeCreate(spec) = cmd(&format!("/c0 add vd type={t} drives=1 strip=64k")) else {
                panic!()
            };
            assert_eq!((spec.level, spec.strip_kib), (l, 64));
        }
        assert_eq!(cmd("/c0/v1 del"), VolumeDelete { volume: 1 });
        assert_eq!(cmd("/c0/s5 set hotspare"), HotspareSet { drive: 5, volume: None });
        assert_eq!(cmd("/c0/s5 set hotspare dgs=1"), HotspareSet { drive: 5, volume: Some(1) });
        assert_eq!(cmd("/c0/e0/s5 set hotspare"), HotspareSet { drive: 5, volume: None });
        assert_eq!(cmd("/c0/s5 delete hotspare"), HotspareDelete { drive: 5 });
        assert_eq!(cmd("/c0/v1 start rebuild drive=5"), RebuildStart { volume: 1, drive: 5 });
        assert_eq!(cmd("/c0/eall/sall show rebuild"), RebuildShow { drive: None });
        assert_eq!(cmd("/c0 show events"), Events { since: 0, follow: false, until: None });
        assert_eq!(
            cmd("/c0 show events since=12"),
            Events { since: 12, follow: false, until: None }
        );
        assert_eq!(cmd("/c0 show events --follow"), Events { since: 0, follow: true, until: None });
        assert_eq!(
            cmd("/c0 show events since=3 --follow --until=rebuild-finished"),
            Events { since: 3, follow: true, until: Some(5) }
        );
        assert_eq!(
            cmd("--until spare-active /c0 show events"),
            Events { since: 0, follow: true, until: Some(9) }
        );
        // Case does not matter, as in StorCLI.
        assert_eq!(cmd("/C0/V2 SHOW ALL"), VolumeShow { volume: 2, all: true });
    }

    #[test]
    fn options_and_json() {
        let inv = run("--socket /tmp/s /c0 show J");
        assert_eq!(inv.socket, Some(PathBuf::from("/tmp/s")));
        assert!(inv.json);
        assert!(!inv.unentitled);
        let inv = run("/c0/v0 show --json --unentitled --socket=/x");
        assert!(inv.json && inv.unentitled);
        assert_eq!(run("/c0 show --team-id OTHERTEAM1").team_id.as_deref(), Some("OTHERTEAM1"));
        for bad in [
            "--team-id short",
            "--team-id lowercase1",
            "--team-id=",
            "--unentitled --team-id DKRAIDTEAM",
        ] {
            let args: Vec<&str> = bad.split(' ').chain(["/c0", "show"]).collect();
            assert_eq!(parse(args).unwrap_err().kind, ErrorKind::Usage, "{bad}");
        }
        assert_eq!(inv.socket, Some(PathBuf::from("/x")));
        assert!(!run("/c0 show").json);
        assert_eq!(parse(["--help"]).unwrap(), Parsed::Help);
        assert_eq!(parse(["/c0", "-h"]).unwrap(), Parsed::Help);
        assert_eq!(parse(["--version"]).unwrap(), Parsed::Version);
        assert!(cmd("/c0 add vd type=raid1 drives=0-1").is_destructive());
        assert!(!cmd("/c0 show").is_destructive());
    }

    #[test]
    fn usage_errors_name_what_is_valid() {
        let e = err("/c0/v0 shwo");
        assert_eq!(e.kind, ErrorKind::Usage);
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.message,
            "invalid verb \"shwo\" for /c0/v0; valid: show, show all, del, start rebuild drive=N"
        );
        let e = err("/c1 show");
        assert_eq!(e.exit_code(), 2);
        assert!(e.message.contains("controller 1 does not exist"), "{e}");
        assert!(e.message.contains(VALID_PATHS), "{e}");
        for line in [
            "/c0/x show",
            "/c0/v show",
            "/c0/vx show",
            "/c0/e1/s3 show",
            "/c0/e0/s3/x show",
            "/c0/e0 show",
            "c0 show",
            "/c0/v99999 show",
            "/ show",
        ] {
            let e = err(line);
            assert_eq!(e.exit_code(), 2, "{line}");
            assert!(e.message.starts_with("invalid path"), "{line}: {e}");
        }
        let e = err("/c0/e1/s3 show");
        assert!(e.message.contains("enclosure 1 does not exist"), "{e}");
        for (line, needle) in [
            ("/c0", "missing verb for /c0; valid: show, show all"),
            ("/c0 show al", "invalid verb \"show al\" for /c0"),
            ("/c0 show events since=x", "invalid since=x"),
            ("/c0 show events from=3", "invalid verb"),
            ("/c0 show events since=1 since=2", "invalid verb"),
            ("/c0 add vd drives=0-4", "needs type="),
            ("/c0 add vd type=raid5", "needs drives="),
            (
                "/c0 add vd type=raid6 drives=0-4",
                "invalid type=raid6; valid: raid0, raid1, raid5, raid10",
            ),
            ("/c0 add vd type=raid5 drives=0-4 stripe=64", "invalid argument \"stripe=64\""),
            ("/c0 add vd type=raid5 drives=0-4 fast", "invalid argument \"fast\""),
            ("/c0 add vd type=raid5 drives=0-4 strip=big", "invalid strip=big"),
            ("/c0 add vd type=raid5 drives=0-4 blocksize=", "invalid blocksize="),
            ("/c0 add vd type=raid5 drives=4-0", "runs backwards"),
            ("/c0/vall del", "invalid verb \"del\" for /c0/vall; valid: show, show all"),
            ("/c0/v1 start rebuild", "needs drive=N"),
            ("/c0/v1 start rebuild drive=x", "invalid drive=x"),
            ("/c0/v1 start rebuild disk=3", "invalid verb"),
            ("/c0/eall/sall set hotspare", "a hot spare is one drive"),
            ("/c0/s5 set hotspare dgs=", "invalid dgs="),
            ("/c0/s5 set hotspare global", "invalid verb"),
            ("/c0/s5 del", "valid: show, show rebuild, set hotspare"),
            ("/c0 show --follow", "--follow and --until apply to /c0 show events only"),
            (
                "/c0 show events --until=disk-exploded",
                "invalid --until=disk-exploded; valid events: drive-failed",
            ),
            ("/c0 show --bogus", "unknown option --bogus"),
            ("--socket", "--socket needs a value"),
            ("", "missing object path"),
            ("--json", "missing object path"),
            ("show /c0", "invalid path \"show\""),
        ] {
            let e = err(line);
            assert_eq!(e.exit_code(), 2, "{line}");
            assert!(e.message.contains(needle), "{line}: {e}");
        }
    }

    #[test]
    fn drive_lists() {
        assert_eq!(parse_drive_list("0-4").unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(parse_drive_list("0,2,4-6").unwrap(), vec![0, 2, 4, 5, 6]);
        assert_eq!(parse_drive_list("7").unwrap(), vec![7]);
        assert_eq!(parse_drive_list("3-3").unwrap(), vec![3]);
        assert_eq!(parse_drive_list("5,1").unwrap(), vec![5, 1]);
        // Duplicates go to the controller, which names them (DuplicateDrive).
        assert_eq!(parse_drive_list("1,1").unwrap(), vec![1, 1]);
        assert_eq!(parse_drive_list("0-31").unwrap().len(), 32);
        for bad in [
            "", ",", "1,", ",1", "a", "1-", "-1", "4-2", "1-2-3", "0-32", "0-65535", "99999", " 1",
            "+1", "1..3",
        ] {
            let e = parse_drive_list(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
            assert!(e.message.starts_with(&format!("invalid drives={bad}:")), "{bad:?}: {e}");
        }
        assert!(parse_drive_list("4-2").unwrap_err().message.contains("runs backwards"));
        assert!(parse_drive_list("0-40").unwrap_err().message.contains("at most 32"));
    }
}
