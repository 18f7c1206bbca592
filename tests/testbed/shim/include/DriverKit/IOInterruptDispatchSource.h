/* Mirrors DriverKit <DriverKit/IOInterruptDispatchSource.h>
 * (xnu iokit/DriverKit/IOInterruptDispatchSource.iig): InterruptOccurred(action, count, time)
 * on its queue. */
#pragma once
#include <DriverKit/IODispatchSource.h>
#include <DriverKit/IOService.h>

class IOInterruptDispatchSource : public IODispatchSource {
public:
    static kern_return_t Create(IOService *provider, uint32_t index, IODispatchQueue *queue,
                                IOInterruptDispatchSource **source);
    kern_return_t SetHandler(OSAction *action);
    kern_return_t Cancel(IODispatchSourceCancelHandler handler) override;
    kern_return_t SetEnableWithCompletion(bool enable, IODispatchSourceCancelHandler handler) override;

private:
    OSAction *dksimAction = nullptr;
    bool dksimEnabled = false;
};
