#!/usr/bin/env bash
# Run the whole test suite with the C core built under AddressSanitizer and
# UndefinedBehaviorSanitizer (gcc), with its invariants asserted (CG_ASSERT traps). Python itself is not instrumented, so libasan is
# preloaded and leak detection (which would report the interpreter's own) is off.
#   scripts/sanitize.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-asan
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
CALLGATE_SANITIZE=1 CALLGATE_WERROR=1 CC=gcc "$venv/bin/pip" install -q --force-reinstall --no-deps --no-cache-dir .
"$venv/bin/pip" install -q '.[test]'
asan="$(gcc -print-file-name=libasan.so)"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
LD_PRELOAD="$asan" "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
