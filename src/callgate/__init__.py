"""callgate: decide whether an AI agent's tool call may run.

    import callgate
    engine = callgate.Engine.from_file("policy.json")
    d = engine.evaluate("process_refund", {"amount": 800}, role="agent")
    d.decision, d.reason
"""

from __future__ import annotations

from typing import Any

from .engine import Decision, Engine
from .errors import BlobError, CallgateError, PolicyError, RequestError
from .version import __version__

__all__ = ["BlobError", "Call", "CallgateError", "Decision", "Engine", "PolicyError", "RequestError", "__version__"]

# submodules a user reaches from `import callgate` alone (callgate.examples.policy("crm"),
# callgate.audit.SqliteSink(...)): imported on first use, so that `import callgate` stays light
SUBMODULES = ("approvals", "audit", "examples", "language", "mcp", "policy", "policy_tests", "principals", "scopes",
              "wasm")


def __getattr__(name: str) -> Any:
    if name == "Call":   # Call lives with the approvals (cryptography): loaded when used
        from .approvals import Call

        return Call
    if name in SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'callgate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(SUBMODULES))
