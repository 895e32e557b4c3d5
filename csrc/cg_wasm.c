/*
 * cg_wasm.c -- the WebAssembly face of the core: exports, a small allocator, JSON replies.
 *
 * Built only for wasm32 (scripts/build_wasm.py); the native build leaves it out. The
 * module has zero imports. Unlike the core, this file has state: a wasm instance is
 * single-threaded and its linear memory is its state (the heap, the loaded policy).
 *
 * ABI (the original perso engine's, so hosts written for it keep working):
 *   alloc(len) -> ptr            host-owned buffer; the host frees it with dealloc(ptr, len)
 *   dealloc(ptr, len)            frees a buffer from alloc, or a response (len = 4 + n);
 *                                anything else (a wrong pointer, a double free) is ignored
 *   init(ptr, len) -> resp       loads a compiled blob; init(0, 0) loads the embedded one.
 *                                resp = {"ok":true} or {"error":...}; the swap is atomic:
 *                                on error the previous policy stays in force
 *   evaluate(tool_ptr, tool_len, args_ptr, args_len, ctx_ptr, ctx_len) -> resp
 *                                resp = {"decision":..,"reason":..,"rule":..} (plus
 *                                "approvals_required" for an Elevate) or {"error":..}
 *   A response is a little-endian u32 n followed by n bytes of JSON; the host reads it and
 *   frees it with dealloc(resp, 4 + n). A response pointer of 0 means out of memory.
 * The lean path for high request rates (no allocation per call):
 *   request_buffer(len) -> ptr   a module-owned buffer of at least len bytes, reused; the
 *                                host writes `["tool","role",args,agent,resource]` there
 *   decide(ptr, len) -> i32      (rule + 1) << 4 | approvals << 2 | decision (0 Deny,
 *                                1 Allow, 2 Elevate), or a
 *                                negative error code
 *   explain(ptr, len) -> resp    the full JSON reply for the same request, when wanted
 *   decide_json(tool_ptr, tool_len, args_ptr, args_len, ctx_ptr, ctx_len) -> i32
 *                                the lean path for evaluate's three inputs
 *   callgate_abi_version() -> i32
 */
#include "cg_internal.h"

#define PAGE 65536u
#define HDR 8u
#define MIN_CLASS 4u   /* 16-byte blocks */
#define MAX_CLASS 30u  /* 1 GiB blocks */
#define BLOCK_MAGIC 0xCA11u

/* Linear memory starts at address 0: a wasm offset is the pointer. */
#define MEM(off) ((uint8_t *)(uintptr_t)(off))

extern unsigned char __heap_base;

/* libc symbols the compiler may emit calls to */
void *memcpy(void *dst, const void *src, size_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--) *d++ = *s++;
    return dst;
}
void *memmove(void *dst, const void *src, size_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (d < s)
        while (n--) *d++ = *s++;
    else
        while (n--) d[n] = s[n];
    return dst;
}
void *memset(void *dst, int c, size_t n) {
    uint8_t *d = dst;
    while (n--) *d++ = (uint8_t)c;
    return dst;
}
int memcmp(const void *a, const void *b, size_t n) {
    const uint8_t *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}

/* ---- the allocator: power-of-two size classes, a free list per class, blocks carved
   from memory above the module's initial pages (where an embedded policy may sit). ---- */
static struct heap {
    uint32_t start, top, end;   /* first block, bump pointer, end of grown memory */
    uint32_t free[MAX_CLASS + 1];
    uint32_t embed, embed_len;  /* the embedded blob, if any */
    int ready;
} heap;

static uint32_t mem_bytes(void) { return (uint32_t)__builtin_wasm_memory_size(0) * PAGE; }

static void heap_init(void) {
    if (heap.ready) return;
    uint32_t end = mem_bytes();
    /* build-wasm places [blob][u32 len]["CGEM"] at the very end of the initial memory */
    if (end >= 8 && cg_memcmp(MEM(end - 4), "CGEM", 4) == 0) {
        uint32_t len = cg_rd32(MEM(end - 8));
        if (len <= end - 8) {
            heap.embed = end - 8 - len;
            heap.embed_len = len;
        }
    }
    uint32_t base = (uint32_t)(uintptr_t)&__heap_base;
    heap.start = heap.top = heap.end = end > base ? end : base;
    heap.ready = 1;
}

static uint32_t class_of(uint32_t len) {
    uint32_t c = MIN_CLASS;
    while (c <= MAX_CLASS && (1u << c) < len + HDR) c++;
    return c;
}

__attribute__((export_name("alloc"))) uint32_t cg_alloc(uint32_t len) {
    heap_init();
    if (len > (1u << MAX_CLASS) - HDR) return 0;
    uint32_t c = class_of(len);
    uint32_t block = heap.free[c];
    if (block) {
        heap.free[c] = cg_rd32(MEM(block + 4)); /* next free block */
    } else {
        uint32_t size = 1u << c;
        if (heap.top + size < heap.top) return 0;
        if (heap.top + size > heap.end) {
            uint32_t need = heap.top + size - heap.end;
            uint32_t pages = (need + PAGE - 1) / PAGE;
            if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) return 0;
            heap.end += pages * PAGE;
        }
        block = heap.top;
        heap.top += size;
    }
    uint32_t hdr = BLOCK_MAGIC << 16 | c << 8 | 1; /* magic, class, in use */
    cg_memcpy(MEM(block), &hdr, 4);
    return block + HDR;
}

__attribute__((export_name("dealloc"))) void cg_dealloc(uint32_t ptr, uint32_t len) {
    heap_init();
    if (ptr < heap.start + HDR || ptr > heap.top || (ptr - heap.start) % 8 != 0) return;
    uint32_t block = ptr - HDR, hdr = cg_rd32(MEM(block));
    uint32_t c = hdr >> 8 & 0xff;
    /* only a live block of the class that len asks for: a stray or double free is ignored */
    if (hdr >> 16 != BLOCK_MAGIC || (hdr & 0xff) != 1 || c != class_of(len)) return;
    hdr &= ~0xffu;
    cg_memcpy(MEM(block), &hdr, 4);
    cg_memcpy(MEM(block + 4), &heap.free[c], 4);
    heap.free[c] = block;
}

/* ---- the loaded policy ---- */
static struct engine {
    cg_policy *policy;
    uint32_t policy_mem, policy_size;
    uint32_t scratch, scratch_size;
    uint32_t request, request_size; /* the lean path's reusable buffer */
} eng;

/* Is [ptr, ptr + len) inside linear memory (no u32 wrap-around)? */
static bool in_memory(uint32_t ptr, uint32_t len) {
    return ptr <= mem_bytes() && len <= mem_bytes() - ptr;
}

/* ---- replies: a response block is a u32 length and the JSON, freed by the host with
   dealloc(resp, 4 + n) ---- */
typedef struct reply {
    uint32_t at;      /* the block (0 once an allocation failed) */
    uint32_t cap, n;  /* JSON capacity and length */
} reply;

static reply begin(uint32_t cap) {
    reply r = {cg_alloc(cap + 4), cap, 0};
    return r;
}

static void emit(reply *r, const void *s, uint32_t n) {
    if (!r->at) return;
    if (r->n + n > r->cap) {
        uint32_t cap = r->cap * 2 > r->n + n ? r->cap * 2 : r->n + n + 64;
        uint32_t at = cg_alloc(cap + 4);
        if (at) cg_memcpy(MEM(at + 4), MEM(r->at + 4), r->n);
        cg_dealloc(r->at, r->cap + 4);
        r->at = at;
        r->cap = cap;
        if (!at) return;
    }
    cg_memcpy(MEM(r->at + 4 + r->n), s, n);
    r->n += n;
}
static void emit_s(reply *r, const char *s) {
    uint32_t n = 0;
    while (s[n]) n++;
    emit(r, s, n);
}
/* a JSON string: the bytes are valid UTF-8, so only quotes, backslashes and controls */
static void emit_json_string(reply *r, const uint8_t *s, uint32_t n) {
    static const char hex[] = "0123456789abcdef";
    emit(r, "\"", 1);
    uint32_t run = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        emit(r, s + run, i - run);
        run = i + 1;
        char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        if (c == '"' || c == '\\') {
            e[1] = (char)c;
            emit(r, e, 2);
        } else if (c == '\n') emit(r, "\\n", 2);
        else if (c == '\t') emit(r, "\\t", 2);
        else emit(r, e, 6);
    }
    emit(r, s + run, n - run);
    emit(r, "\"", 1);
}
static void emit_u32(reply *r, uint32_t v) {
    char buf[CG_U32_DIGITS];
    uint32_t at = cg_u32_text(buf, v);
    emit(r, buf + at, CG_U32_DIGITS - at);
}

/* Writes the length and returns the response. Its block must be freeable as
   dealloc(resp, 4 + n), so the JSON moves to a block of that size class if needed. */
static uint32_t seal(reply *r) {
    if (!r->at) return 0;
    cg_memcpy(MEM(r->at), &r->n, 4);
    if (class_of(r->n + 4) == class_of(r->cap + 4)) return r->at;
    uint32_t fresh = cg_alloc(r->n + 4);
    if (fresh) cg_memcpy(MEM(fresh), MEM(r->at), r->n + 4);
    cg_dealloc(r->at, r->cap + 4);
    return fresh;
}

static uint32_t error_reply(int code, const char *where, uint32_t offset) {
    reply r = begin(128);
    emit_s(&r, "{\"error\":");
    const char *msg = cg_strerror(code);
    uint32_t n = 0;
    while (msg[n]) n++;
    emit_json_string(&r, (const uint8_t *)msg, n);
    emit_s(&r, ",\"code\":\"");
    emit_s(&r, cg_errname(code));
    emit_s(&r, "\"");
    if (where) {
        emit_s(&r, ",\"input\":\"");
        emit_s(&r, where);
        emit_s(&r, "\",\"offset\":");
        emit_u32(&r, offset);
    }
    emit_s(&r, "}");
    return seal(&r);
}

static uint32_t decision_reply(int64_t rc, const uint8_t *reason, uint32_t reason_len) {
    static const char *const names[] = {"Deny", "Allow", "Elevate", "Deny"};
    reply r = begin(64 + reason_len);
    emit_s(&r, "{\"decision\":\"");
    emit_s(&r, names[rc & 3]);
    emit_s(&r, "\",\"reason\":");
    emit_json_string(&r, reason, reason_len);
    emit_s(&r, ",\"rule\":");
    int64_t rule1 = rc >> CG_RESULT_RULE_SHIFT;
    if (rule1) emit_u32(&r, (uint32_t)(rule1 - 1));
    else emit_s(&r, "null");
    if ((rc & 3) == CG_ELEVATE) { /* only then: the perso ABI's replies keep their shape */
        emit_s(&r, ",\"approvals_required\":");
        emit_u32(&r, (uint32_t)((rc >> 2) & 3));
    }
    emit_s(&r, "}");
    return seal(&r);
}

/* ---- exports ---- */

__attribute__((export_name("callgate_abi_version"))) int32_t cg_wasm_abi_version(void) {
    return CG_ABI_VERSION;
}

__attribute__((export_name("init"))) uint32_t cg_wasm_init(uint32_t ptr, uint32_t len) {
    heap_init();
    if (ptr == 0 && len == 0) {
        if (!heap.embed_len) return error_reply(CG_E_ARG, NULL, 0);
        ptr = heap.embed;
        len = heap.embed_len;
    }
    if (!in_memory(ptr, len)) return error_reply(CG_E_ARG, NULL, 0);
    uint32_t at = 0; /* where a blob error is: the reply's "input": "blob", "offset" */
    int64_t need = cg_policy_mem_size(MEM(ptr), len, &at);
    if (need < 0) return error_reply((int)need, need == CG_E_ARG ? NULL : "blob", at);
    uint32_t mem = cg_alloc((uint32_t)need);
    if (!mem) return error_reply(CG_E_BLOB_MEMORY, NULL, 0);
    cg_policy *p;
    int rc = cg_policy_load(MEM(ptr), len, MEM(mem), (size_t)need, NULL, &p, &at);
    if (rc) {
        cg_dealloc(mem, (uint32_t)need);
        return error_reply(rc, rc == CG_E_ARG || rc == CG_E_BLOB_MEMORY ? NULL : "blob", at);
    }
    uint32_t ss = (uint32_t)cg_scratch_size(cg_policy_fields(p), cg_policy_max_keys(p),
                                            cg_policy_max_depth(p));
    uint32_t scratch = cg_alloc(ss);
    if (!scratch || cg_scratch_init(MEM(scratch), ss, cg_policy_fields(p),
                                    cg_policy_max_keys(p), cg_policy_max_depth(p)) ||
        cg_scratch_bind(MEM(scratch), p)) {
        cg_dealloc(mem, (uint32_t)need);
        if (scratch) cg_dealloc(scratch, ss);
        return error_reply(CG_E_BLOB_MEMORY, NULL, 0);
    }
    /* the swap: from here on the new policy decides; then the old one is freed */
    if (eng.policy) {
        cg_dealloc(eng.policy_mem, eng.policy_size);
        cg_dealloc(eng.scratch, eng.scratch_size);
    }
    eng.policy = p;
    eng.policy_mem = mem;
    eng.policy_size = (uint32_t)need;
    eng.scratch = scratch;
    eng.scratch_size = ss;
    reply r = begin(16);
    emit_s(&r, "{\"ok\":true}");
    return seal(&r);
}

static void *scratch_ptr(void) { return MEM(eng.scratch); }

/* The reason (and so the decision: the scratch keeps the outcome) of one request, as a
   full reply. in1 == 0 means the request form in in0. */
static uint32_t reply_for(uint32_t tool, uint32_t tool_len, uint32_t in0, uint32_t in0_len,
                          uint32_t in1, uint32_t in1_len) {
    char buf[512];
    char *out = buf;
    size_t cap = sizeof buf;
    uint32_t big = 0;
    for (;;) {
        int64_t n = in1 ? cg_reason_json(scratch_ptr(), (const char *)MEM(tool), tool_len,
                                         (const char *)MEM(in0), in0_len, (const char *)MEM(in1),
                                         in1_len, out, cap)
                        : cg_reason_request(scratch_ptr(), (const char *)MEM(in0), in0_len, out, cap);
        if (n < 0) {
            if (big) cg_dealloc(big, (uint32_t)cap);
            const char *where = !in1 ? "request" : cg_error_input(scratch_ptr()) ? "context" : "arguments";
            return error_reply((int)n, where, cg_error_offset(scratch_ptr()));
        }
        if ((uint64_t)n <= cap) {
            uint32_t resp = decision_reply(cg_last_result(scratch_ptr()), (const uint8_t *)out, (uint32_t)n);
            if (big) cg_dealloc(big, (uint32_t)cap);
            return resp;
        }
        if (big) cg_dealloc(big, (uint32_t)cap);
        big = cg_alloc((uint32_t)n);
        if (!big) return 0;
        out = (char *)MEM(big);
        cap = (size_t)n;
    }
}

__attribute__((export_name("evaluate"))) uint32_t cg_wasm_evaluate(uint32_t tool, uint32_t tool_len,
                                                                   uint32_t args, uint32_t args_len,
                                                                   uint32_t ctx, uint32_t ctx_len) {
    heap_init();
    if (!eng.policy) return error_reply(CG_E_ARG, NULL, 0);
    if (!in_memory(tool, tool_len) || !in_memory(args, args_len) || !in_memory(ctx, ctx_len) || !ctx)
        return error_reply(CG_E_ARG, NULL, 0);
    return reply_for(tool, tool_len, args, args_len, ctx, ctx_len);
}

__attribute__((export_name("request_buffer"))) uint32_t cg_wasm_request_buffer(uint32_t len) {
    heap_init();
    if (len <= eng.request_size && eng.request) return eng.request;
    uint32_t fresh = cg_alloc(len);
    if (!fresh) return 0;
    if (eng.request) cg_dealloc(eng.request, eng.request_size);
    eng.request = fresh;
    eng.request_size = len;
    return fresh;
}

__attribute__((export_name("decide"))) int32_t cg_wasm_decide(uint32_t ptr, uint32_t len) {
    if (!eng.policy) return CG_E_ARG;
    if (!in_memory(ptr, len)) return CG_E_ARG;
    int64_t rc = cg_eval_request(scratch_ptr(), (const char *)MEM(ptr), len);
    if (rc >= 0) rc &= CG_RESULT_MASK;
    return rc > 0x7fffffff ? CG_E_ARG : (int32_t)rc;
}

__attribute__((export_name("explain"))) uint32_t cg_wasm_explain(uint32_t ptr, uint32_t len) {
    heap_init();
    if (!eng.policy) return error_reply(CG_E_ARG, NULL, 0);
    if (!in_memory(ptr, len)) return error_reply(CG_E_ARG, NULL, 0);
    return reply_for(0, 0, ptr, len, 0, 0);
}

__attribute__((export_name("decide_json"))) int32_t cg_wasm_decide_json(uint32_t tool, uint32_t tool_len,
                                                                        uint32_t args, uint32_t args_len,
                                                                        uint32_t ctx, uint32_t ctx_len) {
    if (!eng.policy) return CG_E_ARG;
    if (!in_memory(tool, tool_len) || !in_memory(args, args_len) || !in_memory(ctx, ctx_len) || !ctx)
        return CG_E_ARG;
    int64_t rc = cg_eval_json(scratch_ptr(), (const char *)MEM(tool), tool_len, (const char *)MEM(args),
                              args_len, (const char *)MEM(ctx), ctx_len);
    if (rc >= 0) rc &= CG_RESULT_MASK;
    return rc > 0x7fffffff ? CG_E_ARG : (int32_t)rc;
}
