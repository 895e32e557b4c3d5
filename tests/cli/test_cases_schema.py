"""One cases-file schema and one runner (callgate.policy_tests) behind every command that
reads cases: `callgate test`, `callgate eval --cases`, `callgate demo --script` and the
bundled examples' cases."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from callgate import examples
from callgate.policy_tests import parse_cases

PY = sys.executable


def _callgate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "callgate", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("example", sorted(examples.EXAMPLES))
def test_eval_of_every_bundled_example_finds_every_case_as_expected(example):
    """`callgate eval EXAMPLE` runs the example's cases through the shared runner: every case
    holds (exit 0), also the ops cases whose expectations are objects."""
    run = _callgate("eval", example, "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    doc = orjson.loads(run.stdout)
    assert doc["mismatches"] == 0 and len(doc["results"]) == len(examples.cases(example))


def test_the_bundled_case_files_follow_the_schema():
    """Each example's cases file parses under the one schema (no stray keys)."""
    for example in examples.EXAMPLES:
        assert len(parse_cases(examples.cases_document(example))) == len(examples.cases(example))


@pytest.mark.parametrize("command", [
    ("test", "crm", "{file}"),
    ("eval", "crm", "--cases", "{file}"),
    ("demo", "--policy", "{policy}", "--script", "{file}"),
])
def test_a_misspelled_key_is_an_error_in_every_command(tmp_path, command):
    """A typo in a case ("expectd") is a one-line error naming its location, never a pass."""
    cases = tmp_path / "cases.json"
    cases.write_bytes(orjson.dumps({"cases": [{"tool": "view_customer", "role": "agent", "expectd": "Allow"}]}))
    argv = [part.format(file=cases, policy=examples.policy_path("crm")) for part in command]
    run = _callgate(*argv)
    assert run.returncode in (1, 2), run.stdout
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "cases[0]: unknown key 'expectd'" in lines[0], run.stderr
    assert "Traceback" not in run.stderr


def test_an_expectation_that_does_not_hold_fails_eval(tmp_path):
    """`eval --cases` no longer ignores `expect`: a wrong expectation exits 1 and says which."""
    cases = tmp_path / "cases.json"
    cases.write_bytes(orjson.dumps([{"tool": "view_customer", "role": "agent", "expect": "Deny"}]))
    run = _callgate("eval", "crm", "--cases", str(cases), "--json")
    assert run.returncode == 1
    (row,) = orjson.loads(run.stdout)["results"]
    assert row["ok"] is False and row["failures"] == ["decision: expected Deny, got Allow"]
