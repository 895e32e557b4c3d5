/* A test-only view of csrc/cg_sql.c for tests/core/test_sql_parser.py (loaded with ctypes):
   the scan of one text as tab-separated events. */
#include <stdio.h>
#include <string.h>

#include "cg_sql.h"

typedef struct out {
    char *p;
    size_t cap, n;
} out;

static void put(out *o, const char *s, size_t n) {
    for (size_t i = 0; i < n && o->n + 1 < o->cap; i++) o->p[o->n++] = s[i];
}
static void event(out *o, char tag, uint32_t stmt, const uint8_t *text, uint32_t n) {
    char head[24];
    int k = snprintf(head, sizeof head, "\t%c%u:", tag, (unsigned)stmt);
    put(o, head, (size_t)k);
    put(o, (const char *)text, n);
}
static int on_table(void *ctx, uint32_t st, const uint8_t *name, uint32_t n, uint32_t parts, uint32_t schema,
                    uint32_t schema_n) {
    (void)parts, (void)schema, (void)schema_n;
    event(ctx, 'T', st, name, n);
    return 0;
}
static int on_function(void *ctx, uint32_t st, const uint8_t *name, uint32_t n, uint32_t parts, int builtin) {
    (void)parts;
    (void)builtin;
    event(ctx, 'F', st, name, n);
    return 0;
}
static int on_write(void *ctx, uint32_t st, int what, const uint8_t *text, uint32_t n) {
    event(ctx, what == CG_SQL_W_LOCK ? 'L' : 'W', st, text, n);
    return 0;
}
static int on_statement(void *ctx, uint32_t st, int kind) {
    const char *k = cg_sql_kind_text(kind);
    event(ctx, 'S', st, (const uint8_t *)k, (uint32_t)strlen(k));
    return 0;
}

/* status, statements, then the events; returns the length written */
int probe_sql(const char *in, size_t n, char *dst, size_t cap, unsigned dialect) {
    out o = {dst, cap, 0};
    cg_sql_visitor v = {&o, on_table, on_function, on_write, on_statement};
    char head[32];
    uint32_t statements = 0;
    /* the events come first: write the head after, in front */
    out body = {dst, cap, 0};
    v.ctx = &body;
    int st = cg_sql_scan((const unsigned char *)in, n, dialect, &v, &statements);
    int k = snprintf(head, sizeof head, "%d\t%u", st, (unsigned)statements);
    if ((size_t)k + body.n + 1 > cap) body.n = cap - (size_t)k - 1;
    memmove(dst + k, dst, body.n);
    memcpy(dst, head, (size_t)k);
    o.n = (size_t)k + body.n;
    dst[o.n] = 0;
    return (int)o.n;
}

int probe_sql_builtin(unsigned dialect, const char *name, unsigned n) {
    return cg_sql_builtin(dialect, (const unsigned char *)name, n);
}
