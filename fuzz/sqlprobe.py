"""The SQL scanner of the core (csrc/cg_sql.c) through its probe library (tests/core/sql_probe.c,
built with coverage by scripts/fuzz.sh), for the differential fuzzers fuzz_sql_diff.py and
fuzz_sqlite_diff.py, which name the library as their first argument."""

from __future__ import annotations

import ctypes

POSTGRES, SQLITE, MYSQL = 0, 1, 2


class SqlProbe:
    """The probe library at `path`."""

    def __init__(self, path: str) -> None:
        self.lib = ctypes.CDLL(path)

    def scan(self, text: str, dialect: int) -> tuple[int, int, list[str]]:
        """(status, statement count, events as "T0:name", "F0:name", "W0:word", "L0:lock",
        "S0:kind") of the core's scan of text in the dialect."""
        raw = text.encode("utf-8", "surrogatepass")
        out = ctypes.create_string_buffer(65536)
        n = self.lib.probe_sql(raw, len(raw), out, 65536, dialect)
        fields = out.raw[:n].decode("utf-8", "surrogateescape").split("\t")
        return int(fields[0]), int(fields[1]), fields[2:]
