/*
 * cg_request.c -- the request reader: which keys of the request mean what.
 *
 * Two forms (callgate.h): the request array `["tool", "role", args, agent, resource(,
 * context(, principal))]` and the json form (arguments JSON, and a context object with
 * "role", "agent_attrs", "resource_attrs", "context", "principal"). For every top-level key of a source object
 * that the policy references it records where the value sits (a cg_slot); the scanner
 * (cg_scan.h) validates everything else.
 */
#include "cg_scan.h"

/* The policy's field for (source, key), if any rule references it. */
HOT bool find_field(const cg_policy *p, uint32_t source, cg_jstr key, uint32_t key_hash,
                       uint32_t *field) {
    uint32_t h = cg_field_hash(source, key_hash);
    const uint32_t *slots = p->field_slots;
    for (uint32_t i = h & p->field_mask;; i = (i + 1) & p->field_mask) {
        uint32_t f = slots[2 * i];
        if (f == 0) return false;
        if (slots[2 * i + 1] != h) continue;
        if (cg_field_source(p, f - 1) != source) continue;
        uint32_t n;
        const uint8_t *name = cg_str(p, cg_field_name(p, f - 1), &n);
        if (cg_jstr_eq_raw(key, name, n)) {
            *field = f - 1;
            return true;
        }
    }
}

/* r->pos is at '{' of a source object (arguments, attributes or context): reads it and
   records the values of referenced fields. The object itself is at depth 1. */
static int read_source_object(cg_rd *r, uint32_t source) {
    uint32_t first = r->nkeys;
    int rc;
    r->pos++;
    skip_ws(r);
    if (r->pos >= r->len) return cg_rd_fail(r, CG_E_TRUNCATED);
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
        if (r->pos >= r->len) return cg_rd_fail(r, CG_E_TRUNCATED);
        if (r->b[r->pos] == ',') {
            r->pos++;
            continue;
        }
        if (r->b[r->pos] != '}') return cg_rd_fail(r, CG_E_SYNTAX);
        r->pos++;
        return cg_close_object(r, first);
    }
}

/* A value of the wrong JSON type at r->pos: read it (a syntax error inside wins), then
   CG_E_TYPE at its start. */
static int type_error(cg_rd *r) {
    cg_slot v = {0, 0, 0, 0, 0, 0, 0};
    uint32_t at = r->pos;
    int rc = cg_read_value(r, 0, &v);
    if (rc) return rc;
    r->pos = at;
    return cg_rd_fail(r, CG_E_TYPE);
}

/* The arguments value: an object, or (perso only) any value, which has no fields. */
static int read_args(cg_rd *r) {
    skip_ws(r);
    if (r->pos >= r->len) return cg_rd_fail(r, CG_E_TRUNCATED);
    if (r->b[r->pos] == '{') return read_source_object(r, CG_SRC_ARGS);
    if (!(r->p->flags & CG_FLAG_PERSO)) return type_error(r);
    cg_slot v = {0, 0, 0, 0, 0, 0, 0};
    return cg_read_value(r, 0, &v);
}

/* An attributes or context value: an object, or null meaning empty. */
static int read_attrs(cg_rd *r, uint32_t source) {
    skip_ws(r);
    if (r->pos >= r->len) return cg_rd_fail(r, CG_E_TRUNCATED);
    if (r->b[r->pos] == '{') return read_source_object(r, source);
    if (r->b[r->pos] == 'n') {
        r->s->saw_null = 1;
        return cg_read_literal(r, "null", 4);
    }
    return type_error(r);
}

static int expect_end(cg_rd *r) {
    skip_ws(r);
    if (r->pos != r->len) return cg_rd_fail(r, CG_E_TRAILING);
    return 0;
}

HOT int expect_char(cg_rd *r, uint8_t c) {
    skip_ws(r);
    if (r->pos >= r->len) return cg_rd_fail(r, CG_E_TRUNCATED);
    if (r->b[r->pos] != c) return cg_rd_fail(r, CG_E_SYNTAX);
    r->pos++;
    return 0;
}

static cg_rd reader(const cg_policy *p, cg_scratch *s, cg_input in) {
    cg_rd r = {p, s, in.base, in.len, 0, 0, in.id};
    return r;
}

/* A JSON string at the current position (after whitespace), as the tool or the role. */
static int read_name(cg_rd *r, cg_jstr *out) {
    skip_ws(r);
    if (r->pos >= r->len) return cg_rd_fail(r, CG_E_TRUNCATED);
    if (r->b[r->pos] != '"') return type_error(r);
    return read_string(r, out);
}

int cg_read_request(const cg_policy *p, cg_scratch *s, cg_input in) {
    cg_rd r = reader(p, s, in);
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
    /* optional: the context, then the principal (null: none, its fields are missing) */
    skip_ws(&r);
    if (r.pos < r.len && r.b[r.pos] == ',') {
        r.pos++;
        if ((rc = read_attrs(&r, CG_SRC_CONTEXT))) return rc;
        skip_ws(&r);
        if (r.pos < r.len && r.b[r.pos] == ',') {
            r.pos++;
            if ((rc = read_attrs(&r, CG_SRC_PRINCIPAL))) return rc;
        }
    }
    if ((rc = expect_char(&r, ']'))) return rc;
    return expect_end(&r);
}

static bool key_is(cg_jstr k, const char *lit, uint32_t n) {
    return cg_jstr_eq_raw(k, (const uint8_t *)lit, n);
}

int cg_read_json(const cg_policy *p, cg_scratch *s, cg_input args, cg_input ctx) {
    cg_rd r = reader(p, s, args);
    int rc;
    if ((rc = read_args(&r))) return rc;
    if ((rc = expect_end(&r))) return rc;

    cg_rd c = reader(p, s, ctx);
    bool have_role = false;
    skip_ws(&c);
    if (c.pos >= c.len) return cg_rd_fail(&c, CG_E_TRUNCATED);
    if (c.b[c.pos] != '{') return type_error(&c);
    c.pos++;
    skip_ws(&c);
    if (c.pos < c.len && c.b[c.pos] == '}') c.pos++;
    else
        for (;;) {
            cg_jstr key;
            if ((rc = read_key(&c, &key))) return rc;
            if (key_is(key, "role", 4)) {
                skip_ws(&c);
                if (c.pos >= c.len) return cg_rd_fail(&c, CG_E_TRUNCATED);
                if (c.b[c.pos] != '"') return type_error(&c);
                if ((rc = read_string(&c, &s->role))) return rc;
                have_role = true;
            } else if (key_is(key, "agent_attrs", 11)) {
                if ((rc = read_attrs(&c, CG_SRC_AGENT))) return rc;
            } else if (key_is(key, "resource_attrs", 14)) {
                if ((rc = read_attrs(&c, CG_SRC_RESOURCE))) return rc;
            } else if (key_is(key, "context", 7)) {
                if ((rc = read_attrs(&c, CG_SRC_CONTEXT))) return rc;
            } else if (key_is(key, "principal", 9)) {
                if ((rc = read_attrs(&c, CG_SRC_PRINCIPAL))) return rc;
            } else {
                cg_slot v = {0, 0, 0, 0, 0, 0, 0};
                if ((rc = cg_read_value(&c, 0, &v))) return rc;
            }
            skip_ws(&c);
            if (c.pos >= c.len) return cg_rd_fail(&c, CG_E_TRUNCATED);
            if (c.b[c.pos] == ',') {
                c.pos++;
                continue;
            }
            if (c.b[c.pos] != '}') return cg_rd_fail(&c, CG_E_SYNTAX);
            c.pos++;
            if ((rc = cg_close_object(&c, 0))) return rc;
            break;
        }
    if ((rc = expect_end(&c))) return rc;
    if (!have_role) {
        c.pos = 0;
        return cg_rd_fail(&c, CG_E_NO_ROLE);
    }
    return 0;
}
