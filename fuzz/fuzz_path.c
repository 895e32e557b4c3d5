/*
 * fuzz_path.c -- libFuzzer harness for the path normalizer (csrc/cg_path.c).
 *
 * The first byte picks the style and whether relative paths are allowed. Beyond memory
 * safety it checks the normalizer's invariants: the status is known; a normalized path fits
 * the bound, has no "." or ".." segment (but a relative path's leading ".."), no empty
 * segment, no trailing separator after its root, and normalizing it again gives itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cg_path.h"

static unsigned char out[CG_PATH_MAX_INPUT + 8], out2[CG_PATH_MAX_INPUT + 8];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned style = data[0] & 1u;
    int rel = (data[0] >> 1) & 1;
    cg_path p, q;
    int st = cg_path_normalize(data + 1, size - 1, style, rel, out, sizeof out, &p);
    if (st < 0 || st >= CG_PATH_N_STATUSES) abort();
    if (st != CG_PATH_OK) return 0;
    if (p.len == 0 || p.len > size + 1 || p.root_len > p.len) abort();
    if (p.ext_len && p.ext_off + p.ext_len != p.len) abort();
    uint8_t sep = style ? '\\' : '/';
    if (p.len > p.root_len && out[p.len - 1] == sep) abort();
    /* segments after the root: none empty, none ".", ".." only leading a relative path */
    uint32_t i = p.root_len, seen_normal = 0;
    while (i < p.len) {
        uint32_t s = i;
        while (i < p.len && out[i] != sep) i++;
        uint32_t n = i - s;
        if (n == 0) abort();
        if (n == 1 && out[s] == '.' && p.len != 1) abort();
        if (n == 2 && out[s] == '.' && out[s + 1] == '.' && (p.root_len || seen_normal)) abort();
        if (!(n == 2 && out[s] == '.' && out[s + 1] == '.')) seen_normal = 1;
        if (i < p.len) i++;
    }
    if (cg_path_normalize(out, p.len, style, rel, out2, sizeof out2, &q) != CG_PATH_OK) abort();
    if (q.len != p.len || memcmp(out, out2, p.len) != 0) abort();
    return 0;
}
