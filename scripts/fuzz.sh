#!/usr/bin/env bash
# Build and run the libFuzzer harnesses (clang with libFuzzer, ASan and UBSan), and the
# proxy's framing harness (atheris, in Python).
#   scripts/fuzz.sh [SECONDS]   each harness runs SECONDS (default 60); CI runs a short smoke
# Needs: clang (Debian: clang-14 libclang-rt-14-dev), the package installed (for the seed
# blobs) and atheris (pip install atheris) for the framing harness.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
CC="${CC:-$(command -v clang || command -v clang-14)}"
PY="${PYTHON:-python}"
mkdir -p fuzz/build fuzz/corpus-request fuzz/corpus-blob fuzz/corpus-framing
"$PY" -m callgate compile crm -o fuzz/build/crm.blob >/dev/null
"$PY" -m callgate compile crm --semantics perso -o fuzz/corpus-blob/crm-perso.blob >/dev/null
"$PY" -m callgate compile spec -o fuzz/corpus-blob/spec.blob >/dev/null
cp fuzz/build/crm.blob fuzz/corpus-blob/crm.blob
"$PY" fuzz/seeds.py fuzz/corpus-request fuzz/corpus-blob
flags=(-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -DCG_ASSERTS -Icsrc)
srcs=$(ls csrc/cg_*.c | grep -v cg_wasm.c)
"$CC" "${flags[@]}" fuzz/fuzz_request.c $srcs -o fuzz/build/fuzz_request
"$CC" "${flags[@]}" fuzz/fuzz_blob.c $srcs -o fuzz/build/fuzz_blob
export CG_FUZZ_BLOB=fuzz/build/crm.blob
fuzz/build/fuzz_request -max_total_time="$secs" -max_len=65536 -timeout=5 fuzz/corpus-request
fuzz/build/fuzz_blob -max_total_time="$secs" -max_len=65536 -timeout=5 fuzz/corpus-blob
printf '\001{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"view","arguments":{}}}\n' \
    > fuzz/corpus-framing/seed-call
printf '\000{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}\n{"jsonrpc":"2.0","id":"s","method":"ping"}\n' \
    > fuzz/corpus-framing/seed-answer
"$PY" fuzz/fuzz_proxy_framing.py -max_total_time="$secs" -max_len=4096 -timeout=5 fuzz/corpus-framing
