/*
 * DkRaidUserClient — the RAID admin app's connection (iig/DkRaidUserClient.iig). DriverKit
 * objects only: requests go to dkraid-core through the controller (DkRaidController::Admin*),
 * which validates them, refuses destructive ones without the admin entitlement, carries them
 * out through the firmware and hands back responses; this class checks argument shapes with a
 * dispatch table, finds out once whether its client holds the entitlement, and moves bytes.
 *
 * Builds unchanged against the DriverKit SDK and the test-bed's shim.
 */
#include <DriverKit/DriverKit.h>
#include <DriverKit/IODispatchQueue.h>
#include <DriverKit/IOUserClient.h>
#include <DriverKit/OSCollections.h>
#include <PCIDriverKit/PCIDriverKit.h>
#include <SCSIControllerDriverKit/SCSIControllerDriverKit.h>

#include "DkRaidController.h"
#include "DkRaidUserClient.h"
#include "dkraid.h"

/* The entitlement a client needs for the destructive admin commands (create, delete, hot
 * spare, rebuild). README and entitlements/DkRaidAdmin.entitlements name it. */
#define kDkRaidAdminEntitlement "org.dkraid.admin.configure"

/* ExternalMethod selectors: the admin app's side is tools/raidctl (docs/ADMIN-PROTOCOL.md). */
enum {
    kDkRaidUserClientSubmit = 0,
    kDkRaidUserClientFetch = 1,
    kDkRaidUserClientWatchEvents = 2,
    kDkRaidUserClientMethodCount = 3,
};

struct DkRaidUserClient_IVars {
    DkRaidController *controller;
    IODispatchQueue *externalMethodQueue;
    /* The owning task may run destructive commands: it holds kDkRaidAdminEntitlement and is
     * signed by the driver's team (decided once, in Start, by dk_admin_authorise). */
    bool entitled;
};

static void LogUserClientFailure(const char *call, kern_return_t status)
{
    const char *name = dk_ioreturn_name(status);
    os_log_error(OS_LOG_DEFAULT, "dkraid: user client: %{public}s failed: %{public}s (0x%08x)",
                 call, name != nullptr ? name : "IOReturn", (unsigned)status);
}

/* ------------------------------------------------------------------------ the methods -- */

/* Selector 0: take one admin request. Its bytes come inline (OSData, ≤ 4096) or, past the
 * inline limit, as a memory descriptor; either way the core sees exactly the bytes sent and
 * names what is wrong with them (a request over 4096 bytes is RequestTooLarge). */
static kern_return_t Submit(OSObject *target, void *reference, IOUserClientMethodArguments *arguments)
{
    (void)reference;
    DkRaidUserClient *self = OSDynamicCast(DkRaidUserClient, target);
    if (self == nullptr || self->ivars == nullptr || self->ivars->controller == nullptr) {
        return kIOReturnNotAttached;
    }
    const uint8_t *bytes = nullptr;
    size_t length = 0;
    IOMemoryMap *map = nullptr;
    if (arguments->structureInput != nullptr) {
        bytes = (const uint8_t *)arguments->structureInput->getBytesNoCopy();
        length = arguments->structureInput->getLength();
    } else if (arguments->structureInputDescriptor != nullptr) {
        kern_return_t ret = arguments->structureInputDescriptor->CreateMapping(0, 0, 0, 0, 0, &map);
        if (ret != kIOReturnSuccess) {
            LogUserClientFailure("Submit: CreateMapping of the request", ret);
            return ret;
        }
        bytes = (const uint8_t *)(uintptr_t)map->GetAddress();
        length = (size_t)map->GetLength();
    } else {
        /* No bytes at all: still a request, and the core names it ShortRequest. */
        static const uint8_t none[1] = {0};
        bytes = none;
        length = 0;
    }
    uint32_t ticket = 0;
    kern_return_t ret = self->ivars->controller->AdminSubmit(
        self, arguments->completion, bytes, length, self->ivars->entitled, &ticket);
    OSSafeReleaseNULL(map);
    if (ret != kIOReturnSuccess) {
        return ret;
    }
    arguments->scalarOutput[0] = ticket;
    arguments->scalarOutputCount = 1;
    return kIOReturnSuccess;
}

/* Selector 1: the response of a ready ticket, as structure output. */
static kern_return_t Fetch(OSObject *target, void *reference, IOUserClientMethodArguments *arguments)
{
    (void)reference;
    DkRaidUserClient *self = OSDynamicCast(DkRaidUserClient, target);
    if (self == nullptr || self->ivars == nullptr || self->ivars->controller == nullptr) {
        return kIOReturnNotAttached;
    }
    if (arguments->structureOutputDescriptor != nullptr) {
        /* Responses fit inline (DK_ADMIN_MAX_RESPONSE); an output descriptor means the app
         * asked for more than 4096 bytes, which no response needs. */
        return kIOReturnBadArgument;
    }
    uint64_t ticket = arguments->scalarInput[0];
    if (ticket == 0 || ticket > UINT32_MAX) {
        return kIOReturnNotFound;
    }
    /* The caller's room: a response that does not fit stays in its slot (kIOReturnNoSpace)
     * for a Fetch with a bigger buffer. */
    uint64_t capacity = arguments->structureOutputMaximumSize;
    if (capacity > DK_ADMIN_MAX_RESPONSE) {
        capacity = DK_ADMIN_MAX_RESPONSE;
    }
#if defined(DKRAID_VARIANT_FETCH_IGNORES_MAXIMUM)
    /* Broken on purpose: returns the whole response whatever room the caller has. */
    capacity = DK_ADMIN_MAX_RESPONSE;
#endif
    uint8_t response[DK_ADMIN_MAX_RESPONSE];
    size_t bytes = 0;
    kern_return_t ret =
        self->ivars->controller->AdminFetch(self, (uint32_t)ticket, response, (size_t)capacity, &bytes);
    if (ret != kIOReturnSuccess) {
        return ret;
    }
    arguments->structureOutput = OSData::withBytes(response, bytes);
    return arguments->structureOutput != nullptr ? kIOReturnSuccess : kIOReturnNoMemory;
}

/* Selector 2: be told about new firmware events. */
static kern_return_t WatchEvents(OSObject *target, void *reference, IOUserClientMethodArguments *arguments)
{
    (void)reference;
    DkRaidUserClient *self = OSDynamicCast(DkRaidUserClient, target);
    if (self == nullptr || self->ivars == nullptr || self->ivars->controller == nullptr) {
        return kIOReturnNotAttached;
    }
    uint64_t sequence = 0;
    kern_return_t ret = self->ivars->controller->AdminWatchEvents(self, arguments->completion, &sequence);
    if (ret != kIOReturnSuccess) {
        return ret;
    }
    arguments->scalarOutput[0] = sequence;
    arguments->scalarOutputCount = 1;
    return kIOReturnSuccess;
}

/* What DriverKit checks before each method runs: a completion where the method answers
 * asynchronously (and none where it does not), the scalar counts, and the structure sizes. */
static const IOUserClientMethodDispatch sDkRaidMethods[kDkRaidUserClientMethodCount] = {
    /* Submit */ {&Submit, 1, 0, kIOUserClientVariableStructureSize, 1, 0},
    /* Fetch */ {&Fetch, 0, 1, 0, 0, kIOUserClientVariableStructureSize},
    /* WatchEvents */ {&WatchEvents, 1, 0, 0, 1, 0},
};

kern_return_t DkRaidUserClient::ExternalMethod(uint64_t selector, IOUserClientMethodArguments *arguments,
                                               const IOUserClientMethodDispatch *dispatch,
                                               OSObject *target, void *reference)
{
    (void)dispatch;
    (void)target;
    (void)reference;
    if (selector >= kDkRaidUserClientMethodCount) {
        return kIOReturnBadArgument;
    }
    return super::ExternalMethod(selector, arguments, &sDkRaidMethods[selector], this, nullptr);
}

/* --------------------------------------------------------------------------- lifecycle -- */

bool DkRaidUserClient::init()
{
    if (!super::init()) {
        return false;
    }
    ivars = IONewZero(DkRaidUserClient_IVars, 1);
    return ivars != nullptr;
}

void DkRaidUserClient::free()
{
    if (ivars != nullptr) {
        OSSafeReleaseNULL(ivars->externalMethodQueue);
        OSSafeReleaseNULL(ivars->controller);
    }
    IOSafeDeleteNULL(ivars, DkRaidUserClient_IVars, 1);
    super::free();
}

/* The client's team, as the system put it in its entitlements when the binary was signed by a
 * team (a provisioning profile must allow it), and the team this driver was built for. */
#define kDkRaidTeamIdentifierEntitlement "com.apple.developer.team-identifier"
#define kDkRaidAdminTeamIdentifierKey "DkRaidAdminTeamIdentifier"

/* Whether the owning task may run the destructive admin commands: the core decides
 * (dk_admin_authorise) from the admin entitlement, the client's team identifier and the team
 * named by the controller's personality. Anything missing is "no". */
static uint32_t AuthoriseClient(DkRaidUserClient *client, IOService *provider)
{
    OSDictionary *properties = nullptr;
    const OSString *driverTeam = nullptr;
    if (provider->CopyProperties(&properties) == kIOReturnSuccess && properties != nullptr) {
        driverTeam = OSDynamicCast(OSString, properties->getObject(kDkRaidAdminTeamIdentifierKey));
    }
    OSDictionary *entitlements = nullptr;
    kern_return_t ret = client->CopyClientEntitlements(&entitlements);
    if (ret != kIOReturnSuccess) {
        LogUserClientFailure("CopyClientEntitlements", ret);
    }
    bool configure = false;
    const OSString *clientTeam = nullptr;
    if (ret == kIOReturnSuccess && entitlements != nullptr) {
        /* Only a boolean true counts: a string "true" or a number is not the entitlement. */
        OSBoolean *value = OSDynamicCast(OSBoolean, entitlements->getObject(kDkRaidAdminEntitlement));
        configure = value != nullptr && value->isTrue();
        clientTeam = OSDynamicCast(OSString, entitlements->getObject(kDkRaidTeamIdentifierEntitlement));
    }
    uint32_t decision = dk_admin_authorise(
        configure ? 1u : 0u, clientTeam != nullptr ? clientTeam->getCStringNoCopy() : nullptr,
        clientTeam != nullptr ? clientTeam->getLength() : 0,
        driverTeam != nullptr ? driverTeam->getCStringNoCopy() : nullptr,
        driverTeam != nullptr ? driverTeam->getLength() : 0);
    OSSafeReleaseNULL(entitlements);
    OSSafeReleaseNULL(properties);
    return decision;
}

kern_return_t IMPL(DkRaidUserClient, Start)
{
    kern_return_t ret = Start(provider, SUPERDISPATCH);
    if (ret != kIOReturnSuccess) {
        LogUserClientFailure("Start(SUPERDISPATCH)", ret);
        return ret;
    }
    ivars->controller = OSDynamicCast(DkRaidController, provider);
    if (ivars->controller == nullptr) {
        LogUserClientFailure("Start: the provider is not a DkRaidController", kIOReturnBadArgument);
        return kIOReturnBadArgument;
    }
    ivars->controller->retain();
    ret = IODispatchQueue::Create("DkRaidUserClientExternalMethod", 0, 0, &ivars->externalMethodQueue);
    if (ret == kIOReturnSuccess) {
        ret = SetDispatchQueue(kIOUserClientQueueNameExternalMethod, ivars->externalMethodQueue);
    }
    if (ret != kIOReturnSuccess) {
        LogUserClientFailure("Start: the ExternalMethod queue", ret);
        return ret;
    }
    uint32_t decision = AuthoriseClient(this, provider);
    ivars->entitled = decision == DK_ADMIN_AUTH_GRANTED;
    const char *reason = dk_admin_auth_reason(decision);
    os_log(OS_LOG_DEFAULT, "dkraid: user client opened (%{public}s)",
           reason != nullptr ? reason : "read-only");
    return kIOReturnSuccess;
}

kern_return_t IMPL(DkRaidUserClient, Stop)
{
    /* Tickets and event watches of this connection end here: their actions are released and
     * nothing is delivered to a closed connection. */
#if !defined(DKRAID_VARIANT_CLOSE_WITHOUT_CANCEL)
    if (ivars->controller != nullptr) {
        ivars->controller->AdminClientClosed(this);
    }
#endif
    return Stop(provider, SUPERDISPATCH);
}
