/*
 * cg_event.c -- the audit trail's decision events, built from the request bytes that were
 * evaluated (docs/audit.md, "The writer").
 *
 * For each event the batch call re-reads the request with the strict reader (computing the
 * reason does that, so bytes that were altered since the decision are refused, never
 * trusted), then writes one envelope line
 *     {"hash":"<64 placeholder bytes>","record":<canonical event JSON>}\n
 * whose record is byte for byte what the Python builder and orjson (sorted keys) make of
 * the same event. The chain hashes are computed by the caller (SHA-256 is hashlib's job)
 * and written into the placeholders with cg_event_fill_hashes.
 *
 * What this file does not reproduce it leaves to the Python builder: the call stops at such
 * an event with stop = CG_EVENT_STOP_PYTHON (a float in the json form, whose canonical
 * text is orjson's shortest round-trip form; an integer of 19 digits or more; nesting
 * deeper than CG_EVENT_MAX_DEPTH; a reason that does not fit tmp), or with
 * CG_EVENT_STOP_FULL when an output buffer is full (grow it and call again from there).
 */
#include "cg_event.h"
#include "cg_internal.h"

#define CG_EVENT_MAX_DEPTH 128u
#define CG_EVENT_MAX_BATCH (1u << 24) /* events per call: every index product below fits 32 bits */
#define ENVELOPE_HEAD "{\"hash\":\""
#define ENVELOPE_MID "\",\"record\":"

typedef struct writer {
    uint8_t *p;
    size_t n, cap;
    bool full;
} writer;

typedef struct canon {
    const uint8_t *b;          /* the input the values are in */
    uint32_t len;
    bool trust_floats;         /* number text written by orjson: already canonical */
    bool python;               /* met something only the Python builder reproduces */
    cg_event_member *work;     /* member stack for sorting keys */
    uint32_t work_cap, work_top;
    bool work_full;
} canon;

static void put(writer *w, const void *src, size_t n) {
    if (w->full || n > w->cap - w->n) {
        w->full = true;
        return;
    }
    cg_memcpy(w->p + w->n, src, n);
    w->n += n;
}

#define PUT_LIT(w, s) put((w), (s), sizeof(s) - 1)

static void put_byte(writer *w, uint8_t c) { put(w, &c, 1); }

static size_t cg_strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

static void put_u64(writer *w, uint64_t v) {
    char buf[20];
    int i = 20;
    do buf[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    put(w, buf + i, (size_t)(20 - i));
}

static const char HEX[] = "0123456789abcdef";

/* One decoded byte of a string, escaped as orjson (and json.dumps with ensure_ascii=False)
   write it: the two-character escapes where JSON has them, \u00XX for other control
   characters, every other byte (UTF-8 included, DEL included) as itself. */
static void put_escaped(writer *w, uint8_t c) {
    char e[6] = {'\\', 0, '0', '0', 0, 0};
    switch (c) {
    case '"': e[1] = '"'; put(w, e, 2); return;
    case '\\': e[1] = '\\'; put(w, e, 2); return;
    case '\b': e[1] = 'b'; put(w, e, 2); return;
    case '\f': e[1] = 'f'; put(w, e, 2); return;
    case '\n': e[1] = 'n'; put(w, e, 2); return;
    case '\r': e[1] = 'r'; put(w, e, 2); return;
    case '\t': e[1] = 't'; put(w, e, 2); return;
    default:
        if (c >= 0x20) {
            put_byte(w, c);
            return;
        }
        e[1] = 'u';
        e[4] = HEX[c >> 4];
        e[5] = HEX[c & 15];
        put(w, e, 6);
    }
}

/* The canonical text of a validated string literal (without its quotes in s). */
static void put_jstr(writer *w, cg_jstr s) {
    put_byte(w, '"');
    if (!s.esc) {
        /* the common case: no escapes in the input, so only control characters, quotes and
           backslashes could need one, and a literal without escapes has none of those */
        put(w, s.p, s.n);
    } else {
        cg_dec d = cg_dec_of(s);
        for (int c; (c = cg_dec_next(&d)) >= 0;) put_escaped(w, (uint8_t)c);
    }
    put_byte(w, '"');
}

static void put_raw_string(writer *w, const uint8_t *s, size_t n) {
    put_byte(w, '"');
    for (size_t i = 0; i < n; i++) put_escaped(w, s[i]);
    put_byte(w, '"');
}

/* ---- sorting an object's members by decoded key (code point order = UTF-8 byte order) */

static cg_jstr member_key(const canon *c, const cg_event_member *m) {
    cg_jstr k = {c->b + m->key_off, m->key_len, m->esc != 0};
    return k;
}

static int member_cmp(const canon *c, const cg_event_member *a, const cg_event_member *b) {
    return cg_jstr_cmp(member_key(c, a), member_key(c, b));
}

static int member_order(const void *c, const void *a, const void *b) {
    return member_cmp(c, a, b);
}

/* Small objects (nearly all) by insertion, the others by the core's heapsort (cg_util.c):
   in place and O(n log n) for any object. */
static void sort_members(const canon *c, cg_event_member *m, uint32_t n) {
    if (n < 2) return;
    if (n <= 8) { /* insertion sort for the small objects that are nearly all of them */
        for (uint32_t i = 1; i < n; i++) {
            cg_event_member t = m[i];
            uint32_t j = i;
            while (j > 0 && member_cmp(c, &m[j - 1], &t) > 0) {
                m[j] = m[j - 1];
                j--;
            }
            m[j] = t;
        }
        return;
    }
    cg_heapsort(m, n, sizeof *m, member_order, c);
}

/* ---- canonical JSON of one validated value ---- */

static void put_number(writer *w, canon *c, const cg_slot *v) {
    const uint8_t *t = c->b + v->off;
    uint32_t n = v->len;
    if (!v->num_int) {
        if (!c->trust_floats) c->python = true;
        else put(w, t, n);
        return;
    }
    uint32_t digits = n - (t[0] == '-');
    if (digits > 18) { /* near or past 64 bits: orjson may refuse it, the builder decides */
        c->python = true;
        return;
    }
    if (n == 2 && t[0] == '-' && t[1] == '0') { /* -0 reads as the integer 0 */
        put_byte(w, '0');
        return;
    }
    put(w, t, n);
}

static void put_slot(writer *w, canon *c, const cg_slot *v, uint32_t depth);

static void put_array(writer *w, canon *c, const cg_slot *v, uint32_t depth) {
    uint32_t pos = cg_skip_ws(c->b, v->off + 1, c->len);
    put_byte(w, '[');
    bool first = true;
    while (c->b[pos] != ']' && !c->python && !w->full) {
        if (!first) put_byte(w, ',');
        first = false;
        cg_slot e;
        uint32_t after = cg_value_at(c->b, pos, c->len, &e);
        put_slot(w, c, &e, depth + 1);
        pos = cg_skip_ws(c->b, after, c->len);
        if (c->b[pos] == ',') pos = cg_skip_ws(c->b, pos + 1, c->len);
    }
    put_byte(w, ']');
}

static void put_object(writer *w, canon *c, const cg_slot *v, uint32_t depth) {
    uint32_t base = c->work_top, n = 0;
    uint32_t pos = cg_skip_ws(c->b, v->off + 1, c->len);
    while (c->b[pos] != '}') {
        if (c->work_top >= c->work_cap) {
            c->work_full = true;
            c->work_top = base;
            return;
        }
        cg_slot k;
        uint32_t after = cg_value_at(c->b, pos, c->len, &k);
        cg_event_member *m = &c->work[c->work_top++];
        m->key_off = k.off + 1;
        m->key_len = k.len - 2;
        m->esc = k.esc;
        m->value = cg_skip_ws(c->b, after, c->len) + 1; /* past ':' */
        pos = cg_skip_ws(c->b, cg_skip_value(c->b, m->value, c->len), c->len);
        if (c->b[pos] == ',') pos = cg_skip_ws(c->b, pos + 1, c->len);
        n++;
    }
    cg_event_member *m = c->work + base;
    sort_members(c, m, n);
    put_byte(w, '{');
    for (uint32_t i = 0; i < n && !c->python && !c->work_full && !w->full; i++) {
        if (i) put_byte(w, ',');
        put_jstr(w, member_key(c, &m[i]));
        put_byte(w, ':');
        cg_slot v;
        cg_value_at(c->b, m[i].value, c->len, &v);
        put_slot(w, c, &v, depth + 1);
    }
    put_byte(w, '}');
    c->work_top = base;
}

static void put_slot(writer *w, canon *c, const cg_slot *v, uint32_t depth) {
    switch (v->type) {
    case CG_J_NULL: PUT_LIT(w, "null"); return;
    case CG_J_TRUE: PUT_LIT(w, "true"); return;
    case CG_J_FALSE: PUT_LIT(w, "false"); return;
    case CG_J_NUM: put_number(w, c, v); return;
    case CG_J_STR: {
        cg_jstr s = {c->b + v->off + 1, v->len - 2, v->esc != 0};
        put_jstr(w, s);
        return;
    }
    default:
        if (depth >= CG_EVENT_MAX_DEPTH) {
            c->python = true;
            return;
        }
        if (v->type == CG_J_ARR) put_array(w, c, v, depth);
        else put_object(w, c, v, depth);
    }
}

/* A top-level part of the event (args, attributes, ...), or `absent` when the request
   has none. */
static void put_part(writer *w, canon *c, const cg_slot *v, bool present, const char *absent) {
    if (present) put_slot(w, c, v, 0);
    else put(w, absent, cg_strlen(absent));
}

/* Python's truth value of a JSON value (an empty or zero context is left out). */
static bool truthy(const canon *c, const cg_slot *v) {
    const uint8_t *t = c->b + v->off;
    switch (v->type) {
    case CG_J_NULL:
    case CG_J_FALSE: return false;
    case CG_J_TRUE: return true;
    case CG_J_STR: return v->len > 2;
    case CG_J_NUM:
        for (uint32_t i = 0; i < v->len && t[i] != 'e' && t[i] != 'E'; i++)
            if (t[i] >= '1' && t[i] <= '9') return true;
        return false;
    default: return cg_skip_ws(c->b, v->off + 1, c->len) != v->off + v->len - 1;
    }
}

/* ---- the parts of one request ---- */

typedef struct parts {
    cg_slot tool, role, args, agent, resource, context;
    bool has_role, has_agent, has_resource, has_context;
} parts;

static void request_parts(const canon *c, parts *p) {
    cg_slot *order[6] = {&p->tool, &p->role, &p->args, &p->agent, &p->resource, &p->context};
    uint32_t pos = cg_skip_ws(c->b, 0, c->len) + 1; /* past '[' */
    uint32_t i = 0;
    for (; i < 6; i++) {
        pos = cg_skip_ws(c->b, pos, c->len);
        if (c->b[pos] == ']') break;
        pos = cg_skip_ws(c->b, cg_value_at(c->b, pos, c->len, order[i]), c->len);
        if (c->b[pos] == ',') pos++;
    }
    p->has_role = p->has_agent = p->has_resource = true; /* the reader refused a request without them */
    p->has_context = i == 6;
}

static void context_parts(const canon *c, parts *p) {
    p->has_role = p->has_agent = p->has_resource = p->has_context = false;
    uint32_t pos = cg_skip_ws(c->b, 0, c->len) + 1; /* past '{' */
    for (;;) {
        pos = cg_skip_ws(c->b, pos, c->len);
        if (c->b[pos] == '}') return;
        cg_slot k, v;
        uint32_t after = cg_value_at(c->b, pos, c->len, &k);
        cg_jstr key = {c->b + k.off + 1, k.len - 2, k.esc != 0};
        pos = cg_skip_ws(c->b, after, c->len) + 1; /* past ':' */
        pos = cg_skip_ws(c->b, cg_value_at(c->b, pos, c->len, &v), c->len);
        if (c->b[pos] == ',') pos++;
        if (cg_jstr_eq_raw(key, (const uint8_t *)"role", 4)) p->role = v, p->has_role = true;
        else if (cg_jstr_eq_raw(key, (const uint8_t *)"agent_attrs", 11)) p->agent = v, p->has_agent = true;
        else if (cg_jstr_eq_raw(key, (const uint8_t *)"resource_attrs", 14))
            p->resource = v, p->has_resource = true;
        else if (cg_jstr_eq_raw(key, (const uint8_t *)"context", 7)) p->context = v, p->has_context = true;
    }
}

/* ---- fixed-width texts ---- */

/* "YYYY-MM-DDTHH:MM:SS.ffffffZ" (27 bytes) for Unix time t_ns, as the Python clock writes it
   (time.gmtime); false outside years 1970-9999. Days to civil date: the usual era-based
   conversion of the proleptic Gregorian calendar. */
#define TIMESTAMP_LEN 27u
static bool format_time(int64_t t_ns, uint8_t out[TIMESTAMP_LEN]) {
    if (t_ns < 0) return false;
    uint64_t us = (uint64_t)t_ns / 1000u, secs = us / 1000000u, frac = us % 1000000u;
    uint64_t days = secs / 86400u, rem = secs % 86400u;
    uint64_t z = days + 719468u, era = z / 146097u, doe = z - era * 146097u;
    uint64_t yoe = (doe - doe / 1460u + doe / 36524u - doe / 146096u) / 365u;
    uint64_t doy = doe - (365u * yoe + yoe / 4u - yoe / 100u), mp = (5u * doy + 2u) / 153u;
    uint64_t day = doy - (153u * mp + 2u) / 5u + 1u, month = mp < 10u ? mp + 3u : mp - 9u;
    uint64_t year = yoe + era * 400u + (month <= 2u);
    if (year > 9999u) return false;
    uint64_t fields[7] = {year, month, day, rem / 3600u, rem / 60u % 60u, rem % 60u, frac};
    static const uint8_t widths[7] = {4, 2, 2, 2, 2, 2, 6};
    static const char seps[7] = {'-', '-', 'T', ':', ':', '.', 'Z'};
    uint32_t at = 0;
    for (int f = 0; f < 7; f++) {
        for (int d = widths[f] - 1; d >= 0; d--) {
            out[at + (uint32_t)d] = (uint8_t)('0' + fields[f] % 10u);
            fields[f] /= 10u;
        }
        at += widths[f];
        out[at++] = (uint8_t)seps[f];
    }
    return true;
}

/* A version 4 UUID's text from 16 random bytes, as callgate.audit.builder.Ids writes it. */
#define UUID_LEN 36u
static void format_uuid(const uint8_t r[16], uint8_t out[UUID_LEN]) {
    uint32_t at = 0;
    for (uint32_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[at++] = '-';
        uint8_t hi = r[i] >> 4, lo = r[i] & 15;
        if (i == 6) hi = 4;                /* version 4 */
        if (i == 8) hi = 8 | (hi & 3);     /* the RFC 4122 variant */
        out[at++] = (uint8_t)HEX[hi];
        out[at++] = (uint8_t)HEX[lo];
    }
}

/* ---- the batch ---- */

static const char *const DECISION_NAMES[3] = {"\"Deny\"", "\"Allow\"", "\"Elevate\""};

int64_t cg_event_build(void *scratch, cg_event_batch *batch) {
    cg_scratch *s = scratch;
    if (!s || !batch || !batch->spans || !batch->results || !batch->times_ns || !batch->random ||
        !batch->out || !batch->info || !batch->cols || !batch->tmp || !batch->work ||
        batch->at > batch->n || (batch->form != 0 && batch->form != 1))
        return CG_E_ARG;
    if (!batch->people || !batch->people_spans) return CG_E_ARG;
    for (int k = 0; k < 4; k++)
        if (!batch->fixed[k] || !batch->fixed_len[k]) return CG_E_ARG;
    if (batch->out_cap > UINT32_MAX || batch->cols_cap > UINT32_MAX || batch->out_len > batch->out_cap ||
        batch->cols_len > batch->cols_cap || !batch->requests || batch->n > CG_EVENT_MAX_BATCH)
        return CG_E_ARG;

    uint32_t per = batch->form == 0 ? 1u : 3u;
    /* where event `at` starts in the requests, and in the people: every principal, then
       every trace id */
    size_t at = 0, people_at[2] = {0, 0};
    for (uint32_t i = 0; i < batch->n; i++) {
        uint32_t pn = batch->people_spans[i];
        if (pn != CG_EVENT_NONE) people_at[1] += pn;
    }
    for (uint32_t i = 0; i < batch->at; i++) {
        for (uint32_t k = 0; k < per; k++) at += batch->spans[i * per + k];
        for (uint32_t k = 0; k < 2; k++) {
            uint32_t pn = batch->people_spans[k * batch->n + i];
            if (pn != CG_EVENT_NONE) people_at[k] += pn;
        }
    }

    writer out = {(uint8_t *)batch->out, batch->out_len, batch->out_cap, false};
    writer cols = {(uint8_t *)batch->cols, batch->cols_len, batch->cols_cap, false};
    batch->stop = CG_EVENT_STOP_NONE;
    uint32_t i = batch->at;
    for (; i < batch->n; i++) {
        size_t in_len[3] = {0, 0, 0};
        const uint8_t *in[3];
        for (uint32_t k = 0; k < per; k++) {
            in_len[k] = batch->spans[i * per + k];
            if (at > batch->requests_len || in_len[k] > batch->requests_len - at) return CG_E_ARG;
            in[k] = (const uint8_t *)batch->requests + at;
            at += in_len[k];
        }
        /* principal and trace id: UTF-8 text, or CG_EVENT_NONE for None */
        const uint8_t *who[2] = {NULL, NULL};
        uint32_t who_len[2];
        bool who_ok = true;
        for (uint32_t k = 0; k < 2; k++) {
            who_len[k] = batch->people_spans[k * batch->n + i];
            if (who_len[k] == CG_EVENT_NONE) continue;
            if (people_at[k] > batch->people_len || who_len[k] > batch->people_len - people_at[k])
                return CG_E_ARG;
            who[k] = (const uint8_t *)batch->people + people_at[k];
            people_at[k] += who_len[k];
            who_ok = who_ok && cg_utf8_valid(who[k], who_len[k]);
        }

        /* the reason: re-reads (and so re-validates) the request */
        int64_t rn = per == 1
            ? cg_reason_request(s, (const char *)in[0], in_len[0], batch->tmp, batch->tmp_cap)
            : cg_reason_json(s, (const char *)in[0], in_len[0], (const char *)in[1], in_len[1],
                             (const char *)in[2], in_len[2], batch->tmp, batch->tmp_cap);
        uint8_t stamp[TIMESTAMP_LEN], uid[UUID_LEN];
        if (rn < 0 || (size_t)rn > batch->tmp_cap || !format_time(batch->times_ns[i], stamp) || !who_ok ||
            (per == 3 && !cg_utf8_valid(in[0], in_len[0]))) {
            batch->stop = CG_EVENT_STOP_PYTHON;
            break;
        }
        format_uuid((const uint8_t *)batch->random + 16u * (size_t)i, uid);

        canon c = {per == 1 ? in[0] : in[2], (uint32_t)(per == 1 ? in_len[0] : in_len[2]),
                   batch->form == 0, false, batch->work, batch->work_cap, 0, false};
        parts p;
        if (per == 1) request_parts(&c, &p);
        else context_parts(&c, &p);
        canon args = c;
        if (per == 3) args.b = in[1], args.len = (uint32_t)in_len[1];

        size_t out_mark = out.n, cols_mark = cols.n;
        int64_t rc = batch->results[i] & CG_RESULT_MASK;
        int64_t decision = rc & 3;
        if (decision > CG_ELEVATE) return CG_E_ARG;

        PUT_LIT(&out, ENVELOPE_HEAD "0000000000000000000000000000000000000000000000000000000000000000"
                      ENVELOPE_MID "{\"agent_attributes\":");
        put_part(&out, &c, &p.agent, p.has_agent, "{}");
        PUT_LIT(&out, ",\"approvals_required\":");
        put_byte(&out, (uint8_t)('0' + (rc >> 2 & 3)));
        PUT_LIT(&out, ",\"args\":");
        if (per == 3) cg_value_at(args.b, 0, args.len, &p.args);
        put_part(&out, &args, &p.args, true, "");
        PUT_LIT(&out, ",\"chain\":");
        put(&out, batch->fixed[0], batch->fixed_len[0]);
        if (p.has_context && truthy(&c, &p.context)) {
            PUT_LIT(&out, ",\"context\":");
            put_part(&out, &c, &p.context, true, "");
        }
        PUT_LIT(&out, ",\"decision\":");
        put(&out, DECISION_NAMES[decision], decision == CG_ELEVATE ? 9 : decision == CG_ALLOW ? 7 : 6);
        PUT_LIT(&out, ",\"engine_version\":");
        put(&out, batch->fixed[1], batch->fixed_len[1]);
        PUT_LIT(&out, ",\"id\":\"");
        put(&out, uid, UUID_LEN);
        PUT_LIT(&out, "\",\"kind\":\"decision\",\"policy_digest\":");
        put(&out, batch->fixed[2], batch->fixed_len[2]);
        PUT_LIT(&out, ",\"policy_version\":");
        put(&out, batch->fixed[3], batch->fixed_len[3]);
        PUT_LIT(&out, ",\"principal\":");
        if (who[0]) put_raw_string(&out, who[0], who_len[0]);
        else PUT_LIT(&out, "null");
        PUT_LIT(&out, ",\"reason\":");
        put_raw_string(&out, (const uint8_t *)batch->tmp, (size_t)rn);
        PUT_LIT(&out, ",\"resource_attributes\":");
        put_part(&out, &c, &p.resource, p.has_resource, "{}");
        PUT_LIT(&out, ",\"role\":");
        put_part(&out, &c, &p.role, p.has_role, "null");
        PUT_LIT(&out, ",\"rule\":");
        if (rc >> CG_RESULT_RULE_SHIFT) put_u64(&out, (uint64_t)(rc >> CG_RESULT_RULE_SHIFT) - 1u);
        else PUT_LIT(&out, "null");
        PUT_LIT(&out, ",\"seq\":");
        put_u64(&out, batch->first_seq + i);
        PUT_LIT(&out, ",\"timestamp\":\"");
        put(&out, stamp, TIMESTAMP_LEN);
        PUT_LIT(&out, "\",\"tool\":");
        if (per == 1) put_part(&out, &c, &p.tool, true, "");
        else put_raw_string(&out, in[0], in_len[0]);
        PUT_LIT(&out, ",\"trace_id\":");
        if (who[1] && who_len[1]) { /* an empty trace id counts as none, as in the builder */
            put_raw_string(&out, who[1], who_len[1]);
        } else {
            put_byte(&out, '"');
            put(&out, uid, UUID_LEN);
            put_byte(&out, '"');
        }
        PUT_LIT(&out, "}}\n");

        /* the columns a database sink indexes: timestamp, tool and role as decoded text */
        uint32_t *info = batch->info + (size_t)CG_EVENT_INFO_WORDS * i;
        info[1] = (uint32_t)cols.n;
        put(&cols, stamp, TIMESTAMP_LEN);
        info[2] = (uint32_t)cols.n;
        if (per == 1) {
            cg_jstr t = {c.b + p.tool.off + 1, p.tool.len - 2, p.tool.esc != 0};
            for (cg_dec d = cg_dec_of(t); !cols.full;) {
                int ch = cg_dec_next(&d);
                if (ch < 0) break;
                put_byte(&cols, (uint8_t)ch);
            }
        } else {
            put(&cols, in[0], in_len[0]);
        }
        info[3] = (uint32_t)cols.n - info[2];
        info[4] = (uint32_t)cols.n;
        info[5] = UINT32_MAX; /* not a string */
        if (p.has_role && p.role.type == CG_J_STR) {
            cg_jstr r = {c.b + p.role.off + 1, p.role.len - 2, p.role.esc != 0};
            for (cg_dec d = cg_dec_of(r); !cols.full;) {
                int ch = cg_dec_next(&d);
                if (ch < 0) break;
                put_byte(&cols, (uint8_t)ch);
            }
            info[5] = (uint32_t)cols.n - info[4];
        }

        if (c.python || args.python) {
            batch->stop = CG_EVENT_STOP_PYTHON;
        } else if (out.full || cols.full || c.work_full || args.work_full) {
            batch->stop = CG_EVENT_STOP_FULL;
        } else {
            info[0] = (uint32_t)out.n;
            continue;
        }
        out.n = out_mark, out.full = false;
        cols.n = cols_mark, cols.full = false;
        break;
    }
    batch->out_len = out.n;
    batch->cols_len = cols.n;
    batch->at = i;
    return i;
}

int cg_event_fill_hashes(char *out, size_t out_len, const uint32_t *info, uint32_t first, uint32_t n,
                         uint32_t line_start, const uint8_t *digests) {
    static const size_t hash_at = sizeof(ENVELOPE_HEAD) - 1;
    if (!out || !info || !digests || n > CG_EVENT_MAX_BATCH || first > CG_EVENT_MAX_BATCH) return CG_E_ARG;
    size_t start = line_start;
    for (size_t i = first; i < (size_t)first + n; i++) {
        /* each line must hold at least the envelope's head and the 64 hex digits */
        if (start > out_len || out_len - start < hash_at + 64) return CG_E_ARG;
        uint8_t *h = (uint8_t *)out + start + hash_at;
        const uint8_t *d = digests + 32u * (i - first);
        for (uint32_t k = 0; k < 32; k++) {
            h[2 * k] = (uint8_t)HEX[d[k] >> 4];
            h[2 * k + 1] = (uint8_t)HEX[d[k] & 15];
        }
        start = info[CG_EVENT_INFO_WORDS * i];
    }
    return 0;
}
