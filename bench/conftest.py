"""Benchmarks: fixtures shared by bench/*.py (run with `pytest bench/ --benchmark-enable`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from callgate import Engine, examples

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # support.reference: the reference evaluator
sys.path.insert(0, str(HERE))                   # cases.py, alternatives.py first


@pytest.fixture(scope="session")
def crm() -> Engine:
    return Engine.from_dict(examples.policy("crm"))


@pytest.fixture(scope="session")
def ops() -> Engine:
    """The policy v2 example: tiers, deny/elevate rules, a time window, JSON Pointers."""
    return Engine.from_dict(examples.policy("ops"))
