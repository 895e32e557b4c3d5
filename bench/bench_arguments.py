"""UrlCheck, PathCheck and SqlCheck in the C core alone (bench/bench_core.c, no Python): nanoseconds per
decision of a one-rule policy whose condition is the check, minus the same decision with an
In over the same string (reading the request and deciding are not the check), and the cost
of a long input (linearity: a 4 KB path, an 8 KB URL, a 1 MB statement). The SQL scanner is
built as the extension builds it: from its profile with GCC (build_backend/sql_profile.py;
CALLGATE_PGO=0 times the build without one).

    python bench/bench_arguments.py [ITERATIONS]

Needs a C compiler (cc, or $CC) and the package installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from callgate.compiler import compile_policy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "build_backend"))
import sql_profile  # noqa: E402
A = {"source": "Arguments", "field": "v"}
CONDITIONS = {
    "baseline (In)": {"StringCheck": {**A, "op": "In", "value": ["x"]}},
    "UrlCheck": {"UrlCheck": {**A, "schemes_in": ["https"], "host_suffixes_in": ["example.com"],
                              "ports_in": [443], "userinfo": False, "ip": "public"}},
    "PathCheck": {"PathCheck": {**A, "within": ["/srv/data"], "not_within": ["/srv/data/secret"],
                                "extensions_in": [".csv", ".json"]}},
    "SqlCheck": {"SqlCheck": {**A, "dialect": "postgres", "read_only": True, "max_statements": 1,
                              "schemas_in": ["analytics"]}},
    "SqlCheck (mysql)": {"SqlCheck": {**A, "dialect": "mysql", "read_only": True, "max_statements": 1,
                                      "schemas_in": ["analytics"]}},
}
_UNIT = "SELECT a, lower(b), count(*) FROM analytics.events e JOIN analytics.u ON e.k = u.k WHERE x = 'y' "
_KB = _UNIT + "UNION ALL " + "UNION ALL ".join([_UNIT] * 9)          # about 1 KB
VALUES = {
    "baseline (In)": ["https://api.example.com/v1/items?id=42", "/srv/data/2026/q1/report.csv"],
    "UrlCheck": ["https://api.example.com/v1/items?id=42", "https://user@evil.com/"],
    "PathCheck": ["/srv/data/2026/q1/report.csv", "/srv/data/../etc/passwd"],
    "SqlCheck": [_KB],
    "SqlCheck (mysql)": [_KB],
}
LONG = {"UrlCheck": "https://api.example.com/" + "a" * 8100, "PathCheck": "/srv/data/" + "d/" * 2040 + "x.csv",
        "SqlCheck": _UNIT + "UNION ALL " + "UNION ALL ".join([_UNIT] * 9800)}   # about 1 MB
LONG["SqlCheck (mysql)"] = LONG["SqlCheck"]


def _ns(exe: Path, blob: bytes, values: list[str], iters: int, tmp: Path) -> float:
    (tmp / "p.blob").write_bytes(blob)
    (tmp / "cases").write_text("".join(orjson.dumps(["t", "r", {"v": v}, {}, {}]).decode() + "\n" for v in values))
    out = subprocess.run([str(exe), str(tmp / "p.blob"), str(tmp / "cases"), str(iters)], capture_output=True,
                         text=True, check=True).stdout
    return float(re.search(r"median_ns_per_decision=([\d.]+)", out).group(1))  # type: ignore[union-attr]


def main() -> None:
    """Build bench_core, time each check, print ns per check (decision minus baseline)."""
    iters = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise SystemExit("no C compiler")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        exe = tmp / "bench_core"
        srcs = [str(p) for p in sorted((ROOT / "csrc").glob("cg_*.c")) if p.name != "cg_wasm.c"]
        flags = ["-std=c11", "-O2", f"-I{ROOT / 'csrc'}"]
        # the SQL scanner as the extension builds it: from its profile, with GCC
        obj, what = sql_profile.try_profiled_object([cc], flags, tmp / "sql_profile")
        if obj is not None:
            srcs = [str(obj) if Path(p).name == "cg_sql.c" else p for p in srcs]
        print(f"the SQL scanner: {what}")
        subprocess.run([cc, *flags, str(ROOT / "bench" / "bench_core.c"), *srcs, "-o", str(exe), "-lm"], check=True)
        blobs = {name: compile_policy({"version": "bench", "default_action": "Deny", "tools": ["t"], "roles": ["r"],
                                       "rules": [{"tool_name": "t", "roles": ["r"], "condition": cond}]}).blob
                 for name, cond in CONDITIONS.items()}
        base = _ns(exe, blobs["baseline (In)"], VALUES["baseline (In)"], iters, tmp)
        print(f"baseline decision (read the request, one In): {base:.1f} ns")
        for name in ("UrlCheck", "PathCheck", "SqlCheck", "SqlCheck (mysql)"):
            base_here = _ns(exe, blobs["baseline (In)"], VALUES[name], iters, tmp)
            t = _ns(exe, blobs[name], VALUES[name], iters, tmp)
            long_iters = max(iters // (20 if not name.startswith("SqlCheck") else 20000), 5)
            long_base = _ns(exe, blobs["baseline (In)"], [LONG[name]], long_iters, tmp)
            long_t = _ns(exe, blobs[name], [LONG[name]], long_iters, tmp)
            print(f"{name}: {t - base_here:.1f} ns per check on {len(VALUES[name][0])} bytes (decision {t:.1f} ns); "
                  f"{len(LONG[name])} bytes: {long_t - long_base:.1f} ns per check")


if __name__ == "__main__":
    main()
