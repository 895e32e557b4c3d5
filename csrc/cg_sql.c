/*
 * cg_sql.c -- the SQL scanner of cg_sql.h. A tokenizer per dialect feeds one pass that keeps,
 * per parenthesis depth, whether that parenthesis is a function call's and where its FROM
 * list stands (expecting a table, or past one: a ',' expects another); names (a run of
 * identifiers joined by '.') are decided when the token after them is seen: a call when a
 * '(' follows (unless the word takes a parenthesis without being a call), a table when a
 * FROM list expects one, a keyword otherwise.
 */
#include "cg_sql.h"

#include "cg_internal.h"

typedef struct cg_sql_word {
    const char *text;
    uint8_t len, kind, flags, role;
} cg_sql_word;
/* a word's role in the scan: what keyword() does with it */
enum { CG_SQLR_NONE, CG_SQLR_FROM, CG_SQLR_JOIN, CG_SQLR_INTO, CG_SQLR_USING, CG_SQLR_SKIP, CG_SQLR_FOR,
       CG_SQLR_AS, CG_SQLR_RECURSIVE, CG_SQLR_DISTINCT, CG_SQLR_TABLE, CG_SQLR_ENDS, CG_SQLR_UPDATE,
       CG_SQLR_LOCKWORD };
#define CG_SQLW_WRITES 1u
#define CG_SQLW_STRUCT 2u
#define CG_SQLW_TYPE 4u
#define CG_SQLW_PG_FUNC 8u
#define CG_SQLW_SQLITE_FUNC 16u
#include "cg_sql_words.h"

static const char *const kind_text[CG_SQL_N_KINDS] = {
#define CG_SQL_K_TEXT(name, text) text,
    CG_SQL_KINDS(CG_SQL_K_TEXT)
#undef CG_SQL_K_TEXT
};
static const char *const status_text[CG_SQL_N_STATUSES] = {
#define CG_SQL_ST_TEXT(name, text) text,
    CG_SQL_STATUSES(CG_SQL_ST_TEXT)
#undef CG_SQL_ST_TEXT
};
const char *cg_sql_kind_text(int kind) { return kind >= 0 && kind < CG_SQL_N_KINDS ? kind_text[kind] : "other"; }
const char *cg_sql_status_text(int status) {
    return status >= 0 && status < CG_SQL_N_STATUSES ? status_text[status] : "is not scanned";
}

/* The entry of a lower-case word, or NULL. */
static const cg_sql_word *word_of(const uint8_t *s, uint32_t n) {
    if (n == 0 || n > CG_SQLW_MAXLEN) return NULL;
    uint32_t h = cg_hash_bytes(s, n);
    for (uint32_t i = h & (CG_SQLW_SLOTS - 1);; i = (i + 1) & (CG_SQLW_SLOTS - 1)) {
        uint32_t e = cg_sql_word_slots[i];
        if (e == 0) return NULL;
        const cg_sql_word *w = &cg_sql_words[e - 1];
        if (w->len != n) continue;
        uint32_t k = 0;
        while (k < n && (uint8_t)w->text[k] == s[k]) k++;
        if (k == n) return w;
    }
}
int cg_sql_builtin(unsigned dialect, const uint8_t *name, uint32_t n) {
    const cg_sql_word *w = word_of(name, n);
    return w && (w->flags & (dialect == CG_SQL_POSTGRES ? CG_SQLW_PG_FUNC : CG_SQLW_SQLITE_FUNC)) != 0;
}

static int role(const cg_sql_word *w) { return w ? w->role : CG_SQLR_NONE; }

/* ---- tokens ---- */

enum { T_END, T_WORD, T_QIDENT, T_STRING, T_NUMBER, T_PARAM, T_LP, T_RP, T_COMMA, T_SEMI, T_DOT, T_OP };

typedef struct tok {
    uint8_t type;
    uint8_t quote;     /* T_QIDENT: the quote character; 0 when not canonical (U&"...") */
    uint32_t off, len; /* T_QIDENT: the content between the quotes */
} tok;

typedef struct lexer {
    const uint8_t *s;
    uint32_t n, i;
    unsigned dialect;
    int err;
} lexer;

/* Character classes, one table lookup per byte on the hot loops (a megabyte in about a
   millisecond): C_START begins a name, C_NAME continues one, C_SPACE is white space. */
#define C_START 1u
#define C_NAME 2u
#define C_SPACE 4u
#define C_DIGIT 8u
static const uint8_t cls_table[256] = { /* C_* bits of each byte (bytes >= 0x80 continue names) */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        4, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 0, 0, 0, 0, 0, 0,
        0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 3,
        0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0,
        3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
        3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
        3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
        3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
};
static uint8_t cls_of(uint8_t c) { return cls_table[c]; }
static bool ident_start(uint8_t c) { return (cls_of(c) & C_START) != 0; }
static bool ident_char(uint8_t c) { return (cls_of(c) & C_NAME) != 0; }
static bool digit(uint8_t c) { return (cls_of(c) & C_DIGIT) != 0; }

static uint8_t at(const lexer *L, uint32_t k) { return k < L->n ? L->s[k] : 0; }

/* Skips spaces and comments; false (L->err set) on an unterminated comment. */
static bool skip_space(lexer *L) {
    for (;;) {
        uint8_t c = at(L, L->i);
        if (L->i >= L->n) return true;
        if (cls_of(c) & C_SPACE) {
            L->i++;
            while (L->i < L->n && (cls_of(L->s[L->i]) & C_SPACE)) L->i++;
        } else if (c == '-' && at(L, L->i + 1) == '-') {
            while (L->i < L->n && L->s[L->i] != '\n') L->i++;
        } else if (c == '/' && at(L, L->i + 1) == '*') {
            uint32_t depth = 1; /* PostgreSQL nests block comments, SQLite does not */
            L->i += 2;
            while (L->i < L->n && depth > 0) {
                if (L->dialect == CG_SQL_POSTGRES && L->s[L->i] == '/' && at(L, L->i + 1) == '*') {
                    depth++;
                    L->i += 2;
                } else if (L->s[L->i] == '*' && at(L, L->i + 1) == '/') {
                    depth--;
                    L->i += 2;
                } else {
                    L->i++;
                }
            }
            if (depth > 0) {
                L->err = CG_SQL_UNTERMINATED;
                return false;
            }
        } else {
            return true;
        }
    }
}

/* A quoted run from L->i (at the opening quote q): a doubled q stands for one; with
   backslash_escapes a backslash takes the next byte. Sets *escaped when a doubled quote was
   seen; false on an unterminated run. */
static bool quoted(lexer *L, uint8_t q, bool backslash_escapes, bool *escaped, bool *backslash) {
    L->i++;
    while (L->i < L->n) {
        uint8_t c = L->s[L->i];
        if (c == '\\') {
            if (backslash) *backslash = true;
            if (backslash_escapes) {
                L->i += 2;
                continue;
            }
        }
        if (c == q) {
            if (at(L, L->i + 1) == q && L->i + 1 < L->n) {
                if (escaped) *escaped = true;
                L->i += 2;
                continue;
            }
            L->i++;
            return true;
        }
        L->i++;
    }
    L->err = CG_SQL_UNTERMINATED;
    return false;
}

/* PostgreSQL dollar quoting from '$' at L->i: $tag$ ... $tag$. 1: a dollar-quoted string,
   0: not one (a parameter or an operator), -1: unterminated. */
static int dollar(lexer *L) {
    uint32_t j = L->i + 1;
    if (j < L->n && digit(L->s[j])) return 0;
    while (j < L->n && ident_char(L->s[j]) && L->s[j] != '$') j++;
    if (j >= L->n || L->s[j] != '$') return 0;
    uint32_t tag = j + 1 - L->i; /* "$tag$" */
    for (uint32_t k = j + 1; k + tag <= L->n; k++)
        if (L->s[k] == '$' && cg_memcmp(L->s + k, L->s + L->i, tag) == 0) {
            L->i = k + tag;
            return 1;
        }
    L->err = CG_SQL_UNTERMINATED;
    return -1;
}

/* The next token; T_END at the end or on an error (L->err). */
static tok next_token(lexer *L) {
    tok t = {T_END, 0, 0, 0};
    if (!skip_space(L) || L->i >= L->n) return t;
    uint32_t start = L->i;
    uint8_t c = L->s[L->i], c1 = at(L, L->i + 1), c2 = at(L, L->i + 2);
    bool pg = L->dialect == CG_SQL_POSTGRES;
    t.off = start;
    if (pg && (c == 'e' || c == 'E') && c1 == '\'') { /* E'...': backslash escapes */
        L->i++;
        t.type = quoted(L, '\'', true, NULL, NULL) ? T_STRING : T_END;
    } else if (pg && (c == 'u' || c == 'U') && c1 == '&' && (c2 == '\'' || c2 == '"')) {
        L->i += 2; /* U&'...', U&"...": Unicode escapes, which the quote rule ignores */
        bool ok = quoted(L, c2, false, NULL, NULL);
        t.type = !ok ? T_END : c2 == '"' ? T_QIDENT : T_STRING;
        t.quote = 0;
        t.off = start + 3;
        t.len = ok ? L->i - 1 - t.off : 0;
    } else if ((c == 'x' || c == 'X' || (pg && (c == 'b' || c == 'B' || c == 'n' || c == 'N'))) && c1 == '\'') {
        L->i++;
        bool bs = false;
        t.type = quoted(L, '\'', false, NULL, &bs) ? T_STRING : T_END;
        if (pg && bs) L->err = CG_SQL_BACKSLASH, t.type = T_END;
    } else if (c == '\'') {
        bool bs = false;
        t.type = quoted(L, '\'', false, NULL, &bs) ? T_STRING : T_END;
        if (pg && bs) L->err = CG_SQL_BACKSLASH, t.type = T_END; /* meaning set by the server */
    } else if (c == '"' || (!pg && (c == '`' || c == '['))) {
        bool ok;
        if (c == '[') { /* SQLite [name]: no escape */
            L->i++;
            while (L->i < L->n && L->s[L->i] != ']') L->i++;
            ok = L->i < L->n;
            if (ok) L->i++;
            else L->err = CG_SQL_UNTERMINATED;
        } else {
            ok = quoted(L, c, false, NULL, NULL);
        }
        t.type = ok ? T_QIDENT : T_END;
        t.quote = c == '[' ? ']' : c;
        t.off = start + 1;
        t.len = ok ? L->i - 1 - t.off : 0;
    } else if (pg && c == '$') {
        int d = dollar(L);
        if (d > 0) t.type = T_STRING;
        else if (d < 0) t.type = T_END;
        else { /* $1, or a lone '$' */
            L->i++;
            while (L->i < L->n && digit(L->s[L->i])) L->i++;
            t.type = L->i > start + 1 ? T_PARAM : T_OP;
        }
    } else if (!pg && (c == '?' || ((c == ':' || c == '@' || c == '$') && ident_char(c1)))) {
        L->i++;
        while (L->i < L->n && ident_char(L->s[L->i])) L->i++;
        t.type = T_PARAM;
    } else if (ident_start(c)) {
        const uint8_t *p = L->s + L->i, *end = L->s + L->n;
        while (p < end && (cls_table[*p] & C_NAME)) p++;
        L->i = (uint32_t)(p - L->s);
        t.type = T_WORD;
    } else if (digit(c) || (c == '.' && digit(c1))) {
        L->i++;
        while (L->i < L->n) {
            uint8_t d = L->s[L->i];
            if (digit(d) || (uint8_t)((d | 0x20) - 'a') < 26 || d == '_' || (d == '.' && digit(at(L, L->i + 1))))
                L->i++;
            else if ((d == '+' || d == '-') && (L->s[L->i - 1] | 0x20) == 'e')
                L->i++;
            else
                break;
        }
        t.type = T_NUMBER;
    } else {
        L->i++;
        t.type = c == '(' ? T_LP : c == ')' ? T_RP : c == ',' ? T_COMMA : c == ';' ? T_SEMI
                 : c == '.' ? T_DOT : T_OP;
    }
    if (t.type != T_QIDENT) t.len = L->i - start;
    return t;
}

/* ---- the statement pass ---- */

enum { FROM_NONE, FROM_EXPECT, FROM_IN };
enum { WITH_NONE, WITH_NAME, WITH_AFTER_NAME, WITH_AS, WITH_BODY, WITH_AFTER_BODY };

typedef struct an {
    lexer L;
    const cg_sql_visitor *v;
    uint32_t stmt, depth;
    int kind;
    bool started, stop, kind_set;
    uint8_t call[CG_SQL_MAX_DEPTH + 1];   /* the parenthesis at depth d is a call's */
    uint8_t from[CG_SQL_MAX_DEPTH + 1];   /* FROM_* at depth d */
    uint8_t target[CG_SQL_MAX_DEPTH + 1]; /* the expected table is a target (INTO t (cols)) */
    /* the name run being read */
    bool run, run_dot, run_bad, run_quoted;
    uint32_t run_parts, run_len;
    uint8_t name[CG_SQL_NAME_MAX];
    const cg_sql_word *prev_word;         /* the word before the run (or the last token's) */
    int prev_type;
    /* WITH queries of the statement */
    int with;
    uint32_t n_ctes;
    uint8_t cte_len[CG_SQL_MAX_CTES];
    uint8_t cte_name[CG_SQL_MAX_CTES][CG_SQL_CTE_NAME_MAX]; /* compared byte for byte */
    uint8_t next_lp_plain;                /* the next '(' is not a call (alias or column list) */
} an;

static void fail(an *a, int err) {
    if (!a->L.err) a->L.err = err;
}

static void run_add(an *a, const tok *t) {
    const uint8_t *s = a->L.s + t->off;
    bool quoted_part = t->type == T_QIDENT;
    uint32_t start = a->run_len;
    if (a->run_parts > 0) {
        if (a->run_len < CG_SQL_NAME_MAX) a->name[a->run_len] = '.';
        a->run_len++;
    }
    if (quoted_part && t->quote == 0) a->run_bad = true; /* U&"..." */
    if (quoted_part) a->run_quoted = true;
    for (uint32_t i = 0; i < t->len; i++) {
        uint8_t c = s[i];
        if (quoted_part && c == t->quote && t->quote != ']') i++; /* a doubled quote */
        if (!quoted_part || a->L.dialect == CG_SQL_SQLITE) c = (uint8_t)(c - 'A') < 26 ? (uint8_t)(c | 0x20) : c;
        if (quoted_part && c == '.') a->run_bad = true; /* "a.b" would read as two parts */
        if (a->run_len < CG_SQL_NAME_MAX) a->name[a->run_len] = c;
        a->run_len++;
    }
    uint32_t part_len = a->run_len - start - (a->run_parts > 0);
    if (part_len == 0 || (a->L.dialect == CG_SQL_POSTGRES && part_len > 63)) a->run_bad = true;
    a->run_parts++;
    if (a->run_parts > 3 || a->run_len > CG_SQL_NAME_MAX) a->run_bad = true;
}

static bool is_cte(const an *a) {
    if (a->run_parts != 1 || a->run_len > CG_SQL_CTE_NAME_MAX) return false;
    for (uint32_t i = 0; i < a->n_ctes; i++)
        if (a->cte_len[i] == a->run_len && cg_memcmp(a->cte_name[i], a->name, a->run_len) == 0) return true;
    return false;
}

static void emit_table(an *a) {
    if (a->run_bad) {
        fail(a, CG_SQL_NAME);
        return;
    }
    if (is_cte(a)) return;
    if (a->v->table && a->v->table(a->v->ctx, a->stmt, a->name, a->run_len, a->run_parts)) a->stop = true;
}
static void emit_function(an *a) {
    if (a->run_bad) {
        fail(a, CG_SQL_NAME);
        return;
    }
    if (a->v->function && a->v->function(a->v->ctx, a->stmt, a->name, a->run_len, a->run_parts)) a->stop = true;
}
static void emit_write(an *a, int what, const char *text) {
    uint32_t n = 0;
    while (text[n]) n++;
    if (a->v->write && a->v->write(a->v->ctx, a->stmt, what, (const uint8_t *)text, n)) a->stop = true;
}

/* The statement's first word, or the main statement after its WITH queries. */
static void set_kind(an *a, const cg_sql_word *w) {
    int k = w ? w->kind : CG_SQL_K_NONE;
    a->kind = k;
    if (k == CG_SQL_K_WITH) a->with = WITH_NAME;
    if (k == CG_SQL_K_UPDATE || (k == CG_SQL_K_SELECT && role(w) == CG_SQLR_TABLE)) {
        a->from[a->depth] = FROM_EXPECT;
        a->target[a->depth] = 1;
    }
}

/* An unquoted one-part word, followed by the token `next`. */
static void keyword(an *a, const cg_sql_word *w, const tok *next) {
    uint32_t d = a->depth;
    if (!a->kind_set) { /* the first word (after any opening parentheses) says what it is */
        set_kind(a, w);
        a->kind_set = true;
        a->started = true;
    } else if (a->kind == CG_SQL_K_WITH && d == 0 && a->with == WITH_AFTER_BODY && w &&
               (w->kind == CG_SQL_K_SELECT || w->kind == CG_SQL_K_INSERT || w->kind == CG_SQL_K_UPDATE ||
                w->kind == CG_SQL_K_DELETE || w->kind == CG_SQL_K_MERGE)) {
        set_kind(a, w);
        a->with = WITH_NONE;
    }
    if (!w) return;
    int r = w->role;
    if (a->with == WITH_NAME && d == 0 && r == CG_SQLR_RECURSIVE) return;
    if (a->with == WITH_AFTER_NAME && r == CG_SQLR_AS) a->with = WITH_AS;
    if (w->flags & CG_SQLW_WRITES) emit_write(a, CG_SQL_W_WORD, w->text);
    if (r == CG_SQLR_FOR && next->type == T_WORD) { /* FOR UPDATE / SHARE / NO KEY / KEY SHARE */
        uint8_t buf[8];
        uint32_t n = next->len < sizeof buf ? next->len : 0;
        for (uint32_t i = 0; i < n; i++) {
            uint8_t c = a->L.s[next->off + i];
            buf[i] = (uint8_t)(c - 'A') < 26 ? (uint8_t)(c | 0x20) : c;
        }
        int nr = role(word_of(buf, n));
        if (nr == CG_SQLR_UPDATE || nr == CG_SQLR_LOCKWORD)
            emit_write(a, CG_SQL_W_LOCK, "locks rows (FOR UPDATE / SHARE)");
    }
    switch (r) {
    case CG_SQLR_FROM:
        if (!a->call[d] && role(a->prev_word) != CG_SQLR_DISTINCT) {
            a->from[d] = FROM_EXPECT;
            a->target[d] = 0;
        }
        break;
    case CG_SQLR_JOIN:
        a->from[d] = FROM_EXPECT;
        a->target[d] = 0;
        break;
    case CG_SQLR_INTO:
        if (a->kind == CG_SQL_K_INSERT || a->kind == CG_SQL_K_MERGE || a->kind == CG_SQL_K_SELECT ||
            a->kind == CG_SQL_K_WITH) {
            a->from[d] = FROM_EXPECT;
            a->target[d] = 1;
        } else {
            a->from[d] = FROM_NONE;
        }
        break;
    case CG_SQLR_USING:
        if (next->type != T_LP) {
            a->from[d] = FROM_EXPECT;
            a->target[d] = 0;
        }
        break;
    case CG_SQLR_SKIP: /* FROM ONLY t, LATERAL (...): the table or subquery follows */
        break;
    case CG_SQLR_TABLE: /* ... UNION TABLE t (and TRUNCATE TABLE t, ...): a table follows */
        a->from[d] = FROM_EXPECT;
        a->target[d] = 1;
        break;
    case CG_SQLR_FOR:
    case CG_SQLR_ENDS:
        a->from[d] = FROM_NONE;
        break;
    default:
        break;
    }
}

/* The run of names ends; `next` is the token after it. */
static void finish_run(an *a, const tok *next) {
    uint32_t d = a->depth;
    a->run = false;
    const cg_sql_word *w = a->run_parts == 1 && !a->run_quoted ? word_of(a->name, a->run_len) : NULL;
    bool single_word = a->run_parts == 1 && !a->run_quoted;
    if (a->with == WITH_NAME && d == 0 && !(single_word && role(w) == CG_SQLR_RECURSIVE)) { /* a WITH query's name */
        if (a->n_ctes == CG_SQL_MAX_CTES) {
            fail(a, CG_SQL_CTES);
            return;
        }
        if (a->run_parts != 1 || a->run_bad || a->run_len > CG_SQL_CTE_NAME_MAX) {
            fail(a, CG_SQL_NAME);
            return;
        }
        cg_memcpy(a->cte_name[a->n_ctes], a->name, a->run_len);
        a->cte_len[a->n_ctes++] = (uint8_t)a->run_len;
        a->with = WITH_AFTER_NAME;
        if (next->type == T_LP) a->next_lp_plain = 1; /* its column names */
        return;
    }
    /* a FROM item: a table, a table function, unless the word opens a subquery there
       (SELECT, VALUES, TABLE, WITH) or is ONLY / LATERAL */
    bool subquery_word = single_word && w && (w->kind == CG_SQL_K_SELECT || w->kind == CG_SQL_K_WITH);
    if (a->from[d] == FROM_EXPECT && !(single_word && role(w) == CG_SQLR_SKIP) && !subquery_word) {
        a->from[d] = FROM_IN;
        if (next->type == T_LP && !a->target[d]) { /* FROM f(...): a table function */
            emit_function(a);
            a->next_lp_plain = 2;
        } else {
            emit_table(a);
            if (next->type == T_LP) a->next_lp_plain = 1; /* INSERT INTO t (columns) */
        }
        a->target[d] = 0;
        a->prev_word = NULL;
        return;
    }
    if (single_word) {
        keyword(a, w, next);
        if (next->type == T_LP && w && (w->flags & (CG_SQLW_STRUCT | CG_SQLW_TYPE))) a->next_lp_plain = 1;
    } else {
        a->kind_set = a->started = true; /* a quoted or qualified first word: not a kind */
    }
    if (next->type == T_LP && !a->next_lp_plain) {
        if (a->prev_type == T_WORD && role(a->prev_word) == CG_SQLR_AS) a->next_lp_plain = 1; /* AS x (cols) */
        else {
            emit_function(a);
            a->next_lp_plain = 2;
        }
    }
    a->prev_word = w;
    a->prev_type = T_WORD;
}

static void end_statement(an *a) {
    if (a->started && a->v->statement && a->v->statement(a->v->ctx, a->stmt, a->kind)) a->stop = true;
    if (a->started) a->stmt++;
    a->started = a->kind_set = false;
    a->kind = CG_SQL_K_NONE;
    a->with = WITH_NONE;
    a->n_ctes = 0;
    a->from[0] = FROM_NONE;
    a->target[0] = 0;
    a->call[0] = 0;
    a->prev_word = NULL;
    a->prev_type = T_END;
}

int cg_sql_scan(const uint8_t *s, size_t n, unsigned dialect, const cg_sql_visitor *v, uint32_t *statements) {
    an a;
    cg_memset(&a, 0, sizeof a);
    a.L.s = s;
    a.L.n = (uint32_t)n;
    a.L.dialect = dialect;
    a.v = v;
    *statements = 0;
    if (n > 0xFFFFFFF0u) return CG_SQL_DEPTH;
    for (;;) {
        tok t = next_token(&a.L);
        if (a.L.err) break;
        if (a.run) {
            if (t.type == T_DOT && !a.run_dot) {
                a.run_dot = true;
                continue;
            }
            if (a.run_dot && (t.type == T_WORD || t.type == T_QIDENT)) {
                a.run_dot = false;
                run_add(&a, &t);
                continue;
            }
            finish_run(&a, &t);
            if (a.L.err || a.stop) break;
        }
        switch (t.type) {
        case T_WORD:
        case T_QIDENT:
            a.run = true;
            a.run_dot = a.run_bad = a.run_quoted = false;
            a.run_parts = a.run_len = 0;
            run_add(&a, &t);
            continue; /* prev_type stays the token before the run */
        case T_LP: {
            if (a.depth == CG_SQL_MAX_DEPTH) {
                fail(&a, CG_SQL_DEPTH);
                break;
            }
            uint32_t d = a.depth;
            /* FROM (subquery), or FROM (a JOIN b ...): inside, a table may come first */
            bool item = a.from[d] == FROM_EXPECT;
            if (item) a.from[d] = FROM_IN;
            if (a.with == WITH_AS && d == 0) a.with = WITH_BODY;
            a.depth++;
            a.call[a.depth] = a.next_lp_plain == 2;
            a.from[a.depth] = item ? FROM_EXPECT : FROM_NONE;
            a.target[a.depth] = 0;
            a.next_lp_plain = 0;
            a.started = true;
            break;
        }
        case T_RP:
            if (a.depth == 0) {
                fail(&a, CG_SQL_DEPTH);
                break;
            }
            a.depth--;
            if (a.with == WITH_BODY && a.depth == 0) a.with = WITH_AFTER_BODY;
            break;
        case T_COMMA:
            if (a.from[a.depth] == FROM_IN) a.from[a.depth] = FROM_EXPECT;
            if (a.with == WITH_AFTER_BODY && a.depth == 0) a.with = WITH_NAME;
            break;
        case T_SEMI:
            if (a.depth > 0) {
                fail(&a, CG_SQL_SEMICOLON);
                break;
            }
            end_statement(&a);
            break;
        case T_END:
            break;
        default:
            /* SQLite takes a string where a table name is expected ("FROM 'secret'"): not read */
            if (t.type == T_STRING && a.L.dialect == CG_SQL_SQLITE && a.from[a.depth] == FROM_EXPECT)
                fail(&a, CG_SQL_NAME);
            a.started = a.kind_set = true; /* a statement that starts with no word has no kind */
            a.next_lp_plain = 0;
            break;
        }
        if (a.L.err || a.stop || t.type == T_END) break;
        a.prev_type = t.type;
        if (t.type != T_WORD) a.prev_word = NULL;
    }
    if (!a.L.err && !a.stop && a.depth != 0) fail(&a, CG_SQL_DEPTH);
    if (a.L.err) {
        *statements = a.stmt;
        return a.L.err;
    }
    if (!a.stop) end_statement(&a);
    *statements = a.stmt;
    return a.stmt == 0 ? CG_SQL_EMPTY : CG_SQL_OK;
}
