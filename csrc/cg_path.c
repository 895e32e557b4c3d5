/*
 * cg_path.c -- the lexical path normalizer of cg_path.h. One pass over the input: the root
 * is recognised first, then each segment is checked and appended to out, or (for "..")
 * removes the last segment written, found by scanning back within out.
 */
#include "cg_path.h"

#include "cg_internal.h"

static const char *const status_text[CG_PATH_N_STATUSES] = {
#define CG_PATH_ST_TEXT(name, text) text,
    CG_PATH_STATUSES(CG_PATH_ST_TEXT)
#undef CG_PATH_ST_TEXT
};

const char *cg_path_status_text(int status) {
    return status >= 0 && status < CG_PATH_N_STATUSES ? status_text[status] : "is not normalized";
}


void cg_path_fold(uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++) s[i] = cg_ascii_lower(s[i]);
}

/* A Windows segment that the Win32 layer would rewrite or send to a device. */
static int windows_segment(const uint8_t *s, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c >= 0x80) return CG_PATH_NON_ASCII;
        if (c < 0x20 || c == ':' || c == '*' || c == '?' || c == '"' || c == '<' || c == '>' || c == '|')
            return CG_PATH_AMBIGUOUS_SEGMENT;
    }
    if (s[n - 1] == '.' || s[n - 1] == ' ') return CG_PATH_AMBIGUOUS_SEGMENT;
    /* "SECRE~1", "NOTES~1.CSV": NTFS's 8.3 short names are '~' and a digit; which long name
       one stands for is the volume's */
    for (uint32_t i = 0; i + 1 < n; i++)
        if (s[i] == '~' && s[i + 1] >= '0' && s[i + 1] <= '9') return CG_PATH_SHORT_NAME;
    /* reserved names: the part before the first '.', trailing spaces ignored */
    uint32_t base = 0;
    while (base < n && s[base] != '.') base++;
    while (base > 0 && s[base - 1] == ' ') base--;
    if (cg_eq_ci(s, base, "con") || cg_eq_ci(s, base, "prn") || cg_eq_ci(s, base, "aux") ||
        cg_eq_ci(s, base, "nul") || cg_eq_ci(s, base, "conin$") || cg_eq_ci(s, base, "conout$"))
        return CG_PATH_RESERVED_NAME;
    if (base == 4 && (cg_eq_ci(s, 3, "com") || cg_eq_ci(s, 3, "lpt")) && s[3] >= '0' && s[3] <= '9')
        return CG_PATH_RESERVED_NAME;
    return CG_PATH_OK;
}

static bool is_sep(unsigned style, uint8_t c) {
    return c == '/' || (style == CG_PATH_WINDOWS && c == '\\');
}

int cg_path_normalize(const uint8_t *in, size_t len, unsigned style, int allow_relative,
                      uint8_t *out, size_t cap, cg_path *p) {
    p->len = p->root_len = p->ext_off = p->ext_len = 0;
    p->climbs = 0;
    if (len == 0) return CG_PATH_EMPTY;
    if (len > CG_PATH_MAX_INPUT) return CG_PATH_TOO_LONG;
    if (cap < len + 2) return CG_PATH_TOO_LONG;
    uint32_t n = (uint32_t)len, i = 0, w = 0;
    for (uint32_t k = 0; k < n; k++)
        if (in[k] == 0) return CG_PATH_NUL;
    uint8_t sep = style == CG_PATH_WINDOWS ? '\\' : '/';
    /* the root */
    if (style == CG_PATH_POSIX) {
        if (in[0] == '/') {
            out[w++] = '/';
            while (i < n && in[i] == '/') i++;
        }
    } else {
        bool s0 = n > 0 && is_sep(style, in[0]), s1 = n > 1 && is_sep(style, in[1]);
        bool alpha = n > 0 && (uint8_t)((in[0] | 0x20) - 'a') < 26;
        if (s0 && s1) {
            /* \\?\ and \\.\ reach devices and skip normalization */
            if (n > 2 && (in[2] == '?' || in[2] == '.') && (n == 3 || is_sep(style, in[3])))
                return CG_PATH_DEVICE;
            out[w++] = '\\';
            out[w++] = '\\';
            i = 2;
            for (int part = 0; part < 2; part++) { /* server, then share */
                uint32_t st = i;
                while (i < n && !is_sep(style, in[i])) i++;
                if (i == st) return CG_PATH_UNC;
                int rc = windows_segment(in + st, i - st);
                if (rc) return rc;
                /* a drive letter and '$' ("C$"): the administrative share of that drive */
                if (part == 1 && i - st == 2 && (uint8_t)((in[st] | 0x20) - 'a') < 26 && in[st + 1] == '$')
                    return CG_PATH_ADMIN_SHARE;
                for (uint32_t k = st; k < i; k++) out[w++] = in[k];
                out[w++] = '\\';
                if (i < n) i++; /* exactly one separator after each part */
                else if (part == 0) return CG_PATH_UNC;
            }
            while (i < n && is_sep(style, in[i])) i++;
        } else if (alpha && n > 1 && in[1] == ':') {
            if (n == 2 || !is_sep(style, in[2])) return CG_PATH_DRIVE_RELATIVE;
            out[w++] = in[0];
            out[w++] = ':';
            out[w++] = '\\';
            i = 2;
            while (i < n && is_sep(style, in[i])) i++;
        } else if (s0) {
            return CG_PATH_DRIVE_RELATIVE;
        }
    }
    uint32_t root = w;
    p->root_len = root;
    if (root == 0 && !allow_relative) return CG_PATH_RELATIVE;
    uint32_t leading_up = 0, nseg = 0; /* leading ".." kept (relative paths); segments */
    while (i < n) {
        uint32_t st = i;
        while (i < n && !is_sep(style, in[i])) i++;
        uint32_t sn = i - st;
        while (i < n && is_sep(style, in[i])) i++;
        if (sn == 0 || (sn == 1 && in[st] == '.')) continue;
        if (sn == 2 && in[st] == '.' && in[st + 1] == '.') {
            if (nseg > leading_up) { /* remove the last segment and the separator before it */
                uint32_t k = w;
                while (k > root && out[k - 1] != sep) k--;
                w = k > root ? k - 1 : root;
                nseg--;
            } else if (root == 0) { /* a relative path keeps its leading ".." */
                if (w > 0) out[w++] = sep;
                out[w++] = '.';
                out[w++] = '.';
                leading_up++;
                nseg++;
            } /* else ".." at the root stays there */
            continue;
        }
        if (style == CG_PATH_WINDOWS) {
            int rc = windows_segment(in + st, sn);
            if (rc) return rc;
        }
        if (w > root) out[w++] = sep;
        for (uint32_t k = st; k < st + sn; k++) out[w++] = in[k];
        nseg++;
    }
    if (w == 0) out[w++] = '.';
    p->len = w;
    p->climbs = leading_up > 0;
    /* the extension of the last segment (not of a dotfile, nor of "..") */
    uint32_t last = w;
    while (last > root && out[last - 1] != sep) last--;
    for (uint32_t k = w; k > last + 1; k--)
        if (out[k - 1] == '.') {
            bool all_dots = true;
            for (uint32_t j = last; j < k - 1; j++)
                if (out[j] != '.') all_dots = false;
            if (!all_dots) {
                p->ext_off = k - 1;
                p->ext_len = w - (k - 1);
            }
            break;
        }
    return CG_PATH_OK;
}
