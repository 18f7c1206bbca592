//! The controller: the core object the dext drives through the C ABI. It holds the platform,
//! the configuration, the lifecycle and the task pool, and answers each DriverKit call in the
//! order the kernel makes them (DRIVERKIT.md §1).

use core::fmt;

use crate::abi;
use crate::ioreturn::IOReturn;
use crate::lifecycle::{Call, Lifecycle, OutOfOrder, State};
use crate::limits::{self, FrameLayout, PageSize};
use crate::platform::Platform;
use crate::stage::Stage;
use crate::task_pool::{PoolError, TaskId, TaskPool};

/// What `UserProcessParallelTask` does with a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskDisposition {
    /// The hardware owns it; the completion comes from the interrupt path.
    InProcess,
    /// The response is built: complete it now.
    CompletedNow,
}

impl TaskDisposition {
    pub const fn abi(self) -> u32 {
        match self {
            TaskDisposition::InProcess => abi::DK_TASK_IN_PROCESS,
            TaskDisposition::CompletedNow => abi::DK_TASK_COMPLETED_NOW,
        }
    }
}

/// The configuration the dext passes at init, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub stage: Stage,
    pub page_size: PageSize,
    /// What `UserReportMaximumTaskCount` answers.
    pub task_count: u32,
    pub frame: FrameLayout,
}

/// A bad `dk_core_config`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    AbiVersion { got: u32, expected: u32 },
    UnknownStage { number: u32 },
    PageSize { bytes: u64 },
    TaskCount { requested: u32, max: u32 },
}

impl ConfigError {
    pub const fn name(&self) -> &'static str {
        match self {
            ConfigError::AbiVersion { .. } => "AbiVersionMismatch",
            ConfigError::UnknownStage { .. } => "UnknownStage",
            ConfigError::PageSize { .. } => "InvalidPageSize",
            ConfigError::TaskCount { .. } => "InvalidTaskCount",
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name())?;
        match *self {
            ConfigError::AbiVersion { got, expected } => {
                write!(f, "the dext was built against ABI {got}, the core implements {expected}")
            }
            ConfigError::UnknownStage { number } => write!(
                f,
                "stage number {number}; valid stages are 0 pipeline, 1 fake-block, \
                 2 single-io, 3 full"
            ),
            ConfigError::PageSize { bytes } => write!(
                f,
                "IOVMPageSize {bytes} is not a power of two in {}..={}",
                limits::MIN_PAGE_SIZE,
                limits::MAX_PAGE_SIZE
            ),
            ConfigError::TaskCount { requested, max } => {
                write!(f, "{requested} tasks asked, the core holds at most {max}")
            }
        }
    }
}

impl Config {
    pub fn from_abi(raw: &abi::dk_core_config) -> Result<Config, ConfigError> {
        if raw.abi_version != abi::DK_ABI_VERSION {
            return Err(ConfigError::AbiVersion {
                got: raw.abi_version,
                expected: abi::DK_ABI_VERSION,
            });
        }
        let stage =
            Stage::from_number(raw.stage).ok_or(ConfigError::UnknownStage { number: raw.stage })?;
        let page_size =
            PageSize::new(raw.page_size).ok_or(ConfigError::PageSize { bytes: raw.page_size })?;
        let task_count = match raw.max_task_count {
            0 => limits::DEFAULT_TASK_COUNT,
            n if n <= limits::MAX_TASK_COUNT => n,
            n => return Err(ConfigError::TaskCount { requested: n, max: limits::MAX_TASK_COUNT }),
        };
        Ok(Config { stage, page_size, task_count, frame: FrameLayout::for_page_size(page_size) })
    }
}

/// Every error a controller call can return, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControllerError {
    Config(ConfigError),
    OutOfOrder(OutOfOrder),
    Pool(PoolError),
    /// `UserStartController` with no task mapped: the kernel fails start when the first
    /// `UserMapHBAData` fails, so this is a caller bug.
    NoTasksMapped,
}

impl ControllerError {
    pub const fn ioreturn(&self) -> IOReturn {
        match self {
            ControllerError::Config(_) => IOReturn::kIOReturnBadArgument,
            ControllerError::OutOfOrder(e) => e.ioreturn(),
            ControllerError::Pool(e) => e.ioreturn(),
            ControllerError::NoTasksMapped => IOReturn::kIOReturnNotReady,
        }
    }
}

impl fmt::Display for ControllerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControllerError::Config(e) => e.fmt(f),
            ControllerError::OutOfOrder(e) => e.fmt(f),
            ControllerError::Pool(e) => e.fmt(f),
            ControllerError::NoTasksMapped => f.write_str(
                "NoTasksMapped: UserStartController with an empty task pool \
                 (every UserMapHBAData failed)",
            ),
        }
    }
}

impl From<OutOfOrder> for ControllerError {
    fn from(e: OutOfOrder) -> Self {
        ControllerError::OutOfOrder(e)
    }
}

impl From<PoolError> for ControllerError {
    fn from(e: PoolError) -> Self {
        ControllerError::Pool(e)
    }
}

impl From<ConfigError> for ControllerError {
    fn from(e: ConfigError) -> Self {
        ControllerError::Config(e)
    }
}

/// The core's state for one controller.
#[derive(Debug)]
pub struct Controller<P: Platform> {
    platform: P,
    config: Config,
    lifecycle: Lifecycle,
    pool: TaskPool,
}

impl<P: Platform> Controller<P> {
    pub fn new(platform: P, config: &abi::dk_core_config) -> Result<Self, ControllerError> {
        let config = Config::from_abi(config)?;
        Ok(Controller { platform, config, lifecycle: Lifecycle::new(), pool: TaskPool::new() })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn state(&self) -> State {
        self.lifecycle.state()
    }

    pub fn pool(&self) -> &TaskPool {
        &self.pool
    }

    pub fn platform(&self) -> &P {
        &self.platform
    }

    pub fn platform_mut(&mut self) -> &mut P {
        &mut self.platform
    }

    /// The dext's `Start` ran (queues created and registered before `SUPERDISPATCH`).
    pub fn start(&mut self) -> Result<(), ControllerError> {
        self.lifecycle.advance(Call::Start)?;
        log::info!("dkraid: start, stage {}", self.config.stage);
        Ok(())
    }

    /// `UserInitializeController`: preparation only; returns the seven constraint keys the
    /// dext must report with `UserReportHBAConstraints` before returning.
    pub fn initialize_controller(&mut self) -> Result<abi::dk_hba_constraints, ControllerError> {
        self.lifecycle.advance(Call::UserInitializeController)?;
        Ok(limits::hba_constraints())
    }

    pub fn report_initiator_identifier(&mut self) -> Result<u64, ControllerError> {
        self.lifecycle.advance(Call::UserReportInitiatorIdentifier)?;
        Ok(limits::INITIATOR_ID)
    }

    pub fn report_highest_supported_device_id(&mut self) -> Result<u64, ControllerError> {
        self.lifecycle.advance(Call::UserReportHighestSupportedDeviceID)?;
        Ok(limits::HIGHEST_TARGET_ID)
    }

    pub fn report_maximum_task_count(&mut self) -> Result<u32, ControllerError> {
        self.lifecycle.check(Call::UserReportMaximumTaskCount)?;
        self.pool.set_count(self.config.task_count)?;
        self.lifecycle.advance(Call::UserReportMaximumTaskCount)?;
        Ok(self.config.task_count)
    }

    /// One `UserMapHBAData`: the next task ID, its frame mapped.
    pub fn map_hba_data(&mut self) -> Result<TaskId, ControllerError> {
        if self.lifecycle.state() != State::MappingTasks {
            // Before the count is known the pool's own error is the more precise one.
            if self.pool.count().is_none() && self.lifecycle.state() != State::Stopped {
                return Err(PoolError::CountNotKnown.into());
            }
            self.lifecycle.check(Call::UserMapHBAData)?;
        }
        let task = self.pool.map_next(&mut self.platform, self.config.frame)?;
        Ok(task)
    }

    pub fn start_controller(&mut self) -> Result<(), ControllerError> {
        self.lifecycle.check(Call::UserStartController)?;
        if self.pool.mapped() == 0 {
            return Err(ControllerError::NoTasksMapped);
        }
        self.lifecycle.advance(Call::UserStartController)?;
        log::info!(
            "dkraid: controller started with {} of {} tasks mapped",
            self.pool.mapped(),
            self.config.task_count
        );
        Ok(())
    }

    /// `UserGetDMASpecification`: 64-bit host-order segments (a Big32 type killed INQUIRY in the
    /// kernel before it reached a dext, DRIVERKIT.md §5).
    pub fn dma_specification(&self) -> abi::dk_dma_specification {
        abi::dk_dma_specification {
            max_transfer_size: limits::MAX_TRANSFER_BYTES,
            alignment: limits::MIN_SEGMENT_ALIGNMENT_BYTES as u32,
            address_bits: limits::SEGMENT_ADDRESSABLE_BITS as u8,
            reserved: 0,
            segment_type: abi::DmaOutputSegmentType::HOST64.0,
        }
    }

    /// `UserDoesHBAPerformDeviceManagement`: always true; the driver creates its targets
    /// itself, asynchronously, from its private target queue.
    pub fn does_hba_perform_device_management(&mut self) -> Result<bool, ControllerError> {
        self.lifecycle.advance(Call::UserDoesHBAPerformDeviceManagement)?;
        Ok(true)
    }

    /// `UserProcessParallelTask`: find the task by its ID, mark it submitted, and decide.
    pub fn process_parallel_task(
        &mut self,
        task: &abi::dk_scsi_user_parallel_task,
        response: &mut abi::dk_scsi_user_parallel_response,
    ) -> Result<TaskDisposition, ControllerError> {
        self.lifecycle.check(Call::UserProcessParallelTask)?;
        let id = self.pool.task(task.fControllerTaskIdentifier)?;
        self.pool.submit(id)?;
        // No stage exposes targets yet: every task is answered as the kernel expects for an
        // absent target (DRIVERKIT.md §1 step 7).
        *response = abi::dk_scsi_user_parallel_response {
            version: u64::from(abi::DK_SCSI_USER_PARALLEL_RESPONSE_VERSION),
            fTargetID: task.fTargetID,
            fControllerTaskIdentifier: task.fControllerTaskIdentifier,
            fServiceResponse: abi::ServiceResponse::SERVICE_DELIVERY_OR_TARGET_FAILURE.0,
            fCompletionStatus: abi::TaskStatus::DEVICE_NOT_PRESENT.0,
            fBytesTransferred: 0,
            ..Default::default()
        };
        self.pool.complete(id)?;
        Ok(TaskDisposition::CompletedNow)
    }

    /// The completion of `task_id` reached the kernel: the slot is free again.
    pub fn task_delivered(&mut self, task_id: u64) -> Result<(), ControllerError> {
        let id = self.pool.task(task_id)?;
        self.pool.release(id)?;
        Ok(())
    }

    /// `UserInitializeTargetForID`.
    pub fn initialize_target(&mut self, target_id: u64) -> Result<(), ControllerError> {
        self.lifecycle.check(Call::UserInitializeTargetForID)?;
        log::info!("dkraid: initialize target {target_id}");
        Ok(())
    }

    /// The next target operation for the private target queue. No stage creates targets yet.
    pub fn next_target_work(&mut self) -> abi::dk_target_work {
        abi::dk_target_work { kind: abi::DK_TARGET_WORK_NONE, reserved: 0, target_id: 0 }
    }

    /// A target operation finished; failures are logged by name.
    pub fn target_work_done(&mut self, kind: u32, target_id: u64, status: IOReturn) {
        if status.is_success() {
            log::info!("dkraid: target work {kind} on target {target_id} done");
        } else {
            log::error!("dkraid: target work {kind} on target {target_id} failed: {status}");
        }
    }

    pub fn stop_controller(&mut self) -> Result<(), ControllerError> {
        self.lifecycle.advance(Call::UserStopController)?;
        Ok(())
    }

    /// Release every DMA buffer. Safe in any state, any number of times.
    pub fn teardown(&mut self) {
        self.pool.teardown(&mut self.platform);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::fake::FakePlatform;

    fn config(page_size: u64, max_task_count: u32) -> abi::dk_core_config {
        abi::dk_core_config {
            abi_version: abi::DK_ABI_VERSION,
            stage: abi::DK_STAGE_PIPELINE,
            page_size,
            max_task_count,
            reserved: 0,
        }
    }

    fn boot_to_mapping(c: &mut Controller<FakePlatform>) -> u32 {
        c.start().unwrap();
        let constraints = c.initialize_controller().unwrap();
        assert_eq!(constraints.min_hba_data_alignment_mask, limits::HBA_DATA_ALIGNMENT_MASK);
        assert_eq!(c.report_initiator_identifier().unwrap(), limits::INITIATOR_ID);
        assert_eq!(c.report_highest_supported_device_id().unwrap(), limits::HIGHEST_TARGET_ID);
        c.report_maximum_task_count().unwrap()
    }

    #[test]
    fn a_full_start_in_kernel_order() {
        let mut c = Controller::new(FakePlatform::new(), &config(16384, 0)).unwrap();
        let n = boot_to_mapping(&mut c);
        assert_eq!(n, limits::DEFAULT_TASK_COUNT);
        for id in 1..=u64::from(n) {
            assert_eq!(c.map_hba_data().unwrap().get(), id);
        }
        assert_eq!(c.map_hba_data(), Err(ControllerError::Pool(PoolError::Exhausted { count: n })));
        c.start_controller().unwrap();
        assert!(c.does_hba_perform_device_management().unwrap());
        assert_eq!(c.state(), State::Running);
        c.stop_controller().unwrap();
        c.teardown();
        assert_eq!(c.platform().live_buffers(), 0);
    }

    #[test]
    fn map_before_the_count_is_a_named_error() {
        let mut c = Controller::new(FakePlatform::new(), &config(16384, 4)).unwrap();
        let err = c.map_hba_data().unwrap_err();
        assert_eq!(err, ControllerError::Pool(PoolError::CountNotKnown));
        assert_eq!(err.ioreturn(), IOReturn::kIOReturnNotReady);
        c.start().unwrap();
        c.initialize_controller().unwrap();
        assert_eq!(c.map_hba_data(), Err(ControllerError::Pool(PoolError::CountNotKnown)));
        assert_eq!(c.platform().create_calls(), 0);
    }

    #[test]
    fn out_of_order_calls_are_refused() {
        let mut c = Controller::new(FakePlatform::new(), &config(16384, 4)).unwrap();
        let err = c.initialize_controller().unwrap_err();
        assert_eq!(err.ioreturn(), IOReturn::kIOReturnNotReady);
        assert!(err.to_string().starts_with("CallOutOfOrder: UserInitializeController"), "{err}");
        boot_to_mapping(&mut c);
        assert!(matches!(
            c.does_hba_perform_device_management(),
            Err(ControllerError::OutOfOrder(_))
        ));
        assert_eq!(c.start_controller(), Err(ControllerError::NoTasksMapped));
        c.map_hba_data().unwrap();
        c.start_controller().unwrap();
        assert!(matches!(c.map_hba_data(), Err(ControllerError::OutOfOrder(_))), "map after start");
        c.stop_controller().unwrap();
        assert!(matches!(c.map_hba_data(), Err(ControllerError::OutOfOrder(_))), "map after stop");
        c.teardown();
    }

    #[test]
    fn bad_configs_are_named() {
        let mut bad = config(16384, 0);
        bad.abi_version = 7;
        assert_eq!(
            Controller::new(FakePlatform::new(), &bad).unwrap_err(),
            ControllerError::Config(ConfigError::AbiVersion { got: 7, expected: 1 })
        );
        let err = Controller::new(FakePlatform::new(), &config(12288, 0)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "InvalidPageSize: IOVMPageSize 12288 is not a power of two in 4096..=65536"
        );
        let err = Controller::new(FakePlatform::new(), &config(4096, 100_000)).unwrap_err();
        assert_eq!(
            err,
            ControllerError::Config(ConfigError::TaskCount { requested: 100_000, max: 256 })
        );
        let mut bad = config(4096, 0);
        bad.stage = 9;
        let err = Controller::new(FakePlatform::new(), &bad).unwrap_err();
        assert!(err.to_string().starts_with("UnknownStage: stage number 9"), "{err}");
        assert_eq!(err.ioreturn(), IOReturn::kIOReturnBadArgument);
    }

    #[test]
    fn four_k_pages_give_four_k_frames() {
        let mut c = Controller::new(FakePlatform::with_page_size(4096), &config(4096, 3)).unwrap();
        assert_eq!(boot_to_mapping(&mut c), 3);
        for _ in 0..3 {
            c.map_hba_data().unwrap();
        }
        assert!(c
            .platform()
            .created
            .iter()
            .all(|&(bytes, align, _)| bytes == 4096 && align == 4096));
        c.teardown();
        assert_eq!(c.platform().live_buffers(), 0);
    }
}
