/*
 * IOLock for the DriverKit shim: each lock is a runtime handle; waiting happens in the
 * test-bed's scheduler (tests/testbed/src/locks.rs).
 */
#include <DriverKit/IOLib.h>

extern "C" {
uint64_t dksim_lock_alloc(void);
void dksim_lock_free(uint64_t handle);
void dksim_lock_lock(uint64_t handle);
bool dksim_lock_trylock(uint64_t handle);
void dksim_lock_unlock(uint64_t handle);
}

/* The handle is the pointer's value; nothing is ever dereferenced. */
static uint64_t Handle(IOLock *lock) { return (uint64_t)(uintptr_t)lock; }

extern "C" IOLock *IOLockAlloc(void) { return (IOLock *)(uintptr_t)dksim_lock_alloc(); }
extern "C" void IOLockFree(IOLock *lock) { dksim_lock_free(Handle(lock)); }
extern "C" void IOLockLock(IOLock *lock) { dksim_lock_lock(Handle(lock)); }
extern "C" bool IOLockTryLock(IOLock *lock) { return dksim_lock_trylock(Handle(lock)); }
extern "C" void IOLockUnlock(IOLock *lock) { dksim_lock_unlock(Handle(lock)); }
