/*
 * cg_url.c -- the URL parser of cg_url.h: the WHATWG basic URL parser (no base URL, no state
 * override) for the special schemes, far enough to find scheme, userinfo, host and port.
 * Each step names the part of the standard it follows; the path, query and fragment never
 * make a special URL fail, so they are only located (rest_off), not parsed.
 */
#include "cg_url.h"

#include <stdbool.h>

static const char *const status_text[CG_URL_N_STATUSES] = {
#define CG_URL_ST_TEXT(name, text) text,
    CG_URL_STATUSES(CG_URL_ST_TEXT)
#undef CG_URL_ST_TEXT
};
static const char *const class_text[CG_IP_N_CLASSES] = {
#define CG_IP_TEXT(name, text) text,
    CG_IP_CLASSES(CG_IP_TEXT)
#undef CG_IP_TEXT
};

const char *cg_url_status_text(int status) {
    return status >= 0 && status < CG_URL_N_STATUSES ? status_text[status] : "is not parsed";
}
const char *cg_ip_class_text(int cls) {
    return cls >= 0 && cls < CG_IP_N_CLASSES ? class_text[cls] : "unknown";
}

static bool is_alpha(uint8_t c) { return (uint8_t)((c | 0x20) - 'a') < 26; }
static bool is_digit(uint8_t c) { return (uint8_t)(c - '0') < 10; }
static int hex_val(uint8_t c) {
    if (is_digit(c)) return c - '0';
    if ((uint8_t)((c | 0x20) - 'a') < 6) return (c | 0x20) - 'a' + 10;
    return -1;
}
static uint8_t lower(uint8_t c) { return (uint8_t)(c - 'A') < 26 ? (uint8_t)(c | 0x20) : c; }

static bool bytes_is(const uint8_t *s, uint32_t n, const char *lit) {
    uint32_t i = 0;
    for (; i < n; i++)
        if (lit[i] == 0 || (uint8_t)lit[i] != s[i]) return false;
    return lit[i] == 0;
}

int32_t cg_url_default_port(const uint8_t *scheme, uint32_t len) {
    if (bytes_is(scheme, len, "http") || bytes_is(scheme, len, "ws")) return 80;
    if (bytes_is(scheme, len, "https") || bytes_is(scheme, len, "wss")) return 443;
    if (bytes_is(scheme, len, "ftp")) return 21;
    return -1;
}

/* ---- hosts ---- */

/* Forbidden domain code points (ASCII): the forbidden host code points, C0 controls, '%' and
   DEL. A percent-decoded host containing one is a failure. */
static bool forbidden_domain(uint8_t c) {
    if (c <= 0x20 || c == 0x7F) return true;
    switch (c) {
    case '#': case '%': case '/': case ':': case '<': case '>': case '?': case '@':
    case '[': case '\\': case ']': case '^': case '|':
        return true;
    default:
        return false;
    }
}

/* The IPv4 number parser: a decimal, 0x-hex or 0-octal part. Values saturate at 2^32 (any
   such value is out of range wherever it appears). False on failure. */
static bool ipv4_number(const uint8_t *s, uint32_t n, uint64_t *out) {
    if (n == 0) return false;
    unsigned radix = 10;
    if (n >= 2 && s[0] == '0' && (s[1] | 0x20) == 'x') {
        s += 2;
        n -= 2;
        radix = 16;
    } else if (n >= 2 && s[0] == '0') {
        s++;
        n--;
        radix = 8;
    }
    uint64_t v = 0;
    for (uint32_t i = 0; i < n; i++) {
        int d = hex_val(s[i]);
        if (d < 0 || (unsigned)d >= radix) return false;
        v = v * radix + (unsigned)d;
        if (v > 0xFFFFFFFFull) v = 0x100000000ull; /* saturate: stays out of range */
    }
    *out = v;
    return true;
}

/* "Ends in a number": the last label (a trailing empty one dropped) is all digits or an
   IPv4 number; such a host must then parse as IPv4. */
static bool ends_in_number(const uint8_t *s, uint32_t n) {
    uint32_t end = n;
    if (end > 0 && s[end - 1] == '.') end--; /* a trailing empty part is dropped */
    uint32_t start = end;
    while (start > 0 && s[start - 1] != '.') start--;
    if (start == end) return false;
    bool digits = true;
    for (uint32_t i = start; i < end; i++)
        if (!is_digit(s[i])) digits = false;
    if (digits) return true;
    uint64_t v;
    return ipv4_number(s + start, end - start, &v);
}

static int ipv4_parse(const uint8_t *s, uint32_t n, uint32_t *out) {
    uint64_t parts[4];
    uint32_t count = 0, start = 0, end = n;
    if (end > 0 && s[end - 1] == '.') end--; /* a trailing dot: one empty last part, dropped */
    for (uint32_t i = 0; i <= end; i++) {
        if (i < end && s[i] != '.') continue;
        if (count == 4) return CG_URL_BAD_IPV4;
        if (!ipv4_number(s + start, i - start, &parts[count])) return CG_URL_BAD_IPV4;
        count++;
        start = i + 1;
    }
    for (uint32_t i = 0; i + 1 < count; i++)
        if (parts[i] > 255) return CG_URL_BAD_IPV4;
    uint64_t limit = 1ull << ((5 - count) * 8u);
    if (parts[count - 1] >= limit) return CG_URL_BAD_IPV4;
    uint64_t v = parts[count - 1];
    for (uint32_t i = 0; i + 1 < count; i++) v += parts[i] << ((3 - i) * 8u);
    *out = (uint32_t)v;
    return CG_URL_OK;
}

/* The IPv6 parser of the standard, over the text between the brackets. */
static int ipv6_parse(const uint8_t *s, uint32_t n, uint16_t addr[8]) {
    for (int i = 0; i < 8; i++) addr[i] = 0;
    uint32_t piece = 0, p = 0;
    int32_t compress = -1;
#define C(k) ((p + (k)) < n ? s[p + (k)] : 0u)
#define AT_END (p >= n)
    if (!AT_END && s[p] == ':') {
        if (C(1) != ':') return CG_URL_BAD_IPV6;
        p += 2;
        piece++;
        compress = (int32_t)piece;
    }
    while (!AT_END) {
        if (piece == 8) return CG_URL_BAD_IPV6;
        if (s[p] == ':') {
            if (compress >= 0) return CG_URL_BAD_IPV6;
            p++;
            piece++;
            compress = (int32_t)piece;
            continue;
        }
        uint32_t value = 0, length = 0;
        while (length < 4 && !AT_END && hex_val(s[p]) >= 0) {
            value = value * 16 + (uint32_t)hex_val(s[p]);
            p++;
            length++;
        }
        if (!AT_END && s[p] == '.') {
            if (length == 0) return CG_URL_BAD_IPV6;
            p -= length;
            if (piece > 6) return CG_URL_BAD_IPV6;
            uint32_t seen = 0;
            while (!AT_END) {
                int32_t v4 = -1;
                if (seen > 0) {
                    if (s[p] == '.' && seen < 4) p++;
                    else return CG_URL_BAD_IPV6;
                }
                if (AT_END || !is_digit(s[p])) return CG_URL_BAD_IPV6;
                while (!AT_END && is_digit(s[p])) {
                    int32_t d = s[p] - '0';
                    if (v4 < 0) v4 = d;
                    else if (v4 == 0) return CG_URL_BAD_IPV6;
                    else v4 = v4 * 10 + d;
                    if (v4 > 255) return CG_URL_BAD_IPV6;
                    p++;
                }
                addr[piece] = (uint16_t)(addr[piece] * 0x100 + v4);
                seen++;
                if (seen == 2 || seen == 4) piece++;
            }
            if (seen != 4) return CG_URL_BAD_IPV6;
            break;
        } else if (!AT_END && s[p] == ':') {
            p++;
            if (AT_END) return CG_URL_BAD_IPV6;
        } else if (!AT_END) {
            return CG_URL_BAD_IPV6;
        }
        addr[piece] = (uint16_t)value;
        piece++;
    }
#undef C
#undef AT_END
    if (compress >= 0) {
        uint32_t swaps = piece - (uint32_t)compress;
        piece = 7;
        while (piece != 0 && swaps > 0) {
            uint32_t other = (uint32_t)compress + swaps - 1;
            uint16_t t = addr[piece];
            addr[piece] = addr[other];
            addr[other] = t;
            piece--;
            swaps--;
        }
    } else if (piece != 8) {
        return CG_URL_BAD_IPV6;
    }
    return CG_URL_OK;
}

static void put_byte(cg_url *u, uint8_t c) {
    if (u->host_len < CG_URL_HOST_MAX) u->host[u->host_len] = c;
    u->host_len++;
}
static void put_dec(cg_url *u, uint32_t v) {
    char d[10];
    int k = 0;
    do d[k++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (k > 0) put_byte(u, (uint8_t)d[--k]);
}
static void put_hex16(cg_url *u, uint16_t v) {
    static const char hex[] = "0123456789abcdef";
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
        unsigned d = (v >> shift) & 15u;
        if (d || started || shift == 0) {
            put_byte(u, (uint8_t)hex[d]);
            started = true;
        }
    }
}

static void serialize_ipv4(cg_url *u) {
    for (int i = 3; i >= 0; i--) {
        put_dec(u, (u->ipv4 >> (i * 8)) & 255u);
        if (i) put_byte(u, '.');
    }
}

/* The IPv6 serializer: lower-case hex, the first longest run (2 or more) of zero pieces
   compressed to "::". */
static void serialize_ipv6(cg_url *u) {
    int best = -1, best_len = 1;
    for (int i = 0; i < 8;) {
        if (u->ipv6[i] != 0) {
            i++;
            continue;
        }
        int j = i;
        while (j < 8 && u->ipv6[j] == 0) j++;
        if (j - i > best_len) {
            best = i;
            best_len = j - i;
        }
        i = j;
    }
    put_byte(u, '[');
    bool ignore0 = false;
    for (int i = 0; i < 8; i++) {
        if (ignore0 && u->ipv6[i] == 0) continue;
        ignore0 = false;
        if (best == i) {
            put_byte(u, ':');
            if (i == 0) put_byte(u, ':');
            ignore0 = true;
            continue;
        }
        put_hex16(u, u->ipv6[i]);
        if (i != 7) put_byte(u, ':');
    }
    put_byte(u, ']');
}

/* The host parser for a special scheme, over the host's text s[0..n). */
static int host_parse(const uint8_t *s, uint32_t n, cg_url *u) {
    u->host_len = 0;
    if (n > 0 && s[0] == '[') {
        if (s[n - 1] != ']') return CG_URL_BAD_IPV6;
        int rc = ipv6_parse(s + 1, n - 2, u->ipv6);
        if (rc) return rc;
        u->host_kind = CG_HOST_IPV6;
        serialize_ipv6(u);
        return CG_URL_OK;
    }
    /* percent-decode and lower-case into the host buffer, noting in one pass what decides,
       in this order: non-ASCII (IDNA), empty, a forbidden character, an xn-- label (IDNA),
       length */
    bool non_ascii = false, forbidden = false, xn = false;
    uint32_t decoded = 0, at_label = 0; /* bytes so far, bytes since the last '.' */
    static const char xn_prefix[4] = {'x', 'n', '-', '-'};
    uint32_t xn_run = 0;                /* how much of "xn--" this label starts with */
    for (uint32_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '%' && i + 2 < n && hex_val(s[i + 1]) >= 0 && hex_val(s[i + 2]) >= 0) {
            c = (uint8_t)(hex_val(s[i + 1]) * 16 + hex_val(s[i + 2]));
            i += 2;
        }
        if (c >= 0x80) non_ascii = true;
        c = lower(c);
        if (forbidden_domain(c)) forbidden = true;
        if (c == '.') {
            at_label = 0;
            xn_run = 0;
        } else {
            if (at_label < 4 && at_label == xn_run && c == (uint8_t)xn_prefix[at_label]) {
                xn_run++;
                if (xn_run == 4) xn = true;
            }
            at_label++;
        }
        if (decoded < CG_URL_HOST_MAX) u->host[decoded] = c;
        decoded++;
    }
    if (non_ascii) return CG_URL_IDNA;
    if (decoded == 0) return CG_URL_EMPTY_HOST;
    if (forbidden) return CG_URL_BAD_HOST;
    if (xn) return CG_URL_IDNA;
    if (decoded > CG_URL_HOST_MAX) return CG_URL_HOST_TOO_LONG;
    u->host_len = decoded;
    if (ends_in_number(u->host, u->host_len)) {
        int rc = ipv4_parse(u->host, u->host_len, &u->ipv4);
        if (rc) return rc;
        u->host_kind = CG_HOST_IPV4;
        u->host_len = 0;
        serialize_ipv4(u);
        return CG_URL_OK;
    }
    u->host_kind = CG_HOST_DOMAIN;
    return CG_URL_OK;
}

/* ---- the URL ---- */

static bool c0_or_space(uint8_t c) { return c <= 0x20; }
static bool tab_or_newline(uint8_t c) { return c == 0x09 || c == 0x0A || c == 0x0D; }

int cg_url_parse(uint8_t *buf, size_t len, cg_url *u) {
    u->scheme_len = 0;
    u->host_len = 0;
    u->host_kind = CG_HOST_DOMAIN;
    u->has_at = 0;
    u->has_pass = 0;
    u->port = -1;
    u->ipv4 = 0;
    for (int i = 0; i < 8; i++) u->ipv6[i] = 0;
    u->user_off = u->user_len = u->pass_off = u->pass_len = u->rest_off = u->clean_len = 0;
    if (len > CG_URL_MAX_INPUT) return CG_URL_TOO_LONG;
    uint32_t n = (uint32_t)len, start = 0, w = 0;
    /* leading and trailing C0 controls and spaces go; tabs and newlines anywhere go */
    while (start < n && c0_or_space(buf[start])) start++;
    while (n > start && c0_or_space(buf[n - 1])) n--;
    for (uint32_t r = start; r < n; r++)
        if (!tab_or_newline(buf[r])) buf[w++] = buf[r];
    n = w;
    u->clean_len = n;
    /* scheme start / scheme state */
    if (n == 0 || !is_alpha(buf[0])) return CG_URL_NO_SCHEME;
    uint32_t p = 0;
    while (p < n && (is_alpha(buf[p]) || is_digit(buf[p]) || buf[p] == '+' || buf[p] == '-' ||
                     buf[p] == '.'))
        p++;
    if (p == n || buf[p] != ':') return CG_URL_NO_SCHEME;
    if (p > CG_URL_SCHEME_MAX) return CG_URL_SCHEME_UNSUPPORTED; /* no special scheme is long */
    for (uint32_t i = 0; i < p; i++) u->scheme[i] = lower(buf[i]);
    u->scheme_len = p;
    int32_t default_port = cg_url_default_port(u->scheme, p);
    if (default_port < 0) return CG_URL_SCHEME_UNSUPPORTED; /* file: and non-special schemes */
    p++;
    /* special authority slashes / ignore slashes: any run of '/' and '\' */
    bool backslash = false;
    while (p < n && (buf[p] == '/' || buf[p] == '\\')) {
        if (buf[p] == '\\') backslash = true;
        p++;
    }
    /* authority state: it ends at '/', '\', '?', '#' or the end; the last '@' ends userinfo */
    uint32_t auth = p, end = p, last_at = n;
    while (end < n && buf[end] != '/' && buf[end] != '\\' && buf[end] != '?' && buf[end] != '#') {
        if (buf[end] == '@') last_at = end;
        end++;
    }
    u->rest_off = end;
    /* RFC 3986 (curl, httpx, urllib) has no backslash rule: among the slashes it makes the
       rest a path, and ending the authority it is part of it, so `http://a.com\@b/` reaches
       b there. Such a URL is not decided (after the standard's own failures). */
    if (end < n && buf[end] == '\\') backslash = true;
    uint32_t host_start = auth;
    if (last_at != n) {
        u->has_at = 1;
        u->user_off = auth;
        uint32_t colon = auth;
        while (colon < last_at && buf[colon] != ':') colon++;
        u->user_len = colon - auth;
        if (colon < last_at) {
            u->has_pass = 1;
            u->pass_off = colon + 1;
            u->pass_len = last_at - colon - 1;
        }
        host_start = last_at + 1;
        if (host_start == end) return CG_URL_EMPTY_HOST;
    }
    /* host state: a ':' outside brackets starts the port */
    uint32_t host_end = host_start;
    bool brackets = false;
    while (host_end < end && (buf[host_end] != ':' || brackets)) {
        if (buf[host_end] == '[') brackets = true;
        else if (buf[host_end] == ']') brackets = false;
        host_end++;
    }
    if (host_end == host_start) return CG_URL_EMPTY_HOST;
    if (host_end < end) { /* port state */
        uint32_t v = 0;
        bool any = false;
        for (uint32_t i = host_end + 1; i < end; i++) {
            if (!is_digit(buf[i])) return CG_URL_BAD_PORT;
            v = v * 10 + (uint32_t)(buf[i] - '0');
            if (v > 65535) return CG_URL_BAD_PORT;
            any = true;
        }
        if (any && (int32_t)v != default_port) u->port = (int32_t)v;
    }
    int rc = host_parse(buf + host_start, host_end - host_start, u);
    return rc == CG_URL_OK && backslash ? CG_URL_BACKSLASH : rc;
}

/* ---- IP ranges ---- */

static bool in4(uint32_t a, uint32_t net, unsigned bits) {
    return bits == 0 || (a >> (32 - bits)) == (net >> (32 - bits));
}

static int class_v4(uint32_t a) {
    if (in4(a, 0x00000000u, 8)) return CG_IP_UNSPECIFIED;   /* 0.0.0.0/8 "this network" */
    if (in4(a, 0x7F000000u, 8)) return CG_IP_LOOPBACK;      /* 127.0.0.0/8 */
    if (in4(a, 0x0A000000u, 8) || in4(a, 0xAC100000u, 12) || in4(a, 0xC0A80000u, 16))
        return CG_IP_PRIVATE;                                /* RFC 1918 */
    if (in4(a, 0xA9FE0000u, 16)) return CG_IP_LINK_LOCAL;   /* 169.254.0.0/16, cloud metadata */
    if (in4(a, 0x64400000u, 10)) return CG_IP_CGNAT;        /* 100.64.0.0/10 */
    if (a == 0xFFFFFFFFu) return CG_IP_BROADCAST;
    if (in4(a, 0xE0000000u, 4)) return CG_IP_MULTICAST;     /* 224.0.0.0/4 */
    if (in4(a, 0xF0000000u, 4)) return CG_IP_RESERVED;      /* 240.0.0.0/4 */
    if (in4(a, 0xC0000000u, 24)) return CG_IP_RESERVED;     /* 192.0.0.0/24 IETF */
    if (in4(a, 0xC6120000u, 15)) return CG_IP_RESERVED;     /* 198.18.0.0/15 benchmarking */
    if (in4(a, 0xC0000200u, 24) || in4(a, 0xC6336400u, 24) || in4(a, 0xCB007100u, 24))
        return CG_IP_DOCUMENTATION;                          /* TEST-NET-1/2/3 */
    if (in4(a, 0xC0586300u, 24)) return CG_IP_RESERVED;     /* 192.88.99.0/24 6to4 relay */
    return CG_IP_PUBLIC;
}

static int class_v6(const uint16_t *a) {
    bool zero6 = a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == 0 && a[4] == 0 && a[5] == 0;
    if (zero6 && a[6] == 0 && a[7] == 0) return CG_IP_UNSPECIFIED;
    if (zero6 && a[6] == 0 && a[7] == 1) return CG_IP_LOOPBACK;
    /* addresses that carry an IPv4 address: mapped, compatible, NAT64, 6to4, Teredo */
    if (a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == 0 && a[4] == 0 && (a[5] == 0xFFFF || a[5] == 0))
        return CG_IP_MAPPED;
    if (a[0] == 0x0064 && a[1] == 0xff9b) return CG_IP_MAPPED; /* 64:ff9b::/96, 64:ff9b:1::/48 */
    if (a[0] == 0x2002) return CG_IP_MAPPED;                   /* 2002::/16 */
    if (a[0] == 0x2001 && a[1] == 0) return CG_IP_MAPPED;      /* 2001::/32 */
    if ((a[0] & 0xFE00) == 0xFC00) return CG_IP_UNIQUE_LOCAL;  /* fc00::/7 */
    if ((a[0] & 0xFFC0) == 0xFE80) return CG_IP_LINK_LOCAL;    /* fe80::/10 */
    if ((a[0] & 0xFFC0) == 0xFEC0) return CG_IP_PRIVATE;       /* fec0::/10, site-local */
    if ((a[0] & 0xFF00) == 0xFF00) return CG_IP_MULTICAST;     /* ff00::/8 */
    if (a[0] == 0x2001 && a[1] == 0x0db8) return CG_IP_DOCUMENTATION; /* 2001:db8::/32 */
    if (a[0] == 0x3fff && a[1] < 0x1000) return CG_IP_DOCUMENTATION;  /* 3fff::/20 */
    if (a[0] == 0x0100 && a[1] == 0 && a[2] == 0 && a[3] == 0) return CG_IP_RESERVED; /* discard */
    if (a[0] == 0x2001 && a[1] < 0x0200) return CG_IP_RESERVED; /* 2001::/23 IETF assignments */
    if ((a[0] & 0xE000) != 0x2000) return CG_IP_RESERVED;      /* outside global unicast 2000::/3 */
    return CG_IP_PUBLIC;
}

/* localhost, localhost., and names under .localhost (RFC 6761: they resolve to loopback) */
static bool localhost_name(const uint8_t *h, uint32_t n) {
    if (n > 0 && h[n - 1] == '.') n--;
    if (n < 9) return false;
    if (!bytes_is(h + n - 9, 9, "localhost")) return false;
    return n == 9 || h[n - 10] == '.';
}

int cg_url_ip_class(const cg_url *u) {
    switch (u->host_kind) {
    case CG_HOST_IPV4: return class_v4(u->ipv4);
    case CG_HOST_IPV6: return class_v6(u->ipv6);
    default: return localhost_name(u->host, u->host_len) ? CG_IP_LOCALHOST : CG_IP_PUBLIC;
    }
}
