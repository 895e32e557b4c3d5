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
    uint64_t head; /* text's first 8 bytes, little-endian, zero-padded */
    uint64_t key;  /* head with bit 5 set in each of the word's bytes (word_of) */
    uint8_t len, kind, flags, role;
} cg_sql_word;
/* a word's role in the scan: what keyword() does with it */
enum { CG_SQLR_NONE, CG_SQLR_FROM, CG_SQLR_JOIN, CG_SQLR_INTO, CG_SQLR_USING, CG_SQLR_SKIP, CG_SQLR_FOR,
       CG_SQLR_AS, CG_SQLR_RECURSIVE, CG_SQLR_DISTINCT, CG_SQLR_TABLE, CG_SQLR_ENDS, CG_SQLR_UPDATE,
       CG_SQLR_LOCKWORD, CG_SQLR_EXPLAIN_OPTION, CG_SQLR_CTE_CLAUSE,
       /* SQLite's own (role_in: none in the other dialects) */
       CG_SQLR_LITE_IN, CG_SQLR_LITE_OPERATOR,
       /* MySQL's own (role_in: none in the other dialects) */
       CG_SQLR_MY_SKIP, CG_SQLR_MY_JOIN, CG_SQLR_MY_DUAL, CG_SQLR_MY_DELIMITER };
#define CG_SQLW_WRITES 1u
#define CG_SQLW_STRUCT 2u
#define CG_SQLW_TYPE 4u
#define CG_SQLW_PG_FUNC 8u
#define CG_SQLW_SQLITE_FUNC 16u
#define CG_SQLW_MYSQL_FUNC 32u
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

static inline uint8_t lower(uint8_t c) { return cg_sql_fold[c]; }

/* Inlined into the scan loop whatever the compiler's estimate: the per-token helpers */
#if defined(__GNUC__) || defined(__clang__)
#define SQL_HOT static inline __attribute__((always_inline))
#else
#define SQL_HOT static inline
#endif

/* ---- a word's first eight bytes at once (read little-endian), for word_of ---- */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull
/* 0x80 in each byte of t that lies in [lo, hi], for t whose bytes are all below 0x80 (no
   carry crosses a byte) */
static inline uint64_t between(uint64_t t, uint8_t lo, uint8_t hi) {
    return (t + ONES * (uint64_t)(0x80 - lo)) & ~(t + ONES * (uint64_t)(0x7f - hi)) & HIGHS;
}
/* x with its ASCII capitals made small (other bytes, >= 0x80 included, as they are) */
static inline uint64_t fold8(uint64_t x) { return x + ((between(x & ~HIGHS, 'A', 'Z') & ~x) >> 2); }
/* The first n bytes of 8 (n < 8), and bit 5 of each (the case-insensitive key: see
   scripts/gen_sql_words.py head_key) */
static const uint64_t head_mask[8] = {0, 0xffull, 0xffffull, 0xffffffull, 0xffffffffull, 0xffffffffffull,
                                      0xffffffffffffull, 0xffffffffffffffull};
#define BIT5S 0x2020202020202020ull
/* The entry of the word s[0..n) (avail >= n bytes readable at s): with fold, ASCII letters
   of any case (an unquoted word as written, made of name bytes only); without, the bytes
   exactly (a canonical name, already lower case, of any bytes). NULL when it is not a word of
   the table. The word's first 8 bytes with bit 5 set in each are its key, which folds the
   capitals of a word of name bytes and keeps every table word apart; the key and the length
   pick a bucket of at most two words, compared without a loop unless longer than 8 bytes. */
SQL_HOT const cg_sql_word *word_of(const uint8_t *s, uint32_t n, uint32_t avail, bool fold) {
    if (n < CG_SQLW_MINLEN || n > CG_SQLW_MAXLEN) return NULL;
    uint64_t head;
    if (avail >= 8) {
        head = cg_rd64(s);
    } else { /* byte by byte: a canonical name the scan has just written a byte at a time
                (cg_sql_builtin), which a wider load would stall on */
        head = 0;
        for (uint32_t k = 0; k < n; k++) head |= (uint64_t)s[k] << (k << 3);
    }
    uint64_t mask = n < 8 ? head_mask[n] : ~0ull;
    uint64_t key = (head | BIT5S) & mask;
    head &= mask;
    /* both candidates: two words may share a key and a length (current_date, current_time) */
    const uint16_t *bucket = cg_sql_word_bucket[CG_SQLW_SLOT(key, n)];
    for (uint32_t c = 0; c < 2; c++) {
        const cg_sql_word *w = &cg_sql_words[bucket[c]];
        if (w->key != key || w->len != n) continue;
        if (!fold && w->head != head) continue; /* a canonical name matches exactly */
        /* bytes 8..n, 8 at a time, the last 8 overlapping (n <= avail: all readable) */
        const uint8_t *t = (const uint8_t *)w->text;
        uint32_t k = 8;
        for (; k < n; k += 8) {
            k = k + 8 <= n ? k : n - 8;
            uint64_t x = cg_rd64(s + k), y = cg_rd64(t + k);
            if (fold ? (x | BIT5S) != (y | BIT5S) : x != y) break;
        }
        if (k >= n) return w;
    }
    return NULL;
}
int cg_sql_builtin(unsigned dialect, const uint8_t *name, uint32_t n) {
    const cg_sql_word *w = word_of(name, n, n, false);
    unsigned flag = dialect == CG_SQL_POSTGRES ? CG_SQLW_PG_FUNC
                    : dialect == CG_SQL_SQLITE ? CG_SQLW_SQLITE_FUNC : CG_SQLW_MYSQL_FUNC;
    return w && (w->flags & flag) != 0;
}

/* w (a known word, or NULL) is the word lit */
#define WORD_IS(w, lit) ((w) && (w)->len == sizeof lit - 1 && cg_memcmp((w)->text, lit, sizeof lit - 1) == 0)

/* A word's role in the dialect: SQLite's own roles act in SQLite only, MySQL's in MySQL only
   (MY_SKIP as SKIP, MY_JOIN as JOIN); elsewhere such a word is a name like any other. */
static int role_in(unsigned dialect, const cg_sql_word *w) {
    int r = w ? w->role : CG_SQLR_NONE;
    if (r < CG_SQLR_LITE_IN) return r;
    if (r < CG_SQLR_MY_SKIP) return dialect == CG_SQL_SQLITE ? r : CG_SQLR_NONE;
    if (dialect != CG_SQL_MYSQL) return CG_SQLR_NONE;
    return r == CG_SQLR_MY_SKIP ? CG_SQLR_SKIP : r == CG_SQLR_MY_JOIN ? CG_SQLR_JOIN : r;
}

/* ---- tokens ---- */

enum { T_END, T_WORD, T_QIDENT, T_STRING, T_NUMBER, T_PARAM, T_LP, T_RP, T_COMMA, T_SEMI, T_DOT, T_OP };

typedef struct tok {
    uint8_t type;
    uint8_t quote;     /* T_QIDENT: the quote character (0: not canonical, U&"..."); MySQL T_STRING: '"' for "..." */
    uint32_t off, len; /* T_QIDENT: the content between the quotes */
} tok;

typedef struct lexer {
    const uint8_t *s;
    uint32_t n, i;
    unsigned dialect;
    int err;
} lexer;

/* The tokenizer reads 64 bytes at a time into two bit masks (load_block): which bytes
   continue a name, and where a token starts (the first byte of a run of name bytes, any byte
   that is neither a name byte nor white space). next_token walks the starts: a word ends at
   the next byte that is no name byte, ( ) , ; . = * < > ... are one byte each, and anything
   else (strings, quoted names, comments, numbers, parameters, dialect prefixes) is read byte
   by byte (scalar_token), after which the starts inside what it read are dropped. The walk's
   state is a cursor of cg_sql_scan's own, which the compiler keeps in registers. */
typedef struct cursor {
    uint32_t base, i; /* the block the masks describe, s[base .. base + 64); where the last token ended */
    uint64_t names;   /* bit k: s[base + k] continues a name */
    uint64_t starts;  /* bit k: a token starts at s[base + k], at or after i */
} cursor;

/* Character classes, one table lookup per byte on the hot loops: C_START begins a name,
   C_NAME continues one, C_SPACE is white space, C_PREFIX a letter that, before a quote or
   '&', may begin a string or quoted name instead (E'', U&'', X'', B'', N''). */
#define C_START 1u
#define C_NAME 2u
#define C_SPACE 4u
#define C_DIGIT 8u
#define C_PREFIX 16u
#define C_COMMENT 32u /* '#', '-', '/': may begin a comment */
static const uint8_t cls_table[256] = { /* C_* bits of each byte (bytes >= 0x80 continue names) */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        4, 0, 0, 32, 2, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 32, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 0, 0, 0, 0, 0, 0,
        0, 3, 19, 3, 3, 19, 3, 3, 3, 3, 3, 3, 3, 3, 19, 3, 3, 3, 3, 3, 3, 19, 3, 3, 19, 3, 3, 0, 0, 0, 0, 3,
        0, 3, 19, 3, 3, 19, 3, 3, 3, 3, 3, 3, 3, 3, 19, 3, 3, 3, 3, 3, 3, 19, 3, 3, 19, 3, 3, 0, 0, 0, 0, 0,
        3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
        3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
        3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
        3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
};
/* the token a byte that starts no longer token is, when one of ( ) , ; . (0: any other, T_OP) */
static const uint8_t punct_table[256] = {['('] = T_LP, [')'] = T_RP, [','] = T_COMMA, [';'] = T_SEMI, ['.'] = T_DOT};
static uint8_t cls_of(uint8_t c) { return cls_table[c]; }
/* Where a run of name bytes (C_NAME) that starts at i ends. With
   SSE2 (every x86-64), 16 bytes are classified at once and the end is the first byte that is
   not of the class: a loop byte by byte costs a mispredicted exit on almost every token,
   whose lengths vary; the last 15 bytes of the input, and builds without SSE2 (wasm), go
   byte by byte. CG_SQL_SCALAR makes an SSE2 build go byte by byte too: fuzz/fuzz_sql.c holds
   the two to each other. */
#if (defined(__SSE2__) || defined(_M_X64) || defined(_M_AMD64)) && !defined(CG_SQL_SCALAR)
#define CG_SQL_SSE2 1
#include <emmintrin.h>
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static inline uint32_t ctz16(uint32_t m) {
    unsigned long k;
    _BitScanForward(&k, m);
    return (uint32_t)k;
}
#else
static inline uint32_t ctz16(uint32_t m) { return (uint32_t)__builtin_ctz(m); }
#endif
/* 0x80 in each byte of v that lies in [lo, lo + span), compared as unsigned (SSE2 compares
   signed: shifting by 128 - lo puts the range at the bottom of the signed bytes) */
static inline __m128i in_range(__m128i v, int lo, int span) {
    return _mm_cmplt_epi8(_mm_add_epi8(v, _mm_set1_epi8((char)(128 - lo))), _mm_set1_epi8((char)(-128 + span)));
}
static inline uint32_t name_bytes16(const uint8_t *p) { /* bit k: p[k] continues a name */
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i letter = in_range(_mm_or_si128(v, _mm_set1_epi8(0x20)), 'a', 26);
    __m128i other = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('_')), _mm_cmpeq_epi8(v, _mm_set1_epi8('$')));
    /* v itself: its sign bit is set in bytes >= 0x80, which continue names */
    return (uint32_t)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(letter, in_range(v, '0', 10)), _mm_or_si128(other, v)));
}
static inline uint32_t space_bytes16(const uint8_t *p) { /* bit k: p[k] is white space */
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    return (uint32_t)_mm_movemask_epi8(_mm_or_si128(in_range(v, 9, 5), _mm_cmpeq_epi8(v, _mm_set1_epi8(' '))));
}
#endif
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#endif
static inline uint32_t ctz64(uint64_t m) { /* m != 0 */
#if defined(__GNUC__) || defined(__clang__)
    return (uint32_t)__builtin_ctzll(m);
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_ARM64))
    unsigned long k;
    _BitScanForward64(&k, m);
    return (uint32_t)k;
#else
    uint32_t k = 0;
    while (!(m & 1)) m >>= 1, k++;
    return k;
#endif
}
static inline uint32_t name_end(const uint8_t *s, uint32_t i, uint32_t n) {
#ifdef CG_SQL_SSE2
    for (; n - i >= 16; i += 16) {
        uint32_t m = ~name_bytes16(s + i) & 0xffffu;
        if (m) return i + ctz16(m);
    }
#endif
    while (i < n && (cls_table[s[i]] & C_NAME)) i++;
    return i;
}

/* Where the string whose content starts at s[i] ends (just past its closing quote) when
   nothing in it needs reading (no backslash, no doubled quote: any dialect reads the same
   string, whatever its settings); 0 when something does, or no quote closes it (scalar_token
   reads those). With SSE2, 16 bytes at a time. */
static inline uint32_t plain_string_end(const uint8_t *s, uint32_t i, uint32_t n) {
#ifdef CG_SQL_SSE2
    for (; n - i >= 16; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        uint32_t m = (uint32_t)_mm_movemask_epi8(
                _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\'')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
        if (m) {
            i += ctz16(m);
            break;
        }
    }
#endif
    while (i < n && s[i] != '\'' && s[i] != '\\') i++;
    if (i >= n || s[i] != '\'' || (i + 1 < n && s[i + 1] == '\'')) return 0;
    return i + 1;
}

static bool ident_start(uint8_t c) { return (cls_of(c) & C_START) != 0; }
static bool ident_char(uint8_t c) { return (cls_of(c) & C_NAME) != 0; }
static bool digit(uint8_t c) { return (cls_of(c) & C_DIGIT) != 0; }

static uint8_t at(const lexer *L, uint32_t k) { return k < L->n ? L->s[k] : 0; }

/* The comment at s[i] (a byte of class C_COMMENT): where it ends, i itself when it is no
   comment, n with L->err set when it cannot be read. Apart from skip_space: rare, and the hot
   loop keeps its registers. */
CG_NOINLINE static uint32_t skip_comment(lexer *L, uint32_t i) {
    const uint8_t *s = L->s;
    uint32_t n = L->n;
    bool pg = L->dialect == CG_SQL_POSTGRES; /* PostgreSQL nests block comments, the others do not */
    bool my = L->dialect == CG_SQL_MYSQL;
    if (my && s[i] == '#') { /* MySQL: '#' to the end of the line */
        while (i < n && s[i] != '\n') i++;
        return i;
    }
    if (i + 1 >= n) return i;
    uint8_t c = s[i];
    /* MySQL: "--" begins a comment only before a space, a control character or the end */
    if (c == '-' && s[i + 1] == '-' && (!my || i + 2 >= n || s[i + 2] <= ' ' || s[i + 2] == 0x7f)) {
        i += 2;
        /* PostgreSQL's ends at a carriage return too ("SELECT 1 --\r; DROP ..." is two statements
           there); SQLite's and MySQL's at a newline only */
        while (i < n && s[i] != '\n' && !(pg && s[i] == '\r')) i++;
        return i;
    }
    if (c != '/' || s[i + 1] != '*') return i;
    uint32_t depth = 1;
    i += 2;
    /* MySQL runs the body of a comment that opens with a "!" (MariaDB: "M!"), and reads "+" as hints */
    if (my && i < n && (s[i] == '!' || s[i] == '+' || (s[i] == 'M' && i + 1 < n && s[i + 1] == '!'))) {
        L->err = CG_SQL_HIDDEN;
        return n;
    }
    while (i < n) {
        uint8_t d = s[i];
        if (d != '*' && d != '/') {
            i++;
        } else if (d == '*' && i + 1 < n && s[i + 1] == '/') {
            i += 2;
            if (--depth == 0) break;
        } else if (pg && d == '/' && i + 1 < n && s[i + 1] == '*') {
            depth++;
            i += 2;
        } else {
            i++;
        }
    }
    if (depth > 0) {
        L->err = CG_SQL_UNTERMINATED;
        return n;
    }
    return i;
}

/* Skips spaces and comments from i; returns where the next token starts (or n), with L->err
   set on a comment that cannot be read. */
static uint32_t skip_space(lexer *L, uint32_t i) {
    const uint8_t *s = L->s;
    uint32_t n = L->n;
    for (;;) {
        while (i < n && (cls_table[s[i]] & C_SPACE)) i++;
        if (i >= n || !(cls_table[s[i]] & C_COMMENT)) return i; /* the usual case: a token */
        uint32_t j = skip_comment(L, i);
        if (j == i || L->err) return j;
        i = j;
    }
}

/* A quoted run from L->i (at the opening quote q): a doubled q stands for one; with
   backslash_escapes a backslash takes the next byte. Sets *escaped when a doubled quote was
   seen; false on an unterminated run. */
static bool quoted(lexer *L, uint8_t q, bool backslash_escapes, bool *escaped, bool *backslash) {
    const uint8_t *s = L->s;
    uint32_t n = L->n, i = L->i + 1;
    while (i < n) {
        uint8_t c = s[i];
        if (c != q && c != '\\') {
            i++;
            continue;
        }
        if (c == '\\') {
            if (backslash) *backslash = true;
            if (backslash_escapes) {
                i += 2;
                continue;
            }
            if (q != '\\') {
                i++;
                continue;
            }
        }
        if (i + 1 < n && s[i + 1] == q) {
            if (escaped) *escaped = true;
            i += 2;
            continue;
        }
        L->i = i + 1;
        return true;
    }
    L->i = n;
    L->err = CG_SQL_UNTERMINATED;
    return false;
}

/* A MySQL string (or "..." name under ANSI_QUOTES) from L->i at the opening quote q: read
   with backslash escapes (the default) and without (NO_BACKSLASH_ESCAPES, and "..." names
   under ANSI_QUOTES); when the two readings end elsewhere the token depends on sql_mode
   (CG_SQL_MODE). False (L->err set) when not read. */
static bool my_quoted(lexer *L, uint8_t q) {
    uint32_t start = L->i;
    bool bs = false;
    bool plain = quoted(L, q, false, NULL, &bs);
    if (!bs) return plain; /* no backslash: one reading */
    uint32_t end = L->i;
    L->err = 0;
    L->i = start;
    bool esc = quoted(L, q, true, NULL, NULL);
    if (plain && esc && L->i == end) return true;
    L->err = !plain && !esc ? CG_SQL_UNTERMINATED : CG_SQL_MODE;
    return false;
}

/* Whether s[0..n) is a decimal number: digits with an optional fraction and exponent (1, 1.,
   .5, 1.5e-3). MySQL's reading of a token from a digit, and PostgreSQL's: there anything more
   (1from, 1e, 0x1f, 1_000) is read apart by PostgreSQL 14 and older (1 FROM), refused by 15,
   and a literal in 16: not read. */
static bool decimal_number(const uint8_t *s, uint32_t n) {
    uint32_t k = 0;
    bool any = false;
    while (k < n && digit(s[k])) k++, any = true;
    if (k < n && s[k] == '.')
        for (k++; k < n && digit(s[k]);) k++, any = true;
    if (any && k < n && (s[k] | 0x20) == 'e') {
        uint32_t e = ++k;
        if (k < n && (s[k] == '+' || s[k] == '-')) e = ++k;
        while (k < n && digit(s[k])) k++;
        if (k == e) return false; /* an exponent without digits */
    }
    return any && k == n;
}

/* A MySQL token that begins with a digit (or ".digit"): a number when it is one (digits with
   an optional fraction and exponent, 0x hex, 0b binary), else a name that begins with a
   digit, which the check does not read (CG_SQL_NAME). L->i is at its start. */
static bool my_number(lexer *L) {
    const uint8_t *s = L->s;
    uint32_t n = L->n, i = L->i, start = L->i;
    while (i < n) {
        uint8_t d = s[i];
        if ((cls_table[d] & C_NAME) || (d == '.' && i + 1 < n && digit(s[i + 1])))
            i++;
        else if ((d == '+' || d == '-') && i > start && (s[i - 1] | 0x20) == 'e')
            i++;
        else
            break;
    }
    L->i = i;
    uint32_t k = start;
    if (i - start > 2 && s[k] == '0' && (s[k + 1] == 'x' || s[k + 1] == 'b')) {
        bool hex = s[k + 1] == 'x';
        for (k += 2; k < i; k++)
            if (!(hex ? (digit(s[k]) || (uint8_t)((s[k] | 0x20) - 'a') < 6) : (s[k] == '0' || s[k] == '1'))) break;
        if (k == i) return true;
    } else if (decimal_number(s + start, i - start)) {
        return true;
    }
    L->err = CG_SQL_NAME;
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

/* next_token for MySQL, from the token's first byte c (c1 the next, or 0): out of line. */
CG_NOINLINE static void my_token(lexer *L, uint32_t start, uint8_t c, uint8_t c1, tok *out) {
    tok t = {T_END, 0, start, 0};
    if (c == '\'' || c == '"' || ((c == 'x' || c == 'X' || c == 'b' || c == 'B' || c == 'n' || c == 'N') && c1 == '\'')) {
        if (c != '\'' && c != '"') L->i++; /* X'..', B'..', N'..' */
        t.type = my_quoted(L, L->i < L->n ? L->s[L->i] : 0) ? T_STRING : T_END;
        t.quote = c == '"' ? '"' : 0; /* a name under ANSI_QUOTES: cg_sql_scan decides */
    } else if (c == '`') {
        bool ok = quoted(L, c, false, NULL, NULL);
        t.type = ok ? T_QIDENT : T_END;
        t.quote = c;
        t.off = start + 1;
        t.len = ok ? L->i - 1 - t.off : 0;
        *out = t;
        return;
    } else if (c == '?') {
        L->i++;
        t.type = T_PARAM;
    } else if (c == '@') { /* @var, @@var, @@global.var (user variable names take '.') */
        L->i += c1 == '@' ? 2 : 1;
        uint32_t from = L->i;
        while (L->i < L->n && ((cls_table[L->s[L->i]] & C_NAME) || L->s[L->i] == '.')) L->i++;
        t.type = L->i > from ? T_PARAM : T_OP; /* @'name': the quoted name follows */
        if (L->i == from) L->i = start + 1;
    } else if (c == '$' || ident_start(c)) { /* '$' begins a MySQL name */
        L->i++;
        while (L->i < L->n && ident_char(L->s[L->i])) L->i++;
        t.type = T_WORD;
    } else if (digit(c) || (c == '.' && digit(c1))) {
        t.type = my_number(L) ? T_NUMBER : T_END;
    } else if (c == ':' && c1 == '=') { /* assigns a user variable */
        L->i += 2;
        t.type = T_OP;
    } else if (c == '\\') { /* outside a string: the client's command (\G, \!, ...) */
        L->err = CG_SQL_HIDDEN;
    } else {
        L->i++;
        t.type = punct_table[c] ? punct_table[c] : T_OP;
    }
    if (t.type != T_QIDENT) t.len = L->i - start;
    *out = t;
}

/* The token at L->i (or after the spaces and comments there), byte by byte; T_END at the end
   or on an error (L->err). Out of line: next_token's rare case. */
CG_NOINLINE static void scalar_token(lexer *L, tok *out) {
    const uint8_t *s = L->s;
    const uint32_t n = L->n;
    uint32_t start = L->i; /* (L->err is 0 here: the scan stops at an error) */
    while (start < n && (cls_table[s[start]] & C_SPACE)) start++;
    if (start < n && (cls_table[s[start]] & C_COMMENT)) start = skip_space(L, start);
    tok t = {T_END, 0, start, 0};
    if (L->err || start >= n) {
        L->i = start;
        *out = t;
        return;
    }
    uint8_t c = s[start], cl = cls_table[c];
    if ((cl & (C_START | C_PREFIX)) == C_START) { /* a word: the common case */
        uint32_t end = name_end(s, start + 1, n);
        L->i = end;
        out->type = T_WORD;
        out->quote = 0;
        out->off = start;
        out->len = end - start;
        return;
    }
    if (punct_table[c] && c != '.') { /* ( ) , ; in every dialect */
        L->i = start + 1;
        out->type = punct_table[c];
        out->quote = 0;
        out->off = start;
        out->len = 1;
        return;
    }
    L->i = start;
    uint8_t c1 = start + 1 < n ? s[start + 1] : 0;
    bool pg = L->dialect == CG_SQL_POSTGRES;
    if ((cl & C_START) && (c1 != '\'' && c1 != '&')) { /* a word that begins with E, U, X, B or N */
        L->i = name_end(s, start + 1, n);
        t.type = T_WORD;
        t.len = L->i - start;
        *out = t;
        return;
    }
    uint8_t c2 = at(L, L->i + 2);
    if (L->dialect == CG_SQL_MYSQL) {
        my_token(L, start, c, c1, out);
        return;
    }
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
    } else if (!pg && c == '?') { /* SQLite: ?NNN (?1from is ?1 then FROM) */
        L->i++;
        while (L->i < L->n && digit(L->s[L->i])) L->i++;
        t.type = T_PARAM;
    } else if (!pg && (c == ':' || c == '@' || c == '$' || c == '#')) { /* SQLite: :a @a $a #a */
        L->i++;
        while (L->i < L->n && ident_char(L->s[L->i])) L->i++;
        /* SQLite reads on through a "(...)" or "::" right after the name when built with Tcl
           variables (the default): :a(');DELETE ...') is one parameter there, several tokens
           in a build without them; a lone $ : @ # is no token at all */
        uint8_t d = L->i < L->n ? L->s[L->i] : 0;
        if (L->i == start + 1 || d == '(' || (d == ':' && L->i + 1 < L->n && L->s[L->i + 1] == ':')) {
            L->err = CG_SQL_PARAMETER;
            t.type = T_END;
        } else {
            t.type = T_PARAM;
        }
    } else if (ident_start(c)) {
        const uint8_t *p = L->s + L->i, *end = L->s + L->n;
        while (p < end && (cls_table[*p] & C_NAME)) p++;
        L->i = (uint32_t)(p - L->s);
        t.type = T_WORD;
    } else if (digit(c) || (c == '.' && digit(c1))) {
        L->i++;
        bool dot = c == '.';
        while (L->i < L->n) {
            uint8_t d = L->s[L->i];
            /* PostgreSQL: "1." and "1.e5" are numbers too (not "1..": a range's dots) */
            bool pg_dot = pg && d == '.' && !dot && at(L, L->i + 1) != '.';
            if (digit(d) || (uint8_t)((d | 0x20) - 'a') < 26 || d == '_' || (d == '.' && digit(at(L, L->i + 1))) ||
                pg_dot) {
                dot |= d == '.';
                L->i++;
            }
            else if ((d == '+' || d == '-') && (L->s[L->i - 1] | 0x20) == 'e')
                L->i++;
            else
                break;
        }
        t.type = T_NUMBER;
        if (pg && !decimal_number(s + start, L->i - start)) { /* 1from: 1 FROM before PostgreSQL 15 */
            L->err = CG_SQL_NAME;
            t.type = T_END;
        }
    } else {
        L->i++;
        t.type = punct_table[c] ? punct_table[c] : T_OP;
    }
    if (t.type != T_QIDENT) t.len = L->i - start;
    *out = t;
}

/* starts without those before bit `from` (< 64), and with a start at `from` when that byte is
   a name byte (names): where a token read byte by byte ended, or where the walk resumes */
static inline uint64_t starts_from(uint64_t starts, uint64_t names, uint32_t from) {
    return (starts & (~0ull << from)) | (names & (1ull << from));
}

/* The masks of the block at base (a multiple of 64 below n), with the starts before c->i
   dropped; a name byte at c->i starts a token whatever precedes it (a number or parameter
   read byte by byte may end where a name begins: $1abc). Bytes past n are none of these. */
SQL_HOT void load_block(const lexer *L, cursor *c, uint32_t base) {
    const uint8_t *s = L->s;
    uint64_t names = 0, spaces = 0, valid = ~0ull;
#ifdef CG_SQL_SSE2
    if (L->n - base >= 64) {
        const uint8_t *p = s + base;
        names = (uint64_t)name_bytes16(p) | (uint64_t)name_bytes16(p + 16) << 16 |
                (uint64_t)name_bytes16(p + 32) << 32 | (uint64_t)name_bytes16(p + 48) << 48;
        spaces = (uint64_t)space_bytes16(p) | (uint64_t)space_bytes16(p + 16) << 16 |
                 (uint64_t)space_bytes16(p + 32) << 32 | (uint64_t)space_bytes16(p + 48) << 48;
    } else
#endif
    {
        uint32_t m = L->n - base < 64 ? L->n - base : 64;
        for (uint32_t k = 0; k < m; k++) {
            uint8_t cl = cls_table[s[base + k]];
            names |= (uint64_t)((cl & C_NAME) != 0) << k;
            spaces |= (uint64_t)((cl & C_SPACE) != 0) << k;
        }
        if (m < 64) valid = (1ull << m) - 1;
    }
    uint64_t after_name = (names << 1) | (base > 0 && (cls_table[s[base - 1]] & C_NAME) != 0);
    uint64_t starts = (names & ~after_name) | (~names & ~spaces & valid);
    if (c->i >= base) starts = starts_from(starts, names, c->i - base); /* (< 64: the block holds c->i) */
    c->base = base;
    c->names = names;
    c->starts = starts;
}

/* next_token's reading of a token's first byte (anything else: scalar_token) */
enum { F_SLOW, F_WORD, F_PREFIX, F_PUNCT, F_DOT, F_OP, F_STRING };
static const uint8_t first_byte[256] = {
    /* F_WORD: a letter, '_' or a byte >= 0x80; F_PREFIX: a letter that may begin a string or
       quoted name before a quote or '&' (E'', U&'', X'', B'', N''); F_PUNCT: ( ) , ;
       F_DOT: '.' (not before a digit: a number); F_OP: one byte, an operator in every dialect;
       F_STRING: '\'' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 5, 0, 0, 0, 5, 5, 6, 3, 3, 5, 5, 3, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 5, 5, 5, 0,
    0, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 2, 1, 1, 0, 0, 0, 5, 1,
    0, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 2, 1, 1, 0, 5, 0, 5, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* The next token; T_END at the end or on an error (L->err). CG_SQL_BYTEWISE reads every token
   byte by byte (scalar_token): fuzz/fuzz_sql.c holds the block walk to that reading. */
static void next_token(lexer *L, cursor *c, tok *out) {
#ifdef CG_SQL_BYTEWISE
    L->i = c->i;
    scalar_token(L, out);
    c->i = L->i;
    return;
#endif
    while (c->starts == 0) {
        uint32_t next = c->i >= c->base + 64 ? c->i & ~63u : c->base + 64;
        if (next >= L->n) {
            out->type = T_END;
            out->quote = 0;
            out->off = out->len = 0;
            return;
        }
        load_block(L, c, next);
    }
    const uint8_t *s = L->s;
    uint32_t k = ctz64(c->starts), p = c->base + k;
    c->starts &= c->starts - 1;
    unsigned f = first_byte[s[p]];
    out->quote = 0;
    out->off = p;
    if (f == F_PREFIX) {
        uint8_t c1 = p + 1 < L->n ? s[p + 1] : 0;
        f = c1 == '\'' || c1 == '&' ? F_SLOW : F_WORD;
    }
    if (f == F_WORD) {
        uint64_t rest = ~(c->names >> k);
        uint32_t end = rest ? p + ctz64(rest) : c->base + 64;
        if (end >= c->base + 64) { /* the word goes on past the block */
            end = name_end(s, end, L->n);
            c->starts = 0;
        }
        c->i = end;
        out->type = T_WORD;
        out->len = end - p;
        return;
    }
    if (f == F_PUNCT || f == F_OP || (f == F_DOT && !(p + 1 < L->n && digit(s[p + 1])))) {
        c->i = p + 1;
        out->type = f == F_OP ? T_OP : punct_table[s[p]];
        out->len = 1;
        return;
    }
    uint32_t end = f == F_STRING ? plain_string_end(s, p + 1, L->n) : 0;
    if (end) { /* '...' without a backslash or doubled quote: the same string in every dialect */
        c->i = end;
        out->type = T_STRING;
        out->len = end - p;
    } else {
        L->i = p;
        scalar_token(L, out);
        c->i = L->i;
    }
    if (c->i >= c->base + 64) {
        c->starts = 0;
    } else { /* drop the starts inside the token; a name byte right after it starts one */
        c->starts = starts_from(c->starts, c->names, c->i - c->base);
    }
}

/* ---- the statement pass ---- */

enum { FROM_NONE, FROM_EXPECT, FROM_IN };
/* (NONE and BODY first: finish_word tests for both at once) */
enum { WITH_NONE, WITH_BODY, WITH_NAME, WITH_AFTER_NAME, WITH_AS, WITH_AFTER_BODY };

/* A part of a name run, as written: its canonical bytes are made only when the name is
   reported (name_of), not for every keyword. */
typedef struct part {
    uint32_t off, len; /* the word, or a quoted name's content */
    uint8_t quote;     /* 0: an unquoted word, else the closing quote */
} part;

typedef struct an {
    lexer L;
    const cg_sql_visitor *v;
    uint32_t stmt, depth;
    int kind;                             /* what the statement is (its first word's kind) */
    int body;                             /* the kind of the statement being read, whose clauses
                                             name tables: kind, or EXPLAIN's statement */
    bool started, stop, kind_set;
    bool halt;                            /* stop or an error (L.err): the scan ends */
    /* the name run being read */
    bool run, run_dot, run_bad;
    /* what makes a run unusual for finish_word, which reads the four at once: side by side */
    bool run_quoted;                      /* a part of the run is a quoted name */
    bool explain_next;                    /* MySQL: the run after EXPLAIN (EXPLAIN t: t's columns) */
    bool explain_open;                    /* after EXPLAIN and its options, before its statement */
    bool in_table;                        /* SQLite: x IN t, the table expected is IN's */
    uint32_t run_parts, run_len;          /* run_len: the canonical length, saturated */
    part parts[3];
    const cg_sql_word *extra_write;       /* the first word that writes among the parts past the
                                             third (not kept: the name is refused where compared) */
    const cg_sql_word *prev_word;         /* the word before the run (or the last token's) */
    int prev_type;
    /* WITH queries of the statement */
    int with;
    uint32_t n_ctes;
    uint8_t next_lp_plain;                /* the next '(' is not a call (alias or column list) */
    bool write_target;                    /* the table expected is written (INTO t, UPDATE t, DELETE
                                             FROM t): a WITH query's name does not hide it */
    bool distinct_op;                     /* the last DISTINCT followed IS or NOT (IS DISTINCT FROM) */
    bool recursive;                       /* WITH RECURSIVE: a WITH query's body sees its own name */
    uint8_t lite_or;                      /* SQLite: UPDATE OR IGNORE t: 1 after OR (its word is next) */
    uint8_t in_from, in_target;           /* ... and the FROM state to return to after it */
    uint8_t call[CG_SQL_MAX_DEPTH + 1];   /* the parenthesis at depth d is a call's */
    uint8_t from[CG_SQL_MAX_DEPTH + 1];   /* FROM_* at depth d */
    uint8_t target[CG_SQL_MAX_DEPTH + 1]; /* the expected table is a target (INTO t (cols)) */
    uint8_t cte_len[CG_SQL_MAX_CTES];
    /* written before they are read: not cleared for each scan */
    uint32_t schema, schema_n;            /* where name_of put the part before the last */
    uint8_t name[CG_SQL_NAME_MAX + 8];    /* the run's canonical name (name_of), and the slack
                                             put_name writes 8 bytes at a time into */
    uint8_t cte_name[CG_SQL_MAX_CTES][CG_SQL_CTE_NAME_MAX]; /* compared byte for byte */
} an;

/* finish_word's four flags are side by side (a negative array size otherwise) */
typedef char finish_word_flags_adjacent[offsetof(an, in_table) == offsetof(an, run_quoted) + 3 ? 1 : -1];

static void fail(an *a, int err) {
    if (!a->L.err) a->L.err = err;
    a->halt = true;
}
/* a visitor returned non-zero: the scan ends, as a success */
static void visitor_stops(an *a) { a->stop = a->halt = true; }

/* Adds a word or quoted name to the run: its canonical length, and whether the name can be
   read (run_bad: a name to refuse). The bytes are copied later, by name_of. */
static void run_add(an *a, const tok *t) {
    uint32_t part_len = t->len;
    /* EXPLAIN s.f(), EXPLAIN "x": that statement, other (as EXPLAIN f() is; MySQL's EXPLAIN t
       names a table) */
    if (a->explain_open && a->depth == 0 && !a->explain_next && a->prev_type != T_OP) {
        a->explain_open = false;
        a->kind = a->body = CG_SQL_K_NONE;
    }
    if (t->type == T_QIDENT) {
        const uint8_t *s = a->L.s + t->off;
        a->run_quoted = true;
        if (t->quote == 0) a->run_bad = true; /* U&"..." */
        part_len = 0;
        for (uint32_t i = 0; i < t->len; i++) {
            uint8_t c = s[i];
            if (c == t->quote && t->quote != ']') i++; /* a doubled quote */
            if (c == '.') a->run_bad = true;           /* "a.b" would read as two parts */
            part_len++;
        }
    }
    if (part_len == 0 || (a->L.dialect == CG_SQL_POSTGRES && part_len > 63)) a->run_bad = true;
    if (a->run_parts >= 3 && t->type == T_WORD && !a->extra_write) {
        const cg_sql_word *w = word_of(a->L.s + t->off, t->len, a->L.n - t->off, true);
        if (w && (w->flags & CG_SQLW_WRITES)) a->extra_write = w;
    }
    if (a->run_parts < 3) {
        a->parts[a->run_parts].off = t->off;
        a->parts[a->run_parts].len = t->len;
        a->parts[a->run_parts].quote = t->type == T_QIDENT ? (t->quote ? t->quote : '"') : 0;
    }
    uint32_t len = a->run_len + (a->run_parts > 0) + (part_len <= CG_SQL_NAME_MAX ? part_len : CG_SQL_NAME_MAX + 1);
    a->run_len = len <= CG_SQL_NAME_MAX ? len : CG_SQL_NAME_MAX + 1;
    a->run_parts++;
    if (a->run_parts > 3 || a->run_len > CG_SQL_NAME_MAX) a->run_bad = true;
}

static inline void put64(uint8_t *p, uint64_t x) { /* little-endian, as cg_rd64 reads */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    cg_memcpy(p, &x, 8); /* one store */
#else
    for (int k = 0; k < 8; k++) p[k] = (uint8_t)(x >> (k << 3));
#endif
}
/* s[0..m) to out, 8 bytes at a time, with ASCII capitals made small when fold: avail bytes from
   s are readable, and out has room for 8 bytes past m (a->name's slack) */
static inline void put_name(uint8_t *out, const uint8_t *s, uint32_t m, uint32_t avail, bool fold) {
    uint32_t i = 0;
    for (; i + 8 <= m; i += 8) {
        uint64_t x = cg_rd64(s + i);
        put64(out + i, fold ? fold8(x) : x);
    }
    if (i < m && avail - i >= 8) {
        uint64_t x = cg_rd64(s + i);
        put64(out + i, fold ? fold8(x) : x);
    } else {
        for (; i < m; i++) out[i] = fold ? lower(s[i]) : s[i];
    }
}

/* name_of for a run with a quoted part, or a MySQL function's name: part by part. Out of line. */
CG_NOINLINE static void name_of_parts(an *a, bool function) {
    uint32_t k = 0;
    bool fold_quoted = a->L.dialect == CG_SQL_SQLITE, my = a->L.dialect == CG_SQL_MYSQL;
    uint8_t *out = a->name;
    uint32_t last = 0, before = 0; /* where the last part and the one before it begin */
    for (uint32_t p = 0; p < a->run_parts && p < 3; p++) {
        const part *q = &a->parts[p];
        const uint8_t *s = a->L.s + q->off;
        if (p > 0 && k < CG_SQL_NAME_MAX) out[k++] = '.';
        before = last;
        last = k;
        if (!q->quote) { /* a word, folded (MySQL: a function's name only) */
            uint32_t m = q->len <= CG_SQL_NAME_MAX - k ? q->len : CG_SQL_NAME_MAX - k;
            put_name(out + k, s, m, a->L.n - q->off, !my || (function && p + 1 == a->run_parts));
            k += m;
            continue;
        }
        for (uint32_t i = 0; i < q->len && k < CG_SQL_NAME_MAX; i++) {
            uint8_t c = s[i];
            if (c == q->quote && q->quote != ']') i++; /* a doubled quote */
            out[k++] = fold_quoted ? lower(c) : c;
        }
    }
    a->schema = before;
    a->schema_n = a->run_parts >= 2 ? last - 1 - before : 0;
}

/* Writes the run's canonical name into a->name (its length is a->run_len): unquoted parts
   lower case (MySQL: a table's as written, a function's last part lower case), quoted parts as
   written with doubled quotes collapsed (SQLite folds those too), joined by '.'; a->schema and
   a->schema_n say where the part before the last lies. Only for a run that is not run_bad (at
   most 3 parts, a->run_len bytes at most CG_SQL_NAME_MAX). The common case inline: words only,
   written with nothing around their dots (s.t), whose text is the name; the others part by part
   in name_of_parts. */
SQL_HOT void name_of(an *a, bool function) {
    bool my = a->L.dialect == CG_SQL_MYSQL;
    const part *q = a->parts;
    uint32_t n = a->run_parts, first = q[0].off;
    if (a->run_quoted || (my && function) || q[n - 1].off + q[n - 1].len - first != a->run_len) {
        name_of_parts(a, function);
        return;
    }
    put_name(a->name, a->L.s + first, a->run_len, a->L.n - first, !my);
    a->schema = n >= 2 ? q[n - 2].off - first : 0;
    a->schema_n = n >= 2 ? q[n - 1].off - first - 1 - a->schema : 0;
}

static bool is_cte(const an *a) { /* after name_of */
    if (a->run_parts != 1 || a->run_len > CG_SQL_CTE_NAME_MAX) return false;
    /* inside a WITH query's body its own name is the table of that name, unless RECURSIVE:
       WITH passwords AS (SELECT * FROM passwords) reads the table passwords */
    uint32_t seen = a->with == WITH_BODY && !a->recursive ? a->n_ctes - 1 : a->n_ctes;
    for (uint32_t i = 0; i < seen; i++)
        if (a->cte_len[i] == a->run_len && cg_memcmp(a->cte_name[i], a->name, a->run_len) == 0) return true;
    return false;
}

static void emit_table(an *a) {
    if (a->run_bad) {
        fail(a, CG_SQL_NAME);
        return;
    }
    name_of(a, false);
    if (!a->write_target && is_cte(a)) return; /* a WITH query's name does not hide a written table */
    if (a->v->table &&
        a->v->table(a->v->ctx, a->stmt, a->name, a->run_len, a->run_parts, a->schema, a->schema_n))
        visitor_stops(a);
}
/* w: the run's word when it is one unquoted word (NULL: not a known word, or not such a run) */
static void emit_function(an *a, const cg_sql_word *w) {
    if (a->run_bad) {
        fail(a, CG_SQL_NAME);
        return;
    }
    /* a known word (lower, count): its canonical name is the table's text, as folded */
    const uint8_t *name = w ? (const uint8_t *)w->text : a->name;
    if (!w) name_of(a, true);
    unsigned flag = a->L.dialect == CG_SQL_POSTGRES ? CG_SQLW_PG_FUNC
                    : a->L.dialect == CG_SQL_SQLITE ? CG_SQLW_SQLITE_FUNC : CG_SQLW_MYSQL_FUNC;
    int builtin = a->run_parts == 1 && (a->run_quoted ? cg_sql_builtin(a->L.dialect, a->name, a->run_len)
                                                      : w != NULL && (w->flags & flag) != 0);
    if (a->v->function && a->v->function(a->v->ctx, a->stmt, name, a->run_len, a->run_parts, builtin))
        visitor_stops(a);
}
static void emit_write(an *a, int what, const char *text, uint32_t n) {
    if (a->v->write && a->v->write(a->v->ctx, a->stmt, what, (const uint8_t *)text, n)) visitor_stops(a);
}

/* The first word of the statement read: the statement's, its main statement's after its WITH
   queries, or the one EXPLAIN shows; its clauses name the tables (INSERT INTO t, UPDATE t). */
static void set_body(an *a, const cg_sql_word *w) {
    int k = w ? w->kind : CG_SQL_K_NONE;
    a->body = k;
    if (k == CG_SQL_K_WITH) a->with = WITH_NAME;
    bool my = a->L.dialect == CG_SQL_MYSQL;
    /* UPDATE t, TABLE t; MySQL's INSERT t / REPLACE t (INTO is optional there) */
    if (k == CG_SQL_K_UPDATE || (k == CG_SQL_K_SELECT && role_in(a->L.dialect, w) == CG_SQLR_TABLE) ||
        (my && k == CG_SQL_K_INSERT)) {
        a->from[a->depth] = FROM_EXPECT;
        a->target[a->depth] = 1;
        a->write_target = k != CG_SQL_K_SELECT;
    }
    if (my && k == CG_SQL_K_EXPLAIN) a->explain_next = true;
}

/* A statement's first word: what it is, and what it reads. */
static void set_kind(an *a, const cg_sql_word *w) {
    a->kind = w ? w->kind : CG_SQL_K_NONE;
    a->explain_open = a->kind == CG_SQL_K_EXPLAIN;
    set_body(a, w);
}

/* A word between EXPLAIN and its statement: ANALYZE, VERBOSE, SQLite's QUERY PLAN, MySQL's
   FORMAT=JSON (the word after '=' too), EXTENDED, PARTITIONS. */
static bool explain_option(const an *a, const cg_sql_word *w) {
    return role_in(a->L.dialect, w) == CG_SQLR_EXPLAIN_OPTION || a->prev_type == T_OP;
}

/* A word that begins a statement EXPLAIN may show (EXPLAIN ANALYZE runs it). */
static bool explained(const cg_sql_word *w) {
    return w && (w->kind == CG_SQL_K_SELECT || w->kind == CG_SQL_K_WITH || w->kind == CG_SQL_K_INSERT ||
                 w->kind == CG_SQL_K_UPDATE || w->kind == CG_SQL_K_DELETE || w->kind == CG_SQL_K_MERGE);
}

static void word_writes(an *a, const cg_sql_word *w) {
    if (w && (w->flags & CG_SQLW_WRITES)) emit_write(a, CG_SQL_W_WORD, w->text, w->len);
}

/* The word of the run's part p when it is an unquoted word that writes (s.delete), else NULL */
static const cg_sql_word *part_writes(const an *a, uint32_t p) {
    const part *q = &a->parts[p];
    if (q->quote || q->len < CG_SQLW_WRITES_MINLEN || q->len > CG_SQLW_WRITES_MAXLEN) return NULL;
    const cg_sql_word *w = word_of(a->L.s + q->off, q->len, a->L.n - q->off, true);
    return w && (w->flags & CG_SQLW_WRITES) ? w : NULL;
}

/* The unquoted parts of a dotted name that are words that write (FROM s.copy): "anywhere"
   includes names (docs/arguments.md), so the scan errs towards not read-only. */
static void run_writes(an *a) {
    for (uint32_t p = 0; p < a->run_parts && p < 3; p++) word_writes(a, part_writes(a, p));
    word_writes(a, a->extra_write); /* a.b.c.delete */
    a->extra_write = NULL;
}

#define LOCKS_ROWS "locks rows (FOR UPDATE / SHARE)"

/* An unquoted one-part word, followed by the token `next`. */
static void keyword(an *a, const cg_sql_word *w, const tok *next) {
    uint32_t d = a->depth;
    if (!a->kind_set) { /* the first word (after any opening parentheses) says what it is */
        if (role_in(a->L.dialect, w) == CG_SQLR_MY_DELIMITER) fail(a, CG_SQL_HIDDEN); /* mysql's command */
        set_kind(a, w);
        a->kind_set = true;
        a->started = true;
        /* PostgreSQL's EXPLAIN (ANALYZE, ...) statement: options, not a call */
        if (a->kind == CG_SQL_K_EXPLAIN && next->type == T_LP) a->next_lp_plain = 1;
    } else if (a->body == CG_SQL_K_WITH && d == 0 && a->with == WITH_AFTER_BODY && explained(w) &&
               w->kind != CG_SQL_K_WITH) {
        if (a->kind == CG_SQL_K_WITH) a->kind = w->kind; /* WITH ... INSERT is an insert */
        set_body(a, w);
        a->with = WITH_NONE;
    } else if (a->explain_open && d == 0 && !explain_option(a, w)) { /* EXPLAIN [options] statement */
        a->explain_open = false;
        if (explained(w)) {
            set_body(a, w);
        } else { /* EXPLAIN ANALYZE CREATE ... AS, DECLARE, EXECUTE: that statement, whose tables are not read */
            a->kind = a->body = w ? w->kind : CG_SQL_K_NONE;
            if (a->kind == CG_SQL_K_EXPLAIN) a->kind = a->body = CG_SQL_K_NONE;
        }
    } else if (a->explain_open && d == 0 && next->type == T_LP) { /* EXPLAIN ANALYZE (SELECT ...) */
        a->next_lp_plain = 1;
    }
    if (!w) return;
    int r = role_in(a->L.dialect, w);
    if (a->with == WITH_NAME && d == 0 && r == CG_SQLR_RECURSIVE) {
        a->recursive = true;
        return;
    }
    if (a->with == WITH_AFTER_NAME && r == CG_SQLR_AS) a->with = WITH_AS;
    if (w->flags & CG_SQLW_WRITES) emit_write(a, CG_SQL_W_WORD, w->text, w->len);
    if (r == CG_SQLR_FOR && next->type == T_WORD) { /* FOR UPDATE / SHARE / NO KEY / KEY SHARE */
        int nr = role_in(a->L.dialect, word_of(a->L.s + next->off, next->len, a->L.n - next->off, true));
        if (nr == CG_SQLR_UPDATE || nr == CG_SQLR_LOCKWORD)
            emit_write(a, CG_SQL_W_LOCK, LOCKS_ROWS, sizeof LOCKS_ROWS - 1);
    }
    if (r == CG_SQLR_NONE) return; /* most words */
    switch (r) {
    case CG_SQLR_FROM:
        /* x IS [NOT] DISTINCT FROM y is an operator (SELECT x distinct FROM t: a bare column label) */
        if (!a->call[d] && !(role_in(a->L.dialect, a->prev_word) == CG_SQLR_DISTINCT && a->distinct_op)) {
            a->from[d] = FROM_EXPECT;
            a->target[d] = 0;
            /* DELETE FROM t: t is written */
            a->write_target = a->prev_type == T_WORD && a->prev_word && a->prev_word->kind == CG_SQL_K_DELETE;
        }
        break;
    case CG_SQLR_DISTINCT:
        a->distinct_op = a->prev_type == T_WORD && (WORD_IS(a->prev_word, "is") || WORD_IS(a->prev_word, "not"));
        break;
    case CG_SQLR_JOIN:
        a->from[d] = FROM_EXPECT;
        a->target[d] = 0;
        break;
    case CG_SQLR_INTO: /* (MySQL's SELECT ... INTO names a file or variables, not a table) */
        if (a->body == CG_SQL_K_INSERT || a->body == CG_SQL_K_MERGE ||
            ((a->body == CG_SQL_K_SELECT || a->body == CG_SQL_K_WITH) && a->L.dialect != CG_SQL_MYSQL)) {
            a->from[d] = FROM_EXPECT;
            a->target[d] = 1;
            a->write_target = true;
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
    case CG_SQLR_UPDATE: /* (UPDATE t ...): a WITH query that updates (FOR UPDATE, DO UPDATE: no table) */
        if (a->prev_type == T_LP && d > 0) {
            a->from[d] = FROM_EXPECT;
            a->target[d] = 1;
            a->write_target = true;
        }
        break;
    case CG_SQLR_CTE_CLAUSE: /* its column list's commas would read as new WITH queries: not read */
        if (d == 0 && a->with == WITH_AFTER_BODY) fail(a, CG_SQL_CTE_CLAUSE);
        break;
    case CG_SQLR_TABLE: /* ... UNION TABLE t (and TRUNCATE TABLE t, ...): a table follows */
        a->from[d] = FROM_EXPECT;
        a->target[d] = 1;
        break;
    case CG_SQLR_FOR:
    case CG_SQLR_ENDS:
        /* right after a FROM item and before ',', the word is the item's alias (FROM t set, s:
           PostgreSQL, SQLite and MySQL take many clause words as aliases): the list goes on */
        if (!(a->from[d] == FROM_IN && next->type == T_COMMA)) a->from[d] = FROM_NONE;
        break;
    case CG_SQLR_LITE_IN: /* SQLite: x IN t, x IN s.t, x IN f(...) (a string there: not read) */
        if (next->type == T_WORD || next->type == T_QIDENT || next->type == T_STRING) {
            a->in_table = true;
            a->in_from = a->from[d];
            a->in_target = a->target[d];
            a->from[d] = FROM_EXPECT;
            a->target[d] = 0;
        }
        break;
    default:
        break;
    }
}

/* SQLite: whether the token before the run ends an operand (a name, a literal, a parameter, a
   ')'): then MATCH, REGEXP, GLOB, LIKE before '(' are the operator, else a call of the function. */
static bool after_operand(const an *a) {
    int t = a->prev_type;
    if (t == T_STRING || t == T_NUMBER || t == T_PARAM || t == T_RP) return true;
    if (t != T_WORD) return false;
    const cg_sql_word *p = a->prev_word; /* NULL: a name no keyword */
    return !p || (!(p->flags & CG_SQLW_STRUCT) && p->kind == CG_SQL_K_NONE && role_in(a->L.dialect, p) == CG_SQLR_NONE);
}

/* A clause word the dialect reserves, so never a table's name where one is expected: PostgreSQL
   reads `SELECT 1 join FOR SHARE` as a bare column label and a locking clause, and
   `SELECT 1 join INTO t` as SELECT INTO. (SET, VALUES, QUALIFY, and in MySQL OFFSET, FETCH,
   RETURNING, may name a table; SQLite lets most keywords name one.) */
static bool never_table(unsigned dialect, const cg_sql_word *w, int r) {
    if (r == CG_SQLR_INTO || r == CG_SQLR_FROM) return true; /* SELECT 1 JOIN 'x' FROM t */
    if (r == CG_SQLR_JOIN) return dialect != CG_SQL_SQLITE;
    if (dialect == CG_SQL_SQLITE || (r != CG_SQLR_FOR && r != CG_SQLR_ENDS)) return false;
    if (r == CG_SQLR_FOR) return true;
    if (WORD_IS(w, "set") || WORD_IS(w, "values") || WORD_IS(w, "qualify")) return false;
    return dialect != CG_SQL_MYSQL || !(WORD_IS(w, "offset") || WORD_IS(w, "fetch") || WORD_IS(w, "returning"));
}

/* The calls written without "(" that finish_run's caller has not seen (next is no '('); true
   when the scan halts. Out of line: the rare case, kept off the loop's path. */
CG_COLD CG_NOINLINE static bool calls_without_paren(an *a, const cg_sql_word *w) {
    bool single_word = a->run_parts == 1 && !a->run_quoted;
    /* PostgreSQL's attribute notation: after a '.' that follows no name ((x).f, '...'::t.f, $1.f),
       f is a field of x or a call f(x) (SELECT (42::bigint).pg_advisory_lock): read as a call */
    bool attribute = a->L.dialect == CG_SQL_POSTGRES && a->prev_type == T_DOT;
    /* MySQL's CURRENT_USER and CURRENT_ROLE are its information functions without the "()" */
    bool info = a->L.dialect == CG_SQL_MYSQL && single_word && a->parts[0].len == 12 &&
                (cg_eq_ci(a->L.s + a->parts[0].off, 12, "current_user") ||
                 cg_eq_ci(a->L.s + a->parts[0].off, 12, "current_role"));
    if (!attribute && !info) return false;
    emit_function(a, attribute ? w : NULL);
    return a->halt;
}

/* The run of names ends; `next` is the token after it. Out of line: finish_word, inline in
   the loop, finishes the common runs, and only the others come here. */
CG_NOINLINE static void finish_run(an *a, const tok *next) {
    uint32_t d = a->depth;
    a->run = false;
    bool single_word = a->run_parts == 1 && !a->run_quoted;
    const cg_sql_word *w =
        single_word ? word_of(a->L.s + a->parts[0].off, a->parts[0].len, a->L.n - a->parts[0].off, true) : NULL;
    int r = role_in(a->L.dialect, w);
    if (!single_word) run_writes(a);
    if ((a->prev_type == T_DOT || (a->L.dialect == CG_SQL_MYSQL && a->parts[0].len == 12)) && next->type != T_LP &&
        calls_without_paren(a, w))
        return;
    bool in_item = a->in_table; /* x IN t: this run is IN's table, whatever its word */
    a->in_table = false;
    if (a->explain_next) { /* MySQL: EXPLAIN t (DESCRIBE t) reads t's columns: t is a table */
        a->explain_next = false;
        if (d == 0 && !(w && (w->kind != CG_SQL_K_NONE || r == CG_SQLR_EXPLAIN_OPTION || r == CG_SQLR_FOR))) {
            a->explain_open = false;
            if (single_word) word_writes(a, w);
            emit_table(a);
            a->prev_word = NULL;
            a->prev_type = T_WORD;
            return;
        }
    }
    if (a->with == WITH_NAME && d == 0 && !in_item && !(single_word && r == CG_SQLR_RECURSIVE)) { /* a WITH query's name */
        if (a->n_ctes == CG_SQL_MAX_CTES) {
            fail(a, CG_SQL_CTES);
            return;
        }
        if (a->run_parts != 1 || a->run_bad || a->run_len > CG_SQL_CTE_NAME_MAX) {
            fail(a, CG_SQL_NAME);
            return;
        }
        if (single_word) word_writes(a, w);
        name_of(a, false);
        cg_memcpy(a->cte_name[a->n_ctes], a->name, a->run_len);
        a->cte_len[a->n_ctes++] = (uint8_t)a->run_len;
        a->with = WITH_AFTER_NAME;
        if (next->type == T_LP) a->next_lp_plain = 1; /* its column names */
        return;
    }
    bool from_item = in_item;
    if (!in_item && a->from[d] == FROM_EXPECT) {
        /* a FROM item: a table, a table function, unless the word opens a subquery there
           (SELECT, VALUES, TABLE, WITH) or is ONLY / LATERAL (in MySQL also INSERT's INTO,
           LOW_PRIORITY, IGNORE, ...) */
        /* (VALUES not before '(' is a table's name: DELETE FROM values) */
        bool subquery_word = single_word && w && (w->kind == CG_SQL_K_SELECT || w->kind == CG_SQL_K_WITH) &&
                             !(WORD_IS(w, "values") && next->type != T_LP);
        /* (SQLite has no ONLY or LATERAL: there they are names) */
        bool skip_word = single_word && ((r == CG_SQLR_SKIP && a->L.dialect != CG_SQL_SQLITE) ||
                                         (a->L.dialect == CG_SQL_MYSQL && r == CG_SQLR_INTO));
        bool reserved = single_word && never_table(a->L.dialect, w, r);
        /* SQLite's UPDATE OR {ROLLBACK | ABORT | REPLACE | FAIL | IGNORE} t: the table is after them */
        if (a->target[d] && a->L.dialect == CG_SQL_SQLITE && single_word && (a->lite_or || WORD_IS(w, "or"))) {
            a->lite_or = !a->lite_or;
            a->prev_word = w;
            a->prev_type = T_WORD;
            return;
        }
        from_item = !skip_word && !subquery_word && !reserved;
    }
    if (from_item) {
        a->from[d] = FROM_IN;
        if (single_word) word_writes(a, w);
        if (r == CG_SQLR_MY_DUAL && single_word) { /* MySQL's FROM DUAL: no table */
        } else if (next->type == T_LP && !a->target[d]) { /* FROM f(...): a table function */
            emit_function(a, w);
            a->next_lp_plain = 2;
        } else {
            emit_table(a);
            if (next->type == T_LP) a->next_lp_plain = 1; /* INSERT INTO t (columns) */
        }
        a->target[d] = 0;
        a->write_target = false;
        if (in_item) { /* x IN t: the clause IN stood in goes on */
            a->from[d] = a->in_from;
            a->target[d] = a->in_target;
        }
        a->prev_word = NULL;
        return;
    }
    if (single_word) {
        keyword(a, w, next);
        if (next->type == T_LP && w && (w->flags & (CG_SQLW_STRUCT | CG_SQLW_TYPE)) &&
            !(r == CG_SQLR_LITE_OPERATOR && !after_operand(a)))
            a->next_lp_plain = 1;
    } else {
        a->kind_set = a->started = true; /* a quoted or qualified first word: not a kind */
    }
    if (next->type == T_LP && !a->next_lp_plain) {
        if (a->prev_type == T_WORD && role_in(a->L.dialect, a->prev_word) == CG_SQLR_AS)
            a->next_lp_plain = 1; /* AS x (cols) */
        else {
            emit_function(a, w);
            a->next_lp_plain = 2;
        }
    }
    a->prev_word = w;
    a->prev_type = T_WORD;
}

/* finish_word's qualified names (a.b, s.t, c.s.t) of at most three unquoted parts, not before
   '(': as finish_run finishes them, or false, having changed nothing. Out of line: a name of one
   word is the common run. */
CG_NOINLINE static bool finish_name(an *a, const tok *next, uint32_t d) {
    if (a->run_parts > 3 || next->type == T_LP) return false;
    for (uint32_t p = 0; p < a->run_parts; p++)
        if (part_writes(a, p)) return false; /* run_writes' words: finish_run reports them */
    a->run = false;
    a->prev_word = NULL;
    if (a->from[d] == FROM_EXPECT) { /* a table */
        a->from[d] = FROM_IN;
        emit_table(a);
        a->target[d] = 0;
        a->write_target = false;
        return true;
    }
    a->kind_set = a->started = true; /* a qualified first word: not a kind */
    a->prev_type = T_WORD;
    return true;
}

/* finish_run's common case, inline in the scan's loop: a run of one unquoted word in a statement
   whose state holds nothing unusual (no WITH query's name, EXPLAIN, SQLite's IN t, MySQL's
   12-byte information words, attribute notation, or a table expected) and a word that is no
   keyword, or a keyword without a role, or FROM, JOIN or a clause that ends a FROM list. It
   does what finish_run does for such a run, which the fuzzer's peer (the last commit's scanner)
   holds it to; false, having changed nothing, for any other run. Its point is the loop's size:
   finish_run inline made the loop's code twice as large as what a common statement runs, and
   the scan 20% slower than a build laid out from a profile. */
SQL_HOT bool finish_word(an *a, const tok *next) {
    uint32_t d = a->depth;
    uint32_t unusual; /* run_quoted, explain_next, explain_open, in_table */
    cg_memcpy(&unusual, (const uint8_t *)a + offsetof(an, run_quoted), sizeof unusual);
    if (unusual || a->prev_type == T_DOT || a->with > WITH_BODY ||
        (a->L.dialect == CG_SQL_MYSQL && a->parts[0].len == 12))
        return false;
    if (a->run_parts > 1) return finish_name(a, next, d); /* a qualified name (a.b, s.t, c.s.t) */
    const cg_sql_word *w = word_of(a->L.s + a->parts[0].off, a->parts[0].len, a->L.n - a->parts[0].off, true);
    if (a->from[d] == FROM_EXPECT) { /* a table named by a word that is no keyword */
        if (w || next->type == T_LP || (a->target[d] && a->L.dialect == CG_SQL_SQLITE)) return false;
        a->run = false;
        a->from[d] = FROM_IN;
        emit_table(a);
        a->target[d] = 0;
        a->write_target = false;
        a->prev_word = NULL;
        return true;
    }
    if (!a->kind_set) return false;
    int r = role_in(a->L.dialect, w);
    if (w && (w->flags & CG_SQLW_WRITES)) return false;
    if (next->type == T_LP) {
        if (r != CG_SQLR_NONE) return false;
        a->run = false;
        if (w && (w->flags & (CG_SQLW_STRUCT | CG_SQLW_TYPE))) {
            a->next_lp_plain = 1;
        } else if (!a->next_lp_plain) {
            if (a->prev_type == T_WORD && role_in(a->L.dialect, a->prev_word) == CG_SQLR_AS) {
                a->next_lp_plain = 1; /* AS x (cols) */
            } else {
                emit_function(a, w);
                a->next_lp_plain = 2;
            }
        }
    } else if (r == CG_SQLR_NONE) {
        a->run = false;
    } else if (r == CG_SQLR_FROM) {
        a->run = false;
        /* x IS [NOT] DISTINCT FROM y is an operator (SELECT x distinct FROM t: a bare column label) */
        if (!a->call[d] && !(role_in(a->L.dialect, a->prev_word) == CG_SQLR_DISTINCT && a->distinct_op)) {
            a->from[d] = FROM_EXPECT;
            a->target[d] = 0;
            /* DELETE FROM t: t is written */
            a->write_target = a->prev_type == T_WORD && a->prev_word && a->prev_word->kind == CG_SQL_K_DELETE;
        }
    } else if (r == CG_SQLR_JOIN) {
        a->run = false;
        a->from[d] = FROM_EXPECT;
        a->target[d] = 0;
    } else if (r == CG_SQLR_ENDS) {
        a->run = false;
        if (!(a->from[d] == FROM_IN && next->type == T_COMMA)) a->from[d] = FROM_NONE;
    } else {
        return false;
    }
    a->prev_word = w;
    a->prev_type = T_WORD;
    return true;
}

/* Whether the token after s[i] (past spaces and comments) is '(' or a '.' that begins no
   number: what follows a MySQL "..." string that makes it a name under ANSI_QUOTES. A comment
   the lexer cannot read is no such token (the lexer will refuse it). */
static bool paren_or_dot_next(const lexer *L, uint32_t i) {
    lexer peek = *L;
    peek.err = 0;
    uint32_t j = skip_space(&peek, i);
    if (peek.err || j >= L->n) return false;
    return L->s[j] == '(' || (L->s[j] == '.' && !(j + 1 < L->n && digit(L->s[j + 1])));
}

/* MySQL: a string, number, parameter or operator token (the scan's default case). Out of line:
   the loop's code stays as the other dialects need it. */
CG_COLD CG_NOINLINE static void my_value(an *a, const tok *t) {
    bool dq = t->type == T_STRING && t->quote == '"'; /* a name under ANSI_QUOTES */
    if (dq && a->prev_type == T_DOT) fail(a, CG_SQL_MODE); /* (x)."y", and t."x" (the scan's loop) */
    if (dq && paren_or_dot_next(&a->L, t->off + t->len))
        fail(a, CG_SQL_MODE); /* "x"( and "x". are a function's or table's name under ANSI_QUOTES */
    if ((t->type == T_STRING || t->type == T_NUMBER) && a->from[a->depth] == FROM_EXPECT)
        fail(a, dq ? CG_SQL_MODE : CG_SQL_NAME);
    if (dq && a->with == WITH_NAME && a->depth == 0) fail(a, CG_SQL_MODE);
    if (dq && a->explain_next && a->depth == 0) fail(a, CG_SQL_MODE); /* EXPLAIN "t": t's columns */
    a->explain_next = false; /* EXPLAIN's table is the token after it, or none */
    if (t->type == T_OP && t->len == 2) emit_write(a, CG_SQL_W_WORD, ":=", 2); /* the one 2-byte op */
    /* @@version, @@global.x: the server's settings, read as VERSION() reads them */
    const uint8_t *s = a->L.s + t->off;
    if (t->type == T_PARAM && t->len > 2 && s[0] == '@' && s[1] == '@')
        emit_write(a, CG_SQL_W_WORD, (const char *)s, t->len);
}

static void end_statement(an *a) {
    if (a->started && a->v->statement && a->v->statement(a->v->ctx, a->stmt, a->kind)) visitor_stops(a);
    if (a->started) a->stmt++;
    a->started = a->kind_set = false;
    a->kind = a->body = CG_SQL_K_NONE;
    a->with = WITH_NONE;
    a->explain_next = a->explain_open = a->in_table = a->write_target = a->recursive = false;
    a->lite_or = 0;
    a->n_ctes = 0;
    a->from[0] = FROM_NONE;
    a->target[0] = 0;
    a->call[0] = 0;
    a->prev_word = NULL;
    a->prev_type = T_END;
}

CG_ALIGN_HOT int cg_sql_scan(const uint8_t *s, size_t n, unsigned dialect, const cg_sql_visitor *v,
                             uint32_t *statements) {
    an a;
    cg_memset(&a, 0, offsetof(an, name));
    a.L.s = s;
    a.L.n = (uint32_t)n;
    a.L.dialect = dialect;
    a.v = v;
    *statements = 0;
    if (n > 0xFFFFFF00u) return CG_SQL_DEPTH; /* (the blocks' offsets stay below 2^32) */
    const bool my = dialect == CG_SQL_MYSQL;
    const uint32_t part_max = dialect == CG_SQL_POSTGRES ? 63u : CG_SQL_NAME_MAX; /* PostgreSQL truncates */
    cursor cur = {0u - 64u, 0, 0, 0}; /* (unsigned) the first block read is s[0 .. 64) */
    for (;;) {
        tok t;
        next_token(&a.L, &cur, &t);
        if (t.type == T_END && a.L.err) break;
        if (a.run) {
            if (!a.run_dot) {
                if (t.type == T_DOT) {
                    a.run_dot = true;
                    continue;
                }
                if (t.type == T_STRING && my && t.quote == '"' && a.prev_type == T_DOT) {
                    fail(&a, CG_SQL_MODE); /* (x).f "y": see my_value */
                    break;
                }
            } else if (t.type == T_WORD && a.run_parts < 3 && !a.explain_open) { /* run_add's work for a word */
                uint32_t len = a.run_len + 1 + (t.len <= CG_SQL_NAME_MAX ? t.len : CG_SQL_NAME_MAX + 1);
                a.run_len = len <= CG_SQL_NAME_MAX ? len : CG_SQL_NAME_MAX + 1;
                a.run_bad |= t.len > part_max || a.run_len > CG_SQL_NAME_MAX;
                a.parts[a.run_parts].off = t.off;
                a.parts[a.run_parts].len = t.len;
                a.parts[a.run_parts].quote = 0;
                a.run_parts++;
                a.run_dot = false;
                continue;
            } else if (t.type == T_WORD || t.type == T_QIDENT) {
                a.run_dot = false;
                run_add(&a, &t);
                continue;
            } else if (t.type == T_STRING && dialect == CG_SQL_SQLITE) {
                fail(&a, CG_SQL_NAME); /* main.'secret': SQLite reads the string as a name */
                break;
            } else if (t.type == T_STRING && my && t.quote == '"') {
                fail(&a, CG_SQL_MODE); /* t."x": a qualified name under ANSI_QUOTES */
                break;
            }
            if (!finish_word(&a, &t)) finish_run(&a, &t);
            if (a.halt) break;
        }
        if (t.type == T_WORD) { /* the common token, before the switch (run_add's work for a word) */
            a.run = true;
            a.run_dot = a.run_quoted = false;
            a.run_bad = t.len > part_max;
            a.run_parts = 1;
            a.run_len = t.len <= CG_SQL_NAME_MAX ? t.len : CG_SQL_NAME_MAX + 1;
            a.parts[0].off = t.off;
            a.parts[0].len = t.len;
            a.parts[0].quote = 0;
            continue; /* prev_type stays the token before the run */
        }
        switch (t.type) {
        case T_QIDENT:
            a.run = true;
            a.run_dot = a.run_bad = a.run_quoted = false;
            a.run_parts = a.run_len = 0;
            run_add(&a, &t);
            continue;
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
            a.write_target = false;
            break;
        }
        case T_RP:
            if (a.depth == 0) {
                fail(&a, CG_SQL_DEPTH);
                break;
            }
            a.depth--;
            if (a.with == WITH_BODY && a.depth == 0) a.with = WITH_AFTER_BODY;
            a.kind_set = true; /* ()SELECT: a statement that opens with no word has no kind */
            break;
        case T_COMMA:
            if (a.from[a.depth] == FROM_IN) a.from[a.depth] = FROM_EXPECT;
            if (a.with == WITH_AFTER_BODY && a.depth == 0) a.with = WITH_NAME;
            a.started = a.kind_set = true; /* a statement that starts with ',' has no kind */
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
            /* (a one-byte operator is nothing to my_value unless EXPLAIN's table is next) */
            if (my && (t.type != T_OP || t.len != 1 || a.explain_next)) my_value(&a, &t);
            a.started = a.kind_set = true; /* a statement that starts with no word has no kind */
            a.next_lp_plain = 0;
            break;
        }
        if (a.halt || t.type == T_END) break;
        a.prev_type = t.type;
        a.prev_word = NULL; /* (a word has gone on above) */
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
