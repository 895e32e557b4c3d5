"""`callgate playground [POLICY] [--port N]`: a page on 127.0.0.1 to see callgate decide.

The page (playground/static) decides in the browser with the package's own wasm module
(callgate.mjs, callgate.wasm) and keeps the session's audit trail there (audit.mjs). This
server only hands out those files and does what needs Python: compiling the policy being
edited (its errors placed at their line and column, as `callgate check` places them) and the
explain tree of a call. Everything the page uses ships in the package: no CDN, no network
beyond 127.0.0.1, no API key, no model.

A page on a local port is reachable by any other page the browser has open, so the server
answers only requests addressed to itself (the Host header names 127.0.0.1 or localhost at
its port: a rebound DNS name is refused), takes only JSON POSTs (a cross-site form cannot
send one without the browser asking first) from its own origin, and bounds what it reads.
"""

from __future__ import annotations

import argparse
import base64
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import orjson

from . import examples, textout
from .cli import add_command
from .errors import CallgateError, PolicyError

if TYPE_CHECKING:
    from .cli import Commands

DEFAULT_PORT = 8765
MAX_BODY = 1 << 20          # a policy or a call larger than 1 MiB is not a playground's
SEMANTICS = ("strict", "perso")
FORMATS = ("json", "yaml")
# path -> (file in the package, content type)
ASSETS = {
    "/": ("playground/static/index.html", "text/html; charset=utf-8"),
    "/app.mjs": ("playground/static/app.mjs", "text/javascript; charset=utf-8"),
    "/style.css": ("playground/static/style.css", "text/css; charset=utf-8"),
    "/audit.mjs": ("playground/static/audit.mjs", "text/javascript; charset=utf-8"),
    "/callgate.mjs": ("callgate.mjs", "text/javascript; charset=utf-8"),
    "/callgate.wasm": ("callgate.wasm", "application/wasm"),
}
# the page loads nothing from elsewhere, and compiling WebAssembly is all the "eval" it needs
CSP = ("default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; connect-src 'self'; "
       "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class BadRequest(Exception):
    """A request the playground refuses, with the HTTP status and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _text_of(name: str) -> tuple[str, str]:
    """The text and format of the policy to start with: a file, or a bundled example's name."""
    if name in examples.EXAMPLES and not Path(name).exists():
        return examples.policy_path(name).read_text(encoding="utf-8"), "json"
    from .policy_files import policy_format

    try:
        return Path(name).read_text(encoding="utf-8"), policy_format(name)
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read policy file: {getattr(exc, 'strerror', None) or exc}", "(file)",
                          file=name) from None


def _finding(level: str, location: str, message: str, line: Optional[int], column: Optional[int]) -> dict[str, Any]:
    return {"level": level, "location": location, "message": message, "line": line, "column": column}


def _field(body: dict[str, Any], key: str, kind: type, default: Any = None) -> Any:
    value = body.get(key, default)
    if value is None and default is None and kind is dict:
        return None
    if not isinstance(value, kind):
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"{key}: expected {kind.__name__}")
    return value


class Playground:
    """What the page asks of Python, without HTTP: the start document, compiling, explaining."""

    def __init__(self, name: str, text: str, format: str = "json") -> None:
        self.name = name
        self.text = text
        self.format = format

    def start(self) -> dict[str, Any]:
        """The policy to edit first, the bundled examples and the CRM demo's scenes."""
        return {
            "name": self.name, "policy": self.text, "format": self.format,
            "examples": {name: examples.policy_path(name).read_text(encoding="utf-8") for name in examples.EXAMPLES},
            "scenes": examples.cases("crm"),
        }

    def compile(self, body: dict[str, Any]) -> dict[str, Any]:
        """{"policy": TEXT, "format"?, "semantics"?} -> {"ok": true, "blob": BASE64, "warnings"}
        or {"ok": false, "errors": [{level, location, message, line, column}]}: every problem
        `callgate check` finds, each at its line and column in TEXT."""
        from .lint import lint
        from .policy_files import parse_policy

        text = _field(body, "policy", str)
        fmt = _field(body, "format", str, "json")
        semantics = _field(body, "semantics", str, "strict")
        if fmt not in FORMATS or semantics not in SEMANTICS:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "format is json or yaml, semantics strict or perso")
        try:
            source = parse_policy(text, format=fmt)
            findings = lint(source, semantics)
            errors = [f for f in findings if f.level == "error"]
            if errors:
                return {"ok": False, "errors": [_finding(f.level, f.location, f.message, f.line, f.column)
                                                for f in errors]}
            compiled = source.compile(semantics)
        except PolicyError as exc:
            return {"ok": False, "errors": [_finding("error", exc.location, exc.message, exc.line, exc.column)]}
        except (CallgateError, ValueError) as exc:
            return {"ok": False, "errors": [_finding("error", "(policy)", str(exc), None, None)]}
        return {"ok": True, "blob": base64.b64encode(compiled.blob).decode("ascii"),
                "warnings": [_finding(f.level, f.location, f.message, f.line, f.column) for f in findings]}

    def explain(self, body: dict[str, Any]) -> dict[str, Any]:
        """{"policy", "format"?, "semantics"?, "tool", "role", "args"?, "agent_attributes"?,
        "resource_attributes"?, "context"?} -> the explain tree (`callgate explain --format
        json`), or {"error"} for a policy or request that cannot be explained."""
        from .engine import Engine
        from .explain import explain_request
        from .policy_files import parse_policy

        text = _field(body, "policy", str)
        fmt = _field(body, "format", str, "json")
        semantics = _field(body, "semantics", str, "strict")
        tool, role = _field(body, "tool", str), _field(body, "role", str)
        parts = [_field(body, key, dict) for key in ("args", "agent_attributes", "resource_attributes", "context")]
        if fmt not in FORMATS or semantics not in SEMANTICS:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "format is json or yaml, semantics strict or perso")
        try:
            compiled = parse_policy(text, format=fmt).compile(semantics)
            ex = explain_request(compiled, Engine(compiled), tool, role, *parts)
        except (CallgateError, ValueError) as exc:
            return {"error": str(exc)}
        return ex.to_dict()


def _asset(path: str) -> tuple[bytes, str]:
    name, kind = ASSETS[path]
    return resources.files("callgate").joinpath(name).read_bytes(), kind


class _Handler(BaseHTTPRequestHandler):
    """One request: a file of the page, or a JSON call of its API."""

    server: "PlaygroundServer"
    protocol_version = "HTTP/1.1"
    server_version = "callgate-playground"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class's name)
        """Quiet: the playground is not a web server's access log."""

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, orjson.dumps(value), "application/json")

    def _addressed_to_us(self) -> None:
        port = self.server.server_address[1]
        if self.headers.get("Host", "") not in (f"127.0.0.1:{port}", f"localhost:{port}"):
            raise BadRequest(HTTPStatus.FORBIDDEN, "this server answers only requests for 127.0.0.1 at its port")

    def do_GET(self) -> None:
        """A file of the page, or /api/start."""
        self._answer(self._get)

    def do_HEAD(self) -> None:
        """As GET, without the body."""
        self._answer(self._get)

    def do_POST(self) -> None:
        """/api/compile and /api/explain: JSON in, JSON out."""
        self._answer(self._post)

    def _answer(self, handle: Callable[[], None]) -> None:
        try:
            self._addressed_to_us()
            handle()
        except BadRequest as exc:
            self.close_connection = True
            self._json(exc.status, {"error": exc.message})
        except Exception as exc:  # never a traceback to the page, never a hung request
            self.close_connection = True
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {type(exc).__name__}"})

    def _get(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/favicon.ico":   # browsers ask; the page has none
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        elif path == "/api/start":
            self._json(HTTPStatus.OK, self.server.playground.start())
        elif path in ASSETS:
            self._send(HTTPStatus.OK, *_asset(path))
        else:
            raise BadRequest(HTTPStatus.NOT_FOUND, f"no such page: {path[:200]}")

    def _post(self) -> None:
        port = self.server.server_address[1]
        origin = self.headers.get("Origin")
        if origin is not None and origin not in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
            raise BadRequest(HTTPStatus.FORBIDDEN, "cross-origin requests are refused")
        if (self.headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/json":
            raise BadRequest(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "the body must be application/json")
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise BadRequest(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        if int(length) > MAX_BODY:
            raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is larger than {MAX_BODY} bytes")
        raw = self.rfile.read(int(length))
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        path = self.path.split("?", 1)[0]
        if path == "/api/compile":
            self._json(HTTPStatus.OK, self.server.playground.compile(body))
        elif path == "/api/explain":
            self._json(HTTPStatus.OK, self.server.playground.explain(body))
        else:
            raise BadRequest(HTTPStatus.NOT_FOUND, f"no such call: {path[:200]}")


class PlaygroundServer(ThreadingHTTPServer):
    """The HTTP server of one playground, on 127.0.0.1 only."""

    daemon_threads = True

    def __init__(self, playground: Playground, port: int = DEFAULT_PORT) -> None:
        self.playground = playground
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT/"""
        return f"http://127.0.0.1:{self.server_address[1]}/"


def start_playground(policy: Optional[str] = None, port: int = 0) -> PlaygroundServer:
    """A playground serving in a background thread (port 0: any free port); stop it with
    server.shutdown(). Raises PolicyError for a policy file that cannot be read."""
    name = policy or "crm"
    text, fmt = _text_of(name)
    server = PlaygroundServer(Playground(name, text, fmt), port)
    threading.Thread(target=server.serve_forever, name="callgate-playground", daemon=True).start()
    return server


def playground_cmd(args: argparse.Namespace) -> int:
    """Serve the page until interrupted."""
    name = args.policy or "crm"
    try:
        text, fmt = _text_of(name)
    except PolicyError as exc:
        textout.error(str(exc))
        return 2
    if not 0 <= args.port <= 65535:
        textout.error(f"--port {args.port}: a port is 0-65535")
        return 2
    try:
        server = PlaygroundServer(Playground(name, text, fmt), args.port)
    except OSError as exc:
        textout.error(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}")
        return 2
    print(f"callgate playground: {server.url}  (policy: {name}; Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def register(commands: "Commands") -> None:
    """Add `callgate playground` to the command line (cli.build_parser)."""
    p = add_command(commands, "playground", playground_cmd, """Serve a page on 127.0.0.1 to try policies and watch the CRM demo.

The page decides in the browser with the same wasm module the npm package ships: edit a
policy (errors at their line and column), build a call and see the decision, the reason
and the explain tree, play the CRM demo's scenes by role, with the session's audit trail.
Nothing is fetched from the network; no API key, no model.""")
    p.add_argument("policy", nargs="?", metavar="POLICY", help="policy file, or a bundled example (crm, spec, ops); default crm")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the port (default {DEFAULT_PORT}; 0: any free port)")
