/* Mirrors DriverKit <DriverKit/IODispatchQueue.h> (xnu iokit/DriverKit/IODispatchQueue.iig):
 * serial queues. In the test-bed each queue is a simulated thread. */
#pragma once
#include <DriverKit/OSObject.h>

typedef const char *IODispatchQueueName;

enum {
    kIODispatchQueueReentrant = 0x00000001,
};

class IODispatchQueue : public OSObject {
public:
    static kern_return_t Create(const IODispatchQueueName name, uint64_t options,
                                uint64_t priority, IODispatchQueue **queue);
    void free() override;
    uint64_t DkSimHandle() const { return dksimHandle; }

private:
    uint64_t dksimHandle = 0;
};
