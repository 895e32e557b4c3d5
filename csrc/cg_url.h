/*
 * cg_url.h -- a URL parser for UrlCheck (docs/arguments.md): the WHATWG URL standard's basic
 * parser, without a base URL, for the special schemes http, https, ws, wss and ftp.
 *
 * It finds what a policy checks: the scheme, whether the authority carries userinfo, the
 * host (lower-cased, IPv4 in every form a browser accepts made dotted decimal, IPv6
 * canonical) and the port (a scheme's default removed). Where the standard fails, the
 * parser fails; where this parser would have to guess (non-ASCII hosts, which need IDNA
 * mapping, and `xn--` labels; the file scheme and non-special schemes, whose hosts follow
 * other rules; a backslash among the slashes after the scheme or ending the authority, which
 * RFC 3986 clients read as part of the authority or path, so they reach another host), it
 * says it cannot tell, and a check over it is U. Linear time, no
 * allocation: the caller's input buffer is edited in place (tabs and newlines removed) and
 * the host is written into the cg_url itself.
 */
#ifndef CG_URL_H
#define CG_URL_H

#include <stddef.h>
#include <stdint.h>

#define CG_URL_MAX_INPUT 8192u /* longer inputs are not parsed (CG_URL_TOO_LONG) */
#define CG_URL_HOST_MAX 255u   /* longer hosts are not parsed (CG_URL_HOST_TOO_LONG) */
#define CG_URL_SCHEME_MAX 32u

/* Parse outcomes: OK, then what the standard itself refuses (the URL is invalid), then
   what this parser does not decide (the URL may be valid, but is not checked). */
#define CG_URL_STATUSES(X)                                                              \
    X(OK, "parsed")                                                                    \
    X(NO_SCHEME, "has no scheme")                                                      \
    X(EMPTY_HOST, "has an empty host")                                                 \
    X(BAD_PORT, "has an invalid port")                                                 \
    X(BAD_IPV4, "has an invalid IPv4 address")                                         \
    X(BAD_IPV6, "has an invalid IPv6 address")                                         \
    X(BAD_HOST, "has a forbidden character in its host")                               \
    X(TOO_LONG, "is longer than 8192 bytes")                                           \
    X(HOST_TOO_LONG, "has a host longer than 255 bytes")                               \
    X(SCHEME_UNSUPPORTED, "has a scheme whose host rules are not checked (only http, https, ws, wss, ftp)") \
    X(IDNA, "has a non-ASCII or xn-- host, which needs IDNA mapping")                   \
    X(BACKSLASH, "has a backslash before or ending its authority, which RFC 3986 clients (curl, httpx) do not read as a separator")

enum cg_url_status {
#define CG_URL_ST_ENUM(name, text) CG_URL_##name,
    CG_URL_STATUSES(CG_URL_ST_ENUM)
#undef CG_URL_ST_ENUM
    CG_URL_N_STATUSES
};
/* The first status that is not the standard's own failure (the URL may be valid). */
#define CG_URL_FIRST_UNDECIDED CG_URL_TOO_LONG

enum cg_url_host_kind { CG_HOST_DOMAIN = 0, CG_HOST_IPV4, CG_HOST_IPV6 };

typedef struct cg_url {
    uint8_t scheme[CG_URL_SCHEME_MAX]; /* lower case; valid when scheme_len > 0 */
    uint32_t scheme_len;
    uint8_t host[CG_URL_HOST_MAX + 1]; /* serialized as the standard does ("[::1]" for IPv6) */
    uint32_t host_len;
    uint8_t host_kind;                 /* CG_HOST_* */
    uint8_t has_at;                    /* the authority has an '@' (userinfo, even empty) */
    uint32_t ipv4;                     /* host_kind IPV4 */
    uint16_t ipv6[8];                  /* host_kind IPV6 */
    int32_t port;                      /* -1: none, or the scheme's default */
    /* spans in the cleaned input (tabs and newlines removed): userinfo before the last '@'
       (username up to its first ':'), and what follows the authority */
    uint32_t user_off, user_len, pass_off, pass_len, rest_off, clean_len;
    uint8_t has_pass;
} cg_url;

/* Parses buf[0..n) (UTF-8, edited in place). Returns a CG_URL_* status; on CG_URL_OK every
   field is set, on CG_URL_SCHEME_UNSUPPORTED the scheme is. */
int cg_url_parse(uint8_t *buf, size_t n, cg_url *u);
const char *cg_url_status_text(int status);

/* What an IP host is, for `ip: "public"`: CG_IP_PUBLIC or the range it lies in. Host names
   are PUBLIC except `localhost` and names under `.localhost` (names are not resolved). */
#define CG_IP_CLASSES(X)                                                                \
    X(PUBLIC, "public")                                                                \
    X(LOCALHOST, "a localhost name")                                                   \
    X(UNSPECIFIED, "unspecified")                                                      \
    X(LOOPBACK, "loopback")                                                            \
    X(PRIVATE, "private")                                                              \
    X(LINK_LOCAL, "link-local")                                                        \
    X(CGNAT, "shared address space (CGNAT)")                                           \
    X(UNIQUE_LOCAL, "unique-local")                                                    \
    X(MULTICAST, "multicast")                                                          \
    X(BROADCAST, "broadcast")                                                          \
    X(RESERVED, "reserved")                                                            \
    X(DOCUMENTATION, "documentation")                                                  \
    X(MAPPED, "IPv4-mapped or IPv4-embedding")

enum cg_ip_class {
#define CG_IP_ENUM(name, text) CG_IP_##name,
    CG_IP_CLASSES(CG_IP_ENUM)
#undef CG_IP_ENUM
    CG_IP_N_CLASSES
};
int cg_url_ip_class(const cg_url *u);
const char *cg_ip_class_text(int cls);

/* The default port of a special scheme, or -1. */
int32_t cg_url_default_port(const uint8_t *scheme, uint32_t len);

#endif /* CG_URL_H */
