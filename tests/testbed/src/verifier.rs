//! The verifier's findings: each broken DriverKit rule, named, with where it happened.

use serde::Serialize;

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The rule's name, e.g. `UndeclaredQueueName`.
    pub rule: &'static str,
    /// The simulated thread (queue) it happened on.
    pub queue: String,
    /// The call being made when it happened.
    pub call: String,
    /// The values involved, e.g. `name="IOQueue" result=0xe00002c2`.
    pub values: String,
    /// Where the rule is written down.
    pub section: &'static str,
    /// A sentence a driver writer can act on.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} [queue {}, call {}, {}] ({})",
            self.rule, self.message, self.queue, self.call, self.values, self.section
        )
    }
}
