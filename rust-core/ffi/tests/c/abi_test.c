/*
 * Drives dkraid's C ABI the way the dext's C++ does: a platform table of C callbacks (here a
 * fake with IOVAs distinct from CPU addresses and injectable failures), core memory from the
 * caller, the controller calls in kernel order, and every error path the dext can meet.
 * Compiled and run by rust-core/ffi/tests/c_abi.rs; prints "N passed, M failed".
 */
#include "dkraid.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define kIOReturnSuccess 0
#define kIOReturnNoMemory ((dk_ioreturn)0xe00002bd)
#define kIOReturnNoResources ((dk_ioreturn)0xe00002be)
#define kIOReturnBadArgument ((dk_ioreturn)0xe00002c2)
#define kIOReturnVMError ((dk_ioreturn)0xe00002c8)
#define kIOReturnNotAligned ((dk_ioreturn)0xe00002d0)
#define kIOReturnDMAError ((dk_ioreturn)0xe00002d4)
#define kIOReturnNotReady ((dk_ioreturn)0xe00002d8)
#define kIOReturnNoSpace ((dk_ioreturn)0xe00002db)
#define kIOReturnUnderrun ((dk_ioreturn)0xe00002e7)
#define kIOReturnNotFound ((dk_ioreturn)0xe00002f0)

static int passed, failed;

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (cond) {                                                                            \
            passed++;                                                                          \
        } else {                                                                               \
            failed++;                                                                          \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                    \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fprintf(stderr, "\n");                                                             \
        }                                                                                      \
    } while (0)

#define CHECK_RET(expr, expected)                                                              \
    do {                                                                                       \
        dk_ioreturn r_ = (expr);                                                               \
        CHECK(r_ == (expected), "%s returned 0x%08x, expected 0x%08x", #expr, (unsigned)r_,    \
              (unsigned)(expected));                                                           \
    } while (0)

/* ---------------------------------------------------------------- the fake platform ---- */

#define MAX_BUFFERS 1024
#define IOVA_BASE 0x00002a0000000000ull

enum fault { FAULT_NONE, FAULT_FAIL, FAULT_SHORT, FAULT_SPLIT };

struct fake {
    uint64_t page_size;
    void *cpu[MAX_BUFFERS + 1]; /* by handle; NULL = free */
    uint64_t length[MAX_BUFFERS + 1];
    uint64_t next_handle;
    int live;
    int bad_frees;
    int creates, prepares;
    int fail_create_at;
    int fault_at;
    enum fault fault;
    char log[8192];
    size_t log_len;
};

static dk_ioreturn fake_create(void *context, uint64_t capacity, uint64_t alignment,
                               uint32_t direction, dk_dma_buffer *out) {
    struct fake *f = context;
    f->creates++;
    if (f->creates == f->fail_create_at) return kIOReturnNoMemory;
    if (direction != DK_DMA_DIRECTION_IN_OUT && direction != DK_DMA_DIRECTION_IN &&
        direction != DK_DMA_DIRECTION_OUT)
        return kIOReturnBadArgument;
    if (f->next_handle > MAX_BUFFERS) return kIOReturnNoMemory;
    void *p = aligned_alloc(alignment, capacity);
    if (!p) return kIOReturnNoMemory;
    uint64_t h = f->next_handle++;
    f->cpu[h] = p;
    f->length[h] = capacity;
    f->live++;
    out->handle = h;
    out->cpu_address = (uint64_t)(uintptr_t)p;
    out->cpu_length = capacity;
    return kIOReturnSuccess;
}

static uint64_t iova_of(struct fake *f, uint64_t handle) {
    return IOVA_BASE + handle * 4 * f->page_size;
}

static dk_ioreturn fake_prepare(void *context, uint64_t handle, dk_dma_segment *segments,
                                uint32_t *segment_count) {
    struct fake *f = context;
    f->prepares++;
    if (handle == 0 || handle > MAX_BUFFERS || !f->cpu[handle]) return kIOReturnBadArgument;
    if (*segment_count < 2) return kIOReturnBadArgument;
    uint64_t len = f->length[handle];
    enum fault fault = f->prepares == f->fault_at ? f->fault : FAULT_NONE;
    switch (fault) {
    case FAULT_FAIL:
        return kIOReturnVMError;
    case FAULT_SHORT:
        segments[0] = (dk_dma_segment){iova_of(f, handle), len / 2};
        *segment_count = 1;
        break;
    case FAULT_SPLIT:
        segments[0] = (dk_dma_segment){iova_of(f, handle), len / 2};
        segments[1] = (dk_dma_segment){iova_of(f, handle) + len, len - len / 2};
        *segment_count = 2;
        break;
    case FAULT_NONE:
        segments[0] = (dk_dma_segment){iova_of(f, handle), len};
        *segment_count = 1;
        break;
    }
    return kIOReturnSuccess;
}

static void fake_free(void *context, uint64_t handle) {
    struct fake *f = context;
    if (handle == 0 || handle > MAX_BUFFERS || !f->cpu[handle]) {
        f->bad_frees++;
        return;
    }
    free(f->cpu[handle]);
    f->cpu[handle] = NULL;
    f->live--;
}

static uint32_t fake_read32(void *c, uint32_t bar, uint64_t off) { (void)c; (void)bar; (void)off; return 0; }
static void fake_write32(void *c, uint32_t bar, uint64_t off, uint32_t v) { (void)c; (void)bar; (void)off; (void)v; }
static uint64_t fake_read64(void *c, uint32_t bar, uint64_t off) { (void)c; (void)bar; (void)off; return 0; }
static void fake_write64(void *c, uint32_t bar, uint64_t off, uint64_t v) { (void)c; (void)bar; (void)off; (void)v; }
static uint64_t fake_time(void *c) { (void)c; return 42; }

static void fake_log(void *context, uint32_t level, const char *message, size_t length) {
    struct fake *f = context;
    (void)level;
    size_t room = sizeof(f->log) - f->log_len - 2;
    if (length > room) length = room;
    memcpy(f->log + f->log_len, message, length);
    f->log_len += length;
    f->log[f->log_len++] = '\n';
    f->log[f->log_len] = 0;
}

static int logged(struct fake *f, const char *needle) { return strstr(f->log, needle) != NULL; }

static void fake_init(struct fake *f, uint64_t page_size) {
    memset(f, 0, sizeof(*f));
    f->page_size = page_size;
    f->next_handle = 1;
}

static dk_platform table_for(struct fake *f) {
    dk_platform t = {
        .abi_version = DK_ABI_VERSION,
        .struct_size = sizeof(dk_platform),
        .context = f,
        .dma_buffer_create = fake_create,
        .dma_buffer_prepare = fake_prepare,
        .dma_buffer_free = fake_free,
        .mmio_read32 = fake_read32,
        .mmio_write32 = fake_write32,
        .mmio_read64 = fake_read64,
        .mmio_write64 = fake_write64,
        .monotonic_time_ns = fake_time,
        .log = fake_log,
    };
    return t;
}

static dk_core_config config_for(uint64_t page_size, uint32_t tasks) {
    dk_core_config c = {
        .abi_version = DK_ABI_VERSION,
        .stage = DK_STAGE_PIPELINE,
        .page_size = page_size,
        .max_task_count = tasks,
    };
    return c;
}

static void *core_memory(void) {
    size_t align = dk_core_align(), size = dk_core_size();
    size = (size + align - 1) / align * align;
    void *m = aligned_alloc(align, size);
    memset(m, 0xA5, size); /* garbage, as IOMalloc would give */
    return m;
}

/* Boot to the point where UserMapHBAData is called; returns the task count. */
static uint32_t boot_to_mapping(dk_core *core) {
    dk_hba_constraints hc;
    uint64_t id;
    uint32_t n = 0;
    CHECK_RET(dk_controller_start(core), kIOReturnSuccess);
    CHECK_RET(dk_initialize_controller(core, &hc), kIOReturnSuccess);
    CHECK_RET(dk_report_initiator_identifier(core, &id), kIOReturnSuccess);
    CHECK_RET(dk_report_highest_supported_device_id(core, &id), kIOReturnSuccess);
    CHECK_RET(dk_report_maximum_task_count(core, &n), kIOReturnSuccess);
    return n;
}

/* ------------------------------------------------------------------------ the tests ---- */

static void test_full_start(uint64_t page_size) {
    struct fake f;
    fake_init(&f, page_size);
    dk_platform t = table_for(&f);
    dk_core_config c = config_for(page_size, 16);
    void *mem = core_memory();
    dk_core *core = NULL;
    CHECK_RET(dk_core_init(mem, dk_core_size(), &t, &c, &core), kIOReturnSuccess);
    CHECK(core == mem, "the core lives in the memory given");

    dk_hba_constraints hc;
    memset(&hc, 0, sizeof hc);
    uint64_t id = 0;
    uint32_t task_id = 0;
    CHECK_RET(dk_initialize_controller(core, &hc), kIOReturnNotReady); /* before Start */
    CHECK(logged(&f, "CallOutOfOrder: UserInitializeController"), "log: %s", f.log);
    CHECK_RET(dk_controller_start(core), kIOReturnSuccess);
    CHECK_RET(dk_map_hba_data(core, &task_id), kIOReturnNotReady); /* before the count */
    CHECK(logged(&f, "TaskCountNotKnown"), "log: %s", f.log);
    CHECK(f.creates == 0, "nothing was allocated");
    CHECK_RET(dk_initialize_controller(core, &hc), kIOReturnSuccess);
    CHECK(hc.max_segment_count_read && hc.max_segment_count_write &&
              hc.max_segment_byte_count_read && hc.max_segment_byte_count_write &&
              hc.min_segment_alignment_byte_count && hc.max_segment_addressable_bit_count &&
              hc.min_hba_data_alignment_mask,
          "all seven constraint keys are set");
    CHECK_RET(dk_report_initiator_identifier(core, &id), kIOReturnSuccess);
    uint64_t highest = 0;
    CHECK_RET(dk_report_highest_supported_device_id(core, &highest), kIOReturnSuccess);
    CHECK(id > highest, "the initiator ID %llu is not a target ID (highest %llu)",
          (unsigned long long)id, (unsigned long long)highest);
    uint32_t n = 0;
    CHECK_RET(dk_report_maximum_task_count(core, &n), kIOReturnSuccess);
    CHECK(n == 16, "task count %u", n);
    for (uint64_t expected = 1; expected <= n; expected++) {
        uint32_t task = 0;
        CHECK_RET(dk_map_hba_data(core, &task), kIOReturnSuccess);
        CHECK(task == expected, "task ID %u, expected %llu", task, (unsigned long long)expected);
    }
    CHECK(f.live == (int)n, "%d buffers live", f.live);
    for (uint64_t h = 1; h <= n; h++) {
        CHECK(f.length[h] == page_size, "frame %llu is %llu bytes", (unsigned long long)h,
              (unsigned long long)f.length[h]);
        CHECK((uintptr_t)f.cpu[h] % page_size == 0, "frame %llu is page aligned",
              (unsigned long long)h);
    }
    CHECK_RET(dk_map_hba_data(core, &task_id), kIOReturnNoResources); /* the (N+1)-th */
    CHECK(logged(&f, "TaskPoolExhausted"), "log: %s", f.log);
    CHECK_RET(dk_start_controller(core), kIOReturnSuccess);
    uint8_t answer = 0;
    CHECK_RET(dk_does_hba_perform_device_management(core, &answer), kIOReturnSuccess);
    CHECK(answer == 1, "the HBA manages its devices");
    CHECK_RET(dk_stop_controller(core), kIOReturnSuccess);
    CHECK_RET(dk_stop_controller(core), kIOReturnNotReady);
    dk_core_teardown(core);
    CHECK(f.live == 0 && f.bad_frees == 0, "%d live, %d bad frees after teardown", f.live,
          f.bad_frees);
    /* The handle is dead now. */
    CHECK_RET(dk_controller_start(core), kIOReturnNotReady);
    dk_core_teardown(core); /* harmless */
    CHECK(f.bad_frees == 0, "a second teardown freed nothing");
    free(mem);
}

static void test_bad_init(void) {
    struct fake f;
    fake_init(&f, 16384);
    dk_platform t = table_for(&f);
    dk_core_config c = config_for(16384, 0);
    void *mem = core_memory();
    dk_core *core = NULL;

    CHECK_RET(dk_core_init(NULL, dk_core_size(), &t, &c, &core), kIOReturnBadArgument);
    CHECK_RET(dk_core_init(mem, dk_core_size(), NULL, &c, &core), kIOReturnBadArgument);
    CHECK_RET(dk_core_init(mem, dk_core_size(), &t, NULL, &core), kIOReturnBadArgument);
    CHECK_RET(dk_core_init(mem, dk_core_size(), &t, &c, NULL), kIOReturnBadArgument);
    CHECK_RET(dk_core_init(mem, dk_core_size() - 1, &t, &c, &core), kIOReturnNoSpace);
    CHECK_RET(dk_core_init((char *)mem + 1, dk_core_size() - 8, &t, &c, &core),
              kIOReturnNotAligned);

    dk_platform bad = t;
    bad.abi_version = 99;
    CHECK_RET(dk_core_init(mem, dk_core_size(), &bad, &c, &core), kIOReturnBadArgument);
    bad = t;
    bad.struct_size = 8;
    CHECK_RET(dk_core_init(mem, dk_core_size(), &bad, &c, &core), kIOReturnBadArgument);
    bad = t;
    bad.dma_buffer_prepare = NULL;
    CHECK_RET(dk_core_init(mem, dk_core_size(), &bad, &c, &core), kIOReturnBadArgument);

    dk_core_config bc = c;
    bc.page_size = 12288;
    CHECK_RET(dk_core_init(mem, dk_core_size(), &t, &bc, &core), kIOReturnBadArgument);
    CHECK(logged(&f, "InvalidPageSize"), "log: %s", f.log);
    bc = c;
    bc.stage = 7;
    CHECK_RET(dk_core_init(mem, dk_core_size(), &t, &bc, &core), kIOReturnBadArgument);
    CHECK(logged(&f, "UnknownStage"), "log: %s", f.log);
    bc = c;
    bc.max_task_count = 100000;
    CHECK_RET(dk_core_init(mem, dk_core_size(), &t, &bc, &core), kIOReturnBadArgument);
    CHECK(logged(&f, "InvalidTaskCount"), "log: %s", f.log);
    bc = c;
    bc.abi_version = 2;
    CHECK_RET(dk_core_init(mem, dk_core_size(), &t, &bc, &core), kIOReturnBadArgument);

    /* Memory that never held a core (0xA5 garbage) and a NULL handle. */
    CHECK_RET(dk_controller_start((dk_core *)mem), kIOReturnNotReady);
    CHECK(logged(&f, "CoreNotInitialized"), "log: %s", f.log);
    CHECK_RET(dk_controller_start(NULL), kIOReturnBadArgument);
    uint32_t task_id;
    CHECK_RET(dk_map_hba_data(NULL, &task_id), kIOReturnBadArgument);
    dk_core_teardown(NULL);

    /* A zero task count from the config means the default, reported and honoured. */
    CHECK_RET(dk_core_init(mem, dk_core_size(), &t, &c, &core), kIOReturnSuccess);
    uint32_t n = boot_to_mapping(core);
    CHECK(n > 0, "default task count %u", n);
    CHECK_RET(dk_map_hba_data(core, NULL), kIOReturnBadArgument);
    CHECK(f.creates == 0, "a NULL out-pointer allocates nothing");
    CHECK_RET(dk_start_controller(core), kIOReturnNotReady); /* nothing mapped */
    CHECK(logged(&f, "NoTasksMapped"), "log: %s", f.log);
    dk_core_teardown(core);
    free(mem);
}

static void test_stage_parse(void) {
    uint32_t stage = 99;
    struct fake f;
    fake_init(&f, 16384);
    dk_platform t = table_for(&f);
    dk_core_config c = config_for(16384, 1);
    void *mem = core_memory();
    dk_core *core = NULL;
    /* Install the log sink first so the parse errors are visible. */
    CHECK_RET(dk_core_init(mem, dk_core_size(), &t, &c, &core), kIOReturnSuccess);

    const char *names[] = {"pipeline", "fake-block", "single-io", "full"};
    for (uint32_t i = 0; i < 4; i++) {
        CHECK_RET(dk_stage_parse(names[i], strlen(names[i]), &stage), kIOReturnSuccess);
        CHECK(stage == i, "%s parsed as %u", names[i], stage);
    }
    CHECK_RET(dk_stage_parse("fast", 4, &stage), kIOReturnBadArgument);
    CHECK(logged(&f, "valid stages are pipeline, fake-block, single-io, full"), "log: %s", f.log);
    CHECK_RET(dk_stage_parse("full", 3, &stage), kIOReturnBadArgument); /* "ful" */
    CHECK_RET(dk_stage_parse("\xff\xfe", 2, &stage), kIOReturnBadArgument);
    CHECK_RET(dk_stage_parse(NULL, 0, &stage), kIOReturnBadArgument);
    CHECK_RET(dk_stage_parse("full", 4, NULL), kIOReturnBadArgument);
    dk_core_teardown(core);
    free(mem);
}

/* Failures in the middle of the pool: the failed frame is released, the pool keeps what was
 * mapped before, teardown leaves nothing. */
static void test_mapping_failures(void) {
    struct {
        const char *what;
        int create_at;
        enum fault fault;
        dk_ioreturn expected;
        const char *name;
    } cases[] = {
        {"create fails", 3, FAULT_NONE, kIOReturnNoMemory, "DmaBufferCreateFailed"},
        {"prepare fails", 0, FAULT_FAIL, kIOReturnVMError, "DmaPrepareFailed"},
        {"short mapping", 0, FAULT_SHORT, kIOReturnUnderrun, "DmaShortMapping"},
        {"split mapping", 0, FAULT_SPLIT, kIOReturnDMAError, "DmaSplitMapping"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (uint64_t page = 4096; page <= 16384; page *= 4) {
            struct fake f;
            fake_init(&f, page);
            f.fail_create_at = cases[i].create_at;
            f.fault = cases[i].fault;
            f.fault_at = cases[i].fault == FAULT_NONE ? 0 : 3;
            dk_platform t = table_for(&f);
            dk_core_config c = config_for(page, 8);
            void *mem = core_memory();
            dk_core *core = NULL;
            CHECK_RET(dk_core_init(mem, dk_core_size(), &t, &c, &core), kIOReturnSuccess);
            boot_to_mapping(core);
            uint32_t id = 0;
            CHECK_RET(dk_map_hba_data(core, &id), kIOReturnSuccess);
            CHECK_RET(dk_map_hba_data(core, &id), kIOReturnSuccess);
            CHECK_RET(dk_map_hba_data(core, &id), cases[i].expected);
            CHECK(logged(&f, cases[i].name), "%s: log: %s", cases[i].what, f.log);
            CHECK(logged(&f, "task 3"), "%s: the failing task is named: %s", cases[i].what, f.log);
            CHECK(f.live == 2, "%s: %d live after the failure", cases[i].what, f.live);
            /* A truncated pool still starts. */
            CHECK_RET(dk_start_controller(core), kIOReturnSuccess);
            dk_core_teardown(core);
            CHECK(f.live == 0 && f.bad_frees == 0, "%s: %d live, %d bad frees", cases[i].what,
                  f.live, f.bad_frees);
            free(mem);
        }
    }
}

/* An admin request (docs/ADMIN-PROTOCOL.md): the 16-byte little-endian header, then the
 * payload. Returns its size. */
static size_t admin_request(uint8_t *out, uint16_t command, uint32_t sequence,
                            const uint8_t *payload, uint32_t payload_bytes) {
    const uint32_t magic = 0x44414B44u;
    const uint16_t version = 1;
    uint8_t h[16] = {
        (uint8_t)magic, (uint8_t)(magic >> 8), (uint8_t)(magic >> 16), (uint8_t)(magic >> 24),
        (uint8_t)version, (uint8_t)(version >> 8), (uint8_t)command, (uint8_t)(command >> 8),
        (uint8_t)payload_bytes, (uint8_t)(payload_bytes >> 8), (uint8_t)(payload_bytes >> 16),
        (uint8_t)(payload_bytes >> 24), (uint8_t)sequence, (uint8_t)(sequence >> 8),
        (uint8_t)(sequence >> 16), (uint8_t)(sequence >> 24),
    };
    memcpy(out, h, sizeof h);
    if (payload_bytes) memcpy(out + 16, payload, payload_bytes);
    return 16 + payload_bytes;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The admin calls as the user client makes them, in stage 1 (no controller: everything is
 * answered at once). */
static void test_admin(void) {
    struct fake f;
    fake_init(&f, 16384);
    dk_platform t = table_for(&f);
    dk_core_config c = config_for(16384, 4);
    c.stage = DK_STAGE_FAKE_BLOCK;
    void *mem = core_memory();
    dk_core *core = NULL;
    CHECK_RET(dk_core_init(mem, dk_core_size(), &t, &c, &core), kIOReturnSuccess);
    CHECK(dk_admin_event_sequence(core) == 0, "no events in stage 1");
    CHECK(dk_admin_event_sequence(NULL) == 0, "a NULL core has no events");

    /* The client connection's identity (the dext passes its user client's address). */
    const uint64_t OWNER = 0x5EED;
    uint8_t req[DK_ADMIN_MAX_RESPONSE + 16];
    uint8_t resp[DK_ADMIN_MAX_RESPONSE];
    uint32_t ticket = 0, ready = 0, bytes = 0;
    size_t got = 0;
    /* STAGE_GET: answered by the core at once. */
    size_t n = admin_request(req, 0x08, 77, NULL, 0);
    CHECK_RET(dk_admin_submit(core, OWNER, req, n, false, &ticket), kIOReturnSuccess);
    CHECK(ticket != 0, "a ticket, never 0");
    CHECK_RET(dk_admin_next_ready(core, &ready, &bytes), kIOReturnSuccess);
    CHECK(ready == ticket && bytes == 24, "ticket %u ready with %u bytes", ready, bytes);
    CHECK_RET(dk_admin_next_ready(core, &ready, &bytes), kIOReturnNotFound); /* reported once */
    CHECK_RET(dk_admin_fetch(core, OWNER, ticket, resp, 10, &got), kIOReturnNoSpace);
    CHECK(logged(&f, "AdminResponseTooLarge"), "log: %s", f.log);
    CHECK_RET(dk_admin_fetch(core, OWNER, ticket, resp, sizeof resp, &got), kIOReturnSuccess);
    CHECK(got == 24, "%zu bytes", got);
    CHECK(le32(resp) == 0x44414B44u && le32(resp + 8) == 0 && le32(resp + 16) == 77 &&
              le32(resp + 20) == DK_STAGE_FAKE_BLOCK,
          "STAGE_GET's response: status %u, stage %u", le32(resp + 8), le32(resp + 20));
    CHECK_RET(dk_admin_fetch(core, OWNER, ticket, resp, sizeof resp, &got), kIOReturnNotFound);

    /* A firmware-backed command in stage 1: NotReady (15), at once. */
    n = admin_request(req, 0x02, 5, NULL, 0);
    uint32_t second = 0;
    CHECK_RET(dk_admin_submit(core, OWNER, req, n, false, &second), kIOReturnSuccess);
    CHECK(second > ticket, "tickets increase: %u after %u", second, ticket);
    CHECK_RET(dk_admin_fetch(core, OWNER, second, resp, sizeof resp, &got), kIOReturnSuccess);
    CHECK(got == 20 && le32(resp + 8) == 15, "VOLUME_LIST in stage 1: status %u", le32(resp + 8));

    /* Destructive without the entitlement: NotPermitted (12). A malformed request gets a
     * ticket too, and a request longer than 4096 bytes is RequestTooLarge (4). */
    uint8_t vref[4] = {1, 0, 0, 0};
    n = admin_request(req, 0x11, 6, vref, 4);
    CHECK_RET(dk_admin_submit(core, OWNER, req, n, false, &ticket), kIOReturnSuccess);
    CHECK_RET(dk_admin_fetch(core, OWNER, ticket, resp, sizeof resp, &got), kIOReturnSuccess);
    CHECK(le32(resp + 8) == 12, "VOLUME_DELETE unentitled: status %u", le32(resp + 8));
    CHECK_RET(dk_admin_submit(core, OWNER, req, 3, true, &ticket), kIOReturnSuccess);
    CHECK_RET(dk_admin_fetch(core, OWNER, ticket, resp, sizeof resp, &got), kIOReturnSuccess);
    CHECK(le32(resp + 8) == 3, "3 bytes: ShortRequest, status %u", le32(resp + 8));
    memset(req, 0, sizeof req);
    CHECK_RET(dk_admin_submit(core, OWNER, req, sizeof req, true, &ticket), kIOReturnSuccess);
    CHECK_RET(dk_admin_fetch(core, OWNER, ticket, resp, sizeof resp, &got), kIOReturnSuccess);
    CHECK(le32(resp + 8) == 4, "RequestTooLarge, status %u", le32(resp + 8));

    /* Slots: DK_ADMIN_SLOTS, then kIOReturnNoResources; cancel frees one. */
    uint32_t tickets[DK_ADMIN_SLOTS];
    n = admin_request(req, 0x08, 1, NULL, 0);
    for (unsigned i = 0; i < DK_ADMIN_SLOTS; i++)
        CHECK_RET(dk_admin_submit(core, OWNER, req, n, false, &tickets[i]), kIOReturnSuccess);
    CHECK_RET(dk_admin_submit(core, OWNER, req, n, false, &ticket), kIOReturnNoResources);
    CHECK(logged(&f, "AdminSlotsFull"), "log: %s", f.log);
    CHECK_RET(dk_admin_cancel(core, tickets[0]), kIOReturnSuccess);
    CHECK_RET(dk_admin_cancel(core, tickets[0]), kIOReturnNotFound);
    CHECK_RET(dk_admin_submit(core, OWNER, req, n, false, &ticket), kIOReturnSuccess);
    /* Only the owner fetches; a closed owner's tickets all go, fetched or not. */
    CHECK_RET(dk_admin_fetch(core, OWNER + 1, ticket, resp, sizeof resp, &got), kIOReturnNotFound);
    CHECK_RET(dk_admin_close(core, OWNER), kIOReturnSuccess);
    CHECK_RET(dk_admin_fetch(core, OWNER, ticket, resp, sizeof resp, &got), kIOReturnNotFound);
    for (unsigned i = 0; i < DK_ADMIN_SLOTS; i++)
        CHECK_RET(dk_admin_submit(core, OWNER, req, n, false, &tickets[i]), kIOReturnSuccess);
    for (unsigned i = 0; i < DK_ADMIN_SLOTS; i++)
        CHECK_RET(dk_admin_fetch(core, OWNER, tickets[i], resp, sizeof resp, &got), kIOReturnSuccess);

    /* NULL pointers. */
    CHECK_RET(dk_admin_submit(core, OWNER, NULL, 16, false, &ticket), kIOReturnBadArgument);
    CHECK_RET(dk_admin_submit(core, OWNER, req, n, false, NULL), kIOReturnBadArgument);
    CHECK_RET(dk_admin_submit(NULL, OWNER, req, n, false, &ticket), kIOReturnBadArgument);
    CHECK_RET(dk_admin_next_ready(core, NULL, &bytes), kIOReturnBadArgument);
    CHECK_RET(dk_admin_next_ready(core, &ready, NULL), kIOReturnBadArgument);
    CHECK_RET(dk_admin_fetch(core, OWNER, 1, NULL, 10, &got), kIOReturnBadArgument);
    CHECK_RET(dk_admin_fetch(core, OWNER, 1, resp, sizeof resp, NULL), kIOReturnBadArgument);
    CHECK_RET(dk_admin_cancel(NULL, 1), kIOReturnBadArgument);
    CHECK_RET(dk_admin_close(NULL, OWNER), kIOReturnBadArgument);
    dk_core_teardown(core);
    CHECK_RET(dk_admin_cancel(core, 1), kIOReturnNotReady); /* a dead handle */
    CHECK(dk_admin_event_sequence(core) == 0, "a dead handle has no events");
    free(mem);
}

int main(void) {
    CHECK(sizeof(dk_scsi_user_parallel_task) == 128, "task size");
    CHECK(sizeof(dk_scsi_user_parallel_response) == 384, "response size");
    CHECK(dk_core_size() > 0 && dk_core_align() >= 8, "core size %zu align %zu", dk_core_size(),
          dk_core_align());
    CHECK(strcmp(dk_ioreturn_name(kIOReturnNotReady), "kIOReturnNotReady") == 0, "name");
    CHECK(strcmp(dk_ioreturn_name(0), "kIOReturnSuccess") == 0, "name of success");
    CHECK(dk_ioreturn_name((dk_ioreturn)0xe0001234) == NULL, "no name for an unknown value");
    test_full_start(16384);
    test_full_start(4096);
    test_bad_init();
    test_stage_parse();
    test_mapping_failures();
    test_admin();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
