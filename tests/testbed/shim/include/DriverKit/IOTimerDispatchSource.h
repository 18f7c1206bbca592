/* Mirrors DriverKit <DriverKit/IOTimerDispatchSource.h>
 * (xnu iokit/DriverKit/IOTimerDispatchSource.iig): a timer delivering TimerOccurred(action,
 * time) on its queue. */
#pragma once
#include <DriverKit/IODispatchSource.h>

/* The SDK's clock ids (xnu iokit/DriverKit/IOTimerDispatchSource.iig). MachAbsoluteTime and
 * MachContinuousTime deadlines are in mach ticks (125/3 ns on Apple silicon); UptimeRaw and
 * MonotonicRaw deadlines are in nanoseconds. */
enum {
    kIOTimerClockUptimeRaw = 0x88ull,
    kIOTimerClockMonotonicRaw = 0x84ull,
    kIOTimerClockRealTime = 0x80ull,
    kIOTimerClockWallTime = 0x80ull,
    kIOTimerClockMachAbsoluteTime = 0xC8ull,
    kIOTimerClockMachContinuousTime = 0xC4ull,
};

class IOTimerDispatchSource : public IODispatchSource {
public:
    static kern_return_t Create(IODispatchQueue *queue, IOTimerDispatchSource **source);
    kern_return_t SetHandler(OSAction *action);
    kern_return_t WakeAtTime(uint64_t options, uint64_t deadline, uint64_t leeway);
    kern_return_t Cancel(IODispatchSourceCancelHandler handler) override;
    kern_return_t SetEnableWithCompletion(bool enable, IODispatchSourceCancelHandler handler) override;
    void free() override;

private:
    uint64_t dksimHandle = 0;
    OSAction *dksimAction = nullptr;
};
