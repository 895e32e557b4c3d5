/*
 * fuzz_request.c -- libFuzzer harness for the request JSON reader (and what runs after it:
 * lookup, interpreter, deep equality, reason formatting).
 *
 * The input's first byte picks the form: even -> the request form
 * `["tool", "role", args, agent, resource]`, odd -> arguments + context split at the first
 * 0x00 byte, with a tool picked by the same byte. The policy is the blob named by
 * $CG_FUZZ_BLOB (fuzz/build/crm.blob by default; scripts/fuzz.sh makes it).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "callgate.h"

static void *scratch;

static void *load_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); abort(); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *b = malloc((size_t)n);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) abort();
    fclose(f);
    *len = (size_t)n;
    return b;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *path = getenv("CG_FUZZ_BLOB");
    size_t len;
    uint8_t *blob = load_file(path ? path : "fuzz/build/crm.blob", &len);
    int64_t need = cg_policy_mem_size(blob, len, NULL);
    if (need < 0) abort();
    void *mem = aligned_alloc(8, ((size_t)need + 7) & ~(size_t)7);
    cg_policy *policy;
    if (cg_policy_load(blob, len, mem, (size_t)need, NULL, &policy, NULL)) abort();
    size_t ss = cg_scratch_size(cg_policy_fields(policy), cg_policy_max_keys(policy), cg_policy_max_depth(policy));
    scratch = aligned_alloc(8, (ss + 7) & ~(size_t)7);
    if (cg_scratch_init(scratch, ss, cg_policy_fields(policy), cg_policy_max_keys(policy),
                        cg_policy_max_depth(policy)))
        abort();
    if (cg_scratch_bind(scratch, policy)) abort();
    free(blob);
    return 0;
}

static const char *const tools[] = {"process_refund", "delete_customer", "access_pii", "view_customer"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t sel = data[0];
    const char *tool = tools[(sel >> 1) & 3];
    const char *body = (const char *)data + 1;
    size_t n = size - 1;
    /* copies, so that reads past the end are caught by ASan */
    char *a = malloc(n ? n : 1);
    memcpy(a, body, n);
    char reason[512];
    int64_t rc;
    if ((sel & 1) == 0) {
        rc = cg_eval_request(scratch, a, n);
        if (rc >= 0 && cg_reason_request(scratch, a, n, reason, sizeof reason) < 0)
            abort(); /* an input that evaluates must also explain */
    } else {
        const char *zero = memchr(a, 0, n);
        size_t an = zero ? (size_t)(zero - a) : n;
        size_t cn = zero ? n - an - 1 : 0;
        char *c = malloc(cn ? cn : 1);
        if (cn) memcpy(c, zero + 1, cn);
        rc = cg_eval_json(scratch, tool, strlen(tool), a, an, c, cn);
        if (rc >= 0 && cg_reason_json(scratch, tool, strlen(tool), a, an, c, cn, reason, sizeof reason) < 0)
            abort();
        free(c);
    }
    free(a);
    return 0;
}
