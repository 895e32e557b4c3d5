"""Compile csrc/ to the portable WebAssembly module (wasm32, freestanding, zero imports).

    python scripts/build_wasm.py [-o src/callgate/callgate.wasm]

The toolchain comes from PyPI (`pip install ziglang`, used as `python -m ziglang cc`);
clang with a wasm32 target and wasm-ld (Debian: clang-14 lld-14) works as well
(CALLGATE_WASM_CC=clang-14). The same C sources as the native extension, plus cg_wasm.c.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
FLAGS = ["-Os", "-std=c99", "-Wall", "-Wextra", "-Werror", "-mbulk-memory", f"-I{CSRC}",
         "-Wl,--no-entry", "-Wl,-z,stack-size=1048576", "-Wl,--strip-all"]


def compiler() -> list[str]:
    """The C compiler command: $CALLGATE_WASM_CC, else zig from PyPI, else a clang on PATH."""
    if os.environ.get("CALLGATE_WASM_CC"):
        cc = os.environ["CALLGATE_WASM_CC"].split()
        return cc + ["--target=wasm32", "-ffreestanding", "-nostdlib"]
    try:
        import ziglang  # noqa: F401
        return [sys.executable, "-m", "ziglang", "cc", "--target=wasm32-freestanding"]
    except ImportError:
        pass
    for name in ("clang", "clang-18", "clang-17", "clang-16", "clang-15", "clang-14"):
        if shutil.which(name):
            return [name, "--target=wasm32", "-ffreestanding", "-nostdlib"]
    raise SystemExit("no wasm32 C compiler: pip install ziglang (or install clang and lld)")


def build(out: Path) -> Path:
    sources = sorted(str(p) for p in CSRC.glob("cg_*.c"))
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([*compiler(), *FLAGS, "-o", str(out), *sources], check=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "src" / "callgate" / "callgate.wasm")
    out = build(ap.parse_args().output)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
