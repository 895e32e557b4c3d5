/*
 * fuzz_blob.c -- libFuzzer harness for the policy blob loader (the trust boundary).
 *
 * The harness fixes up the blob's length and CRC-32 itself, so the fuzzer explores the
 * structure behind the checksum rather than the checksum. A blob that loads is then used
 * for a few evaluations, which must not crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "callgate.h"

static uint32_t crc32(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static const char *const requests[] = {
    "[\"process_refund\",\"agent\",{\"amount\":800,\"order_id\":\"ORD-1\"},{\"user_id\":\"u\",\"env\":\"production\",\"mfa_verified\":true},{\"owner_id\":\"u\"}]",
    "[\"view_customer\",\"manager\",{},{},{}]",
    "[\"delete_customer\",\"admin\",{\"a\":[1,{\"b\":null}]},{\"role\":\"admin\",\"user_id\":[1,{\"x\":2}]},{\"owner_id\":[1,{\"x\":2.0}]}]",
    "[\"bulk_update\",\"admin\",{},{\"env\":\"production\"},{}]",
    /* for the v2 seed blobs (fuzz/seeds.py): tools "allow" / "deny", role "r" */
    "[\"allow\",\"r\",{\"s\":\"/data/a\\u002fb.csv\",\"n\":[1.5,2],\"a\":{\"b\":1},\"items\":[{\"x\":1,\"lines\":[{\"qty\":1},{\"qty\":0}]},{\"lines\":[{\"qty\":2}]}],\"tags\":[\"ab\",\"\\u00e9\"]},{},{},{\"time\":\"2024-03-31T07:30:00.5+01:00\"}]",
    "[\"deny\",\"r\",{\"s\":\"xabababc\",\"n\":[3],\"items\":[1,null,{}],\"tags\":[]},{},{},{\"time\":1711846799.9}]",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *blob = malloc(size ? size : 1);
    memcpy(blob, data, size);
    if (size >= 16) {
        put32(blob + 8, (uint32_t)size);
        put32(blob + 12, crc32(blob + 16, size - 16));
    }
    /* a refusal names a field of the blob (the offset of the field at fault): inside it, or
       inside the header a blob too short for one should have */
    size_t bound = size > 80 ? size : 80;
    uint32_t at = UINT32_MAX;
    int64_t need = cg_policy_mem_size(blob, size, &at);
    if (need <= CG_E_BLOB_MAGIC && need != CG_E_BLOB_MEMORY && at >= bound) abort();
    if (need >= 0 && need < (64 << 20)) {
        void *mem = aligned_alloc(8, ((size_t)need + 7) & ~(size_t)7);
        cg_policy *p;
        at = UINT32_MAX;
        int rc = cg_policy_load(blob, size, mem, (size_t)need, NULL, &p, &at);
        if (rc <= CG_E_BLOB_MAGIC && rc != CG_E_BLOB_MEMORY && at >= bound) abort();
        if (rc == 0) {
            size_t ss = cg_scratch_size(cg_policy_fields(p), cg_policy_max_keys(p), cg_policy_max_depth(p));
            void *scratch = aligned_alloc(8, (ss + 7) & ~(size_t)7);
            cg_scratch_init(scratch, ss, cg_policy_fields(p), cg_policy_max_keys(p), cg_policy_max_depth(p));
            char reason[256];
            if (cg_scratch_bind(scratch, p) == 0)
                for (int q = 0; q < (int)(sizeof requests / sizeof requests[0]); q++) {
                    const char *req = requests[q];
                    if (cg_eval_request(scratch, req, strlen(req)) >= 0)
                        cg_reason_request(scratch, req, strlen(req), reason, sizeof reason);
                }
            free(scratch);
        }
        free(mem);
    }
    free(blob);
    return 0;
}
