/* Mirrors DriverKit <DriverKit/IOTypes.h>. */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* <mach/boolean.h>, which the SDK's headers bring in. */
#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

typedef uint64_t IOVirtualAddress;
typedef uint64_t IOByteCount;

/* IOAddressSegment: one range, as PrepareForDMA and GetAddressRange return it. */
typedef struct IOAddressSegment {
    uint64_t address;
    uint64_t length;
} IOAddressSegment;

enum {
    kIOMemoryDirectionNone = 0x00000000,
    kIOMemoryDirectionIn = 0x00000001,
    kIOMemoryDirectionOut = 0x00000002,
    kIOMemoryDirectionOutIn = 0x00000003,
    kIOMemoryDirectionInOut = kIOMemoryDirectionOutIn,
};
