/*
 * cg_check.h -- UrlCheck and PathCheck over a loaded policy (docs/arguments.md): the
 * descriptors the URL and PATHCHK instructions name, their evaluation (cg_vm.c) and their
 * reason text (cg_reason.c). The parsers themselves are cg_url.c and cg_path.c.
 *
 * url     descriptor {flags, schemes_set, hosts_set, suffixes_set, ports_set}
 * pathchk descriptor {flags, within_set, not_within_set, extensions_set}
 * sqlchk  descriptor {flags, max_statements, schemas_set, tables_set, functions_set}
 * A set word is a set index, or CG_NONE_SET when the policy lists nothing for that key. The
 * compiler stores each set's members in the form the parser produces: schemes and hosts
 * lower case (hosts canonical, without a trailing dot), ports as decimal text, roots
 * normalized (and, for Windows, ASCII lower case, as are its extensions), SQL names
 * canonical as cg_sql.c makes them (unquoted parts lower case).
 */
#ifndef CG_CHECK_H
#define CG_CHECK_H

#include "cg_internal.h"

/* the descriptors' layout and flags: cg_opcodes.h (CG_URLD_*, CG_URL_*, CG_PATHD_*, CG_PC_*) */

/* The value (CG_V_*) of the check described at words[desc] over the string v. */
int cg_url_check(const cg_policy *p, uint32_t desc, cg_jstr v);
int cg_path_check(const cg_policy *p, uint32_t desc, cg_jstr v);
int cg_sql_check(const cg_policy *p, uint32_t desc, cg_jstr v);

/* Room for a check's reason text (longer texts are cut: only with set displays of that size) */
#define CG_CHECK_TEXT 4096u

/* The reason text of that check, after the reference's display name: its value (CG_V_*) is
   returned; *with_value tells whether " = V" (the value as written) goes before the text. */
int cg_url_check_text(const cg_policy *p, uint32_t desc, cg_jstr v, bool *with_value, char *out,
                      size_t cap, size_t *n);
int cg_path_check_text(const cg_policy *p, uint32_t desc, cg_jstr v, bool *with_value, char *out,
                       size_t cap, size_t *n);
int cg_sql_check_text(const cg_policy *p, uint32_t desc, cg_jstr v, bool *with_value, char *out,
                      size_t cap, size_t *n);

#endif /* CG_CHECK_H */
