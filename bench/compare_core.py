"""The C core alone at git REV and in the working tree: bench/bench_core.c built against
each revision's csrc/ (with the extension's flags: -O2, LTO with GCC), run alternately on
the CRM cases, medians of the per-decision medians, and the ratio; plus the wasm module's
size at both revisions (scripts/build_wasm.py's compiler and flags).

    python bench/compare_core.py REV [--rounds 9]

Both revisions read the blob the working tree compiles, so REV must have the same blob
format (CG_BLOB_FORMAT).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from callgate import Engine, examples

ROOT = Path(__file__).resolve().parents[1]


def _cc() -> str:
    cc = shutil.which("gcc") or shutil.which("cc") or shutil.which("clang")
    if not cc:
        raise SystemExit("no C compiler")
    return cc


def _build_core(csrc: Path, out: Path) -> None:
    cc = _cc()
    lto = ["-flto"] if "gcc" in Path(cc).name else []
    sources = [str(p) for p in sorted(csrc.glob("cg_*.c")) if p.name != "cg_wasm.c"]
    subprocess.run([cc, "-O2", *lto, "-std=c11", f"-I{csrc}", str(ROOT / "bench" / "bench_core.c"), *sources,
                    "-o", str(out)], check=True)


def _wasm_size(csrc: Path, out: Path) -> int:
    sys.path.insert(0, str(ROOT / "scripts"))
    import build_wasm  # the build script's compiler and flags

    sources = sorted(str(p) for p in csrc.glob("cg_*.c"))
    flags = [f for f in build_wasm.FLAGS if not f.startswith("-I")] + [f"-I{csrc}"]
    subprocess.run([*build_wasm.compiler(), *flags, "-o", str(out), *sources], check=True)
    return out.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev")
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(t / "old"), args.rev],
                       check=True, capture_output=True)
        try:
            blob, cases = t / "crm.blob", t / "crm.cases"
            blob.write_bytes(Engine.from_dict(examples.policy("crm")).blob)
            cases.write_text("\n".join(orjson.dumps([c["tool"], c["role"], c["args"], c["agent_attributes"],
                                                     c["resource_attributes"]]).decode()
                                       for c in examples.cases("crm")))
            exes = {"old": t / "core_old", "new": t / "core_new"}
            _build_core(t / "old" / "csrc", exes["old"])
            _build_core(ROOT / "csrc", exes["new"])
            ns: dict[str, list[float]] = {"old": [], "new": []}
            for _ in range(args.rounds):  # alternating: both see the same machine load
                for name, exe in exes.items():
                    out = subprocess.run([str(exe), str(blob), str(cases)], check=True, capture_output=True,
                                         text=True).stdout
                    ns[name].append(float(out.split("median_ns_per_decision=")[1].split()[0]))
            old, new = statistics.median(ns["old"]), statistics.median(ns["new"])
            print(f"C core per decision (CRM cases): {args.rev} {old:.1f} ns, working tree {new:.1f} ns, "
                  f"ratio {new / old:.3f} (medians of {args.rounds} alternating runs)")
            size_old = _wasm_size(t / "old" / "csrc", t / "old.wasm")
            size_new = _wasm_size(ROOT / "csrc", t / "new.wasm")
            print(f"wasm module: {args.rev} {size_old} bytes, working tree {size_new} bytes "
                  f"({size_new - size_old:+d})")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(t / "old")],
                           capture_output=True)


if __name__ == "__main__":
    main()
