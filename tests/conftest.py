"""Shared fixtures: the bundled example policies and their cases."""

from __future__ import annotations

import pytest

from callgate import Engine, examples


@pytest.fixture(scope="session")
def crm_policy() -> dict:
    return examples.policy("crm")


@pytest.fixture(scope="session", params=["native", "wasm"])
def engine_class(request) -> type:
    """Engine, or WasmEngine (the same front over the WebAssembly backend): the engine's
    own API tests run on both."""
    if request.param == "native":
        return Engine
    from callgate.wasm import WasmEngine

    return WasmEngine


@pytest.fixture(scope="session")
def crm_engine(crm_policy, engine_class) -> Engine:
    return engine_class.from_dict(crm_policy)
