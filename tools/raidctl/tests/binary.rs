//! The `raidctl` binary end to end against a minimal in-test socket server: exit codes,
//! stderr's `raidctl: ` prefix, the entitlement the socket transport presents.

#![cfg(unix)]

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;

use dkraid_core::admin::wire::{ControllerInfo, StageInfo};
use dkraid_core::admin::{decode_request, encode_response, status, Body};
use raidctl::sockwire::{read_message, write_message, Message};
use zerocopy::little_endian::U32;
use zerocopy::IntoBytes;

fn raidctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raidctl")).args(args).output().unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("raidctl-bin-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Serves one connection: OPEN records the entitlements; SUBMIT answers at once (destructive
/// commands NotPermitted without the admin entitlement; CONTROLLER_SHOW and STAGE_GET from a
/// stage-3 controller).
fn serve(path: &Path) {
    let listener = UnixListener::bind(path).unwrap();
    thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut entitled = false;
        let mut ready: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut next = 1u64;
        while let Ok(msg) = read_message(&mut s) {
            let mut replies = Vec::new();
            match msg {
                Message::Open { entitlements, .. } => {
                    entitled = entitlements.iter().any(|e| e == "org.dkraid.admin.configure");
                    replies.push(Message::OpenReply { kern_return: 0 });
                }
                Message::Call { selector: 0, struct_in, .. } => {
                    let req = decode_request(&struct_in).unwrap();
                    let (cmd, seq) = (req.body.command(), req.sequence);
                    let mut out = vec![0u8; 4096];
                    let n = if req.body.is_destructive() && !entitled {
                        encode_response(&mut out, cmd, seq, status::NOT_PERMITTED, &[])
                    } else {
                        match req.body {
                            Body::ControllerShow => {
                                let info =
                                    ControllerInfo { stage: U32::new(3), ..Default::default() };
                                encode_response(&mut out, cmd, seq, 0, info.as_bytes())
                            }
                            Body::StageGet => {
                                let st = StageInfo { stage: U32::new(3) };
                                encode_response(&mut out, cmd, seq, 0, st.as_bytes())
                            }
                            _ => encode_response(&mut out, cmd, seq, 0, &[]),
                        }
                    }
                    .unwrap();
                    out.truncate(n);
                    let ticket = next;
                    next += 1;
                    ready.push((ticket, out));
                    replies.push(Message::CallReply {
                        kern_return: 0,
                        scalars: vec![ticket],
                        struct_out: vec![],
                    });
                    replies.push(Message::Async { status: 0, args: vec![ticket, n as u64] });
                }
                Message::Call { selector: 1, scalars, .. } => {
                    let i = ready.iter().position(|r| r.0 == scalars[0]).unwrap();
                    let (_, bytes) = ready.remove(i);
                    replies.push(Message::CallReply {
                        kern_return: 0,
                        scalars: vec![],
                        struct_out: bytes,
                    });
                }
                Message::Close => replies.push(Message::CloseReply { kern_return: 0 }),
                _ => replies.push(Message::CallReply {
                    kern_return: 0xe00002c2_u32 as i32,
                    scalars: vec![],
                    struct_out: vec![],
                }),
            }
            for r in replies {
                write_message(&mut s, &r).unwrap();
            }
        }
    });
}

#[test]
fn help_and_usage_errors() {
    let out = raidctl(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("exit codes:") && help.contains("org.dkraid.admin.configure"));
    let out = raidctl(&["/c0/v0", "shwo"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "raidctl: invalid verb \"shwo\" for /c0/v0; valid: show, show all, del, start rebuild \
         drive=N\n"
    );
    let out = raidctl(&["/c1", "show"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn no_server_is_exit_3() {
    let dir = temp_dir("none");
    let sock = dir.join("absent.sock");
    let out = raidctl(&["--socket", sock.to_str().unwrap(), "/c0", "show"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("raidctl: no test-bed server at "), "{err}");
    assert!(err.contains("dkraid-sim serve --socket"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn entitlement_decides_destructive_commands() {
    let dir = temp_dir("ent");
    let sock = dir.join("a.sock");
    serve(&sock);
    let out = raidctl(&["--socket", sock.to_str().unwrap(), "--unentitled", "/c0/v1", "del"]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("raidctl: permission denied") && err.contains("org.dkraid.admin.configure")
    );

    let sock = dir.join("b.sock");
    serve(&sock);
    let out = raidctl(&["--socket", sock.to_str().unwrap(), "/c0/v1", "del", "J"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["deleted"]["volume"], 1);

    let sock = dir.join("c.sock");
    serve(&sock);
    let out = raidctl(&["--socket", sock.to_str().unwrap(), "/c0", "show"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Bring-up Stage    full (3)"));
    let _ = std::fs::remove_dir_all(&dir);
}
