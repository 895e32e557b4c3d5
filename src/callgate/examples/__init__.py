"""Example policies shipped with callgate, and their expected decisions.

- ``crm``: the original perso demo's CRM (3 roles, 7 tools), with its scenarios;
- ``spec``: the original engine's specification policy, with its cases;
- ``ops``: a policy v2 example (tiers, deny and elevate rules, a time window, JSON
  Pointers, a quantifier) for an operations agent, with its cases.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

EXAMPLES = {"crm": ("crm_policy.json", "crm_scenarios.json"), "spec": ("spec_policy.json", "spec_cases.json"),
            "ops": ("ops_policy.json", "ops_cases.json")}


def path(name: str) -> Path:
    """Path of an example file (e.g. ``crm_policy.json``) inside the installed package."""
    return Path(str(resources.files(__name__).joinpath(name)))


def policy_path(example: str = "crm") -> Path:
    """Path of an example's policy file ("crm", "spec" or "ops")."""
    return path(EXAMPLES[example][0])


def policy(example: str = "crm") -> dict[str, Any]:
    """An example's policy, decoded (a fresh dict on each call)."""
    data: dict[str, Any] = json.loads(policy_path(example).read_text(encoding="utf-8"))
    return data


def cases_document(example: str = "crm") -> dict[str, Any]:
    """The example's cases file, decoded (callgate.policy_tests reads it)."""
    data: dict[str, Any] = json.loads(path(EXAMPLES[example][1]).read_text(encoding="utf-8"))
    return data


def cases(example: str = "crm") -> list[dict[str, Any]]:
    """The example's cases: tool, args, role, agent_attributes, resource_attributes, expected."""
    found: list[dict[str, Any]] = cases_document(example)["cases"]
    return found
