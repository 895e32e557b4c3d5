"""`callgate compare`: callgate and another wasm engine side by side on recorded calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import orjson

from .decision import Decision
from .engine import Engine
from .errors import CallgateError
from .wasm import WasmEngine, WasmModule


def _read_calls(path: Path) -> list[tuple[int, dict[str, Any]]]:
    calls = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            call = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
        if not isinstance(call, dict) or not isinstance(call.get("tool"), str) or not isinstance(call.get("role"), str):
            raise ValueError(f"{path}:{number}: a call needs a string 'tool' and 'role'")
        calls.append((number, call))
    return calls


def _outcome(fn: Callable[[], Decision]) -> dict[str, str]:
    try:
        d = fn()
        return {"decision": d.decision, "reason": d.reason}
    except CallgateError as exc:
        return {"decision": "Error", "reason": str(exc)}


def compare_calls(calls_path: Path, wasm_path: Path, policy: dict[str, Any], semantics: str) -> dict[str, Any]:
    """Every call where callgate's decision differs from the other module's."""
    ours = Engine.from_dict(policy, semantics)
    module = Path(wasm_path).read_bytes()
    theirs: Any
    try:
        theirs = WasmEngine(ours.compiled, module=module)  # another callgate build
    except CallgateError:
        theirs = WasmModule.foreign(module, orjson.dumps(policy))  # a perso ABI module
    differences = []
    calls = _read_calls(Path(calls_path))
    for number, call in calls:
        agent = call.get("agent_attributes", call.get("agent_attrs")) or {}
        resource = call.get("resource_attributes", call.get("resource_attrs")) or {}
        args_b = orjson.dumps(call.get("args") or {})
        ctx_b = orjson.dumps({"role": call["role"], "agent_attrs": agent, "resource_attrs": resource})
        a = _outcome(lambda: ours.evaluate_json(call["tool"], args_b, ctx_b))
        b = _outcome(lambda: theirs.evaluate_json(call["tool"], args_b, ctx_b))
        if a["decision"] != b["decision"]:
            differences.append({"line": number, "tool": call["tool"], "role": call["role"], "callgate": a, "other": b})
    return {"calls": len(calls), "differences": differences}
