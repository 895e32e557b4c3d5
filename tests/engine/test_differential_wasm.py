"""Differential tests across backends: the WebAssembly module (through wasmtime) against the
reference evaluator and the native engine, on random policies and requests.

One module instance serves every example: each policy is swapped in with init (which is
what a long-running host does), so this also exercises re-init under load.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("wasmtime")
import callgate  # noqa: E402
from callgate.wasm import WasmEngine  # noqa: E402
from support.reference import ReferenceEngine, ReferenceRequestError  # noqa: E402
from support.strategies import leaf_policy_and_request, policy_and_request  # noqa: E402

EXAMPLES = int(os.environ.get("CALLGATE_HYPOTHESIS_EXAMPLES", "300")) // 2
SEMANTICS = ["strict", "perso"]


@pytest.fixture(scope="module")
def modules() -> dict:
    base = {"version": "0", "default_action": "Deny", "tools": [], "roles": [], "rules": []}
    return {sem: WasmEngine.from_dict(base, sem) for sem in SEMANTICS}


def _outcome(engine, request):
    tool, role, args, agent, resource = request
    try:
        d = engine.evaluate(tool, args, role=role, agent_attributes=agent, resource_attributes=resource)
    except callgate.RequestError:
        return callgate.RequestError
    return d.decision, d.reason, d.rule


@pytest.mark.parametrize("semantics", SEMANTICS)
@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data())
def test_wasm_matches_reference_and_native(modules, semantics, data):
    """Decision, exact reason and rule from the wasm module equal the reference's and the
    native engine's, for random policies (all node types, globs, duplicates) and requests."""
    strategy = policy_and_request(semantics) if data.draw(st.booleans()) else leaf_policy_and_request(semantics)
    policy, request = data.draw(strategy)
    tool, role, args, agent, resource = request
    wasm = modules[semantics]
    wasm.reload(policy)
    try:
        expected = ReferenceEngine(policy, semantics).evaluate(tool, args, role, agent, resource)
    except ReferenceRequestError:
        expected = callgate.RequestError
    native = _outcome(callgate.Engine.from_dict(policy, semantics), request)
    assert _outcome(wasm, request) == expected == native, (policy, request)
