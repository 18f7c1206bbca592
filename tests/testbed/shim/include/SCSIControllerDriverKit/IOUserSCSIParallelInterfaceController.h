/* Mirrors SCSIControllerDriverKit <SCSIControllerDriverKit/IOUserSCSIParallelInterfaceController.h>
 * (IOSCSIParallelFamily SCSIControllerDriverKit/IOUserSCSIParallelInterfaceController.iig at
 * 560f74ab): the structs, the methods a dext implements (as iig's Method_Impl virtuals) and the
 * framework methods it calls. The SDK declares UserCreateTargetForID QUEUENAME(AuxiliaryQueue). */
#pragma once
#include <DriverKit/IOService.h>
#include <DriverKit/OSAction.h>
#include <DriverKit/OSCollections.h>
#include <DriverKit/IOBufferMemoryDescriptor.h>
#include <SCSIControllerDriverKit/SCSIDefinitions.h>

#define kMaxSenseBufferSize 256
#define kMaxBundledParallelTasks 32

typedef enum SCSIUserParallelTaskVersion {
    kScsiUserParallelTaskCurrentVersion1 = 1
} SCSIUserParallelTaskVersion;

typedef enum SCSIUserParallelResponseVersion {
    kScsiUserParallelTaskResponseCurrentVersion1 = 1
} SCSIUserParallelResponseVersion;

typedef struct SCSIUserParallelTask {
    uint64_t version;
    SCSITargetIdentifier fTargetID;
    uint32_t fSCSIParallelFeatureRequest[kSCSIParallelFeature_TotalFeatureCount];
    uint64_t fSCSIParallelFeatureRequestCount;
    uint64_t fControllerTaskIdentifier;
    uint64_t fRequestedTransferCount;
    uint64_t fBufferIOVMAddr;
    SCSITaskAttribute fTaskAttribute;
    uint64_t fTaskTagIdentifier;
    SCSILogicalUnitBytes fLogicalUnitBytes;
    SCSICommandDescriptorBlock fCommandDescriptorBlock;
    uint8_t fCommandSize;
    uint8_t fTransferDirection;
    uint32_t fTimeoutInMilliSec;
    uint8_t reserved[6];
} SCSIUserParallelTask;

typedef struct SCSIUserParallelResponse {
    uint64_t version;
    SCSITargetIdentifier fTargetID;
    uint32_t fSCSIParallelFeatureResult[kSCSIParallelFeature_TotalFeatureCount];
    uint64_t fSCSIParallelFeatureRequestResultCount;
    uint64_t fControllerTaskIdentifier;
    SCSITaskStatus fCompletionStatus;
    SCSIServiceResponse fServiceResponse;
    uint64_t fBytesTransferred;
    uint8_t fSenseLength;
    uint8_t fSenseBuffer[kMaxSenseBufferSize];
    uint8_t reserved[51];
} SCSIUserParallelResponse;

typedef enum DMAOutputSegmentType : uint16_t {
    kDMAOutputSegmentHost32 = 0,
    kDMAOutputSegmentBig32 = 1,
    kDMAOutputSegmentLittle32 = 2,
    kDMAOutputSegmentHost64 = 3,
    kDMAOutputSegmentBig64 = 4,
    kDMAOutputSegmentLittle64 = 5
} DMAOutputSegmentType;

class IOUserSCSIParallelInterfaceController : public IOService {
public:
    /* Framework methods the dext calls (KERNEL side). */
    void ParallelTaskCompletion(OSAction *action, SCSIUserParallelResponse response);
    kern_return_t UserTargetPresentForID(SCSIDeviceIdentifier targetID, bool *result);
    kern_return_t UserCreateTargetForID(SCSIDeviceIdentifier targetID, OSDictionary *targetDict);
    kern_return_t UserDestroyTargetForID(SCSITargetIdentifier targetID);
    kern_return_t UserGetDataBuffer(SCSIDeviceIdentifier targetID, uint64_t controllerTaskID,
                                    IOBufferMemoryDescriptor **buffer);
    kern_return_t UserSetHBAProperties(OSDictionary *properties);
    kern_return_t UserReportHBAConstraints(OSDictionary *constraints);
    kern_return_t UserCallMediaParametersHaveChanged(void);
    void BundledParallelTaskCompletion(OSAction *action,
                                       const uint16_t parallelResponseSlotIndices[kMaxBundledParallelTasks],
                                       uint16_t parallelResponseSlotIndicesCount);

    /* Methods the dext implements (iig: `= 0` in the SDK). */
    virtual kern_return_t UserReportHBAHighestLogicalUnitNumber_Impl(uint64_t *value) = 0;
    virtual kern_return_t UserDoesHBASupportSCSIParallelFeature_Impl(uint32_t theValue, bool *result) = 0;
    virtual kern_return_t UserInitializeTargetForID_Impl(SCSITargetIdentifier targetID) = 0;
    virtual kern_return_t UserDoesHBAPerformAutoSense_Impl(bool *result) = 0;
    virtual kern_return_t UserDoesHBASupportMultiPathing_Impl(bool *result) = 0;
    virtual kern_return_t UserAbortTaskRequest_Impl(uint64_t theT, uint64_t theL, uint64_t theQ, uint32_t *response) = 0;
    virtual kern_return_t UserAbortTaskSetRequest_Impl(uint64_t theT, uint64_t theL, uint32_t *response) = 0;
    virtual kern_return_t UserClearACARequest_Impl(uint64_t theT, uint64_t theL, uint32_t *response) = 0;
    virtual kern_return_t UserClearTaskSetRequest_Impl(uint64_t theT, uint64_t theL, uint32_t *response) = 0;
    virtual kern_return_t UserLogicalUnitResetRequest_Impl(uint64_t theT, uint64_t theL, uint32_t *response) = 0;
    virtual kern_return_t UserTargetResetRequest_Impl(uint64_t theT, uint32_t *response) = 0;
    virtual kern_return_t UserReportInitiatorIdentifier_Impl(uint64_t *id) = 0;
    virtual kern_return_t UserReportHighestSupportedDeviceID_Impl(uint64_t *id) = 0;
    virtual kern_return_t UserReportMaximumTaskCount_Impl(uint32_t *count) = 0;
    virtual kern_return_t UserDoesHBAPerformDeviceManagement_Impl(bool *result) = 0;
    virtual kern_return_t UserInitializeController_Impl() = 0;
    virtual kern_return_t UserStartController_Impl() = 0;
    virtual kern_return_t UserProcessParallelTask_Impl(SCSIUserParallelTask parallelRequest,
                                                       uint32_t *response,
                                                       OSAction *completion) = 0;
    virtual kern_return_t UserGetDMASpecification_Impl(uint64_t *maxTransferSize, uint32_t *alignment,
                                                       uint8_t *numAddressBits,
                                                       DMAOutputSegmentType *segmentType) = 0;
    virtual kern_return_t UserMapHBAData_Impl(uint32_t *uniqueTaskID) = 0;
    virtual kern_return_t UserMapBundledParallelTaskCommandAndResponseBuffers_Impl(
        IOBufferMemoryDescriptor *parallelCommandIOMemoryDescriptor,
        IOBufferMemoryDescriptor *parallelResponseIOMemoryDescriptor) = 0;
    virtual void UserProcessBundledParallelTasks_Impl(
        const uint16_t parallelRequestSlotIndices[kMaxBundledParallelTasks],
        uint16_t parallelRequestSlotIndicesCount, OSAction *completion) = 0;
};
