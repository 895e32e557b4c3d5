/*
 * callgate.h -- the public C API of the callgate core.
 *
 * The core decides whether a tool call may run, given a compiled policy blob (made by
 * the Python compiler, see cg_opcodes.h for the layout) and the request as JSON text.
 *
 * Memory: the core never allocates. The caller gives it
 *   - one buffer for a loaded policy (size from cg_policy_mem_size), immutable after
 *     cg_policy_load and safe to share between threads;
 *   - one scratch buffer per thread (size from cg_scratch_size), reused across calls.
 * Errors are negative return codes (CG_E_*) with a static message (cg_strerror) and,
 * for request JSON, the byte offset of the problem. Nothing prints, aborts or longjmps.
 *
 * This is the only header cffi reads: the part between the CDEF markers must stay in
 * the subset of C that cffi's cdef parser accepts (plain constants, structs, prototypes).
 */
#ifndef CALLGATE_H
#define CALLGATE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CDEF BEGIN */
#define CG_ABI_VERSION 2           /* bumped when this API or the blob format changes */
#define CG_BLOB_FORMAT 3           /* blob format version written in the blob header */

/* Decisions (low 2 bits of a cg_eval_* return value; bits 2-3 hold the approvals an
   Elevate needs, bits 4-39 the deciding rule + 1). */
#define CG_DENY 0
#define CG_ALLOW 1
#define CG_ELEVATE 2

/* Error codes: always negative. Request JSON errors first, then policy blob errors. */
#define CG_E_SYNTAX -1             /* malformed JSON */
#define CG_E_TRUNCATED -2          /* input ends inside a value */
#define CG_E_TRAILING -3           /* bytes after the top-level value */
#define CG_E_DEPTH -4              /* nesting deeper than max_depth */
#define CG_E_TOO_LARGE -5          /* input longer than max_bytes */
#define CG_E_DUPLICATE_KEY -6      /* the same key twice in one object */
#define CG_E_NUMBER_RANGE -7       /* a number that rounds to infinity (1e400) */
#define CG_E_NONFINITE -8          /* NaN, Infinity, -Infinity */
#define CG_E_UTF8 -9               /* invalid UTF-8: overlong, surrogate, > U+10FFFF, truncated */
#define CG_E_SURROGATE -10         /* \uD800-\uDFFF escape without its pair */
#define CG_E_CONTROL_CHAR -11      /* unescaped U+0000..U+001F inside a string */
#define CG_E_ESCAPE -12            /* unknown escape or bad \u hex digits */
#define CG_E_TOO_MANY_KEYS -13     /* more than max_keys keys in the objects open at once */
#define CG_E_TYPE -14              /* arguments/attributes/role of the wrong JSON type */
#define CG_E_NO_ROLE -15           /* context JSON without a "role" */
#define CG_E_SCRATCH -16           /* scratch buffer too small for this policy: grow and retry */
#define CG_E_ARG -17               /* NULL pointer or length out of range from the caller */
#define CG_E_WORK_LIMIT -18        /* Every/Some work beyond CG_WORK_PER_BYTE per request byte */
#define CG_E_BLOB_MAGIC -32        /* not a callgate policy blob */
#define CG_E_BLOB_VERSION -33      /* blob format version this core does not read */
#define CG_E_BLOB_TRUNCATED -34    /* blob shorter than its header says */
#define CG_E_BLOB_CHECKSUM -35     /* CRC-32 mismatch: the blob was altered */
#define CG_E_BLOB_BOUNDS -36       /* an offset, index or count out of range */
#define CG_E_BLOB_OPCODE -37       /* unknown opcode or flag bits */
#define CG_E_BLOB_JUMP -38         /* a jump that is not forward, or lands inside an instruction */
#define CG_E_BLOB_STACK -39        /* condition code with an unbalanced or too deep stack */
#define CG_E_BLOB_DUPLICATE -40    /* the same (tool, role), field or set member twice */
#define CG_E_BLOB_MEMORY -41       /* the buffer given to cg_policy_load is too small */

/* Request limits, fixed per loaded policy (per engine). 0 selects the default. */
typedef struct cg_limits {
    uint32_t max_bytes;            /* each JSON input; default 16 MiB */
    uint32_t max_depth;            /* nesting of one value; default 128, at most 1024 */
    uint32_t max_keys;             /* keys in objects open at one time; default 65536 */
} cg_limits;

typedef struct cg_policy cg_policy;    /* opaque: lives inside the caller's policy buffer */

/* Loading. cg_policy_mem_size verifies the blob header and returns the bytes needed (or
   a negative error); cg_policy_load verifies everything else, copies the blob into mem
   and builds the hash indexes there. The caller owns mem and frees it after the last
   evaluation. */
int64_t cg_policy_mem_size(const uint8_t *blob, size_t len);
int cg_policy_load(const uint8_t *blob, size_t len, void *mem, size_t mem_len,
                   const cg_limits *limits, cg_policy **out);

/* Facts about a loaded policy. */
uint32_t cg_policy_fields(const cg_policy *p);     /* slots a scratch needs */
uint32_t cg_policy_max_keys(const cg_policy *p);
uint32_t cg_policy_max_depth(const cg_policy *p);

/* Scratch: per thread, reusable for any policy whose needs it covers. */
size_t cg_scratch_size(uint32_t n_fields, uint32_t max_keys, uint32_t max_depth);
int cg_scratch_init(void *mem, size_t mem_len, uint32_t n_fields, uint32_t max_keys,
                    uint32_t max_depth);

/* Binds a scratch to the policy it will evaluate (CG_E_SCRATCH if it is too small). */
int cg_scratch_bind(void *scratch, const cg_policy *p);

/* Set in a cg_eval_request result when the request text held a JSON null: a host whose
   serializer writes NaN or infinities as null (orjson) looks for them only then. */
#define CG_RESULT_SAW_NULL 1099511627776
#define CG_RESULT_MASK 1099511627775
#define CG_RESULT_RULE_SHIFT 4

/* Evaluation with a bound scratch. Returns a negative CG_E_* code, or
   (rule + 1) << 4 | approvals << 2 | decision (bits 0-39), where rule is the deciding
   rule's index in the source policy (rule + 1 == 0: a default decided) and approvals the
   count an Elevate needs (0 otherwise), plus CG_RESULT_SAW_NULL. Two request forms:
     request: one JSON array `["tool", "role", arguments, agent_attributes,
              resource_attributes]` (a 6th element, the context object, is optional);
     json:    the tool as raw UTF-8, the arguments JSON and the context JSON
              `{"role": ..., "agent_attrs": {...}, "resource_attrs": {...}}`, the perso
              wasm ABI's shape. */
int64_t cg_eval_request(void *scratch, const char *request, size_t len);
int64_t cg_eval_json(void *scratch, const char *tool, size_t tool_len,
                     const char *args, size_t args_len, const char *ctx, size_t ctx_len);

/* After a cg_eval_* call that failed with a request error: the byte offset of the
   problem in the input it was reading, and which input (0 request/arguments, 1 context). */
uint32_t cg_error_offset(const void *scratch);
uint32_t cg_error_input(const void *scratch);

/* The exact reason text (docs/semantics.md) for a request: it evaluates the request again
   (so the hot path never pays for reasons) and formats the outcome. Writes at most cap
   bytes of UTF-8 into out and returns the full length (a caller may retry with a larger
   buffer), or a negative error. */
int64_t cg_reason_request(void *scratch, const char *request, size_t len, char *out, size_t cap);
int64_t cg_reason_json(void *scratch, const char *tool, size_t tool_len, const char *args,
                       size_t args_len, const char *ctx, size_t ctx_len, char *out, size_t cap);

/* The encoded result (as cg_eval_* returns it) of the last evaluation with this scratch,
   including the one a cg_reason_* call runs. */
int64_t cg_last_result(const void *scratch);

/* ---- audit events (cg_event.c, docs/audit.md) ----
   cg_event_build writes the sealed-record lines of a batch of decision events, each
   {"hash":"<64 placeholder bytes>","record":<canonical event JSON>}\n, from the request
   bytes that were evaluated; the caller hashes each record and writes the hashes in with
   cg_event_fill_hashes. It stops early with `stop` set: CG_EVENT_STOP_FULL (an output or
   work buffer is full: grow it, call again from `at`) or CG_EVENT_STOP_PYTHON (event
   `at` holds something only the Python builder reproduces: build that one there). */
#define CG_EVENT_STOP_NONE 0
#define CG_EVENT_STOP_FULL 1
#define CG_EVENT_STOP_PYTHON 2
#define CG_EVENT_NONE 4294967295     /* a people span for None */
#define CG_EVENT_INFO_WORDS 6        /* info per event: line end, then cols offsets (see below) */

typedef struct cg_event_member {     /* work space: one member of an object being sorted */
    uint32_t key_off, key_len, value, esc;
} cg_event_member;

typedef struct cg_event_batch {
    /* what was decided */
    const char *requests;            /* every event's request bytes, back to back */
    size_t requests_len;
    const uint32_t *spans;           /* per event: form 0 one length (the request form),
                                        form 1 three (tool, arguments, context: the json form) */
    uint32_t form;
    uint32_t n;                      /* events in the batch */
    const int64_t *results;          /* per event: what cg_eval_* returned */
    const int64_t *times_ns;         /* per event: Unix time of the decision in ns */
    const char *random;              /* per event: 16 random bytes for its UUID */
    const char *people;              /* every event's principal, then every event's trace id, */
    size_t people_len;               /* as UTF-8, back to back */
    const uint32_t *people_spans;    /* 2n lengths, in that order (CG_EVENT_NONE: None) */
    const char *fixed[4];            /* canonical JSON of chain, engine_version, policy_digest, */
    size_t fixed_len[4];             /* policy_version, written as given */
    uint64_t first_seq;              /* seq of event 0 */
    /* work space */
    char *tmp;                       /* the reason text */
    size_t tmp_cap;
    cg_event_member *work;
    uint32_t work_cap;
    /* results */
    char *out;                       /* lines are appended at out_len */
    size_t out_cap, out_len;
    char *cols;                      /* timestamp, tool and role text, appended at cols_len */
    size_t cols_cap, cols_len;
    uint32_t *info;                  /* per event: line end, timestamp at, tool at, tool length,
                                        role at, role length (CG_EVENT_NONE: not a string) */
    uint32_t at;                     /* in: the first event to build; out: the first not built */
    uint32_t stop;                   /* CG_EVENT_STOP_* */
} cg_event_batch;

/* Returns the first event not built (batch->at), or a negative CG_E_ARG for an
   inconsistent batch. */
int64_t cg_event_build(void *scratch, cg_event_batch *batch);
/* Writes n 32-byte digests (back to back) as hex into the placeholders of lines
   first..first+n-1 (ends from info), the first of which starts at line_start in out;
   CG_E_ARG if a line would not lie within out_len. At most 2^24 events per call. */
int cg_event_fill_hashes(char *out, size_t out_len, const uint32_t *info, uint32_t first, uint32_t n,
                         uint32_t line_start, const uint8_t *digests);

const char *cg_strerror(int code);   /* a sentence: "duplicate key in a JSON object" */
const char *cg_errname(int code);    /* an identifier: "duplicate_key" */
/* CDEF END */

#ifdef __cplusplus
}
#endif
#endif /* CALLGATE_H */
