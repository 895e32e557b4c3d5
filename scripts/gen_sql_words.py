"""Generate csrc/cg_sql_words.h: the words SqlCheck's classifier (csrc/cg_sql.c) knows, with
what each is to it, bucketed by a multiplicative hash of the word's first 8 bytes (with bit 5 of
each byte set: the fold an unquoted word needs, see head_key) and its length (CG_SQLW_SLOT), so
that a lookup compares two candidates and no more.

    python scripts/gen_sql_words.py            # rewrite the header
    python scripts/gen_sql_words.py --check    # exit 1 if the header is not what this writes

Kinds: statement words (what a statement starting with them is), structural words that
take a parenthesis without being a function (IN (...), OVER (...), a CTE's AS (...)), type
names that take a modifier (varchar(10)), and built-in functions known not to write, per
dialect (docs/arguments.md lists them); roles named MY_* act in MySQL only, LITE_* in SQLite only. A word is recognised only unquoted.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "csrc" / "cg_sql_words.h"
OUT_PY = ROOT / "src" / "callgate" / "sql_words.py"   # the same table for callgate.arguments

# statement kinds (csrc/cg_sql.h CG_SQL_K_*), by first word
KINDS = {
    "select": "SELECT", "values": "SELECT", "table": "SELECT", "with": "WITH",
    "insert": "INSERT", "replace": "INSERT", "update": "UPDATE", "delete": "DELETE", "merge": "MERGE",
    "create": "DDL", "alter": "DDL", "drop": "DDL", "truncate": "DDL", "comment": "DDL", "grant": "DDL",
    "revoke": "DDL", "reindex": "DDL", "vacuum": "DDL", "analyze": "DDL", "analyse": "DDL", "cluster": "DDL",
    "refresh": "DDL", "security": "DDL", "import": "DDL",
    "copy": "COPY", "call": "CALL", "do": "CALL", "execute": "CALL", "prepare": "CALL", "deallocate": "CALL",
    "set": "SET", "reset": "SET", "pragma": "SET", "attach": "SET", "detach": "SET", "load": "SET",
    "discard": "SET", "explain": "EXPLAIN",
    "begin": "TRANSACTION", "start": "TRANSACTION", "commit": "TRANSACTION", "end": "TRANSACTION",
    "rollback": "TRANSACTION", "savepoint": "TRANSACTION", "release": "TRANSACTION", "abort": "TRANSACTION",
}
# words that, anywhere in a query, make it write or lock (with FOR UPDATE/SHARE handled apart)
WRITES = ["insert", "update", "delete", "merge", "into", "copy", "truncate", "drop", "create", "alter",
          "grant", "revoke", "call", "execute", "lock", "nextval", "setval"]
# followed by '(' without being a call
STRUCTURAL = ["in", "exists", "any", "all", "some", "values", "as", "over", "filter", "within", "using", "on",
              "and", "or", "not", "when", "then", "else", "case", "select", "from", "join", "where", "having",
              "lateral", "sets", "cube", "rollup", "by", "partition", "is", "like", "ilike",
              "between", "distinct", "union", "except", "intersect", "returning", "materialized", "recursive",
              "group", "order", "limit", "offset", "only", "with", "array", "row", "escape", "default", "else",
              "asc", "desc", "nulls", "first", "last", "range", "rows", "groups", "unbounded", "preceding",
              "following", "current", "exclude", "similar", "to", "glob", "match", "regexp", "collate",
              "natural", "inner", "left", "right", "full", "outer", "cross", "leading", "trailing", "both",
              "placing", "for", "at", "zone", "if", "elsif", "interval", "window"]
# what a word does to the scan (csrc/cg_sql.c's keyword()): starts or ends a FROM list, ...
ROLES = {"from": "FROM", "join": "JOIN", "into": "INTO", "using": "USING", "only": "SKIP", "lateral": "SKIP",
         "for": "FOR", "as": "AS", "recursive": "RECURSIVE", "distinct": "DISTINCT", "table": "TABLE",
         "where": "ENDS", "group": "ENDS", "having": "ENDS", "order": "ENDS", "limit": "ENDS", "offset": "ENDS",
         "union": "ENDS", "except": "ENDS", "intersect": "ENDS", "window": "ENDS", "fetch": "ENDS",
         "returning": "ENDS", "values": "ENDS", "set": "ENDS", "qualify": "ENDS", "select": "ENDS",
         "update": "UPDATE", "share": "LOCKWORD", "no": "LOCKWORD", "key": "LOCKWORD",
         # what may stand between EXPLAIN and its statement; a WITH query's SEARCH / CYCLE clause
         "analyze": "EXPLAIN_OPTION", "analyse": "EXPLAIN_OPTION", "verbose": "EXPLAIN_OPTION",
         "query": "EXPLAIN_OPTION", "plan": "EXPLAIN_OPTION", "format": "EXPLAIN_OPTION",
         "extended": "EXPLAIN_OPTION", "partitions": "EXPLAIN_OPTION",
         "search": "CTE_CLAUSE", "cycle": "CTE_CLAUSE",
         # SQLite only: IN before a name reads a table (x IN t), and the operators that are also
         # functions (x REGEXP y calls regexp(y, x); regexp(y, x) alone is a call)
         "in": "LITE_IN", "match": "LITE_OPERATOR", "regexp": "LITE_OPERATOR", "glob": "LITE_OPERATOR",
         "like": "LITE_OPERATOR",
         # MySQL only (in the other dialects these words are names like any other): words that may
         # stand before the table of INSERT / UPDATE, a join, the table-less DUAL, the client's
         # DELIMITER command
         "low_priority": "MY_SKIP", "high_priority": "MY_SKIP", "delayed": "MY_SKIP", "ignore": "MY_SKIP",
         "straight_join": "MY_JOIN", "dual": "MY_DUAL", "delimiter": "MY_DELIMITER"}
TYPES = ["varchar", "char", "character", "varying", "numeric", "decimal", "timestamp", "timestamptz", "time",
         "timetz", "bit", "varbit", "float", "nchar", "nvarchar", "double", "precision"]
PG_FUNCS = """
abs age array_agg array_length array_position array_positions array_to_string avg bit_length bool_and bool_or
btrim cardinality cast cbrt ceil ceiling char_length character_length chr coalesce concat concat_ws corr count
covar_pop covar_samp cume_dist current_setting date_bin date_part date_trunc degrees dense_rank div every exp
extract first_value floor format generate_series greatest initcap isfinite json_agg json_array_elements
json_array_elements_text json_array_length json_build_array json_build_object json_each json_each_text
json_extract_path json_extract_path_text json_object_agg json_object_keys json_typeof jsonb_agg
jsonb_array_elements jsonb_array_elements_text jsonb_array_length jsonb_build_array jsonb_build_object
jsonb_each jsonb_each_text jsonb_extract_path jsonb_extract_path_text jsonb_object_agg jsonb_object_keys
jsonb_typeof justify_days justify_hours lag last_value lead least left length ln log log10 lower lpad ltrim
make_date make_interval make_time make_timestamp max md5 min mod mode now nth_value ntile nullif octet_length
overlay percent_rank percentile_cont percentile_disc pi position power quote_ident quote_literal radians rank
regexp_count regexp_like regexp_match regexp_matches regexp_replace regexp_split_to_array repeat replace
reverse right round row_number rpad rtrim sign split_part sqrt starts_with stddev stddev_pop stddev_samp
string_agg string_to_array strpos substr substring sum to_char to_date to_hex to_json to_jsonb to_number
to_timestamp translate trim trunc unnest upper var_pop var_samp variance width_bucket grouping
""".split()
SQLITE_FUNCS = """
abs avg char coalesce count cume_dist date datetime dense_rank first_value format glob group_concat hex
ifnull iif instr json json_array json_array_length json_each json_extract json_group_array json_group_object
json_object json_quote json_tree json_type json_valid julianday lag last_value lead length like likelihood
likely lower ltrim max min nth_value ntile nullif percent_rank printf quote random rank replace round
row_number rtrim sign sqlite_version strftime string_agg substr substring sum time total trim typeof unicode
unixepoch unlikely upper zeroblob cast
""".split()

# MySQL 8: built-in functions that neither write, lock, wait, read files nor report on the
# session or server (LOAD_FILE, SLEEP, BENCHMARK, GET_LOCK and every *_LOCK function, USER(),
# DATABASE(), VERSION(), LAST_INSERT_ID(), ... are left out: not read-only)
MYSQL_FUNCS = """
abs acos asin atan atan2 avg bin bit_and bit_count bit_length bit_or bit_xor cast ceil ceiling char_length
character_length coalesce concat concat_ws conv convert cos cot count crc32 cume_dist curdate current_date
current_time current_timestamp curtime date date_add date_format date_sub datediff day dayname dayofmonth
dayofweek dayofyear degrees dense_rank elt exp export_set extract field find_in_set first_value floor format
from_days from_unixtime greatest group_concat hex hour ifnull instr json_array json_arrayagg json_contains
json_contains_path json_depth json_extract json_keys json_length json_object json_objectagg json_overlaps
json_pretty json_quote json_search json_table json_type json_unquote json_valid lag last_day last_value lcase
lead least length ln locate log log10 log2 lower lpad ltrim make_set makedate maketime max md5 microsecond mid
min minute mod month monthname now nth_value ntile nullif oct octet_length ord percent_rank period_add
period_diff pi position pow power quarter quote radians rank regexp_instr regexp_like regexp_replace
regexp_substr repeat replace reverse round row_number rpad rtrim sec_to_time second sha1 sha2 sign sin soundex
space sqrt std stddev stddev_pop stddev_samp str_to_date strcmp subdate substr substring substring_index
subtime sum sysdate tan time time_format time_to_sec timediff timestamp timestampadd timestampdiff to_base64
to_days to_seconds trim truncate ucase unhex unix_timestamp upper utc_date utc_time utc_timestamp var_pop
var_samp variance week weekday weekofyear year yearweek grouping
""".split()

SLOT_BITS = 11
SLOTS = 1 << SLOT_BITS
MAX_BUCKET = 2                               # the most words one bucket may hold


def entries() -> list[tuple[str, str, list[str], str]]:
    """(word, kind, flags, role) for every word, sorted."""
    words = sorted(set(KINDS) | set(WRITES) | set(STRUCTURAL) | set(TYPES) | set(PG_FUNCS) | set(SQLITE_FUNCS)
                   | set(MYSQL_FUNCS) | set(ROLES))
    out = []
    for w in words:
        flags = []
        if w in WRITES:
            flags.append("CG_SQLW_WRITES")
        if w in STRUCTURAL:
            flags.append("CG_SQLW_STRUCT")
        if w in TYPES:
            flags.append("CG_SQLW_TYPE")
        if w in PG_FUNCS:
            flags.append("CG_SQLW_PG_FUNC")
        if w in SQLITE_FUNCS:
            flags.append("CG_SQLW_SQLITE_FUNC")
        if w in MYSQL_FUNCS:
            flags.append("CG_SQLW_MYSQL_FUNC")
        out.append((w, "CG_SQL_K_" + KINDS[w] if w in KINDS else "CG_SQL_K_NONE", flags,
                    "CG_SQLR_" + ROLES.get(w, "NONE")))
    return out


def head(word: bytes) -> int:
    """A word's first 8 bytes as a little-endian integer, zero-padded."""
    return int.from_bytes(word[:8], "little")


def head_key(word: bytes) -> int:
    """head() with bit 5 set in each of the word's bytes: what csrc/cg_sql.c's word_of hashes
    and compares. On the bytes an unquoted word is made of (letters, digits, '_', '$', bytes
    >= 0x80) setting bit 5 folds ASCII capitals and maps no two other bytes together that a
    table word could hold ([a-z0-9_]: '_' becomes 0x7f, which no word holds), so it is an exact
    case-insensitive key, one OR instead of a fold."""
    return head(word) | int.from_bytes(b"\x20" * min(len(word), 8), "little")


def slot(word: bytes, mult: int) -> int:
    """csrc/cg_sql.c's CG_SQLW_SLOT: the bucket of a (lower-case) word, from its key and its
    length (the lookup has the key already: no loop over the word)."""
    return (((head_key(word) + len(word)) * mult) & (2**64 - 1)) >> (64 - SLOT_BITS)


def multiplier(words: list[bytes]) -> int:
    """The first odd 64-bit multiplier, in a fixed sequence, that puts at most MAX_BUCKET
    words in any bucket (a search: the same words always give the same one)."""
    mult = 0x9E3779B97F4A7C15
    while True:
        if max(Counter(slot(w, mult) for w in words).values()) <= MAX_BUCKET:
            return mult
        mult = (mult * 6364136223846793005 + 1442695040888963407) & (2**64 - 1) | 1


def render() -> str:
    """The header's text."""
    mult = multiplier([r[0].encode() for r in entries()])
    rows = sorted(entries(), key=lambda r: (slot(r[0].encode(), mult), r[0]))
    assert all(re.fullmatch(r"[a-z0-9_]+", w) for w, _, _, _ in rows), "head_key folds [a-z0-9_] only"
    bucket: list[list[int]] = [[] for _ in range(SLOTS)]
    for at, (w, _, _, _) in enumerate(rows):
        bucket[slot(w.encode(), mult)].append(at + 1)  # (0: the empty entry)
    longest = max(len(w) for w, _, _, _ in rows)
    lines = [
        "/*",
        " * cg_sql_words.h -- GENERATED by scripts/gen_sql_words.py: do not edit.",
        " *",
        " * The words SqlCheck's classifier (cg_sql.c) knows: each word (lower case), the statement",
        " * kind a statement starting with it has, its flags (CG_SQLW_*) and its role in the scan",
        " * (CG_SQLR_*), with its first 8 bytes as little-endian integers (head: as written,",
        " * zero-padded; key: with bit 5 set in each of the word's bytes, the case-insensitive key",
        " * CG_SQLW_SLOT hashes with the length). cg_sql_word_bucket[b] holds the indexes of the at most",
        " * two words of bucket b, 0 (an entry no word matches: length 0) where there are fewer.",
        " */",
        "#ifndef CG_SQL_WORDS_H",
        "#define CG_SQL_WORDS_H",
        "",
        f"#define CG_SQLW_MAXLEN {longest}u",
        f"#define CG_SQLW_WRITES_MINLEN {min(len(w) for w in WRITES)}u /* the words that write: their lengths */",
        f"#define CG_SQLW_WRITES_MAXLEN {max(len(w) for w in WRITES)}u",
        f"#define CG_SQLW_MINLEN {min(len(w) for w, _, _, _ in rows)}u",
        f"#define CG_SQLW_SLOTS {SLOTS}u",
        f"#define CG_SQLW_COUNT {len(rows) + 1}u",
        f"#define CG_SQLW_SLOT(key, n) ((uint32_t)((((key) + (n)) * 0x{mult:016x}ull) >> {64 - SLOT_BITS}))",
        "",
        "static const cg_sql_word cg_sql_words[CG_SQLW_COUNT] = {",
        '    {"", 0x0000000000000000u, 0x0000000000000000u, 0, CG_SQL_K_NONE, 0, CG_SQLR_NONE},',
    ]
    for w, kind, flags, role in rows:
        b = w.encode()
        lines.append(f'    {{"{w}", 0x{head(b):016x}u, 0x{head_key(b):016x}u, {len(w)}, {kind}, '
                     f'{" | ".join(flags) or "0"}, {role}}},')
    lines += ["};", "", f"static const uint16_t cg_sql_word_bucket[CG_SQLW_SLOTS][{MAX_BUCKET}] = {{"]
    for at in range(0, SLOTS, 8):
        pairs = [bucket[b] + [0] * (MAX_BUCKET - len(bucket[b])) for b in range(at, at + 8)]
        lines.append("    " + " ".join("{" + ", ".join(f"{v:3d}" for v in pr) + "}," for pr in pairs))
    lines += ["};", "", "/* ASCII A-Z to a-z, every other byte as it is */", "static const uint8_t cg_sql_fold[256] = {"]
    fold = [b + 32 if 65 <= b <= 90 else b for b in range(256)]
    for at in range(0, 256, 16):
        lines.append("    " + ", ".join(f"{v:3d}" for v in fold[at:at + 16]) + ",")
    lines += ["};", "", "#endif /* CG_SQL_WORDS_H */", ""]
    return "\n".join(lines)


def render_py() -> str:
    """The Python module's text: KINDS (word -> kind name), FLAGS (word -> flag names) and
    ROLES (word -> role name, the words that have one)."""
    names = {"CG_SQLW_WRITES": "writes", "CG_SQLW_STRUCT": "struct", "CG_SQLW_TYPE": "type",
             "CG_SQLW_PG_FUNC": "pg", "CG_SQLW_SQLITE_FUNC": "sqlite", "CG_SQLW_MYSQL_FUNC": "mysql"}
    lines = ['"""GENERATED by scripts/gen_sql_words.py: do not edit. The words of csrc/cg_sql_words.h, for',
             'callgate.arguments: the statement kind a first word gives (KINDS) and each word\'s flags',
             '(FLAGS: writes, struct, type, pg, sqlite, mysql) and role in the scan (ROLES: MY_* in',
             'MySQL only, LITE_* in SQLite only)."""', "", "KINDS = {"]
    lines += [f'    "{w}": "{k}",' for w, k in sorted(KINDS.items())]
    lines += ["}", "FLAGS = {"]
    for w, _, flags, _ in entries():
        inner = ", ".join(f'"{names[f]}"' for f in flags)
        lines.append(f"    \"{w}\": frozenset(({inner}{',' if len(flags) == 1 else ''})),")
    lines += ["}", "ROLES = {"]
    lines += [f'    "{w}": "{r}",' for w, r in sorted(ROLES.items())]
    lines += ["}", ""]
    return "\n".join(lines)


def main() -> int:
    """Write the header and the Python table, or with --check compare them."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a file differs")
    args = ap.parse_args()
    outputs = {OUT: render(), OUT_PY: render_py()}
    if args.check:
        for path, text in outputs.items():
            if path.read_text(encoding="utf-8") != text:
                print(f"{path} is not what {Path(__file__).name} writes: run it", file=sys.stderr)
                return 1
        return 0
    for path, text in outputs.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
