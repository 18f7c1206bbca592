/* Mirrors DriverKit <DriverKit/IOMemoryMap.h> (xnu iokit/DriverKit/IOMemoryMap.iig): a mapping
 * of a memory descriptor into the dext, from IOMemoryDescriptor::CreateMapping. */
#pragma once
#include <DriverKit/OSObject.h>

class IOMemoryMap : public OSObject {
public:
    uint64_t GetAddress();
    uint64_t GetLength();
    uint64_t GetOffset();
    /* Test-bed: a mapping of [address, address + length). */
    static IOMemoryMap *DkSimCreate(uint64_t address, uint64_t length);

private:
    uint64_t dksimAddress = 0;
    uint64_t dksimLength = 0;
};
