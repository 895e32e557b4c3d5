/*
 * cg_path.h -- lexical path normalization for PathCheck (docs/arguments.md).
 *
 * POSIX: '/' separates; empty and "." segments go, ".." removes the segment before it (and
 * stays at "/" at the root, as the kernel does), a leading "//" is "/" (Linux). Windows: '\'
 * and '/' separate; the root is a drive ("C:\") or a UNC share ("\\server\share\"); the
 * forms whose meaning depends on state the engine cannot see (drive-relative "C:x", rooted
 * "\x", device paths "\\?\", "\\.\") are not decided, nor are segments Windows would alter
 * or route elsewhere (trailing dots or spaces, ':' streams, wildcard characters, reserved
 * device names such as CON or LPT1, non-ASCII, whose case folding is the file system's,
 * '~' and a digit, the form of an NTFS 8.3 short name, another name of some long one), nor
 * UNC paths on an administrative share (`\\host\C$\`, the root of a drive).
 * Comparison is case-insensitive on Windows: cg_path_fold lower-cases ASCII.
 *
 * Symlinks are not seen: this is the path's text, not the file it reaches. Linear time, no
 * allocation: the normalized path is written to the caller's buffer (at most n + 2 bytes).
 */
#ifndef CG_PATH_H
#define CG_PATH_H

#include <stddef.h>
#include <stdint.h>

#define CG_PATH_MAX_INPUT 4096u

#define CG_PATH_POSIX 0u
#define CG_PATH_WINDOWS 1u

#define CG_PATH_STATUSES(X)                                                             \
    X(OK, "normalized")                                                                \
    X(EMPTY, "is empty")                                                               \
    X(NUL, "contains a NUL byte")                                                      \
    X(TOO_LONG, "is longer than 4096 bytes")                                           \
    X(RELATIVE, "is relative")                                                         \
    X(DRIVE_RELATIVE, "is relative to a drive's current directory or the current drive") \
    X(DEVICE, "is a Windows device path (\\\\?\\ or \\\\.\\)")                         \
    X(UNC, "is an incomplete UNC path")                                                \
    X(RESERVED_NAME, "names a Windows device (CON, NUL, COM1, ...)")                   \
    X(AMBIGUOUS_SEGMENT, "has a segment Windows would alter (trailing dot or space, ':', wildcard or control character)") \
    X(NON_ASCII, "has non-ASCII characters, whose case folding the file system decides") \
    X(SHORT_NAME, "has a segment with '~' and a digit, which may be an 8.3 short name of another file") \
    X(ADMIN_SHARE, "is on an administrative share (C$, ...), another name of a drive's root")

enum cg_path_status {
#define CG_PATH_ST_ENUM(name, text) CG_PATH_##name,
    CG_PATH_STATUSES(CG_PATH_ST_ENUM)
#undef CG_PATH_ST_ENUM
    CG_PATH_N_STATUSES
};

typedef struct cg_path {
    uint32_t len;       /* bytes written to out */
    uint32_t root_len;  /* the root prefix: "/", "C:\", "\\server\share\"; 0 when relative */
    uint32_t ext_off, ext_len; /* the last segment's extension (".csv"), ext_len 0 if none */
    uint8_t climbs;     /* relative and starts with ".." */
} cg_path;

/* Normalizes in[0..n) of the style (CG_PATH_POSIX / CG_PATH_WINDOWS) into out (cap >= n + 2);
   relative paths are CG_PATH_RELATIVE unless allow_relative. Returns a CG_PATH_* status. */
int cg_path_normalize(const uint8_t *in, size_t n, unsigned style, int allow_relative,
                      uint8_t *out, size_t cap, cg_path *p);
const char *cg_path_status_text(int status);
/* ASCII lower case, in place (Windows comparison). */
void cg_path_fold(uint8_t *s, size_t n);

#endif /* CG_PATH_H */
