/*
 * cg_errors.h -- every error code of the core, once: X(NAME, code, "name", "message").
 *
 * The codes are negative: request JSON errors first, then policy blob errors (which
 * record the blob offset of the field at fault: cg_policy_mem_size, cg_policy_load). From
 * this list come the CG_E_* constants (callgate.h), cg_errname and cg_strerror
 * (cg_api.c) and, at build time, the constants the Python binding sees
 * (build_backend/ffi_build.py): nothing else lists them.
 */
#ifndef CG_ERRORS_H
#define CG_ERRORS_H

#define CG_ERRORS(X)                                                                         \
    X(SYNTAX, -1, "syntax", "malformed JSON")                                                \
    X(TRUNCATED, -2, "truncated", "JSON ends inside a value")                                \
    X(TRAILING, -3, "trailing", "bytes after the JSON value")                                \
    X(DEPTH, -4, "depth", "JSON nested deeper than max_depth")                               \
    X(TOO_LARGE, -5, "too_large", "JSON input larger than max_bytes")                        \
    X(DUPLICATE_KEY, -6, "duplicate_key", "duplicate key in a JSON object")                  \
    X(NUMBER_RANGE, -7, "number_range", "number out of double range")                        \
    X(NONFINITE, -8, "nonfinite", "NaN and Infinity are not JSON")                           \
    X(UTF8, -9, "utf8", "invalid UTF-8")                                                     \
    X(SURROGATE, -10, "surrogate", "lone surrogate in a \\u escape")                         \
    X(CONTROL_CHAR, -11, "control_char", "unescaped control character in a string")          \
    X(ESCAPE, -12, "escape", "invalid escape in a string")                                   \
    X(TOO_MANY_KEYS, -13, "too_many_keys", "more than max_keys keys in open objects")        \
    X(TYPE, -14, "type", "arguments, attributes or role of the wrong JSON type")             \
    X(NO_ROLE, -15, "no_role", "context has no \"role\"")                                    \
    X(SCRATCH, -16, "scratch", "scratch buffer too small for this policy")                   \
    X(ARG, -17, "argument", "invalid argument")                                              \
    X(WORK_LIMIT, -18, "work_limit", "Every/Some would do more work than the request's size allows") \
    X(BLOB_MAGIC, -32, "blob_magic", "not a callgate policy blob")                           \
    X(BLOB_VERSION, -33, "blob_version", "unsupported blob format version")                  \
    X(BLOB_TRUNCATED, -34, "blob_truncated", "blob length differs from the header's")        \
    X(BLOB_CHECKSUM, -35, "blob_checksum", "checksum mismatch")                              \
    X(BLOB_BOUNDS, -36, "blob_bounds", "offset, index or count out of range")                \
    X(BLOB_OPCODE, -37, "blob_opcode", "unknown opcode")                                     \
    X(BLOB_JUMP, -38, "blob_jump", "invalid jump")                                           \
    X(BLOB_STACK, -39, "blob_stack", "unbalanced condition code")                            \
    X(BLOB_DUPLICATE, -40, "blob_duplicate", "duplicate entry, field or set member")         \
    X(BLOB_MEMORY, -41, "blob_memory", "policy buffer too small")                            \
    X(BLOB_FLAGS, -42, "blob_flags", "unknown flag bits in the header")                      \
    X(BLOB_RESERVED, -43, "blob_reserved", "reserved header word not zero")                  \
    X(BLOB_SIZES, -44, "blob_sizes", "section sizes do not add up to the length")            \
    X(BLOB_UTF8, -45, "blob_utf8", "string not valid UTF-8")                                 \
    X(BLOB_NUMBER, -46, "blob_number", "constant not a finite number")                       \
    X(BLOB_EFFECT, -47, "blob_effect", "invalid effect word")                                \
    X(BLOB_ORDER, -48, "blob_order", "rules of an entry out of precedence order")            \
    X(BLOB_PERSO, -49, "blob_perso", "perso semantics with tier defaults or a deny or elevate rule") \
    X(BLOB_INSN_FLAGS, -50, "blob_insn_flags", "instruction flag bits it does not take")     \
    X(BLOB_OPERAND, -51, "blob_operand", "instruction operand out of its range")             \
    X(BLOB_DESCRIPTOR, -52, "blob_descriptor", "malformed path, glob or time window descriptor")

#define CG_ERROR_ENUM(NAME, code, name, message) CG_E_##NAME = code,
enum cg_error { CG_ERRORS(CG_ERROR_ENUM) CG_E_NONE_ = 0 };
#undef CG_ERROR_ENUM

#endif /* CG_ERRORS_H */
