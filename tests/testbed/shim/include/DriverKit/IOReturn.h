/* Mirrors DriverKit <DriverKit/IOReturn.h> (xnu iokit/IOKit/IOReturn.h): kern_return_t and the
 * IOReturn values, with the SDK's names and numbers. */
#pragma once
#include <stdint.h>

typedef int kern_return_t;
typedef kern_return_t IOReturn;

#define iokit_common_err(return) ((IOReturn)(0xe0000000u | (return)))

#define kIOReturnSuccess 0
#define kIOReturnError iokit_common_err(0x2bc)
#define kIOReturnNoMemory iokit_common_err(0x2bd)
#define kIOReturnNoResources iokit_common_err(0x2be)
#define kIOReturnIPCError iokit_common_err(0x2bf)
#define kIOReturnNoDevice iokit_common_err(0x2c0)
#define kIOReturnNotPrivileged iokit_common_err(0x2c1)
#define kIOReturnBadArgument iokit_common_err(0x2c2)
#define kIOReturnExclusiveAccess iokit_common_err(0x2c5)
#define kIOReturnUnsupported iokit_common_err(0x2c7)
#define kIOReturnVMError iokit_common_err(0x2c8)
#define kIOReturnInternalError iokit_common_err(0x2c9)
#define kIOReturnIOError iokit_common_err(0x2ca)
#define kIOReturnNotOpen iokit_common_err(0x2cd)
#define kIOReturnNotAligned iokit_common_err(0x2d0)
#define kIOReturnDMAError iokit_common_err(0x2d4)
#define kIOReturnBusy iokit_common_err(0x2d5)
#define kIOReturnTimeout iokit_common_err(0x2d6)
#define kIOReturnOffline iokit_common_err(0x2d7)
#define kIOReturnNotReady iokit_common_err(0x2d8)
#define kIOReturnNotAttached iokit_common_err(0x2d9)
#define kIOReturnNoSpace iokit_common_err(0x2db)
#define kIOReturnNotPermitted iokit_common_err(0x2e2)
#define kIOReturnUnderrun iokit_common_err(0x2e7)
#define kIOReturnOverrun iokit_common_err(0x2e8)
#define kIOReturnDeviceError iokit_common_err(0x2e9)
#define kIOReturnNoCompletion iokit_common_err(0x2ea)
#define kIOReturnAborted iokit_common_err(0x2eb)
#define kIOReturnNotFound iokit_common_err(0x2f0)
