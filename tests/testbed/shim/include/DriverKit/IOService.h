/* Mirrors DriverKit <DriverKit/IOService.h> (xnu iokit/DriverKit/IOService.iig): Start/Stop
 * with SUPERDISPATCH, SetDispatchQueue, CopyProperties, RegisterService. */
#pragma once
#include <DriverKit/OSObject.h>
#include <DriverKit/OSCollections.h>
#include <DriverKit/IODispatchQueue.h>

class IOUserClient;

class IOService : public OSObject {
public:
    /* Kernel → dext: the dext overrides Start_Impl / Stop_Impl through IMPL. */
    virtual kern_return_t Start_Impl(IOService *provider);
    virtual kern_return_t Stop_Impl(IOService *provider);
    kern_return_t Start(IOService *provider, OSDispatchMethod supermethod = nullptr);
    kern_return_t Stop(IOService *provider, OSDispatchMethod supermethod = nullptr);

    /* IOServiceOpen: the kernel asks the service for a connection (iig: the dext overrides
     * NewUserClient_Impl through IMPL). */
    virtual kern_return_t NewUserClient_Impl(uint32_t type, IOUserClient **userClient);
    kern_return_t NewUserClient(uint32_t type, IOUserClient **userClient,
                                OSDispatchMethod supermethod = nullptr);
    /* Make a new service from the properties under `propertiesKey` in this service's
     * personality (IOClass/IOUserClass), with `provider` as its provider. */
    kern_return_t Create(IOService *provider, const char *propertiesKey, IOService **result);

    kern_return_t SetDispatchQueue(const char *name, IODispatchQueue *queue);
    kern_return_t CopyDispatchQueue(const char *name, IODispatchQueue **queue);
    kern_return_t CopyProperties(OSDictionary **properties);
    kern_return_t SetProperties(OSDictionary *properties);
    kern_return_t RegisterService();
    kern_return_t Terminate(uint64_t options);
};
