#!/usr/bin/env bash
# Build and run the libFuzzer harnesses (clang with libFuzzer, ASan and UBSan), and the
# proxy's framing harness (atheris, in Python).
#   scripts/fuzz.sh [SECONDS]   each harness runs SECONDS (default 60); CI runs a short smoke
# Needs: clang (Debian: clang-14 libclang-rt-14-dev), the package installed (for the seed
# blobs), atheris (pip install atheris) for the framing harness and the differential ones, ada-url for
# the URL differential (fuzz/fuzz_url_diff.py), pglast for the SQL one (fuzz/fuzz_sql_diff.py).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
CC="${CC:-$(command -v clang || command -v clang-14)}"
PY="${PYTHON:-python}"
mkdir -p fuzz/build fuzz/corpus-request fuzz/corpus-blob fuzz/corpus-framing fuzz/corpus-url fuzz/corpus-path \
    fuzz/corpus-sql
"$PY" -m callgate compile crm -o fuzz/build/crm.blob >/dev/null
"$PY" -m callgate compile crm --semantics perso -o fuzz/corpus-blob/crm-perso.blob >/dev/null
"$PY" -m callgate compile spec -o fuzz/corpus-blob/spec.blob >/dev/null
cp fuzz/build/crm.blob fuzz/corpus-blob/crm.blob
"$PY" fuzz/seeds.py fuzz/corpus-request fuzz/corpus-blob
flags=(-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -DCG_ASSERTS -Icsrc)
srcs=$(ls csrc/cg_*.c | grep -v cg_wasm.c)
"$CC" "${flags[@]}" fuzz/fuzz_request.c $srcs -o fuzz/build/fuzz_request
"$CC" "${flags[@]}" fuzz/fuzz_blob.c $srcs -o fuzz/build/fuzz_blob
# the argument parsers alone (csrc/cg_url.c, cg_path.c, cg_sql.c): their invariants, with seeds
# of the bypass forms (a path seed's first byte picks the style: bit 0 Windows, bit 1
# relative; an SQL seed's the dialect: bit 0 SQLite, bit 1 MySQL)
"$CC" "${flags[@]}" fuzz/fuzz_url.c csrc/cg_url.c -o fuzz/build/fuzz_url
"$CC" "${flags[@]}" fuzz/fuzz_path.c csrc/cg_path.c -o fuzz/build/fuzz_path
# (with a second copy of the scanner built to go byte by byte, as without SSE2: the same results)
"$CC" "${flags[@]}" -c csrc/cg_sql.c -DCG_SQL_SCALAR -Dcg_sql_scan=cg_sql_scan_scalar \
    -Dcg_sql_builtin=cg_sql_builtin_scalar -Dcg_sql_kind_text=cg_sql_kind_text_scalar \
    -Dcg_sql_status_text=cg_sql_status_text_scalar -o fuzz/build/cg_sql_scalar.o
"$CC" "${flags[@]}" -c csrc/cg_sql.c -DCG_SQL_SCALAR -DCG_SQL_BYTEWISE -Dcg_sql_scan=cg_sql_scan_bytewise \
    -Dcg_sql_builtin=cg_sql_builtin_bytewise -Dcg_sql_kind_text=cg_sql_kind_text_bytewise \
    -Dcg_sql_status_text=cg_sql_status_text_bytewise -o fuzz/build/cg_sql_bytewise.o
"$CC" "${flags[@]}" -DCG_FUZZ_SCALAR_PEER -DCG_FUZZ_BYTEWISE_PEER fuzz/fuzz_sql.c csrc/cg_sql.c \
    fuzz/build/cg_sql_scalar.o fuzz/build/cg_sql_bytewise.o -o fuzz/build/fuzz_sql
k=0
for u in 'http://example.com@evil.com/' 'http://0x7f.1/' 'http://[::ffff:127.0.0.1]:8080/a?b#c' \
         'https://a:b@[1:2::3]:443/' 'ftp://%31.2/' 'HTTP:\\x.y\z' 'ws://a..b./' 'http://2130706433' \
         'http://api.example.com\@127.0.0.1:8765/secret' 'https://a.com\@evil.com/' 'http:/\evil.com/'; do
    k=$((k + 1)); printf '%s' "$u" > "fuzz/corpus-url/seed-$k"
done
for p in '\000/srv/data/../etc' '\001C:\\a\\..\\b' '\001\\\\s\\sh\\x' '\002a/../../b' '\001C:\\CON.txt' \
         '\001C:\\data\\SECRE~1\\p.csv' '\001\\\\localhost\\C$\\data'; do
    k=$((k + 1)); printf "$p" > "fuzz/corpus-path/seed-$k"
done
for q in '\000SELECT 1; DROP TABLE t' "\000SELECT \$a\$;\$a\$ FROM s.t JOIN u ON f(x)" \
         "\000WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d FOR UPDATE" \
         "\000SELECT E'\\\\';x' /* /* */ */ FROM \"A\"\"b\"" '\001SELECT * FROM [a b] JOIN `c` ON ?1; PRAGMA x' \
         '\002SELECT 1 # x\n; DROP TABLE t --x' '\002INSERT t VALUES (1) ON DUPLICATE KEY UPDATE a = 2; SELECT @a := 1 FROM DUAL' \
         '\002SELECT "a\\"b", 0x1F, 1abc FROM `b``c` STRAIGHT_JOIN d LOCK IN SHARE MODE' \
         '\002SELECT /*+ BKA(t) */ LOAD_FILE(1) INTO OUTFILE x; /*!50001 DELIMITER */'; do
    k=$((k + 1)); printf "$q" > "fuzz/corpus-sql/seed-$k"
done
fuzz/build/fuzz_url -max_total_time="$secs" -max_len=16384 -timeout=5 fuzz/corpus-url
fuzz/build/fuzz_path -max_total_time="$secs" -max_len=8192 -timeout=5 fuzz/corpus-path
fuzz/build/fuzz_sql -max_total_time="$secs" -max_len=65536 -timeout=5 fuzz/corpus-sql
# the differential mode: the core's URL parser against ada-url (WHATWG), through a probe library
# built with coverage (and UBSan) for the libFuzzer inside atheris, preloaded, to steer by
probe=(-std=c99 -g -O1 -fsanitize=fuzzer-no-link,undefined -fno-sanitize-recover=undefined -shared -fPIC -Icsrc)
preload="$("$PY" -c 'import atheris; print(atheris.path())')/ubsan_with_fuzzer.so"
"$CC" "${probe[@]}" csrc/cg_url.c tests/core/url_probe.c -o fuzz/build/urlprobe.so
LD_PRELOAD="$preload" "$PY" fuzz/fuzz_url_diff.py fuzz/build/urlprobe.so -max_total_time="$secs" -max_len=4096 -timeout=5 fuzz/corpus-url
# and the path normalizer against posixpath / ntpath
"$CC" "${probe[@]}" csrc/cg_path.c tests/core/path_probe.c -o fuzz/build/pathprobe.so
mkdir -p fuzz/corpus-path-diff
LD_PRELOAD="$preload" "$PY" fuzz/fuzz_path_diff.py fuzz/build/pathprobe.so -max_total_time="$secs" -max_len=4096 -timeout=5 \
    -artifact_prefix=fuzz/build/ fuzz/corpus-path-diff
# and the PostgreSQL scanner against PostgreSQL's own parser (pglast): it never reports less
"$CC" "${probe[@]}" csrc/cg_sql.c tests/core/sql_probe.c -o fuzz/build/sqlprobe.so
mkdir -p fuzz/corpus-sql-diff
LD_PRELOAD="$preload" "$PY" fuzz/fuzz_sql_diff.py fuzz/build/sqlprobe.so -max_total_time="$secs" -max_len=4096 -timeout=5 \
    -artifact_prefix=fuzz/build/ fuzz/corpus-sql-diff
# and the SQLite scanner against SQLite itself (its authorizer, preparing each text)
mkdir -p fuzz/corpus-sqlite-diff
LD_PRELOAD="$preload" "$PY" fuzz/fuzz_sqlite_diff.py fuzz/build/sqlprobe.so -max_total_time="$secs" -max_len=256 \
    -timeout=5 -artifact_prefix=fuzz/build/ fuzz/corpus-sqlite-diff
export CG_FUZZ_BLOB=fuzz/build/crm.blob
fuzz/build/fuzz_request -max_total_time="$secs" -max_len=65536 -timeout=5 fuzz/corpus-request
# the same harness over UrlCheck / PathCheck / SqlCheck rules (the core's URL, PATHCHK and SQL
# instructions and their reasons), seeded with the argument corpus's requests
mkdir -p fuzz/corpus-args-request
"$PY" -m callgate compile fuzz/arguments_policy.json -o fuzz/build/args.blob >/dev/null
"$PY" - fuzz/corpus-args-request <<'SEEDS'
import json, sys
cases = json.load(open("tests/corpus/arguments_cases.json"))["cases"]
reqs = [[c["tool"], c["role"], c["args"], {}, {}] for c in cases]
reqs += [["sql_pg", r, {"q": q}, {}, {}] for r in ("r", "d") for q in (
    "SELECT count(*) FROM analytics.e; SELECT 1", "WITH d AS (DELETE FROM a.t RETURNING *) SELECT * FROM d",
    "SELECT $x$;$x$, E'\\'', analytics.f(1) FROM audit.log FOR UPDATE")]
reqs += [["sql_lite", "r", {"qs": ["SELECT * FROM [t] JOIN u ON ?1", "PRAGMA x; DELETE FROM t"]}, {}, {}]]
reqs += [["sql_my", "r", {"q": q}, {}, {}] for q in (
    "SELECT `a``b`, shop.price(1) FROM shop.orders # c\n", "SELECT 1 /*!50000 , @x := 2 */",
    "SELECT 'a\\'; DELETE FROM Orders", "SELECT * FROM Orders WHERE x = _utf8mb4'y' -- z")]
for k, req in enumerate(reqs):
    open(f"{sys.argv[1]}/seed-{k}", "wb").write(b"\x00" + json.dumps(req).encode())
SEEDS
CG_FUZZ_BLOB=fuzz/build/args.blob fuzz/build/fuzz_request -max_total_time="$secs" -max_len=65536 -timeout=5 \
    fuzz/corpus-args-request
fuzz/build/fuzz_blob -max_total_time="$secs" -max_len=65536 -timeout=5 fuzz/corpus-blob
printf '\001{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"view","arguments":{}}}\n' \
    > fuzz/corpus-framing/seed-call
printf '\000{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}\n{"jsonrpc":"2.0","id":"s","method":"ping"}\n' \
    > fuzz/corpus-framing/seed-answer
"$PY" fuzz/fuzz_proxy_framing.py -max_total_time="$secs" -max_len=4096 -timeout=5 fuzz/corpus-framing
