/*
 * cg_reason.c -- the exact reason text of a decision (docs/semantics.md, "Reasons").
 *
 * Built only when a caller asks for it, from the outcome of an evaluation that has just
 * run with the same scratch: the slots still point at the values that were seen.
 */
#include "cg_check.h"

/* Where text goes: out (up to cap bytes; n counts them all), or, when hashing, only into
   an FNV-1a hash of it (to tell a failed branch's text from those already written). */
typedef struct wr {
    char *out;
    size_t cap, n;
    bool hashing;
    uint64_t hash;
} wr;

static void put(wr *w, const void *s, size_t n) {
    const uint8_t *b = s;
    if (w->hashing) {
        for (size_t i = 0; i < n; i++) w->hash = (w->hash ^ b[i]) * 0x100000001b3u;
        return;
    }
    for (size_t i = 0; i < n; i++, w->n++)
        if (w->n < w->cap) w->out[w->n] = (char)b[i];
}
CG_NOINLINE static void puts_(wr *w, const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    put(w, s, n);
}
static void put_u32(wr *w, uint32_t v) {
    char buf[CG_U32_DIGITS];
    uint32_t at = cg_u32_text(buf, v);
    put(w, buf + at, CG_U32_DIGITS - at);
}
CG_NOINLINE static void put_sid(wr *w, const cg_policy *p, uint32_t sid) {
    uint32_t n;
    const uint8_t *s = cg_str(p, sid, &n);
    put(w, s, n);
}
/* A policy rule as reasons name it: its id, or its number counting from 1. */
static void put_rule(wr *w, const cg_policy *p, uint32_t rule) {
    uint32_t name = cg_rule_name(p, rule);
    if (name == CG_NO_NAME) put_u32(w, rule + 1);
    else put_sid(w, p, name);
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

/* "S is missing" / "S is null"; returns false when the value is there and not null. */
static bool put_absent(wr *w, const cg_policy *p, const cg_slot *x, uint32_t display) {
    if (x && x->type != CG_J_NULL) return false;
    put_sid(w, p, display);
    puts_(w, x ? " is null" : " is missing");
    return true;
}

/* "S = V" */
static void put_seen(wr *w, const cg_policy *p, const cg_input *in, const cg_slot *x,
                     uint32_t display) {
    put_sid(w, p, display);
    puts_(w, " = ");
    put_value(w, in, x);
}

static const char *const cmp_text[CG_N_CMP] = {"<", "<=", ">", ">=", "==", "!=", "between"};
static const char *const negated = " (negated by Not)";

/* A stretch of condition code: [start, end) leaves one value, root is its last node. */
typedef struct span {
    uint32_t start, end, root;
} span;

static void explain_blame(wr *w, const cg_policy *p, cg_scratch *s, const cg_input *in,
                          span code, uint32_t blame, const cg_slot *elem);

/* Every / Some (docs/policy-v2.md): the deciding element and its own explanation. */
static void explain_quant(wr *w, const cg_policy *p, cg_scratch *s, const cg_input *in,
                          uint32_t pc, const cg_slot *elem, const cg_slot *x, uint32_t display) {
    cg_qinfo q;
    int r = cg_quant_eval(p, s, in, pc, elem, &q);
    const uint8_t *ins = cg_insn(p, pc);
    bool every = ins[CG_INSN_OPCODE] == CG_OP_EVERY;
    if (q.index != CG_NONE) {
        put_sid(w, p, display);
        puts_(w, ": element ");
        put_u32(w, q.index);
        puts_(w, ": ");
        uint32_t body = pc + CG_LEN(EVERY), end = cg_insn_operand(ins, 1);
        if (q.blame != CG_NONE) explain_blame(w, p, s, in, (span){body, end, body}, q.blame, &q.elem);
        else puts_(w, q.value == CG_V_T ? "condition passed" : "condition not satisfied");
    } else if (r == CG_V_U) {
        if (put_absent(w, p, x, display)) return;
        put_seen(w, p, in, x, display);
        puts_(w, " is not an array");
        return;
    } else {
        put_sid(w, p, display);
        puts_(w, every ? ": every element satisfies the condition"
                       : ": no element satisfies the condition");
    }
    if (r == CG_V_T && (ins[CG_INSN_FLAGS] & CG_F_NEGATED)) puts_(w, negated);
}

/* The text of the leaf at pc for its own result (computed again here, with elem as the
   current element), " (negated by Not)" after a T result of a leaf under odd Nots. */
static void explain_at(wr *w, const cg_policy *p, cg_scratch *s, const cg_input *in, uint32_t pc,
                       const cg_slot *elem) {
    const uint8_t *ins = cg_insn(p, pc);
    uint8_t op = ins[CG_INSN_OPCODE], fl = ins[CG_INSN_FLAGS];
    bool path_a = (fl & CG_F_PATH_A) != 0;
    uint32_t sa = cg_ref_display(p, cg_insn_operand(ins, 0), path_a);
    cg_slot ta;
    const cg_slot *x = cg_ref(p, s, in, elem, cg_insn_operand(ins, 0), path_a, &ta);
    int r = cg_leaf_eval_el(p, s, in, pc, elem);
    bool holds = r == CG_V_T;
    switch (op) {
    case CG_OP_PRESENT:
        if (put_absent(w, p, x, sa)) return;
        put_sid(w, p, sa);
        puts_(w, " is present");
        break;
    case CG_OP_EQ: {
        bool path_b = (fl & CG_F_PATH_B) != 0;
        uint32_t sb = cg_ref_display(p, cg_insn_operand(ins, 1), path_b);
        cg_slot tb;
        const cg_slot *y = cg_ref(p, s, in, elem, cg_insn_operand(ins, 1), path_b, &tb);
        if (put_absent(w, p, x, sa) || put_absent(w, p, y, sb)) return;
        put_seen(w, p, in, x, sa);
        if (holds) {
            puts_(w, " equals ");
            put_sid(w, p, sb);
        } else {
            puts_(w, " does not equal ");
            put_seen(w, p, in, y, sb);
        }
        break;
    }
    case CG_OP_TYPE:
        if (holds) {
            put_sid(w, p, sa);
            puts_(w, " is of type ");
        } else {
            if (put_absent(w, p, x, sa)) return;
            put_seen(w, p, in, x, sa);
            puts_(w, " is not of type ");
        }
        put_sid(w, p, cg_insn_operand(ins, 2));
        break;
    case CG_OP_BOOL: {
        const char *want = cg_insn_operand(ins, 1) ? "true" : "false";
        if (put_absent(w, p, x, sa)) return;
        if (holds) {
            put_sid(w, p, sa);
            puts_(w, " is ");
        } else {
            put_seen(w, p, in, x, sa);
            puts_(w, r == CG_V_U ? " is not a boolean" : " is not ");
            if (r == CG_V_U) return;
        }
        puts_(w, want);
        break;
    }
    case CG_OP_EVERY:
    case CG_OP_SOME:
        explain_quant(w, p, s, in, pc, elem, x, sa);
        return;
    case CG_OP_URL:
    case CG_OP_PATHCHK:
    case CG_OP_SQL: { /* the check's own text (cg_check.c), after "S" or "S = V" */
        if (put_absent(w, p, x, sa)) return;
        if (x->type != CG_J_STR) {
            put_seen(w, p, in, x, sa);
            puts_(w, " is not a string");
            return;
        }
        char text[CG_CHECK_TEXT];
        size_t n = 0;
        bool with_value = false;
        cg_jstr v = {in[x->input].base + x->off + 1, x->len - 2, x->esc != 0};
        if (op == CG_OP_URL)
            cg_url_check_text(p, cg_insn_operand(ins, 1), v, &with_value, text, sizeof text, &n);
        else if (op == CG_OP_PATHCHK)
            cg_path_check_text(p, cg_insn_operand(ins, 1), v, &with_value, text, sizeof text, &n);
        else
            cg_sql_check_text(p, cg_insn_operand(ins, 1), v, &with_value, text, sizeof text, &n);
        if (with_value) put_seen(w, p, in, x, sa);
        else put_sid(w, p, sa);
        put(w, text, n < sizeof text ? n : sizeof text);
        break;
    }
    case CG_OP_LEN:
        if (put_absent(w, p, x, sa)) return;
        if (r == CG_V_U) {
            put_seen(w, p, in, x, sa);
            puts_(w, " is neither a string nor an array");
            return;
        }
        puts_(w, "length of ");
        put_sid(w, p, sa);
        puts_(w, " is ");
        put_u32(w, x->type == CG_J_STR ? cg_str_length((cg_jstr){in[x->input].base + x->off + 1,
                                                                  x->len - 2, x->esc != 0})
                                       : cg_array_length(in, x));
        puts_(w, holds ? ", " : ", not ");
        puts_(w, cmp_text[fl & CG_F_CMP_MASK]);
        puts_(w, " ");
        put_sid(w, p, cg_insn_operand(ins, 2));
        break;
    default: /* NUM, IN, STR, TIME: "S = V ..." (blames are leaves: no other opcode) */
        CG_ASSERT(op == CG_OP_NUM || op == CG_OP_IN || op == CG_OP_STR || op == CG_OP_TIME);
        if (put_absent(w, p, x, sa)) return;
        put_seen(w, p, in, x, sa);
        if (r == CG_V_U) {
            puts_(w, op == CG_OP_NUM    ? " is not a number"
                     : op == CG_OP_TIME ? " is not a time"
                                        : " is not a string");
            return;
        }
        if (op == CG_OP_NUM) {
            puts_(w, holds ? " is " : " is not ");
            puts_(w, cmp_text[fl & CG_F_CMP_MASK]);
            puts_(w, " ");
            put_sid(w, p, cg_insn_operand(ins, 2));
        } else if (op == CG_OP_IN) {
            bool in_set = holds != ((fl & CG_F_NOTIN) != 0);
            puts_(w, in_set ? " is in " : " is not in ");
            put_sid(w, p, cg_set_display(p, cg_insn_operand(ins, 1)));
        } else if (op == CG_OP_STR) { /* c: the text for T, d: for F */
            puts_(w, " ");
            put_sid(w, p, cg_insn_operand(ins, holds ? 2 : 3));
        } else { /* CG_OP_TIME */
            puts_(w, holds ? " is within " : " is outside ");
            put_sid(w, p, cg_insn_operand(ins, 2));
        }
        break;
    }
    if (holds && (fl & CG_F_NEGATED)) puts_(w, negated);
}

/* ---- an Any that was not T: every branch (docs/semantics.md, "Reasons") ---- */

#define CG_BRANCHES_SHOWN 4


/* The two operands of the OR at `at`, by a walk of `code` in layout order (jumps aside):
   each entry of the walk's stack is the span of code that leaves that value. Descends into
   the Every/Some body that holds `at`. False when the walk does not meet `at` as an OR
   (never for a blame the evaluator gave; the bounds guard against any other). */
static bool or_operands(const cg_policy *p, span code, uint32_t at, span *left, span *right) {
    span st[CG_MAX_STACK];
    int sp = 0;
    uint32_t pc = code.start, end = code.end;
    while (pc < end) {
        const uint8_t *ins = cg_insn(p, pc);
        uint8_t op = ins[CG_INSN_OPCODE];
        uint32_t next = pc + cg_op_len(op);
        switch (op) {
        case CG_OP_EVERY:
        case CG_OP_SOME: {
            uint32_t after = cg_insn_operand(ins, 1);
            if (at >= next && at < after) { /* its own stack */
                sp = 0;
                end = after;
                pc = next;
                continue;
            }
            if (sp == CG_MAX_STACK) return false;
            st[sp++] = (span){pc, after, pc};
            pc = after;
            continue;
        }
        case CG_OP_NOT:
            if (sp < 1) return false;
            st[sp - 1].end = next;
            st[sp - 1].root = pc;
            break;
        case CG_OP_AND:
        case CG_OP_OR:
            if (sp < 2) return false;
            if (pc == at) {
                if (op != CG_OP_OR) return false;
                *left = st[sp - 2];
                *right = st[sp - 1];
                return true;
            }
            sp--;
            st[sp - 1].end = next;
            st[sp - 1].root = pc;
            break;
        case CG_OP_JF:
        case CG_OP_JT:
            break;
        case CG_OP_RET:
        case CG_OP_ENDQ:
            return false;
        default: /* a leaf, TRUE, FALSE */
            CG_ASSERT(op < CG_N_OPCODES && cg_op_effect(op) == 1);
            if (sp == CG_MAX_STACK) return false;
            st[sp++] = (span){pc, next, pc};
            break;
        }
        pc = next;
    }
    return false;
}

/* The branches written so far (their texts' hashes) and how many more were left out. */
typedef struct branches {
    uint64_t shown[CG_BRANCHES_SHOWN];
    uint32_t n_shown, more;
} branches;

static void write_branch(wr *w, const cg_policy *p, cg_scratch *s, const cg_input *in,
                         uint32_t blame, const cg_slot *elem) {
    if (blame == CG_NONE || CG_IS_GROUP(blame)) puts_(w, "condition not satisfied");
    else explain_at(w, p, s, in, blame, elem);
}

/* One branch to blame: left out when its text was written already; else written (with
   ", and " before all but the first) while fewer than CG_BRANCHES_SHOWN are, else counted.
   A group (the OR of an Any that was not T) is its two operands in turn; an operand that is
   itself an Any was not T either, so it is a group too, else it is evaluated again for its
   own blame. */
static void explain_branches(wr *w, const cg_policy *p, cg_scratch *s, const cg_input *in,
                             span code, uint32_t blame, const cg_slot *elem, branches *b) {
    span ops[2];
    if (CG_IS_GROUP(blame) &&
        or_operands(p, code, blame & ~CG_BLAME_GROUP, &ops[0], &ops[1]) &&
        cg_insn(p, ops[0].end)[CG_INSN_OPCODE] == CG_OP_JT) {
        for (int k = 0; k < 2; k++) {
            uint32_t kb = CG_BLAME_GROUP | ops[k].root;
            if (cg_insn(p, ops[k].root)[CG_INSN_OPCODE] != CG_OP_OR)
                cg_operand_eval(p, s, in, ops[k].start, ops[k].end, elem, &kb);
            explain_branches(w, p, s, in, ops[k], kb, elem, b);
        }
        return;
    }
    wr h = {NULL, 0, 0, true, 0xcbf29ce484222325u};
    write_branch(&h, p, s, in, blame, elem);
    for (uint32_t i = 0; i < b->n_shown; i++)
        if (b->shown[i] == h.hash) return;
    if (b->n_shown == CG_BRANCHES_SHOWN) {
        b->more++;
        return;
    }
    if (b->n_shown) puts_(w, ", and ");
    write_branch(w, p, s, in, blame, elem);
    b->shown[b->n_shown++] = h.hash;
}

/* The explanation of a blame found running `code`: its leaf, or every branch that failed
   in an Any, at most CG_BRANCHES_SHOWN different texts and how many more. */
static void explain_blame(wr *w, const cg_policy *p, cg_scratch *s, const cg_input *in,
                          span code, uint32_t blame, const cg_slot *elem) {
    branches b = {{0}, 0, 0};
    explain_branches(w, p, s, in, code, blame, elem, &b);
    if (!b.more) return;
    puts_(w, ", and ");
    put_u32(w, b.more);
    puts_(w, b.more == 1 ? " other branch failed" : " other branches failed");
}

/* The blame of a rule's condition (docs/semantics.md, docs/policy-v2.md). */
static void explain_rule(wr *w, const cg_policy *p, cg_scratch *s, const cg_input *in,
                         uint32_t rule_slot, uint32_t blame) {
    uint32_t start = cg_rule_field(p, rule_slot, CG_RULE_CODE);
    uint32_t end = start + cg_rule_field(p, rule_slot, CG_RULE_LENGTH);
    explain_blame(w, p, s, in, (span){start, end, start}, blame, NULL);
}

size_t cg_format_reason(const cg_policy *p, cg_scratch *s, const cg_input *in, char *out,
                        size_t cap) {
    wr w = {out, cap, 0, false, 0};
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
    if (o->decision == CG_ELEVATE) {
        puts_(&w, " requires ");
        put_u32(&w, o->approvals);
        puts_(&w, o->approvals == 1 ? " approval for role '" : " approvals for role '");
    } else {
        puts_(&w, o->decision == CG_ALLOW ? " allowed for role '" : " denied for role '");
    }
    put_jstr(&w, role);
    puts_(&w, "': ");
    static const char *const decision_name[3] = {"Deny", "Allow", "Elevate"};
    if (o->by == CG_BY_DEFAULT) {
        puts_(&w, o->entry < 0 ? "no rule covers this tool for this role ("
                               : "no rule grants this tool for this role (");
        if (o->tier_default >= 0) {
            puts_(&w, "tier '");
            put_sid(&w, p, cg_default_field(p, (uint32_t)o->tier_default, CG_DEFAULT_TIER));
            puts_(&w, "' default ");
        } else {
            puts_(&w, "default_action ");
        }
        puts_(&w, decision_name[o->decision & 3]);
        puts_(&w, ")");
        return w.n;
    }
    if (o->by == CG_BY_ALLOW || o->by == CG_BY_ELEVATE) {
        puts_(&w, "rule ");
        put_rule(&w, p, (uint32_t)o->rule);
        puts_(&w, o->had_condition ? " condition passed" : " has no condition");
        return w.n;
    }
    if (o->by == CG_BY_DENY) {
        puts_(&w, "rule ");
        put_rule(&w, p, (uint32_t)o->rule);
        puts_(&w, " forbids it");
        if (!o->had_condition) return w.n;
        puts_(&w, o->blame_value == CG_V_U ? " and could not be evaluated: " : ": ");
        if (o->blame == CG_NONE) puts_(&w, "condition passed"); /* an empty All */
        else explain_rule(&w, p, s, in, o->rule_slot, o->blame);
        return w.n;
    }
    /* CG_BY_NO_GRANT: the v1 denial, explained by the first grant rule */
    if (o->blame == CG_NONE) puts_(&w, "condition not satisfied");
    else explain_rule(&w, p, s, in, o->rule_slot, o->blame);
    puts_(&w, " (rule ");
    put_rule(&w, p, (uint32_t)o->rule);
    uint32_t n_rules = o->n_grants;
    if (n_rules > 1) {
        puts_(&w, "; ");
        put_u32(&w, n_rules - 1);
        puts_(&w, n_rules == 2 ? " other rule did not match" : " other rules did not match");
    }
    puts_(&w, ")");
    return w.n;
}
