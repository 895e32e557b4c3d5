/*
 * cg_event.h -- the audit event builder's C API (cg_event.c, docs/audit.md): the records
 * of the audit trail built outside the GIL from the very request bytes that were decided.
 * Apart from callgate.h, which is the decision API; the binding reads the CDEF part of
 * both (build_backend/ffi_build.py).
 */
#ifndef CG_EVENT_H
#define CG_EVENT_H

#include "callgate.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CDEF BEGIN */
/* ---- audit events (cg_event.c, docs/audit.md) ----
   cg_event_build writes the sealed-record lines of a batch of decision events, each
   {"hash":"<64 placeholder bytes>","record":<canonical event JSON>}\n, from the request
   bytes that were evaluated; the caller hashes each record and writes the hashes in with
   cg_event_fill_hashes. It stops early with `stop` set: CG_EVENT_STOP_FULL (an output or
   work buffer is full: grow it, call again from `at`) or CG_EVENT_STOP_PYTHON (event
   `at` holds something only the Python builder reproduces: build that one there). */
#define CG_EVENT_STOP_NONE 0
#define CG_EVENT_STOP_FULL 1
#define CG_EVENT_STOP_PYTHON 2
#define CG_EVENT_NONE 4294967295     /* a people span for None */
#define CG_EVENT_INFO_WORDS 6        /* info per event: line end, then cols offsets (see below) */

typedef struct cg_event_member {     /* work space: one member of an object being sorted */
    uint32_t key_off, key_len, value, esc;
} cg_event_member;

typedef struct cg_event_batch {
    /* what was decided */
    const char *requests;            /* every event's request bytes, back to back */
    size_t requests_len;
    const uint32_t *spans;           /* per event: form 0 one length (the request form),
                                        form 1 three (tool, arguments, context: the json form) */
    uint32_t form;
    uint32_t n;                      /* events in the batch */
    const int64_t *results;          /* per event: what cg_eval_* returned */
    const int64_t *times_ns;         /* per event: Unix time of the decision in ns */
    const char *random;              /* per event: 16 random bytes for its UUID */
    const char *people;              /* every event's principal, then every event's trace id, */
    size_t people_len;               /* as UTF-8, back to back */
    const uint32_t *people_spans;    /* 2n lengths, in that order (CG_EVENT_NONE: None) */
    const char *fixed[4];            /* canonical JSON of chain, engine_version, policy_digest, */
    size_t fixed_len[4];             /* policy_version, written as given */
    uint64_t first_seq;              /* seq of event 0 */
    /* work space */
    char *tmp;                       /* the reason text */
    size_t tmp_cap;
    cg_event_member *work;
    uint32_t work_cap;
    /* results */
    char *out;                       /* lines are appended at out_len */
    size_t out_cap, out_len;
    char *cols;                      /* timestamp, tool and role text, appended at cols_len */
    size_t cols_cap, cols_len;
    uint32_t *info;                  /* per event: line end, timestamp at, tool at, tool length,
                                        role at, role length (CG_EVENT_NONE: not a string) */
    uint32_t at;                     /* in: the first event to build; out: the first not built */
    uint32_t stop;                   /* CG_EVENT_STOP_* */
} cg_event_batch;

/* Returns the first event not built (batch->at), or a negative CG_E_ARG for an
   inconsistent batch. */
int64_t cg_event_build(void *scratch, cg_event_batch *batch);
/* Writes n 32-byte digests (back to back) as hex into the placeholders of lines
   first..first+n-1 (ends from info), the first of which starts at line_start in out;
   CG_E_ARG if a line would not lie within out_len. At most 2^24 events per call. */
int cg_event_fill_hashes(char *out, size_t out_len, const uint32_t *info, uint32_t first, uint32_t n,
                         uint32_t line_start, const uint8_t *digests);

/* CDEF END */

#ifdef __cplusplus
}
#endif

#endif /* CG_EVENT_H */
