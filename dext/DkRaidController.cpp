/*
 * DkRaidController — the dext's controller class. DriverKit objects only: every decision comes
 * from dkraid-core through rust-core/include/dkraid.h, and every non-success kern_return_t is
 * logged by name.
 *
 * The same file builds the dext on a Mac (Xcode + DriverKit SDK) and the test-bed's simulated
 * dext (tests/testbed's shim). Deliberately broken variants for the test-bed are selected with
 * one DKRAID_VARIANT_* macro each; a shipping build defines none of them.
 */
#include <DriverKit/DriverKit.h>
#include <DriverKit/IODispatchQueue.h>
#include <DriverKit/IOMemoryMap.h>
#include <DriverKit/IOTimerDispatchSource.h>
#include <DriverKit/IOInterruptDispatchSource.h>
#include <DriverKit/OSCollections.h>
#include <DriverKit/IOUserClient.h>
#include <PCIDriverKit/PCIDriverKit.h>
#include <SCSIControllerDriverKit/SCSIControllerDriverKit.h>

#include "DkRaidController.h"
#include "DkRaidPlatform.h"
#include "dkraid.h"

static_assert(sizeof(SCSIUserParallelTask) == sizeof(dk_scsi_user_parallel_task),
              "dk_scsi_user_parallel_task mirrors SCSIUserParallelTask");
static_assert(sizeof(SCSIUserParallelResponse) == sizeof(dk_scsi_user_parallel_response),
              "dk_scsi_user_parallel_response mirrors SCSIUserParallelResponse");

/* Queue names: each one a QUEUENAME in DkRaidController.iig or the SDK's .iig. */
#define kDkRaidAuxiliaryQueueName "AuxiliaryQueue"
#define kDkRaidTargetQueueName "TargetQueue"
#define kDkRaidInterruptQueueName "InterruptQueue"

/* Personality properties (Info.plist) the driver reads. */
#define kDkRaidBringUpStageKey "BringUpStage"
#define kDkRaidFakeDiskBlockSizeKey "FakeDiskBlockSize"
#define kDkRaidFakeDiskCapacityKey "FakeDiskCapacityBytes"
#define kDkRaidMaximumTaskCountKey "MaximumTaskCount"

/* The personality key naming the user client's properties (DRIVERKIT.md §8). */
#define kDkRaidUserClientPropertiesKey "UserClientProperties"

/* An admin ticket whose completion is still to be sent: AsyncCompletion goes to `action` of
 * `client` when the core has the response. Both are retained while waiting. Which client may
 * fetch a response is the core's business (the ticket's owner). */
struct DkRaidAdminWaiter {
    uint32_t ticket; /* 0: free */
    IOUserClient *client;
    OSAction *action;
};

/* A client watching for firmware events (selector WatchEvents). */
#define kDkRaidMaxEventWatchers 8u

/* While tasks are outstanding the service timer runs at least this often, so that the core
 * checks its task timeouts. Nanoseconds, like every time the core sees (DkRaidPlatform.h). */
static const uint64_t kTimeoutCheckIntervalNs = 100000000ull;
struct DkRaidEventWatcher {
    IOUserClient *client; /* nullptr: free */
    OSAction *action;
    uint64_t notified; /* the newest sequence this watcher was told about */
};

struct DkRaidController_IVars {
    IOPCIDevice *pci;
    IODispatchQueue *auxiliaryQueue;
    IODispatchQueue *targetQueue;
    IODispatchQueue *interruptQueue;
    IOTimerDispatchSource *targetTimer;
    OSAction *targetWorkAction;
    void *coreMemory;
    size_t coreMemorySize;
    dk_core *core;
    dk_platform platformTable;
    DkRaidPlatform platform;
    bool pciOpen;
    /* Every call into the core happens under this lock: the dext's queues run concurrently. */
    IOLock *coreLock;
    uint32_t stage;
    /* Stages 2 and 3. */
    IOInterruptDispatchSource *interruptSource;
    OSAction *interruptAction;
    IOTimerDispatchSource *serviceTimer;
    OSAction *serviceAction;
    dk_scsi_user_parallel_response *serviceResponses;
    uint64_t serviceArmedAt; /* uptime ns; 0: the service timer is not armed (coreLock) */
    /* Completions of tasks the hardware owns, retained until they complete (by task ID). */
    OSAction *inFlight[DK_MAX_TASK_COUNT + 1];
    /* Admin requests and event watches of the open user clients (guarded by coreLock). */
    DkRaidAdminWaiter adminWaiters[DK_ADMIN_SLOTS];
    DkRaidEventWatcher eventWatchers[kDkRaidMaxEventWatchers];
#if defined(DKRAID_VARIANT_BLOCKING_INIT)
    volatile bool deviceManagementAsked;
#endif
#if defined(DKRAID_VARIANT_DUPLICATE_TASK_ID)
    uint32_t lastTaskID;
#endif
};

/* Holds the core lock for a scope. */
class CoreLock {
public:
    explicit CoreLock(IOLock *lock) : fLock(lock) { IOLockLock(fLock); }
    ~CoreLock() { IOLockUnlock(fLock); }
    CoreLock(const CoreLock &) = delete;
    CoreLock &operator=(const CoreLock &) = delete;

private:
    IOLock *fLock;
};

/* Evaluate a call into the core under the core lock. */
#define DKRAID_LOCKED(expr) ([&]() { CoreLock dkraidCoreLock_(ivars->coreLock); return (expr); }())

/* ------------------------------------------------------------------------------ helpers -- */

void DkRaidController::LogFailure(const char *call, kern_return_t status)
{
    const char *name = dk_ioreturn_name(status);
    if (name != nullptr) {
        os_log_error(OS_LOG_DEFAULT, "dkraid: %{public}s failed: %{public}s (0x%08x)", call,
                     name, (unsigned)status);
    } else {
        os_log_error(OS_LOG_DEFAULT, "dkraid: %{public}s failed: IOReturn 0x%08x", call,
                     (unsigned)status);
    }
}

/* Log and pass on a failure. */
#define DKRAID_CHECK(call, expr)                                                              \
    do {                                                                                      \
        kern_return_t dkraidRet_ = (expr);                                                    \
        if (dkraidRet_ != kIOReturnSuccess) {                                                 \
            LogFailure(call, dkraidRet_);                                                     \
            return dkraidRet_;                                                                \
        }                                                                                     \
    } while (0)

kern_return_t DkRaidController::CreateQueues()
{
    /* Every queue is created and registered here, in Start, before Start(SUPERDISPATCH):
     * a queue created later panicked a machine at load (DRIVERKIT.md §1, §3). */
#if !defined(DKRAID_VARIANT_QUEUE_NOT_CREATED)
    DKRAID_CHECK("IODispatchQueue::Create(TargetQueue)",
                 IODispatchQueue::Create(kDkRaidTargetQueueName, 0, 0, &ivars->targetQueue));
#endif
    DKRAID_CHECK("IODispatchQueue::Create(AuxiliaryQueue)",
                 IODispatchQueue::Create(kDkRaidAuxiliaryQueueName, 0, 0,
                                         &ivars->auxiliaryQueue));
    DKRAID_CHECK("IODispatchQueue::Create(InterruptQueue)",
                 IODispatchQueue::Create(kDkRaidInterruptQueueName, 0, 0,
                                         &ivars->interruptQueue));
    /* The SDK declares UserCreateTargetForID QUEUENAME(AuxiliaryQueue) but DriverKit does not
     * create that queue: without it a target create never dispatches. */
    DKRAID_CHECK("SetDispatchQueue(AuxiliaryQueue)",
                 SetDispatchQueue(kDkRaidAuxiliaryQueueName, ivars->auxiliaryQueue));
    /* TargetWork and InterruptOccurred are declared with these QUEUENAMEs. */
    DKRAID_CHECK("SetDispatchQueue(TargetQueue)",
                 SetDispatchQueue(kDkRaidTargetQueueName, ivars->targetQueue));
    DKRAID_CHECK("SetDispatchQueue(InterruptQueue)",
                 SetDispatchQueue(kDkRaidInterruptQueueName, ivars->interruptQueue));
#if defined(DKRAID_VARIANT_QUEUE_NOT_CREATED)
    /* Broken on purpose: the target queue is created after it was registered. */
    DKRAID_CHECK("IODispatchQueue::Create(TargetQueue)",
                 IODispatchQueue::Create(kDkRaidTargetQueueName, 0, 0, &ivars->targetQueue));
#endif
#if defined(DKRAID_VARIANT_UNDECLARED_QUEUE)
    /* Broken on purpose: no method of the class hierarchy is declared QUEUENAME(IOQueue). */
    DKRAID_CHECK("SetDispatchQueue(IOQueue)", SetDispatchQueue("IOQueue", ivars->targetQueue));
#endif
    /* Target work runs from a zero-delay timer whose handler is TargetWork on TargetQueue. */
    DKRAID_CHECK("IOTimerDispatchSource::Create",
                 IOTimerDispatchSource::Create(ivars->targetQueue, &ivars->targetTimer));
    DKRAID_CHECK("CreateActionTargetWork", CreateActionTargetWork(0, &ivars->targetWorkAction));
    DKRAID_CHECK("IOTimerDispatchSource::SetHandler",
                 ivars->targetTimer->SetHandler(ivars->targetWorkAction));
    return kIOReturnSuccess;
}

kern_return_t DkRaidController::CreateHardwareSources()
{
    /* Stages 2 and 3: the controller's MSI-X vector and a timer for the firmware's bring-up,
     * timeouts and resets, both on InterruptQueue so they never run concurrently. */
    ivars->serviceResponses = (dk_scsi_user_parallel_response *)IOMallocZero(
        sizeof(dk_scsi_user_parallel_response) * DK_MAX_TASK_COUNT);
    if (ivars->serviceResponses == nullptr) {
        LogFailure("IOMallocZero(responses)", kIOReturnNoMemory);
        return kIOReturnNoMemory;
    }
    DKRAID_CHECK("IOPCIDevice::ConfigureInterrupts",
                 ivars->pci->ConfigureInterrupts(kIOInterruptTypePCIMessagedX, 1, 1, 0));
    DKRAID_CHECK("IOInterruptDispatchSource::Create",
                 IOInterruptDispatchSource::Create(ivars->pci, 0, ivars->interruptQueue,
                                                   &ivars->interruptSource));
    DKRAID_CHECK("CreateActionInterruptOccurred",
                 CreateActionInterruptOccurred(0, &ivars->interruptAction));
    DKRAID_CHECK("IOInterruptDispatchSource::SetHandler",
                 ivars->interruptSource->SetHandler(ivars->interruptAction));
    DKRAID_CHECK("IOInterruptDispatchSource::SetEnableWithCompletion",
                 ivars->interruptSource->SetEnableWithCompletion(true, nullptr));
    DKRAID_CHECK("IOTimerDispatchSource::Create(service)",
                 IOTimerDispatchSource::Create(ivars->interruptQueue, &ivars->serviceTimer));
    DKRAID_CHECK("CreateActionServiceTimerOccurred",
                 CreateActionServiceTimerOccurred(0, &ivars->serviceAction));
    DKRAID_CHECK("IOTimerDispatchSource::SetHandler(service)",
                 ivars->serviceTimer->SetHandler(ivars->serviceAction));
    return kIOReturnSuccess;
}

/* Arm the service timer for `atNs` (uptime nanoseconds) unless it is already armed for earlier:
 * WakeAtTime replaces a pending deadline. Core lock held. */
static void ArmServiceLocked(DkRaidController_IVars *ivars, uint64_t atNs)
{
    if (ivars->serviceTimer == nullptr) {
        return;
    }
    if (ivars->serviceArmedAt == 0 || atNs < ivars->serviceArmedAt) {
        ivars->serviceArmedAt = atNs;
        ivars->serviceTimer->WakeAtTime(kIOTimerClockMachAbsoluteTime, DkRaidNsToTicks(atNs), 0);
    }
}

/* `now` is uptime nanoseconds (the core's clock), never mach ticks. */
void DkRaidController::Service(uint64_t now)
{
    uint32_t count = 0;
    uint64_t pollIn = 0;
    kern_return_t ret = DKRAID_LOCKED(dk_service(ivars->core, now, ivars->serviceResponses,
                                                 DK_MAX_TASK_COUNT, &count, &pollIn));
    if (ret != kIOReturnSuccess) {
        LogFailure("dk_service", ret);
        return;
    }
    for (uint32_t i = 0; i < count && i < DK_MAX_TASK_COUNT; i++) {
        const dk_scsi_user_parallel_response *r = &ivars->serviceResponses[i];
        const uint64_t id = r->fControllerTaskIdentifier;
        OSAction *completion = nullptr;
        if (id >= 1 && id <= DK_MAX_TASK_COUNT) {
            CoreLock lock(ivars->coreLock);
            completion = ivars->inFlight[id];
            ivars->inFlight[id] = nullptr;
        }
        if (completion == nullptr) {
            LogFailure("Service: a response without its completion action", kIOReturnNotFound);
            continue;
        }
        /* The slot is freed before the kernel sees the completion: once it has, it may reuse
         * this task ID at once, from another queue, and the slot must already be Free. The
         * response was copied out by dk_service, so nothing the core owns is read after this. */
#if defined(DKRAID_VARIANT_LATE_SLOT_FREE)
        /* Broken on purpose: the kernel may reuse the ID before the slot is freed. */
        CompleteTask(completion, r);
#endif
        ret = DKRAID_LOCKED(dk_task_delivered(ivars->core, id));
        if (ret != kIOReturnSuccess) {
            LogFailure("dk_task_delivered", ret);
        }
#if !defined(DKRAID_VARIANT_LATE_SLOT_FREE)
        CompleteTask(completion, r);
#endif
        completion->release();
    }
    if (pollIn != 0) {
        CoreLock lock(ivars->coreLock);
        ArmServiceLocked(ivars, now + pollIn);
    }
    /* Stage 3: listed volumes and volume events become target work (under the core lock:
     * Stop takes the timer away there). */
    {
        CoreLock lock(ivars->coreLock);
        if (ivars->targetTimer != nullptr) {
            ivars->targetTimer->WakeAtTime(kIOTimerClockMachAbsoluteTime, DkRaidNsToTicks(now), 0);
        }
    }
    /* Admin responses the firmware finished, and new events for watching clients. */
    DeliverAdminCompletions();
}

kern_return_t DkRaidController::CompleteTask(OSAction *completion, const void *response)
{
    SCSIUserParallelResponse parallelResponse;
    memcpy(&parallelResponse, response, sizeof(parallelResponse));
#if defined(DKRAID_VARIANT_BAD_RESPONSE_VERSION)
    /* Broken on purpose: the kernel drops any other version and the I/O never completes. */
    parallelResponse.version = 2;
#endif
    ParallelTaskCompletion(completion, parallelResponse);
    return kIOReturnSuccess;
}

/* The driver's settings from the personality (Info.plist): the bring-up stage (`pipeline`
 * when absent), stage 1's disk geometry and the task count (0 = the core's defaults). The core
 * validates them and refuses bad values by name in dk_core_init. */
static void ReadSettings(IOService *service, dk_core_config *config)
{
    config->stage = DK_STAGE_PIPELINE;
    OSDictionary *properties = nullptr;
    if (service->CopyProperties(&properties) != kIOReturnSuccess || properties == nullptr) {
        return;
    }
    OSString *name = OSDynamicCast(OSString, properties->getObject(kDkRaidBringUpStageKey));
    if (name != nullptr) {
        uint32_t parsed = 0;
        if (dk_stage_parse(name->getCStringNoCopy(), name->getLength(), &parsed) ==
            kIOReturnSuccess) {
            config->stage = parsed;
        } else {
            os_log_error(OS_LOG_DEFAULT, "dkraid: %{public}s = %{public}s is not a stage",
                         kDkRaidBringUpStageKey, name->getCStringNoCopy());
            config->stage = UINT32_MAX; /* refused by dk_core_init, by name */
        }
    }
    OSNumber *number = OSDynamicCast(OSNumber, properties->getObject(kDkRaidFakeDiskBlockSizeKey));
    if (number != nullptr) {
        config->fake_block_size = number->unsigned32BitValue();
    }
    number = OSDynamicCast(OSNumber, properties->getObject(kDkRaidFakeDiskCapacityKey));
    if (number != nullptr) {
        config->fake_capacity_bytes = number->unsigned64BitValue();
    }
    number = OSDynamicCast(OSNumber, properties->getObject(kDkRaidMaximumTaskCountKey));
    if (number != nullptr) {
        config->max_task_count = number->unsigned32BitValue();
    }
    properties->release();
}

/* --------------------------------------------------------------------------- lifecycle -- */

bool DkRaidController::init()
{
    if (!super::init()) {
        return false;
    }
    ivars = IONewZero(DkRaidController_IVars, 1);
    return ivars != nullptr;
}

void DkRaidController::free()
{
    if (ivars != nullptr) {
        if (ivars->core != nullptr) {
            dk_core_teardown(ivars->core);
        }
        DkRaidPlatformRelease(&ivars->platform);
        if (ivars->coreMemory != nullptr) {
            IOFree(ivars->coreMemory, ivars->coreMemorySize);
        }
        OSSafeReleaseNULL(ivars->serviceAction);
        OSSafeReleaseNULL(ivars->serviceTimer);
        OSSafeReleaseNULL(ivars->interruptAction);
        OSSafeReleaseNULL(ivars->interruptSource);
        if (ivars->serviceResponses != nullptr) {
            IOFree(ivars->serviceResponses,
                   sizeof(dk_scsi_user_parallel_response) * DK_MAX_TASK_COUNT);
        }
        if (ivars->coreLock != nullptr) {
            IOLockFree(ivars->coreLock);
        }
        OSSafeReleaseNULL(ivars->targetWorkAction);
        OSSafeReleaseNULL(ivars->targetTimer);
        OSSafeReleaseNULL(ivars->interruptQueue);
        OSSafeReleaseNULL(ivars->targetQueue);
        OSSafeReleaseNULL(ivars->auxiliaryQueue);
        OSSafeReleaseNULL(ivars->pci);
    }
    IOSafeDeleteNULL(ivars, DkRaidController_IVars, 1);
    super::free();
}

kern_return_t IMPL(DkRaidController, Start)
{
    /* The kernel does not open the PCI device for a dext. */
    ivars->pci = OSDynamicCast(IOPCIDevice, provider);
    if (ivars->pci == nullptr) {
        LogFailure("Start: provider is not an IOPCIDevice", kIOReturnNoDevice);
        return kIOReturnNoDevice;
    }
    ivars->pci->retain();
    DKRAID_CHECK("IOPCIDevice::Open", ivars->pci->Open(this, 0));
    ivars->pciOpen = true;

    /* Every time the dext hands the core is converted from mach ticks with this timebase. */
#if !defined(DKRAID_VARIANT_TICKS_AS_NANOSECONDS)
    DKRAID_CHECK("mach_timebase_info", DkRaidTimeInit());
#else
    /* Broken on purpose: without the timebase every conversion is the identity, so mach ticks
     * are taken for nanoseconds (the first slice's bug). */
#endif
    DKRAID_CHECK("CreateQueues", CreateQueues());

    ivars->coreLock = IOLockAlloc();
    if (ivars->coreLock == nullptr) {
        LogFailure("IOLockAlloc", kIOReturnNoMemory);
        return kIOReturnNoMemory;
    }
    /* The core, in memory we own, with the platform callbacks bound to our objects. */
    DkRaidPlatformInit(&ivars->platform, ivars->pci, &ivars->platformTable);
    ivars->coreMemorySize = dk_core_size() + dk_core_align();
    ivars->coreMemory = IOMallocZero(ivars->coreMemorySize);
    if (ivars->coreMemory == nullptr) {
        LogFailure("IOMallocZero(core)", kIOReturnNoMemory);
        return kIOReturnNoMemory;
    }
    uintptr_t aligned = ((uintptr_t)ivars->coreMemory + dk_core_align() - 1) &
                        ~((uintptr_t)dk_core_align() - 1);
    dk_core_config config = {};
    config.abi_version = DK_ABI_VERSION;
    ReadSettings(this, &config);
#if defined(DKRAID_VARIANT_FIXED_4K_PAGES)
    /* Broken on purpose: a constant page size instead of IOVMPageSize. */
    config.page_size = 4096;
#else
    config.page_size = IOVMPageSize;
#endif
    ivars->stage = config.stage;
    if (ivars->stage >= DK_STAGE_SINGLE_IO && ivars->stage != UINT32_MAX) {
        DKRAID_CHECK("CreateHardwareSources", CreateHardwareSources());
    }
    DKRAID_CHECK("dk_core_init",
                 dk_core_init((void *)aligned, dk_core_size(), &ivars->platformTable, &config,
                              &ivars->core));
    DKRAID_CHECK("dk_controller_start", DKRAID_LOCKED(dk_controller_start(ivars->core)));

    /* The kernel now drives UserInitializeController .. UserDoesHBAPerformDeviceManagement. */
    DKRAID_CHECK("Start(SUPERDISPATCH)", Start(provider, SUPERDISPATCH));
    return kIOReturnSuccess;
}

kern_return_t IMPL(DkRaidController, Stop)
{
    /* Never wait synchronously on the target queue here: it may be inside
     * UserCreateTargetForID, whose probe needs Default (DRIVERKIT.md §4). No target is
     * destroyed here either: the framework terminates them as children. */
    /* A service pass may be running on InterruptQueue (Cancel does not wait for it) and arms
     * both timers: each is taken out of ivars under the core lock, where that pass arms it, so
     * no pass arms a cancelled or released source. */
    IOTimerDispatchSource *targetTimer = nullptr;
    IOTimerDispatchSource *serviceTimer = nullptr;
    {
        /* No lock yet (Start failed before allocating it): nothing runs that could arm them. */
        IOLock *coreLock = ivars->coreLock;
        if (coreLock != nullptr) {
            IOLockLock(coreLock);
        }
        targetTimer = ivars->targetTimer;
        ivars->targetTimer = nullptr;
        serviceTimer = ivars->serviceTimer;
        ivars->serviceTimer = nullptr;
        if (coreLock != nullptr) {
            IOLockUnlock(coreLock);
        }
    }
    if (targetTimer != nullptr) {
        targetTimer->Cancel(nullptr);
    }
    /* The action retains this object: releasing it only in free() would be a cycle that keeps
     * the controller, its queues and every DMA frame alive after Stop. */
    OSSafeReleaseNULL(targetTimer);
    OSSafeReleaseNULL(ivars->targetWorkAction);
    /* No more interrupts or service passes: the tasks below are completed here, once. */
    if (serviceTimer != nullptr) {
        serviceTimer->Cancel(nullptr);
    }
    OSSafeReleaseNULL(serviceTimer);
    OSSafeReleaseNULL(ivars->serviceAction);
    if (ivars->interruptSource != nullptr) {
        ivars->interruptSource->SetEnableWithCompletion(false, nullptr);
        ivars->interruptSource->Cancel(nullptr);
    }
    OSSafeReleaseNULL(ivars->interruptSource);
    OSSafeReleaseNULL(ivars->interruptAction);
    /* Every task the hardware still owns completes now, exactly once, as a delivery failure.
     * Cancel does not wait for a callback already running: a service pass on InterruptQueue may
     * be between dk_service and taking its completions out of inFlight[]. So the action is
     * taken and the task failed in one critical section, and a task the core no longer counts
     * as outstanding (that pass holds its response) keeps its action for that pass to deliver. */
    for (uint32_t id = 1; id <= DK_MAX_TASK_COUNT && ivars->core != nullptr; id++) {
        OSAction *completion = nullptr;
        dk_scsi_user_parallel_response failed = {};
        kern_return_t ret = kIOReturnNotFound;
        {
            CoreLock lock(ivars->coreLock);
            if (ivars->inFlight[id] == nullptr) {
                continue;
            }
            ret = dk_fail_task(ivars->core, id, &failed);
            if (ret == kIOReturnSuccess) {
                completion = ivars->inFlight[id];
                ivars->inFlight[id] = nullptr;
                dk_task_delivered(ivars->core, id);
            }
        }
        if (completion == nullptr) {
            /* Completed by a service pass in flight, which delivers it. */
            continue;
        }
        CompleteTask(completion, &failed);
        completion->release();
    }
    /* Admin tickets and event watches still held (a client that has not closed yet): their
     * actions and clients are released; the clients' own Stop finds nothing left. */
    if (ivars->coreLock != nullptr) {
        CoreLock lock(ivars->coreLock);
        for (uint32_t i = 0; i < DK_ADMIN_SLOTS; i++) {
            OSSafeReleaseNULL(ivars->adminWaiters[i].action);
            OSSafeReleaseNULL(ivars->adminWaiters[i].client);
            ivars->adminWaiters[i].ticket = 0;
        }
        for (uint32_t i = 0; i < kDkRaidMaxEventWatchers; i++) {
            OSSafeReleaseNULL(ivars->eventWatchers[i].action);
            OSSafeReleaseNULL(ivars->eventWatchers[i].client);
        }
    }
    if (ivars->core != nullptr) {
        kern_return_t ret = DKRAID_LOCKED(dk_stop_controller(ivars->core));
        if (ret != kIOReturnSuccess) {
            LogFailure("dk_stop_controller", ret);
        }
    }
    if (ivars->pciOpen) {
        ivars->pci->Close(this, 0);
        ivars->pciOpen = false;
    }
    return Stop(provider, SUPERDISPATCH);
}

kern_return_t IMPL(DkRaidController, UserInitializeController)
{
    /* Preparation only, and quick: nothing here waits for a later callback. */
#if defined(DKRAID_VARIANT_BLOCKING_INIT)
    /* Broken on purpose (the seed's while(1)): UserDoesHBAPerformDeviceManagement only comes
     * after this returns, so this never ends. */
    while (!ivars->deviceManagementAsked) {
        IOSleep(100);
    }
#endif
    dk_hba_constraints limits = {};
    DKRAID_CHECK("dk_initialize_controller", DKRAID_LOCKED(dk_initialize_controller(ivars->core, &limits)));
    OSDictionary *constraints = OSDictionary::withCapacity(7);
    if (constraints == nullptr) {
        LogFailure("OSDictionary::withCapacity", kIOReturnNoMemory);
        return kIOReturnNoMemory;
    }
    struct {
        const char *key;
        uint64_t value;
    } entries[] = {
        {kIOMaximumSegmentCountReadKey, limits.max_segment_count_read},
        {kIOMaximumSegmentCountWriteKey, limits.max_segment_count_write},
        {kIOMaximumSegmentByteCountReadKey, limits.max_segment_byte_count_read},
        {kIOMaximumSegmentByteCountWriteKey, limits.max_segment_byte_count_write},
        {kIOMinimumSegmentAlignmentByteCountKey, limits.min_segment_alignment_byte_count},
        {kIOMaximumSegmentAddressableBitCountKey, limits.max_segment_addressable_bit_count},
#if !defined(DKRAID_VARIANT_MISSING_CONSTRAINT)
        /* The kernel dereferences this one without a NULL check. */
        {kIOMinimumHBADataAlignmentMaskKey, limits.min_hba_data_alignment_mask},
#endif
    };
    kern_return_t ret = kIOReturnSuccess;
    for (const auto &entry : entries) {
        OSNumber *number = OSNumber::withNumber(entry.value, 64);
        if (number == nullptr) {
            ret = kIOReturnNoMemory;
            break;
        }
        constraints->setObject(entry.key, number);
        number->release();
    }
    if (ret == kIOReturnSuccess) {
        ret = UserReportHBAConstraints(constraints);
    }
    constraints->release();
    DKRAID_CHECK("UserReportHBAConstraints", ret);
    return kIOReturnSuccess;
}

kern_return_t IMPL(DkRaidController, UserReportInitiatorIdentifier)
{
    DKRAID_CHECK("dk_report_initiator_identifier", DKRAID_LOCKED(dk_report_initiator_identifier(ivars->core, id)));
    return kIOReturnSuccess;
}

kern_return_t IMPL(DkRaidController, UserReportHighestSupportedDeviceID)
{
    DKRAID_CHECK("dk_report_highest_supported_device_id",
                 DKRAID_LOCKED(dk_report_highest_supported_device_id(ivars->core, id)));
    return kIOReturnSuccess;
}

kern_return_t IMPL(DkRaidController, UserReportMaximumTaskCount)
{
    DKRAID_CHECK("dk_report_maximum_task_count", DKRAID_LOCKED(dk_report_maximum_task_count(ivars->core, count)));
    return kIOReturnSuccess;
}

kern_return_t IMPL(DkRaidController, UserGetDMASpecification)
{
    dk_dma_specification spec = {};
    DKRAID_CHECK("dk_get_dma_specification", DKRAID_LOCKED(dk_get_dma_specification(ivars->core, &spec)));
    *maxTransferSize = spec.max_transfer_size;
    *alignment = spec.alignment;
    *numAddressBits = spec.address_bits;
    *segmentType = (DMAOutputSegmentType)spec.segment_type;
    return kIOReturnSuccess;
}

kern_return_t IMPL(DkRaidController, UserMapHBAData)
{
    /* IDs 1..=N with each task's DMA frame mapped now, never on the I/O path. */
    DKRAID_CHECK("dk_map_hba_data", DKRAID_LOCKED(dk_map_hba_data(ivars->core, uniqueTaskID)));
#if defined(DKRAID_VARIANT_ZERO_TASK_ID)
    /* Broken on purpose: 0 is the kernel's "first task on the queue" sentinel. */
    *uniqueTaskID -= 1;
#endif
#if defined(DKRAID_VARIANT_DUPLICATE_TASK_ID)
    /* Broken on purpose: the seed's unchecked fTaskID++ wrapped back to an ID in use. */
    if (ivars->lastTaskID == 2) {
        *uniqueTaskID = 1;
    }
    ivars->lastTaskID = *uniqueTaskID;
#endif
    return kIOReturnSuccess;
}

kern_return_t IMPL(DkRaidController, UserMapBundledParallelTaskCommandAndResponseBuffers)
{
    /* Opt out of bundled mode: the kernel uses UserProcessParallelTask. */
    (void)parallelCommandIOMemoryDescriptor;
    (void)parallelResponseIOMemoryDescriptor;
    return kIOReturnUnsupported;
}

kern_return_t IMPL(DkRaidController, UserStartController)
{
    DKRAID_CHECK("dk_start_controller", DKRAID_LOCKED(dk_start_controller(ivars->core)));
#if defined(DKRAID_VARIANT_CREATE_ON_DEFAULT)
    /* Broken on purpose: this runs on Default, and the create's probe needs Default. */
    kern_return_t createRet = UserCreateTargetForID(0, nullptr);
    if (createRet != kIOReturnSuccess) {
        LogFailure("UserCreateTargetForID(0)", createRet);
    }
#endif
    /* Target work runs asynchronously on the private target queue; never block here. */
    uint64_t now = DkRaidNowNs();
    if (ivars->serviceTimer != nullptr) {
        /* Stages 2 and 3: the firmware comes up from the service timer, not here. */
        CoreLock lock(ivars->coreLock);
        ArmServiceLocked(ivars, now);
    }
    DKRAID_CHECK("IOTimerDispatchSource::WakeAtTime",
                 ivars->targetTimer->WakeAtTime(kIOTimerClockMachAbsoluteTime,
                                                DkRaidNsToTicks(now), 0));
    return kIOReturnSuccess;
}

kern_return_t IMPL(DkRaidController, UserDoesHBAPerformDeviceManagement)
{
#if defined(DKRAID_VARIANT_BLOCKING_INIT)
    ivars->deviceManagementAsked = true;
#endif
#if defined(DKRAID_VARIANT_SEED_DEVICE_MANAGEMENT)
    /* Broken on purpose, as the seed wrote it: TRUE is returned as the kern_return_t (1, an
     * error) and *result is never written. */
    (void)result;
    bool ret = TRUE;
    return ret;
#endif
    uint8_t answer = 0;
    DKRAID_CHECK("dk_does_hba_perform_device_management",
                 DKRAID_LOCKED(dk_does_hba_perform_device_management(ivars->core, &answer)));
    *result = answer != 0;
    return kIOReturnSuccess;
}

/* -------------------------------------------------------------------------- capabilities -- */

kern_return_t IMPL(DkRaidController, UserReportHBAHighestLogicalUnitNumber)
{
    *value = 0;
    return kIOReturnSuccess;
}

kern_return_t IMPL(DkRaidController, UserDoesHBAPerformAutoSense)
{
    *result = true;
    return kIOReturnSuccess;
}

kern_return_t IMPL(DkRaidController, UserDoesHBASupportMultiPathing)
{
    *result = false;
    return kIOReturnSuccess;
}

kern_return_t IMPL(DkRaidController, UserDoesHBASupportSCSIParallelFeature)
{
    (void)theValue;
    *result = false;
    return kIOReturnSuccess;
}

/* -------------------------------------------------------------------------- targets, I/O -- */

void IMPL(DkRaidController, TargetWork)
{
    /* Runs on TargetQueue: creations one at a time, each to completion, so a second create is
     * never in flight (DRIVERKIT.md §4). */
    (void)action;
    (void)time;
#if defined(DKRAID_VARIANT_REENTRANT_CREATE) || defined(DKRAID_VARIANT_BAD_RESPONSE_VERSION)
    /* These variants need a target create to break. */
    kern_return_t variantRet = UserCreateTargetForID(0, nullptr);
    if (variantRet != kIOReturnSuccess) {
        LogFailure("UserCreateTargetForID(0)", variantRet);
    }
#endif
    for (;;) {
        dk_target_work work = {};
        if (DKRAID_LOCKED(dk_next_target_work(ivars->core, &work)) != kIOReturnSuccess ||
            work.kind == DK_TARGET_WORK_NONE) {
            return;
        }
        kern_return_t ret = kIOReturnUnsupported;
        if (work.kind == DK_TARGET_WORK_CREATE) {
            ret = UserCreateTargetForID(work.target_id, nullptr);
            if (ret != kIOReturnSuccess) {
                LogFailure("UserCreateTargetForID", ret);
            }
        } else if (work.kind == DK_TARGET_WORK_DESTROY) {
            ret = UserDestroyTargetForID(work.target_id);
            if (ret != kIOReturnSuccess) {
                LogFailure("UserDestroyTargetForID", ret);
            }
        }
        DKRAID_LOCKED(dk_target_work_done(ivars->core, &work, ret));
    }
}

kern_return_t IMPL(DkRaidController, UserInitializeTargetForID)
{
#if defined(DKRAID_VARIANT_REENTRANT_CREATE)
    /* Broken on purpose: a second create while the first is in flight. */
    kern_return_t secondRet = UserCreateTargetForID(targetID + 1, nullptr);
    if (secondRet != kIOReturnSuccess) {
        LogFailure("UserCreateTargetForID(second)", secondRet);
    }
#endif
    DKRAID_CHECK("dk_initialize_target", DKRAID_LOCKED(dk_initialize_target(ivars->core, targetID)));
    return kIOReturnSuccess;
}

#if defined(DKRAID_VARIANT_SHORT_INQUIRY) || defined(DKRAID_VARIANT_INQUIRY_LENGTH_CHANGES) || \
    defined(DKRAID_VARIANT_SHORT_MODE_SENSE) || defined(DKRAID_VARIANT_NEVER_READY) ||        \
    defined(DKRAID_VARIANT_CHECK_CONDITION_WITHOUT_SENSE)
/* Broken on purpose: answers macOS's disk probe wrongly (stage 1 variants). */
static void BreakResponseForVariant(const dk_scsi_user_parallel_task *task,
                                    dk_scsi_user_parallel_response *out, uint8_t *data)
{
    const uint8_t *cdb = task->fCommandDescriptorBlock;
    const bool standardInquiry = cdb[0] == 0x12 && (cdb[1] & 1) == 0;
    (void)standardInquiry;
    (void)data;
#if defined(DKRAID_VARIANT_SHORT_INQUIRY)
    /* Fewer bytes than asked for, though the data is there. */
    if (standardInquiry && out->fBytesTransferred > 5) {
        out->fBytesTransferred = 5;
    }
#endif
#if defined(DKRAID_VARIANT_INQUIRY_LENGTH_CHANGES)
    /* ADDITIONAL LENGTH shrunk to the allocation instead of the data truncated. */
    if (standardInquiry && data != nullptr && out->fBytesTransferred > 4 && cdb[3] == 0 &&
        cdb[4] <= 6) {
        data[4] = 31;
    }
#endif
#if defined(DKRAID_VARIANT_SHORT_MODE_SENSE)
    /* Two bytes short of the requested count. */
    if (cdb[0] == 0x1A && cdb[4] > 4 && out->fBytesTransferred > 4) {
        out->fBytesTransferred -= 2;
    }
#endif
#if defined(DKRAID_VARIANT_NEVER_READY)
    /* NOT READY, becoming ready (04/01), forever. */
    if (cdb[0] == 0x00 && out->fCompletionStatus == kSCSITaskStatus_GOOD) {
        out->fCompletionStatus = kSCSITaskStatus_CHECK_CONDITION;
        memset(out->fSenseBuffer, 0, sizeof(out->fSenseBuffer));
        out->fSenseBuffer[0] = 0x70;
        out->fSenseBuffer[2] = 0x02;
        out->fSenseBuffer[7] = 0x0A;
        out->fSenseBuffer[12] = 0x04;
        out->fSenseBuffer[13] = 0x01;
        out->fSenseLength = 18;
    }
#endif
#if defined(DKRAID_VARIANT_CHECK_CONDITION_WITHOUT_SENSE)
    /* CHECK CONDITION with the sense left out, though autosense is reported. */
    if (out->fCompletionStatus == kSCSITaskStatus_CHECK_CONDITION) {
        memset(out->fSenseBuffer, 0, sizeof(out->fSenseBuffer));
        out->fSenseLength = 0;
    }
#endif
}
#endif

kern_return_t IMPL(DkRaidController, UserProcessParallelTask)
{
    dk_scsi_user_parallel_task task;
    memcpy(&task, &parallelRequest, sizeof(task));
    /* An emulated target (stage 1) needs the data itself: map it with UserGetDataBuffer, which
     * is legal only here, inside UserProcessParallelTask. A hardware target never does; its
     * device uses fBufferIOVMAddr. The buffer is not ours, so it is mapped with CreateMapping
     * (GetAddressRange is for buffers the dext created). */
    uint32_t wantsData = 0;
    IOBufferMemoryDescriptor *dataBuffer = nullptr;
    IOMemoryMap *dataMap = nullptr;
    void *data = nullptr;
    uint64_t dataLength = 0;
    kern_return_t ret = DKRAID_LOCKED(dk_task_wants_data_buffer(ivars->core, &task, &wantsData));
    if (ret == kIOReturnSuccess && wantsData != 0) {
        ret = UserGetDataBuffer(parallelRequest.fTargetID, parallelRequest.fControllerTaskIdentifier,
                                &dataBuffer);
        if (ret == kIOReturnSuccess) {
            ret = dataBuffer->CreateMapping(0, 0, 0, 0, 0, &dataMap);
        }
        if (ret == kIOReturnSuccess) {
            data = (void *)(uintptr_t)dataMap->GetAddress();
            dataLength = dataMap->GetLength();
        } else {
            LogFailure("UserGetDataBuffer/CreateMapping", ret);
        }
    }
    dk_scsi_user_parallel_response out = {};
    uint32_t disposition = DK_TASK_IN_PROCESS;
    {
        /* The completion is recorded in the same critical section that hands the task to the
         * hardware, so the interrupt path can never see the reply before the action. */
        CoreLock lock(ivars->coreLock);
        ret = dk_process_parallel_task(ivars->core, &task, data, dataLength, &out, &disposition);
        if (ret == kIOReturnSuccess && disposition == DK_TASK_IN_PROCESS &&
            task.fControllerTaskIdentifier <= DK_MAX_TASK_COUNT) {
            completion->retain();
            ivars->inFlight[task.fControllerTaskIdentifier] = completion;
            /* Timeouts are checked while tasks are outstanding. */
            ArmServiceLocked(ivars, DkRaidNowNs() + kTimeoutCheckIntervalNs);
        }
    }
    if (ret != kIOReturnSuccess) {
        LogFailure("dk_process_parallel_task", ret);
        OSSafeReleaseNULL(dataMap);
        OSSafeReleaseNULL(dataBuffer);
        *response = kSCSIServiceResponse_SERVICE_DELIVERY_OR_TARGET_FAILURE;
        return kIOReturnSuccess;
    }
    *response = kSCSIServiceResponse_Request_In_Process;
#if defined(DKRAID_VARIANT_SHORT_INQUIRY) || defined(DKRAID_VARIANT_INQUIRY_LENGTH_CHANGES) || \
    defined(DKRAID_VARIANT_SHORT_MODE_SENSE) || defined(DKRAID_VARIANT_NEVER_READY) ||        \
    defined(DKRAID_VARIANT_CHECK_CONDITION_WITHOUT_SENSE)
    BreakResponseForVariant(&task, &out, (uint8_t *)data);
#endif
    if (disposition == DK_TASK_COMPLETED_NOW_SERVICE_SOON) {
        /* Nothing outstanding would arm the timer, yet the hardware needs a service pass. */
        CoreLock lock(ivars->coreLock);
        ArmServiceLocked(ivars, DkRaidNowNs());
    }
    if (disposition == DK_TASK_COMPLETED_NOW || disposition == DK_TASK_COMPLETED_NOW_SERVICE_SOON) {
        /* Completed inline: the action stays valid for this call, so no retain is needed. The
         * slot is freed first, as in Service: the kernel may reuse the ID once it has the reply. */
        ret = DKRAID_LOCKED(dk_task_delivered(ivars->core, task.fControllerTaskIdentifier));
        if (ret != kIOReturnSuccess) {
            LogFailure("dk_task_delivered", ret);
        }
        CompleteTask(completion, &out);
    }
    /* DK_TASK_IN_PROCESS: the interrupt path completes it with the action kept above. */
    /* The data is no longer touched: drop the mapping and the buffer reference. */
    OSSafeReleaseNULL(dataMap);
    OSSafeReleaseNULL(dataBuffer);
    return kIOReturnSuccess;
}

void IMPL(DkRaidController, UserProcessBundledParallelTasks)
{
    /* Bundled mode is refused in UserMapBundledParallelTaskCommandAndResponseBuffers. */
    (void)parallelRequestSlotIndices;
    (void)parallelRequestSlotIndicesCount;
    (void)completion;
}

void IMPL(DkRaidController, InterruptOccurred)
{
    (void)action;
    (void)count;
    /* `time` is the first interrupt's mach_absolute_time, in ticks. */
    Service(DkRaidTicksToNs(time));
}

void IMPL(DkRaidController, ServiceTimerOccurred)
{
    (void)action;
    {
        CoreLock lock(ivars->coreLock);
        ivars->serviceArmedAt = 0;
    }
    /* The deadline it was armed for, in the clock it was armed with (mach ticks). */
    Service(DkRaidTicksToNs(time));
}

/* ----------------------------------------------------------------------- task management -- */

/* SAM-2 task management: the core aborts the nexus's outstanding tasks through the firmware;
 * they complete later on InterruptQueue (Service) with a retryable status. The timer is armed
 * for now so the aborts go out without waiting for the next interrupt. */
static kern_return_t TaskManagement(DkRaidController_IVars *ivars, uint32_t function, uint64_t target,
                                    uint64_t lun, uint64_t tag, uint32_t *response)
{
    uint32_t out = kSCSIServiceResponse_FUNCTION_REJECTED;
    kern_return_t ret = DKRAID_LOCKED(dk_task_management(ivars->core, function, target, lun, tag, &out));
    if (ret != kIOReturnSuccess) {
        *response = kSCSIServiceResponse_FUNCTION_REJECTED;
        return kIOReturnSuccess;
    }
    *response = (SCSIServiceResponse)out;
    CoreLock lock(ivars->coreLock);
    ArmServiceLocked(ivars, DkRaidNowNs());
    return kIOReturnSuccess;
}

kern_return_t IMPL(DkRaidController, UserAbortTaskRequest)
{
    return TaskManagement(ivars, DK_TMF_ABORT_TASK, theT, theL, theQ, response);
}

kern_return_t IMPL(DkRaidController, UserAbortTaskSetRequest)
{
    return TaskManagement(ivars, DK_TMF_ABORT_TASK_SET, theT, theL, 0, response);
}

kern_return_t IMPL(DkRaidController, UserClearACARequest)
{
    return TaskManagement(ivars, DK_TMF_CLEAR_ACA, theT, theL, 0, response);
}

kern_return_t IMPL(DkRaidController, UserClearTaskSetRequest)
{
    return TaskManagement(ivars, DK_TMF_CLEAR_TASK_SET, theT, theL, 0, response);
}

kern_return_t IMPL(DkRaidController, UserLogicalUnitResetRequest)
{
    return TaskManagement(ivars, DK_TMF_LUN_RESET, theT, theL, 0, response);
}

kern_return_t IMPL(DkRaidController, UserTargetResetRequest)
{
    return TaskManagement(ivars, DK_TMF_TARGET_RESET, theT, 0, 0, response);
}

/* ------------------------------------------------------------------------- admin client -- */

/* IOServiceOpen from the admin app: the kernel asks for a connection of `type` (only 0 exists).
 * The client object is made from the personality's UserClientProperties, so its class comes
 * from Info.plist (IOUserClass = DkRaidUserClient) and the kernel starts it with this
 * controller as its provider. */
/* The core's identity for a client connection: its address, never dereferenced by the core. */
static uint64_t AdminOwner(IOUserClient *client)
{
    return (uint64_t)(uintptr_t)client;
}

kern_return_t IMPL(DkRaidController, NewUserClient)
{
    if (userClient == nullptr) {
        return kIOReturnBadArgument;
    }
    if (type != 0) {
        LogFailure("NewUserClient: unknown connection type", kIOReturnUnsupported);
        return kIOReturnUnsupported;
    }
    IOService *created = nullptr;
    kern_return_t ret = Create(this, kDkRaidUserClientPropertiesKey, &created);
    if (ret != kIOReturnSuccess) {
        LogFailure("NewUserClient: Create(UserClientProperties)", ret);
        return ret;
    }
    *userClient = OSDynamicCast(IOUserClient, created);
    if (*userClient == nullptr) {
        LogFailure("NewUserClient: UserClientProperties does not make an IOUserClient",
                   kIOReturnUnsupported);
        created->release();
        return kIOReturnUnsupported;
    }
    return kIOReturnSuccess;
}

kern_return_t DkRaidController::AdminSubmit(IOUserClient *client, OSAction *completion,
                                            const uint8_t *request, size_t length, bool entitled,
                                            uint32_t *ticket)
{
    if (client == nullptr || completion == nullptr || ticket == nullptr || ivars->core == nullptr) {
        return kIOReturnBadArgument;
    }
    {
        CoreLock lock(ivars->coreLock);
        kern_return_t ret =
            dk_admin_submit(ivars->core, AdminOwner(client), request, length, entitled, ticket);
        if (ret != kIOReturnSuccess) {
            return ret;
        }
        /* A waiter is free whenever the core took the request: there are as many waiters as
         * core slots, and a waiter is freed no later than its slot. */
        DkRaidAdminWaiter *waiter = nullptr;
        for (uint32_t i = 0; i < DK_ADMIN_SLOTS; i++) {
            if (ivars->adminWaiters[i].ticket == 0) {
                waiter = &ivars->adminWaiters[i];
                break;
            }
        }
        if (waiter == nullptr) {
            (void)dk_admin_cancel(ivars->core, *ticket);
            return kIOReturnNoResources;
        }
        /* The action is retained only for the duration of ExternalMethod: keep it. */
        completion->retain();
        client->retain();
        waiter->ticket = *ticket;
        waiter->client = client;
        waiter->action = completion;
        /* The firmware-backed commands go out from the next service pass. */
        ArmServiceLocked(ivars, DkRaidNowNs());
    }
    /* Requests the core answered at once (a malformed one, STAGE_GET, IO_STATS, stages 0
     * and 1) complete now. */
    DeliverAdminCompletions();
    return kIOReturnSuccess;
}

kern_return_t DkRaidController::AdminFetch(IOUserClient *client, uint32_t ticket,
                                           uint8_t *response, size_t capacity, size_t *bytes)
{
    if (ivars->core == nullptr) {
        return kIOReturnNotReady;
    }
    /* Another connection's ticket is kIOReturnNotFound: the core checks the owner. */
    return DKRAID_LOCKED(
        dk_admin_fetch(ivars->core, AdminOwner(client), ticket, response, capacity, bytes));
}

kern_return_t DkRaidController::AdminWatchEvents(IOUserClient *client, OSAction *completion,
                                                 uint64_t *sequence)
{
    if (client == nullptr || completion == nullptr || sequence == nullptr || ivars->core == nullptr) {
        return kIOReturnBadArgument;
    }
    CoreLock lock(ivars->coreLock);
    DkRaidEventWatcher *slot = nullptr;
    for (uint32_t i = 0; i < kDkRaidMaxEventWatchers; i++) {
        DkRaidEventWatcher *w = &ivars->eventWatchers[i];
        if (w->client == client) {
            /* A second watch from the same connection replaces the first. */
            OSSafeReleaseNULL(w->action);
            w->client->release();
            w->client = nullptr;
        }
        if (w->client == nullptr && slot == nullptr) {
            slot = w;
        }
    }
    if (slot == nullptr) {
        return kIOReturnNoResources;
    }
    completion->retain();
    client->retain();
    slot->client = client;
    slot->action = completion;
    slot->notified = dk_admin_event_sequence(ivars->core);
    *sequence = slot->notified;
    return kIOReturnSuccess;
}

void DkRaidController::AdminClientClosed(IOUserClient *client)
{
    if (ivars->core == nullptr) {
        return;
    }
    CoreLock lock(ivars->coreLock);
    /* Its requests go: a command the firmware is running finishes into nothing, a response it
     * never fetched is dropped. */
    (void)dk_admin_close(ivars->core, AdminOwner(client));
    for (uint32_t i = 0; i < DK_ADMIN_SLOTS; i++) {
        DkRaidAdminWaiter *w = &ivars->adminWaiters[i];
        if (w->ticket != 0 && w->client == client) {
            OSSafeReleaseNULL(w->action);
            OSSafeReleaseNULL(w->client);
            w->ticket = 0;
        }
    }
    for (uint32_t i = 0; i < kDkRaidMaxEventWatchers; i++) {
        DkRaidEventWatcher *w = &ivars->eventWatchers[i];
        if (w->client == client) {
            OSSafeReleaseNULL(w->action);
            OSSafeReleaseNULL(w->client);
        }
    }
}

/* Hand every ready admin response to its client, and tell watching clients about new events.
 * AsyncCompletion is sent without the core lock held; the client and action stay retained
 * until it returned. */
void DkRaidController::DeliverAdminCompletions()
{
    if (ivars->core == nullptr) {
        return;
    }
    for (;;) {
        uint32_t ticket = 0;
        uint32_t bytes = 0;
        IOUserClient *client = nullptr;
        OSAction *action = nullptr;
        {
            CoreLock lock(ivars->coreLock);
            if (dk_admin_next_ready(ivars->core, &ticket, &bytes) != kIOReturnSuccess) {
                break;
            }
            for (uint32_t i = 0; i < DK_ADMIN_SLOTS; i++) {
                DkRaidAdminWaiter *w = &ivars->adminWaiters[i];
                if (w->ticket == ticket) {
                    client = w->client;
                    action = w->action;
                    *w = DkRaidAdminWaiter{};
                    break;
                }
            }
            if (client == nullptr) {
                /* Nobody waits for it (the connection closed): free the slot. */
                (void)dk_admin_cancel(ivars->core, ticket);
                continue;
            }
        }
        IOUserClientAsyncArgumentsArray args = {};
        args[0] = ticket;
        args[1] = bytes;
        client->AsyncCompletion(action, kIOReturnSuccess, args, 2);
        action->release();
        client->release();
    }
    IOUserClient *clients[kDkRaidMaxEventWatchers] = {};
    OSAction *actions[kDkRaidMaxEventWatchers] = {};
    uint64_t sequence = 0;
    {
        CoreLock lock(ivars->coreLock);
        sequence = dk_admin_event_sequence(ivars->core);
        for (uint32_t i = 0; i < kDkRaidMaxEventWatchers; i++) {
            DkRaidEventWatcher *w = &ivars->eventWatchers[i];
            if (w->client != nullptr && w->notified < sequence) {
                w->notified = sequence;
                w->client->retain();
                w->action->retain();
                clients[i] = w->client;
                actions[i] = w->action;
            }
        }
    }
    for (uint32_t i = 0; i < kDkRaidMaxEventWatchers; i++) {
        if (clients[i] == nullptr) {
            continue;
        }
        IOUserClientAsyncArgumentsArray args = {};
        args[0] = sequence;
        clients[i]->AsyncCompletion(actions[i], kIOReturnSuccess, args, 1);
        actions[i]->release();
        clients[i]->release();
    }
}
