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
 * cffi reads this header and cg_event.h (the audit event builder): the parts between their
 * CDEF markers must stay in the subset of C that cffi's cdef parser accepts (plain
 * constants, structs, prototypes).
 */
#ifndef CALLGATE_H
#define CALLGATE_H

#include <stddef.h>
#include <stdint.h>

#include "cg_errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CDEF BEGIN */
#define CG_ABI_VERSION 3           /* bumped when this API or the blob format changes */
#define CG_BLOB_FORMAT 3           /* blob format version written in the blob header */

/* Decisions (low 2 bits of a cg_eval_* return value; bits 2-3 hold the approvals an
   Elevate needs, bits 4-39 the deciding rule + 1). */
#define CG_DENY 0
#define CG_ALLOW 1
#define CG_ELEVATE 2

/* Error codes: always negative (cg_errors.h lists them; the build adds their CG_E_*
   constants here for the binding, csrc/cg_errors.h's CG_ERRORS). A blob error records the
   blob offset of the field at fault in *err_offset. */
/* CG_ERRORS */

/* The instruction set of compiled conditions (cg_opcodes.h's one list), for the compiler
   and the disassembler: opcode op's name, operand count, stack effect and the flag bits it
   takes. 0, or CG_E_ARG for an op past the last. */
typedef struct cg_opcode_info {
    const char *name;
    uint32_t operands;
    int32_t stack_effect;
    uint32_t flags;
    const char *meaning;
} cg_opcode_info;
int cg_opcode(uint32_t op, cg_opcode_info *out);

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
   evaluation. On a CG_E_BLOB_* error, *err_offset (when err_offset is not NULL) receives
   the blob offset of the field at fault: a header field, a record's field, a descriptor
   word, an instruction's byte or operand (CG_E_BLOB_SIZES: 16, the counts as a whole). */
int64_t cg_policy_mem_size(const uint8_t *blob, size_t len, uint32_t *err_offset);
int cg_policy_load(const uint8_t *blob, size_t len, void *mem, size_t mem_len,
                   const cg_limits *limits, cg_policy **out, uint32_t *err_offset);

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
              resource_attributes]` (a 6th element, the context object, and after it a
              7th, the verified principal chain object, are optional; either may be null);
     json:    the tool as raw UTF-8, the arguments JSON and the context JSON
              `{"role": ..., "agent_attrs": {...}, "resource_attrs": {...}}` (plus
              optional "context" and "principal" objects), the perso wasm ABI's shape. */
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

const char *cg_strerror(int code);   /* a sentence: "duplicate key in a JSON object" */
const char *cg_errname(int code);    /* an identifier: "duplicate_key" */
/* CDEF END */

#ifdef __cplusplus
}
#endif
#endif /* CALLGATE_H */
