"""Optional dependencies: what each feature beyond the engine needs, and the one-line error
that says which extra to install when it is missing (`pip install 'callgate[EXTRA]'`).

The base install is the engine and its command line (cffi, pydantic, orjson). The extras:

    approvals   signed approvals (cryptography)
    principals  verified principal chains (PyJWT, cryptography)
    audit       PostgreSQL and HTTP sinks, checkpoints and writer keys (psycopg, httpx, cryptography)
    mcp         the proxy's HTTP front, guard(), the demo (mcp, httpx, PyJWT, cryptography, rich)
    service     `callgate serve`, the AuthZEN decision service, and the shared PostgreSQL
                approval ledger (starlette, uvicorn, psycopg, cryptography, httpx)
    bundles     signed policy bundles: build, verify, poll (cryptography, httpx)
    otel        OpenTelemetry spans and metrics, the Prometheus scrape endpoint
                (opentelemetry-api, -sdk, -exporter-prometheus)
    wasm        the WebAssembly engine in Python (wasmtime)
    yaml        policies and cases in YAML (PyYAML)
    all         every one of them
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import CallgateError

# the distribution a module comes from, where the names differ
_DISTRIBUTION = {"yaml": "PyYAML", "jwt": "PyJWT", "psycopg": "psycopg"}


class MissingExtra(CallgateError, ImportError):
    """A feature whose optional dependency is not installed; str() is the one line to act on."""

    def __init__(self, feature: str, module: str, extra: str) -> None:
        package = _DISTRIBUTION.get(module, module)
        super().__init__(f"{feature} needs {package}, which is not installed: pip install 'callgate[{extra}]'")
        self.feature, self.module, self.extra = feature, module, extra


def require(module: str, feature: str, extra: str) -> ModuleType:
    """`module`, imported; MissingExtra naming `extra` when it cannot be."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(feature, module.partition(".")[0], extra) from None
