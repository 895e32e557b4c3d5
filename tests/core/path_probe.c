/* A test-only view of csrc/cg_path.c for tests/core/test_path_parser.py (loaded with ctypes):
   one normalization as tab-separated fields. */
#include <stdio.h>
#include <string.h>

#include "cg_path.h"

/* status, normalized path, root length, extension, climbs; returns the length written */
int probe_path(const char *in, size_t n, char *dst, size_t cap, unsigned style, int relative) {
    static unsigned char buf[CG_PATH_MAX_INPUT + 8];
    cg_path p;
    int st = cg_path_normalize((const unsigned char *)in, n, style, relative, buf, sizeof buf, &p);
    int w = snprintf(dst, cap, "%d\t%.*s\t%u\t%.*s\t%d", st, (int)p.len, (const char *)buf,
                     (unsigned)p.root_len, (int)p.ext_len, (const char *)buf + p.ext_off, p.climbs);
    return w < 0 ? 0 : (w >= (int)cap ? (int)cap - 1 : w);
}
