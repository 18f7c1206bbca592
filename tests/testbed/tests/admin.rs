//! The RAID admin path end to end: `raidctl` against `dkraid-sim serve`, through the simulated
//! IOServiceOpen → NewUserClient → ExternalMethod → the core's admin engine → the firmware,
//! while a verify workload runs on another volume; and malformed requests sent straight to the
//! user client, each refused by name.

mod common;

use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dkraid_core::admin::wire::{self, command, status, RequestHeader};
use dkraid_testbed::sockwire::{self, Message};
use serde_json::Value;
use zerocopy::IntoBytes;

/// `raidctl`, built once for these tests in its own target directory (the workspace's is
/// locked by the running `cargo test`).
fn raidctl_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let target = root.join("target/raidctl-for-tests");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "raidctl", "--bin", "raidctl", "--target-dir"])
            .arg(&target)
            .current_dir(&root)
            .status()
            .expect("run cargo build -p raidctl");
        assert!(status.success(), "cargo build -p raidctl failed");
        target.join("debug/raidctl")
    })
}

fn raidctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(raidctl_binary())
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run raidctl")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output, what: &str) -> String {
    assert!(o.status.success(), "{what} failed ({:?}):\n{}{}", o.status, stdout(o), stderr(o));
    stdout(o)
}

/// A running `dkraid-sim serve`, shut down (and its report read) by [`Server::shutdown`].
struct Server {
    child: Option<Child>,
    socket: PathBuf,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Server {
    fn start(name: &str, args: &[&str]) -> Server {
        let dir = std::env::temp_dir().join(format!("dkraid-admin-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("dkraid.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_dkraid-sim"))
            .arg("serve")
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .arg("--json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start dkraid-sim serve");
        let started = Instant::now();
        while !socket.exists() {
            assert!(started.elapsed() < Duration::from_secs(60), "serve never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child: Some(child), socket, _dir: TempDir(dir) }
    }

    fn control(&self, command: &str) -> (i32, String) {
        let mut c = Connection::connect(&self.socket);
        match c.request(&Message::SimControl { command: command.into() }) {
            Message::SimControlReply { status, text } => (status, text),
            other => panic!("SIM_CONTROL answered with {other:?}"),
        }
    }

    fn shutdown(mut self) -> Value {
        let (status, _) = self.control("shutdown");
        assert_eq!(status, 0);
        let out = self.child.take().unwrap().wait_with_output().unwrap();
        common::json_of(&out)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `dkraid-sim ctl status`, parsed.
fn server_status(server: &Server) -> Value {
    let (status, text) = server.control("status");
    assert_eq!(status, 0, "{text}");
    serde_json::from_str(&text).expect("status is JSON")
}

/// A raw connection to the server, for what raidctl would never send.
struct Connection {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    asyncs: Vec<(i32, Vec<u64>)>,
}

impl Connection {
    fn connect(socket: &Path) -> Connection {
        let s = UnixStream::connect(socket).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        Connection { reader: BufReader::new(s.try_clone().unwrap()), writer: s, asyncs: Vec::new() }
    }

    /// Send `m` and return its reply (completions that arrive first are kept).
    fn request(&mut self, m: &Message) -> Message {
        sockwire::write_message(&mut self.writer, m).expect("send");
        loop {
            match sockwire::read_message(&mut self.reader).expect("reply") {
                Message::Async { status, args } => self.asyncs.push((status, args)),
                reply => return reply,
            }
        }
    }

    fn open(&mut self, entitlements: &[&str]) -> i32 {
        let m = Message::Open {
            user_client_type: 0,
            entitlements: entitlements.iter().map(|e| e.to_string()).collect(),
        };
        match self.request(&m) {
            Message::OpenReply { kern_return } => kern_return,
            other => panic!("OPEN answered with {other:?}"),
        }
    }

    fn call(&mut self, m: Message) -> (i32, Vec<u64>, Vec<u8>) {
        match self.request(&m) {
            Message::CallReply { kern_return, scalars, struct_out } => {
                (kern_return, scalars, struct_out)
            }
            other => panic!("CALL answered with {other:?}"),
        }
    }

    /// Wait for the completion of `ticket`.
    fn completion(&mut self, ticket: u64) -> (i32, Vec<u64>) {
        loop {
            if let Some(i) = self.asyncs.iter().position(|(_, a)| a.first() == Some(&ticket)) {
                return self.asyncs.remove(i);
            }
            match sockwire::read_message(&mut self.reader).expect("completion") {
                Message::Async { status, args } => self.asyncs.push((status, args)),
                other => panic!("unexpected {other:?} while waiting for a completion"),
            }
        }
    }

    /// Submit raw request bytes and fetch the response's status (the response header's).
    fn admin(&mut self, request: &[u8]) -> u32 {
        let (r, scalars, _) = self.call(Message::call(0, true, vec![], request.to_vec(), 0, 1));
        assert_eq!(r, 0, "Submit kern_return");
        let ticket = scalars[0];
        let (status, args) = self.completion(ticket);
        assert_eq!(status, 0);
        let (r, _, response) = self.call(Message::call(1, false, vec![ticket], vec![], 4096, 0));
        assert_eq!(r, 0, "Fetch kern_return");
        assert_eq!(response.len() as u64, args[1], "the completion gives the response's size");
        let header = dkraid_core::admin::decode_response(&response).expect("a response");
        header.status
    }
}

fn request(command: u16, payload: &[u8]) -> Vec<u8> {
    let header = RequestHeader {
        magic: wire::MAGIC.into(),
        version: wire::VERSION.into(),
        command: command.into(),
        payload_bytes: (payload.len() as u32).into(),
        sequence: 7.into(),
    };
    [header.as_bytes(), payload].concat()
}

const KIO_RETURN_BAD_ARGUMENT: i32 = 0xe00002c2_u32 as i32;

#[test]
fn raidctl_creates_degrades_rebuilds_and_deletes_a_raid5_while_a_verify_runs() {
    let server = Server::start(
        "scenario",
        &[
            "--stage",
            "full",
            "--drives",
            "8x128MiB",
            "--volume",
            "raid1:0,1",
            "--verify",
            "8MiB",
            "--qd",
            "4",
        ],
    );
    let s = server.socket.clone();

    // The controller and what it holds.
    let out = ok(&raidctl(&s, &["/c0", "show"]), "/c0 show");
    assert!(out.contains("full"), "{out}");
    let out = ok(&raidctl(&s, &["/c0/vall", "show"]), "/c0/vall show");
    assert!(out.contains("RAID1"), "{out}");

    // A hot spare, then a RAID 5 over drives 2-4.
    ok(&raidctl(&s, &["/c0/s7", "set", "hotspare"]), "/c0/s7 set hotspare");
    let out = ok(&raidctl(&s, &["/c0", "add", "vd", "type=raid5", "drives=2-4"]), "add vd");
    assert!(out.contains("RAID5"), "{out}");
    let shown = ok(&raidctl(&s, &["/c0/v1", "show", "all", "J"]), "/c0/v1 show all J");
    let v: Value = serde_json::from_str(&shown).expect("JSON");
    assert_eq!(v["volume"]["id"], 1, "{v}");
    assert_eq!(v["volume"]["level"], 5, "{v}");
    assert_eq!(v["volume"]["state"], "Optl", "{v}");
    assert_eq!(v["volume"]["drives"], serde_json::json!([2, 3, 4]), "{v}");
    assert_eq!(v["drives"].as_array().map(Vec::len), Some(3), "{v}");

    // Follow the events from now on, live (WATCH_EVENTS notifications); then a drive of the
    // new volume fails and the follower sees it through to the end of the rebuild.
    let shown = ok(&raidctl(&s, &["/c0", "show", "events", "J"]), "show events J");
    let newest =
        serde_json::from_str::<Value>(&shown).expect("JSON")["newest"].as_u64().expect("newest");
    let since = format!("since={newest}");
    let follower = Command::new(raidctl_binary())
        .arg("--socket")
        .arg(&s)
        .args(["/c0", "show", "events", since.as_str(), "--follow", "--until=rebuild-finished"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("raidctl --follow");
    let before = server_status(&server);
    let watching = Instant::now();
    // The follower is watching once the server has seen its WatchEvents call.
    while server_status(&server)["serve"]["calls"].as_u64() <= before["serve"]["calls"].as_u64() {
        assert!(watching.elapsed() < Duration::from_secs(30), "the follower never called");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, text) = server.control("fail-drive 3");
    assert_eq!(status, 0, "{text}");
    let follow = follower.wait_with_output().unwrap();
    let events = ok(&follow, "show events --follow");
    let lower = events.to_lowercase();
    assert!(!lower.contains("volume created"), "only events after {newest}:\n{events}");
    let failed = lower.find("drive failed").expect("a drive failed event");
    let degraded = lower.find("degraded").expect("a degraded event");
    let progress = lower.find("progress").expect("rebuild progress events");
    let finished = lower.find("rebuild finished").expect("a rebuild finished event");
    assert!(
        failed < degraded && degraded < progress && progress < finished,
        "events out of order:\n{events}"
    );

    let rebuilt = ok(&raidctl(&s, &["/c0/v1", "show"]), "/c0/v1 show");
    assert!(rebuilt.contains("Optl"), "the volume is optimal again:\n{rebuilt}");

    // Delete it; the volume list no longer has it.
    ok(&raidctl(&s, &["/c0/v1", "del"]), "/c0/v1 del");
    let out = raidctl(&s, &["/c0/v1", "show"]);
    assert_eq!(out.status.code(), Some(5), "a deleted volume is not found: {}", stderr(&out));

    // A spare dedicated to volume 0 (only 0xFFFF means "global" to the firmware).
    ok(&raidctl(&s, &["/c0/s6", "set", "hotspare", "dgs=0"]), "dedicated spare");
    let drives = ok(&raidctl(&s, &["/c0/e0/s6", "show"]), "/c0/e0/s6 show");
    assert!(drives.contains("DHS"), "{drives}");

    // The workload on volume 0 never saw an error or a wrong block, and nothing broke a rule.
    let report = server.shutdown();
    assert!(report["passes"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["mismatches"], 0, "{report}");
    assert_eq!(report["violations"], Value::Array(vec![]), "{report}");
    assert!(report["calls"].as_u64().unwrap() > 10, "{report}");
}

#[test]
fn destructive_commands_need_the_admin_entitlement() {
    let server = Server::start("entitlement", &["--stage", "full"]);
    let out = raidctl(&server.socket, &["--unentitled", "/c0/v0", "del"]);
    assert_eq!(out.status.code(), Some(4), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("org.dkraid.admin.configure"), "{}", stderr(&out));
    // Reading needs nothing.
    ok(&raidctl(&server.socket, &["--unentitled", "/c0/vall", "show"]), "read-only");
    let report = server.shutdown();
    assert_eq!(report["violations"], Value::Array(vec![]), "{report}");
    assert!(report["volumes"].as_array().is_some_and(|v| !v.is_empty()), "volume 0 survived");
}

#[test]
fn the_admin_key_alone_is_not_enough_the_client_must_be_signed_by_the_drivers_team() {
    // Any locally signed binary can claim org.dkraid.admin.configure; only a binary signed by
    // the driver's own team carries that team's com.apple.developer.team-identifier.
    let server = Server::start("team", &["--stage", "full"]);
    let out = raidctl(&server.socket, &["--team-id", "OTHERTEAM1", "/c0/v0", "del"]);
    assert_eq!(out.status.code(), Some(4), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("com.apple.developer.team-identifier"), "{}", stderr(&out));
    ok(&raidctl(&server.socket, &["--team-id", "OTHERTEAM1", "/c0/vall", "show"]), "read-only");
    // The driver's team (the test-bed's DEVELOPMENT_TEAM, raidctl's default) may.
    ok(&raidctl(&server.socket, &["--team-id", "DKRAIDTEAM", "/c0/v0", "del"]), "own team");
    let report = server.shutdown();
    assert_eq!(report["violations"], Value::Array(vec![]), "{report}");
    let logs = report["logs"].as_array().map(|l| format!("{l:?}")).unwrap_or_default();
    assert!(logs.contains("signed by another team than the driver's"), "{logs}");
}

#[test]
fn a_driver_built_without_a_team_grants_no_destructive_command() {
    // Fail closed: the personality's DkRaidAdminTeamIdentifier is an unexpanded or empty
    // build setting.
    let server = Server::start("noteam", &["--stage", "full", "--set", "DEVELOPMENT_TEAM="]);
    let out = raidctl(&server.socket, &["/c0/v0", "del"]);
    assert_eq!(out.status.code(), Some(4), "{}{}", stdout(&out), stderr(&out));
    let report = server.shutdown();
    let logs = report["logs"].as_array().map(|l| format!("{l:?}")).unwrap_or_default();
    assert!(logs.contains("no valid DkRaidAdminTeamIdentifier"), "{logs}");
}

#[test]
fn no_server_is_an_error_a_person_can_act_on() {
    let dir = std::env::temp_dir().join(format!("dkraid-admin-none-{}", std::process::id()));
    let out = raidctl(&dir.join("missing.sock"), &["/c0", "show"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("dkraid-sim serve"), "{}", stderr(&out));
    let missing = dir.join("missing.sock");
    let out = common::sim(&["ctl", "--socket", missing.to_str().unwrap(), "status"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

#[test]
fn ctl_drives_a_running_server() {
    let server = Server::start("ctl", &["--stage", "full"]);
    let socket = server.socket.to_str().unwrap().to_string();
    let out = common::sim(&["ctl", "--socket", &socket, "status"]);
    let status: Value = serde_json::from_str(ok(&out, "ctl status").trim()).expect("JSON");
    assert_eq!(status["violations"], 0, "{status}");
    let out = common::sim(&["ctl", "--socket", &socket, "fail-drive", "99"]);
    assert_eq!(out.status.code(), Some(1), "no drive 99: {}", stderr(&out));
    let out = common::sim(&["ctl", "--socket", &socket, "reboot"]);
    assert!(
        stderr(&out).contains("valid: fail-drive N, stall-firmware MS, status, shutdown"),
        "{}",
        stderr(&out)
    );
    let report = server.shutdown();
    assert_eq!(report["violations"], Value::Array(vec![]), "{report}");
}

#[test]
fn malformed_requests_sent_straight_to_the_user_client_are_refused_by_name() {
    let server = Server::start("malformed", &["--stage", "full"]);
    let mut c = Connection::connect(&server.socket);
    assert_eq!(c.open(&[]), 0);

    // Broken requests: each answered with its own status.
    let mut bad_magic = request(command::CONTROLLER_SHOW, &[]);
    bad_magic[0] ^= 1;
    assert_eq!(c.admin(&bad_magic), status::BAD_MAGIC);
    assert_eq!(c.admin(&bad_magic[..10]), status::SHORT_REQUEST);
    let mut version = request(command::CONTROLLER_SHOW, &[]);
    version[4] = 9;
    assert_eq!(c.admin(&version), status::UNSUPPORTED_VERSION);
    assert_eq!(c.admin(&request(0x7F, &[])), status::UNKNOWN_COMMAND);
    assert_eq!(c.admin(&request(command::VOLUME_SHOW, &[0; 3])), status::WRONG_PAYLOAD_SIZE);
    assert_eq!(
        c.admin(&request(command::VOLUME_SHOW, &[200, 0, 0, 0])),
        status::FIELD_OUT_OF_RANGE
    );
    let mut mismatch = request(command::CONTROLLER_SHOW, &[]);
    mismatch.push(0);
    assert_eq!(c.admin(&mismatch), status::PAYLOAD_SIZE_MISMATCH);
    // Over the inline limit: it arrives as a memory descriptor, and is still refused by name.
    assert_eq!(c.admin(&request(command::CONTROLLER_SHOW, &[0; 5000])), status::REQUEST_TOO_LARGE);
    // Without the entitlement, a destructive command.
    assert_eq!(c.admin(&request(command::VOLUME_DELETE, &[0, 0, 0, 0])), status::NOT_PERMITTED);
    // A good one still works on the same connection.
    assert_eq!(c.admin(&request(command::STAGE_GET, &[])), status::OK);

    // Wrong shapes never reach the driver: DriverKit's dispatch checks refuse them.
    let (r, _, _) = c.call(Message::call(0, false, vec![], request(command::STAGE_GET, &[]), 0, 1));
    assert_eq!(r, KIO_RETURN_BAD_ARGUMENT, "Submit without an async completion");
    let (r, _, _) = c.call(Message::call(1, false, vec![], vec![], 4096, 0));
    assert_eq!(r, KIO_RETURN_BAD_ARGUMENT, "Fetch without its ticket");
    let (r, _, _) = c.call(Message::call(9, false, vec![], vec![], 0, 0));
    assert_eq!(r, KIO_RETURN_BAD_ARGUMENT, "an unknown selector");
    let (r, _, _) = c.call(Message::call(1, false, vec![12345], vec![], 4096, 0));
    assert_eq!(
        r, 0xe00002f0_u32 as i32,
        "Fetch of a ticket that does not exist: kIOReturnNotFound"
    );
    drop(c);

    let report = server.shutdown();
    assert_eq!(report["violations"], Value::Array(vec![]), "{report}");
    let logs = common::logs(&report);
    for name in ["BadMagic", "ShortRequest", "UnknownCommand", "NotPermitted", "RequestTooLarge"] {
        assert!(logs.iter().any(|l| l.contains(name)), "no log names {name}: {logs:#?}");
    }
    assert!(
        logs.iter().any(|l| l.contains("checkCompletionExists")),
        "the refused dispatch check is named: {logs:#?}"
    );
}

/// An app submits a firmware-backed request, the firmware stalls, and the app closes its
/// connection before the answer: what the driver does with the late answer.
fn close_while_pending(variant: Option<&str>) -> Value {
    let mut args = vec!["--stage", "full"];
    if let Some(v) = variant {
        args.extend(["--variant", v]);
    }
    let server = Server::start(&format!("close-{}", variant.unwrap_or("shipped")), &args);
    let mut c = Connection::connect(&server.socket);
    assert_eq!(c.open(&[]), 0);
    assert_eq!(server.control("stall-firmware 300").0, 0);
    let (r, scalars, _) =
        c.call(Message::call(0, true, vec![], request(command::CONTROLLER_SHOW, &[]), 0, 1));
    assert_eq!((r, scalars.len()), (0, 1), "Submit");
    assert!(matches!(c.request(&Message::Close), Message::CloseReply { kern_return: 0 }));
    // The stall ends and the firmware answers (virtual time follows the wall clock).
    std::thread::sleep(Duration::from_millis(800));
    server.shutdown()
}

#[test]
fn a_closed_connection_gets_no_late_completion() {
    let report = close_while_pending(None);
    assert_eq!(report["violations"], Value::Array(vec![]), "{report}");
}

#[test]
fn variant_close_without_cancel_is_caught() {
    let report = close_while_pending(Some("close-without-cancel"));
    let violations = report["violations"].as_array().unwrap();
    let v = violations
        .iter()
        .find(|v| v["rule"] == "AsyncCompletionAfterClose")
        .unwrap_or_else(|| panic!("no AsyncCompletionAfterClose in {violations:#?}"));
    assert_eq!(v["section"], "DRIVERKIT.md §7", "{v:#}");
    assert!(v["message"].as_str().unwrap().contains("released in the client's Stop"), "{v:#}");
}

#[test]
fn an_interrupt_ends_serve_cleanly_with_its_report() {
    let mut server = Server::start("interrupt", &["--stage", "full", "--verify", "1MiB"]);
    let child = server.child.take().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signals our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report = common::json_of(&out);
    assert!(report["passes"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(report["mismatches"], 0, "{report}");
    assert_eq!(report["violations"], Value::Array(vec![]), "{report}");
    assert!(!server.socket.exists(), "the socket is removed");
}

#[test]
fn tickets_belong_to_their_connection_and_unfetched_ones_are_freed_when_it_closes() {
    let server = Server::start("tickets", &["--stage", "full"]);
    let mut first = Connection::connect(&server.socket);
    assert_eq!(first.open(&[]), 0);
    // Fill every request slot with answers nobody fetches.
    let mut tickets = Vec::new();
    for _ in 0..4 {
        let (r, scalars, _) =
            first.call(Message::call(0, true, vec![], request(command::STAGE_GET, &[]), 0, 1));
        assert_eq!(r, 0);
        tickets.push(scalars[0]);
    }
    for &t in &tickets {
        first.completion(t);
    }
    // Another connection can neither fetch them nor find a free slot while they are held.
    let mut second = Connection::connect(&server.socket);
    assert_eq!(second.open(&[]), 0);
    let (r, _, _) = second.call(Message::call(1, false, vec![tickets[0]], vec![], 4096, 0));
    assert_eq!(r, 0xe00002f0_u32 as i32, "another connection's ticket: kIOReturnNotFound");
    let (r, _, _) =
        second.call(Message::call(0, true, vec![], request(command::STAGE_GET, &[]), 0, 1));
    assert_eq!(r, 0xe00002be_u32 as i32, "every slot is held: kIOReturnNoResources");
    // The first app goes away without fetching: its slots are free again.
    assert!(matches!(first.request(&Message::Close), Message::CloseReply { kern_return: 0 }));
    for _ in 0..4 {
        assert_eq!(second.admin(&request(command::STAGE_GET, &[])), status::OK);
    }
    drop(second);
    let report = server.shutdown();
    assert_eq!(report["violations"], Value::Array(vec![]), "{report}");
}

#[test]
fn without_a_controller_admin_commands_are_not_ready_and_say_why() {
    let server = Server::start("notready", &["--stage", "fake-block"]);
    let out = raidctl(&server.socket, &["/c0", "show"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("stage fake-block (1)"), "{}", stderr(&out));
    let report = server.shutdown();
    assert_eq!(report["violations"], Value::Array(vec![]), "{report}");
}

/// An app fetches a 24-byte STAGE_GET response into 20 bytes, then into 4096: the two
/// kern_returns, the bytes the second got, and the server's report.
fn fetch_into_a_small_buffer(variant: Option<&str>) -> (i32, (i32, usize), Value) {
    let mut args = vec!["--stage", "full"];
    if let Some(v) = variant {
        args.extend(["--variant", v]);
    }
    let server = Server::start(&format!("fetch-{}", variant.unwrap_or("shipped")), &args);
    let mut c = Connection::connect(&server.socket);
    assert_eq!(c.open(&[]), 0);
    let (r, scalars, _) =
        c.call(Message::call(0, true, vec![], request(command::STAGE_GET, &[]), 0, 1));
    assert_eq!(r, 0);
    let ticket = scalars[0];
    assert_eq!(c.completion(ticket).1, [ticket, 24]);
    let (small, _, out) = c.call(Message::call(1, false, vec![ticket], vec![], 20, 0));
    assert!(out.is_empty(), "nothing comes back from a refused Fetch");
    let (big, _, out) = c.call(Message::call(1, false, vec![ticket], vec![], 4096, 0));
    drop(c);
    (small, (big, out.len()), server.shutdown())
}

#[test]
fn a_response_larger_than_the_callers_buffer_stays_for_a_bigger_fetch() {
    let (small, big, report) = fetch_into_a_small_buffer(None);
    assert_eq!(small, 0xe00002db_u32 as i32, "kIOReturnNoSpace");
    assert_eq!(big, (0, 24), "the slot kept the response");
    assert_eq!(report["violations"], Value::Array(vec![]), "{report}");
}

#[test]
fn variant_fetch_ignores_maximum_is_caught() {
    let (small, _, report) = fetch_into_a_small_buffer(Some("fetch-ignores-maximum"));
    assert_eq!(small, 0xe00002e8_u32 as i32, "IOKit fails the call: kIOReturnOverrun");
    let violations = report["violations"].as_array().unwrap();
    let v = violations
        .iter()
        .find(|v| v["rule"] == "StructureOutputOverrun")
        .unwrap_or_else(|| panic!("no StructureOutputOverrun in {violations:#?}"));
    assert_eq!(v["values"], "selector=1 structureOutput=24 maximum=20", "{v:#}");
    assert_eq!(v["section"], "DRIVERKIT.md §7", "{v:#}");
}
