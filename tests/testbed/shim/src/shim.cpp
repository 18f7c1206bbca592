/*
 * The DriverKit shim's implementation: each SDK call the dext makes becomes a call into the
 * test-bed's runtime (Rust), and each begins with dksim_enter — a scheduling point of the
 * deterministic scheduler. Objects keep real retain counts so leaks show.
 */
#include <DriverKit/DriverKit.h>
#include <DriverKit/IOInterruptDispatchSource.h>
#include <DriverKit/IOTimerDispatchSource.h>
#include <PCIDriverKit/PCIDriverKit.h>
#include <SCSIControllerDriverKit/SCSIControllerDriverKit.h>
#include <dksim/runtime.h>
#include <mach/mach_time.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <utility>
#include <vector>

/* ------------------------------------------------------------------------- IOLib, os_log -- */

uint64_t IOVMPageSize = 16384;

extern "C" void *IOMalloc(size_t length)
{
    dksim_enter("IOMalloc");
    return malloc(length ? length : 1);
}

extern "C" void *IOMallocZero(size_t length)
{
    dksim_enter("IOMallocZero");
    return calloc(1, length ? length : 1);
}

extern "C" void IOFree(void *address, size_t length)
{
    (void)length;
    free(address);
}

extern "C" void IOSleep(uint64_t milliseconds)
{
    dksim_enter("IOSleep");
    dksim_sleep_ns(milliseconds * 1000000ull);
}

extern "C" void IODelay(uint64_t microseconds)
{
    dksim_enter("IODelay");
    dksim_sleep_ns(microseconds * 1000ull);
}

/* Ticks of the simulated Mac's timebase, not nanoseconds (mach/mach_time.h). */
extern "C" uint64_t mach_absolute_time(void)
{
    dksim_enter("mach_absolute_time");
    return dksim_mach_absolute_time();
}

/* The simulated Mac never sleeps: continuous time is absolute time. */
extern "C" uint64_t mach_continuous_time(void)
{
    dksim_enter("mach_continuous_time");
    return dksim_mach_absolute_time();
}

extern "C" kern_return_t mach_timebase_info(mach_timebase_info_t info)
{
    dksim_enter("mach_timebase_info");
    if (info == nullptr) {
        return kIOReturnBadArgument;
    }
    return dksim_mach_timebase_info(&info->numer, &info->denom);
}

/* CLOCK_UPTIME_RAW and CLOCK_MONOTONIC_RAW are nanoseconds of the same virtual clock. */
extern "C" uint64_t clock_gettime_nsec_np(int clock_id)
{
    (void)clock_id;
    dksim_enter("clock_gettime_nsec_np");
    return dksim_now_ns();
}

/* os_log's {public}/{private} annotations are not printf: drop them, then format. */
extern "C" void dksim_os_log_unchecked(int level, const char *format, ...)
{
    std::string plain;
    for (const char *p = format; *p; p++) {
        plain.push_back(*p);
        if (*p == '%' && p[1] == '{') {
            const char *close = strchr(p, '}');
            if (close != nullptr) {
                p = close;
            }
        }
    }
    char line[1024];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(line, sizeof(line), plain.c_str(), args);
    va_end(args);
    if (n < 0) {
        return;
    }
    size_t length = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    dksim_log(level, line, length);
}

/* ------------------------------------------------------------------------------ OSObject -- */

static uint64_t gLiveObjects;

OSObject::OSObject() : dksimRetainCount(1) { gLiveObjects++; }
OSObject::~OSObject() { gLiveObjects--; }
bool OSObject::init() { return true; }
void OSObject::free() {}
void OSObject::retain() const { dksimRetainCount++; }
void OSObject::release() const
{
    if (--dksimRetainCount == 0) {
        OSObject *self = const_cast<OSObject *>(this);
        self->free();
        delete self;
    }
}
uint64_t OSObject::DkSimLiveObjects() { return gLiveObjects; }

extern "C" kern_return_t dksim_superdispatch(OSObject *self, const IORPC rpc)
{
    (void)self;
    (void)rpc;
    return kIOReturnUnsupported;
}

/* --------------------------------------------------------------------------- collections -- */

OSString *OSString::withCString(const char *cString)
{
    OSString *s = new OSString();
    s->dksimLength = strlen(cString);
    s->dksimString = strdup(cString);
    return s;
}
const char *OSString::getCStringNoCopy() const { return dksimString; }
size_t OSString::getLength() const { return dksimLength; }
bool OSString::isEqualTo(const char *cString) const { return strcmp(dksimString, cString) == 0; }
void OSString::free() { ::free(dksimString); }

OSNumber *OSNumber::withNumber(uint64_t value, size_t numberOfBits)
{
    OSNumber *n = new OSNumber();
    n->dksimValue = numberOfBits >= 64 ? value : value & ((1ull << numberOfBits) - 1);
    return n;
}
uint64_t OSNumber::unsigned64BitValue() const { return dksimValue; }
uint32_t OSNumber::unsigned32BitValue() const { return (uint32_t)dksimValue; }

OSBoolean *OSBoolean::withBoolean(bool value) { return value ? kOSBooleanTrue : kOSBooleanFalse; }
bool OSBoolean::isTrue() const { return dksimValue; }
bool OSBoolean::getValue() const { return dksimValue; }
/* Shared immortal objects, as in DriverKit. */
static OSBoolean gOSBooleanTrue(true);
static OSBoolean gOSBooleanFalse(false);
OSBoolean *const kOSBooleanTrue = &gOSBooleanTrue;
OSBoolean *const kOSBooleanFalse = &gOSBooleanFalse;

struct OSArray::DkSimStorage {
    std::vector<OSObject *> items;
};
OSArray *OSArray::withCapacity(uint32_t capacity)
{
    OSArray *a = new OSArray();
    a->dksimStorage = new DkSimStorage();
    a->dksimStorage->items.reserve(capacity);
    return a;
}
bool OSArray::setObject(const OSMetaClassBase *anObject)
{
    if (anObject == nullptr) {
        return false;
    }
    anObject->retain();
    dksimStorage->items.push_back(const_cast<OSObject *>(anObject));
    return true;
}
OSObject *OSArray::getObject(uint32_t index) const
{
    return index < dksimStorage->items.size() ? dksimStorage->items[index] : nullptr;
}
uint32_t OSArray::getCount() const { return (uint32_t)dksimStorage->items.size(); }
void OSArray::free()
{
    for (OSObject *o : dksimStorage->items) {
        o->release();
    }
    delete dksimStorage;
}

struct OSDictionary::DkSimStorage {
    std::vector<std::pair<std::string, OSObject *>> items;
};
OSDictionary *OSDictionary::withCapacity(uint32_t capacity)
{
    OSDictionary *d = new OSDictionary();
    d->dksimStorage = new DkSimStorage();
    d->dksimStorage->items.reserve(capacity);
    return d;
}
bool OSDictionary::setObject(const char *aKey, const OSMetaClassBase *anObject)
{
    if (aKey == nullptr || anObject == nullptr) {
        return false;
    }
    anObject->retain();
    for (auto &item : dksimStorage->items) {
        if (item.first == aKey) {
            item.second->release();
            item.second = const_cast<OSObject *>(anObject);
            return true;
        }
    }
    dksimStorage->items.emplace_back(aKey, const_cast<OSObject *>(anObject));
    return true;
}
OSObject *OSDictionary::getObject(const char *aKey) const
{
    for (const auto &item : dksimStorage->items) {
        if (item.first == aKey) {
            return item.second;
        }
    }
    return nullptr;
}
void OSDictionary::removeObject(const char *aKey)
{
    auto &items = dksimStorage->items;
    for (size_t i = 0; i < items.size(); i++) {
        if (items[i].first == aKey) {
            items[i].second->release();
            items.erase(items.begin() + (long)i);
            return;
        }
    }
}
uint32_t OSDictionary::getCount() const { return (uint32_t)dksimStorage->items.size(); }
const char *OSDictionary::DkSimKeyAt(uint32_t index) const
{
    return index < dksimStorage->items.size() ? dksimStorage->items[index].first.c_str() : nullptr;
}
void OSDictionary::free()
{
    for (auto &item : dksimStorage->items) {
        item.second->release();
    }
    delete dksimStorage;
}

/* ------------------------------------------------------------------------------ OSAction -- */

kern_return_t OSAction::DkSimCreate(OSObject *target, DkSimActionInvoke invoke,
                                    const char *methodName, const char *queueName,
                                    size_t referenceSize, OSAction **action)
{
    dksim_enter("OSAction::Create");
    if (target == nullptr || invoke == nullptr || action == nullptr) {
        return kIOReturnBadArgument;
    }
    OSAction *a = new OSAction();
    a->dksimTarget = target;
    target->retain();
    a->dksimInvoke = invoke;
    a->dksimMethodName = methodName;
    a->dksimQueueName = queueName;
    a->dksimReferenceSize = referenceSize;
    a->dksimReference = referenceSize ? calloc(1, referenceSize) : nullptr;
    *action = a;
    return kIOReturnSuccess;
}

OSAction *OSAction::DkSimCreateKernel(uint64_t kernelHandle)
{
    OSAction *a = new OSAction();
    a->dksimKernelHandle = kernelHandle;
    a->dksimMethodName = "ParallelTaskCompletion";
    return a;
}

void *OSAction::GetReference() { return dksimReference; }

void OSAction::DkSimInvoke(const uint64_t *args)
{
    if (dksimInvoke != nullptr && dksimTarget != nullptr) {
        dksimInvoke(dksimTarget, this, args);
    }
}

void OSAction::free()
{
    ::free(dksimReference);
    if (dksimTarget != nullptr) {
        dksimTarget->release();
    }
}

/* ----------------------------------------------------------------------- IODispatchQueue -- */

kern_return_t IODispatchQueue::Create(const IODispatchQueueName name, uint64_t options,
                                      uint64_t priority, IODispatchQueue **queue)
{
    (void)priority;
    dksim_enter("IODispatchQueue::Create");
    if (queue == nullptr || name == nullptr) {
        return kIOReturnBadArgument;
    }
    uint64_t handle = 0;
    kern_return_t ret = dksim_queue_create(name, options, &handle);
    if (ret != kIOReturnSuccess) {
        return ret;
    }
    IODispatchQueue *q = new IODispatchQueue();
    q->dksimHandle = handle;
    *queue = q;
    return kIOReturnSuccess;
}

void IODispatchQueue::free() { dksim_queue_release(dksimHandle); }

/* ------------------------------------------------------------------------------ IOService -- */

kern_return_t IOService::Start_Impl(IOService *provider)
{
    return dksim_super_start(this, provider);
}

kern_return_t IOService::Stop_Impl(IOService *provider)
{
    return dksim_super_stop(this, provider);
}

kern_return_t IOService::Start(IOService *provider, OSDispatchMethod supermethod)
{
    dksim_enter("IOService::Start");
    if (supermethod != nullptr) {
        return dksim_super_start(this, provider);
    }
    return Start_Impl(provider);
}

kern_return_t IOService::Stop(IOService *provider, OSDispatchMethod supermethod)
{
    dksim_enter("IOService::Stop");
    if (supermethod != nullptr) {
        return dksim_super_stop(this, provider);
    }
    return Stop_Impl(provider);
}

kern_return_t IOService::SetDispatchQueue(const char *name, IODispatchQueue *queue)
{
    dksim_enter("IOService::SetDispatchQueue");
    return dksim_set_dispatch_queue(this, name, queue != nullptr ? queue->DkSimHandle() : 0);
}

kern_return_t IOService::CopyDispatchQueue(const char *name, IODispatchQueue **queue)
{
    dksim_enter("IOService::CopyDispatchQueue");
    (void)name;
    (void)queue;
    return kIOReturnUnsupported;
}

kern_return_t IOService::CopyProperties(OSDictionary **properties)
{
    dksim_enter("IOService::CopyProperties");
    if (properties == nullptr) {
        return kIOReturnBadArgument;
    }
    OSDictionary *d = OSDictionary::withCapacity(8);
    uint32_t count = dksim_property_count(this);
    for (uint32_t i = 0; i < count; i++) {
        const char *key = nullptr;
        uint32_t kind = DKSIM_PROPERTY_STRING;
        const char *string = nullptr;
        uint64_t number = 0;
        dksim_property_at(this, i, &key, &kind, &string, &number);
        if (key == nullptr) {
            continue;
        }
        switch (kind) {
        case DKSIM_PROPERTY_NUMBER: {
            OSNumber *n = OSNumber::withNumber(number, 64);
            d->setObject(key, n);
            n->release();
            break;
        }
        case DKSIM_PROPERTY_BOOLEAN:
            /* Shared immortal objects: no release. */
            d->setObject(key, number != 0 ? kOSBooleanTrue : kOSBooleanFalse);
            break;
        default:
            if (string != nullptr) {
                OSString *s = OSString::withCString(string);
                d->setObject(key, s);
                s->release();
            }
            break;
        }
    }
    *properties = d;
    return kIOReturnSuccess;
}

kern_return_t IOService::SetProperties(OSDictionary *properties)
{
    dksim_enter("IOService::SetProperties");
    (void)properties;
    return kIOReturnSuccess;
}

kern_return_t IOService::RegisterService()
{
    dksim_enter("IOService::RegisterService");
    return dksim_register_service(this);
}

kern_return_t IOService::Terminate(uint64_t options)
{
    dksim_enter("IOService::Terminate");
    (void)options;
    return kIOReturnSuccess;
}

/* ---------------------------------------------------------------------- memory and DMA -- */

kern_return_t IOMemoryDescriptor::GetLength(uint64_t *returnLength)
{
    dksim_enter("IOMemoryDescriptor::GetLength");
    return dksim_buffer_get_length(dksimHandle, returnLength);
}

kern_return_t IOMemoryDescriptor::CreateMapping(uint64_t options, uint64_t address,
                                                uint64_t offset, uint64_t length,
                                                uint64_t alignment, IOMemoryMap **map)
{
    (void)options;
    (void)alignment;
    dksim_enter("IOMemoryDescriptor::CreateMapping");
    if (map == nullptr || address != 0) {
        return kIOReturnBadArgument;
    }
    uint64_t mappedAddress = 0;
    uint64_t mappedLength = 0;
    kern_return_t ret = dksim_buffer_map(dksimHandle, offset, length, &mappedAddress, &mappedLength);
    if (ret != kIOReturnSuccess) {
        return ret;
    }
    *map = IOMemoryMap::DkSimCreate(mappedAddress, mappedLength);
    return kIOReturnSuccess;
}

IOMemoryMap *IOMemoryMap::DkSimCreate(uint64_t address, uint64_t length)
{
    IOMemoryMap *m = new IOMemoryMap();
    m->dksimAddress = address;
    m->dksimLength = length;
    return m;
}

uint64_t IOMemoryMap::GetAddress() { return dksimAddress; }
uint64_t IOMemoryMap::GetLength() { return dksimLength; }
uint64_t IOMemoryMap::GetOffset() { return 0; }

kern_return_t IOBufferMemoryDescriptor::Create(uint64_t options, uint64_t capacity,
                                               uint64_t alignment,
                                               IOBufferMemoryDescriptor **memory)
{
    dksim_enter("IOBufferMemoryDescriptor::Create");
    if (memory == nullptr) {
        return kIOReturnBadArgument;
    }
    uint64_t handle = 0;
    kern_return_t ret = dksim_buffer_create(options, capacity, alignment, &handle);
    if (ret != kIOReturnSuccess) {
        return ret;
    }
    IOBufferMemoryDescriptor *m = new IOBufferMemoryDescriptor();
    m->dksimHandle = handle;
    *memory = m;
    return kIOReturnSuccess;
}

kern_return_t IOBufferMemoryDescriptor::GetAddressRange(IOAddressSegment *range)
{
    dksim_enter("IOBufferMemoryDescriptor::GetAddressRange");
    return dksim_buffer_address_range(dksimHandle, range);
}

kern_return_t IOBufferMemoryDescriptor::SetLength(uint64_t length)
{
    dksim_enter("IOBufferMemoryDescriptor::SetLength");
    return dksim_buffer_set_length(dksimHandle, length);
}

void IOBufferMemoryDescriptor::free()
{
    if (!dksimBorrowed) {
        dksim_buffer_release(dksimHandle);
    }
}

kern_return_t IODMACommand::Create(IOService *device, uint64_t options,
                                   const IODMACommandSpecification *specification,
                                   IODMACommand **command)
{
    dksim_enter("IODMACommand::Create");
    if (device == nullptr || specification == nullptr || command == nullptr) {
        return kIOReturnBadArgument;
    }
    uint64_t handle = 0;
    kern_return_t ret = dksim_dma_create(device, options, specification->maxAddressBits, &handle);
    if (ret != kIOReturnSuccess) {
        return ret;
    }
    IODMACommand *c = new IODMACommand();
    c->dksimHandle = handle;
    *command = c;
    return kIOReturnSuccess;
}

kern_return_t IODMACommand::PrepareForDMA(uint64_t options, IOMemoryDescriptor *memory,
                                          uint64_t offset, uint64_t length, uint64_t *flags,
                                          uint32_t *segmentsCount, IOAddressSegment *segments)
{
    dksim_enter("IODMACommand::PrepareForDMA");
    if (memory == nullptr || segmentsCount == nullptr || segments == nullptr) {
        return kIOReturnBadArgument;
    }
    return dksim_dma_prepare(dksimHandle, options, memory->DkSimHandle(), offset, length, flags,
                             segmentsCount, segments);
}

kern_return_t IODMACommand::CompleteDMA(uint64_t options)
{
    dksim_enter("IODMACommand::CompleteDMA");
    return dksim_dma_complete(dksimHandle, options);
}

void IODMACommand::free() { dksim_dma_release(dksimHandle); }

/* ------------------------------------------------------------------- dispatch sources -- */

kern_return_t IOTimerDispatchSource::Create(IODispatchQueue *queue, IOTimerDispatchSource **source)
{
    dksim_enter("IOTimerDispatchSource::Create");
    if (queue == nullptr || source == nullptr) {
        return kIOReturnBadArgument;
    }
    uint64_t handle = 0;
    kern_return_t ret = dksim_timer_create(queue->DkSimHandle(), &handle);
    if (ret != kIOReturnSuccess) {
        return ret;
    }
    IOTimerDispatchSource *t = new IOTimerDispatchSource();
    t->dksimHandle = handle;
    *source = t;
    return kIOReturnSuccess;
}

kern_return_t IOTimerDispatchSource::SetHandler(OSAction *action)
{
    dksim_enter("IOTimerDispatchSource::SetHandler");
    if (action == nullptr) {
        return kIOReturnBadArgument;
    }
    action->retain();
    OSSafeReleaseNULL(dksimAction);
    dksimAction = action;
    return kIOReturnSuccess;
}

kern_return_t IOTimerDispatchSource::WakeAtTime(uint64_t options, uint64_t deadline,
                                                uint64_t leeway)
{
    (void)leeway;
    dksim_enter("IOTimerDispatchSource::WakeAtTime");
    if (dksimAction == nullptr) {
        return kIOReturnNotReady;
    }
    /* The runtime reads the deadline in the clock `options` names (ticks or ns). */
    return dksim_timer_wake_at(dksimHandle, dksimAction, options, deadline);
}

kern_return_t IOTimerDispatchSource::Cancel(IODispatchSourceCancelHandler handler)
{
    (void)handler;
    dksim_enter("IOTimerDispatchSource::Cancel");
    dksim_timer_cancel(dksimHandle);
    return kIOReturnSuccess;
}

kern_return_t IOTimerDispatchSource::SetEnableWithCompletion(bool enable,
                                                             IODispatchSourceCancelHandler handler)
{
    (void)handler;
    dksim_enter("IOTimerDispatchSource::SetEnableWithCompletion");
    return dksim_timer_set_enable(dksimHandle, enable);
}

void IOTimerDispatchSource::free()
{
    dksim_timer_cancel(dksimHandle);
    OSSafeReleaseNULL(dksimAction);
}

/* The runtime owns interrupt sources (src/controller/interrupts.rs): it posts
 * InterruptOccurred to the source's queue when the device raises the source's vector. The
 * source keeps its action retained while the runtime may call it; Cancel and free() tell the
 * runtime first, then release it. */

kern_return_t IOInterruptDispatchSource::Create(IOService *provider, uint32_t index,
                                                IODispatchQueue *queue,
                                                IOInterruptDispatchSource **source)
{
    dksim_enter("IOInterruptDispatchSource::Create");
    if (provider == nullptr || queue == nullptr || source == nullptr) {
        return kIOReturnBadArgument;
    }
    uint64_t handle = 0;
    kern_return_t ret = dksim_interrupt_create(queue->DkSimHandle(), index, &handle);
    if (ret != kIOReturnSuccess) {
        return ret;
    }
    IOInterruptDispatchSource *s = new IOInterruptDispatchSource();
    s->dksimHandle = handle;
    *source = s;
    return kIOReturnSuccess;
}

kern_return_t IOInterruptDispatchSource::GetInterruptType(IOService *provider, uint32_t index,
                                                          uint64_t *interruptType)
{
    (void)index;
    dksim_enter("IOInterruptDispatchSource::GetInterruptType");
    if (provider == nullptr || interruptType == nullptr) {
        return kIOReturnBadArgument;
    }
    /* A PCI device's sources are MSI/MSI-X: edge-triggered messages. */
    *interruptType = kIOInterruptDispatchSourceTypeEdge;
    return kIOReturnSuccess;
}

bool IOInterruptDispatchSource::init() { return IODispatchSource::init(); }

kern_return_t IOInterruptDispatchSource::SetHandler(OSAction *action)
{
    dksim_enter("IOInterruptDispatchSource::SetHandler");
    if (action == nullptr) {
        return kIOReturnBadArgument;
    }
    kern_return_t ret = dksim_interrupt_set_handler(dksimHandle, action);
    if (ret != kIOReturnSuccess) {
        return ret;
    }
    action->retain();
    OSSafeReleaseNULL(dksimAction);
    dksimAction = action;
    return kIOReturnSuccess;
}

kern_return_t IOInterruptDispatchSource::Cancel(IODispatchSourceCancelHandler handler)
{
    (void)handler;
    dksim_enter("IOInterruptDispatchSource::Cancel");
    dksim_interrupt_cancel(dksimHandle);
    OSSafeReleaseNULL(dksimAction);
    return kIOReturnSuccess;
}

kern_return_t IOInterruptDispatchSource::SetEnableWithCompletion(bool enable,
                                                                 IODispatchSourceCancelHandler handler)
{
    (void)handler;
    dksim_enter("IOInterruptDispatchSource::SetEnableWithCompletion");
    return dksim_interrupt_enable(dksimHandle, enable);
}

void IOInterruptDispatchSource::free()
{
    dksim_interrupt_cancel(dksimHandle);
    OSSafeReleaseNULL(dksimAction);
    IODispatchSource::free();
}

/* ---------------------------------------------------------------------------- IOPCIDevice -- */

IOPCIDevice *IOPCIDevice::DkSimCreate(uint64_t deviceHandle)
{
    IOPCIDevice *d = new IOPCIDevice();
    d->dksimHandle = deviceHandle;
    return d;
}

kern_return_t IOPCIDevice::Open(IOService *forClient, uint32_t options)
{
    (void)options;
    dksim_enter("IOPCIDevice::Open");
    return dksim_pci_open(dksimHandle, forClient);
}

void IOPCIDevice::Close(IOService *forClient, uint32_t options)
{
    (void)options;
    dksim_enter("IOPCIDevice::Close");
    dksim_pci_close(dksimHandle, forClient);
}

kern_return_t IOPCIDevice::GetBARInfo(uint8_t barIndex, uint8_t *memoryIndex, uint64_t *barSize,
                                      uint8_t *barType)
{
    dksim_enter("IOPCIDevice::GetBARInfo");
    return dksim_pci_bar_info(dksimHandle, barIndex, memoryIndex, barSize, barType);
}

void IOPCIDevice::MemoryRead32(uint8_t memoryIndex, uint64_t offset, uint32_t *readData)
{
    dksim_enter("IOPCIDevice::MemoryRead32");
    *readData = (uint32_t)dksim_pci_read(dksimHandle, memoryIndex, offset, 32);
}

void IOPCIDevice::MemoryWrite32(uint8_t memoryIndex, uint64_t offset, uint32_t data)
{
    dksim_enter("IOPCIDevice::MemoryWrite32");
    dksim_pci_write(dksimHandle, memoryIndex, offset, 32, data);
}

void IOPCIDevice::MemoryRead64(uint8_t memoryIndex, uint64_t offset, uint64_t *readData)
{
    dksim_enter("IOPCIDevice::MemoryRead64");
    *readData = dksim_pci_read(dksimHandle, memoryIndex, offset, 64);
}

void IOPCIDevice::MemoryWrite64(uint8_t memoryIndex, uint64_t offset, uint64_t data)
{
    dksim_enter("IOPCIDevice::MemoryWrite64");
    dksim_pci_write(dksimHandle, memoryIndex, offset, 64, data);
}

void IOPCIDevice::ConfigurationRead16(uint64_t offset, uint16_t *readData)
{
    dksim_enter("IOPCIDevice::ConfigurationRead16");
    *readData = (uint16_t)dksim_pci_read(dksimHandle, 0xFF, offset, 16);
}

void IOPCIDevice::ConfigurationRead32(uint64_t offset, uint32_t *readData)
{
    dksim_enter("IOPCIDevice::ConfigurationRead32");
    *readData = (uint32_t)dksim_pci_read(dksimHandle, 0xFF, offset, 32);
}

void IOPCIDevice::ConfigurationWrite16(uint64_t offset, uint16_t data)
{
    dksim_enter("IOPCIDevice::ConfigurationWrite16");
    dksim_pci_write(dksimHandle, 0xFF, offset, 16, data);
}

kern_return_t IOPCIDevice::ConfigureInterrupts(uint32_t interruptType, uint32_t numRequired,
                                               uint32_t numRequested, uint32_t options)
{
    (void)interruptType;
    (void)numRequired;
    (void)numRequested;
    (void)options;
    dksim_enter("IOPCIDevice::ConfigureInterrupts");
    return kIOReturnSuccess;
}

/* --------------------------------------------------- IOUserSCSIParallelInterfaceController -- */

void IOUserSCSIParallelInterfaceController::ParallelTaskCompletion(OSAction *action,
                                                                   SCSIUserParallelResponse response)
{
    dksim_enter("ParallelTaskCompletion");
    dksim_parallel_task_completion(this, action, &response);
}

kern_return_t IOUserSCSIParallelInterfaceController::UserTargetPresentForID(SCSIDeviceIdentifier targetID,
                                                                            bool *result)
{
    (void)targetID;
    dksim_enter("UserTargetPresentForID");
    *result = false;
    return kIOReturnSuccess;
}

kern_return_t IOUserSCSIParallelInterfaceController::UserCreateTargetForID(SCSIDeviceIdentifier targetID,
                                                                           OSDictionary *targetDict)
{
    (void)targetDict;
    dksim_enter("UserCreateTargetForID");
    return dksim_create_target(this, targetID);
}

kern_return_t IOUserSCSIParallelInterfaceController::UserDestroyTargetForID(SCSITargetIdentifier targetID)
{
    dksim_enter("UserDestroyTargetForID");
    return dksim_destroy_target(this, targetID);
}

kern_return_t IOUserSCSIParallelInterfaceController::UserGetDataBuffer(SCSIDeviceIdentifier targetID,
                                                                       uint64_t controllerTaskID,
                                                                       IOBufferMemoryDescriptor **buffer)
{
    dksim_enter("UserGetDataBuffer");
    if (buffer == nullptr) {
        return kIOReturnBadArgument;
    }
    uint64_t handle = 0;
    kern_return_t ret = dksim_get_data_buffer(this, targetID, controllerTaskID, &handle);
    if (ret != kIOReturnSuccess) {
        return ret;
    }
    /* The kernel's buffer: the descriptor does not own it (its free() must not release it). */
    IOBufferMemoryDescriptor *b = new IOBufferMemoryDescriptor();
    b->DkSimAdopt(handle);
    b->DkSimSetBorrowed();
    *buffer = b;
    return kIOReturnSuccess;
}

kern_return_t IOUserSCSIParallelInterfaceController::UserSetHBAProperties(OSDictionary *properties)
{
    (void)properties;
    dksim_enter("UserSetHBAProperties");
    return kIOReturnSuccess;
}

kern_return_t IOUserSCSIParallelInterfaceController::UserReportHBAConstraints(OSDictionary *constraints)
{
    dksim_enter("UserReportHBAConstraints");
    if (constraints == nullptr) {
        return kIOReturnBadArgument;
    }
    static const char *const keys[7] = DKSIM_CONSTRAINT_KEYS;
    uint32_t present = 0;
    uint64_t values[7] = {};
    for (uint32_t i = 0; i < 7; i++) {
        OSNumber *n = OSDynamicCast(OSNumber, constraints->getObject(keys[i]));
        if (n != nullptr) {
            present |= 1u << i;
            values[i] = n->unsigned64BitValue();
        }
    }
    return dksim_report_hba_constraints(this, present, values);
}

kern_return_t IOUserSCSIParallelInterfaceController::UserCallMediaParametersHaveChanged(void)
{
    dksim_enter("UserCallMediaParametersHaveChanged");
    return kIOReturnSuccess;
}

void IOUserSCSIParallelInterfaceController::BundledParallelTaskCompletion(
    OSAction *action, const uint16_t parallelResponseSlotIndices[kMaxBundledParallelTasks],
    uint16_t parallelResponseSlotIndicesCount)
{
    (void)action;
    (void)parallelResponseSlotIndices;
    (void)parallelResponseSlotIndicesCount;
    dksim_enter("BundledParallelTaskCompletion");
}

/* -------------------------------------------------------------------------- OSData -- */

OSData *OSData::withBytes(const void *bytes, size_t numBytes)
{
    OSData *d = new OSData();
    if (numBytes > 0) {
        d->appendBytes(bytes, numBytes);
    }
    return d;
}

OSData *OSData::withCapacity(uint32_t capacity)
{
    OSData *d = new OSData();
    d->dksimBytes = capacity > 0 ? (uint8_t *)malloc(capacity) : nullptr;
    d->dksimCapacity = d->dksimBytes != nullptr ? capacity : 0;
    return d;
}

bool OSData::appendBytes(const void *bytes, size_t numBytes)
{
    if (numBytes == 0) {
        return true;
    }
    if (bytes == nullptr) {
        return false;
    }
    if (dksimLength + numBytes > dksimCapacity) {
        size_t capacity = dksimLength + numBytes;
        uint8_t *grown = (uint8_t *)realloc(dksimBytes, capacity);
        if (grown == nullptr) {
            return false;
        }
        dksimBytes = grown;
        dksimCapacity = capacity;
    }
    memcpy(dksimBytes + dksimLength, bytes, numBytes);
    dksimLength += numBytes;
    return true;
}

const void *OSData::getBytesNoCopy() const { return dksimLength > 0 ? dksimBytes : nullptr; }

const void *OSData::getBytesNoCopy(size_t start, size_t numBytes) const
{
    if (start > dksimLength || numBytes > dksimLength - start || numBytes == 0) {
        return nullptr;
    }
    return dksimBytes + start;
}

size_t OSData::getLength() const { return dksimLength; }

void OSData::free()
{
    ::free(dksimBytes);
    dksimBytes = nullptr;
    dksimLength = 0;
}

/* -------------------------------------------------------------------- user clients -- */

kern_return_t IOService::NewUserClient_Impl(uint32_t type, IOUserClient **userClient)
{
    /* The family's default: no connections. */
    (void)type;
    (void)userClient;
    return kIOReturnUnsupported;
}

kern_return_t IOService::NewUserClient(uint32_t type, IOUserClient **userClient,
                                       OSDispatchMethod supermethod)
{
    dksim_enter("IOService::NewUserClient");
    if (supermethod != nullptr) {
        return IOService::NewUserClient_Impl(type, userClient);
    }
    return NewUserClient_Impl(type, userClient);
}

kern_return_t IOService::Create(IOService *provider, const char *propertiesKey, IOService **result)
{
    dksim_enter("IOService::Create");
    if (provider == nullptr || propertiesKey == nullptr || result == nullptr) {
        return kIOReturnBadArgument;
    }
    OSObject *object = nullptr;
    kern_return_t ret = dksim_service_create(this, propertiesKey, &object);
    if (ret != kIOReturnSuccess) {
        return ret;
    }
    IOService *service = dynamic_cast<IOService *>(object);
    if (service == nullptr) {
        if (object != nullptr) {
            object->release();
        }
        return kIOReturnUnsupported;
    }
    *result = service;
    return kIOReturnSuccess;
}

/* The kernel's checks of an ExternalMethod call against a dispatch entry: each failed check
 * is reported by name and the call returns kIOReturnBadArgument, as DriverKit does. */
static bool CheckCount(OSObject *client, uint64_t selector, const char *check, uint32_t expected,
                       uint64_t got)
{
    if (expected == (uint32_t)kIOUserClientVariableStructureSize || expected == got) {
        return true;
    }
    dksim_external_method_refused(client, selector, check, expected, got);
    return false;
}

kern_return_t IOUserClient::ExternalMethod(uint64_t selector, IOUserClientMethodArguments *arguments,
                                           const IOUserClientMethodDispatch *dispatch,
                                           OSObject *target, void *reference)
{
    dksim_enter("IOUserClient::ExternalMethod");
    if (arguments == nullptr) {
        return kIOReturnBadArgument;
    }
    if (dispatch == nullptr) {
        /* Nothing to check and nothing to call: the dext handles the selector itself. */
        return kIOReturnUnsupported;
    }
    if (dispatch->checkCompletionExists != (uint32_t)kIOUserClientVariableStructureSize) {
        bool wanted = dispatch->checkCompletionExists != 0;
        bool present = arguments->completion != nullptr;
        if (wanted != present) {
            dksim_external_method_refused(this, selector, "checkCompletionExists", wanted, present);
            return kIOReturnBadArgument;
        }
    }
    uint64_t inputSize = 0;
    if (arguments->structureInput != nullptr) {
        inputSize = arguments->structureInput->getLength();
    } else if (arguments->structureInputDescriptor != nullptr) {
        arguments->structureInputDescriptor->GetLength(&inputSize);
    }
    if (!CheckCount(this, selector, "checkScalarInputCount", dispatch->checkScalarInputCount,
                    arguments->scalarInputCount) ||
        !CheckCount(this, selector, "checkStructureInputSize", dispatch->checkStructureInputSize,
                    inputSize) ||
        !CheckCount(this, selector, "checkScalarOutputCount", dispatch->checkScalarOutputCount,
                    arguments->scalarOutputCount) ||
        !CheckCount(this, selector, "checkStructureOutputSize", dispatch->checkStructureOutputSize,
                    arguments->structureOutputMaximumSize)) {
        return kIOReturnBadArgument;
    }
    if (dispatch->function == nullptr) {
        return kIOReturnNoCompletion;
    }
    return dispatch->function(target, reference, arguments);
}

void IOUserClient::AsyncCompletion(OSAction *action, IOReturn status,
                                   const IOUserClientAsyncArgumentsArray asyncData,
                                   uint32_t asyncDataCount)
{
    dksim_enter("IOUserClient::AsyncCompletion");
    dksim_async_completion(this, action, status, asyncData, asyncDataCount);
}

kern_return_t IOUserClient::CopyClientEntitlements(OSDictionary **entitlements)
{
    dksim_enter("IOUserClient::CopyClientEntitlements");
    if (entitlements == nullptr) {
        return kIOReturnBadArgument;
    }
    uint32_t count = dksim_client_entitlement_count(this);
    OSDictionary *d = OSDictionary::withCapacity(count);
    /* Each entitlement is "key" (a boolean true) or "key=value" (a string, such as the
     * com.apple.developer.team-identifier the system puts in a team-signed binary). */
    for (uint32_t i = 0; i < count; i++) {
        const char *entry = dksim_client_entitlement_at(this, i);
        if (entry == nullptr) {
            continue;
        }
        const char *equals = strchr(entry, '=');
        if (equals == nullptr) {
            d->setObject(entry, kOSBooleanTrue);
            continue;
        }
        std::string key(entry, (size_t)(equals - entry));
        OSString *value = OSString::withCString(equals + 1);
        if (value != nullptr) {
            d->setObject(key.c_str(), value);
            value->release();
        }
    }
    *entitlements = d;
    return kIOReturnSuccess;
}

kern_return_t IOUserClient::CopyClientMemoryForType(uint64_t type, uint64_t *options,
                                                    IOMemoryDescriptor **memory)
{
    dksim_enter("IOUserClient::CopyClientMemoryForType");
    (void)type;
    (void)options;
    (void)memory;
    return kIOReturnUnsupported;
}

/* ------------------------------------------------------- runtime → dext trampolines -- */

static IOUserSCSIParallelInterfaceController *Controller(OSObject *object)
{
    return static_cast<IOUserSCSIParallelInterfaceController *>(object);
}

extern "C" {

void dksim_object_release(OSObject *object)
{
    if (object != nullptr) {
        object->release();
    }
}

OSObject *dksim_pci_device_new(uint64_t device) { return IOPCIDevice::DkSimCreate(device); }

OSAction *dksim_kernel_action_new(uint64_t handle) { return OSAction::DkSimCreateKernel(handle); }

uint64_t dksim_action_kernel_handle(OSAction *action)
{
    return action != nullptr ? action->DkSimKernelHandle() : 0;
}

void dksim_action_invoke(OSAction *action, const uint64_t *args) { action->DkSimInvoke(args); }

uint64_t dksim_live_objects(void) { return OSObject::DkSimLiveObjects(); }

kern_return_t dksim_invoke_Start(OSObject *object, OSObject *provider)
{
    return static_cast<IOService *>(object)->Start_Impl(static_cast<IOService *>(provider));
}

kern_return_t dksim_invoke_Stop(OSObject *object, OSObject *provider)
{
    return static_cast<IOService *>(object)->Stop_Impl(static_cast<IOService *>(provider));
}

kern_return_t dksim_invoke_NewUserClient(OSObject *service, uint32_t type, OSObject **out_client)
{
    IOUserClient *client = nullptr;
    kern_return_t ret = static_cast<IOService *>(service)->NewUserClient_Impl(type, &client);
    *out_client = client;
    return ret;
}

kern_return_t dksim_invoke_ExternalMethod(OSObject *object, uint64_t selector, OSAction *completion,
                                          const uint64_t *scalar_in, uint32_t scalar_in_count,
                                          const uint8_t *struct_in, uint64_t struct_in_length,
                                          uint64_t *scalar_out, uint32_t *scalar_out_count,
                                          uint64_t struct_out_maximum, uint8_t *struct_out,
                                          uint64_t struct_out_capacity, uint64_t *struct_out_length)
{
    IOUserClient *client = dynamic_cast<IOUserClient *>(object);
    if (client == nullptr) {
        return kIOReturnNotAttached;
    }
    IOUserClientMethodArguments arguments = {};
    arguments.version = kIOUserClientMethodArgumentsCurrentVersion;
    arguments.selector = selector;
    arguments.completion = completion;
    arguments.scalarInput = scalar_in_count > 0 ? scalar_in : nullptr;
    arguments.scalarInputCount = scalar_in_count;
    /* Structure input up to 4096 bytes travels inline as OSData; a larger one arrives as a
     * memory descriptor (DRIVERKIT.md §7). */
    IOBufferMemoryDescriptor *inputBuffer = nullptr;
    if (struct_in_length > 4096) {
        kern_return_t ret = IOBufferMemoryDescriptor::Create(kIOMemoryDirectionOut, struct_in_length,
                                                             0, &inputBuffer);
        IOAddressSegment range = {};
        if (ret == kIOReturnSuccess) {
            ret = inputBuffer->SetLength(struct_in_length);
        }
        if (ret == kIOReturnSuccess) {
            ret = inputBuffer->GetAddressRange(&range);
        }
        if (ret != kIOReturnSuccess) {
            OSSafeReleaseNULL(inputBuffer);
            return ret;
        }
        memcpy((void *)(uintptr_t)range.address, struct_in, struct_in_length);
        arguments.structureInputDescriptor = inputBuffer;
    } else if (struct_in_length > 0) {
        arguments.structureInput = OSData::withBytes(struct_in, struct_in_length);
    }
    arguments.scalarOutput = scalar_out;
    arguments.scalarOutputCount = *scalar_out_count;
    arguments.structureOutputMaximumSize = struct_out_maximum;
    kern_return_t ret = client->ExternalMethod(selector, &arguments, nullptr, nullptr, nullptr);
    *scalar_out_count = arguments.scalarOutputCount;
    *struct_out_length = 0;
    if (arguments.structureOutput != nullptr) {
        size_t length = arguments.structureOutput->getLength();
        *struct_out_length = length;
        if (length > 0) {
            memcpy(struct_out, arguments.structureOutput->getBytesNoCopy(),
                   length < struct_out_capacity ? length : struct_out_capacity);
        }
        /* The OS releases the structure output. */
        arguments.structureOutput->release();
    }
    OSSafeReleaseNULL(arguments.structureInput);
    OSSafeReleaseNULL(inputBuffer);
    return ret;
}

kern_return_t dksim_invoke_UserInitializeController(OSObject *object)
{
    return Controller(object)->UserInitializeController_Impl();
}

kern_return_t dksim_invoke_UserReportInitiatorIdentifier(OSObject *object, uint64_t *id)
{
    return Controller(object)->UserReportInitiatorIdentifier_Impl(id);
}

kern_return_t dksim_invoke_UserReportHighestSupportedDeviceID(OSObject *object, uint64_t *id)
{
    return Controller(object)->UserReportHighestSupportedDeviceID_Impl(id);
}

kern_return_t dksim_invoke_UserReportMaximumTaskCount(OSObject *object, uint32_t *count)
{
    return Controller(object)->UserReportMaximumTaskCount_Impl(count);
}

kern_return_t dksim_invoke_UserGetDMASpecification(OSObject *object, uint64_t *maxTransferSize,
                                                   uint32_t *alignment, uint8_t *numAddressBits,
                                                   uint16_t *segmentType)
{
    DMAOutputSegmentType type = kDMAOutputSegmentHost32;
    kern_return_t ret = Controller(object)->UserGetDMASpecification_Impl(maxTransferSize, alignment,
                                                                         numAddressBits, &type);
    *segmentType = (uint16_t)type;
    return ret;
}

kern_return_t dksim_invoke_UserMapHBAData(OSObject *object, uint32_t *uniqueTaskID)
{
    return Controller(object)->UserMapHBAData_Impl(uniqueTaskID);
}

kern_return_t dksim_invoke_UserMapBundledParallelTaskCommandAndResponseBuffers(OSObject *object)
{
    return Controller(object)->UserMapBundledParallelTaskCommandAndResponseBuffers_Impl(nullptr,
                                                                                        nullptr);
}

kern_return_t dksim_invoke_UserStartController(OSObject *object)
{
    return Controller(object)->UserStartController_Impl();
}

kern_return_t dksim_invoke_UserDoesHBAPerformDeviceManagement(OSObject *object, bool *result)
{
    return Controller(object)->UserDoesHBAPerformDeviceManagement_Impl(result);
}

/* What IOSCSIParallelInterfaceDevice asks once a target exists (start, then the SCSI
 * Architecture Model's IsProtocolServiceSupported). */
kern_return_t dksim_invoke_UserDoesHBASupportMultiPathing(OSObject *object, bool *result)
{
    return Controller(object)->UserDoesHBASupportMultiPathing_Impl(result);
}

kern_return_t dksim_invoke_UserReportHBAHighestLogicalUnitNumber(OSObject *object, uint64_t *value)
{
    return Controller(object)->UserReportHBAHighestLogicalUnitNumber_Impl(value);
}

kern_return_t dksim_invoke_UserDoesHBAPerformAutoSense(OSObject *object, bool *result)
{
    return Controller(object)->UserDoesHBAPerformAutoSense_Impl(result);
}

kern_return_t dksim_invoke_UserInitializeTargetForID(OSObject *object, uint64_t targetID)
{
    return Controller(object)->UserInitializeTargetForID_Impl(targetID);
}

kern_return_t dksim_invoke_UserProcessParallelTask(OSObject *object, const void *task,
                                                   uint32_t *response, OSAction *completion)
{
    SCSIUserParallelTask request;
    memcpy(&request, task, sizeof(request));
    return Controller(object)->UserProcessParallelTask_Impl(request, response, completion);
}

kern_return_t dksim_invoke_TaskManagement(OSObject *object, uint32_t function, uint64_t target,
                                          uint64_t lun, uint64_t tag, uint32_t *response)
{
    IOUserSCSIParallelInterfaceController *c = Controller(object);
    switch (function) {
    case 1: return c->UserAbortTaskRequest_Impl(target, lun, tag, response);
    case 2: return c->UserAbortTaskSetRequest_Impl(target, lun, response);
    case 3: return c->UserClearACARequest_Impl(target, lun, response);
    case 4: return c->UserClearTaskSetRequest_Impl(target, lun, response);
    case 5: return c->UserLogicalUnitResetRequest_Impl(target, lun, response);
    case 6: return c->UserTargetResetRequest_Impl(target, response);
    default: return kIOReturnBadArgument;
    }
}

} /* extern "C" */

static_assert(sizeof(SCSIUserParallelTask) == 128, "SCSIUserParallelTask is 128 bytes");
static_assert(sizeof(SCSIUserParallelResponse) == 384, "SCSIUserParallelResponse is 384 bytes");
