"""Shared fixtures: the bundled example policies and their cases."""

from __future__ import annotations

import pytest

from callgate import Engine, examples


@pytest.fixture(scope="session")
def crm_policy() -> dict:
    return examples.policy("crm")


@pytest.fixture(scope="session")
def crm_engine(crm_policy) -> Engine:
    return Engine.from_dict(crm_policy)


def evaluate_case(engine: Engine, case: dict):
    return engine.evaluate(case["tool"], case.get("args"), role=case["role"],
                           agent_attributes=case.get("agent_attributes"),
                           resource_attributes=case.get("resource_attributes"), context=case.get("context"))
