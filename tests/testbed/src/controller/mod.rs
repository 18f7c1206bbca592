//! The simulated PCI RAID controller behind BAR0 — the device the dext drives in bring-up
//! stages `single-io` and `full`. Shaped like a modern SAS RAID adapter: a register window
//! (`wire::reg`), a firmware state machine with a doorbell handshake, a request ring of
//! descriptors naming frames in each task's DMA memory, a reply ring with a phase bit, MSI-X
//! interrupts, and a RAID array behind the firmware. The wire format is the core's
//! (`dkraid_core::firmware::wire`); `docs/CONTROLLER.md` is the protocol as the device
//! implements it.
//!
//! - [`device`]: registers, doorbells, reply posting, faults (what MMIO reaches).
//! - `firmware`: the simulated thread named "firmware" that consumes requests.
//! - [`array`]: the storage behind the firmware ([`Array`], [`RamArray`]).
//! - [`interrupts`]: `IOInterruptDispatchSource`'s runtime side and MSI-X delivery.
//!
//! Everything lives in `Rc<RefCell<…>>`s borrowed only inside short functions without a
//! scheduling point; the firmware sleeps, blocks and idles only with no borrow held.

pub mod array;
pub mod device;
mod firmware;
pub mod interrupts;
#[cfg(test)]
mod tests;

use std::cell::{RefCell, RefMut};
use std::collections::BTreeMap;
use std::rc::Rc;

use dkraid_core::scsi::{Emulator, Identity, Limits};

pub use array::{event_ext, Array, MgmtError, RamArray, SharedArray, VolumePort, VolumeSpec};
pub use device::{Device, Stats};

use crate::sched::{self, Scheduler};
use crate::world::with_world;

/// The size of BAR0 as `GetBARInfo` reports it (`dksim_pci_bar_info`). Offsets past the
/// registers read 0 and ignore writes; offsets past the BAR read all ones.
pub const BAR0_SIZE: u64 = 64 * 1024;
// The driver's register window (`wire::reg::BAR0_BYTES`) lies inside the BAR.
const _: () = assert!(dkraid_core::firmware::wire::reg::BAR0_BYTES <= BAR0_SIZE);

/// The virtual cost of one BAR access (an uncached load or store over PCIe), charged to the
/// thread that makes it.
pub const MMIO_ACCESS_NS: u64 = 200;

/// Fault codes: `FW_STATE` bits 31..16 when the state is FAULT.
pub mod fault_code {
    /// The init frame could not be read (its IOVA is not mapped).
    pub const INIT_FRAME_UNREADABLE: u16 = 0x0001;
    /// The init frame's magic is not `INIT_MAGIC` ("DKFW").
    pub const BAD_INIT_MAGIC: u16 = 0x0002;
    /// The init frame's version is not `INIT_VERSION`.
    pub const BAD_INIT_VERSION: u16 = 0x0003;
    /// A ring has fewer than 2 or more than MAX_COMMANDS entries.
    pub const BAD_RING_ENTRIES: u16 = 0x0004;
    /// The MSI-X vector is not one the device has.
    pub const BAD_MSIX_VECTOR: u16 = 0x0005;
    /// A ring's IOVA is 0 or the ring is not mapped in full.
    pub const RING_NOT_MAPPED: u16 = 0x0006;
    /// A DMA access (ring, frame, SGE, sense, management buffer) hit no live mapping.
    pub const DMA_FAULT: u16 = 0x0010;
    /// REQUEST_PRODUCER was at or past the request ring's size.
    pub const REQUEST_PRODUCER_OUT_OF_RANGE: u16 = 0x0011;
    /// REPLY_CONSUMER was at or past the reply ring's size.
    pub const REPLY_CONSUMER_OUT_OF_RANGE: u16 = 0x0012;
}

/// The `scsi_status` of MANAGEMENT and ABORT_TASK replies (SCSI_IO replies carry a SCSI status):
/// the core's definition, the one both sides use.
pub use dkraid_core::firmware::wire::mgmt_status;

/// `INTR_STATUS` / `INTR_MASK` bits.
pub mod intr {
    /// Replies were posted.
    pub const REPLY: u32 = 0x1;
    /// FW_STATE changed (READY, OPERATIONAL, FAULT).
    pub const STATE: u32 = 0x2;
}

/// The IOC facts registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// Commands the firmware takes at once; also the largest ring it accepts.
    pub max_commands: u32,
    pub max_targets: u32,
    pub max_sge: u32,
    pub max_transfer_kib: u32,
}

impl Default for Facts {
    fn default() -> Self {
        Facts { max_commands: 1024, max_targets: 128, max_sge: 32, max_transfer_kib: 8192 }
    }
}

/// The device's timing model (virtual nanoseconds). Firmware work is slept, so host threads
/// run meanwhile; MMIO is charged to the accessing thread ([`MMIO_ACCESS_NS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// RESET → READY, at power-on and after a RESET doorbell.
    pub ready_ns: u64,
    /// INIT doorbell → OPERATIONAL (or FAULT).
    pub init_ns: u64,
    /// Per SCSI_IO request, plus `io_ps_per_byte` per byte of data.
    pub io_base_ns: u64,
    /// Picoseconds per data byte (500: 0.5 ns per byte, 2 GB/s).
    pub io_ps_per_byte: u64,
    pub mgmt_ns: u64,
    pub abort_ns: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            ready_ns: 200_000,
            init_ns: 50_000,
            io_base_ns: 20_000,
            io_ps_per_byte: 500,
            mgmt_ns: 100_000,
            abort_ns: 5_000,
        }
    }
}

impl Timing {
    /// The firmware time of one SCSI_IO moving `bytes`.
    pub fn io_ns(&self, bytes: u64) -> u64 {
        self.io_base_ns + bytes.saturating_mul(self.io_ps_per_byte) / 1000
    }
}

/// The RAID engine as the controller shares it.
pub type SharedRaid = Rc<RefCell<crate::raid::Raid>>;

/// What the controller's array is made of.
#[derive(Clone, Debug)]
pub enum ArraySpec {
    /// The RAID engine built from a spec (`--drives/--volume/--spare`; `docs/RAID.md`).
    Raid { spec: crate::raid::ArraySpec, backing: crate::raid::Backing },
    /// A RAID engine someone already built (and may keep a handle on for fault injection).
    Engine(SharedRaid),
    /// The stand-in: sparse RAM volumes, one drive each ([`RamArray`]).
    Ram(Vec<VolumeSpec>),
}

impl Default for ArraySpec {
    /// The RAID engine's default array in memory: six 2 GiB drives, a RAID 5 over drives 0-4
    /// (8 GiB, volume 0 = target 0), drive 5 a hot spare.
    fn default() -> Self {
        ArraySpec::Raid {
            spec: crate::raid::ArraySpec::default(),
            backing: crate::raid::Backing::Memory,
        }
    }
}

impl ArraySpec {
    /// One RAM volume of 1 GiB with 512-byte blocks, target 0.
    pub fn ram() -> ArraySpec {
        ArraySpec::Ram(vec![VolumeSpec::DEFAULT])
    }

    /// The array, and the RAID engine's own handle when it is one.
    fn build(&self) -> Result<(SharedArray, Option<SharedRaid>), String> {
        Ok(match self {
            ArraySpec::Raid { spec, backing } => {
                let raid = Rc::new(RefCell::new(spec.build(backing).map_err(|e| e.to_string())?));
                (raid.clone(), Some(raid))
            }
            ArraySpec::Engine(raid) => (raid.clone(), Some(raid.clone())),
            ArraySpec::Ram(v) => (Rc::new(RefCell::new(RamArray::new(v))), None),
        })
    }
}

/// How to build a controller.
#[derive(Clone, Debug, Default)]
pub struct ControllerConfig {
    pub facts: Facts,
    pub timing: Timing,
    /// MSI-X vectors the device has (at least 1).
    pub msix_vectors: u32,
    pub array: ArraySpec,
}

impl ControllerConfig {
    /// The default controller with `array`.
    pub fn with_array(array: ArraySpec) -> ControllerConfig {
        ControllerConfig { array, ..ControllerConfig::default() }
    }
}

/// The volumes' SCSI personalities: one emulator per volume, kept across commands so unit
/// attentions and mode pages persist.
#[derive(Debug)]
pub(crate) struct Engine {
    pub array: SharedArray,
    pub emulators: BTreeMap<u16, Emulator<VolumePort>>,
    limits: Limits,
}

impl Engine {
    fn new(array: SharedArray, facts: &Facts) -> Engine {
        let limits = Limits {
            max_transfer_bytes: u64::from(facts.max_transfer_kib) * 1024,
            ..Limits::default()
        };
        let mut e = Engine { array, emulators: BTreeMap::new(), limits };
        e.sync();
        e
    }

    /// Match the emulators to the array's volumes: new volumes get a fresh emulator (which
    /// reports POWER ON OR RESET first), deleted ones lose theirs.
    pub fn sync(&mut self) {
        let ids: Vec<u16> = self.array.borrow().volumes().iter().map(|v| v.id.get()).collect();
        self.emulators.retain(|id, _| ids.contains(id));
        for id in ids {
            if self.emulators.contains_key(&id) {
                continue;
            }
            if let Some(port) = VolumePort::new(self.array.clone(), id) {
                let identity = Identity::dkraid(b"Virtual Volume", u32::from(id));
                self.emulators.insert(id, Emulator::new(port, identity, self.limits));
            }
        }
    }

    /// A controller reset is a reset of every volume.
    pub fn reset(&mut self) {
        for e in self.emulators.values_mut() {
            e.reset();
        }
    }
}

#[derive(Debug)]
struct Inner {
    config: ControllerConfig,
    device: RefCell<Device>,
    engine: RefCell<Engine>,
    raid: Option<SharedRaid>,
}

/// The simulated controller: a cheap handle (clones share one device). The world holds one
/// (`World::controller`) for MMIO; the firmware thread holds another.
#[derive(Clone, Debug)]
pub struct Controller {
    inner: Rc<Inner>,
}

impl Controller {
    /// A controller in state RESET. It becomes READY `timing.ready_ns` after its firmware
    /// thread starts ([`Controller::start`]). Panics if the array spec cannot be built (use
    /// [`Controller::try_new`] to get the error).
    pub fn new(config: ControllerConfig) -> Controller {
        Controller::try_new(config).unwrap_or_else(|e| panic!("the controller's array: {e}"))
    }

    /// As [`Controller::new`], with the array spec's error (naming the bad token).
    pub fn try_new(mut config: ControllerConfig) -> Result<Controller, String> {
        config.msix_vectors = config.msix_vectors.max(1);
        let (array, raid) = config.array.build()?;
        let engine = Engine::new(array, &config.facts);
        Ok(Controller {
            inner: Rc::new(Inner {
                device: RefCell::new(Device::new(config.facts)),
                engine: RefCell::new(engine),
                raid,
                config,
            }),
        })
    }

    /// Spawn the firmware thread (from a simulated thread).
    pub fn start(&self) {
        let c = self.clone();
        let t = sched::spawn("firmware", move || firmware::run(c));
        self.dev().thread = Some(t);
    }

    /// Spawn the firmware thread before (or between) runs.
    pub fn start_on(&self, scheduler: &mut Scheduler) {
        let c = self.clone();
        let t = scheduler.spawn("firmware", move || firmware::run(c));
        self.dev().thread = Some(t);
    }

    pub fn config(&self) -> &ControllerConfig {
        &self.inner.config
    }

    pub fn msix_vectors(&self) -> u32 {
        self.inner.config.msix_vectors
    }

    /// The array behind the firmware (for workloads and tests; the firmware reads it too).
    pub fn array(&self) -> SharedArray {
        self.engine().array.clone()
    }

    /// The RAID engine, when the array is one: its whole management and fault-injection API
    /// (`kill_drive`, `inject_media_error`, `power_loss`, …). Call [`Controller::notify_events`]
    /// after changing it so the firmware posts the events and runs rebuilds.
    pub fn raid(&self) -> Option<SharedRaid> {
        self.inner.raid.clone()
    }

    pub(crate) fn dev(&self) -> RefMut<'_, Device> {
        self.inner.device.borrow_mut()
    }

    pub(crate) fn engine(&self) -> RefMut<'_, Engine> {
        self.inner.engine.borrow_mut()
    }

    /// The FW_STATE register: state in bits 3..0, fault code in 31..16.
    pub fn fw_state(&self) -> u32 {
        self.dev().fw_state()
    }

    pub fn stats(&self) -> Stats {
        self.dev().stats
    }

    // ------------------------------------------------------------------ fault injection --

    /// The firmware sleeps `ns` before it starts its next request.
    pub fn stall(&self, ns: u64) {
        self.dev().stall_ns += ns;
    }

    /// The next `n` task replies (SCSI_IO, MANAGEMENT, ABORT_TASK; not events) are processed
    /// but never posted: the host's timeout must fire.
    pub fn drop_next_replies(&self, n: u32) {
        self.dev().drop_replies += n;
    }

    /// Write `desc` as is (flags included: the caller chooses the phase; tag and check word
    /// too: nothing is sealed, so garbage stays garbage) at the reply producer, advance the
    /// producer and interrupt, ignoring ring fullness. False when there
    /// is no reply ring (not OPERATIONAL). Call on a simulated thread.
    pub fn post_bogus_reply(&self, desc: dkraid_core::firmware::wire::ReplyDescriptor) -> bool {
        self.post_raw(desc)
    }

    /// The array fails drive `id` now; the firmware posts the resulting events (and, with a
    /// hot spare, runs the rebuild in the background).
    pub fn fail_drive(&self, id: u16) -> Result<(), MgmtError> {
        let array = self.array();
        let r = array.borrow_mut().fail_drive(id);
        self.array_changed();
        r
    }

    /// The array was changed behind the firmware's back (fault injection, a test): give new
    /// volumes their SCSI emulators, drop deleted ones', and wake the firmware to post the
    /// events and run rebuilds.
    pub fn array_changed(&self) {
        self.engine().sync();
        self.notify_events();
    }

    /// End the firmware thread: it returns at its next scheduling point, work in progress
    /// dropped, so its stack and its handle on the array are freed even when the scheduler
    /// leaks unfinished threads (`Teardown::Leak`). Call it from a simulated thread before the
    /// last run ends (boot.rs: in the stop phase). The registers keep answering.
    pub fn halt(&self) {
        self.dev().halted = true;
        self.notify_events();
    }

    /// Something changed in the array (events, rebuilds to run): wake the firmware.
    pub fn notify_events(&self) {
        let thread = self.dev().thread;
        if let Some(t) = thread {
            if sched::in_simulation() {
                sched::wake(t);
            }
        }
    }
}

/// `FW_STATE` as text: `RESET`, `READY`, `OPERATIONAL`, or `FAULT code=0x0010`.
pub fn fw_state_name(value: u32) -> String {
    use dkraid_core::firmware::wire::fw_state;
    match value & fw_state::MASK {
        fw_state::RESET => "RESET".into(),
        fw_state::READY => "READY".into(),
        fw_state::OPERATIONAL => "OPERATIONAL".into(),
        fw_state::FAULT => format!("FAULT code={:#06x}", value >> 16),
        other => format!("unknown state {other:#x}"),
    }
}

// ------------------------------------------------------------------------ installing --

/// Create a controller, put it in the world (`World::controller`) and start its firmware
/// thread on `scheduler`. Call after `World::install`, before or between runs — boot.rs does
/// this for stages single-io and full.
pub fn install(scheduler: &mut Scheduler, config: ControllerConfig) -> Controller {
    let c = Controller::new(config);
    with_world(|w| w.controller = Some(c.clone()));
    c.start_on(scheduler);
    c
}

/// [`install`] from inside a simulated thread.
pub fn install_here(config: ControllerConfig) -> Controller {
    let c = Controller::new(config);
    with_world(|w| w.controller = Some(c.clone()));
    c.start();
    c
}

/// The world's controller, if one is installed.
pub fn current() -> Option<Controller> {
    with_world(|w| w.controller.clone())
}

/// A BAR access in a stage that has hardware (`kernel::hardware_access`): memory index 0 is
/// BAR0 of the installed controller and costs [`MMIO_ACCESS_NS`]; with no controller, or any
/// other index, reads return all ones (nothing answers) and writes are dropped.
pub fn bar_access(write: Option<u64>, memory_index: u8, offset: u64, width: u32) -> u64 {
    let device = if memory_index == 0 { current() } else { None };
    let Some(c) = device else {
        return all_ones(width);
    };
    if sched::in_simulation() {
        sched::advance_ns(MMIO_ACCESS_NS);
    }
    match write {
        Some(value) => {
            c.mmio_write(offset, width, value);
            0
        }
        None => c.mmio_read(offset, width),
    }
}

pub(crate) fn all_ones(width: u32) -> u64 {
    match width {
        0 => 0,
        w if w >= 64 => u64::MAX,
        w => u64::MAX >> (64 - w),
    }
}
