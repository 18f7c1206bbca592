//! What the scenario tests share: running `dkraid-sim` and reading its JSON report.

// Each test file uses its own subset.
#![allow(dead_code)]

use std::process::{Command, Output};

use serde_json::Value;

pub fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dkraid-sim")).args(args).output().expect("run dkraid-sim")
}

pub fn json_of(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {text}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
    })
}

/// The driver's log lines.
pub fn logs(report: &Value) -> Vec<String> {
    report["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap_or("").to_string())
        .collect()
}

/// (target, attached) of each disk macOS saw.
pub fn disks(report: &Value) -> Vec<(u64, bool)> {
    report["disks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["target"].as_u64().unwrap(), d["attached"].as_bool().unwrap()))
        .collect()
}
