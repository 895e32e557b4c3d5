/*
 * bench_core.c -- the C core alone, no Python: nanoseconds per decision.
 *
 * Usage: bench_core BLOB CASES [ITERATIONS]
 *   BLOB   a compiled policy (callgate compile POLICY -o BLOB)
 *   CASES  one request per line, in the request form ["tool", "role", args, agent, resource]
 * Prints the median over 15 rounds of the per-decision time across all cases.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "callgate.h"

typedef struct req { char *json; size_t len; } req;

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) { perror(path); exit(2); }
    b[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return b;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s BLOB CASES [ITERATIONS]\n", argv[0]); return 2; }
    long iters = argc > 3 ? atol(argv[3]) : 200000;
    size_t blen, clen;
    char *blob = slurp(argv[1], &blen), *cases = slurp(argv[2], &clen);
#if CG_ABI_VERSION >= 3 /* (the revision being compared may be older) */
    int64_t need = cg_policy_mem_size((const uint8_t *)blob, blen, NULL);
#else
    int64_t need = cg_policy_mem_size((const uint8_t *)blob, blen);
#endif
    if (need < 0) { fprintf(stderr, "blob: %s\n", cg_strerror((int)need)); return 1; }
    void *mem = aligned_alloc(8, ((size_t)need + 7) & ~(size_t)7);
    cg_policy *p;
#if CG_ABI_VERSION >= 3
    int rc = cg_policy_load((const uint8_t *)blob, blen, mem, (size_t)need, NULL, &p, NULL);
#else
    int rc = cg_policy_load((const uint8_t *)blob, blen, mem, (size_t)need, NULL, &p);
#endif
    if (rc) { fprintf(stderr, "load: %s\n", cg_strerror(rc)); return 1; }
    size_t ss = cg_scratch_size(cg_policy_fields(p), cg_policy_max_keys(p), cg_policy_max_depth(p));
    void *scratch = aligned_alloc(8, (ss + 7) & ~(size_t)7);
    cg_scratch_init(scratch, ss, cg_policy_fields(p), cg_policy_max_keys(p), cg_policy_max_depth(p));

    if (cg_scratch_bind(scratch, p)) { fprintf(stderr, "bind failed\n"); return 1; }
    req rs[256];
    int n = 0;
    for (char *line = strtok(cases, "\n"); line && n < 256; line = strtok(NULL, "\n"))
        rs[n++] = (req){line, strlen(line)};
    if (n == 0) { fprintf(stderr, "no cases\n"); return 1; }
    long allow = 0;
    for (int i = 0; i < n; i++) {
        int64_t r = cg_eval_request(scratch, rs[i].json, rs[i].len);
        if (r < 0) { fprintf(stderr, "case %d: %s\n", i, cg_strerror((int)r)); return 1; }
    }
    double rounds[15];
    for (int round = 0; round < 15; round++) {
        double t0 = now();
        /* cycle through the cases without a division per decision (a 64-bit modulo
           costs as much as a fifth of what is being measured) */
        for (long k = 0, i = 0; k < iters; k++, i = i + 1 == n ? 0 : i + 1) {
            const req *q = &rs[i];
            int64_t r = cg_eval_request(scratch, q->json, q->len);
            allow += (r & 3) == CG_ALLOW;
        }
        rounds[round] = (now() - t0) / (double)iters * 1e9;
    }
    qsort(rounds, 15, sizeof rounds[0], cmp_double);
    printf("cases=%d iterations=%ld median_ns_per_decision=%.1f min=%.1f max=%.1f (allows %ld)\n", n, iters,
           rounds[7], rounds[0], rounds[14], allow);
    free(mem);
    free(scratch);
    free(blob);
    free(cases);
    return 0;
}
