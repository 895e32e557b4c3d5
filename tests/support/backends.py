"""The engine's backends as the tests reach them (no tests here): one case decided through
the public API, and whether the native engine and the wasm module run v2 policies (the
probe: a deny rule over a Context leaf, evaluated with context=)."""

from __future__ import annotations

import functools

# The smallest policy that only a v2 loader accepts and only a v2 engine denies.
PROBE = {"version": "v2-probe", "default_action": "Allow", "tools": ["t"], "roles": ["r"],
         "rules": [{"tool_name": "t", "roles": ["r"], "effect": "deny",
                    "condition": {"NumericCheck": {"source": "Context", "field": "x", "op": "Gt",
                                                   "value": 0}}}]}


def evaluate_case(engine, case: dict):
    """Decide one case of the cases-file schema (callgate.policy_tests) with `engine`."""
    return engine.evaluate(case["tool"], case.get("args"), role=case["role"],
                           agent_attributes=case.get("agent_attributes"),
                           resource_attributes=case.get("resource_attributes"), context=case.get("context"))


@functools.lru_cache(maxsize=None)
def native_v2_unavailable() -> str:
    """Why the native engine cannot run v2 policies yet, or "" when it can."""
    try:
        import callgate
    except Exception as exc:  # pragma: no cover - depends on the build
        return f"callgate does not import: {exc!r}"
    try:
        engine = callgate.Engine.from_dict(PROBE)
    except Exception as exc:
        return (f"callgate.Engine.from_dict does not accept v2 policies yet "
                f"({type(exc).__name__}: {exc})")
    try:
        d = engine.evaluate("t", {}, role="r", context={"x": 1})
    except TypeError as exc:
        return f"callgate.Engine.evaluate does not take context= yet ({exc})"
    if not hasattr(d, "approvals_required"):
        return "callgate.Decision has no approvals_required yet"
    return ""


@functools.lru_cache(maxsize=None)
def wasm_v2_unavailable() -> str:
    """Why the wasm module cannot run v2 policies yet, or "" when it can."""
    try:
        import wasmtime  # noqa: F401
    except ImportError:
        return "wasmtime is not installed"
    try:
        from callgate.wasm import WasmEngine
        engine = WasmEngine.from_dict(PROBE)
    except Exception as exc:
        return f"callgate.wasm.WasmEngine does not load v2 policies yet ({type(exc).__name__}: {exc})"
    try:
        engine.evaluate("t", {}, role="r", context={"x": 1})
    except Exception as exc:
        return f"callgate.wasm.WasmEngine.evaluate does not take a v2 request yet ({type(exc).__name__}: {exc})"
    return ""
