/*
 * DkRaidPlatform — the dk_platform callback table (rust-core/include/dkraid.h) implemented with
 * DriverKit objects: IOBufferMemoryDescriptor + IODMACommand for DMA buffers, IOPCIDevice for
 * MMIO, os_log for logs. The core calls these synchronously; they never block on a queue.
 */
#ifndef DkRaidPlatform_h
#define DkRaidPlatform_h

#include <DriverKit/IOBufferMemoryDescriptor.h>
#include <DriverKit/IODMACommand.h>
#include <PCIDriverKit/IOPCIDevice.h>

#include "dkraid.h"

/* Buffers the core may hold at once: one frame per task plus headroom for rings later. */
#define DKRAID_PLATFORM_MAX_BUFFERS 512u

struct DkRaidPlatformBuffer {
    IOBufferMemoryDescriptor *memory;
    IODMACommand *dma;
    bool prepared;
};

struct DkRaidPlatform {
    IOPCIDevice *pci;
    uint8_t memoryIndex[6]; /* BAR → memory index, from GetBARInfo */
    DkRaidPlatformBuffer buffers[DKRAID_PLATFORM_MAX_BUFFERS];
    uint32_t liveBuffers;
};

/* Fill `table` with callbacks bound to `platform`. */
void DkRaidPlatformInit(DkRaidPlatform *platform, IOPCIDevice *pci, dk_platform *table);

/* Release anything still held (the core's teardown normally freed everything). */
void DkRaidPlatformRelease(DkRaidPlatform *platform);

/*
 * Time. The core's C ABI speaks one clock: nanoseconds of CLOCK_UPTIME_RAW (now_ns, poll_in_ns,
 * every timeout). mach ticks — mach_absolute_time(), the `time` of InterruptOccurred and of a
 * kIOTimerClockMachAbsoluteTime timer, WakeAtTime deadlines — are converted here and only
 * here, with the timebase mach_timebase_info reports (125/3 ns per tick on Apple silicon, 1/1 on
 * Intel). DkRaidTimeInit reads it once, in Start, before any conversion.
 */
kern_return_t DkRaidTimeInit(void);
uint64_t DkRaidTicksToNs(uint64_t ticks);
uint64_t DkRaidNsToTicks(uint64_t ns);
/* Now, in nanoseconds of the uptime clock. */
uint64_t DkRaidNowNs(void);

#endif /* DkRaidPlatform_h */
