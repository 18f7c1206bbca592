/* Mirrors DriverKit <DriverKit/OSAction.h> (xnu iokit/DriverKit/OSAction.iig): a callback
 * object naming a target and one of its methods. iig generates CreateAction<Method> for each
 * TYPE'd method; the test-bed's version goes through DkSimCreate. */
#pragma once
#include <DriverKit/OSObject.h>

class OSAction;
typedef void (*DkSimActionInvoke)(OSObject *target, OSAction *action, const uint64_t *args);

class OSAction : public OSObject {
public:
    void *GetReference();
    void free() override;

    /* Test-bed: an action on a dext method (from CreateAction<Method>). */
    static kern_return_t DkSimCreate(OSObject *target, DkSimActionInvoke invoke,
                                     const char *methodName, const char *queueName,
                                     size_t referenceSize, OSAction **action);
    /* Test-bed: an action whose target is the kernel (completions). */
    static OSAction *DkSimCreateKernel(uint64_t kernelHandle);
    void DkSimInvoke(const uint64_t *args);
    uint64_t DkSimKernelHandle() const { return dksimKernelHandle; }
    const char *DkSimMethodName() const { return dksimMethodName; }
    const char *DkSimQueueName() const { return dksimQueueName; }
    OSObject *DkSimTarget() const { return dksimTarget; }

private:
    OSObject *dksimTarget = nullptr;
    DkSimActionInvoke dksimInvoke = nullptr;
    const char *dksimMethodName = nullptr;
    const char *dksimQueueName = nullptr;
    void *dksimReference = nullptr;
    size_t dksimReferenceSize = 0;
    uint64_t dksimKernelHandle = 0;
};
