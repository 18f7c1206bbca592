/* Mirrors DriverKit <DriverKit/IOTimerDispatchSource.h>
 * (xnu iokit/DriverKit/IOTimerDispatchSource.iig): a timer delivering TimerOccurred(action,
 * time) on its queue. */
#pragma once
#include <DriverKit/IODispatchSource.h>

enum {
    kIOTimerClockMachAbsoluteTime = 0x00000000,
    kIOTimerClockMonotonicRaw = 0x00000001,
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
