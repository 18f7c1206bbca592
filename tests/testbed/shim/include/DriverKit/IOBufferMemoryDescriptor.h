/* Mirrors DriverKit <DriverKit/IOBufferMemoryDescriptor.h>
 * (xnu iokit/DriverKit/IOBufferMemoryDescriptor.iig): Create accepts only direction bits in
 * `options`; the buffer has zero length until SetLength; GetAddressRange is the dext's CPU
 * mapping. */
#pragma once
#include <DriverKit/IOMemoryDescriptor.h>

class IOBufferMemoryDescriptor : public IOMemoryDescriptor {
public:
    static kern_return_t Create(uint64_t options, uint64_t capacity, uint64_t alignment,
                                IOBufferMemoryDescriptor **memory);
    kern_return_t GetAddressRange(IOAddressSegment *range);
    kern_return_t SetLength(uint64_t length);
    void free() override;
    /* Test-bed: the buffer belongs to the kernel (UserGetDataBuffer). */
    void DkSimSetBorrowed() { dksimBorrowed = true; }

private:
    bool dksimBorrowed = false;
};
