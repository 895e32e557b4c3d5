"""BooleanCheck (docs/policy-v2.md): the policy errors it gives, what `callgate explain`
and the disassembler show of it, and the lint warning for a deny over a value a call may
not carry. Its decisions and reasons are held by the corpus (tests/corpus/booleans_*.json:
native, wasm, Node, `callgate test` and the reference evaluator) and by the random v2
policies of tests/engine/test_v2_differential.py."""

from __future__ import annotations

import pytest

from callgate import Engine, PolicyError
from callgate import bytecode as bc
from callgate.compiler import compile_policy
from callgate.explain import explain_request
from callgate.lint import lint


def policy(check: dict, effect: str = "allow", tool: str = "delete") -> dict:
    return {"version": "v2", "default_action": "Deny", "tools": ["delete"], "roles": ["r"],
            "rules": [{"tool_name": tool, "roles": ["r"], "effect": effect, "condition": {"BooleanCheck": check}}]}


@pytest.mark.parametrize("check,message", [
    ({"source": "Arguments", "field": "soft", "value": "true"}, "rules[0].condition.BooleanCheck.value"),
    ({"source": "Arguments", "field": "soft", "value": 1}, "rules[0].condition.BooleanCheck.value"),
    ({"source": "Arguments", "field": "soft"}, "rules[0].condition.BooleanCheck.value"),
    ({"source": "Arguments", "value": True}, "rules[0].condition.BooleanCheck"),
    ({"source": "Arguments", "field": "soft", "value": True, "op": "Eq"}, "rules[0].condition.BooleanCheck.op"),
])
def test_policy_errors_name_the_place(check, message):
    """A value that is not a JSON boolean (the string "true", the number 1), a missing value,
    a missing locator and an unknown key are PolicyErrors located at the BooleanCheck."""
    with pytest.raises(PolicyError) as exc:
        Engine.from_dict(policy(check))
    assert str(exc.value).startswith(message), str(exc.value)


def test_explain_and_disassembly_show_the_boolean_wanted():
    """`explain` shows the leaf as `Arguments.soft is true` with the value the call holds and
    reaches the engine's decision; the disassembly shows `BOOL Arguments.soft is true`."""
    compiled = compile_policy(policy({"source": "Arguments", "field": "soft", "value": True}))
    engine = Engine.from_dict(policy({"source": "Arguments", "field": "soft", "value": True}))
    ex = explain_request(compiled, engine, "delete", "r", {"soft": False})
    text = str(ex.to_dict())
    assert ex.agrees and ex.engine.decision == "Deny"
    assert "Arguments.soft is true" in text and "False" in text
    listing = bc.disassemble(engine.blob)
    assert "BOOL    Arguments.soft is true" in listing


def test_lint_warns_of_a_deny_over_a_boolean_a_call_may_not_carry():
    """A deny on a tool pattern whose BooleanCheck reads an argument a call may not carry is
    flagged: missing or null is U, and a deny that cannot be evaluated denies."""
    findings = lint(policy({"source": "Arguments", "field": "hard", "value": True}, effect="deny", tool="del*"))
    assert any("reads Arguments.hard" in f.message and "cannot be evaluated" in f.message for f in findings), findings
