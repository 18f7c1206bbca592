/* Mirrors DriverKit <DriverKit/IOLib.h>: allocation, sleeping, IOVMPageSize, time. */
#pragma once
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <DriverKit/IOReturn.h>
#include <DriverKit/IOTypes.h>

#ifdef __cplusplus
extern "C" {
#endif

/* IOLock: a non-recursive mutex. */
typedef struct IOLock IOLock;
IOLock *IOLockAlloc(void);
void IOLockFree(IOLock *lock);
void IOLockLock(IOLock *lock);
bool IOLockTryLock(IOLock *lock);
void IOLockUnlock(IOLock *lock);

void *IOMalloc(size_t length);
void *IOMallocZero(size_t length);
void IOFree(void *address, size_t length);
void IOSleep(uint64_t milliseconds);
void IODelay(uint64_t microseconds);

/* The number of bytes in a virtual memory page: 16 KiB on Apple silicon, 4 KiB on Intel. */
extern uint64_t IOVMPageSize;

/* <mach/mach_time.h>: mach_absolute_time() counts ticks of the simulated Mac's timebase
 * (Apple silicon: 125/3 ns; see mach/mach_time.h). */
uint64_t mach_absolute_time(void);
/* <time.h> (Darwin): CLOCK_UPTIME_RAW in nanoseconds. */
#ifndef CLOCK_UPTIME_RAW
#define CLOCK_UPTIME_RAW 8
#endif
uint64_t clock_gettime_nsec_np(int clock_id);

#ifdef __cplusplus
}
#endif

#define IONew(type, count) ((type *)IOMalloc(sizeof(type) * (count)))
#define IONewZero(type, count) ((type *)IOMallocZero(sizeof(type) * (count)))
#define IODelete(ptr, type, count) IOFree((ptr), sizeof(type) * (count))
#define IOSafeDeleteNULL(ptr, type, count)                                                    \
    do {                                                                                      \
        if (NULL != (ptr)) {                                                                  \
            IOFree((ptr), sizeof(type) * (count));                                            \
            (ptr) = NULL;                                                                     \
        }                                                                                     \
    } while (0)
