/*
 * fuzz_url.c -- libFuzzer harness for the URL parser (csrc/cg_url.c).
 *
 * Beyond memory safety (ASan, UBSan) it checks the parser's invariants on every input: the
 * status is known; a parsed host is within bounds, lower case, free of forbidden
 * characters, and parsing "scheme://host:port/" again gives the same host, kind and port
 * (the serialization is a fixed point); spans stay inside the cleaned input; a parsed URL
 * has no backslash among the slashes after its scheme nor ending its authority (RFC 3986
 * clients read those differently: CG_URL_BACKSLASH).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cg_url.h"

static unsigned char buf[CG_URL_MAX_INPUT + 64];
static unsigned char again[CG_URL_HOST_MAX + CG_URL_SCHEME_MAX + 32];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cg_url u, v;
    if (size > CG_URL_MAX_INPUT + 1) size = CG_URL_MAX_INPUT + 1;
    memcpy(buf, data, size);
    int st = cg_url_parse(buf, size, &u);
    if (st < 0 || st >= CG_URL_N_STATUSES) abort();
    if (u.clean_len > size || u.rest_off > u.clean_len) abort();
    if (u.user_off + u.user_len > u.clean_len || u.pass_off + u.pass_len > u.clean_len) abort();
    if (st != CG_URL_OK) return 0;
    for (uint32_t i = u.scheme_len + 1; i < u.clean_len && (buf[i] == '/' || buf[i] == '\\'); i++)
        if (buf[i] == '\\') abort();
    if (u.rest_off < u.clean_len && buf[u.rest_off] == '\\') abort();
    if (u.host_len == 0 || u.host_len > CG_URL_HOST_MAX) abort();
    for (uint32_t i = 0; i < u.host_len; i++) {
        uint8_t c = u.host[i];
        if (c >= 'A' && c <= 'Z') abort();
        if (c <= 0x20 || c >= 0x7F || c == '/' || c == '?' || c == '#' || c == '@' || c == '\\') abort();
    }
    (void)cg_ip_class_text(cg_url_ip_class(&u));
    size_t n = 0;
    memcpy(again, u.scheme, u.scheme_len);
    n += u.scheme_len;
    memcpy(again + n, "://", 3);
    n += 3;
    memcpy(again + n, u.host, u.host_len);
    n += u.host_len;
    if (u.port >= 0) {
        char d[8];
        int k = 0, p = u.port;
        do d[k++] = (char)('0' + p % 10);
        while ((p /= 10) != 0);
        again[n++] = ':';
        while (k > 0) again[n++] = (unsigned char)d[--k];
    }
    again[n++] = '/';
    if (cg_url_parse(again, n, &v) != CG_URL_OK) abort();
    if (v.host_len != u.host_len || memcmp(v.host, u.host, u.host_len) != 0) abort();
    if (v.host_kind != u.host_kind || v.port != u.port) abort();
    return 0;
}
