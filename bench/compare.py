"""One run, one table: callgate against the alternatives on the same CRM calls.

    python bench/compare.py [--quick]

Each row is the median of several timing rounds of the same call, measured in this one
process one after another, so the ratios compare like with like on a noisy machine.
Also builds and runs bench/bench_core.c (the C core alone) when a C compiler is found.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # support.reference: the reference evaluator
sys.path.insert(0, str(HERE))                   # cases.py, alternatives.py first

import alternatives  # noqa: E402
from cases import ALLOW, DENY, V2_ALLOW, V2_DENY, json_form  # noqa: E402

from callgate import Engine, examples  # noqa: E402


def median_ns(fn: Callable[[], object], budget_s: float) -> float:
    """Median per-call time over rounds of a size chosen to take ~budget/15 each."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt > budget_s / 30 or n > 1 << 22:
            break
        n *= 2
    rounds = []
    for _ in range(15):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - t0) / n * 1e9)
    return statistics.median(rounds)


def _ffi_build():
    """build_backend/ffi_build.py (not a package: loaded from its path)."""
    spec = importlib.util.spec_from_file_location("ffi_build", HERE.parent / "build_backend" / "ffi_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def core_ns() -> float | None:
    """Nanoseconds per decision of the C core alone (bench/bench_core.c), or None."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        return None
    csrc = HERE.parent / "csrc"
    with tempfile.TemporaryDirectory() as tmp:
        exe, blob, cases = Path(tmp, "bench_core"), Path(tmp, "crm.blob"), Path(tmp, "crm.cases")
        blob.write_bytes(Engine.from_dict(examples.policy("crm")).blob)
        cases.write_text("\n".join(orjson.dumps([c["tool"], c["role"], c["args"], c["agent_attributes"],
                                                 c["resource_attributes"]]).decode() for c in examples.cases("crm")))
        sources = [str(p) for p in csrc.glob("cg_*.c") if p.name != "cg_wasm.c"]
        # the flags the extension is built with: LTO with GCC
        lto = ["-flto"] if _ffi_build().compiler_is_gcc(cc) else []
        built = subprocess.run([cc, "-O2", *lto, "-std=c11", f"-I{csrc}", str(HERE / "bench_core.c"), *sources,
                                "-o", str(exe)], capture_output=True, text=True)
        if built.returncode:
            sys.stderr.write(built.stderr)
            built.check_returncode()
        out = subprocess.run([str(exe), str(blob), str(cases)], check=True, capture_output=True, text=True).stdout
        return float(out.split("median_ns_per_decision=")[1].split()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter rounds")
    budget = 0.5 if ap.parse_args().quick else 2.0

    crm = Engine.from_dict(examples.policy("crm"))
    rows: list[tuple[str, float | None, str]] = []
    for label, case in (("allow", ALLOW), ("deny", DENY)):
        c = case
        tool, args, ctx = json_form(c)
        rows.append((f"callgate evaluate() [{label}]", median_ns(
            lambda: crm.evaluate(c["tool"], c["args"], role=c["role"], agent_attributes=c["agent_attributes"],
                                 resource_attributes=c["resource_attributes"]), budget), ""))
        rows.append((f"callgate evaluate_json() [{label}]", median_ns(lambda: crm.evaluate_json(tool, args, ctx), budget), ""))
    c = DENY
    rows.append(("callgate evaluate() + reason [deny]", median_ns(
        lambda: crm.evaluate(c["tool"], c["args"], role=c["role"], agent_attributes=c["agent_attributes"],
                             resource_attributes=c["resource_attributes"]).reason, budget), ""))
    from support.reference import ReferenceEngine
    ref = ReferenceEngine(examples.policy("crm"))
    rows.append(("reference evaluator (pure Python) [deny]", median_ns(
        lambda: ref.evaluate(c["tool"], c["args"], c["role"], c["agent_attributes"], c["resource_attributes"]), budget), ""))
    for name in ("handwritten", "cedar", "casbin"):
        f = getattr(alternatives, name)()
        label = {"handwritten": "hand-written Python function", "cedar": "cedarpy (Cedar)", "casbin": "pycasbin (Casbin)"}[name]
        if f is None:
            rows.append((label, None, "not installed: pip install 'callgate[bench]'"))
            continue
        rows.append((f"{label} [deny]", median_ns(
            lambda: f(c["tool"], c["args"], c["role"], c["agent_attributes"], c["resource_attributes"]), budget), ""))
    ops = Engine.from_dict(examples.policy("ops"))
    for label, case in (("allow", V2_ALLOW), ("deny", V2_DENY)):
        v = case
        rows.append((f"v2 ops policy evaluate() [{label}]", median_ns(
            lambda: ops.evaluate(v["tool"], v["args"], role=v["role"], context=v["context"]), budget), ""))
    core = core_ns()
    rows.append(("C core alone (bench_core.c, CRM cases)", core, "" if core else "no C compiler"))

    base = rows[2][1]  # evaluate() [deny]
    print(f"{'call':<46} {'median':>12} {'vs evaluate()':>14}")
    for label, ns, note in rows:
        if ns is None:
            print(f"{label:<46} {'-':>12} {'':>14}  {note}")
        else:
            shown = f"{ns / 1000:.2f} us" if ns >= 1000 else f"{ns:.0f} ns"
            print(f"{label:<46} {shown:>12} {ns / base:>13.2f}x  {note}")


if __name__ == "__main__":
    main()
