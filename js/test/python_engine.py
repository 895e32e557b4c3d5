"""The Python engine, for the npm package's differential tests (js/test/*.test.mjs).

    python python_engine.py corpus OUTDIR       every corpus file: its blob (written to OUTDIR), and per case
                                                the request texts the Python API sends (orjson's) and the
                                                native engine's decision
    python python_engine.py evaluate-json       stdin: [{"blob", "tool", "args", "context"}] (JSON texts);
                                                stdout: the native decision of each, from those very bytes
    python python_engine.py visible             stdin: [{"policy", "tools", "roles"}]; stdout: per policy,
                                                {tool: {role: visible}} as the Python gate lists tools
    python python_engine.py gate                stdin: {"policy", "resolver"?, "tools", "calls": [{"params", "role", "agent_attributes"}]};
                                                stdout: what the Python MCP gate answers each call (null: it runs)

Run by the tests with tests/ on the path (the corpus is read by tests/support/corpus.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import orjson

import callgate


def outcome(d) -> dict:
    return {"decision": d.decision, "rule": d.rule, "approvals_required": d.approvals_required, "reason": d.reason}


def corpus(outdir: str) -> None:
    from support.corpus import corpus_files

    out = []
    for f in corpus_files():
        engine = callgate.Engine.from_dict(f.policy)
        blob = Path(outdir) / f"{f.name}.blob"
        blob.write_bytes(engine.blob)
        cases = []
        for c in f.cases:
            args = c.get("args")
            agent, resource, context = c.get("agent_attributes"), c.get("resource_attributes"), c.get("context")
            texts = {"args": orjson.dumps(args if args is not None else {}).decode(),
                     "agent": orjson.dumps(agent if agent is not None else {}).decode(),
                     "resource": orjson.dumps(resource if resource is not None else {}).decode(),
                     "context": None if context is None else orjson.dumps(context).decode()}
            try:
                got = outcome(engine.evaluate(c["tool"], args, role=c["role"], agent_attributes=agent,
                                              resource_attributes=resource, context=context))
            except callgate.CallgateError as exc:
                got = {"error": str(exc), "code": getattr(exc, "code", None)}
            cases.append({"name": c["name"], "tool": c["tool"], "role": c["role"], "texts": texts,
                          "expect": c["expect"], "python": got})
        out.append({"name": f.name, "blob": str(blob), "cases": cases})
    sys.stdout.write(json.dumps(out))


def evaluate_json() -> None:
    engines: dict[str, callgate.Engine] = {}
    out = []
    for item in json.loads(sys.stdin.read()):
        engine = engines.get(item["blob"])
        if engine is None:
            engine = engines[item["blob"]] = _engine_for_blob(item["blob"])
        try:
            out.append(outcome(engine.evaluate_json(item["tool"], item["args"].encode(), item["context"].encode())))
        except callgate.CallgateError as exc:
            out.append({"error": str(exc), "code": getattr(exc, "code", None)})
    sys.stdout.write(json.dumps(out))


def _engine_for_blob(name: str) -> callgate.Engine:
    """The corpus file's engine (the blob was written from it: its policy is compiled again)."""
    from support.corpus import corpus_files

    stem = Path(name).stem
    for f in corpus_files():
        if f.name == stem:
            return callgate.Engine.from_dict(f.policy)
    raise SystemExit(f"no corpus policy for {name}")


def visible() -> None:
    out = []
    for item in json.loads(sys.stdin.read()):
        compiled = callgate.Engine.from_dict(item["policy"], item.get("semantics", "strict")).compiled
        out.append({tool: {role: compiled.visible(tool, role) for role in item["roles"]} for tool in item["tools"]})
    sys.stdout.write(json.dumps(out))


def gate() -> None:
    from callgate.mcp.gate import Gate, Identity, load_resolver

    request = json.loads(sys.stdin.read())
    resolver = load_resolver(request["resolver"]) if request.get("resolver") else None
    g = Gate(callgate.Engine.from_dict(request["policy"]), resolver)
    out = []
    for call in request["calls"]:
        who = Identity(call["role"], call.get("agent_attributes") or {})
        out.append({"reason": g.check(call["params"], who),
                    "visible": sorted(name for name in request.get("tools", []) if g.visible(name, call["role"]))})
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "corpus":
        corpus(sys.argv[2])
    elif command == "evaluate-json":
        evaluate_json()
    elif command == "visible":
        visible()
    elif command == "gate":
        gate()
    else:
        raise SystemExit(f"unknown command {command}")
