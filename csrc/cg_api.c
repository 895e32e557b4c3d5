/*
 * cg_api.c -- the public entry points: scratch set-up, evaluation, reasons, errors.
 *
 * Every pointer and length from the caller is checked here before the reader sees it.
 */
#include "cg_internal.h"

size_t cg_format_reason(const cg_policy *p, cg_scratch *s, const cg_input *in, char *out,
                        size_t cap);

static size_t round8(size_t n) { return (n + 7) & ~(size_t)7; }

size_t cg_scratch_size(uint32_t n_fields, uint32_t max_keys, uint32_t max_depth) {
    return round8(sizeof(cg_scratch)) + round8((size_t)n_fields * sizeof(cg_slot)) +
           round8((size_t)2 * max_keys * sizeof(cg_key)) + round8((size_t)max_depth * 4);
}

int cg_scratch_init(void *mem, size_t mem_len, uint32_t n_fields, uint32_t max_keys,
                    uint32_t max_depth) {
    if (!mem || (uintptr_t)mem % 8 != 0) return CG_E_ARG;
    if (max_depth > CG_LIMIT_MAX_DEPTH || max_keys > (1u << 24) || n_fields > (1u << 28))
        return CG_E_ARG;
    if (mem_len < cg_scratch_size(n_fields, max_keys, max_depth)) return CG_E_SCRATCH;
    uint8_t *b = mem;
    cg_scratch *s = mem;
    cg_memset(s, 0, sizeof *s);
    s->magic = CG_SCRATCH_MAGIC;
    s->n_slots = n_fields;
    s->max_keys = max_keys;
    s->max_depth = max_depth;
    s->gen = 1;
    size_t at = round8(sizeof(cg_scratch));
    s->slots = (cg_slot *)(b + at);
    cg_memset(s->slots, 0, (size_t)n_fields * sizeof(cg_slot));
    at += round8((size_t)n_fields * sizeof(cg_slot));
    s->keys = (cg_key *)(b + at);
    at += round8((size_t)2 * max_keys * sizeof(cg_key));
    s->stack = (uint32_t *)(b + at);
    return 0;
}

int cg_scratch_bind(void *scratch, const cg_policy *p) {
    cg_scratch *s = scratch;
    if (!s || s->magic != CG_SCRATCH_MAGIC || !p || p->magic != CG_POLICY_MAGIC) return CG_E_ARG;
    if (s->n_slots < p->n_fields || s->max_keys < p->limits.max_keys ||
        s->max_depth < p->limits.max_depth)
        return CG_E_SCRATCH;
    s->policy = p;
    return 0;
}

/* Reads the request (one input, or arguments + context) and decides. s->tool must already
   be set for the json form. */
int cg_run(cg_scratch *s, const uint8_t *in0, size_t in0_len, const uint8_t *in1, size_t in1_len,
           cg_input inputs[2]) {
    if (!s || s->magic != CG_SCRATCH_MAGIC || !s->policy) return CG_E_ARG;
    const cg_policy *p = s->policy;
    if (!in0) return CG_E_ARG;
    s->err_offset = 0;
    s->err_input = 0;
    s->saw_null = 0;
    if (in0_len > p->limits.max_bytes) return CG_E_TOO_LARGE;
    if (in1 && in1_len > p->limits.max_bytes) {
        s->err_input = 1;
        return CG_E_TOO_LARGE;
    }
    /* a new generation invalidates every slot of the previous call at once */
    if (++s->gen == 0) {
        for (uint32_t i = 0; i < s->n_slots; i++) s->slots[i].gen = 0;
        s->gen = 1;
        s->work_gen = s->over_gen = 0;
    }
    inputs[0] = (cg_input){in0, (uint32_t)in0_len, 0};
    inputs[1] = (cg_input){in1, (uint32_t)in1_len, 1};
    int rc = in1 ? cg_read_json(p, s, inputs[0], inputs[1]) : cg_read_request(p, s, inputs[0]);
    if (rc) return rc;
    int32_t entry = cg_find_entry(p, s->tool, s->role);
    return cg_decide(p, s, inputs, entry, &s->last);
}

/* (rule + 1) << 4 | approvals << 2 | decision: one integer crosses the boundary. */
static int64_t result_of(const cg_outcome *o) {
    return ((int64_t)o->rule + 1) << CG_RESULT_RULE_SHIFT | (int64_t)o->approvals << 2 |
           o->decision;
}

/* An evaluation that passed its work bound (cg_vm.c) gives no decision. */
static int finished(const cg_scratch *s, int rc) {
    return rc >= 0 && s->over_gen == s->gen ? CG_E_WORK_LIMIT : rc;
}

static int64_t encode(const cg_scratch *s, int rc) {
    rc = finished(s, rc);
    if (rc < 0) return rc;
    return result_of(&s->last) | (s->saw_null ? CG_RESULT_SAW_NULL : 0);
}

/* The json form's tool comes as raw UTF-8 bytes: check them here. */
static int set_raw_tool(cg_scratch *s, const char *tool, size_t tool_len) {
    if (!s || s->magic != CG_SCRATCH_MAGIC || !s->policy) return CG_E_ARG;
    if ((!tool && tool_len) || tool_len > s->policy->limits.max_bytes) return CG_E_ARG;
    if (!cg_utf8_valid((const uint8_t *)tool, tool_len)) return CG_E_UTF8;
    s->tool = (cg_jstr){(const uint8_t *)(tool ? tool : ""), (uint32_t)tool_len, false};
    return 0;
}

int64_t cg_eval_request(void *scratch, const char *request, size_t len) {
    cg_input in[2];
    return encode(scratch, cg_run(scratch, (const uint8_t *)request, len, NULL, 0, in));
}

int64_t cg_eval_json(void *scratch, const char *tool, size_t tool_len, const char *args,
                     size_t args_len, const char *ctx, size_t ctx_len) {
    cg_input in[2];
    int rc = set_raw_tool(scratch, tool, tool_len);
    if (rc) return rc;
    if (!ctx) return CG_E_ARG;
    int64_t out = encode(scratch, cg_run(scratch, (const uint8_t *)args, args_len, (const uint8_t *)ctx,
                                         ctx_len, in));
    return out < 0 ? out : out & CG_RESULT_MASK; /* JSON text from the host: no NaN to look for */
}

static int64_t reason_after(cg_scratch *s, int rc, const cg_input *in, char *out, size_t cap) {
    rc = finished(s, rc);
    if (rc < 0) return rc;
    return (int64_t)cg_format_reason(s->policy, s, in, out, cap);
}

int64_t cg_reason_request(void *scratch, const char *request, size_t len, char *out, size_t cap) {
    cg_input in[2];
    if (!out && cap) return CG_E_ARG;
    int rc = cg_run(scratch, (const uint8_t *)request, len, NULL, 0, in);
    return reason_after(scratch, rc, in, out, cap);
}

int64_t cg_reason_json(void *scratch, const char *tool, size_t tool_len, const char *args,
                       size_t args_len, const char *ctx, size_t ctx_len, char *out, size_t cap) {
    cg_input in[2];
    if (!out && cap) return CG_E_ARG;
    int rc = set_raw_tool(scratch, tool, tool_len);
    if (rc) return rc;
    if (!ctx) return CG_E_ARG;
    rc = cg_run(scratch, (const uint8_t *)args, args_len, (const uint8_t *)ctx, ctx_len, in);
    return reason_after(scratch, rc, in, out, cap);
}

int64_t cg_last_result(const void *scratch) {
    const cg_scratch *s = scratch;
    if (!s || s->magic != CG_SCRATCH_MAGIC) return CG_E_ARG;
    return result_of(&s->last);
}

uint32_t cg_error_offset(const void *scratch) {
    const cg_scratch *s = scratch;
    return s && s->magic == CG_SCRATCH_MAGIC ? s->err_offset : 0;
}

uint32_t cg_error_input(const void *scratch) {
    const cg_scratch *s = scratch;
    return s && s->magic == CG_SCRATCH_MAGIC ? s->err_input : 0;
}

const char *cg_strerror(int code) {
    switch (code) {
    case 0: return "ok";
#define CG_ERROR_MESSAGE(NAME, code, name, message) case CG_E_##NAME: return message;
        CG_ERRORS(CG_ERROR_MESSAGE)
#undef CG_ERROR_MESSAGE
    default: return "unknown error";
    }
}

const char *cg_errname(int code) {
    switch (code) {
    case 0: return "ok";
#define CG_ERROR_NAME(NAME, code, name, message) case CG_E_##NAME: return name;
        CG_ERRORS(CG_ERROR_NAME)
#undef CG_ERROR_NAME
    default: return "unknown";
    }
}

int cg_opcode(uint32_t op, cg_opcode_info *out) {
    static const char *const names[CG_N_OPCODES] = {
#define CG_OP_NAME(name, n, eff, fl, doc) #name,
        CG_OPCODES(CG_OP_NAME)
#undef CG_OP_NAME
    };
    static const char *const meanings[CG_N_OPCODES] = {
#define CG_OP_DOC(name, n, eff, fl, doc) doc,
        CG_OPCODES(CG_OP_DOC)
#undef CG_OP_DOC
    };
    if (!out || op >= CG_N_OPCODES) return CG_E_ARG;
    out->name = names[op];
    out->operands = cg_op_operands(op);
    out->stack_effect = cg_op_effect(op);
    out->flags = cg_op_flags(op);
    out->meaning = meanings[op];
    return 0;
}
