//! The run's timeline: every kernel→dext and dext→kernel call with its virtual time, queue and
//! result, and its export in Chrome Trace Event format (one track per queue), which Perfetto and
//! chrome://tracing open.

use serde::Serialize;

/// One finished call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Virtual start time, ns.
    pub start_ns: u64,
    /// Virtual duration, ns.
    pub duration_ns: u64,
    pub queue: String,
    pub call: String,
    /// `kIOReturnSuccess`, a value name, or a short description.
    pub result: String,
}

/// A log line from the dext or the core.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub time_ns: u64,
    pub queue: String,
    pub level: &'static str,
    pub message: String,
}

/// Chrome Trace Event JSON for `events` (and logs as instant events).
pub fn chrome_trace(events: &[Event], logs: &[LogLine]) -> String {
    let mut queues: Vec<&str> = Vec::new();
    let tid = |queues: &mut Vec<&str>, q: &str| -> usize {
        match queues.iter().position(|x| *x == q) {
            Some(i) => i + 1,
            None => {
                queues.push(Box::leak(q.to_string().into_boxed_str()));
                queues.len()
            }
        }
    };
    let mut out = Vec::new();
    for e in events {
        let t = tid(&mut queues, &e.queue);
        out.push(serde_json::json!({
            "name": e.call, "cat": "call", "ph": "X", "pid": 1, "tid": t,
            "ts": e.start_ns as f64 / 1000.0, "dur": e.duration_ns as f64 / 1000.0,
            "args": { "result": e.result },
        }));
    }
    for l in logs {
        let t = tid(&mut queues, &l.queue);
        out.push(serde_json::json!({
            "name": l.message, "cat": "log", "ph": "i", "s": "t", "pid": 1, "tid": t,
            "ts": l.time_ns as f64 / 1000.0, "args": { "level": l.level },
        }));
    }
    for (i, q) in queues.iter().enumerate() {
        out.push(serde_json::json!({
            "name": "thread_name", "ph": "M", "pid": 1, "tid": i + 1, "args": { "name": q },
        }));
    }
    serde_json::to_string(&serde_json::json!({ "traceEvents": out, "displayTimeUnit": "ns" }))
        .unwrap_or_default()
}
