/* Mirrors DriverKit <DriverKit/IOMemoryDescriptor.h> (xnu iokit/DriverKit/IOMemoryDescriptor.iig). */
#pragma once
#include <DriverKit/OSObject.h>
#include <DriverKit/IOMemoryMap.h>

class IOMemoryDescriptor : public OSObject {
public:
    kern_return_t GetLength(uint64_t *returnLength);
    /* Map the memory into the dext: the way to reach a buffer the dext did not create. */
    kern_return_t CreateMapping(uint64_t options, uint64_t address, uint64_t offset,
                                uint64_t length, uint64_t alignment, IOMemoryMap **map);
    /* Test-bed: a descriptor for an existing runtime buffer (retains nothing). */
    void DkSimAdopt(uint64_t handle) { dksimHandle = handle; }
    uint64_t DkSimHandle() const { return dksimHandle; }

protected:
    uint64_t dksimHandle = 0;
};
