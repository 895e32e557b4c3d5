from setuptools import setup

setup(cffi_modules=["build_backend/ffi_build.py:ffibuilder"])
