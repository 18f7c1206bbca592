//! The deliberately broken builds of the dext: the same sources with one `DKRAID_VARIANT_*`
//! macro each, bootable with `dkraid-sim boot --variant NAME`. Each must be caught by the
//! verifier with the rule named here. Shared with the build script (`#[path]`-included).

/// One variant: its CLI name, its compile-time switch, what it breaks, and the rule that must
/// catch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    pub name: &'static str,
    pub macro_name: &'static str,
    pub description: &'static str,
    pub expected_rule: &'static str,
    /// The stage that exposes the fault (the disk-probe variants need stage 1's disk).
    pub stage: &'static str,
    /// None: `dkraid-sim boot --variant NAME --stage STAGE` exposes the fault. Some: what else
    /// must happen, e.g. an admin app's connection under `dkraid-sim serve`.
    pub scenario: Option<&'static str>,
}

pub const VARIANTS: &[Variant] = &[
    Variant {
        name: "queue-not-created",
        macro_name: "DKRAID_VARIANT_QUEUE_NOT_CREATED",
        description: "SetDispatchQueue(\"TargetQueue\") with a queue that was not created yet",
        expected_rule: "NullDispatchQueue",
        stage: "pipeline",
        scenario: None,
    },
    Variant {
        name: "undeclared-queue",
        macro_name: "DKRAID_VARIANT_UNDECLARED_QUEUE",
        description: "SetDispatchQueue for a name no QUEUENAME declares (0xe00002c2)",
        expected_rule: "UndeclaredQueueName",
        stage: "pipeline",
        scenario: None,
    },
    Variant {
        name: "blocking-init",
        macro_name: "DKRAID_VARIANT_BLOCKING_INIT",
        description: "UserInitializeController waits for UserDoesHBAPerformDeviceManagement",
        expected_rule: "RegistryBusyTimeout",
        stage: "pipeline",
        scenario: None,
    },
    Variant {
        name: "create-on-default",
        macro_name: "DKRAID_VARIANT_CREATE_ON_DEFAULT",
        description: "UserCreateTargetForID called from the Default queue",
        expected_rule: "Deadlock",
        stage: "pipeline",
        scenario: None,
    },
    Variant {
        name: "reentrant-create",
        macro_name: "DKRAID_VARIANT_REENTRANT_CREATE",
        description: "a second UserCreateTargetForID while one is in flight (0xe00002d8)",
        expected_rule: "ReentrantTargetCreate",
        stage: "pipeline",
        scenario: None,
    },
    Variant {
        name: "zero-task-id",
        macro_name: "DKRAID_VARIANT_ZERO_TASK_ID",
        description: "UserMapHBAData hands out task ID 0",
        expected_rule: "ZeroTaskId",
        stage: "pipeline",
        scenario: None,
    },
    Variant {
        name: "duplicate-task-id",
        macro_name: "DKRAID_VARIANT_DUPLICATE_TASK_ID",
        description: "UserMapHBAData hands out the same task ID twice",
        expected_rule: "DuplicateTaskId",
        stage: "pipeline",
        scenario: None,
    },
    Variant {
        name: "bad-response-version",
        macro_name: "DKRAID_VARIANT_BAD_RESPONSE_VERSION",
        description: "completions carry response version 2: the kernel drops them",
        expected_rule: "BadResponseVersion",
        stage: "pipeline",
        scenario: None,
    },
    Variant {
        name: "missing-constraint",
        macro_name: "DKRAID_VARIANT_MISSING_CONSTRAINT",
        description: "UserReportHBAConstraints without kIOMinimumHBADataAlignmentMask",
        expected_rule: "MissingHbaConstraint",
        stage: "pipeline",
        scenario: None,
    },
    Variant {
        name: "deref-iova",
        macro_name: "DKRAID_VARIANT_DEREF_IOVA",
        description: "the CPU dereferences a device address (IOVA) from PrepareForDMA",
        expected_rule: "CpuDereferencedIova",
        stage: "pipeline",
        scenario: None,
    },
    Variant {
        name: "fixed-4k-pages",
        macro_name: "DKRAID_VARIANT_FIXED_4K_PAGES",
        description: "per-task memory sized and aligned for 4096 on a 16 KiB system",
        expected_rule: "SubPageDmaFrame",
        stage: "pipeline",
        scenario: None,
    },
    Variant {
        name: "ticks-as-nanoseconds",
        macro_name: "DKRAID_VARIANT_TICKS_AS_NANOSECONDS",
        description: "mach_absolute_time ticks taken for nanoseconds (no mach_timebase_info): \
                      timeouts fire 41.7x late on Apple silicon",
        expected_rule: "MachTicksWithoutTimebase",
        stage: "full",
        scenario: None,
    },
    Variant {
        name: "seed-device-management",
        macro_name: "DKRAID_VARIANT_SEED_DEVICE_MANAGEMENT",
        description: "UserDoesHBAPerformDeviceManagement in the seed's style: `bool ret = TRUE; \
                      return ret;` (an error, and *result never set)",
        expected_rule: "UserQueryFailed",
        stage: "pipeline",
        scenario: None,
    },
    Variant {
        name: "short-inquiry",
        macro_name: "DKRAID_VARIANT_SHORT_INQUIRY",
        description: "a standard INQUIRY transfers 5 bytes whatever was asked (stage 1)",
        expected_rule: "ProbeShortInquiry",
        stage: "fake-block",
        scenario: None,
    },
    Variant {
        name: "inquiry-length-changes",
        macro_name: "DKRAID_VARIANT_INQUIRY_LENGTH_CHANGES",
        description: "ADDITIONAL LENGTH follows the allocation length (stage 1)",
        expected_rule: "ProbeInquiryLengthChanged",
        stage: "fake-block",
        scenario: None,
    },
    Variant {
        name: "short-mode-sense",
        macro_name: "DKRAID_VARIANT_SHORT_MODE_SENSE",
        description: "MODE SENSE(6) transfers 2 bytes less than requested (stage 1)",
        expected_rule: "ProbeModeSenseUnderrun",
        stage: "fake-block",
        scenario: None,
    },
    Variant {
        name: "never-ready",
        macro_name: "DKRAID_VARIANT_NEVER_READY",
        description: "TEST UNIT READY answers NOT READY 04/01 forever (stage 1)",
        expected_rule: "ProbeNeverReady",
        stage: "fake-block",
        scenario: None,
    },
    Variant {
        name: "check-condition-without-sense",
        macro_name: "DKRAID_VARIANT_CHECK_CONDITION_WITHOUT_SENSE",
        description: "CHECK CONDITION completed without sense data though autosense is reported \
                      (stage 1's failed reads)",
        expected_rule: "CheckConditionWithoutSense",
        stage: "fake-block",
        scenario: None,
    },
    Variant {
        name: "late-slot-free",
        macro_name: "DKRAID_VARIANT_LATE_SLOT_FREE",
        description: "frees a task's slot after ParallelTaskCompletion, not before (stage 3)",
        expected_rule: "TaskIdReusedTooSoon",
        stage: "full",
        scenario: None,
    },
    Variant {
        name: "fetch-ignores-maximum",
        macro_name: "DKRAID_VARIANT_FETCH_IGNORES_MAXIMUM",
        description: "the user client's Fetch ignores structureOutputMaximumSize (stage 3)",
        expected_rule: "StructureOutputOverrun",
        stage: "full",
        scenario: Some(
            "serve: an admin app fetches a response into a buffer too small for it \
             (tests/admin.rs)",
        ),
    },
    Variant {
        name: "close-without-cancel",
        macro_name: "DKRAID_VARIANT_CLOSE_WITHOUT_CANCEL",
        description: "the user client's Stop keeps its pending admin requests (stage 3)",
        expected_rule: "AsyncCompletionAfterClose",
        stage: "full",
        scenario: Some(
            "serve: an admin app closes its connection while its request waits for a stalled \
             firmware (tests/admin.rs)",
        ),
    },
];

/// The C symbol of a build's class-info function: `dksim_class_info_default` for the shipped
/// sources, `dksim_class_info_<name with _>` for a variant.
pub fn class_info_symbol(variant: Option<&Variant>) -> String {
    match variant {
        None => "dksim_class_info_default".to_string(),
        Some(v) => format!("dksim_class_info_{}", v.name.replace('-', "_")),
    }
}

pub fn find(name: &str) -> Option<&'static Variant> {
    VARIANTS.iter().find(|v| v.name == name)
}
