/* Mirrors DriverKit <DriverKit/IOService.h> (xnu iokit/DriverKit/IOService.iig): Start/Stop
 * with SUPERDISPATCH, SetDispatchQueue, CopyProperties, RegisterService. */
#pragma once
#include <DriverKit/OSObject.h>
#include <DriverKit/OSCollections.h>
#include <DriverKit/IODispatchQueue.h>

class IOService : public OSObject {
public:
    /* Kernel → dext: the dext overrides Start_Impl / Stop_Impl through IMPL. */
    virtual kern_return_t Start_Impl(IOService *provider);
    virtual kern_return_t Stop_Impl(IOService *provider);
    kern_return_t Start(IOService *provider, OSDispatchMethod supermethod = nullptr);
    kern_return_t Stop(IOService *provider, OSDispatchMethod supermethod = nullptr);

    kern_return_t SetDispatchQueue(const char *name, IODispatchQueue *queue);
    kern_return_t CopyDispatchQueue(const char *name, IODispatchQueue **queue);
    kern_return_t CopyProperties(OSDictionary **properties);
    kern_return_t SetProperties(OSDictionary *properties);
    kern_return_t RegisterService();
    kern_return_t Terminate(uint64_t options);
};
