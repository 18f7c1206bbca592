/* The test-bed's runtime interface: what the DriverKit shim (C++) asks of the simulated Mac
 * (Rust, tests/testbed/src/runtime.rs), and the class information iig-generated glue exports.
 * Not part of any SDK: the dext never includes this. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <DriverKit/IOReturn.h>
#include <DriverKit/IOTypes.h>

class OSObject;
class OSAction;

struct DkSimQueueBinding {
    const char *method;
    const char *queue;
};

struct DkSimClassInfo {
    const char *name;
    const char *superclass;
    OSObject *(*create)(void);
    const DkSimQueueBinding *queueBindings; /* ends with {nullptr, nullptr} */
};

extern "C" {
/* Scheduling, time, logs. Every shim call starts with dksim_enter: a scheduling point. */
void dksim_enter(const char *call);
void dksim_sleep_ns(uint64_t ns);
uint64_t dksim_now_ns(void);
uint64_t dksim_mach_absolute_time(void);
kern_return_t dksim_mach_timebase_info(uint32_t *numer, uint32_t *denom);
uint64_t dksim_page_size(void);
void dksim_log(int level, const char *message, size_t length);

/* Queues and services. */
kern_return_t dksim_queue_create(const char *name, uint64_t options, uint64_t *out_queue);
void dksim_queue_release(uint64_t queue);
kern_return_t dksim_set_dispatch_queue(OSObject *service, const char *name, uint64_t queue);
kern_return_t dksim_copy_dispatch_queue(OSObject *service, const char *name, uint64_t *out_queue);
/* The service's registry properties (its matched personality's). Each is an OSString
 * (`string`), an OSNumber (`number`) or an OSBoolean (`number` 0 or 1), per `kind`. */
#define DKSIM_PROPERTY_STRING 0u
#define DKSIM_PROPERTY_NUMBER 1u
#define DKSIM_PROPERTY_BOOLEAN 2u
uint32_t dksim_property_count(OSObject *service);
void dksim_property_at(OSObject *service, uint32_t index, const char **key, uint32_t *kind,
                       const char **string, uint64_t *number);
kern_return_t dksim_super_start(OSObject *service, OSObject *provider);
kern_return_t dksim_super_stop(OSObject *service, OSObject *provider);
kern_return_t dksim_register_service(OSObject *service);

/* The SCSI parallel family, dext → kernel. `present` has bit i set for constraint key i in
 * the order of DkSimConstraintKeys. */
kern_return_t dksim_report_hba_constraints(OSObject *service, uint32_t present,
                                           const uint64_t values[7]);
kern_return_t dksim_create_target(OSObject *service, uint64_t target_id);
kern_return_t dksim_destroy_target(OSObject *service, uint64_t target_id);
void dksim_parallel_task_completion(OSObject *service, OSAction *action, const void *response);

/* Timers and interrupts. */
kern_return_t dksim_timer_create(uint64_t queue, uint64_t *out_timer);
kern_return_t dksim_timer_wake_at(uint64_t timer, OSAction *action, uint64_t clock,
                                  uint64_t deadline);
void dksim_timer_cancel(uint64_t timer);
kern_return_t dksim_timer_set_enable(uint64_t timer, bool enable);
/* IOInterruptDispatchSource: a source for the provider's interrupt `index` (the device's MSI-X
 * vector) delivering on `queue`. The runtime calls the handler action with args
 * [count, time_ns] on that queue; it never touches the action after dksim_interrupt_cancel. */
kern_return_t dksim_interrupt_create(uint64_t queue, uint32_t index, uint64_t *out_source);
kern_return_t dksim_interrupt_set_handler(uint64_t source, OSAction *action);
kern_return_t dksim_interrupt_enable(uint64_t source, bool enable);
void dksim_interrupt_cancel(uint64_t source);

/* Memory and DMA. */
kern_return_t dksim_buffer_create(uint64_t options, uint64_t capacity, uint64_t alignment,
                                  uint64_t *out_buffer);
kern_return_t dksim_buffer_set_length(uint64_t buffer, uint64_t length);
kern_return_t dksim_buffer_get_length(uint64_t buffer, uint64_t *out_length);
kern_return_t dksim_buffer_address_range(uint64_t buffer, IOAddressSegment *range);
void dksim_buffer_release(uint64_t buffer);
/* UserGetDataBuffer: the task's data buffer, legal only inside UserProcessParallelTask. */
kern_return_t dksim_get_data_buffer(OSObject *service, uint64_t target, uint64_t task,
                                    uint64_t *out_buffer);
/* IOMemoryDescriptor::CreateMapping: [address, length) of the dext's mapping. */
kern_return_t dksim_buffer_map(uint64_t buffer, uint64_t offset, uint64_t length,
                               uint64_t *out_address, uint64_t *out_length);
kern_return_t dksim_dma_create(OSObject *device, uint64_t options, uint64_t max_address_bits,
                               uint64_t *out_command);
kern_return_t dksim_dma_prepare(uint64_t command, uint64_t options, uint64_t buffer,
                                uint64_t offset, uint64_t length, uint64_t *flags,
                                uint32_t *segments_count, IOAddressSegment *segments);
kern_return_t dksim_dma_complete(uint64_t command, uint64_t options);
void dksim_dma_release(uint64_t command);

/* PCI. */
kern_return_t dksim_pci_open(uint64_t device, OSObject *client);
void dksim_pci_close(uint64_t device, OSObject *client);
kern_return_t dksim_pci_bar_info(uint64_t device, uint8_t bar, uint8_t *memory_index,
                                 uint64_t *size, uint8_t *type);
uint64_t dksim_pci_read(uint64_t device, uint8_t memory_index, uint64_t offset, uint32_t width);
void dksim_pci_write(uint64_t device, uint8_t memory_index, uint64_t offset, uint32_t width,
                     uint64_t value);

/* User clients (DRIVERKIT.md §7). IOService::Create: a new object of the IOUserClass under
 * `properties_key` in the service's personality. */
kern_return_t dksim_service_create(OSObject *service, const char *properties_key,
                                   OSObject **out_object);
/* IOUserClient::AsyncCompletion: deliver to the connection `action` came from. */
void dksim_async_completion(OSObject *client, OSAction *action, int32_t status,
                            const uint64_t *args, uint32_t count);
/* IOUserClient::CopyClientEntitlements: the owning task's (boolean) entitlements. */
uint32_t dksim_client_entitlement_count(OSObject *client);
const char *dksim_client_entitlement_at(OSObject *client, uint32_t index);
/* IOUserClient::ExternalMethod refused a call: `check` of the dispatch entry failed. */
void dksim_external_method_refused(OSObject *client, uint64_t selector, const char *check,
                                   uint64_t expected, uint64_t got);

/* Shim → runtime → shim: the runtime calls these (defined in shim.cpp). */
void dksim_object_release(OSObject *object);
OSObject *dksim_pci_device_new(uint64_t device);
OSAction *dksim_kernel_action_new(uint64_t handle);
uint64_t dksim_action_kernel_handle(OSAction *action);
void dksim_action_invoke(OSAction *action, const uint64_t *args);
uint64_t dksim_live_objects(void);
}

/* The order of the seven constraint keys in dksim_report_hba_constraints. */
#define DKSIM_CONSTRAINT_KEYS                                                                 \
    {                                                                                         \
        "IOMaximumSegmentCountRead", "IOMaximumSegmentCountWrite",                            \
            "IOMaximumSegmentByteCountRead", "IOMaximumSegmentByteCountWrite",                \
            "IOMinimumSegmentAlignmentByteCount", "IOMaximumSegmentAddressableBitCount",      \
            "HBA Data Alignment"                                                              \
    }
