import sys
from pathlib import Path

from setuptools import setup

sys.path.insert(0, str(Path(__file__).resolve().parent / "build_backend"))
from profiled_build_ext import BuildExt  # noqa: E402  (the SQL scanner from its profile)

setup(cffi_modules=["build_backend/ffi_build.py:ffibuilder"], cmdclass={"build_ext": BuildExt})
