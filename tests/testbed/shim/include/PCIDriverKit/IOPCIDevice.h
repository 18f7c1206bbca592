/* Mirrors PCIDriverKit <PCIDriverKit/IOPCIDevice.h> (IOPCIFamily PCIDriverKit/IOPCIDevice.iig):
 * the dext opens the device itself; BARs through GetBARInfo + MemoryRead/Write. */
#pragma once
#include <DriverKit/IOService.h>

/* <IOKit/IOInterrupts.h>: interrupt types for ConfigureInterrupts. */
#define kIOInterruptTypePCIMessaged 0x00010000
#define kIOInterruptTypePCIMessagedX 0x00020000

class IOPCIDevice : public IOService {
public:
    kern_return_t Open(IOService *forClient, uint32_t options);
    void Close(IOService *forClient, uint32_t options);
    kern_return_t GetBARInfo(uint8_t barIndex, uint8_t *memoryIndex, uint64_t *barSize,
                             uint8_t *barType);
    void MemoryRead32(uint8_t memoryIndex, uint64_t offset, uint32_t *readData);
    void MemoryWrite32(uint8_t memoryIndex, uint64_t offset, uint32_t data);
    void MemoryRead64(uint8_t memoryIndex, uint64_t offset, uint64_t *readData);
    void MemoryWrite64(uint8_t memoryIndex, uint64_t offset, uint64_t data);
    void ConfigurationRead16(uint64_t offset, uint16_t *readData);
    void ConfigurationRead32(uint64_t offset, uint32_t *readData);
    void ConfigurationWrite16(uint64_t offset, uint16_t data);
    kern_return_t ConfigureInterrupts(uint32_t interruptType, uint32_t numRequired,
                                      uint32_t numRequested, uint32_t options);
    /* Test-bed: the simulated device behind this nub. */
    static IOPCIDevice *DkSimCreate(uint64_t deviceHandle);
    uint64_t DkSimHandle() const { return dksimHandle; }

private:
    uint64_t dksimHandle = 0;
};
