"""callgate: decide whether an AI agent's tool call may run.

    import callgate
    engine = callgate.Engine.from_file("policy.json")
    d = engine.evaluate("process_refund", {"amount": 800}, role="agent")
    d.decision, d.reason
"""

from __future__ import annotations

from .engine import Decision, Engine
from .errors import BlobError, CallgateError, PolicyError, RequestError
from .version import __version__
__all__ = ["Engine", "Decision", "Call", "CallgateError", "PolicyError", "RequestError", "BlobError", "__version__"]


def __getattr__(name: str):  # Call lives with the approvals (cryptography): loaded when used
    if name == "Call":
        from .approvals import Call

        return Call
    raise AttributeError(f"module 'callgate' has no attribute {name!r}")
