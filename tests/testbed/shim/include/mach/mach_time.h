/* Mirrors <mach/mach_time.h> (the DriverKit SDK's usr/include/mach/mach_time.h).
 *
 * mach_absolute_time() counts ticks, not nanoseconds: one tick is numer/denom ns as
 * mach_timebase_info() reports it — 125/3 on Apple silicon (a 24 MHz counter), 1/1 on Intel.
 * The test-bed models Apple silicon by default (dkraid-sim --timebase intel for 1/1). */
#pragma once
#include <stdint.h>
#include <DriverKit/IOReturn.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mach_timebase_info {
    uint32_t numer;
    uint32_t denom;
};
typedef struct mach_timebase_info *mach_timebase_info_t;
typedef struct mach_timebase_info mach_timebase_info_data_t;

kern_return_t mach_timebase_info(mach_timebase_info_t info);
uint64_t mach_absolute_time(void);
uint64_t mach_continuous_time(void);

#ifdef __cplusplus
}
#endif
