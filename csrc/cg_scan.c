/*
 * cg_scan.c -- the strict, bounded scanner of JSON text (RFC 8259): the parts off the
 * per-byte path (cg_scan.h has those). Values are never built into objects: everything is
 * validated and skipped, with no recursion (an explicit container stack in the scratch)
 * and no allocation; duplicate keys are found by sorting the keys of an object by content.
 */
#include "cg_scan.h"

uint32_t cg_skip_ws(const uint8_t *b, uint32_t pos, uint32_t len) {
    while (pos < len && (b[pos] == ' ' || b[pos] == '\n' || b[pos] == '\r' || b[pos] == '\t'))
        pos++;
    return pos;
}

/* Length of the valid UTF-8 sequence starting at s[0] (lead byte >= 0x80), 0 if
   invalid, -1 if cut short by the end (Unicode Table 3-7). */
int cg_utf8_seq(const uint8_t *s, size_t avail) {
    uint8_t c = s[0];
    int n;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;      /* overlong */
        else if (c == 0xED) hi = 0x9F; /* UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;      /* overlong */
        else if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
    } else
        return 0;
    if ((size_t)n > avail) {
        /* a truncated sequence is still invalid if what is there is already wrong */
        for (size_t i = 1; i < avail; i++) {
            uint8_t x = s[i];
            if (x < (i == 1 ? lo : 0x80) || x > (i == 1 ? hi : 0xBF)) return 0;
        }
        return -1;
    }
    if (s[1] < lo || s[1] > hi) return 0;
    for (int i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return n;
}

bool cg_utf8_valid(const uint8_t *s, size_t n) {
    uint8_t any = 0;
    for (size_t k = 0; k < n; k++) any |= s[k];
    if (any < 0x80) return true; /* ASCII, the common case for names */
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int k = cg_utf8_seq(s + i, n - i);
        if (k <= 0) return false;
        i += (size_t)k;
    }
    return true;
}

static int hexval(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Reads \uXXXX at r->pos (pointing at the backslash); returns the code unit or an error. */
int32_t cg_read_u_escape(cg_rd *r) {
    if (r->pos + 6 > r->len) return cg_rd_fail(r, CG_E_TRUNCATED);
    if (r->b[r->pos + 1] != 'u') return cg_rd_fail(r, CG_E_ESCAPE);
    int32_t v = 0;
    for (int i = 2; i < 6; i++) {
        int h = hexval(r->b[r->pos + i]);
        if (h < 0) return cg_rd_fail(r, CG_E_ESCAPE);
        v = v << 4 | h;
    }
    return v;
}

int cg_read_literal(cg_rd *r, const char *word, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        if (r->pos + i >= r->len) return cg_rd_fail(r, CG_E_TRUNCATED);
        if (r->b[r->pos + i] != (uint8_t)word[i]) {
            /* NaN and Infinity are not JSON, and get their own code */
            if (i == 0 && (r->b[r->pos] == 'N' || r->b[r->pos] == 'I')) return cg_rd_fail(r, CG_E_NONFINITE);
            return cg_rd_fail(r, CG_E_SYNTAX);
        }
    }
    r->pos += n;
    return 0;
}

/* ---- keys of open objects and duplicate detection ---- */

int cg_key_cmp(const uint8_t *base, const cg_key *a, const cg_key *b) {
    if (a->hash != b->hash) return a->hash < b->hash ? -1 : 1;
    cg_jstr x = {base + a->off, a->len, a->esc != 0}, y = {base + b->off, b->len, b->esc != 0};
    return cg_jstr_cmp(x, y);
}

static int key_order(const void *base, const void *a, const void *b) {
    return cg_key_cmp(base, a, b);
}

void cg_sort_keys(const uint8_t *base, cg_key *k, uint32_t n) {
    cg_heapsort(k, n, sizeof *k, key_order, base);
}

/* Checks the keys of the object that just closed, then pops them. */
int cg_close_object(cg_rd *r, uint32_t first) {
    cg_key *k = r->s->keys + first;
    uint32_t n = r->nkeys - first;
    r->nkeys = first;
    if (n < 2) return 0;
    if (n <= 16) {
        for (uint32_t i = 1; i < n; i++)
            for (uint32_t j = 0; j < i; j++)
                if (cg_key_cmp(r->b, &k[i], &k[j]) == 0) {
                    r->pos = k[i].off;
                    return cg_rd_fail(r, CG_E_DUPLICATE_KEY);
                }
        return 0;
    }
    cg_sort_keys(r->b, k, n);
    for (uint32_t i = 1; i < n; i++)
        if (cg_key_cmp(r->b, &k[i - 1], &k[i]) == 0) {
            r->pos = k[i].off > k[i - 1].off ? k[i].off : k[i - 1].off;
            return cg_rd_fail(r, CG_E_DUPLICATE_KEY);
        }
    return 0;
}

/* Reads one complete JSON value at r->pos (whitespace first). depth is the nesting of
   the containers around it that count toward max_depth. Fills v with its type and span. */
int cg_read_value(cg_rd *r, uint32_t depth, cg_slot *v) {
    uint32_t *stk = r->s->stack; /* per open container: first key << 1 | is_object */
    uint32_t height = 0;
    uint32_t start = 0;
    int rc;
    cg_jstr str;
    for (;;) {
        /* a value is expected here */
        skip_ws(r);
        if (r->pos >= r->len) return cg_rd_fail(r, CG_E_TRUNCATED);
        uint8_t c = r->b[r->pos];
        uint32_t at = r->pos;
        uint8_t type;
        bool is_int = false;
        if (c == '{' || c == '[') {
            if (depth + height + 1 > r->p->limits.max_depth || height >= r->s->max_depth)
                return cg_rd_fail(r, CG_E_DEPTH);
            if (height == 0) start = at;
            stk[height++] = r->nkeys << 1 | (c == '{');
            r->pos++;
            skip_ws(r);
            if (r->pos >= r->len) return cg_rd_fail(r, CG_E_TRUNCATED);
            if (r->b[r->pos] == (c == '{' ? '}' : ']')) {
                r->pos++;
                height--;
                type = c == '{' ? CG_J_OBJ : CG_J_ARR;
            } else {
                if (c == '{' && (rc = read_key(r, &str))) return rc;
                continue; /* read the first member's value */
            }
        } else if (c == '"') {
            if ((rc = read_string(r, &str))) return rc;
            type = CG_J_STR;
            v->esc = str.esc;
        } else if (c == '-' || cg_json_digit(c)) {
            if ((rc = cg_read_number(r, &is_int))) return rc;
            type = CG_J_NUM;
        } else if (c == 't') {
            if ((rc = cg_read_literal(r, "true", 4))) return rc;
            type = CG_J_TRUE;
        } else if (c == 'f') {
            if ((rc = cg_read_literal(r, "false", 5))) return rc;
            type = CG_J_FALSE;
        } else if (c == 'n') {
            if ((rc = cg_read_literal(r, "null", 4))) return rc;
            r->s->saw_null = 1;
            type = CG_J_NULL;
        } else if (c == 'N' || c == 'I') {
            return cg_rd_fail(r, CG_E_NONFINITE);
        } else {
            return cg_rd_fail(r, CG_E_SYNTAX);
        }
        if (height == 0) { /* a complete value at the outer level */
            v->type = type;
            v->num_int = is_int;
            if (type != CG_J_OBJ && type != CG_J_ARR) start = at;
            v->off = start;
            v->len = r->pos - start;
            return 0;
        }
        /* after a member: a comma continues, a bracket closes (maybe several) */
        for (;;) {
            skip_ws(r);
            if (r->pos >= r->len) return cg_rd_fail(r, CG_E_TRUNCATED);
            uint32_t top = stk[height - 1];
            bool obj = top & 1;
            uint8_t d = r->b[r->pos];
            if (d == ',') {
                r->pos++;
                if (obj && (rc = read_key(r, &str))) return rc;
                break; /* read the next member's value */
            }
            if (d != (obj ? '}' : ']')) return cg_rd_fail(r, CG_E_SYNTAX);
            r->pos++;
            if (obj && (rc = cg_close_object(r, top >> 1))) return rc;
            if (--height == 0) {
                v->type = obj ? CG_J_OBJ : CG_J_ARR;
                v->num_int = 0;
                v->esc = 0;
                v->off = start;
                v->len = r->pos - start;
                return 0;
            }
        }
    }
}

/* ---- skipping values that the reader already validated (for deep comparison) ---- */
uint32_t cg_skip_value(const uint8_t *b, uint32_t pos, uint32_t len) {
    pos = cg_skip_ws(b, pos, len);
    uint32_t depth = 0;
    do {
        uint8_t c = b[pos];
        if (c == '"') {
            pos++;
            while (b[pos] != '"') pos += b[pos] == '\\' ? 2 : 1;
            pos++;
        } else if (c == '{' || c == '[') {
            depth++;
            pos++;
        } else if (c == '}' || c == ']') {
            depth--;
            pos++;
        } else if (c == ',' || c == ':' || c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            pos++;
        } else { /* a number or literal: up to the next delimiter */
            while (pos < len && b[pos] != ',' && b[pos] != '}' && b[pos] != ']' && b[pos] != ' ' &&
                   b[pos] != '\n' && b[pos] != '\r' && b[pos] != '\t')
                pos++;
        }
    } while (depth > 0 && pos < len);
    return pos;
}
