/* Mirrors DriverKit <DriverKit/OSObject.h> (xnu iokit/DriverKit/OSObject.iig): the base object
 * with its retain count, init/free, OSDynamicCast, OSSafeReleaseNULL, and the IMPL /
 * SUPERDISPATCH machinery that iig-generated code uses. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <DriverKit/IOReturn.h>
#include <DriverKit/IOTypes.h>
#include <DriverKit/IOLib.h>
#include <os/log.h>

class OSObject;
typedef OSObject OSMetaClassBase;

/* iig: a dispatch method; SUPERDISPATCH selects the superclass's implementation. */
struct IORPC {
    void *message;
};
typedef kern_return_t (*OSDispatchMethod)(OSObject *self, const IORPC rpc);
extern "C" kern_return_t dksim_superdispatch(OSObject *self, const IORPC rpc);
#define SUPERDISPATCH ((OSDispatchMethod)&dksim_superdispatch)

/* iig: `kern_return_t IMPL(Class, Method)` defines Class::Method_Impl with the parameter list
 * the generated header names Class_Method_Args. */
#define IMPL(className, methodName) className::methodName##_Impl(className##_##methodName##_Args)

class OSObject {
public:
    OSObject();
    virtual ~OSObject();
    virtual bool init();
    virtual void free();
    void retain() const;
    void release() const;
    /* Test-bed bookkeeping: live OSObjects, for leak checks. */
    static uint64_t DkSimLiveObjects();

private:
    mutable uint32_t dksimRetainCount;
};

#define OSDynamicCast(type, inst) (dynamic_cast<type *>(static_cast<OSObject *>(inst)))
#define OSRequiredCast(type, inst) (static_cast<type *>(inst))

#define OSSafeReleaseNULL(inst)                                                               \
    do {                                                                                      \
        if ((inst) != nullptr) {                                                              \
            (inst)->release();                                                                \
            (inst) = nullptr;                                                                 \
        }                                                                                     \
    } while (0)
