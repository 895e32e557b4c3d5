/*
 * cg_vm.c -- the (tool, role) lookup and the condition interpreter.
 *
 * The loader has verified every instruction, operand, jump and stack depth, so the loop
 * below trusts the code. Values are Kleene truth values (T, F, U); each stack entry also
 * carries the code offset of the leaf to blame for it, for reasons (docs/semantics.md).
 */
#include "cg_internal.h"
#include "cg_check.h"
#include "cg_num.h"

int32_t cg_find_entry(const cg_policy *p, cg_jstr tool, cg_jstr role) {
    uint32_t h = cg_entry_hash(cg_jstr_hash(tool), cg_jstr_hash(role));
    const uint32_t *slots = p->entry_slots;
    for (uint32_t i = h & p->entry_mask;; i = (i + 1) & p->entry_mask) {
        uint32_t e = slots[2 * i];
        if (e == 0) return -1;
        if (slots[2 * i + 1] != h) continue;
        uint32_t tl, rl;
        const uint8_t *t = cg_str(p, cg_entry_field(p, e - 1, CG_ENTRY_TOOL), &tl);
        const uint8_t *r = cg_str(p, cg_entry_field(p, e - 1, CG_ENTRY_ROLE), &rl);
        if (cg_jstr_eq_raw(tool, t, tl) && cg_jstr_eq_raw(role, r, rl)) return (int32_t)(e - 1);
    }
}

const cg_slot *cg_field_slot(const cg_scratch *s, uint32_t field) {
    CG_ASSERT(field < s->n_slots);
    const cg_slot *sl = &s->slots[field];
    return sl->gen == s->gen ? sl : NULL;
}

static cg_jstr slot_str(const cg_input *inputs, const cg_slot *sl) {
    cg_jstr j = {inputs[sl->input].base + sl->off + 1, sl->len - 2, sl->esc != 0};
    return j;
}

/* A path {base, n_tokens, display_sid, tokens...} walked from its base field, or from the
   current element (CG_ELEMENT, which the loader admits only inside a quantifier body). */
static bool path_value(const cg_policy *p, const cg_scratch *s, const cg_input *inputs,
                       const cg_slot *elem, uint32_t path, cg_slot *out) {
    uint32_t base = cg_word(p, path + CG_PATH_BASE);
    const cg_slot *b = base == CG_ELEMENT ? elem : cg_field_slot(s, base);
    if (!b) return false;
    *out = *b;
    return cg_path_walk(p, inputs, path, out);
}

/* A plain field (the v1 form, and the fast path) or a path. */
static inline const cg_slot *ref(const cg_policy *p, const cg_scratch *s, const cg_input *inputs,
                                 const cg_slot *elem, uint32_t operand, bool is_path,
                                 cg_slot *tmp) {
    if (!is_path) return cg_field_slot(s, operand);
    return path_value(p, s, inputs, elem, operand, tmp) ? tmp : NULL;
}

const cg_slot *cg_ref(const cg_policy *p, const cg_scratch *s, const cg_input *inputs,
                      const cg_slot *elem, uint32_t operand, bool is_path, cg_slot *tmp) {
    return ref(p, s, inputs, elem, operand, is_path, tmp);
}

uint32_t cg_ref_display(const cg_policy *p, uint32_t operand, bool is_path) {
    return is_path ? cg_word(p, operand + CG_PATH_DISPLAY) : cg_field_display(p, operand);
}

static bool set_contains(const cg_policy *p, uint32_t set, cg_jstr v) {
    CG_ASSERT(set < p->n_sets);
    const cg_set_index *ix = &p->set_index[set];
    const uint32_t *slots = p->set_slots + 2u * ix->slots;
    uint32_t h = cg_jstr_hash(v);
    for (uint32_t i = h & ix->mask;; i = (i + 1) & ix->mask) {
        uint32_t sid = slots[2 * i];
        if (sid == 0) return false;
        if (slots[2 * i + 1] != h) continue;
        uint32_t n;
        const uint8_t *m = cg_str(p, sid - 1, &n);
        if (cg_jstr_eq_raw(v, m, n)) return true;
    }
}

/* Integer literals of at most 15 characters are exact doubles: convert them directly
   (the common case, e.g. an amount) instead of going through the general conversion. */
static bool small_int(const uint8_t *s, uint32_t n, bool is_int, double *out) {
    if (!is_int || n > 15) return false;
    bool neg = s[0] == '-';
    int64_t v = 0;
    for (uint32_t i = neg; i < n; i++) v = v * 10 + (s[i] - '0');
    *out = neg ? -(double)v : (double)v;
    return true;
}

static double num_value(const cg_input *inputs, const cg_slot *x) {
    const uint8_t *lit = inputs[x->input].base + x->off;
    double d = 0;
    if (!small_int(lit, x->len, x->num_int, &d)) cg_num_to_double((const char *)lit, x->len, &d);
    return d;
}

/* x <cmp> numbers[k] (Between: numbers[k] <= x <= numbers[k + 1]) */
static bool compare(const cg_policy *p, double x, uint8_t cmp, uint32_t k) {
    double c = cg_number(p, k);
    switch (cmp) {
    case CG_CMP_LT: return x < c;
    case CG_CMP_LE: return x <= c;
    case CG_CMP_GT: return x > c;
    case CG_CMP_GE: return x >= c;
    case CG_CMP_NE: return x != c;
    case CG_CMP_BETWEEN: return c <= x && x <= cg_number(p, k + 1);
    case CG_CMP_EQ: return x == c;
    default: CG_UNREACHABLE(); return false; /* the loader admits CG_N_CMP values only */
    }
}

/* A number with an integral value (1.0 and 1e2 are; the literal rounds to a double first). */
static bool integral(const cg_input *inputs, const cg_slot *x) {
    if (x->num_int) return true;
    double d = num_value(inputs, x);
    if (d >= 4503599627370496.0 || d <= -4503599627370496.0) return true; /* 2^52 */
    return (double)(int64_t)d == d;
}

static bool has_type(const cg_input *inputs, const cg_slot *x, uint32_t ty) {
    switch (ty) {
    case CG_TY_STRING: return x->type == CG_J_STR;
    case CG_TY_NUMBER: return x->type == CG_J_NUM;
    case CG_TY_INTEGER: return x->type == CG_J_NUM && integral(inputs, x);
    case CG_TY_BOOLEAN: return x->type == CG_J_TRUE || x->type == CG_J_FALSE;
    case CG_TY_NULL: return x->type == CG_J_NULL;
    case CG_TY_ARRAY: return x->type == CG_J_ARR;
    case CG_TY_OBJECT: return x->type == CG_J_OBJ;
    default: CG_UNREACHABLE(); return false; /* the loader admits CG_N_TYPES values only */
    }
}

static uint8_t quant(const cg_policy *p, cg_scratch *s, const cg_input *inputs, uint32_t pc,
                     const cg_slot *elem, cg_qinfo *q);

/* Inside a quantifier body, work that does not depend on the element is repeated for every
   element: count the bytes read to reach and read such a value x (and, in quant(), each
   element) against the evaluation's bound, so nested loops over big inputs end in
   CG_E_WORK_LIMIT instead of running for hours. False once the bound is passed (the caller
   then gives U, and cg_run an error). */
static bool add_work(cg_scratch *s, const cg_input *inputs, uint64_t units) {
    if (s->work_gen != s->gen) { /* the first work of this evaluation */
        s->work_gen = s->gen;
        s->work = 0;
    }
    s->work += units;
    uint64_t limit = CG_WORK_BASE + (uint64_t)CG_WORK_PER_BYTE * ((uint64_t)inputs[0].len + inputs[1].len);
    if (s->work <= limit) return true;
    s->over_gen = s->gen; /* cg_api.c turns the evaluation into CG_E_WORK_LIMIT */
    return false;
}

static bool charge(cg_scratch *s, const cg_policy *p, const cg_input *inputs, uint32_t operand,
                   bool is_path, const cg_slot *x) {
    uint32_t base_field = is_path ? cg_word(p, operand + CG_PATH_BASE) : operand;
    if (base_field == CG_ELEMENT) return true; /* the element's own data: linear overall */
    const cg_slot *base = cg_field_slot(s, base_field);
    if (!base) return true;
    /* a path walks its base up to the value found, or all of it when nothing is found */
    return add_work(s, inputs, x ? (uint64_t)x->off + x->len - base->off : base->len);
}

static inline int leaf(const cg_policy *p, cg_scratch *s, const cg_input *inputs, uint32_t pc,
                       const cg_slot *elem) {
    const uint8_t *ins = cg_insn(p, pc);
    uint8_t op = ins[CG_INSN_OPCODE], fl = ins[CG_INSN_FLAGS];
    const uint8_t undetermined = (p->flags & CG_FLAG_PERSO) ? CG_V_F : CG_V_U;
    if (op == CG_OP_EVERY || op == CG_OP_SOME) return quant(p, s, inputs, pc, elem, NULL);
    uint32_t a0 = cg_insn_operand(ins, 0);
    cg_slot ta;
    const cg_slot *x = ref(p, s, inputs, elem, a0, (fl & CG_F_PATH_A) != 0, &ta);
    if (elem && !charge(s, p, inputs, a0, (fl & CG_F_PATH_A) != 0, x)) return CG_V_U;
    switch (op) {
    case CG_OP_NUM:
        if (!x || x->type != CG_J_NUM) return undetermined;
        return compare(p, num_value(inputs, x), fl & CG_F_CMP_MASK, cg_insn_operand(ins, 1)) ? CG_V_T
                                                                                                : CG_V_F;
    case CG_OP_IN: {
        if (!x || x->type != CG_J_STR) return undetermined;
        bool in = set_contains(p, cg_insn_operand(ins, 1), slot_str(inputs, x));
        return in != ((fl & CG_F_NOTIN) != 0) ? CG_V_T : CG_V_F;
    }
    case CG_OP_PRESENT:
        return x && x->type != CG_J_NULL ? CG_V_T : CG_V_F;
    case CG_OP_EQ: {
        cg_slot tb;
        uint32_t a1 = cg_insn_operand(ins, 1);
        const cg_slot *y = ref(p, s, inputs, elem, a1, (fl & CG_F_PATH_B) != 0, &tb);
        if (elem && !charge(s, p, inputs, a1, (fl & CG_F_PATH_B) != 0, y)) return CG_V_U;
        bool perso = (p->flags & CG_FLAG_PERSO) != 0;
        if (!x || !y) return undetermined;
        if (!perso && (x->type == CG_J_NULL || y->type == CG_J_NULL)) return CG_V_U;
        return cg_values_equal(inputs, s, x, y, perso) ? CG_V_T : CG_V_F;
    }
    case CG_OP_STR: {
        if (!x || x->type != CG_J_STR) return undetermined;
        cg_jstr v = slot_str(inputs, x);
        bool m = (fl & CG_F_STR_PATH) ? cg_pglob_match(p, cg_insn_operand(ins, 1), v)
                                      : cg_glob_match(p, cg_insn_operand(ins, 1), v);
        return m != ((fl & CG_F_STR_NOT) != 0) ? CG_V_T : CG_V_F;
    }
    case CG_OP_LEN: {
        uint32_t n;
        if (x && x->type == CG_J_STR) n = cg_str_length(slot_str(inputs, x));
        else if (x && x->type == CG_J_ARR) n = cg_array_length(inputs, x);
        else return undetermined;
        return compare(p, (double)n, fl & CG_F_CMP_MASK, cg_insn_operand(ins, 1)) ? CG_V_T : CG_V_F;
    }
    case CG_OP_TYPE:
        return x && has_type(inputs, x, cg_insn_operand(ins, 1)) ? CG_V_T : CG_V_F;
    case CG_OP_BOOL:
        if (!x || (x->type != CG_J_TRUE && x->type != CG_J_FALSE)) return undetermined;
        return (x->type == CG_J_TRUE) == (cg_insn_operand(ins, 1) != 0) ? CG_V_T : CG_V_F;
    case CG_OP_TIME: {
        uint32_t t;
        if (!x || !cg_instant(inputs, x, &t)) return undetermined;
        return cg_window_holds(p, cg_insn_operand(ins, 1), t) ? CG_V_T : CG_V_F;
    }
    case CG_OP_URL:
    case CG_OP_PATHCHK:
    case CG_OP_SQL: {
        if (!x || x->type != CG_J_STR) return undetermined;
        int r = op == CG_OP_URL       ? cg_url_check(p, cg_insn_operand(ins, 1), slot_str(inputs, x))
                : op == CG_OP_PATHCHK ? cg_path_check(p, cg_insn_operand(ins, 1), slot_str(inputs, x))
                                      : cg_sql_check(p, cg_insn_operand(ins, 1), slot_str(inputs, x));
        return r == CG_V_U ? undetermined : r;
    }
    default:
        CG_UNREACHABLE(); /* run() calls leaf() for the opcodes above only */
        return CG_V_U;
    }
}

int cg_leaf_eval(const cg_policy *p, cg_scratch *s, const cg_input *inputs, uint32_t pc) {
    return leaf(p, s, inputs, pc, NULL);
}

int cg_leaf_eval_el(const cg_policy *p, cg_scratch *s, const cg_input *inputs, uint32_t pc,
                    const cg_slot *elem) {
    return leaf(p, s, inputs, pc, elem);
}

typedef struct sv {
    uint8_t v;
    uint32_t blame;
} sv;

/* Kleene AND / OR of the accumulated value a and the next child b, with blame. */
static sv kand(sv a, sv b) {
    sv r;
    if (a.v == CG_V_F || b.v == CG_V_F) r = (sv){CG_V_F, a.v == CG_V_F ? a.blame : b.blame};
    else if (a.v == CG_V_U || b.v == CG_V_U) r = (sv){CG_V_U, a.v == CG_V_U ? a.blame : b.blame};
    else r = (sv){CG_V_T, a.blame};
    return r;
}
/* Neither T (F or U): the blame is this OR itself, so that a reason can name every branch
   that failed. */
static sv kor(sv a, sv b, uint32_t pc) {
    if (a.v == CG_V_T || b.v == CG_V_T) return (sv){CG_V_T, a.v == CG_V_T ? a.blame : b.blame};
    return (sv){(a.v == CG_V_U || b.v == CG_V_U) ? CG_V_U : CG_V_F, CG_BLAME_GROUP | pc};
}

/* Runs code from pc to its RET (a rule) or ENDQ (a quantifier body, elem its element).
   Quantifiers recurse through quant(), at most CG_MAX_QUANT deep (the loader checks).
   stop is CG_NONE, or for reasons the offset of the JT or OR just after one operand of an
   Any: the run ends there with that operand's value (cg_operand_eval). */
static sv run(const cg_policy *p, cg_scratch *s, const cg_input *inputs, uint32_t pc,
              const cg_slot *elem, uint32_t stop) {
    sv st[CG_MAX_STACK];
    int sp = 0;
/* the loader checked every depth: these state it where the bug hunt compiles them in */
#define PUSH(value, blame)                                                                     \
    do {                                                                                       \
        CG_ASSERT(sp < CG_MAX_STACK);                                                          \
        st[sp++] = (sv){(value), (blame)};                                                     \
    } while (0)
    for (;;) {
        const uint8_t *ins = cg_insn(p, pc);
        uint8_t op = ins[CG_INSN_OPCODE];
        switch (op) {
        case CG_OP_TRUE:
        case CG_OP_FALSE:
            PUSH(op == CG_OP_TRUE ? CG_V_T : CG_V_F, CG_NONE);
            pc += CG_LEN(TRUE);
            break;
        case CG_OP_NUM:
        case CG_OP_LEN:
        case CG_OP_TYPE:
        case CG_OP_TIME:
            PUSH((uint8_t)leaf(p, s, inputs, pc, elem), pc);
            pc += CG_LEN(NUM); /* all four have NUM's three operands */
            break;
        case CG_OP_IN:
        case CG_OP_EQ:
        case CG_OP_URL:
        case CG_OP_PATHCHK:
        case CG_OP_SQL:
        case CG_OP_BOOL:
            PUSH((uint8_t)leaf(p, s, inputs, pc, elem), pc);
            pc += CG_LEN(IN); /* all six have IN's two operands */
            break;
        case CG_OP_PRESENT:
            PUSH((uint8_t)leaf(p, s, inputs, pc, elem), pc);
            pc += CG_LEN(PRESENT);
            break;
        case CG_OP_STR:
            PUSH((uint8_t)leaf(p, s, inputs, pc, elem), pc);
            pc += CG_LEN(STR);
            break;
        case CG_OP_EVERY:
        case CG_OP_SOME:
            PUSH(quant(p, s, inputs, pc, elem, NULL), pc);
            pc = cg_insn_operand(ins, 1); /* just after the body's ENDQ */
            break;
        case CG_OP_NOT:
            CG_ASSERT(sp >= 1);
            if (st[sp - 1].v != CG_V_U) st[sp - 1].v ^= 1; /* T <-> F */
            pc += CG_LEN(NOT);
            break;
        case CG_OP_AND:
            CG_ASSERT(sp >= 2);
            sp--;
            st[sp - 1] = kand(st[sp - 1], st[sp]);
            pc += CG_LEN(AND);
            break;
        case CG_OP_OR:
            if (pc == stop) return st[0];
            CG_ASSERT(sp >= 2);
            sp--;
            st[sp - 1] = kor(st[sp - 1], st[sp], pc);
            pc += CG_LEN(OR);
            break;
        case CG_OP_JF:
            CG_ASSERT(sp >= 1);
            if (st[sp - 1].v != CG_V_F) {
                pc += CG_LEN(JF);
                break;
            }
            pc = cg_insn_operand(ins, 0);
            if (pc > stop) return st[sp - 1]; /* leaves the operand (not compiler output) */
            break;
        case CG_OP_JT:
            if (pc == stop) return st[0];
            CG_ASSERT(sp >= 1);
            if (st[sp - 1].v != CG_V_T) {
                pc += CG_LEN(JT);
                break;
            }
            pc = cg_insn_operand(ins, 0);
            if (pc > stop) return st[sp - 1]; /* leaves the operand (not compiler output) */
            break;
        case CG_OP_RET:
        case CG_OP_ENDQ:
            CG_ASSERT(sp == 1);
            return st[0];
        default:
            CG_UNREACHABLE(); /* the loader admits no other opcode */
            return st[0];
        }
    }
#undef PUSH
}

static sv run_code(const cg_policy *p, cg_scratch *s, const cg_input *inputs, uint32_t pc) {
    return run(p, s, inputs, pc, NULL, CG_NONE);
}

/* Every / Some at pc over the array that ref a names: the body (just after the instruction)
   runs once per element, in order, until an element decides (F for Every, T for Some).
   q, when given, receives the deciding element: that one, else the first U one. */
static uint8_t quant(const cg_policy *p, cg_scratch *s, const cg_input *inputs, uint32_t pc,
                     const cg_slot *elem, cg_qinfo *q) {
    const uint8_t *ins = cg_insn(p, pc);
    bool every = ins[CG_INSN_OPCODE] == CG_OP_EVERY;
    const uint8_t undetermined = (p->flags & CG_FLAG_PERSO) ? CG_V_F : CG_V_U;
    const uint8_t decisive = every ? CG_V_F : CG_V_T;
    if (q) q->index = CG_NONE;
    cg_slot ta;
    uint32_t a0 = cg_insn_operand(ins, 0);
    bool path_a = (ins[CG_INSN_FLAGS] & CG_F_PATH_A) != 0;
    const cg_slot *x = ref(p, s, inputs, elem, a0, path_a, &ta);
    if (elem && !charge(s, p, inputs, a0, path_a, x)) return CG_V_U;
    if (!x || x->type != CG_J_ARR) return undetermined;
    const uint8_t *b = inputs[x->input].base;
    uint32_t len = inputs[x->input].len, pos = x->off + 1, body = pc + CG_LEN(EVERY);
    uint8_t acc = every ? CG_V_T : CG_V_F;
    for (uint32_t i = 0;; i++) {
        pos = cg_skip_ws(b, pos, len);
        if (b[pos] == ']') return acc;
        if (!add_work(s, inputs, 1)) return CG_V_U;
        cg_slot e;
        e.gen = s->gen;
        e.input = x->input;
        pos = cg_value_at(b, pos, len, &e);
        sv r = run(p, s, inputs, body, &e, CG_NONE);
        if (r.v == decisive || (r.v == CG_V_U && acc != CG_V_U)) {
            if (q) {
                q->index = i;
                q->blame = r.blame;
                q->value = r.v;
                q->elem = e;
            }
            if (r.v == decisive) return r.v;
            acc = CG_V_U;
        }
        pos = cg_skip_ws(b, pos, len);
        if (b[pos] == ',') pos++;
    }
}

/* Reasons evaluate parts of a condition again, after the evaluation: each such part starts
   with no work counted, so it does at most the work it did then and reaches the same value. */
static void forget_work(cg_scratch *s) {
    s->work_gen = s->gen;
    s->work = 0;
}

int cg_quant_eval(const cg_policy *p, cg_scratch *s, const cg_input *inputs, uint32_t pc,
                  const cg_slot *elem, cg_qinfo *q) {
    forget_work(s);
    return quant(p, s, inputs, pc, elem, q);
}

int cg_operand_eval(const cg_policy *p, cg_scratch *s, const cg_input *inputs, uint32_t pc,
                    uint32_t stop, const cg_slot *elem, uint32_t *blame) {
    forget_work(s);
    sv r = run(p, s, inputs, pc, elem, stop);
    *blame = r.blame;
    return r.v;
}

/* The tier default of a tool, or -1. */
static int32_t find_default(const cg_policy *p, cg_jstr tool) {
    if (p->n_defaults == 0) return -1;
    uint32_t h = cg_jstr_hash(tool);
    const uint32_t *slots = p->default_slots;
    for (uint32_t i = h & p->default_mask;; i = (i + 1) & p->default_mask) {
        uint32_t d = slots[2 * i];
        if (d == 0) return -1;
        if (slots[2 * i + 1] != h) continue;
        uint32_t n;
        const uint8_t *t = cg_str(p, cg_default_field(p, d - 1, CG_DEFAULT_TOOL), &n);
        if (cg_jstr_eq_raw(tool, t, n)) return (int32_t)(d - 1);
    }
}

/* The precedence of docs/policy-v2.md. The entry's rules come ordered deny, allow, elevate
   (approvals descending), which the loader checked, so the first rule that applies decides. */
int cg_decide(const cg_policy *p, cg_scratch *s, const cg_input *inputs, int32_t entry,
              cg_outcome *out) {
    out->entry = entry;
    out->blame = CG_NONE;
    out->blame_value = CG_V_T;
    out->had_condition = 0;
    out->approvals = 0;
    out->tier_default = -1;
    if (entry >= 0) {
        uint32_t first = cg_entry_field(p, (uint32_t)entry, CG_ENTRY_FIRST);
        uint32_t n = cg_entry_field(p, (uint32_t)entry, CG_ENTRY_COUNT);
        uint32_t first_grant = CG_NONE, n_grants = 0;
        sv grant_result = {CG_V_F, CG_NONE};
        for (uint32_t k = 0; k < n; k++) {
            uint32_t slot = first + k;
            uint32_t len = cg_rule_field(p, slot, CG_RULE_LENGTH), effect = cg_rule_field(p, slot, CG_RULE_EFFECT);
            uint32_t decision = CG_EFFECT_DECISION(effect);
            sv res = len ? run_code(p, s, inputs, cg_rule_field(p, slot, CG_RULE_CODE)) : (sv){CG_V_T, CG_NONE};
            /* a deny applies unless its condition is F: one that cannot be evaluated denies */
            bool applies = decision == CG_DENY ? res.v != CG_V_F : res.v == CG_V_T;
            if (applies) {
                out->decision = (int32_t)decision;
                out->approvals = (uint8_t)CG_EFFECT_APPROVALS(effect);
                out->by = decision == CG_DENY ? CG_BY_DENY
                          : decision == CG_ALLOW ? CG_BY_ALLOW : CG_BY_ELEVATE;
                out->rule = (int32_t)cg_rule_field(p, slot, CG_RULE_INDEX);
                out->rule_slot = slot;
                out->had_condition = len != 0;
                out->blame = res.blame;
                out->blame_value = res.v;
                return out->decision;
            }
            if (decision != CG_DENY && n_grants++ == 0) {
                first_grant = first + k;
                grant_result = res;
            }
        }
        out->n_grants = n_grants;
        if (n_grants) { /* grants cover the pair and none applied: deny, explained by the first */
            out->decision = CG_DENY;
            out->by = CG_BY_NO_GRANT;
            out->rule = (int32_t)cg_rule_field(p, first_grant, CG_RULE_INDEX);
            out->rule_slot = first_grant;
            out->had_condition = 1;
            out->blame = grant_result.blame;
            out->blame_value = grant_result.v;
            return CG_DENY;
        }
    }
    out->by = CG_BY_DEFAULT;
    out->rule = -1;
    out->rule_slot = CG_NONE;
    int32_t d = find_default(p, s->tool);
    if (d >= 0) {
        uint32_t effect = cg_default_field(p, (uint32_t)d, CG_DEFAULT_EFFECT);
        out->tier_default = d;
        out->decision = (int32_t)CG_EFFECT_DECISION(effect);
        out->approvals = (uint8_t)CG_EFFECT_APPROVALS(effect);
    } else {
        out->decision = (p->flags & CG_FLAG_DEFAULT_ALLOW) ? CG_ALLOW : CG_DENY;
    }
    return out->decision;
}
