/* Mirrors DriverKit <DriverKit/IODMACommand.h> (xnu iokit/DriverKit/IODMACommand.iig). */
#pragma once
#include <DriverKit/IOService.h>
#include <DriverKit/IOMemoryDescriptor.h>

enum {
    kIODMACommandSpecificationNoOptions = 0x00000000,
};
enum {
    kIODMACommandCreateNoOptions = 0x00000000,
};
enum {
    kIODMACommandPrepareForDMANoOptions = 0x00000000,
};
enum {
    kIODMACommandCompleteDMANoOptions = 0x00000000,
};

struct IODMACommandSpecification {
    uint64_t options;
    uint64_t maxAddressBits;
    uint64_t _resv[16];
};

class IODMACommand : public OSObject {
public:
    static kern_return_t Create(IOService *device, uint64_t options,
                                const IODMACommandSpecification *specification,
                                IODMACommand **command);
    kern_return_t PrepareForDMA(uint64_t options, IOMemoryDescriptor *memory, uint64_t offset,
                                uint64_t length, uint64_t *flags, uint32_t *segmentsCount,
                                IOAddressSegment *segments);
    kern_return_t CompleteDMA(uint64_t options);
    void free() override;

private:
    uint64_t dksimHandle = 0;
};
