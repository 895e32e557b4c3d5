"""Support code for the test suite (no tests here): the independent reference evaluator
(reference.py), Hypothesis strategies (strategies.py), hand-built blobs (v2blobs.py), the
corpus's layout (corpus.py), the backends the tests compare (backends.py), the reference's
UrlCheck / PathCheck over real parsers (argref.py), the argument parsers' C probes and generated
inputs (cprobe.py, argcorpus.py), the command line
in-process (cli.py), the audit tests' bounded wait (audit.py), and the MCP tests' processes,
servers and tokens (mcp_helpers.py, mcp_http.py, mcp_tools_server.py, wiretap.py).
wiretap.py and mcp_tools_server.py also run as scripts, with this directory first on the
import path: no module here may be named like a package they import (hence mcp_helpers.py,
not mcp.py, which would hide the MCP SDK from mcp_tools_server.py).

Importable as `support` because pyproject.toml's [tool.pytest.ini_options] puts tests/ on
the import path (pythonpath = ["tests"]); test files import `from support.reference import ...`.
A helper that more than one file uses lives here, never in a test_* file."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]   # tests/
REPO = TESTS.parent                           # the repository
