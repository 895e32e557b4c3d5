"""The corpus (tests/corpus/): hand-written policies and the decisions they must give, read by
every runner: the reference evaluator, the native engine, the wasm module, Node and
`callgate test` (tests/engine/test_v2_differential.py).

- NAME_policy.json: a policy. NAME_cases.json: its cases, a `callgate test` cases file
  ({"cases": [...]}, the one schema of callgate.policy_tests: name, tool, role, args,
  agent_attributes, resource_attributes, context, expect {decision, rule,
  approvals_required, reason}). One pair runs as it is:
  `callgate test tests/corpus/NAME_policy.json tests/corpus/NAME_cases.json`.
- invalid_policies.json: a file of its own kind, {"comment", "policies": [{"name", "policy"}]}:
  policies the strict loader must reject.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from support import TESTS

CORPUS = TESTS / "corpus"


@dataclass(frozen=True)
class CorpusFile:
    """One policy of the corpus and its cases."""

    name: str            # NAME, as in NAME_policy.json and NAME_cases.json
    policy_path: Path
    cases_path: Path
    policy: dict
    cases: list


def _read(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def corpus_files() -> list[CorpusFile]:
    """Every NAME_cases.json of the corpus with its NAME_policy.json, by name."""
    out = []
    for cases_path in sorted(CORPUS.glob("*_cases.json")):
        name = cases_path.name.removesuffix("_cases.json")
        policy_path = CORPUS / f"{name}_policy.json"
        out.append(CorpusFile(name, policy_path, cases_path, _read(policy_path), _read(cases_path)["cases"]))
    return out


def invalid_policies() -> list:
    """The entries of invalid_policies.json: {"name", "policy"}."""
    return _read(CORPUS / "invalid_policies.json")["policies"]
