/* Mirrors SCSIControllerDriverKit <SCSIControllerDriverKit/SCSIDefinitions.h>
 * (IOSCSIParallelFamily SCSIControllerDriverKit/SCSIDefinitions.h) and the IOKit constraint
 * keys of <IOKit/IOKitKeys.h>. */
#pragma once
#include <stdint.h>

typedef uint64_t SCSIDeviceIdentifier;
typedef SCSIDeviceIdentifier SCSITargetIdentifier;
typedef SCSIDeviceIdentifier SCSIInitiatorIdentifier;
typedef uint8_t SCSILogicalUnitBytes[8];
typedef uint64_t SCSITaggedTaskIdentifier;

enum { kSCSICDBSize_Maximum = 16 };
typedef uint8_t SCSICommandDescriptorBlock[kSCSICDBSize_Maximum];

typedef enum SCSITaskAttribute {
    kSCSITask_SIMPLE = 0,
    kSCSITask_ORDERED = 1,
    kSCSITask_HEAD_OF_QUEUE = 2,
    kSCSITask_ACA = 3,
} SCSITaskAttribute;

typedef enum SCSIServiceResponse {
    kSCSIServiceResponse_Request_In_Process = 0,
    kSCSIServiceResponse_SERVICE_DELIVERY_OR_TARGET_FAILURE = 1,
    kSCSIServiceResponse_TASK_COMPLETE = 2,
    kSCSIServiceResponse_LINK_COMMAND_COMPLETE = 3,
    kSCSIServiceResponse_FUNCTION_COMPLETE = 4,
    kSCSIServiceResponse_FUNCTION_REJECTED = 5,
} SCSIServiceResponse;

typedef enum SCSITaskStatus {
    kSCSITaskStatus_GOOD = 0x00,
    kSCSITaskStatus_CHECK_CONDITION = 0x02,
    kSCSITaskStatus_CONDITION_MET = 0x04,
    kSCSITaskStatus_BUSY = 0x08,
    kSCSITaskStatus_INTERMEDIATE = 0x10,
    kSCSITaskStatus_INTERMEDIATE_CONDITION_MET = 0x14,
    kSCSITaskStatus_RESERVATION_CONFLICT = 0x18,
    kSCSITaskStatus_TASK_SET_FULL = 0x28,
    kSCSITaskStatus_ACA_ACTIVE = 0x30,
    kSCSITaskStatus_TaskTimeoutOccurred = 0x01,
    kSCSITaskStatus_ProtocolTimeoutOccurred = 0x02,
    kSCSITaskStatus_DeviceNotResponding = 0x03,
    kSCSITaskStatus_DeviceNotPresent = 0x04,
    kSCSITaskStatus_DeliveryFailure = 0x05,
    kSCSITaskStatus_No_Status = 0xFF,
} SCSITaskStatus;

enum { kSCSIParallelFeature_TotalFeatureCount = 5 };

#define kIOMaximumSegmentCountReadKey "IOMaximumSegmentCountRead"
#define kIOMaximumSegmentCountWriteKey "IOMaximumSegmentCountWrite"
#define kIOMaximumSegmentByteCountReadKey "IOMaximumSegmentByteCountRead"
#define kIOMaximumSegmentByteCountWriteKey "IOMaximumSegmentByteCountWrite"
#define kIOMinimumSegmentAlignmentByteCountKey "IOMinimumSegmentAlignmentByteCount"
#define kIOMaximumSegmentAddressableBitCountKey "IOMaximumSegmentAddressableBitCount"
#define kIOMinimumHBADataAlignmentMaskKey "HBA Data Alignment"
#define kIOHierarchicalLogicalUnitSupportKey "SCSI Hierarchical Logical Unit Support"
