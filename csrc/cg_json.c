/*
 * cg_json.c -- the strict, bounded reader of request JSON (RFC 8259).
 *
 * It validates the whole input (an error anywhere is an error, never a decision) and
 * records, for every top-level key of a source object that the policy references, where
 * its value sits (a cg_slot). Values are never built into objects: everything else is
 * validated and skipped. No recursion (an explicit container stack in the scratch),
 * no allocation; duplicate keys are found by sorting the keys of an object by content.
 */
#include "cg_internal.h"
#include "cg_num.h"

/* Index of the lowest byte whose high bit is set in m (m != 0). */
static inline uint32_t first_flagged_byte(uint64_t m) {
#if defined(__GNUC__) || defined(__clang__)
    return (uint32_t)__builtin_ctzll(m) >> 3;
#else
    uint32_t i = 0;
    while (!(m & 0x80)) {
        m >>= 8;
        i++;
    }
    return i;
#endif
}

/* The few functions on the per-byte path are forced inline so the reader's position stays
   in a register through a whole object. */
#if defined(__GNUC__) || defined(__clang__)
#define HOT static inline __attribute__((always_inline))
#else
#define HOT static inline
#endif

typedef struct rd {
    const cg_policy *p;
    cg_scratch *s;
    const uint8_t *b;
    uint32_t len, pos;
    uint32_t nkeys;     /* top of the open-key stack */
    uint8_t input;
} rd;

static int fail(rd *r, int code) {
    r->s->err_offset = r->pos;
    r->s->err_input = r->input;
    return code;
}

HOT void skip_ws(rd *r) {
    if (r->pos < r->len && r->b[r->pos] > ' ') return; /* the common case: no whitespace */
    r->pos = cg_skip_ws(r->b, r->pos, r->len);
}

uint32_t cg_skip_ws(const uint8_t *b, uint32_t pos, uint32_t len) {
    while (pos < len && (b[pos] == ' ' || b[pos] == '\n' || b[pos] == '\r' || b[pos] == '\t'))
        pos++;
    return pos;
}

/* Length of the valid UTF-8 sequence starting at s[0] (lead byte >= 0x80), 0 if
   invalid, -1 if cut short by the end (Unicode Table 3-7). */
static int utf8_seq(const uint8_t *s, size_t avail) {
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
        int k = utf8_seq(s + i, n - i);
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
static int32_t read_u_escape(rd *r) {
    if (r->pos + 6 > r->len) return fail(r, CG_E_TRUNCATED);
    if (r->b[r->pos + 1] != 'u') return fail(r, CG_E_ESCAPE);
    int32_t v = 0;
    for (int i = 2; i < 6; i++) {
        int h = hexval(r->b[r->pos + i]);
        if (h < 0) return fail(r, CG_E_ESCAPE);
        v = v << 4 | h;
    }
    return v;
}

/* High bit set in each byte of x (read little-endian) that is '"', '\\', a control
   character or >= 0x80. The lowest flagged byte is exact (borrows only run upward). */
static inline uint64_t special_bytes(uint64_t x) {
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
    uint64_t zero_q = (q - ones) & ~q, zero_bs = (bs - ones) & ~bs;
    uint64_t ctrl = (x - ones * 0x20) & ~x;
    return (zero_q | zero_bs | ctrl | x) & highs;
}

/* r->pos is at the opening quote. On success *out is the content between the quotes and
   r->pos is past the closing quote. */
HOT int read_string(rd *r, cg_jstr *out) {
    const uint8_t *b = r->b;
    uint32_t start = r->pos + 1;
    bool esc = false;
    r->pos = start;
    for (;;) {
        while (r->pos + 8 <= r->len) { /* 8 plain bytes at a time */
            uint64_t m = special_bytes(cg_rd64(b + r->pos));
            if (m) {
                r->pos += first_flagged_byte(m);
                break;
            }
            r->pos += 8;
        }
        if (r->pos >= r->len) return fail(r, CG_E_TRUNCATED);
        uint8_t c = b[r->pos];
        if (c == '"') break;
        if (c < 0x20) return fail(r, CG_E_CONTROL_CHAR);
        if (c < 0x80 && c != '\\') {
            r->pos++;
            continue;
        }
        if (c >= 0x80) {
            int n = utf8_seq(b + r->pos, r->len - r->pos);
            if (n == 0) return fail(r, CG_E_UTF8);
            if (n < 0) return fail(r, CG_E_TRUNCATED);
            r->pos += (uint32_t)n;
            continue;
        }
        /* an escape */
        esc = true;
        if (r->pos + 1 >= r->len) return fail(r, CG_E_TRUNCATED);
        uint8_t e = b[r->pos + 1];
        if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
            e == 't') {
            r->pos += 2;
            continue;
        }
        if (e != 'u') return fail(r, CG_E_ESCAPE);
        int32_t u = read_u_escape(r);
        if (u < 0) return u;
        if (u >= 0xDC00 && u <= 0xDFFF) return fail(r, CG_E_SURROGATE);
        if (u >= 0xD800 && u <= 0xDBFF) {
            uint32_t hi_at = r->pos;
            r->pos += 6;
            if (r->pos + 1 >= r->len || b[r->pos] != '\\' || b[r->pos + 1] != 'u') {
                r->pos = hi_at;
                return fail(r, r->pos + 6 >= r->len ? CG_E_TRUNCATED : CG_E_SURROGATE);
            }
            int32_t lo = read_u_escape(r);
            if (lo < 0) return lo;
            if (lo < 0xDC00 || lo > 0xDFFF) {
                r->pos = hi_at;
                return fail(r, CG_E_SURROGATE);
            }
        }
        r->pos += 6;
    }
    out->p = b + start;
    out->n = r->pos - start;
    out->esc = esc;
    r->pos++;
    return 0;
}

static bool json_digit(uint8_t c) { return c >= '0' && c <= '9'; }

/* r->pos at '-' or a digit. Sets *is_int for literals without fraction or exponent. */
static int read_number(rd *r, bool *is_int) {
    const uint8_t *b = r->b;
    uint32_t start = r->pos;
    *is_int = true;
    if (b[r->pos] == '-') {
        r->pos++;
        if (r->pos >= r->len) return fail(r, CG_E_TRUNCATED);
        if (b[r->pos] == 'I') return fail(r, CG_E_NONFINITE);
    }
    if (b[r->pos] == '0') r->pos++;
    else if (b[r->pos] >= '1' && b[r->pos] <= '9')
        while (r->pos < r->len && json_digit(b[r->pos])) r->pos++;
    else
        return fail(r, CG_E_SYNTAX);
    if (r->pos < r->len && b[r->pos] == '.') {
        *is_int = false;
        r->pos++;
        if (r->pos >= r->len) return fail(r, CG_E_TRUNCATED);
        if (!json_digit(b[r->pos])) return fail(r, CG_E_SYNTAX);
        while (r->pos < r->len && json_digit(b[r->pos])) r->pos++;
    }
    if (r->pos < r->len && (b[r->pos] == 'e' || b[r->pos] == 'E')) {
        *is_int = false;
        r->pos++;
        if (r->pos < r->len && (b[r->pos] == '+' || b[r->pos] == '-')) r->pos++;
        if (r->pos >= r->len) return fail(r, CG_E_TRUNCATED);
        if (!json_digit(b[r->pos])) return fail(r, CG_E_SYNTAX);
        while (r->pos < r->len && json_digit(b[r->pos])) r->pos++;
    }
    /* an integer literal of under 300 digits is always a finite double: skip the check */
    bool short_int = *is_int && r->pos - start < 300;
    if (!short_int && !cg_num_in_range((const char *)b + start, r->pos - start)) {
        uint32_t end = r->pos;
        r->pos = start;
        fail(r, CG_E_NUMBER_RANGE);
        r->pos = end;
        return CG_E_NUMBER_RANGE;
    }
    return 0;
}

static int read_literal(rd *r, const char *word, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        if (r->pos + i >= r->len) return fail(r, CG_E_TRUNCATED);
        if (r->b[r->pos + i] != (uint8_t)word[i]) {
            /* NaN and Infinity are not JSON, and get their own code */
            if (i == 0 && (r->b[r->pos] == 'N' || r->b[r->pos] == 'I')) return fail(r, CG_E_NONFINITE);
            return fail(r, CG_E_SYNTAX);
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

static void sift_down(const uint8_t *base, cg_key *k, uint32_t root, uint32_t n) {
    for (;;) {
        uint32_t child = 2 * root + 1;
        if (child >= n) return;
        if (child + 1 < n && cg_key_cmp(base, &k[child], &k[child + 1]) < 0) child++;
        if (cg_key_cmp(base, &k[root], &k[child]) >= 0) return;
        cg_key t = k[root];
        k[root] = k[child];
        k[child] = t;
        root = child;
    }
}

/* Heapsort: O(n log n) comparisons whatever the keys, and no extra memory. */
void cg_sort_keys(const uint8_t *base, cg_key *k, uint32_t n) {
    if (n < 2) return;
    for (uint32_t i = n / 2; i-- > 0;) sift_down(base, k, i, n);
    for (uint32_t end = n - 1; end > 0; end--) {
        cg_key t = k[0];
        k[0] = k[end];
        k[end] = t;
        sift_down(base, k, 0, end);
    }
}

/* Checks the keys of the object that just closed, then pops them. */
static int close_object(rd *r, uint32_t first) {
    cg_key *k = r->s->keys + first;
    uint32_t n = r->nkeys - first;
    r->nkeys = first;
    if (n < 2) return 0;
    if (n <= 16) {
        for (uint32_t i = 1; i < n; i++)
            for (uint32_t j = 0; j < i; j++)
                if (cg_key_cmp(r->b, &k[i], &k[j]) == 0) {
                    r->pos = k[i].off;
                    return fail(r, CG_E_DUPLICATE_KEY);
                }
        return 0;
    }
    cg_sort_keys(r->b, k, n);
    for (uint32_t i = 1; i < n; i++)
        if (cg_key_cmp(r->b, &k[i - 1], &k[i]) == 0) {
            r->pos = k[i].off > k[i - 1].off ? k[i].off : k[i - 1].off;
            return fail(r, CG_E_DUPLICATE_KEY);
        }
    return 0;
}

/* Reads `"key" :` at r->pos (after whitespace), pushes the key, returns it in *key. */
HOT int read_key(rd *r, cg_jstr *key) {
    skip_ws(r);
    if (r->pos >= r->len) return fail(r, CG_E_TRUNCATED);
    if (r->b[r->pos] != '"') return fail(r, CG_E_SYNTAX);
    uint32_t at = r->pos + 1;
    int rc = read_string(r, key);
    if (rc) return rc;
    if (r->nkeys >= r->s->max_keys || r->nkeys >= r->p->limits.max_keys) {
        r->pos = at - 1;
        return fail(r, CG_E_TOO_MANY_KEYS);
    }
    cg_key *k = &r->s->keys[r->nkeys++];
    k->off = at;
    k->len = key->n;
    k->esc = key->esc;
    k->hash = cg_jstr_hash(*key);
    skip_ws(r);
    if (r->pos >= r->len) return fail(r, CG_E_TRUNCATED);
    if (r->b[r->pos] != ':') return fail(r, CG_E_SYNTAX);
    r->pos++;
    return 0;
}

/* Reads one complete JSON value at r->pos (whitespace first). depth is the nesting of
   the containers around it that count toward max_depth. Fills v with its type and span. */
static int read_value(rd *r, uint32_t depth, cg_slot *v) {
    uint32_t *stk = r->s->stack; /* per open container: first key << 1 | is_object */
    uint32_t height = 0;
    uint32_t start = 0;
    int rc;
    cg_jstr str;
    for (;;) {
        /* a value is expected here */
        skip_ws(r);
        if (r->pos >= r->len) return fail(r, CG_E_TRUNCATED);
        uint8_t c = r->b[r->pos];
        uint32_t at = r->pos;
        uint8_t type;
        bool is_int = false;
        if (c == '{' || c == '[') {
            if (depth + height + 1 > r->p->limits.max_depth || height >= r->s->max_depth)
                return fail(r, CG_E_DEPTH);
            if (height == 0) start = at;
            stk[height++] = r->nkeys << 1 | (c == '{');
            r->pos++;
            skip_ws(r);
            if (r->pos >= r->len) return fail(r, CG_E_TRUNCATED);
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
        } else if (c == '-' || json_digit(c)) {
            if ((rc = read_number(r, &is_int))) return rc;
            type = CG_J_NUM;
        } else if (c == 't') {
            if ((rc = read_literal(r, "true", 4))) return rc;
            type = CG_J_TRUE;
        } else if (c == 'f') {
            if ((rc = read_literal(r, "false", 5))) return rc;
            type = CG_J_FALSE;
        } else if (c == 'n') {
            if ((rc = read_literal(r, "null", 4))) return rc;
            r->s->saw_null = 1;
            type = CG_J_NULL;
        } else if (c == 'N' || c == 'I') {
            return fail(r, CG_E_NONFINITE);
        } else {
            return fail(r, CG_E_SYNTAX);
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
            if (r->pos >= r->len) return fail(r, CG_E_TRUNCATED);
            uint32_t top = stk[height - 1];
            bool obj = top & 1;
            uint8_t d = r->b[r->pos];
            if (d == ',') {
                r->pos++;
                if (obj && (rc = read_key(r, &str))) return rc;
                break; /* read the next member's value */
            }
            if (d != (obj ? '}' : ']')) return fail(r, CG_E_SYNTAX);
            r->pos++;
            if (obj && (rc = close_object(r, top >> 1))) return rc;
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

/* A member value: strings and numbers (nearly all values) are read right here; anything
   else goes through read_value. */
HOT int read_member(rd *r, cg_slot *v) {
    skip_ws(r);
    if (r->pos < r->len) {
        uint8_t c = r->b[r->pos];
        uint32_t at = r->pos;
        int rc;
        if (c == '"') {
            cg_jstr str;
            if ((rc = read_string(r, &str))) return rc;
            v->type = CG_J_STR;
            v->esc = str.esc;
            v->off = at;
            v->len = r->pos - at;
            return 0;
        }
        if (c == '-' || json_digit(c)) {
            bool is_int;
            if ((rc = read_number(r, &is_int))) return rc;
            v->type = CG_J_NUM;
            v->num_int = is_int;
            v->off = at;
            v->len = r->pos - at;
            return 0;
        }
    }
    return read_value(r, 1, v);
}

/* The policy's field for (source, key), if any rule references it. */
HOT bool find_field(const cg_policy *p, uint32_t source, cg_jstr key, uint32_t key_hash,
                       uint32_t *field) {
    uint32_t h = cg_field_hash(source, key_hash);
    const uint32_t *slots = p->field_slots;
    for (uint32_t i = h & p->field_mask;; i = (i + 1) & p->field_mask) {
        uint32_t f = slots[2 * i];
        if (f == 0) return false;
        if (slots[2 * i + 1] != h) continue;
        const uint8_t *fe = p->fields + 12u * (f - 1);
        if (cg_rd32(fe) != source) continue;
        uint32_t n;
        const uint8_t *name = cg_str(p, cg_rd32(fe + 4), &n);
        if (cg_jstr_eq_raw(key, name, n)) {
            *field = f - 1;
            return true;
        }
    }
}

/* r->pos is at '{' of a source object (arguments, attributes or context): reads it and
   records the values of referenced fields. The object itself is at depth 1. */
static int read_source_object(rd *r, uint32_t source) {
    uint32_t first = r->nkeys;
    int rc;
    r->pos++;
    skip_ws(r);
    if (r->pos >= r->len) return fail(r, CG_E_TRUNCATED);
    if (r->b[r->pos] == '}') {
        r->pos++;
        return 0;
    }
    for (;;) {
        cg_jstr key;
        uint32_t first_of_key = r->nkeys;
        if ((rc = read_key(r, &key))) return rc;
        /* a referenced field's value is read straight into its slot (copying a slot built
           here by narrow stores would stall on the wide load of the copy) */
        uint32_t field;
        cg_slot unused;
        cg_slot *v = find_field(r->p, source, key, r->s->keys[first_of_key].hash, &field)
                         ? &r->s->slots[field] : &unused;
        v->esc = 0;
        v->num_int = 0;
        if ((rc = read_member(r, v))) return rc; /* the slot is stale until its gen is set */
        v->gen = r->s->gen;
        v->input = r->input;
        skip_ws(r);
        if (r->pos >= r->len) return fail(r, CG_E_TRUNCATED);
        if (r->b[r->pos] == ',') {
            r->pos++;
            continue;
        }
        if (r->b[r->pos] != '}') return fail(r, CG_E_SYNTAX);
        r->pos++;
        return close_object(r, first);
    }
}

/* The arguments value: an object, or (perso only) any value, which has no fields. */
static int read_args(rd *r) {
    skip_ws(r);
    if (r->pos >= r->len) return fail(r, CG_E_TRUNCATED);
    if (r->b[r->pos] == '{') return read_source_object(r, CG_SRC_ARGS);
    cg_slot v = {0, 0, 0, 0, 0, 0, 0};
    uint32_t at = r->pos;
    int rc = read_value(r, 0, &v);
    if (rc) return rc;
    if (!(r->p->flags & CG_FLAG_PERSO)) {
        r->pos = at;
        return fail(r, CG_E_TYPE);
    }
    return 0;
}

/* An attributes or context value: an object, or null meaning empty. */
static int read_attrs(rd *r, uint32_t source) {
    skip_ws(r);
    if (r->pos >= r->len) return fail(r, CG_E_TRUNCATED);
    if (r->b[r->pos] == '{') return read_source_object(r, source);
    if (r->b[r->pos] == 'n') {
        r->s->saw_null = 1;
        return read_literal(r, "null", 4);
    }
    cg_slot v = {0, 0, 0, 0, 0, 0, 0};
    uint32_t at = r->pos;
    int rc = read_value(r, 0, &v); /* a syntax error wins over a type error */
    if (rc) return rc;
    r->pos = at;
    return fail(r, CG_E_TYPE);
}

static int expect_end(rd *r) {
    skip_ws(r);
    if (r->pos != r->len) return fail(r, CG_E_TRAILING);
    return 0;
}

HOT int expect_char(rd *r, uint8_t c) {
    skip_ws(r);
    if (r->pos >= r->len) return fail(r, CG_E_TRUNCATED);
    if (r->b[r->pos] != c) return fail(r, CG_E_SYNTAX);
    r->pos++;
    return 0;
}

static rd reader(const cg_policy *p, cg_scratch *s, cg_input in) {
    rd r = {p, s, in.base, in.len, 0, 0, in.id};
    return r;
}

/* A JSON string at the current position (after whitespace), as the tool or the role. */
static int read_name(rd *r, cg_jstr *out) {
    skip_ws(r);
    if (r->pos >= r->len) return fail(r, CG_E_TRUNCATED);
    if (r->b[r->pos] != '"') {
        cg_slot v = {0, 0, 0, 0, 0, 0, 0};
        uint32_t at = r->pos;
        int rc = read_value(r, 0, &v);
        if (rc) return rc;
        r->pos = at;
        return fail(r, CG_E_TYPE);
    }
    return read_string(r, out);
}

int cg_read_request(const cg_policy *p, cg_scratch *s, cg_input in) {
    rd r = reader(p, s, in);
    int rc;
    if ((rc = expect_char(&r, '['))) return rc;
    if ((rc = read_name(&r, &s->tool))) return rc;
    if ((rc = expect_char(&r, ','))) return rc;
    if ((rc = read_name(&r, &s->role))) return rc;
    if ((rc = expect_char(&r, ','))) return rc;
    if ((rc = read_args(&r))) return rc;
    if ((rc = expect_char(&r, ','))) return rc;
    if ((rc = read_attrs(&r, CG_SRC_AGENT))) return rc;
    if ((rc = expect_char(&r, ','))) return rc;
    if ((rc = read_attrs(&r, CG_SRC_RESOURCE))) return rc;
    skip_ws(&r);
    if (r.pos < r.len && r.b[r.pos] == ',') {
        r.pos++;
        if ((rc = read_attrs(&r, CG_SRC_CONTEXT))) return rc;
    }
    if ((rc = expect_char(&r, ']'))) return rc;
    return expect_end(&r);
}

static bool key_is(cg_jstr k, const char *lit, uint32_t n) {
    return cg_jstr_eq_raw(k, (const uint8_t *)lit, n);
}

int cg_read_json(const cg_policy *p, cg_scratch *s, cg_input args, cg_input ctx) {
    rd r = reader(p, s, args);
    int rc;
    if ((rc = read_args(&r))) return rc;
    if ((rc = expect_end(&r))) return rc;

    rd c = reader(p, s, ctx);
    bool have_role = false;
    skip_ws(&c);
    if (c.pos >= c.len) return fail(&c, CG_E_TRUNCATED);
    if (c.b[c.pos] != '{') {
        cg_slot v = {0, 0, 0, 0, 0, 0, 0};
        if ((rc = read_value(&c, 0, &v))) return rc;
        c.pos = 0;
        return fail(&c, CG_E_TYPE);
    }
    c.pos++;
    skip_ws(&c);
    if (c.pos < c.len && c.b[c.pos] == '}') c.pos++;
    else
        for (;;) {
            cg_jstr key;
            if ((rc = read_key(&c, &key))) return rc;
            if (key_is(key, "role", 4)) {
                skip_ws(&c);
                if (c.pos >= c.len) return fail(&c, CG_E_TRUNCATED);
                if (c.b[c.pos] != '"') {
                    cg_slot v = {0, 0, 0, 0, 0, 0, 0};
                    if ((rc = read_value(&c, 0, &v))) return rc;
                    c.pos = v.off;
                    return fail(&c, CG_E_TYPE);
                }
                if ((rc = read_string(&c, &s->role))) return rc;
                have_role = true;
            } else if (key_is(key, "agent_attrs", 11)) {
                if ((rc = read_attrs(&c, CG_SRC_AGENT))) return rc;
            } else if (key_is(key, "resource_attrs", 14)) {
                if ((rc = read_attrs(&c, CG_SRC_RESOURCE))) return rc;
            } else if (key_is(key, "context", 7)) {
                if ((rc = read_attrs(&c, CG_SRC_CONTEXT))) return rc;
            } else {
                cg_slot v = {0, 0, 0, 0, 0, 0, 0};
                if ((rc = read_value(&c, 0, &v))) return rc;
            }
            skip_ws(&c);
            if (c.pos >= c.len) return fail(&c, CG_E_TRUNCATED);
            if (c.b[c.pos] == ',') {
                c.pos++;
                continue;
            }
            if (c.b[c.pos] != '}') return fail(&c, CG_E_SYNTAX);
            c.pos++;
            if ((rc = close_object(&c, 0))) return rc;
            break;
        }
    if ((rc = expect_end(&c))) return rc;
    if (!have_role) {
        c.pos = 0;
        return fail(&c, CG_E_NO_ROLE);
    }
    return 0;
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
