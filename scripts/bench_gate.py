"""Fail when the head's median is more than a given fraction slower than the base's.

    python scripts/bench_gate.py BASE.json HEAD.json [--max-regression 0.15] [--match NAME]

Both files are pytest-benchmark JSON from the same job (same machine, same run), so the
ratio of medians is meaningful even on a noisy runner.
"""

from __future__ import annotations

import argparse
import json
import sys


def medians(path: str, match: str) -> dict[str, float]:
    data = json.load(open(path, encoding="utf-8"))
    return {b["name"]: b["stats"]["median"] for b in data["benchmarks"] if match in b["name"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("head")
    ap.add_argument("--max-regression", type=float, default=0.15)
    ap.add_argument("--match", default="")
    args = ap.parse_args()
    base, head = medians(args.base, args.match), medians(args.head, args.match)
    failed = False
    for name in sorted(base.keys() & head.keys()):
        ratio = head[name] / base[name]
        verdict = "REGRESSION" if ratio > 1 + args.max_regression else "ok"
        failed |= verdict != "ok"
        print(f"{name:<60} base {base[name] * 1e9:9.0f} ns  head {head[name] * 1e9:9.0f} ns  x{ratio:.3f}  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
