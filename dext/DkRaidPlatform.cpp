/*
 * DkRaidPlatform — see DkRaidPlatform.h. DriverKit objects only; no decisions.
 */
#include <DriverKit/DriverKit.h>
#include <DriverKit/IOBufferMemoryDescriptor.h>
#include <DriverKit/IODMACommand.h>
#include <PCIDriverKit/PCIDriverKit.h>

#include <mach/mach_time.h>

#include "DkRaidPlatform.h"

/* arm64e: clang signs every C function pointer (key IA, discriminator 0), but the core is Rust,
 * whose arm64e code authenticates nothing and calls a callback with a plain `blr`: a signed
 * pointer would fault on the first call. So the core gets the callbacks unsigned, and this file
 * never calls through the table itself. docs/DRIVERKIT-TARGET.md, the pointer-authentication
 * caveat. */
#if defined(__has_feature)
#if __has_feature(ptrauth_calls)
#define DKRAID_PTRAUTH_CALLS 1
#endif
#endif
#ifdef DKRAID_PTRAUTH_CALLS
#include <ptrauth.h>
#define DK_CORE_CALLBACK(fn) ptrauth_strip(&(fn), ptrauth_key_function_pointer)
#else
#define DK_CORE_CALLBACK(fn) (&(fn))
#endif

namespace {

/* A handle is the buffer's index + 1, so 0 is never a valid handle. */
DkRaidPlatformBuffer *BufferForHandle(DkRaidPlatform *platform, uint64_t handle)
{
    if (handle == 0 || handle > DKRAID_PLATFORM_MAX_BUFFERS) {
        return nullptr;
    }
    DkRaidPlatformBuffer *buffer = &platform->buffers[handle - 1];
    return buffer->memory != nullptr ? buffer : nullptr;
}

dk_ioreturn DmaBufferCreate(void *context, uint64_t capacity, uint64_t alignment,
                            uint32_t direction, dk_dma_buffer *out)
{
    DkRaidPlatform *platform = static_cast<DkRaidPlatform *>(context);
    uint32_t slot = 0;
    while (slot < DKRAID_PLATFORM_MAX_BUFFERS && platform->buffers[slot].memory != nullptr) {
        slot++;
    }
    if (slot == DKRAID_PLATFORM_MAX_BUFFERS) {
        return kIOReturnNoResources;
    }
    /* Only direction bits are legal in the options (DRIVERKIT.md §2). */
    IOBufferMemoryDescriptor *memory = nullptr;
    kern_return_t ret = IOBufferMemoryDescriptor::Create(direction, capacity, alignment, &memory);
    if (ret != kIOReturnSuccess) {
        return ret;
    }
    /* A new buffer has zero length until SetLength. */
    ret = memory->SetLength(capacity);
    if (ret != kIOReturnSuccess) {
        memory->release();
        return ret;
    }
    IOAddressSegment range = {};
    ret = memory->GetAddressRange(&range);
    if (ret != kIOReturnSuccess) {
        memory->release();
        return ret;
    }
    platform->buffers[slot].memory = memory;
    platform->buffers[slot].dma = nullptr;
    platform->buffers[slot].prepared = false;
    platform->liveBuffers++;
    out->handle = slot + 1;
    out->cpu_address = range.address;
    out->cpu_length = range.length;
    return kIOReturnSuccess;
}

dk_ioreturn DmaBufferPrepare(void *context, uint64_t handle, dk_dma_segment *segments,
                             uint32_t *segmentCount)
{
    DkRaidPlatform *platform = static_cast<DkRaidPlatform *>(context);
    DkRaidPlatformBuffer *buffer = BufferForHandle(platform, handle);
    if (buffer == nullptr || buffer->prepared || *segmentCount == 0) {
        return kIOReturnBadArgument;
    }
    IODMACommandSpecification spec = {};
    spec.options = kIODMACommandSpecificationNoOptions;
    spec.maxAddressBits = 64;
    kern_return_t ret = IODMACommand::Create(platform->pci, kIODMACommandCreateNoOptions, &spec,
                                             &buffer->dma);
    if (ret != kIOReturnSuccess) {
        return ret;
    }
    IOAddressSegment deviceSegments[32] = {};
    uint32_t count = *segmentCount < 32 ? *segmentCount : 32;
    uint64_t flags = 0;
    /* Map all the way through PrepareForDMA: the device address comes from here, never from
     * GetAddressRange (DRIVERKIT.md §2). Length 0 = the whole buffer. */
    ret = buffer->dma->PrepareForDMA(kIODMACommandPrepareForDMANoOptions, buffer->memory, 0, 0,
                                     &flags, &count, deviceSegments);
    if (ret != kIOReturnSuccess) {
        buffer->dma->release();
        buffer->dma = nullptr;
        return ret;
    }
    buffer->prepared = true;
#if defined(DKRAID_VARIANT_DEREF_IOVA)
    /* Broken on purpose: a device address (IOVA) is not a CPU pointer; the CPU mapping of
     * this buffer is GetAddressRange's. */
    (void)*(volatile uint8_t *)(uintptr_t)deviceSegments[0].address;
#endif
    for (uint32_t i = 0; i < count && i < *segmentCount; i++) {
        segments[i].address = deviceSegments[i].address;
        segments[i].length = deviceSegments[i].length;
    }
    *segmentCount = count;
    return kIOReturnSuccess;
}

void DmaBufferFree(void *context, uint64_t handle)
{
    DkRaidPlatform *platform = static_cast<DkRaidPlatform *>(context);
    DkRaidPlatformBuffer *buffer = BufferForHandle(platform, handle);
    if (buffer == nullptr) {
        return;
    }
    if (buffer->dma != nullptr) {
        if (buffer->prepared) {
            buffer->dma->CompleteDMA(kIODMACommandCompleteDMANoOptions);
        }
        buffer->dma->release();
    }
    buffer->memory->release();
    buffer->memory = nullptr;
    buffer->dma = nullptr;
    buffer->prepared = false;
    platform->liveBuffers--;
}

uint32_t MmioRead32(void *context, uint32_t bar, uint64_t offset)
{
    DkRaidPlatform *platform = static_cast<DkRaidPlatform *>(context);
    uint32_t value = 0xFFFFFFFFu;
    if (bar < 6) {
        platform->pci->MemoryRead32(platform->memoryIndex[bar], offset, &value);
    }
    return value;
}

void MmioWrite32(void *context, uint32_t bar, uint64_t offset, uint32_t value)
{
    DkRaidPlatform *platform = static_cast<DkRaidPlatform *>(context);
    if (bar < 6) {
        platform->pci->MemoryWrite32(platform->memoryIndex[bar], offset, value);
    }
}

uint64_t MmioRead64(void *context, uint32_t bar, uint64_t offset)
{
    DkRaidPlatform *platform = static_cast<DkRaidPlatform *>(context);
    uint64_t value = ~0ull;
    if (bar < 6) {
        platform->pci->MemoryRead64(platform->memoryIndex[bar], offset, &value);
    }
    return value;
}

void MmioWrite64(void *context, uint32_t bar, uint64_t offset, uint64_t value)
{
    DkRaidPlatform *platform = static_cast<DkRaidPlatform *>(context);
    if (bar < 6) {
        platform->pci->MemoryWrite64(platform->memoryIndex[bar], offset, value);
    }
}

uint64_t MonotonicTimeNs(void *context)
{
    (void)context;
    return DkRaidNowNs();
}

void Log(void *context, uint32_t level, const char *message, size_t length)
{
    (void)context;
    if (level <= DK_LOG_ERROR) {
        os_log_error(OS_LOG_DEFAULT, "%{public}.*s", (int)length, message);
    } else {
        os_log(OS_LOG_DEFAULT, "%{public}.*s", (int)length, message);
    }
}

} // namespace

void DkRaidPlatformInit(DkRaidPlatform *platform, IOPCIDevice *pci, dk_platform *table)
{
    platform->pci = pci;
    platform->liveBuffers = 0;
    for (uint8_t bar = 0; bar < 6; bar++) {
        uint8_t memoryIndex = 0;
        uint64_t size = 0;
        uint8_t type = 0;
        platform->memoryIndex[bar] =
            pci->GetBARInfo(bar, &memoryIndex, &size, &type) == kIOReturnSuccess ? memoryIndex
                                                                                  : 0xFF;
    }
    for (uint32_t i = 0; i < DKRAID_PLATFORM_MAX_BUFFERS; i++) {
        platform->buffers[i] = DkRaidPlatformBuffer{nullptr, nullptr, false};
    }
    table->abi_version = DK_ABI_VERSION;
    table->struct_size = sizeof(dk_platform);
    table->context = platform;
    table->dma_buffer_create = DK_CORE_CALLBACK(DmaBufferCreate);
    table->dma_buffer_prepare = DK_CORE_CALLBACK(DmaBufferPrepare);
    table->dma_buffer_free = DK_CORE_CALLBACK(DmaBufferFree);
    table->mmio_read32 = DK_CORE_CALLBACK(MmioRead32);
    table->mmio_write32 = DK_CORE_CALLBACK(MmioWrite32);
    table->mmio_read64 = DK_CORE_CALLBACK(MmioRead64);
    table->mmio_write64 = DK_CORE_CALLBACK(MmioWrite64);
    table->monotonic_time_ns = DK_CORE_CALLBACK(MonotonicTimeNs);
    table->log = DK_CORE_CALLBACK(Log);
}

void DkRaidPlatformRelease(DkRaidPlatform *platform)
{
    for (uint32_t i = 0; i < DKRAID_PLATFORM_MAX_BUFFERS; i++) {
        DmaBufferFree(platform, i + 1);
    }
}

/* ----------------------------------------------------------------------------- time -- */

/* One tick is sTimebaseNumer / sTimebaseDenom ns. 0/0 until DkRaidTimeInit: a conversion
 * before it is a bug, answered with the identity so that it is at least not a division by 0. */
static uint32_t sTimebaseNumer;
static uint32_t sTimebaseDenom;

kern_return_t DkRaidTimeInit(void)
{
    mach_timebase_info_data_t info = {};
    kern_return_t ret = mach_timebase_info(&info);
    if (ret != kIOReturnSuccess || info.numer == 0 || info.denom == 0) {
        return ret != kIOReturnSuccess ? ret : kIOReturnError;
    }
    sTimebaseNumer = info.numer;
    sTimebaseDenom = info.denom;
    return kIOReturnSuccess;
}

uint64_t DkRaidTicksToNs(uint64_t ticks)
{
    if (sTimebaseDenom == 0) {
        return ticks;
    }
    /* 128-bit intermediate: ticks * 125 overflows 64 bits after ~4.7 years of uptime. */
    unsigned __int128 ns = (unsigned __int128)ticks * sTimebaseNumer / sTimebaseDenom;
    return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

uint64_t DkRaidNsToTicks(uint64_t ns)
{
    if (sTimebaseNumer == 0) {
        return ns;
    }
    /* Rounded up: a deadline never fires before the nanosecond it was meant for. */
    unsigned __int128 ticks =
        ((unsigned __int128)ns * sTimebaseDenom + sTimebaseNumer - 1) / sTimebaseNumer;
    return ticks > UINT64_MAX ? UINT64_MAX : (uint64_t)ticks;
}

uint64_t DkRaidNowNs(void)
{
    return DkRaidTicksToNs(mach_absolute_time());
}
