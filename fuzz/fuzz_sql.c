/*
 * fuzz_sql.c -- libFuzzer harness for the SQL scanner (csrc/cg_sql.c).
 *
 * The first byte picks the dialect (bit 1: MySQL, else bit 0: SQLite, else PostgreSQL). Beyond memory safety it checks the
 * scanner's invariants: the status is known; the statement count never exceeds the number
 * of ';' plus one; every event belongs to a statement before the count, with a name of at
 * most CG_SQL_NAME_MAX bytes and 1 to 3 parts; a function's builtin flag is what
 * cg_sql_builtin says of its name; statements end in order; and a second scan
 * gives the same result (no hidden state). Built with CG_FUZZ_SCALAR_PEER (scripts/fuzz.sh),
 * it also scans with a second copy of the scanner compiled with CG_SQL_SCALAR (the 64-byte
 * masks found byte by byte: the path of builds without SSE2, as wasm's) and with
 * CG_FUZZ_BYTEWISE_PEER a third compiled with CG_SQL_BYTEWISE (every token read byte by byte,
 * no masks: the reading the block walk must give), and requires the same result of each.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cg_sql.h"

typedef struct seen {
    unsigned dialect;
    uint32_t events, next_stmt, max_stmt;
    uint64_t digest;
} seen;

static void mix(seen *s, uint32_t v) { s->digest = (s->digest ^ v) * 0x100000001b3u; }

static int on_name(void *ctx, uint32_t stmt, const uint8_t *name, uint32_t n, uint32_t parts) {
    seen *s = ctx;
    if (n == 0 || n > CG_SQL_NAME_MAX || parts < 1 || parts > 3 || stmt < s->next_stmt) abort();
    for (uint32_t i = 0; i < n; i++) mix(s, name[i]);
    s->events++;
    if (stmt > s->max_stmt) s->max_stmt = stmt;
    return 0;
}
/* a table: its schema part is the part before its last, between dots (none for one part) */
static int on_table(void *ctx, uint32_t stmt, const uint8_t *name, uint32_t n, uint32_t parts, uint32_t schema,
                    uint32_t schema_n) {
    if (parts < 2 ? schema_n != 0
                  : schema_n == 0 || schema + schema_n >= n || name[schema + schema_n] != '.' ||
                        (schema > 0 && name[schema - 1] != '.'))
        abort();
    for (uint32_t i = schema; i < schema + schema_n; i++) mix(ctx, name[i]);
    return on_name(ctx, stmt, name, n, parts);
}
/* a function: a name like any other, whose builtin flag is what cg_sql_builtin says of it */
static int on_function(void *ctx, uint32_t stmt, const uint8_t *name, uint32_t n, uint32_t parts, int builtin) {
    seen *s = ctx;
    if (builtin != (parts == 1 && n > 0 && cg_sql_builtin(s->dialect, name, n))) abort();
    mix(s, (uint32_t)builtin);
    return on_name(ctx, stmt, name, n, parts);
}
static int on_write(void *ctx, uint32_t stmt, int what, const uint8_t *text, uint32_t n) {
    seen *s = ctx;
    if ((what != CG_SQL_W_WORD && what != CG_SQL_W_LOCK) || n == 0 || stmt < s->next_stmt) abort();
    (void)text;
    mix(s, (uint32_t)what);
    s->events++;
    return 0;
}
static int on_statement(void *ctx, uint32_t stmt, int kind) {
    seen *s = ctx;
    if (stmt != s->next_stmt || kind < 0 || kind >= CG_SQL_N_KINDS) abort();
    s->next_stmt++;
    mix(s, (uint32_t)kind);
    return 0;
}

/* one scan through `scanner` (the core's cg_sql_scan, or a peer copy's) into s */
typedef int (*scanner)(const uint8_t *s, size_t n, unsigned dialect, const cg_sql_visitor *v, uint32_t *statements);
static int scan_by(scanner fn, const uint8_t *d, size_t n, unsigned dialect, seen *s, uint32_t *count) {
    memset(s, 0, sizeof *s);
    s->dialect = dialect;
    cg_sql_visitor v = {s, on_table, on_function, on_write, on_statement};
    return fn(d, n, dialect, &v, count);
}
static int scan(const uint8_t *d, size_t n, unsigned dialect, seen *s, uint32_t *count) {
    return scan_by(cg_sql_scan, d, n, dialect, s, count);
}
#ifdef CG_FUZZ_SCALAR_PEER
int cg_sql_scan_scalar(const uint8_t *s, size_t n, unsigned dialect, const cg_sql_visitor *v, uint32_t *statements);
#endif
#ifdef CG_FUZZ_BYTEWISE_PEER
int cg_sql_scan_bytewise(const uint8_t *s, size_t n, unsigned dialect, const cg_sql_visitor *v, uint32_t *statements);
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned dialect = (data[0] & 2u) ? CG_SQL_MYSQL : (data[0] & 1u) ? CG_SQL_SQLITE : CG_SQL_POSTGRES;
    uint8_t *copy = malloc(size - 1 ? size - 1 : 1); /* exact bounds for ASan */
    memcpy(copy, data + 1, size - 1);
    seen a, b;
    uint32_t na, nb;
    int st = scan(copy, size - 1, dialect, &a, &na);
    if (st < 0 || st >= CG_SQL_N_STATUSES) abort();
    uint32_t semis = 0;
    for (size_t i = 0; i + 1 < size; i++) semis += copy[i] == ';';
    if (na > semis + 1) abort();
    if (st == CG_SQL_OK && (a.next_stmt != na || na == 0 || (a.events && a.max_stmt >= na))) abort();
    if (scan(copy, size - 1, dialect, &b, &nb) != st || nb != na || b.digest != a.digest) abort();
#ifdef CG_FUZZ_SCALAR_PEER
    if (scan_by(cg_sql_scan_scalar, copy, size - 1, dialect, &b, &nb) != st || nb != na ||
        b.digest != a.digest || b.events != a.events)
        abort();
#endif
#ifdef CG_FUZZ_BYTEWISE_PEER
    if (scan_by(cg_sql_scan_bytewise, copy, size - 1, dialect, &b, &nb) != st || nb != na ||
        b.digest != a.digest || b.events != a.events)
        abort();
#endif
    free(copy);
    return 0;
}
