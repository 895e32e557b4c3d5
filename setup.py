import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, str(Path(__file__).resolve().parent / "build_backend"))
import ffi_build  # noqa: E402
import sql_profile  # noqa: E402


class BuildExt(build_ext):
    """The extension, with the SQL scanner compiled from a profile where GCC builds it
    (build_backend/sql_profile.py); the source as it is anywhere else."""

    def build_extension(self, ext):
        if ext.name == "callgate._core" and sql_profile.wanted() and self.compiler.compiler_type == "unix" \
                and ffi_build.compiler_is_gcc(self.compiler.compiler_so[0]):
            flags = [f"-I{d}" for d in ext.include_dirs] + list(ext.extra_compile_args)
            try:
                obj = sql_profile.profiled_object(list(self.compiler.compiler_so), flags,
                                                  Path(self.build_temp) / "sql_profile")
            except sql_profile.ProfileError as e:
                print(f"callgate: the SQL scanner is built without a profile ({e})", file=sys.stderr)
            else:
                ext.sources = [s for s in ext.sources if Path(s).name != "cg_sql.c"]
                ext.extra_objects = [*ext.extra_objects, str(obj)]
                print("callgate: the SQL scanner is built from its profile (build_backend/sql_train.sql)",
                      file=sys.stderr)
        super().build_extension(ext)


setup(cffi_modules=["build_backend/ffi_build.py:ffibuilder"], cmdclass={"build_ext": BuildExt})
