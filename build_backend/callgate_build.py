"""The build backend: setuptools, plus the WebAssembly module compiled first.

The wheel ships callgate.wasm as package data (callgate.wasm_path()); it is built from csrc/
at wheel build time (scripts/build_wasm.py, with ziglang from PyPI) and never committed.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403  (every other hook unchanged)

ROOT = Path(__file__).resolve().parents[1]


def _build_wasm() -> None:
    out = ROOT / "src" / "callgate" / "callgate.wasm"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_wasm.py"), "-o", str(out)], check=True)


def _limited_api(config_settings):
    """cffi's API mode builds against the limited API, so one abi3 wheel serves CPython
    3.10 and later; the free-threaded build cannot use it and gets a regular wheel."""
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return config_settings
    settings = dict(config_settings or {})
    options = settings.get("--build-option", [])
    options = [options] if isinstance(options, str) else list(options)
    settings["--build-option"] = options + ["--py-limited-api=cp310"]
    return settings


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _build_wasm()
    return _setuptools.build_wheel(wheel_directory, _limited_api(config_settings), metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    _build_wasm()
    return _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
