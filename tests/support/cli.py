"""The command line from the tests (no tests here): `run` starts `python -m callgate ARGS...`
as a process; `invoke` runs the command line in-process (callgate.cli.main(argv)) and is
what test files use to reach it without a subprocess."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from dataclasses import dataclass
from typing import Optional

from callgate.cli import main

CLI = [sys.executable, "-m", "callgate"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


@dataclass
class Invoked:
    """What one in-process run of the command line did."""

    exit_code: int
    stdout: str
    stderr: str
    output: str                       # stdout and stderr as they were written, interleaved
    exception: Optional[BaseException] = None   # what escaped main() (a bug: main answers everything)


class _Tee(io.StringIO):
    """A stream that also copies what it gets into a shared one (for `output`)."""

    def __init__(self, shared: io.StringIO) -> None:
        super().__init__()
        self.shared = shared

    def write(self, text: str) -> int:
        self.shared.write(text)
        return super().write(text)


def invoke(*args: str) -> Invoked:
    """Run `callgate ARGS...` in this process, capturing stdout and stderr."""
    shared = io.StringIO()
    out, err = _Tee(shared), _Tee(shared)
    exception = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:   # main(argv) returns its status; kept for safety
            code = exc.code if isinstance(exc.code, int) else 1
            exception = exc
        except Exception as exc:  # noqa: BLE001 (reported to the test, which asserts on it)
            code, exception = 1, exc
    return Invoked(code, out.getvalue(), err.getvalue(), shared.getvalue(), exception)
