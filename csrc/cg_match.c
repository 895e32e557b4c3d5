/*
 * cg_match.c -- the value-level work of policy v2 leaves (docs/policy-v2.md):
 * walking paths through request JSON, globs over decoded strings, RFC 3339 instants and
 * time windows.
 *
 * Everything here works on request text that the reader has already validated in full, so
 * values are walked without re-checking their syntax. Nothing allocates; every function
 * runs in time linear in the bytes it walks plus the descriptor it reads.
 */
#include "cg_internal.h"
#include "cg_num.h"


/* ---- values in request text ---- */

uint32_t cg_value_at(const uint8_t *b, uint32_t pos, uint32_t len, cg_slot *v) {
    pos = cg_skip_ws(b, pos, len);
    uint8_t c = b[pos];
    uint32_t end = pos + 1;
    v->esc = 0;
    v->num_int = 0;
    switch (c) {
    case '"':
        while (b[end] != '"') {
            if (b[end] == '\\') {
                v->esc = 1;
                end++;
            }
            end++;
        }
        end++;
        v->type = CG_J_STR;
        break;
    case '{':
    case '[':
        end = cg_skip_value(b, pos, len);
        v->type = c == '{' ? CG_J_OBJ : CG_J_ARR;
        break;
    case 't': end = pos + 4; v->type = CG_J_TRUE; break;
    case 'f': end = pos + 5; v->type = CG_J_FALSE; break;
    case 'n': end = pos + 4; v->type = CG_J_NULL; break;
    default: { /* a number */
        bool is_int = true;
        end = pos;
        while (end < len) {
            uint8_t d = b[end];
            if (d == '.' || d == 'e' || d == 'E') is_int = false;
            else if (!((d >= '0' && d <= '9') || d == '-' || d == '+')) break;
            end++;
        }
        v->type = CG_J_NUM;
        v->num_int = is_int;
        break;
    }
    }
    v->off = pos;
    v->len = end - pos;
    return end;
}

/* An array token: "0" or a decimal without leading zeros that fits in a u32. */
static bool array_index(const uint8_t *t, uint32_t n, uint32_t *out) {
    if (n == 0 || n > 10 || (n > 1 && t[0] == '0')) return false;
    uint64_t v = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (t[i] < '0' || t[i] > '9') return false;
        v = v * 10 + (uint64_t)(t[i] - '0');
    }
    if (v > 0xffffffffu) return false;
    *out = (uint32_t)v;
    return true;
}

/* One step down from v (an object or array) by a token; false when it does not exist. */
static bool step(const cg_input *in, cg_slot *v, const uint8_t *tok, uint32_t tn) {
    const uint8_t *b = in[v->input].base;
    uint32_t len = in[v->input].len;
    uint32_t pos = v->off + 1;
    if (v->type == CG_J_OBJ) {
        for (;;) {
            pos = cg_skip_ws(b, pos, len);
            if (b[pos] == '}') return false;
            cg_slot k;
            uint32_t after = cg_value_at(b, pos, len, &k);
            cg_jstr key = {b + k.off + 1, k.len - 2, k.esc != 0};
            pos = cg_skip_ws(b, after, len) + 1; /* past ':' */
            if (cg_jstr_eq_raw(key, tok, tn)) {
                cg_value_at(b, pos, len, v);
                return true;
            }
            pos = cg_skip_ws(b, cg_skip_value(b, pos, len), len);
            if (b[pos] == ',') pos++;
        }
    }
    uint32_t idx;
    if (v->type != CG_J_ARR || !array_index(tok, tn, &idx)) return false;
    for (uint32_t i = 0;; i++) {
        pos = cg_skip_ws(b, pos, len);
        if (b[pos] == ']') return false;
        if (i == idx) {
            cg_value_at(b, pos, len, v);
            return true;
        }
        pos = cg_skip_ws(b, cg_skip_value(b, pos, len), len);
        if (b[pos] == ',') pos++;
    }
}

bool cg_path_walk(const cg_policy *p, const cg_input *in, uint32_t path, cg_slot *v) {
    uint32_t n = cg_word(p, path + CG_PATH_COUNT);
    if ((n & CG_PATH_KEY) && v->type != CG_J_OBJ) return false; /* a field of a non-object */
    n &= ~CG_PATH_KEY;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t tn;
        const uint8_t *tok = cg_str(p, cg_path_token(p, path, i), &tn);
        if (!step(in, v, tok, tn)) return false;
    }
    return true;
}

uint32_t cg_array_length(const cg_input *in, const cg_slot *v) {
    const uint8_t *b = in[v->input].base;
    uint32_t len = in[v->input].len, pos = v->off + 1, n = 0;
    for (;;) {
        pos = cg_skip_ws(b, pos, len);
        if (b[pos] == ']') return n;
        n++;
        pos = cg_skip_ws(b, cg_skip_value(b, pos, len), len);
        if (b[pos] == ',') pos++;
    }
}

uint32_t cg_str_length(cg_jstr s) {
    uint32_t n = 0;
    if (!s.esc) {
        for (uint32_t i = 0; i < s.n; i++) n += (s.p[i] & 0xC0) != 0x80;
        return n;
    }
    cg_dec d = cg_dec_of(s);
    for (int c; (c = cg_dec_next(&d)) >= 0;) n += (c & 0xC0) != 0x80;
    return n;
}

/* ---- globs ----
   A glob descriptor {n_parts, (part_sid, kmp_word) x n_parts} is the pattern split at `*`.
   With parts P0 .. Pk: the string starts with P0, ends with Pk (not overlapping P0), and
   holds P1 .. Pk-1 in order in between; taking each middle part leftmost (KMP) is optimal.
   Bytes are UTF-8 on both sides, and a valid UTF-8 pattern matches valid UTF-8 text only
   at character boundaries, so bytes give the code point semantics. */

typedef struct part {
    const uint8_t *s;
    uint32_t n;
    uint32_t fail; /* words index of the failure function */
} part;

static part part_of(const cg_policy *p, uint32_t glob, uint32_t k) {
    part r;
    r.s = cg_str(p, cg_glob_part(p, glob, k), &r.n);
    r.fail = cg_glob_kmp(p, glob, k);
    return r;
}

/* One KMP step: the state j (bytes of P matched) after reading c; j < P.n on entry. */
static inline uint32_t kmp_step(const cg_policy *p, const part *P, uint32_t j, uint8_t c) {
    while (j > 0 && P->s[j] != c) j = cg_word(p, P->fail + j - 1);
    return P->s[j] == c ? j + 1 : 0;
}

/* Glob over bytes in memory (a string without escapes, or one component of it). */
static bool glob_mem(const cg_policy *p, uint32_t glob, const uint8_t *t, uint32_t n) {
    uint32_t np = cg_word(p, glob + CG_GLOB_COUNT);
    part first = part_of(p, glob, 0);
    if (np == 1) return n == first.n && cg_memcmp(t, first.s, n) == 0;
    part last = part_of(p, glob, np - 1);
    if (n < first.n || cg_memcmp(t, first.s, first.n) != 0) return false;
    uint32_t i = first.n;
    if (n - i < last.n || cg_memcmp(t + n - last.n, last.s, last.n) != 0) return false;
    uint32_t lim = n - last.n;
    for (uint32_t k = 1; k + 1 < np; k++) {
        part P = part_of(p, glob, k);
        uint32_t j = 0;
        while (j < P.n) {
            if (i >= lim) return false;
            j = kmp_step(p, &P, j, t[i++]);
        }
    }
    return true;
}

/* The same glob as a state machine fed one decoded byte at a time. */
typedef struct gm {
    uint32_t glob, np, k, j;
    part P;
    bool dead;
} gm;

static void gm_part(const cg_policy *p, gm *g) {
    for (;;) {
        g->P = part_of(p, g->glob, g->k);
        if (g->P.n == 0 && g->k + 1 < g->np) g->k++; /* an empty part matches at once */
        else break;
    }
    g->j = 0;
}

static void gm_init(const cg_policy *p, gm *g, uint32_t glob) {
    g->glob = glob;
    g->np = cg_word(p, glob + CG_GLOB_COUNT);
    g->k = 0;
    g->dead = false;
    g->P = part_of(p, glob, 0);
    g->j = 0;
    if (g->P.n == 0 && g->np > 1) {
        g->k = 1;
        gm_part(p, g);
    }
}

static void gm_feed(const cg_policy *p, gm *g, uint8_t c) {
    if (g->dead) return;
    if (g->k == 0) { /* the anchored first part (the whole pattern when np == 1) */
        if (g->j < g->P.n && g->P.s[g->j] == c) g->j++;
        else g->dead = true;
        if (g->j == g->P.n && g->np > 1) {
            g->k = 1;
            gm_part(p, g);
        }
        return;
    }
    if (g->k + 1 < g->np) { /* a middle part: leftmost occurrence */
        g->j = kmp_step(p, &g->P, g->j, c);
        if (g->j == g->P.n) {
            g->k++;
            gm_part(p, g);
        }
        return;
    }
    /* the last part: it must end the string, so keep the longest match of its prefix */
    if (g->P.n == 0) return;
    if (g->j == g->P.n) g->j = cg_word(p, g->P.fail + g->j - 1);
    g->j = kmp_step(p, &g->P, g->j, c);
}

static bool gm_ok(const gm *g) { return !g->dead && g->k + 1 == g->np && g->j == g->P.n; }

/* Whether the result is settled whatever follows (the last part is empty). */
static bool gm_settled(const gm *g) { return g->dead || (g->k + 1 == g->np && g->k > 0 && g->P.n == 0); }

bool cg_glob_match(const cg_policy *p, uint32_t glob, cg_jstr s) {
    if (!s.esc) return glob_mem(p, glob, s.p, s.n);
    gm g;
    gm_init(p, &g, glob);
    cg_dec d = cg_dec_of(s);
    for (int c; !gm_settled(&g) && (c = cg_dec_next(&d)) >= 0;) gm_feed(p, &g, (uint8_t)c);
    return gm_ok(&g);
}

/* A PathGlob {n_components, glob_word x n}: as many `/`-separated components as globs,
   each matching its glob. */
bool cg_pglob_match(const cg_policy *p, uint32_t pglob, cg_jstr s) {
    uint32_t nc = cg_word(p, pglob + CG_PGLOB_COUNT);
    if (!s.esc) {
        uint32_t start = 0, comp = 0;
        for (uint32_t i = 0;; i++) {
            if (i < s.n && s.p[i] != '/') continue;
            if (comp >= nc || !glob_mem(p, cg_pglob_glob(p, pglob, comp), s.p + start, i - start))
                return false;
            comp++;
            if (i == s.n) return comp == nc;
            start = i + 1;
        }
    }
    uint32_t comp = 0;
    gm g;
    gm_init(p, &g, cg_pglob_glob(p, pglob, 0));
    cg_dec d = cg_dec_of(s);
    for (int c; (c = cg_dec_next(&d)) >= 0;) {
        if (c != '/') {
            gm_feed(p, &g, (uint8_t)c);
            continue;
        }
        if (!gm_ok(&g) || ++comp >= nc) return false;
        gm_init(p, &g, cg_pglob_glob(p, pglob, comp));
    }
    return gm_ok(&g) && comp + 1 == nc;
}

/* ---- instants ---- */

static int64_t days_from_civil(int64_t y, uint32_t m, uint32_t d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    uint32_t yoe = (uint32_t)(y - era * 400);
    uint32_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    uint32_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool leap(uint32_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* n decimal digits from the source; false if any is not a digit. */
static bool digits(cg_dec *d, int n, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < n; i++) {
        int c = cg_dec_next(d);
        if (c < '0' || c > '9') return false;
        v = v * 10 + (uint32_t)(c - '0');
    }
    *out = v;
    return true;
}

static bool lit(cg_dec *d, int c) { return cg_dec_next(d) == c; }

/* RFC 3339 `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)` (T and Z in either case) to Unix
   seconds, the fraction dropped (floor: the fraction is never negative). */
static bool rfc3339(cg_jstr s, int64_t *out) {
    static const uint8_t mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    cg_dec d = cg_dec_of(s);
    uint32_t y, mo, da, h, mi, se, oh = 0, om = 0;
    if (!digits(&d, 4, &y) || !lit(&d, '-') || !digits(&d, 2, &mo) || !lit(&d, '-') ||
        !digits(&d, 2, &da))
        return false;
    int c = cg_dec_next(&d);
    if (c != 'T' && c != 't') return false;
    if (!digits(&d, 2, &h) || !lit(&d, ':') || !digits(&d, 2, &mi) || !lit(&d, ':') ||
        !digits(&d, 2, &se))
        return false;
    if (mo < 1 || mo > 12 || da < 1 || da > (uint32_t)(mdays[mo - 1] + (mo == 2 && leap(y))) || h > 23 ||
        mi > 59 || se > 59)
        return false;
    c = cg_dec_next(&d);
    if (c == '.') {
        int n = 0;
        while ((c = cg_dec_next(&d)) >= '0' && c <= '9') n++;
        if (n == 0) return false;
    }
    int64_t sign = 0;
    if (c == '+' || c == '-') {
        sign = c == '+' ? 1 : -1;
        if (!digits(&d, 2, &oh) || !lit(&d, ':') || !digits(&d, 2, &om) || oh > 23 || om > 59)
            return false;
    } else if (c != 'Z' && c != 'z') {
        return false;
    }
    if (cg_dec_next(&d) >= 0) return false;
    *out = days_from_civil(y, mo, da) * 86400 + h * 3600 + mi * 60 + se -
           sign * (int64_t)(oh * 3600 + om * 60);
    return true;
}

bool cg_instant(const cg_input *in, const cg_slot *x, uint32_t *out) {
    const uint8_t *lit_ = in[x->input].base + x->off;
    if (x->type == CG_J_NUM) {
        double d = 0;
        cg_num_to_double((const char *)lit_, x->len, &d);
        if (!(d >= 0 && d < (double)CG_TIME_END)) return false;
        *out = (uint32_t)d; /* truncation is the floor of a non-negative number */
        return true;
    }
    if (x->type != CG_J_STR) return false;
    cg_jstr s = {lit_ + 1, x->len - 2, x->esc != 0};
    int64_t t;
    if (!rfc3339(s, &t) || t < 0 || t >= (int64_t)CG_TIME_END) return false;
    *out = (uint32_t)t;
    return true;
}

/* window {days, start, end, n, (utc_start, offset) x n} */
bool cg_window_holds(const cg_policy *p, uint32_t w, uint32_t t) {
    uint32_t days = cg_word(p, w + CG_WINDOW_DAYS), start = cg_word(p, w + CG_WINDOW_START);
    uint32_t end = cg_word(p, w + CG_WINDOW_END), n = cg_word(p, w + CG_WINDOW_COUNT);
    uint32_t lo = 0, hi = n; /* the last entry whose utc_start <= t (the first is 0) */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (cg_window_utc_start(p, w, mid) <= t) lo = mid;
        else hi = mid;
    }
    int64_t local = (int64_t)t + cg_window_offset(p, w, lo);
    int64_t day = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
    uint32_t minute = (uint32_t)(local - day * 86400) / 60;
    uint32_t wday = (uint32_t)(((day % 7) + 7 + 3) % 7); /* 1970-01-01 was a Thursday */
    bool today = (days >> wday) & 1, yesterday = (days >> ((wday + 6) % 7)) & 1;
    if (start < end) return today && minute >= start && minute < end;
    return (today && minute >= start) || (yesterday && minute < end);
}
