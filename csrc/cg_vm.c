/*
 * cg_vm.c -- the (tool, role) lookup and the condition interpreter.
 *
 * The loader has verified every instruction, operand, jump and stack depth, so the loop
 * below trusts the code. Values are Kleene truth values (T, F, U); each stack entry also
 * carries the code offset of the leaf to blame for it, for reasons (docs/semantics.md).
 */
#include "cg_internal.h"
#include "cg_num.h"

int32_t cg_find_entry(const cg_policy *p, cg_jstr tool, cg_jstr role) {
    uint32_t h = cg_entry_hash(cg_jstr_hash(tool), cg_jstr_hash(role));
    const uint32_t *slots = p->entry_slots;
    for (uint32_t i = h & p->entry_mask;; i = (i + 1) & p->entry_mask) {
        uint32_t e = slots[2 * i];
        if (e == 0) return -1;
        if (slots[2 * i + 1] != h) continue;
        const uint8_t *ent = p->entries + 16u * (e - 1);
        uint32_t tl, rl;
        const uint8_t *t = cg_str(p, cg_rd32(ent), &tl);
        const uint8_t *r = cg_str(p, cg_rd32(ent + 4), &rl);
        if (cg_jstr_eq_raw(tool, t, tl) && cg_jstr_eq_raw(role, r, rl)) return (int32_t)(e - 1);
    }
}

const cg_slot *cg_field_slot(const cg_scratch *s, uint32_t field) {
    const cg_slot *sl = &s->slots[field];
    return sl->gen == s->gen ? sl : NULL;
}

static cg_jstr slot_str(const cg_input *inputs, const cg_slot *sl) {
    cg_jstr j = {inputs[sl->input].base + sl->off + 1, sl->len - 2, sl->esc != 0};
    return j;
}

static bool set_contains(const cg_policy *p, uint32_t set, cg_jstr v) {
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

static bool compare(double x, uint8_t cmp, double k) {
    switch (cmp) {
    case CG_CMP_LT: return x < k;
    case CG_CMP_LE: return x <= k;
    case CG_CMP_GT: return x > k;
    case CG_CMP_GE: return x >= k;
    default: return x == k;
    }
}

int cg_leaf_eval(const cg_policy *p, cg_scratch *s, const cg_input *inputs, uint32_t pc) {
    const uint8_t *ins = p->code + pc;
    uint8_t op = ins[0], fl = ins[1];
    const uint8_t *a = ins + 2;
    const uint8_t undetermined = (p->flags & CG_FLAG_PERSO) ? CG_V_F : CG_V_U;
    const cg_slot *x = cg_field_slot(s, cg_rd32(a));
    switch (op) {
    case CG_OP_NUM: {
        if (!x || x->type != CG_J_NUM) return undetermined;
        const uint8_t *lit = inputs[x->input].base + x->off;
        double d = 0;
        if (!small_int(lit, x->len, x->num_int, &d)) cg_num_to_double((const char *)lit, x->len, &d);
        return compare(d, fl & CG_F_CMP_MASK, cg_rdf64(p->numbers + 8u * cg_rd32(a + 4))) ? CG_V_T
                                                                                   : CG_V_F;
    }
    case CG_OP_IN: {
        if (!x || x->type != CG_J_STR) return undetermined;
        bool in = set_contains(p, cg_rd32(a + 4), slot_str(inputs, x));
        return in != ((fl & CG_F_NOTIN) != 0) ? CG_V_T : CG_V_F;
    }
    case CG_OP_PRESENT:
        return x && x->type != CG_J_NULL ? CG_V_T : CG_V_F;
    case CG_OP_EQ: {
        const cg_slot *y = cg_field_slot(s, cg_rd32(a + 4));
        bool perso = (p->flags & CG_FLAG_PERSO) != 0;
        if (!x || !y) return undetermined;
        if (!perso && (x->type == CG_J_NULL || y->type == CG_J_NULL)) return CG_V_U;
        return cg_values_equal(inputs, s, x, y, perso) ? CG_V_T : CG_V_F;
    }
    default:
        return CG_V_U; /* unreachable: the loader admits only the opcodes above as leaves */
    }
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
static sv kor(sv a, sv b) {
    sv r;
    if (a.v == CG_V_T || b.v == CG_V_T) r = (sv){CG_V_T, a.v == CG_V_T ? a.blame : b.blame};
    else if (a.v == CG_V_U || b.v == CG_V_U) r = (sv){CG_V_U, a.v == CG_V_U ? a.blame : b.blame};
    else r = (sv){CG_V_F, a.blame};
    return r;
}

static sv run_code(const cg_policy *p, cg_scratch *s, const cg_input *inputs, uint32_t pc) {
    sv st[CG_MAX_STACK];
    int sp = 0;
    const uint8_t *code = p->code;
    for (;;) {
        uint8_t op = code[pc];
        switch (op) {
        case CG_OP_TRUE:
        case CG_OP_FALSE:
            st[sp++] = (sv){op == CG_OP_TRUE ? CG_V_T : CG_V_F, CG_NONE};
            pc += CG_INSN_LEN(0);
            break;
        case CG_OP_NUM:
            st[sp++] = (sv){(uint8_t)cg_leaf_eval(p, s, inputs, pc), pc};
            pc += CG_INSN_LEN(3);
            break;
        case CG_OP_IN:
        case CG_OP_EQ:
            st[sp++] = (sv){(uint8_t)cg_leaf_eval(p, s, inputs, pc), pc};
            pc += CG_INSN_LEN(2);
            break;
        case CG_OP_PRESENT:
            st[sp++] = (sv){(uint8_t)cg_leaf_eval(p, s, inputs, pc), pc};
            pc += CG_INSN_LEN(1);
            break;
        case CG_OP_NOT:
            if (st[sp - 1].v != CG_V_U) st[sp - 1].v ^= 1; /* T <-> F */
            pc += CG_INSN_LEN(0);
            break;
        case CG_OP_AND:
            sp--;
            st[sp - 1] = kand(st[sp - 1], st[sp]);
            pc += CG_INSN_LEN(0);
            break;
        case CG_OP_OR:
            sp--;
            st[sp - 1] = kor(st[sp - 1], st[sp]);
            pc += CG_INSN_LEN(0);
            break;
        case CG_OP_JF:
            pc = st[sp - 1].v == CG_V_F ? cg_rd32(code + pc + 2) : pc + CG_INSN_LEN(1);
            break;
        case CG_OP_JT:
            pc = st[sp - 1].v == CG_V_T ? cg_rd32(code + pc + 2) : pc + CG_INSN_LEN(1);
            break;
        default: /* CG_OP_RET */
            return st[0];
        }
    }
}

int cg_decide(const cg_policy *p, cg_scratch *s, const cg_input *inputs, int32_t entry,
              cg_outcome *out) {
    out->entry = entry;
    out->blame = CG_NONE;
    out->blame_value = CG_V_T;
    out->had_condition = 0;
    if (entry < 0) {
        out->decision = (p->flags & CG_FLAG_DEFAULT_ALLOW) ? CG_ALLOW : CG_DENY;
        out->rule = -1;
        out->rule_slot = CG_NONE;
        return out->decision;
    }
    const uint8_t *e = p->entries + 16u * (uint32_t)entry;
    uint32_t first = cg_rd32(e + 8), n = cg_rd32(e + 12);
    sv first_result = {CG_V_F, CG_NONE};
    for (uint32_t k = 0; k < n; k++) {
        const uint8_t *r = p->rules + 12u * (first + k);
        uint32_t len = cg_rd32(r + 8);
        sv res = len ? run_code(p, s, inputs, cg_rd32(r + 4)) : (sv){CG_V_T, CG_NONE};
        if (res.v == CG_V_T) {
            out->decision = CG_ALLOW;
            out->rule = (int32_t)cg_rd32(r);
            out->rule_slot = first + k;
            out->had_condition = len != 0;
            return CG_ALLOW;
        }
        if (k == 0) first_result = res;
    }
    /* no rule matched: deny, explained by the first rule */
    out->decision = CG_DENY;
    out->rule = (int32_t)cg_rd32(p->rules + 12u * first);
    out->rule_slot = first;
    out->had_condition = 1;
    out->blame = first_result.blame;
    out->blame_value = first_result.v;
    return CG_DENY;
}
