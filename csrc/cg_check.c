/*
 * cg_check.c -- UrlCheck and PathCheck (cg_check.h): the string is decoded into a buffer on
 * the stack (bounded: longer inputs are U), parsed, then each listed check runs in the
 * order docs/arguments.md gives, the first that fails deciding F. Set lookups hash the
 * candidate once: a path's prefixes at segment boundaries share one incremental hash, so a
 * path costs time linear in its length whatever its depth.
 */
#include "cg_check.h"

#include "cg_path.h"
#include "cg_sql.h"
#include "cg_url.h"

/* words[desc + k], the descriptor's field k */
static uint32_t dword(const cg_policy *p, uint32_t desc, uint32_t k) { return cg_word(p, desc + k); }

/* The member of set `set` equal to s[0..n) with hash h (h = cg_hash_bytes(s, n)): its bytes in
   the policy, or NULL */
static const uint8_t *set_member(const cg_policy *p, uint32_t set, uint32_t h, const uint8_t *s, uint32_t n) {
    CG_ASSERT(set < p->n_sets);
    const cg_set_index *ix = &p->set_index[set];
    const uint32_t *slots = p->set_slots + 2u * ix->slots;
    for (uint32_t i = h & ix->mask;; i = (i + 1) & ix->mask) {
        uint32_t sid = slots[2 * i];
        if (sid == 0) return NULL;
        if (slots[2 * i + 1] != h) continue;
        uint32_t m;
        const uint8_t *x = cg_str(p, sid - 1, &m);
        if (m == n && cg_bytes_eq(x, s, n)) return x;
    }
}
static bool set_has(const cg_policy *p, uint32_t set, uint32_t h, const uint8_t *s, uint32_t n) {
    return set_member(p, set, h, s, n) != NULL;
}
static bool set_has_bytes(const cg_policy *p, uint32_t set, const uint8_t *s, uint32_t n) {
    return set_has(p, set, cg_hash_bytes(s, n), s, n);
}

/* A set's last member found, kept to answer the next lookup of the same bytes without hashing
   (a statement names the same schema, or table, again and again) */
typedef struct last_member {
    const uint8_t *bytes; /* in the policy; NULL: none yet */
    uint32_t n;
} last_member;
static bool set_has_again(const cg_policy *p, uint32_t set, last_member *last, const uint8_t *s, uint32_t n) {
    if (last->bytes && last->n == n && cg_bytes_eq(last->bytes, s, n)) return true;
    const uint8_t *m = set_member(p, set, cg_hash_bytes(s, n), s, n);
    if (m) last->bytes = m, last->n = n;
    return m != NULL;
}

/* cg_hash_bytes(s, L) for growing L: whole 8-byte blocks are folded into *h once. */
typedef struct prefix_hash {
    uint64_t h;
    uint32_t done;
} prefix_hash;
static uint32_t prefix_hash_at(prefix_hash *ph, const uint8_t *s, uint32_t L) {
    while (ph->done + 8 <= L) {
        ph->h = cg_hash_step(ph->h, cg_rd64(s + ph->done));
        ph->done += 8;
    }
    uint64_t tail = 0;
    for (uint32_t j = ph->done; j < L; j++) tail |= (uint64_t)s[j] << ((j - ph->done) * 8u);
    return cg_hash_final(ph->h, tail, L);
}

/* ---- a small text sink ---- */
typedef struct sink {
    char *out;
    size_t cap, n;
} sink;
static void put(sink *w, const void *s, size_t n) {
    const uint8_t *b = s;
    for (size_t i = 0; i < n; i++, w->n++)
        if (w->n < w->cap) w->out[w->n] = (char)b[i];
}
static void puts_(sink *w, const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    put(w, s, n);
}
static void put_set(sink *w, const cg_policy *p, uint32_t set) {
    uint32_t n;
    const uint8_t *s = cg_str(p, cg_set_display(p, set), &n);
    put(w, s, n);
}
static void put_u32(sink *w, uint32_t v) {
    char buf[CG_U32_DIGITS];
    uint32_t at = cg_u32_text(buf, v);
    put(w, buf + at, CG_U32_DIGITS - at);
}
#define CG_SHOWN_BYTES 64u
/* s, cut at a character boundary after 64 bytes with "…" (as values are shown) */
static void put_cut(sink *w, const uint8_t *s, uint32_t n) {
    if (n <= CG_SHOWN_BYTES) {
        put(w, s, n);
        return;
    }
    uint32_t k = CG_SHOWN_BYTES;
    while (k > 0 && (s[k] & 0xC0) == 0x80) k--;
    put(w, s, k);
    puts_(w, "\xE2\x80\xA6");
}

/* ---- UrlCheck ---- */

enum { FAIL_NONE, FAIL_PARSE, FAIL_SCHEME, FAIL_USERINFO, FAIL_HOST, FAIL_PORT, FAIL_IP,
       FAIL_WITHIN, FAIL_NOT_WITHIN, FAIL_EXT, FAIL_UNSURE };

typedef struct url_state {
    uint8_t buf[CG_URL_MAX_INPUT];
    cg_url u;
    uint32_t port;   /* the effective port */
    int ip_class;
} url_state;

/* the host as hosts_in and suffixes compare it: without one trailing dot */
static uint32_t match_len(const cg_url *u) {
    return u->host_kind == CG_HOST_DOMAIN && u->host_len > 1 && u->host[u->host_len - 1] == '.'
               ? u->host_len - 1
               : u->host_len;
}

static bool host_under(const cg_policy *p, uint32_t set, const cg_url *u) {
    if (u->host_kind != CG_HOST_DOMAIN) return false; /* suffixes are names, not addresses */
    uint32_t n = match_len(u);
    for (uint32_t k = 0; k < n; k++)
        if ((k == 0 || u->host[k - 1] == '.') && set_has_bytes(p, set, u->host + k, n - k)) return true;
    return false;
}

static int url_eval(const cg_policy *p, uint32_t desc, cg_jstr v, url_state *st) {
    size_t len = cg_jstr_decode(v, st->buf, sizeof st->buf);
    if (len > sizeof st->buf) return FAIL_PARSE;
    cg_url *u = &st->u;
    if (cg_url_parse(st->buf, len, u) != CG_URL_OK) return FAIL_PARSE;
    uint32_t flags = dword(p, desc, CG_URLD_FLAGS);
    uint32_t schemes = dword(p, desc, CG_URLD_SCHEMES), hosts = dword(p, desc, CG_URLD_HOSTS);
    uint32_t suffixes = dword(p, desc, CG_URLD_SUFFIXES), ports = dword(p, desc, CG_URLD_PORTS);
    if (schemes != CG_NONE_SET && !set_has_bytes(p, schemes, u->scheme, u->scheme_len)) return FAIL_SCHEME;
    if ((flags & CG_URL_NO_USERINFO) && u->has_at) return FAIL_USERINFO;
    if (hosts != CG_NONE_SET || suffixes != CG_NONE_SET) {
        bool in = hosts != CG_NONE_SET && set_has_bytes(p, hosts, u->host, match_len(u));
        if (!in && !(suffixes != CG_NONE_SET && host_under(p, suffixes, u))) return FAIL_HOST;
    }
    st->port = u->port >= 0 ? (uint32_t)u->port : (uint32_t)cg_url_default_port(u->scheme, u->scheme_len);
    if (ports != CG_NONE_SET) {
        char buf[CG_U32_DIGITS];
        uint32_t at = cg_u32_text(buf, st->port);
        if (!set_has_bytes(p, ports, (const uint8_t *)buf + at, CG_U32_DIGITS - at)) return FAIL_PORT;
    }
    st->ip_class = cg_url_ip_class(u);
    if ((flags & CG_URL_PUBLIC) && st->ip_class != CG_IP_PUBLIC) return FAIL_IP;
    return FAIL_NONE;
}

static int value_of(int fail) {
    return fail == FAIL_NONE ? CG_V_T : fail == FAIL_PARSE || fail == FAIL_UNSURE ? CG_V_U : CG_V_F;
}

int cg_url_check(const cg_policy *p, uint32_t desc, cg_jstr v) {
    url_state st;
    return value_of(url_eval(p, desc, v, &st));
}

int cg_url_check_text(const cg_policy *p, uint32_t desc, cg_jstr v, bool *with_value, char *out,
                      size_t cap, size_t *n) {
    url_state st;
    int fail = url_eval(p, desc, v, &st);
    sink w = {out, cap, 0};
    const cg_url *u = &st.u;
    *with_value = fail == FAIL_NONE || fail == FAIL_PARSE;
    switch (fail) {
    case FAIL_NONE: puts_(&w, " passes the URL check"); break;
    case FAIL_PARSE: puts_(&w, " is not a URL the check can read"); break;
    case FAIL_SCHEME:
        puts_(&w, " scheme ");
        put(&w, u->scheme, u->scheme_len);
        puts_(&w, " is not in ");
        put_set(&w, p, dword(p, desc, CG_URLD_SCHEMES));
        break;
    case FAIL_USERINFO:
        puts_(&w, " has userinfo before host ");
        put(&w, u->host, u->host_len);
        puts_(&w, ", which is not allowed");
        break;
    case FAIL_HOST: {
        uint32_t hosts = dword(p, desc, CG_URLD_HOSTS), suffixes = dword(p, desc, CG_URLD_SUFFIXES);
        puts_(&w, " host ");
        put(&w, u->host, u->host_len);
        if (hosts != CG_NONE_SET) {
            puts_(&w, " is not in ");
            put_set(&w, p, hosts);
        }
        if (suffixes != CG_NONE_SET) {
            puts_(&w, hosts != CG_NONE_SET ? " nor under " : " is not under ");
            put_set(&w, p, suffixes);
        }
        break;
    }
    case FAIL_PORT:
        puts_(&w, " port ");
        put_u32(&w, st.port);
        puts_(&w, " is not in ");
        put_set(&w, p, dword(p, desc, CG_URLD_PORTS));
        break;
    default: /* FAIL_IP */
        puts_(&w, " host ");
        put(&w, u->host, u->host_len);
        puts_(&w, " is ");
        puts_(&w, cg_ip_class_text(st.ip_class));
        puts_(&w, ", not public");
        break;
    }
    *n = w.n;
    return value_of(fail);
}

/* ---- PathCheck ---- */

typedef struct path_state {
    uint8_t in[CG_PATH_MAX_INPUT];
    uint8_t out[CG_PATH_MAX_INPUT + 2];
    uint32_t in_len;
    cg_path np;
} path_state;

/* Whether the normalized path (folded for Windows) equals a member of set or lies under one
   at a segment boundary: its root, each prefix ending before a separator, itself. */
static bool within(const cg_policy *p, uint32_t set, const uint8_t *s, const cg_path *np, uint8_t sep) {
    prefix_hash ph = {CG_HASH_K, 0};
    if (np->root_len && set_has(p, set, prefix_hash_at(&ph, s, np->root_len), s, np->root_len)) return true;
    for (uint32_t k = np->root_len; k < np->len; k++)
        if (s[k] == sep && set_has(p, set, prefix_hash_at(&ph, s, k), s, k)) return true;
    return np->len > np->root_len && set_has(p, set, prefix_hash_at(&ph, s, np->len), s, np->len);
}

/* Case-insensitive volumes (APFS and HFS+ by default, vfat, exFAT, CIFS, ext4 casefold) put a
   POSIX path under a root it is not under byte for byte. Segment against segment: equal with
   ASCII case folded (SAME), different and both ASCII (DIFFERENT: no folding or normalization
   makes two ASCII names one), else a non-ASCII byte the volume's Unicode folding or
   normalization decides (MAYBE, "ſ" is "s" folded). */
enum { SEG_SAME, SEG_MAYBE, SEG_DIFFERENT };
static bool ascii_only(const uint8_t *s, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (s[i] >= 0x80) return false;
    return true;
}
static int seg_compare(const uint8_t *a, uint32_t an, const uint8_t *b, uint32_t bn) {
    if (an == bn) {
        uint32_t k = 0;
        while (k < an && cg_ascii_lower(a[k]) == cg_ascii_lower(b[k])) k++;
        if (k == an) return SEG_SAME;
    }
    return ascii_only(a, an) && ascii_only(b, bn) ? SEG_DIFFERENT : SEG_MAYBE;
}

/* Whether the normalized POSIX path s[0..n) may lie under root r[0..m) on such a volume: both
   absolute or both relative, and no segment of the root DIFFERENT from the path's at its depth
   (the path as deep as the root at least). */
static bool may_be_under(const uint8_t *r, uint32_t m, const uint8_t *s, uint32_t n) {
    bool r_abs = m > 0 && r[0] == '/', s_abs = n > 0 && s[0] == '/';
    if (r_abs != s_abs) return false;
    uint32_t a = r_abs, b = s_abs;
    while (a < m) {
        if (b >= n) return false;
        uint32_t ae = a, be = b;
        while (ae < m && r[ae] != '/') ae++;
        while (be < n && s[be] != '/') be++;
        if (seg_compare(r + a, ae - a, s + b, be - b) == SEG_DIFFERENT) return false;
        a = ae + 1;
        b = be + 1;
    }
    return true;
}

/* Whether a POSIX path outside every root of set byte for byte may be under one on a
   case-insensitive volume: each member is compared segment by segment down to its depth (time
   at most the number of roots times the path's length, the first ASCII difference ending a
   root's comparison). */
static bool may_be_within(const cg_policy *p, uint32_t set, const uint8_t *s, const cg_path *np) {
    CG_ASSERT(set < p->n_sets);
    const cg_set_index *ix = &p->set_index[set];
    const uint32_t *slots = p->set_slots + 2u * ix->slots;
    for (uint32_t i = 0; i <= ix->mask; i++) {
        uint32_t sid = slots[2 * i];
        if (sid == 0) continue;
        uint32_t m;
        const uint8_t *r = cg_str(p, sid - 1, &m);
        if (may_be_under(r, m, s, np->len)) return true;
    }
    return false;
}

static int path_eval(const cg_policy *p, uint32_t desc, cg_jstr v, path_state *st) {
    size_t len = cg_jstr_decode(v, st->in, sizeof st->in);
    if (len > sizeof st->in) return FAIL_PARSE;
    st->in_len = (uint32_t)len;
    uint32_t flags = dword(p, desc, CG_PATHD_FLAGS);
    bool windows = (flags & CG_PC_WINDOWS) != 0;
    if (cg_path_normalize(st->in, len, windows ? CG_PATH_WINDOWS : CG_PATH_POSIX,
                          (flags & CG_PC_RELATIVE) != 0, st->out, sizeof st->out, &st->np) != CG_PATH_OK)
        return FAIL_PARSE;
    /* the comparisons see the folded form; the normalized one is kept for the reason */
    uint8_t folded[CG_PATH_MAX_INPUT + 2];
    const uint8_t *cmp = st->out;
    if (windows) {
        cg_memcpy(folded, st->out, st->np.len);
        cg_path_fold(folded, st->np.len);
        cmp = folded;
    }
    uint8_t sep = windows ? '\\' : '/';
    uint32_t inside = dword(p, desc, CG_PATHD_WITHIN), outside = dword(p, desc, CG_PATHD_NOT_WITHIN);
    uint32_t exts = dword(p, desc, CG_PATHD_EXTS);
    /* POSIX: a path that is not under a root byte for byte but may be on a case-insensitive
       volume is unsure (U), for within and not_within alike; a check that fails for certain
       still decides F */
    bool unsure = false;
    if (inside != CG_NONE_SET && !within(p, inside, cmp, &st->np, sep)) {
        if (windows || !may_be_within(p, inside, cmp, &st->np)) return FAIL_WITHIN;
        unsure = true;
    }
    if (outside != CG_NONE_SET) {
        if (within(p, outside, cmp, &st->np, sep)) return FAIL_NOT_WITHIN;
        if (!windows && may_be_within(p, outside, cmp, &st->np)) unsure = true;
    }
    if (exts != CG_NONE_SET && (st->np.ext_len == 0 ||
                            !set_has_bytes(p, exts, cmp + st->np.ext_off, st->np.ext_len)))
        return FAIL_EXT;
    return unsure ? FAIL_UNSURE : FAIL_NONE;
}

int cg_path_check(const cg_policy *p, uint32_t desc, cg_jstr v) {
    path_state st;
    return value_of(path_eval(p, desc, v, &st));
}

int cg_path_check_text(const cg_policy *p, uint32_t desc, cg_jstr v, bool *with_value, char *out,
                       size_t cap, size_t *n) {
    path_state st;
    int fail = path_eval(p, desc, v, &st);
    sink w = {out, cap, 0};
    *with_value = true;
    bool same = st.np.len == st.in_len && cg_bytes_eq(st.out, st.in, st.in_len);
    if (fail == FAIL_WITHIN || fail == FAIL_NOT_WITHIN) {
        if (!same) {
            puts_(&w, " normalizes to \"");
            put_cut(&w, st.out, st.np.len);
            puts_(&w, "\",");
        }
        if (fail == FAIL_WITHIN) {
            puts_(&w, same ? " is outside " : " outside ");
            put_set(&w, p, dword(p, desc, CG_PATHD_WITHIN));
        } else {
            puts_(&w, same ? " is inside " : " inside ");
            put_set(&w, p, dword(p, desc, CG_PATHD_NOT_WITHIN));
        }
    } else if (fail == FAIL_EXT) {
        if (st.np.ext_len) {
            puts_(&w, " has extension \"");
            put_cut(&w, st.out + st.np.ext_off, st.np.ext_len);
            puts_(&w, "\", not in ");
        } else {
            puts_(&w, " has no extension, not in ");
        }
        put_set(&w, p, dword(p, desc, CG_PATHD_EXTS));
    } else {
        puts_(&w, fail == FAIL_NONE ? " passes the path check" : " is not a path the check can read");
    }
    *n = w.n;
    return value_of(fail);
}

/* ---- SqlCheck ---- */

/* A string with JSON escapes (newlines, quotes) is decoded on the stack, up to this size;
   one without escapes is scanned where it lies, whatever its length. */
#define CG_SQL_MAX_ESCAPED 65536u

enum { SQLF_NONE, SQLF_PARSE, SQLF_MAX, SQLF_KIND, SQLF_WRITE, SQLF_LOCK, SQLF_FUNCTION, SQLF_TABLE,
       SQLF_SCHEMA, SQLF_UNSURE };

typedef struct sql_fail {
    int what;                          /* SQLF_* */
    uint32_t stmt;                     /* from 0 */
    int kind;                          /* the statement's CG_SQL_K_* (SQLF_KIND) */
    uint8_t text[CG_SQL_NAME_MAX];     /* the word, lock text or name */
    uint32_t len, schema_off, schema_len;
} sql_fail;

typedef struct sql_state {
    const cg_policy *p;
    unsigned dialect;
    bool read_only, tabled;
    uint32_t schemas, tables, functions;
    last_member schema_seen, table_seen; /* the last found in schemas, in tables */
    sql_fail ro, tab;                  /* the current statement's first read-only / table failure */
    /* the first statement that fails read_only, that fails tables_in / schemas_in, that is
       unsure (U): the checks speak in the document's order, read_only first */
    sql_fail first_ro, first_tab, first_u;
} sql_state;

static void note(sql_fail *f, int what, uint32_t stmt, const uint8_t *text, uint32_t n) {
    if (f->what != SQLF_NONE) return;
    f->what = what;
    f->stmt = stmt;
    f->len = n < CG_SQL_NAME_MAX ? n : CG_SQL_NAME_MAX;
    cg_memcpy(f->text, text, f->len);
}

static int sql_on_table(void *ctx, uint32_t stmt, const uint8_t *name, uint32_t n, uint32_t parts,
                        uint32_t schema, uint32_t schema_n) {
    sql_state *st = ctx;
    if (st->tables != CG_NONE_SET && !set_has_again(st->p, st->tables, &st->table_seen, name, n))
        note(&st->tab, SQLF_TABLE, stmt, name, n);
    if (st->schemas != CG_NONE_SET && st->tab.what == SQLF_NONE) {
        if (parts < 2) {
            note(&st->tab, SQLF_UNSURE, stmt, name, n); /* search_path decides its schema */
        } else if (!set_has_again(st->p, st->schemas, &st->schema_seen, name + schema, schema_n)) {
            note(&st->tab, SQLF_SCHEMA, stmt, name, n);
            st->tab.schema_off = schema;
            st->tab.schema_len = schema_n;
        }
    }
    return 0;
}

static int sql_on_function(void *ctx, uint32_t stmt, const uint8_t *name, uint32_t n, uint32_t parts,
                           int builtin) {
    sql_state *st = ctx;
    (void)parts;
    bool known = builtin ||
                 (st->functions != CG_NONE_SET && set_has_bytes(st->p, st->functions, name, n));
    if (known) return 0;
    if (st->read_only) note(&st->ro, SQLF_FUNCTION, stmt, name, n);
    if (st->tabled) note(&st->tab, SQLF_UNSURE, stmt, name, n); /* it may read any table */
    return 0;
}

static int sql_on_write(void *ctx, uint32_t stmt, int what, const uint8_t *text, uint32_t n) {
    sql_state *st = ctx;
    if (st->read_only) note(&st->ro, what == CG_SQL_W_LOCK ? SQLF_LOCK : SQLF_WRITE, stmt, text, n);
    return 0;
}

static int sql_on_statement(void *ctx, uint32_t stmt, int kind) {
    sql_state *st = ctx;
    bool query = kind == CG_SQL_K_SELECT || kind == CG_SQL_K_EXPLAIN;
    bool dml = query || kind == CG_SQL_K_INSERT || kind == CG_SQL_K_UPDATE || kind == CG_SQL_K_DELETE ||
               kind == CG_SQL_K_MERGE;
    if (st->read_only && st->first_ro.what == SQLF_NONE) {
        if (!query) {
            st->first_ro.what = SQLF_KIND;
            st->first_ro.stmt = stmt;
            st->first_ro.kind = kind;
            st->first_ro.len = 0;
        } else if (st->ro.what != SQLF_NONE) {
            st->first_ro = st->ro;
        }
    }
    if (st->tabled && st->first_tab.what == SQLF_NONE) {
        if (!dml) { /* which tables a DDL or COPY statement touches is not read */
            if (st->first_u.what == SQLF_NONE) {
                st->first_u.what = SQLF_UNSURE;
                st->first_u.stmt = stmt;
                st->first_u.len = 0;
            }
        } else if (st->tab.what == SQLF_UNSURE) {
            if (st->first_u.what == SQLF_NONE) st->first_u = st->tab;
        } else if (st->tab.what != SQLF_NONE) {
            st->first_tab = st->tab;
        }
    }
    st->ro.what = st->tab.what = SQLF_NONE;
    return 0;
}

typedef struct sql_eval {
    sql_state st;
    int what;          /* the deciding SQLF_*, SQLF_NONE when T */
    uint32_t statements, max;
} sql_eval;

/* A NUL byte in the SQL (only an escape, \u0000, makes one: JSON refuses it raw) is U:
   PostgreSQL's protocol and SQLite's prepare end the text there and drivers refuse it, so the
   server would not run the text the scan reads. Out of line: the escaped text is the rare case. */
CG_NOINLINE static bool has_nul(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] == 0) return true;
    return false;
}

static void sql_run(const cg_policy *p, uint32_t desc, cg_jstr v, sql_eval *e) {
    uint8_t buf[CG_SQL_MAX_ESCAPED];
    const uint8_t *s = v.p;
    size_t n = v.n;
    sql_state *st = &e->st;
    uint32_t flags = dword(p, desc, CG_SQLD_FLAGS);
    /* each failure's text is written when its `what` is (note), so only the whats are cleared,
       not the 1 KB of texts */
    st->ro.what = st->tab.what = st->first_ro.what = st->first_tab.what = st->first_u.what = SQLF_NONE;
    st->schema_seen.bytes = st->table_seen.bytes = NULL;
    st->schema_seen.n = st->table_seen.n = 0;
    st->p = p;
    st->dialect = (flags & CG_SC_MYSQL) ? CG_SQL_MYSQL : (flags & CG_SC_SQLITE) ? CG_SQL_SQLITE : CG_SQL_POSTGRES;
    st->read_only = (flags & CG_SC_READ_ONLY) != 0;
    st->schemas = dword(p, desc, CG_SQLD_SCHEMAS);
    st->tables = dword(p, desc, CG_SQLD_TABLES);
    st->functions = dword(p, desc, CG_SQLD_FUNCTIONS);
    st->tabled = st->schemas != CG_NONE_SET || st->tables != CG_NONE_SET;
    e->max = dword(p, desc, CG_SQLD_MAX);
    e->statements = 0;
    if (v.esc) {
        n = cg_jstr_decode(v, buf, sizeof buf);
        if (n > sizeof buf) {
            e->what = SQLF_PARSE;
            return;
        }
        if (has_nul(buf, n)) {
            e->what = SQLF_PARSE;
            return;
        }
        s = buf;
    }
    cg_sql_visitor vis = {st, sql_on_table, sql_on_function, sql_on_write, sql_on_statement};
    if (cg_sql_scan(s, n, st->dialect, &vis, &e->statements) != CG_SQL_OK) {
        e->what = SQLF_PARSE;
        return;
    }
    if (e->max && e->statements > e->max) e->what = SQLF_MAX;
    else if (st->first_ro.what != SQLF_NONE) e->what = st->first_ro.what;
    else if (st->first_tab.what != SQLF_NONE) e->what = st->first_tab.what;
    else if (st->first_u.what != SQLF_NONE) e->what = SQLF_UNSURE;
    else e->what = SQLF_NONE;
}

static int sql_value(int what) {
    return what == SQLF_NONE ? CG_V_T : (what == SQLF_PARSE || what == SQLF_UNSURE) ? CG_V_U : CG_V_F;
}

int cg_sql_check(const cg_policy *p, uint32_t desc, cg_jstr v) {
    sql_eval e;
    sql_run(p, desc, v, &e);
    return sql_value(e.what);
}

int cg_sql_check_text(const cg_policy *p, uint32_t desc, cg_jstr v, bool *with_value, char *out,
                      size_t cap, size_t *n) {
    sql_eval e;
    sql_run(p, desc, v, &e);
    sink w = {out, cap, 0};
    const sql_fail *f = e.st.first_ro.what != SQLF_NONE ? &e.st.first_ro : &e.st.first_tab;
    *with_value = e.what == SQLF_NONE || e.what == SQLF_PARSE || e.what == SQLF_UNSURE;
    if (e.what == SQLF_NONE) {
        puts_(&w, " passes the SQL check");
    } else if (e.what == SQLF_PARSE || e.what == SQLF_UNSURE) {
        puts_(&w, " is not SQL the check can read");
    } else if (e.what == SQLF_MAX) {
        puts_(&w, " has ");
        put_u32(&w, e.statements);
        puts_(&w, " statements, more than ");
        put_u32(&w, e.max);
    } else {
        puts_(&w, " statement ");
        put_u32(&w, f->stmt + 1);
        puts_(&w, " of ");
        put_u32(&w, e.statements);
        switch (f->what) {
        case SQLF_KIND:
            puts_(&w, " is ");
            puts_(&w, cg_sql_kind_text(f->kind == CG_SQL_K_WITH ? CG_SQL_K_NONE : f->kind));
            puts_(&w, ", not read-only");
            break;
        case SQLF_WRITE:
            puts_(&w, " contains ");
            put(&w, f->text, f->len);
            puts_(&w, ", not read-only");
            break;
        case SQLF_LOCK:
            puts_(&w, " ");
            put(&w, f->text, f->len);
            puts_(&w, ", not read-only");
            break;
        case SQLF_FUNCTION:
            puts_(&w, " calls function ");
            put_cut(&w, f->text, f->len);
            puts_(&w, ", not known to be read-only");
            break;
        case SQLF_TABLE:
            puts_(&w, " names table ");
            put_cut(&w, f->text, f->len);
            puts_(&w, ", not in ");
            put_set(&w, p, dword(p, desc, CG_SQLD_TABLES));
            break;
        default: /* SQLF_SCHEMA */
            puts_(&w, " names table ");
            put_cut(&w, f->text, f->len);
            puts_(&w, ", whose schema ");
            put_cut(&w, f->text + f->schema_off, f->schema_len);
            puts_(&w, " is not in ");
            put_set(&w, p, dword(p, desc, CG_SQLD_SCHEMAS));
            break;
        }
    }
    *n = w.n;
    return sql_value(e.what);
}
