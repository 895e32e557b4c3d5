/*
 * cg_sql.h -- the SQL scanner of SqlCheck (docs/arguments.md): an exact tokenizer for each
 * dialect (PostgreSQL, SQLite, MySQL), a statement splitter, and a classifier that reports, per
 * statement, its kind, the tables it names (after FROM, JOIN, INTO, UPDATE, USING, TABLE),
 * the functions it calls, and whatever makes it write or lock.
 *
 * It reads SQL the way the server tokenizes it, and refuses (a status other than OK) what it
 * cannot tokenize with certainty: unterminated strings, comments and quoted identifiers,
 * a backslash in a PostgreSQL standard string (whose meaning depends on the server's
 * standard_conforming_strings), in MySQL a quote or backslash whose reading sql_mode decides
 * and executable comments, parentheses deeper than CG_SQL_MAX_DEPTH or unbalanced, a ';'
 * inside parentheses, names longer than the server keeps. It does not parse the grammar:
 * kinds come from a statement's first word, writes from words anywhere in it; the check
 * (cg_check.c) treats anything not known to be a read as not read-only. Linear time, no
 * allocation: events go to the caller's visitor as they are found.
 */
#ifndef CG_SQL_H
#define CG_SQL_H

#include <stddef.h>
#include <stdint.h>

#define CG_SQL_POSTGRES 0u
#define CG_SQL_SQLITE 1u
#define CG_SQL_MYSQL 2u
#define CG_SQL_MAX_DEPTH 64u
#define CG_SQL_NAME_MAX 200u   /* a canonical (possibly qualified) name */
#define CG_SQL_MAX_CTES 32u
#define CG_SQL_CTE_NAME_MAX 64u /* a WITH query's name: longer ones are refused */

/* statement kinds */
#define CG_SQL_KINDS(X)                                                                 \
    X(NONE, "other")                                                                   \
    X(SELECT, "select")                                                                \
    X(WITH, "with")                                                                    \
    X(INSERT, "insert")                                                                \
    X(UPDATE, "update")                                                                \
    X(DELETE, "delete")                                                                \
    X(MERGE, "merge")                                                                  \
    X(DDL, "DDL")                                                                      \
    X(COPY, "copy")                                                                    \
    X(CALL, "call")                                                                    \
    X(SET, "set")                                                                      \
    X(EXPLAIN, "explain")                                                              \
    X(TRANSACTION, "transaction control")
enum cg_sql_kind {
#define CG_SQL_K_ENUM(name, text) CG_SQL_K_##name,
    CG_SQL_KINDS(CG_SQL_K_ENUM)
#undef CG_SQL_K_ENUM
    CG_SQL_N_KINDS
};
const char *cg_sql_kind_text(int kind);

#define CG_SQL_STATUSES(X)                                                              \
    X(OK, "scanned")                                                                   \
    X(EMPTY, "has no statement")                                                       \
    X(UNTERMINATED, "has an unterminated string, comment or quoted name")              \
    X(BACKSLASH, "has a backslash in a standard string (standard_conforming_strings decides)") \
    X(DEPTH, "has unbalanced or too deeply nested parentheses")                        \
    X(SEMICOLON, "has a ';' inside parentheses")                                       \
    X(NAME, "has a name too long or not canonical (quoted with escapes, too many parts)") \
    X(CTES, "has more than 32 WITH queries")                                           \
    X(MODE, "has a quote or backslash whose reading sql_mode decides (ANSI_QUOTES, NO_BACKSLASH_ESCAPES)") \
    X(HIDDEN, "has an executable comment, optimizer hint or client command (/*! */, /*+ */, DELIMITER, \\)") \
    X(CTE_CLAUSE, "has a WITH query's SEARCH or CYCLE clause")                           \
    X(PARAMETER, "has a parameter SQLite reads in a Tcl form or not at all ($a(...), $a::b, a lone $ : @ #)")
enum cg_sql_status {
#define CG_SQL_ST_ENUM(name, text) CG_SQL_##name,
    CG_SQL_STATUSES(CG_SQL_ST_ENUM)
#undef CG_SQL_ST_ENUM
    CG_SQL_N_STATUSES
};
const char *cg_sql_status_text(int status);

/* What makes a statement write or lock (cg_sql_visitor.write's `what`): CG_SQL_W_WORD also
   carries MySQL's ":=" (it assigns a user variable). */
enum { CG_SQL_W_WORD, CG_SQL_W_LOCK };

/* The caller's visitor. name/n: a canonical name (unquoted parts lower case, quoted parts as
   written with doubled quotes collapsed, parts joined by '.'; SQLite folds quoted parts too;
   MySQL keeps a table's every part as written, and folds only a function's last part when
   unquoted), valid during the call only;
   parts: how many parts. statement: the statement's index from 0. Each returns 0 to go
   on, non-zero to stop the scan (cg_sql_scan then returns CG_SQL_OK). */
typedef struct cg_sql_visitor {
    void *ctx;
    /* schema: where in name the part before the table's own lies (schema.table,
       catalog.schema.table), schema_n 0 for a name of one part */
    int (*table)(void *ctx, uint32_t statement, const uint8_t *name, uint32_t n, uint32_t parts,
                 uint32_t schema, uint32_t schema_n);
    /* builtin: the name is one part that cg_sql_builtin knows (the scan has looked it up) */
    int (*function)(void *ctx, uint32_t statement, const uint8_t *name, uint32_t n, uint32_t parts, int builtin);
    /* a word that writes (what CG_SQL_W_WORD: the word, lower case), or a locking clause
       (CG_SQL_W_LOCK: "for update", "for share", ...) */
    int (*write)(void *ctx, uint32_t statement, int what, const uint8_t *text, uint32_t n);
    int (*statement)(void *ctx, uint32_t statement, int kind);  /* at its end */
} cg_sql_visitor;

/* Whether a lower-case unqualified name is a built-in function of the dialect known not to
   write (scripts/gen_sql_words.py lists them). */
int cg_sql_builtin(unsigned dialect, const uint8_t *name, uint32_t n);

/* Scans s[0..n) of the dialect; returns a CG_SQL_* status, *statements the count of
   non-empty statements (also on failure: those finished before it). */
int cg_sql_scan(const uint8_t *s, size_t n, unsigned dialect, const cg_sql_visitor *v, uint32_t *statements);

#endif /* CG_SQL_H */
