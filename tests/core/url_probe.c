/* A test-only view of csrc/cg_url.c for tests/core/test_url_parser.py (loaded with ctypes):
   the parse of one URL as one line of tab-separated fields. */
#include <stdio.h>
#include <string.h>

#include "cg_url.h"

typedef struct out {
    char *p;
    size_t cap, n;
} out;

static void put(out *o, const void *s, size_t n) {
    for (size_t i = 0; i < n && o->n + 1 < o->cap; i++) o->p[o->n++] = ((const char *)s)[i];
}
static void put_int(out *o, long v) {
    char b[24];
    int k = snprintf(b, sizeof b, "%ld", v);
    put(o, b, (size_t)k);
}
static void tab(out *o) { put(o, "\t", 1); }

/* status, scheme, has_at, username, has_password, password, host, host kind, port, ip class
   (spans written byte for byte, NULs included); returns the length written (< cap) */
int probe_url(const char *in, size_t n, char *dst, size_t cap) {
    static unsigned char buf[CG_URL_MAX_INPUT + 16];
    cg_url u;
    out o = {dst, cap, 0};
    if (n > sizeof buf) n = sizeof buf;
    memcpy(buf, in, n);
    int st = cg_url_parse(buf, n, &u);
    put_int(&o, st);
    tab(&o);
    put(&o, u.scheme, u.scheme_len);
    tab(&o);
    put_int(&o, u.has_at);
    tab(&o);
    put(&o, buf + u.user_off, u.user_len);
    tab(&o);
    put_int(&o, u.has_pass);
    tab(&o);
    put(&o, buf + u.pass_off, u.pass_len);
    tab(&o);
    if (st == CG_URL_OK) put(&o, u.host, u.host_len);
    tab(&o);
    put_int(&o, u.host_kind);
    tab(&o);
    put_int(&o, u.port);
    tab(&o);
    if (st == CG_URL_OK) {
        const char *c = cg_ip_class_text(cg_url_ip_class(&u));
        put(&o, c, strlen(c));
    }
    dst[o.n] = 0;
    return (int)o.n;
}
