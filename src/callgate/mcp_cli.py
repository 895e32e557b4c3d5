"""`callgate proxy`, `callgate pins …` and `callgate demo`: the MCP commands.

cli.py calls register(app) when this module exists. Every error is one line on stderr
and a non-zero status.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.console import Console

err = Console(stderr=True, highlight=False, soft_wrap=True)
_RAW = {"allow_extra_args": True, "ignore_unknown_options": True}


def _log_to_stderr() -> None:
    """What the proxy's modules log (callgate.mcp, callgate.audit, ...) goes to stderr, one
    line each: stdout is the MCP stream."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("callgate proxy: %(message)s"))
    root = logging.getLogger("callgate")
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"error: {message}", markup=False)
    return typer.Exit(code)


def load_policy(policy: str) -> Any:
    """The decoded policy: a file, or a bundled example name ('crm', 'spec')."""
    from . import examples
    from .errors import CallgateError
    from .policy import parse_json

    try:
        if policy in examples.EXAMPLES and not Path(policy).exists():
            return examples.policy(policy)
        try:
            data = Path(policy).read_bytes()
        except OSError as exc:
            raise _fail(f"{policy}: cannot read policy file: {exc.strerror}") from None
        return parse_json(data)
    except (CallgateError, ValueError) as exc:
        raise _fail(str(exc)) from None


def load_engine(policy: Any, semantics: str = "strict", audit: Optional[str] = None,
                audit_options: Optional[dict] = None) -> Any:
    """An engine for a decoded policy (or a file / example name), with an audit sink if asked."""
    from .engine import Engine
    from .errors import CallgateError

    data = load_policy(policy) if isinstance(policy, str) else policy
    options: dict = {}
    if audit:
        options["audit"] = audit_sink(audit, **(audit_options or {}))
    try:
        return Engine.from_dict(data, semantics, **options)
    except (CallgateError, ValueError) as exc:
        raise _fail(str(exc)) from None


def audit_sink(source: str, **options: Any) -> Any:
    """The audit trail's sink for SOURCE (callgate.audit.open_sink); a clear error without it."""
    try:
        from . import audit as audit_mod
        open_sink = audit_mod.open_sink  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        raise _fail("--audit needs the audit trail (callgate.audit.open_sink), which is not available in this install") from None
    try:
        return open_sink(source, **options)
    except Exception as exc:
        raise _fail(f"--audit {source}: {exc}") from None


def _identity(role: Optional[str], agent_attr: List[str], principal: Optional[str] = None) -> Any:
    from .mcp.gate import Identity, parse_attr

    if not role:
        raise _fail("--role is required (the identity comes from the operator, never from the model)", 2)
    try:
        return Identity(role, parse_attr(agent_attr), principal or None)
    except ValueError as exc:
        raise _fail(str(exc), 2) from None


def _gate(engine: Any, resolver: Optional[str], pins: Optional[Path], trusted: bool = False) -> Any:
    from .mcp.gate import Gate, load_resolver
    from .mcp.pins import PinStore

    try:
        fn = load_resolver(resolver) if resolver else None
        store = PinStore(pins) if pins else None
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    return Gate(engine, fn, store, trusted=trusted)


def _trust_approvers(engine: Any, items: List[str]) -> None:
    """--trust-approver NAME=PUBLIC_KEY.pem: approvals signed by NAME count."""
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise _fail(f"--trust-approver must be NAME=PUBLIC_KEY.pem, not {item!r}", 2)
        try:
            engine.trust_approver(name, Path(path).read_bytes())
        except OSError as exc:
            raise _fail(f"--trust-approver {name}: cannot read {path}: {exc.strerror}", 2) from None
        except (ValueError, TypeError, AttributeError) as exc:
            raise _fail(f"--trust-approver {name}: {exc}", 2) from None


def _elevation(max_approvals: int, timeout: float) -> Any:
    from .mcp.elevate import Elevation

    try:
        return Elevation(max_approvals=max_approvals, timeout=timeout)
    except ValueError as exc:
        raise _fail(f"--elicit-max-approvals / --elicit-timeout: {exc}", 2) from None


def _limits(max_in_flight: int, request_timeout: float) -> Any:
    from .mcp.session import Limits

    try:
        return Limits(max_in_flight=max_in_flight, request_timeout=request_timeout)
    except ValueError as exc:
        raise _fail(f"--max-in-flight / --request-timeout: {exc}", 2) from None


def proxy(
    ctx: typer.Context,
    policy: str = typer.Option(..., "--policy", help="policy file, or a bundled example (crm)"),
    role: Optional[str] = typer.Option(None, "--role", help="the role every call is decided for (stdio)"),
    agent_attr: List[str] = typer.Option([], "--agent-attr", help="KEY=VALUE agent attribute (repeatable)"),
    principal: Optional[str] = typer.Option(None, "--principal", help="who the stdio client is: recorded in the "
                                            "audit trail, bound by approvals, named as approver of elicitations"),
    trusted: bool = typer.Option(False, "--trusted", help="trust the server's tool annotations (readOnlyHint, "
                                 "destructiveHint) to set tool tiers; untrusted, they can only make a tool stricter"),
    elicit_max_approvals: int = typer.Option(1, "--elicit-max-approvals", help="the most approvals an Elevate may "
                                             "need for the proxy to ask the client's user (elicitation); 0: never"),
    elicit_timeout: float = typer.Option(300.0, "--elicit-timeout", help="seconds to wait for the user's answer"),
    trust_approver: List[str] = typer.Option([], "--trust-approver", help="NAME=PUBLIC_KEY.pem: signed approvals by "
                                             "NAME in _meta[\"callgate/approvals\"] count (repeatable)"),
    resolver: Optional[str] = typer.Option(None, "--resolver", help="module:function returning resource attributes"),
    audit: Optional[str] = typer.Option(None, "--audit", help="record every decision to this audit source"),
    audit_mode: str = typer.Option("durable", "--audit-mode", help="durable: forward a call only once its decision "
                                   "is durable in the audit trail (group commit); async: forward at once, the "
                                   "decision is written behind it (docs/audit.md says what an unclean stop can lose)"),
    max_in_flight: int = typer.Option(4096, "--max-in-flight", help="requests that may wait for an answer at once; "
                                      "more get an error"),
    request_timeout: float = typer.Option(3600.0, "--request-timeout", help="seconds a request waits for its "
                                          "answer before the proxy answers it with an error"),
    pins: Optional[Path] = typer.Option(None, "--pins", help="approved tool definitions (rug-pull protection)"),
    semantics: str = typer.Option("strict", "--semantics"),
    listen: Optional[str] = typer.Option(None, "--listen", help="serve Streamable HTTP on 127.0.0.1:PORT"),
    upstream: Optional[str] = typer.Option(None, "--upstream", help="with --listen: an HTTP MCP server URL"),
    jwt_key: Optional[Path] = typer.Option(None, "--jwt-key", help="PEM public key (or HS secret file) for bearer tokens"),
    jwks: Optional[Path] = typer.Option(None, "--jwks", help="JWKS file for bearer tokens"),
    jwt_issuer: Optional[str] = typer.Option(None, "--jwt-issuer"),
    jwt_audience: Optional[str] = typer.Option(None, "--jwt-audience"),
    jwt_algorithm: str = typer.Option("RS256", "--jwt-algorithm", help="the one algorithm accepted"),
    role_claim: str = typer.Option("role", "--role-claim", help="the claim holding the role"),
    attr_claim: List[str] = typer.Option([], "--attr-claim", help="CLAIM[=ATTR]: copy a claim into agent attributes"),
    session_idle_timeout: Optional[float] = typer.Option(
        None, "--session-idle-timeout", help="with --listen: close a session idle this many seconds (default 1800)"),
    max_sessions: int = typer.Option(64, "--max-sessions", help="with --listen: open sessions in all (the least "
                                     "recently used idle one is closed to make room)"),
    max_sessions_per_principal: int = typer.Option(8, "--max-sessions-per-principal",
                                                   help="with --listen: open sessions of one token subject"),
    max_body: int = typer.Option(4 * 1024 * 1024, "--max-body", help="with --listen: bytes in one request body"),
    head_timeout: float = typer.Option(10.0, "--head-timeout", help="with --listen: seconds for a request head to "
                                       "arrive (else the connection is closed)"),
    body_timeout: float = typer.Option(30.0, "--body-timeout", help="with --listen: seconds for a request body to "
                                       "arrive (else 408)"),
    allow_host: List[str] = typer.Option([], "--allow-host", help="with --listen: a Host header to serve besides "
                                         "the listen address (repeatable)"),
    allow_origin: List[str] = typer.Option([], "--allow-origin", help="with --listen: a browser Origin allowed to "
                                           "call the front (repeatable; by default only its own)"),
    command: Optional[List[str]] = typer.Argument(None, help="-- SERVER_COMMAND [ARGS…]"),
) -> None:
    """Relay MCP between a client and a server, deciding every tools/call by the policy."""
    command = list(command or []) + list(ctx.args)
    if listen is None and upstream is not None:
        raise _fail("--upstream needs --listen (an HTTP upstream is served over HTTP)", 2)
    if listen is None and not command:
        raise _fail("give the server command after --, e.g. callgate proxy --policy P --role R -- python server.py", 2)
    if listen is not None and (role or agent_attr or principal):
        raise _fail("--role, --agent-attr and --principal do not apply with --listen: the identity comes from each "
                    "request's token", 2)
    if listen is not None and bool(command) == bool(upstream):
        raise _fail("with --listen give exactly one upstream: -- SERVER_COMMAND, or --upstream URL", 2)
    if listen is None and session_idle_timeout is not None:
        raise _fail("--session-idle-timeout applies to --listen (HTTP sessions)", 2)
    if session_idle_timeout is not None and not session_idle_timeout > 0:
        raise _fail("--session-idle-timeout must be a positive number of seconds", 2)
    elevation = _elevation(elicit_max_approvals, elicit_timeout)
    if audit_mode not in ("durable", "async"):
        raise _fail(f"--audit-mode must be durable or async, not {audit_mode!r}", 2)
    limits = _limits(max_in_flight, request_timeout)
    _log_to_stderr()
    data = load_policy(policy)
    # durable: a call waits for its decision's event, and a failing sink stops calls at once
    # (on_failure="deny") instead of letting them wait for a sink that may not come back; an
    # HTTP collector keeps its fsynced local spool, which counts as durable
    remote = audit is not None and audit.startswith(("http://", "https://"))
    engine = load_engine(data, semantics, audit,
                         {"on_failure": "deny"} if audit_mode == "durable" and not remote else None)
    _trust_approvers(engine, trust_approver)
    gate = _gate(engine, resolver, pins, trusted)
    gate.durable = audit is not None and audit_mode == "durable"
    if listen is None:
        from .mcp.proxy import StdioProxy

        status = StdioProxy(gate, _identity(role, agent_attr, principal), command, elevation=elevation,
                            limits=limits).run()
        engine.close()
        raise typer.Exit(status)
    from .mcp.http_front import IDLE_TIMEOUT, FrontLimits, JwtConfig, serve

    if (jwt_key is None) == (jwks is None):
        raise _fail("--listen needs exactly one of --jwt-key or --jwks (requests are authenticated)", 2)
    if not jwt_issuer or not jwt_audience:
        raise _fail("--listen needs --jwt-issuer and --jwt-audience", 2)
    try:
        jwt_config = JwtConfig.from_files(key=jwt_key, jwks=jwks, issuer=jwt_issuer, audience=jwt_audience,
                                          algorithm=jwt_algorithm, role_claim=role_claim, attr_claims=attr_claim)
        front_limits = FrontLimits(max_body=max_body, max_sessions=max_sessions, head_timeout=head_timeout,
                                   body_timeout=body_timeout, max_sessions_per_principal=max_sessions_per_principal)
        status = serve(gate, jwt_config, listen, command=command or None, upstream=upstream,
                       idle_timeout=IDLE_TIMEOUT if session_idle_timeout is None else session_idle_timeout,
                       elevation=elevation, limits=front_limits, session_limits=limits,
                       allowed_hosts=allow_host, allowed_origins=allow_origin)
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    engine.close()
    raise typer.Exit(status)


pins_app = typer.Typer(help="Approve and inspect pinned tool definitions (rug-pull protection).",
                       no_args_is_help=True, add_completion=False)


@pins_app.command("approve", context_settings=_RAW)
def pins_approve(
    ctx: typer.Context,
    pins: Path = typer.Option(..., "--pins", help="the pins file the proxy reads"),
    tool: List[str] = typer.Option([], "--tool", help="approve only this tool (repeatable); default all"),
    command: Optional[List[str]] = typer.Argument(None, help="-- SERVER_COMMAND [ARGS…]"),
) -> None:
    """Start the server, list its tools and pin their current definitions."""
    from .mcp.pins import PinStore
    from .mcp.rawclient import RawClientError, list_tools_of

    command = list(command or []) + list(ctx.args)
    if not command:
        raise _fail("give the server command after --", 2)
    try:
        tools = list_tools_of(command)
        changes = PinStore(pins).approve(tools, set(tool) if tool else None)
    except (RawClientError, OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    missing = set(tool) - {name for name, _, _ in changes}
    if missing:
        raise _fail(f"the server has no tool named {', '.join(sorted(missing))}")
    for name, old, new in changes:
        state = "unchanged" if old == new else ("approved" if not old else "re-approved (changed)")
        err.print(f"{name}: {state} {new[:23]}…", markup=False)


@pins_app.command("list")
def pins_list(pins: Path = typer.Option(..., "--pins")) -> None:
    """Print the approved tools and their digests."""
    from .mcp.pins import PinStore

    try:
        entries = PinStore(pins).pins()
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    for name, pin in sorted(entries.items()):
        sys.stdout.write(f"{name}\t{pin.get('digest')}\t{pin.get('approved_at', '')}\n")


@pins_app.command("check", context_settings=_RAW)
def pins_check(ctx: typer.Context, pins: Path = typer.Option(..., "--pins"),
               command: Optional[List[str]] = typer.Argument(None)) -> None:
    """Compare the server's current definitions with the pins; exit 1 if any differ."""
    from .mcp.pins import PinStore, tool_digest
    from .mcp.rawclient import RawClientError, list_tools_of

    command = list(command or []) + list(ctx.args)
    try:
        tools = list_tools_of(command)
        store = PinStore(pins)
    except (RawClientError, OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    bad = 0
    for t in tools:
        problem = store.problem(t["name"], tool_digest(t))
        bad += problem is not None
        sys.stdout.write(f"{t['name']}: {problem or 'ok'}\n")
    raise typer.Exit(1 if bad else 0)


def demo(
    policy: Optional[Path] = typer.Option(None, "--policy", help="your policy (default: the CRM example)"),
    script: Optional[Path] = typer.Option(None, "--script", help="your scenes: a cases file"),
    server: Optional[str] = typer.Option(None, "--server", help="server command for --script (default: the CRM server)"),
    resolver: Optional[str] = typer.Option(None, "--resolver", help="module:function (default: the CRM's)"),
) -> None:
    """Play the CRM story through a real MCP server behind the proxy (no API key needed)."""
    from .demo import DemoError, run_demo

    if (policy is None) != (script is None):
        raise _fail("--policy and --script go together", 2)
    try:
        status = run_demo(policy=policy, script=script, server=server, resolver=resolver)
    except DemoError as exc:
        raise _fail(str(exc)) from None
    raise typer.Exit(status)


def register(app: typer.Typer) -> None:
    app.command("proxy", context_settings=_RAW)(proxy)
    app.add_typer(pins_app, name="pins")
    app.command("demo")(demo)
