/* Mirrors DriverKit <DriverKit/IOUserClient.h> (xnu iokit/DriverKit/IOUserClient.iig): the
 * connection IOServiceOpen makes. ExternalMethod is LOCALONLY and runs on the queue registered
 * as kIOUserClientQueueNameExternalMethod; called with a dispatch entry it checks the
 * arguments' shape before calling the entry's function. AsyncCompletion sends up to 16 words
 * to the OSAction an asynchronous call came with. */
#pragma once
#include <DriverKit/OSAction.h>
#include <DriverKit/IOService.h>
#include <DriverKit/IOBufferMemoryDescriptor.h>

enum {
    kIOUserClientScalarArrayCountMax = 16,
};
typedef uint64_t IOUserClientScalarArray[kIOUserClientScalarArrayCountMax];

enum {
    kIOUserClientAsyncReferenceCountMax = 16,
};
typedef uint64_t IOUserClientAsyncReferenceArray[kIOUserClientAsyncReferenceCountMax];

enum {
    kIOUserClientAsyncArgumentsCountMax = 16,
};
typedef uint64_t IOUserClientAsyncArgumentsArray[kIOUserClientAsyncArgumentsCountMax];

enum {
    kIOUserClientMemoryReadOnly = 0x00000001,
};

#define kIOUserClientQueueNameExternalMethod "IOUserClientQueueExternalMethod"

enum {
    kIOUserClientVariableStructureSize = 0xffffffff
};

enum {
    kIOUserClientMethodArgumentsCurrentVersion = 2
};

struct IOUserClientMethodArguments {
    uint64_t version;
    uint64_t selector;
    OSAction *completion;
    const uint64_t *scalarInput;
    uint32_t scalarInputCount;
    OSData *structureInput;
    IOMemoryDescriptor *structureInputDescriptor;
    uint64_t *scalarOutput;
    uint32_t scalarOutputCount;
    OSData *structureOutput;
    IOMemoryDescriptor *structureOutputDescriptor;
    uint64_t structureOutputMaximumSize;
    uint64_t __reserved[30];
};

typedef kern_return_t (*IOUserClientMethodFunction)(OSObject *target, void *reference,
                                                    IOUserClientMethodArguments *arguments);

struct IOUserClientMethodDispatch {
    IOUserClientMethodFunction function;
    uint32_t checkCompletionExists;
    uint32_t checkScalarInputCount;
    uint32_t checkStructureInputSize;
    uint32_t checkScalarOutputCount;
    uint32_t checkStructureOutputSize;
};

class IOUserClient : public IOService {
public:
    /* LOCALONLY QUEUENAME(IOUserClientQueueExternalMethod). The dext overrides it and calls
     * this implementation with a dispatch entry. */
    virtual kern_return_t ExternalMethod(uint64_t selector, IOUserClientMethodArguments *arguments,
                                         const IOUserClientMethodDispatch *dispatch,
                                         OSObject *target, void *reference);
    void AsyncCompletion(OSAction *action, IOReturn status,
                         const IOUserClientAsyncArgumentsArray asyncData, uint32_t asyncDataCount);
    kern_return_t CopyClientEntitlements(OSDictionary **entitlements);
    kern_return_t CopyClientMemoryForType(uint64_t type, uint64_t *options,
                                          IOMemoryDescriptor **memory);
};
