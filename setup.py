from setuptools import setup

setup(cffi_modules=["src/callgate/_ffi_build.py:ffibuilder"])
