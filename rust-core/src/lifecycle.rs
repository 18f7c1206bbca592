//! The controller's life, in the order IOSCSIParallelFamily drives it (DRIVERKIT.md §1):
//!
//! ```text
//! Start (dext) → UserInitializeController → UserReportInitiatorIdentifier
//!   → UserReportHighestSupportedDeviceID → UserReportMaximumTaskCount
//!   → UserMapHBAData × N → UserStartController → UserDoesHBAPerformDeviceManagement → running
//! UserStopController / Stop: from any state after Start.
//! ```
//!
//! Every call is checked against the state; one out of order is refused with a named error
//! that says what was expected, never acted on.

use core::fmt;

use crate::ioreturn::IOReturn;

/// Where the controller is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The core exists; the dext's `Start` has not run.
    Loaded,
    /// `Start` ran: PCI opened, queues created and registered.
    Started,
    /// `UserInitializeController` returned, constraints reported.
    Initialized,
    InitiatorReported,
    HighestIdReported,
    /// `UserReportMaximumTaskCount` answered: the kernel now calls `UserMapHBAData` per task.
    MappingTasks,
    /// `UserStartController` returned: asynchronous work may run.
    ControllerStarted,
    /// `UserDoesHBAPerformDeviceManagement` answered; the kernel registers the service.
    Running,
    Stopped,
}

impl State {
    pub const fn name(self) -> &'static str {
        match self {
            State::Loaded => "loaded",
            State::Started => "started",
            State::Initialized => "initialized",
            State::InitiatorReported => "initiator-reported",
            State::HighestIdReported => "highest-id-reported",
            State::MappingTasks => "mapping-tasks",
            State::ControllerStarted => "controller-started",
            State::Running => "running",
            State::Stopped => "stopped",
        }
    }
}

/// The calls whose order is enforced, named as in the SDK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Start,
    UserInitializeController,
    UserReportInitiatorIdentifier,
    UserReportHighestSupportedDeviceID,
    UserReportMaximumTaskCount,
    UserMapHBAData,
    UserStartController,
    UserDoesHBAPerformDeviceManagement,
    /// I/O and target calls: legal once the controller started, until it stops.
    UserProcessParallelTask,
    UserInitializeTargetForID,
    UserStopController,
}

impl Call {
    pub const fn name(self) -> &'static str {
        match self {
            Call::Start => "Start",
            Call::UserInitializeController => "UserInitializeController",
            Call::UserReportInitiatorIdentifier => "UserReportInitiatorIdentifier",
            Call::UserReportHighestSupportedDeviceID => "UserReportHighestSupportedDeviceID",
            Call::UserReportMaximumTaskCount => "UserReportMaximumTaskCount",
            Call::UserMapHBAData => "UserMapHBAData",
            Call::UserStartController => "UserStartController",
            Call::UserDoesHBAPerformDeviceManagement => "UserDoesHBAPerformDeviceManagement",
            Call::UserProcessParallelTask => "UserProcessParallelTask",
            Call::UserInitializeTargetForID => "UserInitializeTargetForID",
            Call::UserStopController => "UserStopController",
        }
    }
}

/// A call that came out of order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfOrder {
    pub call: Call,
    pub state: State,
    /// What the state allows next, for the message.
    pub expected: &'static str,
}

impl OutOfOrder {
    pub const fn ioreturn(&self) -> IOReturn {
        IOReturn::kIOReturnNotReady
    }
}

impl fmt::Display for OutOfOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CallOutOfOrder: {} while the controller is {}; expected {} (DRIVERKIT.md §1)",
            self.call.name(),
            self.state.name(),
            self.expected
        )
    }
}

/// The state machine. Pure: it knows nothing of tasks or the platform; the controller asks it
/// before acting and tells it after succeeding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    state: State,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    pub const fn new() -> Self {
        Lifecycle { state: State::Loaded }
    }

    pub const fn state(&self) -> State {
        self.state
    }

    const fn expected(state: State) -> &'static str {
        match state {
            State::Loaded => "Start",
            State::Started => "UserInitializeController (or Stop)",
            State::Initialized => "UserReportInitiatorIdentifier",
            State::InitiatorReported => "UserReportHighestSupportedDeviceID",
            State::HighestIdReported => "UserReportMaximumTaskCount",
            State::MappingTasks => "UserMapHBAData for each task, then UserStartController",
            State::ControllerStarted => "UserDoesHBAPerformDeviceManagement",
            State::Running => "I/O, or UserStopController",
            State::Stopped => "nothing: the controller is stopped",
        }
    }

    /// The state `call` leads to from `state`, or `None` if it may not be made now.
    const fn next(state: State, call: Call) -> Option<State> {
        use Call as C;
        use State as S;
        match (state, call) {
            (S::Loaded, C::Start) => Some(S::Started),
            (S::Started, C::UserInitializeController) => Some(S::Initialized),
            (S::Initialized, C::UserReportInitiatorIdentifier) => Some(S::InitiatorReported),
            (S::InitiatorReported, C::UserReportHighestSupportedDeviceID) => {
                Some(S::HighestIdReported)
            }
            (S::HighestIdReported, C::UserReportMaximumTaskCount) => Some(S::MappingTasks),
            (S::MappingTasks, C::UserMapHBAData) => Some(S::MappingTasks),
            (S::MappingTasks, C::UserStartController) => Some(S::ControllerStarted),
            (S::ControllerStarted, C::UserDoesHBAPerformDeviceManagement) => Some(S::Running),
            // Target creation is kicked from UserStartController, so its probe may arrive
            // before the kernel asks about device management.
            (
                S::ControllerStarted | S::Running,
                C::UserProcessParallelTask | C::UserInitializeTargetForID,
            ) => Some(state),
            // Stop may come at any point after Start (a failed start is stopped too), once.
            (S::Loaded | S::Stopped, C::UserStopController) => None,
            (_, C::UserStopController) => Some(S::Stopped),
            _ => None,
        }
    }

    /// May `call` be made now? Does not change the state.
    pub const fn check(&self, call: Call) -> Result<State, OutOfOrder> {
        match Self::next(self.state, call) {
            Some(next) => Ok(next),
            None => {
                Err(OutOfOrder { call, state: self.state, expected: Self::expected(self.state) })
            }
        }
    }

    /// Record that `call` succeeded.
    pub fn advance(&mut self, call: Call) -> Result<State, OutOfOrder> {
        let next = self.check(call)?;
        self.state = next;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: [Call; 8] = [
        Call::Start,
        Call::UserInitializeController,
        Call::UserReportInitiatorIdentifier,
        Call::UserReportHighestSupportedDeviceID,
        Call::UserReportMaximumTaskCount,
        Call::UserMapHBAData,
        Call::UserStartController,
        Call::UserDoesHBAPerformDeviceManagement,
    ];

    #[test]
    fn the_kernel_order_is_accepted() {
        let mut l = Lifecycle::new();
        for call in ORDER {
            l.advance(call).unwrap();
        }
        assert_eq!(l.state(), State::Running);
        l.advance(Call::UserStopController).unwrap();
        assert_eq!(l.state(), State::Stopped);
    }

    #[test]
    fn every_skip_ahead_is_refused_and_changes_nothing() {
        // From each point in the order, every call other than the next one (and the repeatable
        // map, and stop) is refused.
        let mut l = Lifecycle::new();
        for (i, expected_next) in ORDER.iter().enumerate() {
            for (j, call) in ORDER.iter().enumerate() {
                // While mapping, more maps and the start are both legal.
                let mapping = l.state() == State::MappingTasks
                    && matches!(call, Call::UserMapHBAData | Call::UserStartController);
                if j == i || mapping {
                    continue;
                }
                let before = l;
                let err = l.advance(*call).unwrap_err();
                assert_eq!(l, before, "a refused call must not change the state");
                assert_eq!(err.call, *call);
                assert_eq!(err.ioreturn(), IOReturn::kIOReturnNotReady);
            }
            l.advance(*expected_next).unwrap();
        }
    }

    #[test]
    fn the_message_names_the_call_the_state_and_what_was_expected() {
        let mut l = Lifecycle::new();
        l.advance(Call::Start).unwrap();
        let err = l.advance(Call::UserMapHBAData).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CallOutOfOrder: UserMapHBAData while the controller is started; expected \
             UserInitializeController (or Stop) (DRIVERKIT.md §1)"
        );
    }

    #[test]
    fn stop_from_anywhere_after_start_but_only_once() {
        let mut l = Lifecycle::new();
        assert!(l.advance(Call::UserStopController).is_err(), "not before Start");
        for n in 1..=ORDER.len() {
            let mut l = Lifecycle::new();
            for call in &ORDER[..n] {
                l.advance(*call).unwrap();
            }
            l.advance(Call::UserStopController).unwrap();
            let err = l.advance(Call::UserStopController).unwrap_err();
            assert_eq!(err.state, State::Stopped);
            for call in ORDER {
                assert!(l.advance(call).is_err(), "{:?} after stop", call);
            }
        }
        l.advance(Call::Start).unwrap();
    }
}
