/* Mirrors DriverKit <DriverKit/IOInterruptDispatchSource.h>
 * (xnu iokit/DriverKit/IOInterruptDispatchSource.iig): a provider's interrupt (for an
 * IOPCIDevice, an MSI/MSI-X vector) delivered as InterruptOccurred(action, count, time) on a
 * dispatch queue. In the test-bed the runtime (src/controller/interrupts.rs) owns the source:
 * the simulated controller raises a vector, the runtime posts one call to the source's queue
 * and coalesces further raises into its count until it runs. */
#pragma once
#include <DriverKit/IODispatchSource.h>
#include <DriverKit/IOService.h>

struct IOInterruptDispatchSourcePayload {
    uint64_t time;
    uint64_t count;
};

enum {
    kIOInterruptDispatchSourceTypeEdge = 0x00000000,
    kIOInterruptDispatchSourceTypeLevel = 0x00000001,
};

class IOInterruptDispatchSource : public IODispatchSource {
public:
    static kern_return_t Create(IOService *provider, uint32_t index, IODispatchQueue *queue,
                                IOInterruptDispatchSource **source);
    static kern_return_t GetInterruptType(IOService *provider, uint32_t index,
                                          uint64_t *interruptType);
    bool init() override;
    void free() override;
    kern_return_t SetHandler(OSAction *action);
    kern_return_t SetEnableWithCompletion(bool enable, IODispatchSourceCancelHandler handler) override;
    kern_return_t Cancel(IODispatchSourceCancelHandler handler) override;

private:
    uint64_t dksimHandle = 0;
    OSAction *dksimAction = nullptr;
};
