"""callgate: decide whether an AI agent's tool call may run.

    import callgate
    engine = callgate.Engine.from_file("policy.json")
    d = engine.evaluate("process_refund", {"amount": 800}, role="agent")
    d.decision, d.reason
"""

from __future__ import annotations

from .engine import Decision, Engine
from .errors import BlobError, CallgateError, PolicyError, RequestError

__version__ = "0.1.0"
__all__ = ["Engine", "Decision", "CallgateError", "PolicyError", "RequestError", "BlobError", "__version__"]
