//! `dkraid-sim campaign`: a small campaign passes; one against a broken build fails and names
//! each failing seed with a command that reproduces it; bad arguments are named errors.

use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dkraid-sim")).args(args).output().expect("run dkraid-sim")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn a_small_campaign_passes() {
    let out = sim(&["campaign", "--seeds", "20", "--first-seed", "1", "--jobs", "2", "--json"]);
    let v = json(&out);
    assert_eq!(v["failed"], 0, "{v:#}");
    assert_eq!(v["passed"], 20);
    assert!(v["faults_fired"].as_u64().unwrap() > 20, "the schedules fire faults: {v:#}");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_failing_seed_is_reported_with_its_reproducer() {
    let out =
        sim(&["campaign", "--seeds", "12", "--jobs", "2", "--variant", "late-slot-free", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    let failures = v["failures"].as_array().unwrap();
    assert!(!failures.is_empty(), "late-slot-free must fail some seed: {v:#}");
    assert_eq!(v["failed"].as_u64().unwrap() as usize, failures.len());
    let f = &failures[0];
    assert_eq!(f["class"], "violation", "{f:#}");
    let command = f["command"].as_str().unwrap();
    assert!(command.starts_with("dkraid-sim io ") && command.contains("--variant late-slot-free"));
    assert!(command.contains(&format!("--seed {} ", f["seed"])));
    // The reproducer fails the same way on its own.
    let args: Vec<&str> = command.split(' ').skip(1).collect();
    let again = sim(&args);
    assert_eq!(again.status.code(), Some(1));
    let r = json(&again);
    assert!(!r["violations"].as_array().unwrap().is_empty(), "{r:#}");
    // The text summary prints it too.
    let text = sim(&["campaign", "--seeds", "12", "--jobs", "2", "--variant", "late-slot-free"]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains("FAILED [violation]") && stdout.contains("reproduce: dkraid-sim io"));
}

#[test]
fn bad_arguments_are_named() {
    for (args, needle) in [
        (&["campaign", "--seeds", "0"][..], "--seeds 0"),
        (&["campaign", "--seeds", "3", "--jobs", "0"][..], "--jobs 0"),
        (&["campaign", "--seeds", "3", "--faults", "some"][..], "some"),
        (&["campaign", "--seeds", "3", "--variant", "nope"][..], "no variant \"nope\""),
        (&["campaign", "--seeds", "3", "--timeout", "0"][..], "--timeout 0"),
        (&["campaign"][..], "--seeds"),
    ] {
        let out = sim(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
