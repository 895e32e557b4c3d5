"""setup.py's build_ext: the extension, with the SQL scanner's object compiled from its profile
where GCC builds it (sql_profile.py), and the source as it is anywhere else."""

from __future__ import annotations

import sys
from pathlib import Path

from setuptools.command.build_ext import build_ext

import ffi_build
import sql_profile


class BuildExt(build_ext):
    """build_ext, with callgate._core's cg_sql.c swapped for its profiled object."""

    def build_extension(self, ext):  # type: ignore[no-untyped-def]
        if ext.name == "callgate._core" and sql_profile.wanted() and self.compiler.compiler_type == "unix" \
                and ffi_build.compiler_is_gcc(self.compiler.compiler_so[0]):
            flags = [f"-I{d}" for d in ext.include_dirs] + \
                [f"-D{name}" if value is None else f"-D{name}={value}" for name, value in ext.define_macros] + \
                list(ext.extra_compile_args)
            try:
                obj = sql_profile.profiled_object(list(self.compiler.compiler_so), flags,
                                                  Path(self.build_temp) / "sql_profile")
            except sql_profile.ProfileError as e:
                print(f"callgate: the SQL scanner is built without a profile ({e})", file=sys.stderr)
            else:
                ext.sources = [s for s in ext.sources if Path(s).name != "cg_sql.c"]
                ext.extra_objects = [*ext.extra_objects, str(obj)]
                # setuptools relinks only when a source or a depends is newer than the module:
                # an edit to the scanner must rebuild it, as when cg_sql.c was a source
                ext.depends = [*ext.depends, *(str(p) for p in sql_profile.inputs())]
                print("callgate: the SQL scanner is built from its profile (build_backend/sql_train.sql)",
                      file=sys.stderr)
        super().build_extension(ext)
