"""setup.py's build_ext: the extension, with the SQL scanner's object compiled from its profile
where GCC builds it (sql_profile.py), and the source as it is anywhere else."""

from __future__ import annotations

import sys
from pathlib import Path

from setuptools.command.build_ext import build_ext

import sql_profile


class BuildExt(build_ext):
    """build_ext, with callgate._core's cg_sql.c swapped for its profiled object."""

    def build_extension(self, ext):  # type: ignore[no-untyped-def]
        if ext.name == "callgate._core" and self.compiler.compiler_type == "unix":
            flags = [f"-I{d}" for d in ext.include_dirs] + \
                [f"-D{name}" if value is None else f"-D{name}={value}" for name, value in ext.define_macros] + \
                list(ext.extra_compile_args)
            obj, what = sql_profile.try_profiled_object(list(self.compiler.compiler_so), flags,
                                                        Path(self.build_temp) / "sql_profile")
            if obj is not None:
                ext.sources = [s for s in ext.sources if Path(s).name != "cg_sql.c"]
                ext.extra_objects = [*ext.extra_objects, str(obj)]
                # setuptools relinks only when a source or a depends is newer than the module:
                # an edit to the scanner must rebuild it, as when cg_sql.c was a source
                ext.depends = [*ext.depends, *(str(p) for p in sql_profile.inputs())]
            print(f"callgate: the SQL scanner: {what}", file=sys.stderr)
        super().build_extension(ext)
