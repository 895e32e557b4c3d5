"""The build backend: setuptools, plus the WebAssembly module compiled first.

The wheel ships callgate.wasm as package data (callgate.wasm_path()); it is built from csrc/
at wheel build time (scripts/build_wasm.py, with ziglang from PyPI) and never committed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403  (every other hook unchanged)

ROOT = Path(__file__).resolve().parents[1]


def _build_wasm() -> None:
    out = ROOT / "src" / "callgate" / "callgate.wasm"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_wasm.py"), "-o", str(out)], check=True)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _build_wasm()
    return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    _build_wasm()
    return _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
