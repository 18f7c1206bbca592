/*
 * dkraid.h — the C ABI between the dext (C++, DriverKit objects only) and dkraid-core (Rust,
 * every decision). This file is the single source of truth: bindgen turns it into
 * rust-core/src/abi/generated.rs (scripts/check-abi.sh regenerates it and fails on any
 * difference), and the dext includes it as is.
 *
 * Rules of the boundary:
 *  - Only fixed-width integers and #[repr(C)] structs cross it; no pointer the core keeps is a
 *    DriverKit object. Opaque handles (uint64_t) name the C++ side's objects.
 *  - Every entry point returns a dk_ioreturn (an IOReturn value) and never unwinds.
 *  - Pointers passed in are validated once, at the entry point (NULL, alignment, size).
 *  - LP64 only (arm64 and x86_64 macOS/DriverKit, x86_64/aarch64 Linux for the test-bed).
 */
#ifndef DKRAID_H
#define DKRAID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any incompatible change to this file; dk_platform and dk_core_config carry it. */
#define DK_ABI_VERSION 1u

/* The most tasks the core holds: task IDs are 1..=DK_MAX_TASK_COUNT. */
#define DK_MAX_TASK_COUNT 256u

/* An IOReturn / kern_return_t. Named values live in the core's IOReturn type. */
typedef int32_t dk_ioreturn;

/* ------------------------------------------------------------------------------------------
 * Mirrors of the SCSIControllerDriverKit structs (IOUserSCSIParallelInterfaceController.iig).
 * Same field names, same layout (DRIVERKIT.md §5); the dext copies between them with memcpy
 * after static_assert(sizeof) on both sides.
 * ------------------------------------------------------------------------------------------ */

#define DK_SCSI_PARALLEL_FEATURE_COUNT 5u
#define DK_SCSI_CDB_SIZE_MAXIMUM 16u
#define DK_SCSI_LOGICAL_UNIT_BYTES 8u
#define DK_SCSI_MAX_SENSE_BUFFER_SIZE 256u

/* kScsiUserParallelTaskResponseCurrentVersion1: any other response version is dropped by the
 * kernel and the I/O never completes. */
#define DK_SCSI_USER_PARALLEL_RESPONSE_VERSION 1u

typedef struct dk_scsi_user_parallel_task {
    uint64_t version;
    uint64_t fTargetID;
    uint32_t fSCSIParallelFeatureRequest[DK_SCSI_PARALLEL_FEATURE_COUNT];
    uint64_t fSCSIParallelFeatureRequestCount;
    uint64_t fControllerTaskIdentifier;
    uint64_t fRequestedTransferCount;
    uint64_t fBufferIOVMAddr; /* a device (IOVA) address, never a CPU pointer */
    uint32_t fTaskAttribute;  /* 0 simple, 1 ordered, 2 head of queue, 3 ACA */
    uint64_t fTaskTagIdentifier;
    uint8_t fLogicalUnitBytes[DK_SCSI_LOGICAL_UNIT_BYTES];
    uint8_t fCommandDescriptorBlock[DK_SCSI_CDB_SIZE_MAXIMUM];
    uint8_t fCommandSize;
    uint8_t fTransferDirection; /* 0 none, 1 write (out), 2 read (in) */
    uint32_t fTimeoutInMilliSec;
    uint8_t reserved[6];
} dk_scsi_user_parallel_task;

typedef struct dk_scsi_user_parallel_response {
    uint64_t version;
    uint64_t fTargetID;
    uint32_t fSCSIParallelFeatureResult[DK_SCSI_PARALLEL_FEATURE_COUNT];
    uint64_t fSCSIParallelFeatureRequestResultCount;
    uint64_t fControllerTaskIdentifier;
    uint32_t fCompletionStatus; /* SCSITaskStatus */
    uint32_t fServiceResponse;  /* SCSIServiceResponse */
    uint64_t fBytesTransferred;
    uint8_t fSenseLength;
    uint8_t fSenseBuffer[DK_SCSI_MAX_SENSE_BUFFER_SIZE];
    uint8_t reserved[51];
} dk_scsi_user_parallel_response;

/* ------------------------------------------------------------------------------------------
 * The platform: synchronous services the C++ side provides to the core.
 * ------------------------------------------------------------------------------------------ */

/* IODMACommand::PrepareForDMA fills at most 32 segments per call. */
#define DK_DMA_MAX_SEGMENTS 32u

/* kIOMemoryDirectionIn/Out/InOut: the only bits IOBufferMemoryDescriptor::Create accepts. */
#define DK_DMA_DIRECTION_IN 1u
#define DK_DMA_DIRECTION_OUT 2u
#define DK_DMA_DIRECTION_IN_OUT 3u

/* One device-visible segment (IOAddressSegment). */
typedef struct dk_dma_segment {
    uint64_t address; /* IOVA */
    uint64_t length;
} dk_dma_segment;

/* A buffer the C++ side created (IOBufferMemoryDescriptor::Create + SetLength +
 * GetAddressRange). `handle` is opaque to the core. */
typedef struct dk_dma_buffer {
    uint64_t handle;
    uint64_t cpu_address; /* the dext's own mapping of the buffer */
    uint64_t cpu_length;
} dk_dma_buffer;

#define DK_LOG_ERROR 1u
#define DK_LOG_WARN 2u
#define DK_LOG_INFO 3u
#define DK_LOG_DEBUG 4u
#define DK_LOG_TRACE 5u

typedef struct dk_platform {
    uint32_t abi_version; /* DK_ABI_VERSION */
    uint32_t struct_size; /* sizeof(dk_platform) */
    void *context;        /* passed back to every callback */
    /* Create a buffer of `capacity` bytes aligned to `alignment` (a power of two) for DMA in
     * `direction`; on success fill *out. */
    dk_ioreturn (*dma_buffer_create)(void *context, uint64_t capacity, uint64_t alignment,
                                     uint32_t direction, dk_dma_buffer *out);
    /* IODMACommand::Create + PrepareForDMA over the whole buffer. *segment_count is the
     * capacity of `segments` on entry and the number filled on return. */
    dk_ioreturn (*dma_buffer_prepare)(void *context, uint64_t handle, dk_dma_segment *segments,
                                      uint32_t *segment_count);
    /* CompleteDMA if prepared, then release everything behind `handle`. */
    void (*dma_buffer_free)(void *context, uint64_t handle);
    uint32_t (*mmio_read32)(void *context, uint32_t bar, uint64_t offset);
    void (*mmio_write32)(void *context, uint32_t bar, uint64_t offset, uint32_t value);
    uint64_t (*mmio_read64)(void *context, uint32_t bar, uint64_t offset);
    void (*mmio_write64)(void *context, uint32_t bar, uint64_t offset, uint64_t value);
    /* Monotonic time in nanoseconds (mach_absolute_time converted; virtual in the test-bed). */
    uint64_t (*monotonic_time_ns)(void *context);
    /* One log line, UTF-8, not NUL-terminated. */
    void (*log)(void *context, uint32_t level, const char *message, size_t length);
} dk_platform;

/* ------------------------------------------------------------------------------------------
 * Configuration, limits and the lifecycle.
 * ------------------------------------------------------------------------------------------ */

/* Bring-up stages (DRIVERKIT.md §9). Parse the personality's `BringUpStage` string with
 * dk_stage_parse. */
#define DK_STAGE_PIPELINE 0u
#define DK_STAGE_FAKE_BLOCK 1u
#define DK_STAGE_SINGLE_IO 2u
#define DK_STAGE_FULL 3u

typedef struct dk_core_config {
    uint32_t abi_version;         /* DK_ABI_VERSION */
    uint32_t stage;               /* DK_STAGE_* */
    uint64_t page_size;           /* IOVMPageSize: 16384 on Apple silicon, 4096 on Intel */
    uint32_t max_task_count;      /* tasks to report; 0 = the core's default */
    uint32_t fake_block_size;     /* stage 1's disk: bytes per block; 0 = 512 */
    uint64_t fake_capacity_bytes; /* stage 1's disk: capacity; 0 = 1 TiB */
} dk_core_config;

/* The seven keys UserReportHBAConstraints must carry (DRIVERKIT.md §1). */
typedef struct dk_hba_constraints {
    uint64_t max_segment_count_read;           /* kIOMaximumSegmentCountRead */
    uint64_t max_segment_count_write;          /* kIOMaximumSegmentCountWrite */
    uint64_t max_segment_byte_count_read;      /* kIOMaximumSegmentByteCountRead */
    uint64_t max_segment_byte_count_write;     /* kIOMaximumSegmentByteCountWrite */
    uint64_t min_segment_alignment_byte_count; /* kIOMinimumSegmentAlignmentByteCount */
    uint64_t max_segment_addressable_bit_count; /* kIOMaximumSegmentAddressableBitCount */
    uint64_t min_hba_data_alignment_mask;      /* kIOMinimumHBADataAlignmentMask */
} dk_hba_constraints;

/* UserGetDMASpecification's answer. segment_type is a DMAOutputSegmentType (Host64 = 3). */
typedef struct dk_dma_specification {
    uint64_t max_transfer_size;
    uint32_t alignment;
    uint8_t address_bits;
    uint8_t reserved;
    uint16_t segment_type;
} dk_dma_specification;

/* What dk_process_parallel_task decided. */
#define DK_TASK_IN_PROCESS 0u    /* the hardware owns it; the completion comes later */
#define DK_TASK_COMPLETED_NOW 1u /* *out_response is filled: complete it now */
/* As DK_TASK_COMPLETED_NOW, and run dk_service soon (arm the timer for now): the hardware needs
 * a service pass no outstanding task would cause, e.g. a request ring stuck full. */
#define DK_TASK_COMPLETED_NOW_SERVICE_SOON 2u

/* Target work the dext performs on its private target queue, one operation at a time. */
#define DK_TARGET_WORK_NONE 0u
#define DK_TARGET_WORK_CREATE 1u
#define DK_TARGET_WORK_DESTROY 2u

typedef struct dk_target_work {
    uint32_t kind; /* DK_TARGET_WORK_* */
    uint32_t reserved;
    uint64_t target_id;
} dk_target_work;

/* The SDK name of an IOReturn ("kIOReturnBadArgument"), or NULL for a value without one.
 * The string is static. */
const char *dk_ioreturn_name(dk_ioreturn value);

/* The core's state lives in memory the C++ side provides: dk_core_size() bytes aligned to
 * dk_core_align(). */
typedef struct dk_core dk_core;

size_t dk_core_size(void);
size_t dk_core_align(void);

/* Construct the core in `memory`. `platform` is copied; `config` is read once. */
dk_ioreturn dk_core_init(void *memory, size_t memory_size, const dk_platform *platform,
                         const dk_core_config *config, dk_core **out_core);

/* Parse a bring-up stage name (`pipeline`, `fake-block`, `single-io`, `full`); an unknown name
 * is kIOReturnBadArgument and logs the valid ones. */
dk_ioreturn dk_stage_parse(const char *name, size_t length, uint32_t *out_stage);

/* The controller's call order (DRIVERKIT.md §1). Each refuses a call out of order with
 * kIOReturnNotReady and logs which call was expected. */
dk_ioreturn dk_controller_start(dk_core *core);
dk_ioreturn dk_initialize_controller(dk_core *core, dk_hba_constraints *out_constraints);
dk_ioreturn dk_report_initiator_identifier(dk_core *core, uint64_t *out_id);
dk_ioreturn dk_report_highest_supported_device_id(dk_core *core, uint64_t *out_id);
dk_ioreturn dk_report_maximum_task_count(dk_core *core, uint32_t *out_count);
/* One call per UserMapHBAData(uint32_t *uniqueTaskID): maps the next task's DMA frame and
 * returns its ID (1..=N, never 0). */
dk_ioreturn dk_map_hba_data(dk_core *core, uint32_t *out_task_id);
/* UserGetDMASpecification: called by the kernel for each task before UserMapHBAData. */
dk_ioreturn dk_get_dma_specification(dk_core *core, dk_dma_specification *out_spec);
dk_ioreturn dk_start_controller(dk_core *core);
dk_ioreturn dk_does_hba_perform_device_management(dk_core *core, uint8_t *out_answer);
dk_ioreturn dk_stop_controller(dk_core *core);

/* UserProcessParallelTask: look the task up by fControllerTaskIdentifier, check it, and either
 * complete it at once (*out_disposition = DK_TASK_COMPLETED_NOW, *out_response filled with
 * version 1 and exact byte counts) or hand it to the hardware (DK_TASK_IN_PROCESS). An error
 * (unknown or zero ID, a task already outstanding, a call out of order) means: answer the
 * kernel with kSCSIServiceResponse_SERVICE_DELIVERY_OR_TARGET_FAILURE. `data` is the task's data
 * mapped for the CPU (see dk_task_wants_data_buffer) or NULL. */
dk_ioreturn dk_process_parallel_task(dk_core *core, const dk_scsi_user_parallel_task *task,
                                     void *data, uint64_t data_length,
                                     dk_scsi_user_parallel_response *out_response,
                                     uint32_t *out_disposition);
/* Does the core need CPU access to this task's data (an emulated target: stage 1)? Then the
 * dext maps it with UserGetDataBuffer — legal only inside UserProcessParallelTask — and passes
 * it as `data`/`data_length` to dk_process_parallel_task; otherwise it passes NULL, 0 and the
 * hardware uses fBufferIOVMAddr. */
dk_ioreturn dk_task_wants_data_buffer(dk_core *core, const dk_scsi_user_parallel_task *task,
                                      uint32_t *out_wants);
/* Stop: complete an outstanding task with a delivery failure. Fills *out_response (version 1,
 * SERVICE_DELIVERY_OR_TARGET_FAILURE, DeliveryFailure) for ParallelTaskCompletion; then call
 * dk_task_delivered. kIOReturnNotPermitted if the task is not outstanding. */
dk_ioreturn dk_fail_task(dk_core *core, uint64_t task_id,
                         dk_scsi_user_parallel_response *out_response);
/* The SAM-2 task-management functions, for dk_task_management. */
#define DK_TMF_ABORT_TASK 1u
#define DK_TMF_ABORT_TASK_SET 2u
#define DK_TMF_CLEAR_ACA 3u
#define DK_TMF_CLEAR_TASK_SET 4u
#define DK_TMF_LUN_RESET 5u
#define DK_TMF_TARGET_RESET 6u

/* UserAbortTaskRequest and its siblings: abort every outstanding task of the nexus (target;
 * LUN and tag where the function names them) through the firmware. *out_response is the
 * SCSIServiceResponse to return: FUNCTION_COMPLETE (also when nothing matched), or
 * FUNCTION_REJECTED (CLEAR ACA, an unknown function). The aborted tasks complete later through
 * dk_service with a retryable status: run dk_service soon after (arm the timer for now). */
dk_ioreturn dk_task_management(dk_core *core, uint32_t function, uint64_t target, uint64_t lun,
                               uint64_t tag, uint32_t *out_response);
/* Stages 2 and 3, from the interrupt handler and the timer: bring the firmware up, process
 * replies, run the stage's own work, time out, reset. Responses of completed tasks are written
 * to `out_responses` (capacity at least the task count); complete each with its retained
 * OSAction, then dk_task_delivered. *out_poll_in_ns: arm the timer that far ahead (0: wait for
 * an interrupt). Stages 0 and 1: nothing to do. */
dk_ioreturn dk_service(dk_core *core, uint64_t now_ns, dk_scsi_user_parallel_response *out_responses,
                       uint32_t capacity, uint32_t *out_count, uint64_t *out_poll_in_ns);
/* The completion of `task_id` was handed to ParallelTaskCompletion: its slot is free again. */
dk_ioreturn dk_task_delivered(dk_core *core, uint64_t task_id);
/* UserInitializeTargetForID. */
dk_ioreturn dk_initialize_target(dk_core *core, uint64_t target_id);
/* The next target operation to perform (DK_TARGET_WORK_NONE when there is none), and its
 * result once UserCreateTargetForID / UserDestroyTargetForID returned. */
dk_ioreturn dk_next_target_work(dk_core *core, dk_target_work *out_work);
dk_ioreturn dk_target_work_done(dk_core *core, const dk_target_work *work, dk_ioreturn status);

/* ------------------------------------------------------------------------------------------
 * The admin engine: requests from the RAID admin app (docs/ADMIN-PROTOCOL.md), carried in the
 * user client's ExternalMethod structure input; responses come back by ticket.
 * ------------------------------------------------------------------------------------------ */

#define DK_ADMIN_SLOTS 4u
#define DK_ADMIN_MAX_RESPONSE 4096u
/* Take one admin request (the user client's ExternalMethod structure input, `length` bytes).
 * Every request gets a ticket in *out_ticket, a malformed or unpermitted one too (its error
 * response is ready at once). `owner`: an identity of the client connection (the dext passes
 * its user client's address; the core never dereferences it): only the owner fetches the
 * response. `entitled`: the client holds the admin entitlement. kIOReturnNoResources: every slot is in use. kIOReturnBadArgument: a null pointer. Run
 * dk_service soon after (the dext arms its timer for now). */
dk_ioreturn dk_admin_submit(dk_core *core, uint64_t owner, const uint8_t *request, size_t length,
                            bool entitled, uint32_t *out_ticket);
/* Whether a user client's owner may run the destructive admin commands (the `entitled` of
 * dk_admin_submit): it must hold org.dkraid.admin.configure as a boolean true
 * (`holds_configure` != 0) AND be signed by the driver's own team — its
 * com.apple.developer.team-identifier entitlement (`client_team`, `client_team_length` bytes;
 * NULL when absent), which the system validates against the provisioning profile, must equal
 * `driver_team` (the personality's DkRaidAdminTeamIdentifier; NULL when absent). A driver
 * team that is not 10 characters of A-Z and 0-9 grants nothing. Returns DK_ADMIN_AUTH_*. */
#define DK_ADMIN_AUTH_GRANTED 0u
#define DK_ADMIN_AUTH_NO_CONFIGURE_ENTITLEMENT 1u
#define DK_ADMIN_AUTH_NO_TEAM_IDENTIFIER 2u
#define DK_ADMIN_AUTH_WRONG_TEAM 3u
#define DK_ADMIN_AUTH_DRIVER_TEAM_MISSING 4u
uint32_t dk_admin_authorise(uint32_t holds_configure, const char *client_team,
                            size_t client_team_length, const char *driver_team,
                            size_t driver_team_length);
/* A static, NUL-terminated explanation of a DK_ADMIN_AUTH_* code (NULL for another value). */
const char *dk_admin_auth_reason(uint32_t code);
/* The next ticket whose response became ready and was not yet reported here (each ticket is
 * reported once); *out_bytes its response's size. kIOReturnNotFound: none. */
dk_ioreturn dk_admin_next_ready(dk_core *core, uint32_t *out_ticket, uint32_t *out_bytes);
/* Copy a ready ticket's response into `out` and free its slot. kIOReturnNotFound: no such
 * ticket, or another owner's; kIOReturnNotReady: not ready yet; kIOReturnNoSpace: `capacity`
 * too small (the slot is kept). */
dk_ioreturn dk_admin_fetch(dk_core *core, uint64_t owner, uint32_t ticket, uint8_t *out,
                           size_t capacity, size_t *out_bytes);
/* Forget a ticket nobody waits for; a command already sent to the firmware finishes into
 * nothing. kIOReturnNotFound: no such ticket. */
dk_ioreturn dk_admin_cancel(dk_core *core, uint32_t ticket);
/* A client connection closed: forget every ticket of `owner` (queued, with the firmware, or
 * answered and never fetched). */
dk_ioreturn dk_admin_close(dk_core *core, uint64_t owner);
/* The newest event sequence number the firmware announced (0: none). */
uint64_t dk_admin_event_sequence(const dk_core *core);

/* Release every DMA buffer the core holds. The core memory may be freed afterwards. Safe to
 * call in any state, once. */
void dk_core_teardown(dk_core *core);

/* ------------------------------------------------------------------------------------------
 * Layout checks: the same numbers are asserted on the Rust side.
 * ------------------------------------------------------------------------------------------ */
#ifdef __cplusplus
#define DK_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#define DK_ALIGNOF(type) alignof(type)
#else
#define DK_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#define DK_ALIGNOF(type) _Alignof(type)
#endif

DK_STATIC_ASSERT(sizeof(void *) == 8, "dkraid's ABI is LP64 only");
DK_STATIC_ASSERT(sizeof(dk_scsi_user_parallel_task) == 128, "SCSIUserParallelTask is 128 bytes");
DK_STATIC_ASSERT(DK_ALIGNOF(dk_scsi_user_parallel_task) == 8, "SCSIUserParallelTask align 8");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_task, version) == 0, "task.version");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_task, fTargetID) == 8, "task.fTargetID");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_task, fSCSIParallelFeatureRequest) == 16,
                 "task.fSCSIParallelFeatureRequest");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_task, fSCSIParallelFeatureRequestCount) == 40,
                 "task.fSCSIParallelFeatureRequestCount");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_task, fControllerTaskIdentifier) == 48,
                 "task.fControllerTaskIdentifier");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_task, fRequestedTransferCount) == 56,
                 "task.fRequestedTransferCount");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_task, fBufferIOVMAddr) == 64,
                 "task.fBufferIOVMAddr");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_task, fTaskAttribute) == 72,
                 "task.fTaskAttribute");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_task, fTaskTagIdentifier) == 80,
                 "task.fTaskTagIdentifier");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_task, fLogicalUnitBytes) == 88,
                 "task.fLogicalUnitBytes");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_task, fCommandDescriptorBlock) == 96,
                 "task.fCommandDescriptorBlock");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_task, fCommandSize) == 112, "task.fCommandSize");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_task, fTransferDirection) == 113,
                 "task.fTransferDirection");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_task, fTimeoutInMilliSec) == 116,
                 "task.fTimeoutInMilliSec");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_task, reserved) == 120, "task.reserved");

DK_STATIC_ASSERT(sizeof(dk_scsi_user_parallel_response) == 384,
                 "SCSIUserParallelResponse is 384 bytes");
DK_STATIC_ASSERT(DK_ALIGNOF(dk_scsi_user_parallel_response) == 8, "SCSIUserParallelResponse align 8");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_response, version) == 0, "response.version");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_response, fTargetID) == 8, "response.fTargetID");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_response, fSCSIParallelFeatureResult) == 16,
                 "response.fSCSIParallelFeatureResult");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_response, fSCSIParallelFeatureRequestResultCount)
                     == 40,
                 "response.fSCSIParallelFeatureRequestResultCount");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_response, fControllerTaskIdentifier) == 48,
                 "response.fControllerTaskIdentifier");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_response, fCompletionStatus) == 56,
                 "response.fCompletionStatus");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_response, fServiceResponse) == 60,
                 "response.fServiceResponse");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_response, fBytesTransferred) == 64,
                 "response.fBytesTransferred");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_response, fSenseLength) == 72,
                 "response.fSenseLength");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_response, fSenseBuffer) == 73,
                 "response.fSenseBuffer");
DK_STATIC_ASSERT(offsetof(dk_scsi_user_parallel_response, reserved) == 329, "response.reserved");

DK_STATIC_ASSERT(sizeof(dk_dma_segment) == 16, "dk_dma_segment is IOAddressSegment");
DK_STATIC_ASSERT(sizeof(dk_dma_buffer) == 24, "dk_dma_buffer");
DK_STATIC_ASSERT(sizeof(dk_core_config) == 32, "dk_core_config");
DK_STATIC_ASSERT(sizeof(dk_hba_constraints) == 56, "dk_hba_constraints");
DK_STATIC_ASSERT(sizeof(dk_dma_specification) == 16, "dk_dma_specification");
DK_STATIC_ASSERT(sizeof(dk_target_work) == 16, "dk_target_work");
DK_STATIC_ASSERT(sizeof(dk_platform) == 88, "dk_platform: 2 words + 9 pointers");
DK_STATIC_ASSERT(offsetof(dk_platform, context) == 8, "platform.context");
DK_STATIC_ASSERT(offsetof(dk_platform, log) == 80, "platform.log");

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DKRAID_H */
