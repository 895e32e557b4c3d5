/*
 * sql_train.c -- the run that the SQL scanner's profile is recorded from (build_backend/
 * sql_profile.py): it scans each statement of a training file (sql_train.sql) in the dialects
 * the line names, many times over, with a visitor that keeps what it is told. Built at build
 * time only, with csrc/cg_sql.c compiled for -fprofile-generate; never shipped.
 *
 * Usage: sql_train FILE
 * Exits 1 when a statement does not scan with CG_SQL_OK in a dialect it is written for (the
 * corpus would no longer train what it says), 2 when the file cannot be read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg_sql.h"

#define ROUNDS 300

typedef struct seen { unsigned long tables, functions, writes, statements; } seen;

static int on_table(void *ctx, uint32_t stmt, const uint8_t *name, uint32_t n, uint32_t parts, uint32_t schema,
                    uint32_t schema_n) {
    (void)stmt, (void)name, (void)parts, (void)schema, (void)schema_n;
    ((seen *)ctx)->tables += n;
    return 0;
}
static int on_function(void *ctx, uint32_t stmt, const uint8_t *name, uint32_t n, uint32_t parts, int builtin) {
    (void)stmt, (void)name, (void)parts;
    ((seen *)ctx)->functions += n + (unsigned long)builtin;
    return 0;
}
static int on_write(void *ctx, uint32_t stmt, int what, const uint8_t *text, uint32_t n) {
    (void)stmt, (void)what, (void)text;
    ((seen *)ctx)->writes += n;
    return 0;
}
static int on_statement(void *ctx, uint32_t stmt, int kind) {
    (void)stmt, (void)kind;
    ((seen *)ctx)->statements++;
    return 0;
}

/* "pg", "lite", "my" or "all" before ':' -> a bit per dialect (0: not a statement line) */
static unsigned dialects_of(const char *line, size_t n, size_t *body) {
    static const struct { const char *tag; unsigned bits; } tags[] = {
        {"pg:", 1u << CG_SQL_POSTGRES}, {"lite:", 1u << CG_SQL_SQLITE}, {"my:", 1u << CG_SQL_MYSQL},
        {"all:", (1u << CG_SQL_POSTGRES) | (1u << CG_SQL_SQLITE) | (1u << CG_SQL_MYSQL)}};
    for (size_t k = 0; k < sizeof tags / sizeof tags[0]; k++) {
        size_t t = strlen(tags[k].tag);
        if (n > t && memcmp(line, tags[k].tag, t) == 0) {
            *body = t + (line[t] == ' ');
            return tags[k].bits;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    static char text[1 << 20];
    size_t len = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (!f || ferror(f) || len == sizeof text - 1) {
        fprintf(stderr, "%s: cannot read\n", argv[1]);
        if (f) fclose(f);
        return 2;
    }
    fclose(f);
    text[len] = 0;
    seen s = {0, 0, 0, 0};
    cg_sql_visitor v = {&s, on_table, on_function, on_write, on_statement};
    for (int round = 0; round < ROUNDS; round++) {
        for (char *line = text; *line;) {
            char *end = strchr(line, '\n');
            size_t n = end ? (size_t)(end - line) : strlen(line), body = 0;
            unsigned bits = dialects_of(line, n, &body);
            for (unsigned d = CG_SQL_POSTGRES; d <= CG_SQL_MYSQL; d++) {
                if (!(bits & (1u << d))) continue;
                uint32_t statements;
                int rc = cg_sql_scan((const uint8_t *)line + body, n - body, d, &v, &statements);
                if (rc != CG_SQL_OK) {
                    fprintf(stderr, "%s: dialect %u: %.*s: %s\n", argv[1], d, (int)(n - body), line + body,
                            cg_sql_status_text(rc));
                    return 1;
                }
            }
            line += n + (end != NULL);
        }
    }
    printf("%lu %lu %lu %lu\n", s.tables, s.functions, s.writes, s.statements);
    return 0;
}
