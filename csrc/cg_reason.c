/*
 * cg_reason.c -- the exact reason text of a decision (docs/semantics.md, "Reasons").
 *
 * Built only when a caller asks for it, from the outcome of an evaluation that has just
 * run with the same scratch: the slots still point at the values that were seen.
 */
#include "cg_internal.h"

typedef struct wr {
    char *out;
    size_t cap, n;
} wr;

static void put(wr *w, const void *s, size_t n) {
    const uint8_t *b = s;
    for (size_t i = 0; i < n; i++, w->n++)
        if (w->n < w->cap) w->out[w->n] = (char)b[i];
}
static void puts_(wr *w, const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    put(w, s, n);
}
static void put_u32(wr *w, uint32_t v) {
    char buf[CG_U32_DIGITS];
    uint32_t at = cg_u32_text(buf, v);
    put(w, buf + at, CG_U32_DIGITS - at);
}
static void put_sid(wr *w, const cg_policy *p, uint32_t sid) {
    uint32_t n;
    const uint8_t *s = cg_str(p, sid, &n);
    put(w, s, n);
}
/* The decoded bytes of a JSON string literal (a role read from a context object). */
static void put_jstr(wr *w, cg_jstr s) {
    if (w->n >= w->cap) w->n += cg_jstr_decode(s, NULL, 0);
    else w->n += cg_jstr_decode(s, (uint8_t *)w->out + w->n, w->cap - w->n);
}

#define CG_VALUE_DISPLAY 64
/* The value as written in the request, cut at a character boundary after 64 bytes. */
static void put_value(wr *w, const cg_input *inputs, const cg_slot *x) {
    const uint8_t *v = inputs[x->input].base + x->off;
    uint32_t n = x->len;
    if (n <= CG_VALUE_DISPLAY) {
        put(w, v, n);
        return;
    }
    n = CG_VALUE_DISPLAY;
    while (n > 0 && (v[n] & 0xC0) == 0x80) n--;
    put(w, v, n);
    puts_(w, "\xE2\x80\xA6"); /* … */
}

static void put_field(wr *w, const cg_policy *p, uint32_t field) {
    put_sid(w, p, cg_rd32(p->fields + 12u * field + 8));
}

/* "S is missing" / "S is null"; returns false when the field has a non-null value. */
static bool put_absent(wr *w, const cg_policy *p, const cg_slot *x, uint32_t field) {
    if (x && x->type != CG_J_NULL) return false;
    put_field(w, p, field);
    puts_(w, x ? " is null" : " is missing");
    return true;
}

static void put_seen(wr *w, const cg_policy *p, const cg_input *in, const cg_slot *x,
                     uint32_t field) {
    put_field(w, p, field);
    puts_(w, " = ");
    put_value(w, in, x);
}

static const char *const cmp_text[CG_N_CMP] = {"<", "<=", ">", ">=", "=="};

static void explain_leaf(wr *w, const cg_policy *p, cg_scratch *s, const cg_input *in,
                         uint32_t pc) {
    const uint8_t *ins = p->code + pc;
    uint8_t op = ins[0], fl = ins[1];
    const uint8_t *a = ins + 2;
    uint32_t fa = cg_rd32(a);
    const cg_slot *x = cg_field_slot(s, fa);
    int r = cg_leaf_eval(p, s, in, pc);
    const char *negated = " (negated by Not)";
    switch (op) {
    case CG_OP_NUM:
    case CG_OP_IN: {
        bool num = op == CG_OP_NUM;
        if (put_absent(w, p, x, fa)) return;
        put_seen(w, p, in, x, fa);
        if (r == CG_V_U) {
            puts_(w, num ? " is not a number" : " is not a string");
            return;
        }
        bool holds = r == CG_V_T;
        if (num) {
            puts_(w, holds ? " is " : " is not ");
            puts_(w, cmp_text[fl & CG_F_CMP_MASK]);
            puts_(w, " ");
            put_sid(w, p, cg_rd32(a + 8));
        } else {
            bool in_set = holds != ((fl & CG_F_NOTIN) != 0);
            puts_(w, in_set ? " is in " : " is not in ");
            put_sid(w, p, cg_rd32(p->sets + 12u * cg_rd32(a + 4) + 8));
        }
        if (holds) puts_(w, negated);
        return;
    }
    case CG_OP_PRESENT:
        if (put_absent(w, p, x, fa)) return;
        put_field(w, p, fa);
        puts_(w, " is present");
        puts_(w, negated);
        return;
    default: { /* CG_OP_EQ */
        uint32_t fb = cg_rd32(a + 4);
        const cg_slot *y = cg_field_slot(s, fb);
        if (put_absent(w, p, x, fa) || put_absent(w, p, y, fb)) return;
        put_seen(w, p, in, x, fa);
        if (r == CG_V_T) {
            puts_(w, " equals ");
            put_field(w, p, fb);
            puts_(w, negated);
        } else {
            puts_(w, " does not equal ");
            put_seen(w, p, in, y, fb);
        }
        return;
    }
    }
}

size_t cg_format_reason(const cg_policy *p, cg_scratch *s, const cg_input *in, char *out,
                        size_t cap) {
    wr w = {out, cap, 0};
    cg_jstr tool = s->tool, role = s->role;
    const cg_outcome *o = &s->last;
    if (p->flags & CG_FLAG_PERSO) {
        puts_(&w, o->entry < 0 ? "no rule matched tool '" : "rule matched tool '");
        put_jstr(&w, tool);
        puts_(&w, "' for role '");
        put_jstr(&w, role);
        if (o->entry < 0) puts_(&w, "'; applying default_action");
        else if (!o->had_condition) puts_(&w, "'; no condition required");
        else puts_(&w, o->decision == CG_ALLOW ? "'; condition passed" : "'; condition failed");
        return w.n;
    }
    put_jstr(&w, tool);
    puts_(&w, o->decision == CG_ALLOW ? " allowed for role '" : " denied for role '");
    put_jstr(&w, role);
    puts_(&w, "': ");
    if (o->entry < 0) {
        puts_(&w, o->decision == CG_ALLOW
                      ? "no rule covers this tool for this role (default_action Allow)"
                      : "no rule covers this tool for this role (default_action Deny)");
        return w.n;
    }
    uint32_t rule_no = (uint32_t)o->rule + 1;
    if (o->decision == CG_ALLOW) {
        puts_(&w, "rule ");
        put_u32(&w, rule_no);
        puts_(&w, o->had_condition ? " condition passed" : " has no condition");
        return w.n;
    }
    if (o->blame == CG_NONE) puts_(&w, "condition not satisfied");
    else explain_leaf(&w, p, s, in, o->blame);
    puts_(&w, " (rule ");
    put_u32(&w, rule_no);
    uint32_t n_rules = cg_rd32(p->entries + 16u * (uint32_t)o->entry + 12);
    if (n_rules > 1) {
        puts_(&w, "; ");
        put_u32(&w, n_rules - 1);
        puts_(&w, n_rules == 2 ? " other rule did not match" : " other rules did not match");
    }
    puts_(&w, ")");
    return w.n;
}
