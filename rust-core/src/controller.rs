//! The controller: the core object the dext drives through the C ABI. It holds the platform,
//! the configuration, the lifecycle and the task pool, and answers each DriverKit call in the
//! order the kernel makes them (DRIVERKIT.md §1).

use core::fmt;

use crate::abi;
use crate::admin::engine::{AdminCallError, AdminEngine, Context};
use crate::admin::stats::{IoKind, IoStatsTable, Started};
use crate::hardware::Hardware;
use crate::ioreturn::IOReturn;
use crate::lifecycle::{Call, Lifecycle, OutOfOrder, State};
use crate::limits::{self, FrameLayout, PageSize};
use crate::platform::Platform;
use crate::scsi::{Data, Emulator, FakeBlock, Identity, Limits};
use crate::stage::Stage;
use crate::targets::{OpKind, TargetError, TargetOp, Targets};
use crate::task_pool::{PoolError, TaskId, TaskPool};

/// What `UserProcessParallelTask` does with a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskDisposition {
    /// The hardware owns it; the completion comes from the interrupt path.
    InProcess,
    /// The response is built: complete it now.
    CompletedNow,
    /// As `CompletedNow`, and run `dk_service` soon: the hardware needs a service pass that no
    /// outstanding task would otherwise cause (a request ring stuck full, say).
    CompletedNowServiceSoon,
}

impl TaskDisposition {
    pub const fn abi(self) -> u32 {
        match self {
            TaskDisposition::InProcess => abi::DK_TASK_IN_PROCESS,
            TaskDisposition::CompletedNow => abi::DK_TASK_COMPLETED_NOW,
            TaskDisposition::CompletedNowServiceSoon => abi::DK_TASK_COMPLETED_NOW_SERVICE_SOON,
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
    /// Stage 1's disk.
    pub fake_block_size: u32,
    pub fake_capacity_blocks: u64,
}

/// Stage 1's disk unless the personality says otherwise: 1 TiB of 512-byte blocks.
pub const DEFAULT_FAKE_BLOCK_SIZE: u32 = 512;
pub const DEFAULT_FAKE_CAPACITY_BYTES: u64 = 1 << 40;

/// A bad `dk_core_config`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    AbiVersion { got: u32, expected: u32 },
    UnknownStage { number: u32 },
    PageSize { bytes: u64 },
    TaskCount { requested: u32, max: u32 },
    FakeGeometry { block_size: u32, capacity_bytes: u64 },
}

impl ConfigError {
    pub const fn name(&self) -> &'static str {
        match self {
            ConfigError::AbiVersion { .. } => "AbiVersionMismatch",
            ConfigError::UnknownStage { .. } => "UnknownStage",
            ConfigError::PageSize { .. } => "InvalidPageSize",
            ConfigError::TaskCount { .. } => "InvalidTaskCount",
            ConfigError::FakeGeometry { .. } => "InvalidFakeBlockGeometry",
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
            ConfigError::FakeGeometry { block_size, capacity_bytes } => write!(
                f,
                "the fake block device's block size {block_size} must be 512, 1024, 2048 or \
                 4096 and its capacity {capacity_bytes} a whole, non-zero number of blocks"
            ),
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
        let fake_block_size = match raw.fake_block_size {
            0 => DEFAULT_FAKE_BLOCK_SIZE,
            n => n,
        };
        let capacity_bytes = match raw.fake_capacity_bytes {
            0 => DEFAULT_FAKE_CAPACITY_BYTES,
            n => n,
        };
        if !matches!(fake_block_size, 512 | 1024 | 2048 | 4096)
            || capacity_bytes % u64::from(fake_block_size) != 0
        {
            return Err(ConfigError::FakeGeometry { block_size: fake_block_size, capacity_bytes });
        }
        Ok(Config {
            stage,
            page_size,
            task_count,
            frame: FrameLayout::for_page_size(page_size),
            fake_block_size,
            fake_capacity_blocks: capacity_bytes / u64::from(fake_block_size),
        })
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
    Target(TargetError),
}

impl ControllerError {
    pub const fn ioreturn(&self) -> IOReturn {
        match self {
            ControllerError::Config(_) => IOReturn::kIOReturnBadArgument,
            ControllerError::OutOfOrder(e) => e.ioreturn(),
            ControllerError::Pool(e) => e.ioreturn(),
            ControllerError::NoTasksMapped => IOReturn::kIOReturnNotReady,
            ControllerError::Target(_) => IOReturn::kIOReturnBadArgument,
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
            ControllerError::Target(e) => e.fmt(f),
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

impl From<TargetError> for ControllerError {
    fn from(e: TargetError) -> Self {
        ControllerError::Target(e)
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
    targets: Targets,
    /// The target of each outstanding task, by slot (for responses built after the fact).
    task_targets: [u64; limits::MAX_TASK_COUNT as usize],
    /// Each outstanding task's LUN and the kernel's tag for it (`fTaskTagIdentifier`): what a
    /// task-management request names.
    task_nexus: [(u64, u64); limits::MAX_TASK_COUNT as usize],
    /// Stage 1's emulated disk, target 0 LUN 0.
    fake: Option<Emulator<FakeBlock>>,
    /// Stages 2 and 3: the controller through its firmware.
    hardware: Option<Hardware>,
    /// Each outstanding task's submission time and kind, for the statistics.
    started: [Started; limits::MAX_TASK_COUNT as usize],
    /// `IO_STATS`: per target and for the controller, from every completion path.
    stats: IoStatsTable,
    /// The admin requests (`dk_admin_*`).
    admin: AdminEngine,
}

/// The target stage 1 exposes.
pub const FAKE_BLOCK_TARGET: u64 = 0;

/// A task's LUN from its SAM LUN bytes (single-level, peripheral or flat addressing).
fn lun_of(task: &abi::dk_scsi_user_parallel_task) -> u64 {
    (u64::from(task.fLogicalUnitBytes[0] & 0x3F) << 8) | u64::from(task.fLogicalUnitBytes[1])
}

/// A task-management function's SAM-2 name.
pub fn tmf_name(function: u32) -> &'static str {
    match function {
        abi::DK_TMF_ABORT_TASK => "ABORT TASK",
        abi::DK_TMF_ABORT_TASK_SET => "ABORT TASK SET",
        abi::DK_TMF_CLEAR_ACA => "CLEAR ACA",
        abi::DK_TMF_CLEAR_TASK_SET => "CLEAR TASK SET",
        abi::DK_TMF_LUN_RESET => "LOGICAL UNIT RESET",
        abi::DK_TMF_TARGET_RESET => "TARGET RESET",
        _ => "an unknown function",
    }
}

impl<P: Platform> Controller<P> {
    pub fn new(platform: P, config: &abi::dk_core_config) -> Result<Self, ControllerError> {
        let mut slot = core::mem::MaybeUninit::<Self>::uninit();
        // SAFETY: `slot` is valid and aligned for a `Self`.
        unsafe { Self::new_in_place(slot.as_mut_ptr(), platform, config)? };
        // SAFETY: on `Ok` every field was written.
        Ok(unsafe { slot.assume_init() })
    }

    /// A new controller written straight into `slot`, field by field: the controller is tens of
    /// kilobytes (the admin slots' response buffers, the statistics), more than a dext
    /// thread's stack should carry, and an unoptimised build would copy it several times on
    /// the way.
    ///
    /// # Safety
    /// `slot` must be valid for writes of a `Controller<P>` and aligned; its previous content
    /// is overwritten without being read or dropped. On `Err` nothing was written.
    pub unsafe fn new_in_place(
        slot: *mut Self,
        platform: P,
        config: &abi::dk_core_config,
    ) -> Result<(), ControllerError> {
        let config = Config::from_abi(config)?;
        let fake = (config.stage == Stage::FakeBlock).then(|| {
            Emulator::new(
                FakeBlock::new(config.fake_block_size, config.fake_capacity_blocks),
                Identity::dkraid(b"Fake Block", 0),
                Limits::default(),
            )
        });
        let hardware = matches!(config.stage, Stage::SingleIo | Stage::Full)
            .then(|| Hardware::new(config.stage));
        // Each field is written once through a pointer derived from `slot`, which the caller
        // promises is valid and aligned for a `Self`; nothing is read.
        macro_rules! put {
            ($field:ident, $value:expr) => {{
                let value = $value;
                // SAFETY: a place projection of `slot` (valid and aligned, as promised).
                let field = unsafe { core::ptr::addr_of_mut!((*slot).$field) };
                // SAFETY: `field` points into `slot`, valid for writes.
                unsafe { field.write(value) };
            }};
        }
        put!(platform, platform);
        put!(config, config);
        put!(lifecycle, Lifecycle::new());
        put!(pool, TaskPool::new());
        put!(targets, Targets::new());
        put!(task_targets, [0; limits::MAX_TASK_COUNT as usize]);
        put!(task_nexus, [(0, 0); limits::MAX_TASK_COUNT as usize]);
        put!(fake, fake);
        put!(hardware, hardware);
        put!(started, [Started::NONE; limits::MAX_TASK_COUNT as usize]);
        put!(stats, IoStatsTable::new());
        put!(admin, AdminEngine::new());
        Ok(())
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
        if self.fake.is_some() {
            // Stage 1: one emulated disk, created asynchronously from the target queue.
            self.targets.push(TargetOp { kind: OpKind::Create, target: FAKE_BLOCK_TARGET })?;
        }
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

    /// Does this task go to an emulated target, whose data the core must see?
    pub fn wants_data_buffer(&self, task: &abi::dk_scsi_user_parallel_task) -> bool {
        self.emulated(task.fTargetID)
            && task.fTransferDirection != 0
            && task.fRequestedTransferCount > 0
    }

    fn emulated(&self, target: u64) -> bool {
        self.fake.is_some() && target == FAKE_BLOCK_TARGET && self.targets.is_reachable(target)
    }

    /// `UserProcessParallelTask`: find the task by its ID, mark it submitted, and decide.
    /// `data` is the task's data mapped for the CPU, for an emulated target.
    pub fn process_parallel_task(
        &mut self,
        task: &abi::dk_scsi_user_parallel_task,
        data: Option<&mut [u8]>,
        response: &mut abi::dk_scsi_user_parallel_response,
    ) -> Result<TaskDisposition, ControllerError> {
        self.lifecycle.check(Call::UserProcessParallelTask)?;
        let id = self.pool.task(task.fControllerTaskIdentifier)?;
        self.pool.submit(id)?;
        self.task_targets[(id.get() - 1) as usize] = task.fTargetID;
        self.task_nexus[(id.get() - 1) as usize] = (lun_of(task), task.fTaskTagIdentifier);
        self.started[(id.get() - 1) as usize] =
            Started::new(self.platform.monotonic_time_ns(), IoKind::of_task(task));
        *response = abi::dk_scsi_user_parallel_response {
            version: u64::from(abi::DK_SCSI_USER_PARALLEL_RESPONSE_VERSION),
            fTargetID: task.fTargetID,
            fControllerTaskIdentifier: task.fControllerTaskIdentifier,
            ..Default::default()
        };
        let emulated = self.emulated(task.fTargetID);
        let mut service_soon = false;
        match (emulated, self.fake.as_mut()) {
            (true, Some(device)) => {
                let cdb_len =
                    usize::from(task.fCommandSize).min(task.fCommandDescriptorBlock.len());
                let cdb = &task.fCommandDescriptorBlock[..cdb_len];
                let lun = lun_of(task);
                let requested = task.fRequestedTransferCount;
                let data = match (task.fTransferDirection, data) {
                    (2, Some(buf)) => Data::In(buf),
                    (1, Some(buf)) => Data::Out(buf),
                    _ => Data::None,
                };
                let done = device.execute(cdb, lun, requested, data);
                response.fServiceResponse = abi::ServiceResponse::TASK_COMPLETE.0;
                response.fCompletionStatus = u32::from(done.status);
                response.fBytesTransferred = done.bytes;
                if let Some(sense) = done.sense {
                    let fixed = sense.to_fixed();
                    response.fSenseLength = fixed.len() as u8;
                    response.fSenseBuffer[..fixed.len()].copy_from_slice(&fixed);
                }
            }
            _ if self.hardware.is_some() && self.targets.is_reachable(task.fTargetID) => {
                let now = self.platform.monotonic_time_ns();
                let hw = self.hardware.as_mut().ok_or(ControllerError::NoTasksMapped)?;
                if hw.failed().is_some() {
                    // Dead for good: a hard error the host does not retry, with its sense.
                    let sense = crate::scsi::sense::Sense::new(
                        crate::scsi::sense::SenseKey::HardwareError,
                        crate::scsi::sense::Asc::INTERNAL_TARGET_FAILURE,
                    )
                    .to_fixed();
                    response.fServiceResponse = abi::ServiceResponse::TASK_COMPLETE.0;
                    response.fCompletionStatus = abi::TaskStatus::CHECK_CONDITION.0;
                    response.fSenseLength = sense.len() as u8;
                    response.fSenseBuffer[..sense.len()].copy_from_slice(&sense);
                } else if !hw.is_operational() {
                    // The firmware is coming up (or back after a reset): the kernel retries.
                    response.fServiceResponse = abi::ServiceResponse::TASK_COMPLETE.0;
                    response.fCompletionStatus = abi::TaskStatus::BUSY.0;
                } else {
                    match hw.submit(&mut self.platform, &self.pool, id, task, now) {
                        Ok(()) => return Ok(TaskDisposition::InProcess),
                        Err(crate::firmware::RequestError::RingFull) => {
                            response.fServiceResponse = abi::ServiceResponse::TASK_COMPLETE.0;
                            response.fCompletionStatus = abi::TaskStatus::TASK_SET_FULL.0;
                            service_soon = hw.needs_service();
                        }
                        Err(e) => {
                            log::error!("dkraid: {id} cannot be sent to the firmware: {e:?}");
                            response.fServiceResponse =
                                abi::ServiceResponse::SERVICE_DELIVERY_OR_TARGET_FAILURE.0;
                            response.fCompletionStatus = abi::TaskStatus::DELIVERY_FAILURE.0;
                        }
                    }
                }
            }
            _ => {
                // No such target: answer as the kernel expects for an absent ID
                // (DRIVERKIT.md §1 step 7).
                response.fServiceResponse =
                    abi::ServiceResponse::SERVICE_DELIVERY_OR_TARGET_FAILURE.0;
                response.fCompletionStatus = abi::TaskStatus::DEVICE_NOT_PRESENT.0;
            }
        }
        self.pool.complete(id)?;
        let now = self.platform.monotonic_time_ns();
        self.stats.complete(task.fTargetID, self.started[(id.get() - 1) as usize], now, response);
        Ok(if service_soon {
            TaskDisposition::CompletedNowServiceSoon
        } else {
            TaskDisposition::CompletedNow
        })
    }

    /// Complete an outstanding task with a delivery failure (Stop, reset): Submitted →
    /// Completed, and the response to hand to the kernel.
    pub fn fail_task(
        &mut self,
        task_id: u64,
    ) -> Result<abi::dk_scsi_user_parallel_response, ControllerError> {
        let id = self.pool.task(task_id)?;
        self.pool.complete(id)?;
        let slot = (id.get() - 1) as usize;
        let response = abi::dk_scsi_user_parallel_response {
            version: u64::from(abi::DK_SCSI_USER_PARALLEL_RESPONSE_VERSION),
            fTargetID: self.task_targets[slot],
            fControllerTaskIdentifier: task_id,
            fServiceResponse: abi::ServiceResponse::SERVICE_DELIVERY_OR_TARGET_FAILURE.0,
            fCompletionStatus: abi::TaskStatus::DELIVERY_FAILURE.0,
            ..Default::default()
        };
        let now = self.platform.monotonic_time_ns();
        self.stats.complete(response.fTargetID, self.started[slot], now, &response);
        Ok(response)
    }

    /// The SAM-2 task-management functions (`UserAbortTaskRequest` and its siblings): every
    /// outstanding task of the nexus — `target`, and `lun` and `tag` where the function names
    /// them — is aborted through the firmware (one ABORT_TASK at a time, escalating to a
    /// controller reset if the firmware does not answer), and completes through the interrupt
    /// path with a retryable status. The function itself completes at once: FUNCTION_COMPLETE
    /// (also when nothing matched, as SAM-2 has it), FUNCTION_REJECTED for CLEAR ACA (this HBA
    /// never sets NACA) or an unknown function. Stages 0 and 1 never hold a task, so nothing is
    /// ever outstanding there. Returns the service response and how many tasks are aborting.
    pub fn task_management(
        &mut self,
        function: u32,
        target: u64,
        lun: u64,
        tag: u64,
    ) -> Result<(abi::ServiceResponse, u32), ControllerError> {
        self.lifecycle.check(Call::UserProcessParallelTask)?;
        let (match_lun, match_tag) = match function {
            abi::DK_TMF_ABORT_TASK => (true, true),
            abi::DK_TMF_ABORT_TASK_SET | abi::DK_TMF_CLEAR_TASK_SET | abi::DK_TMF_LUN_RESET => {
                (true, false)
            }
            abi::DK_TMF_TARGET_RESET => (false, false),
            _ => return Ok((abi::ServiceResponse::FUNCTION_REJECTED, 0)),
        };
        let mut aborting = 0;
        if let Some(hw) = self.hardware.as_mut() {
            for slot in 0..self.pool.mapped() as usize {
                let Some(id) = crate::task_pool::TaskId::new(slot as u64 + 1) else { continue };
                if self.pool.state(id) != Ok(crate::task_pool::SlotState::Submitted)
                    || self.task_targets[slot] != target
                {
                    continue;
                }
                let (task_lun, task_tag) = self.task_nexus[slot];
                if (match_lun && task_lun != lun) || (match_tag && task_tag != tag) {
                    continue;
                }
                if hw.abort_now(id) {
                    aborting += 1;
                }
            }
        }
        log::info!(
            "dkraid: task management {} on target {target} LUN {lun} tag {tag}: {aborting} task(s) aborting",
            tmf_name(function)
        );
        Ok((abi::ServiceResponse::FUNCTION_COMPLETE, aborting))
    }

    /// Stages 2 and 3: interrupts and timers. Responses of tasks that completed go to `out`
    /// (it must hold one per task); the number written, and when to be called again in ns
    /// (0: on the next interrupt only).
    pub fn service(
        &mut self,
        now_ns: u64,
        out: &mut [abi::dk_scsi_user_parallel_response],
    ) -> Result<(usize, u64), ControllerError> {
        // An interrupt or timer before UserStartController is legal (the device may signal
        // READY while the kernel is still mapping tasks): nothing is done until the controller
        // starts, and UserStartController's own service pass picks the hardware up. After
        // UserStopController it is a call out of order.
        if matches!(
            self.lifecycle.state(),
            State::Loaded
                | State::Started
                | State::Initialized
                | State::InitiatorReported
                | State::HighestIdReported
                | State::MappingTasks
        ) {
            log::debug!(
                "dkraid: service before UserStartController ({}): deferred",
                self.lifecycle.state().name()
            );
            return Ok((0, 0));
        }
        self.lifecycle.check(Call::UserProcessParallelTask)?;
        let Some(hw) = self.hardware.as_mut() else {
            return Ok((0, 0));
        };
        let tasks = self.pool.mapped();
        if out.len() < tasks as usize {
            return Err(ControllerError::Pool(PoolError::CountTooLarge {
                requested: tasks,
                max: out.len() as u32,
            }));
        }
        let mut n = 0;
        let task_targets = &self.task_targets;
        let started = &self.started;
        let stats = &mut self.stats;
        let poll = hw.service(
            &mut self.platform,
            &mut self.pool,
            &mut self.targets,
            tasks,
            now_ns,
            &mut self.admin,
            |mut r| {
                let index = r.fControllerTaskIdentifier.wrapping_sub(1) as usize;
                r.fTargetID = task_targets.get(index).copied().unwrap_or(0);
                let start = started.get(index).copied().unwrap_or(Started::NONE);
                stats.complete(r.fTargetID, start, now_ns, &r);
                if let Some(slot) = out.get_mut(n) {
                    *slot = r;
                    n += 1;
                }
            },
        );
        Ok((n, poll))
    }

    pub fn hardware(&self) -> Option<&Hardware> {
        self.hardware.as_ref()
    }

    /// Take one admin request (the user client's structure input); every request gets a
    /// ticket, a malformed or unpermitted one too. Firmware-backed requests are sent from
    /// [`Controller::service`].
    pub fn admin_submit(
        &mut self,
        owner: u64,
        request: &[u8],
        entitled: bool,
    ) -> Result<u32, AdminCallError> {
        let ctx = Context { stage: self.config.stage, stats: &self.stats };
        self.admin.submit(owner, request, entitled, ctx)
    }

    /// The next ticket whose response is ready and was not reported yet, and its size.
    pub fn admin_next_ready(&mut self) -> Option<(u32, u32)> {
        self.admin.next_ready()
    }

    /// Copy a ready response of `owner` into `out` and free its slot.
    pub fn admin_fetch(
        &mut self,
        owner: u64,
        ticket: u32,
        out: &mut [u8],
    ) -> Result<usize, AdminCallError> {
        self.admin.fetch(owner, ticket, out)
    }

    /// Forget a ticket (nobody waits for it).
    pub fn admin_cancel(&mut self, ticket: u32) -> Result<(), AdminCallError> {
        self.admin.cancel(ticket)
    }

    /// `owner`'s connection closed: forget all its tickets; returns how many.
    pub fn admin_close(&mut self, owner: u64) -> usize {
        self.admin.close(owner)
    }

    /// The newest event sequence the firmware announced (0: none, and in stages 0 and 1).
    pub fn admin_event_sequence(&self) -> u64 {
        self.hardware.as_ref().map_or(0, Hardware::event_sequence)
    }

    pub fn admin(&self) -> &AdminEngine {
        &self.admin
    }

    pub fn io_stats(&self) -> &IoStatsTable {
        &self.stats
    }

    /// Tasks submitted and not completed (the hardware owns them).
    pub fn outstanding_tasks(&self) -> usize {
        self.pool.count_in(crate::task_pool::SlotState::Submitted)
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

    /// The next target operation for the private target queue, one at a time.
    pub fn next_target_work(&mut self) -> abi::dk_target_work {
        match self.targets.take_next() {
            Some(op) => op.abi(),
            None => {
                abi::dk_target_work { kind: abi::DK_TARGET_WORK_NONE, reserved: 0, target_id: 0 }
            }
        }
    }

    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// A target operation finished; failures are logged by name.
    pub fn target_work_done(
        &mut self,
        kind: u32,
        target_id: u64,
        status: IOReturn,
    ) -> Result<(), ControllerError> {
        self.targets.done(kind, target_id, status.is_success())?;
        if status.is_success() {
            log::info!("dkraid: target work {kind} on target {target_id} done");
        } else {
            log::error!("dkraid: target work {kind} on target {target_id} failed: {status}");
        }
        Ok(())
    }

    pub fn stop_controller(&mut self) -> Result<(), ControllerError> {
        self.lifecycle.advance(Call::UserStopController)?;
        // No service pass runs after Stop: admin requests still waiting are answered now.
        self.admin.controller_stopped();
        Ok(())
    }

    /// Release every DMA buffer. Safe in any state, any number of times.
    pub fn teardown(&mut self) {
        if let Some(hw) = self.hardware.as_mut() {
            hw.release(&mut self.platform);
        }
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
            fake_block_size: 0,
            fake_capacity_bytes: 0,
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

    fn fake_stage() -> Controller<FakePlatform> {
        let mut cfg = config(16384, 4);
        cfg.stage = abi::DK_STAGE_FAKE_BLOCK;
        cfg.fake_block_size = 4096;
        cfg.fake_capacity_bytes = 1 << 30;
        let mut c = Controller::new(FakePlatform::new(), &cfg).unwrap();
        boot_to_mapping(&mut c);
        for _ in 0..4 {
            c.map_hba_data().unwrap();
        }
        c.start_controller().unwrap();
        c
    }

    fn task(
        id: u64,
        target: u64,
        cdb: &[u8],
        direction: u8,
        requested: u64,
    ) -> abi::dk_scsi_user_parallel_task {
        let mut t = abi::dk_scsi_user_parallel_task {
            version: 1,
            fTargetID: target,
            fControllerTaskIdentifier: id,
            fRequestedTransferCount: requested,
            fCommandSize: cdb.len() as u8,
            fTransferDirection: direction,
            ..Default::default()
        };
        t.fCommandDescriptorBlock[..cdb.len()].copy_from_slice(cdb);
        t
    }

    #[test]
    fn stage_1_creates_target_0_and_emulates_it() {
        let mut c = fake_stage();
        let work = c.next_target_work();
        assert_eq!((work.kind, work.target_id), (abi::DK_TARGET_WORK_CREATE, 0));
        assert_eq!(c.next_target_work().kind, abi::DK_TARGET_WORK_NONE, "one at a time");
        // The probe runs while the create is in flight.
        let inquiry = task(1, 0, &[0x12, 0, 0, 0, 36, 0], 2, 36);
        assert!(c.wants_data_buffer(&inquiry));
        let mut data = [0u8; 36];
        let mut r = abi::dk_scsi_user_parallel_response::default();
        assert_eq!(
            c.process_parallel_task(&inquiry, Some(&mut data), &mut r),
            Ok(TaskDisposition::CompletedNow)
        );
        assert_eq!(
            (r.version, r.fServiceResponse, r.fCompletionStatus, r.fBytesTransferred),
            (1, 2, 0, 36)
        );
        assert_eq!(&data[8..16], b"DKRAID  ");
        c.task_delivered(1).unwrap();
        c.target_work_done(work.kind, 0, IOReturn::kIOReturnSuccess).unwrap();
        assert!(c.targets().is_present(0));
        // Reads fail MEDIUM ERROR with the LBA; the power-on unit attention comes first.
        let read = task(2, 0, &[0x28, 0, 0, 0, 0, 9, 0, 0, 1, 0], 2, 4096);
        let mut block = [0u8; 4096];
        c.process_parallel_task(&read, Some(&mut block), &mut r).unwrap();
        assert_eq!(
            (r.fCompletionStatus, r.fSenseLength, r.fSenseBuffer[2], r.fSenseBuffer[12]),
            (2, 18, 6, 0x29)
        );
        c.task_delivered(2).unwrap();
        c.process_parallel_task(&read, Some(&mut block), &mut r).unwrap();
        assert_eq!(
            (r.fCompletionStatus, r.fSenseBuffer[2], r.fSenseBuffer[12], r.fSenseBuffer[6]),
            (2, 3, 0x11, 9)
        );
        assert_eq!(r.fBytesTransferred, 0);
        c.task_delivered(2).unwrap();
        // Writes are accepted and discarded.
        let write = task(3, 0, &[0x2A, 0, 0, 0, 0, 9, 0, 0, 1, 0], 1, 4096);
        c.process_parallel_task(&write, Some(&mut block), &mut r).unwrap();
        assert_eq!((r.fCompletionStatus, r.fBytesTransferred), (0, 4096));
        // A task that is still outstanding cannot be submitted again.
        assert!(matches!(
            c.process_parallel_task(&write, Some(&mut block), &mut r),
            Err(ControllerError::Pool(PoolError::InvalidTransition { .. }))
        ));
        c.task_delivered(3).unwrap();
        // Other targets do not exist.
        let tur = task(4, 5, &[0; 6], 0, 0);
        assert!(!c.wants_data_buffer(&tur));
        c.process_parallel_task(&tur, None, &mut r).unwrap();
        assert_eq!((r.fServiceResponse, r.fCompletionStatus), (1, 4));
        c.teardown();
    }

    #[test]
    fn stage_1_geometry_is_validated() {
        let mut cfg = config(16384, 4);
        cfg.stage = abi::DK_STAGE_FAKE_BLOCK;
        cfg.fake_block_size = 520;
        let err = Controller::new(FakePlatform::new(), &cfg).unwrap_err();
        assert!(err.to_string().starts_with("InvalidFakeBlockGeometry"), "{err}");
        cfg.fake_block_size = 4096;
        cfg.fake_capacity_bytes = 4097;
        assert!(Controller::new(FakePlatform::new(), &cfg).is_err());
        // Pipeline exposes nothing.
        let mut c = Controller::new(FakePlatform::new(), &config(16384, 2)).unwrap();
        boot_to_mapping(&mut c);
        c.map_hba_data().unwrap();
        c.start_controller().unwrap();
        assert_eq!(c.next_target_work().kind, abi::DK_TARGET_WORK_NONE);
        c.teardown();
    }

    #[test]
    fn stop_fails_outstanding_tasks_once() {
        let mut c = Controller::new(FakePlatform::new(), &config(16384, 2)).unwrap();
        boot_to_mapping(&mut c);
        c.map_hba_data().unwrap();
        c.map_hba_data().unwrap();
        c.start_controller().unwrap();
        // An outstanding task (as the hardware path leaves it).
        let t = c.pool.task(2).unwrap();
        c.pool.submit(t).unwrap();
        c.task_targets[1] = 7;
        assert_eq!(c.outstanding_tasks(), 1);
        let r = c.fail_task(2).unwrap();
        assert_eq!((r.version, r.fTargetID, r.fControllerTaskIdentifier), (1, 7, 2));
        assert_eq!((r.fServiceResponse, r.fCompletionStatus), (1, 5));
        assert!(c.fail_task(2).is_err(), "exactly once");
        assert!(c.fail_task(1).is_err(), "task 1 was not outstanding");
        c.task_delivered(2).unwrap();
        assert_eq!(c.outstanding_tasks(), 0);
        c.teardown();
    }

    /// Issue 6's budget: the core's state is at most 256 bytes per task (the DMA frames are
    /// the platform's memory, not the core's).
    #[test]
    fn core_state_is_at_most_256_bytes_per_task() {
        // The fixed tables — the admin slots' response buffers and the I/O statistics — do
        // not grow with the task count; everything else is counted per task.
        let admin = core::mem::size_of::<AdminEngine>();
        let stats = core::mem::size_of::<IoStatsTable>();
        let bytes = core::mem::size_of::<Controller<FakePlatform>>();
        let per_task = (bytes - admin - stats) / limits::MAX_TASK_COUNT as usize;
        assert!(
            per_task <= 256,
            "{bytes} bytes for {} tasks: {per_task} per task",
            limits::MAX_TASK_COUNT
        );
        assert!(admin <= 17 * 1024, "the admin slots take {admin} bytes");
        assert!(stats <= 22 * 1024, "the statistics take {stats} bytes");
        std::println!(
            "core state: {bytes} bytes: {per_task} per task, admin slots {admin}, statistics \
             {stats}"
        );
    }
}
