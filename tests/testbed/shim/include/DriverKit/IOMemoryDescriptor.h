/* Mirrors DriverKit <DriverKit/IOMemoryDescriptor.h> (xnu iokit/DriverKit/IOMemoryDescriptor.iig). */
#pragma once
#include <DriverKit/OSObject.h>

class IOMemoryDescriptor : public OSObject {
public:
    kern_return_t GetLength(uint64_t *returnLength);
    uint64_t DkSimHandle() const { return dksimHandle; }

protected:
    uint64_t dksimHandle = 0;
};
