/*
 * cg_equal.c -- equality of two JSON values in the request text, for FieldEquals.
 *
 * Both values were validated by the reader (no duplicate keys, depth <= max_depth), so
 * this walks them without re-checking. Arrays compare element by element. Objects
 * compare as sets of key/value pairs: small objects by a scan, large ones by sorting both
 * key lists (in the scratch's key area, free once reading is done), so the cost stays
 * O(n log n) whatever the keys. Recursion depth is bounded by max_depth.
 */
#include "cg_internal.h"
#include "cg_num.h"

typedef struct val {
    const uint8_t *b;
    uint32_t len;   /* of the whole input */
    uint32_t off;   /* start of the value */
    uint32_t end;   /* one past its end */
} val;

static uint8_t type_at(const uint8_t *b, uint32_t off) {
    switch (b[off]) {
    case '{': return CG_J_OBJ;
    case '[': return CG_J_ARR;
    case '"': return CG_J_STR;
    case 't': return CG_J_TRUE;
    case 'f': return CG_J_FALSE;
    case 'n': return CG_J_NULL;
    default: return CG_J_NUM;
    }
}

static val val_at(const uint8_t *b, uint32_t len, uint32_t pos) {
    val v;
    v.b = b;
    v.len = len;
    v.off = cg_skip_ws(b, pos, len);
    v.end = cg_skip_value(b, v.off, len);
    return v;
}

static cg_jstr str_of(val v) {
    cg_jstr j = {v.b + v.off + 1, v.end - v.off - 2, false};
    for (uint32_t i = v.off + 1; i + 1 < v.end; i++)
        if (v.b[i] == '\\') {
            j.esc = true;
            break;
        }
    return j;
}

/* Collects the keys of object v into k (at most cap); returns how many. */
static uint32_t collect_keys(val v, cg_key *k, uint32_t cap) {
    uint32_t n = 0, pos = cg_skip_ws(v.b, v.off + 1, v.len);
    while (v.b[pos] != '}') {
        uint32_t kend = cg_skip_value(v.b, pos, v.len);
        if (n < cap) {
            cg_jstr js = {v.b + pos + 1, kend - pos - 2, false};
            for (uint32_t i = pos + 1; i + 1 < kend; i++)
                if (v.b[i] == '\\') js.esc = true;
            k[n].off = pos + 1;
            k[n].len = js.n;
            k[n].esc = js.esc;
            k[n].hash = cg_jstr_hash(js);
        }
        n++;
        pos = cg_skip_ws(v.b, kend, v.len); /* at ':' */
        pos = cg_skip_value(v.b, pos + 1, v.len);
        pos = cg_skip_ws(v.b, pos, v.len);
        if (v.b[pos] == ',') pos = cg_skip_ws(v.b, pos + 1, v.len);
    }
    return n;
}

/* The value that follows key k in object obj. */
static val member_value(val obj, const cg_key *k) {
    uint32_t pos = cg_skip_ws(obj.b, k->off + k->len + 1, obj.len); /* at ':' */
    return val_at(obj.b, obj.len, pos + 1);
}

/* Order of two keys that live in different inputs. */
static int key_cmp2(const uint8_t *bx, const cg_key *a, const uint8_t *by, const cg_key *b) {
    if (a->hash != b->hash) return a->hash < b->hash ? -1 : 1;
    cg_jstr x = {bx + a->off, a->len, a->esc != 0}, y = {by + b->off, b->len, b->esc != 0};
    return cg_jstr_cmp(x, y);
}

typedef struct eqctx {
    cg_scratch *s;
    uint32_t cap;   /* entries in s->keys */
    bool perso;
} eqctx;

static bool eq(eqctx *c, val x, val y, uint32_t ktop);

static bool eq_objects(eqctx *c, val x, val y, uint32_t ktop) {
    cg_key *kx = c->s->keys + ktop;
    uint32_t room = c->cap > ktop ? c->cap - ktop : 0;
    uint32_t nx = collect_keys(x, kx, room / 2);
    cg_key *ky = kx + (nx < room / 2 ? nx : room / 2);
    uint32_t ny = collect_keys(y, ky, room / 2);
    if (nx != ny) return false;
    /* the reader bounds keys per object by max_keys and the area holds 2 * max_keys per
       level chain, so this only fails on a misconfigured scratch: fail closed */
    if (nx > room / 2) return false;
    if (nx <= 16) {
        for (uint32_t i = 0; i < nx; i++) {
            uint32_t j = 0;
            while (j < ny && key_cmp2(x.b, &kx[i], y.b, &ky[j]) != 0) j++;
            if (j == ny) return false;
        }
        for (uint32_t i = 0; i < nx; i++) {
            uint32_t j = 0;
            while (key_cmp2(x.b, &kx[i], y.b, &ky[j]) != 0) j++;
            if (!eq(c, member_value(x, &kx[i]), member_value(y, &ky[j]), ktop + 2 * nx))
                return false;
        }
        return true;
    }
    cg_sort_keys(x.b, kx, nx);
    cg_sort_keys(y.b, ky, ny);
    for (uint32_t i = 0; i < nx; i++)
        if (key_cmp2(x.b, &kx[i], y.b, &ky[i]) != 0) return false;
    for (uint32_t i = 0; i < nx; i++)
        if (!eq(c, member_value(x, &kx[i]), member_value(y, &ky[i]), ktop + 2 * nx)) return false;
    return true;
}

static bool eq_arrays(eqctx *c, val x, val y, uint32_t ktop) {
    uint32_t px = cg_skip_ws(x.b, x.off + 1, x.len), py = cg_skip_ws(y.b, y.off + 1, y.len);
    for (;;) {
        bool endx = x.b[px] == ']', endy = y.b[py] == ']';
        if (endx || endy) return endx && endy;
        val ex = val_at(x.b, x.len, px), ey = val_at(y.b, y.len, py);
        if (!eq(c, ex, ey, ktop)) return false;
        px = cg_skip_ws(x.b, ex.end, x.len);
        py = cg_skip_ws(y.b, ey.end, y.len);
        if (x.b[px] == ',') px = cg_skip_ws(x.b, px + 1, x.len);
        if (y.b[py] == ',') py = cg_skip_ws(y.b, py + 1, y.len);
    }
}

static bool eq(eqctx *c, val x, val y, uint32_t ktop) {
    uint8_t tx = type_at(x.b, x.off), ty = type_at(y.b, y.off);
    if (tx != ty) return false;
    switch (tx) {
    case CG_J_NUM: {
        const char *a = (const char *)x.b + x.off, *b = (const char *)y.b + y.off;
        return c->perso ? cg_num_perso_equal(a, x.end - x.off, b, y.end - y.off) != 0
                        : cg_num_exact_equal(a, x.end - x.off, b, y.end - y.off) != 0;
    }
    case CG_J_STR: return cg_jstr_cmp(str_of(x), str_of(y)) == 0;
    case CG_J_ARR: return eq_arrays(c, x, y, ktop);
    case CG_J_OBJ: return eq_objects(c, x, y, ktop);
    default: return true; /* null, true, false: the type is the value */
    }
}

bool cg_values_equal(const cg_input *inputs, cg_scratch *s, const cg_slot *a, const cg_slot *b,
                     bool perso) {
    const cg_input *ia = &inputs[a->input], *ib = &inputs[b->input];
    val x = {ia->base, ia->len, a->off, a->off + a->len};
    val y = {ib->base, ib->len, b->off, b->off + b->len};
    eqctx c = {s, 2 * s->max_keys, perso};
    return eq(&c, x, y, 0);
}
