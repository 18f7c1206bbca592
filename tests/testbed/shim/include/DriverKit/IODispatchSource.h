/* Mirrors DriverKit <DriverKit/IODispatchSource.h> (xnu iokit/DriverKit/IODispatchSource.iig). */
#pragma once
#include <DriverKit/OSAction.h>
#include <DriverKit/IODispatchQueue.h>

/* A block type in the SDK; the dext only ever passes nullptr. */
typedef void *IODispatchSourceCancelHandler;

class IODispatchSource : public OSObject {
public:
    virtual kern_return_t Cancel(IODispatchSourceCancelHandler handler) = 0;
    virtual kern_return_t SetEnableWithCompletion(bool enable, IODispatchSourceCancelHandler handler) = 0;
};
