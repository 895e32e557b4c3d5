"""`callgate proxy`, `callgate pins …` and `callgate demo`: the MCP commands.

cli.py calls register(commands) when this module exists. Every error is one line on stderr
and a non-zero status. The proxy refuses a setup it cannot honour before anything starts
(no server process, no audit writer, no directory): options that do nothing in the chosen
mode, a role the policy does not declare, a pins file that is missing or is not one, an
audit destination that stdio or the filesystem cannot take.
"""

from __future__ import annotations

import argparse
import json
import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional, Sequence

from . import textout
from .cli import add_command, add_group, add_semantics, choice, trusted_issuers

if TYPE_CHECKING:
    from .cli import Commands

EXTRA_HINT = "pip install 'callgate[mcp]'"

# the options that only the HTTP front (--listen) uses, with their defaults: given on stdio
# they would do nothing, so they are refused (None marks "not given" while parsing)
LISTEN_ONLY: dict[str, Any] = {"upstream": None, "jwt_key": None, "jwks": None, "jwt_issuer": None, "jwt_audience": None,
               "jwt_algorithm": "RS256", "role_claim": "role", "attr_claim": [], "session_idle_timeout": None,
               "max_sessions": 64, "max_sessions_per_principal": 8, "max_body": 4 * 1024 * 1024,
               "head_timeout": 10.0, "body_timeout": 30.0, "allow_host": [], "allow_origin": []}
# and those that only the stdio proxy uses (with --listen the identity comes from each token)
STDIO_ONLY = ("role", "agent_attr", "principal")
# what the HTTP front imports when it starts (the mcp extra brings them)
LISTEN_MODULES = ("uvicorn", "starlette", "h11", "jwt")
# and what the demo imports (its client is the mcp SDK's, its scenes are drawn with rich)
DEMO_MODULES = ("mcp", "anyio", "rich")


def _log_to_stderr() -> None:
    """What the proxy's modules log (callgate.mcp, callgate.audit, ...) goes to stderr, one
    line each: stdout is the MCP stream."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("callgate proxy: %(message)s"))
    root = logging.getLogger("callgate")
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _fail(message: str, code: int = 1) -> SystemExit:
    textout.error(message)
    return SystemExit(code)


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def load_policy(policy: str) -> Any:
    """The policy's policy_files.PolicySource: a file (JSON, or YAML by its name), or a
    bundled example name ('crm', 'spec'); a problem is one line placing it in the file."""
    from . import examples
    from .errors import CallgateError
    from .policy_files import PolicySource, read_policy

    if policy in examples.EXAMPLES and not Path(policy).exists():
        return PolicySource(examples.policy(policy))
    try:
        return read_policy(policy)
    except (CallgateError, ValueError) as exc:
        raise _fail(str(exc)) from None


def compile_for(source: Any, semantics: str) -> Any:
    """The compiled policy (source: a PolicySource); an invalid one is one error line."""
    from .errors import CallgateError

    try:
        return source.compile(semantics)
    except (CallgateError, ValueError) as exc:
        raise _fail(str(exc)) from None


def audit_sink(source: str, **options: Any) -> Any:
    """The audit trail's sink for SOURCE (callgate.audit.open_sink); a clear error without it."""
    try:
        from .audit import open_sink
    except ImportError:
        raise _fail("--audit needs the audit trail (callgate.audit.open_sink), which is not available in this "
                    "install") from None
    try:
        return open_sink(source, **options)
    except Exception as exc:
        message = str(exc)
        raise _fail(message if message.startswith("--audit") else f"--audit {source}: {message}", 2) from None


# ---------------------------------------------------------------- checks before anything starts


def _server_command_option(args: argparse.Namespace) -> None:
    """--server-command JSON (a non-empty array of strings) as the server command; given
    with a `-- SERVER_COMMAND` too, it is an error (which one would run?)."""
    if args.server_command_json is None:
        return
    if args.server_command:
        raise _fail("give the server command once: --server-command JSON or -- SERVER_COMMAND", 2)
    try:
        command = json.loads(args.server_command_json)
    except json.JSONDecodeError as exc:
        raise _fail(f"--server-command: not JSON ({exc.msg} at column {exc.colno})", 2) from None
    if not isinstance(command, list) or not command or not all(isinstance(c, str) and c for c in command):
        raise _fail('--server-command: expected a JSON array of non-empty strings, e.g. ["python", "server.py"]', 2)
    args.server_command = command


def _check_modes(args: argparse.Namespace) -> None:
    """Options for the mode that is not the one chosen are refused (they would do nothing)."""
    listening = args.listen is not None
    if not listening:
        given = [_flag(dest) for dest in LISTEN_ONLY if getattr(args, dest) is not None]
        if given:
            raise _fail(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} only to the HTTP front: add "
                        f"--listen HOST:PORT, or remove {'it' if len(given) == 1 else 'them'} (on stdio "
                        f"{'it does' if len(given) == 1 else 'they do'} nothing)", 2)
        if not args.server_command:
            raise _fail("give the server command after --, e.g. callgate proxy --policy P --role R -- python "
                        "server.py", 2)
        return
    if any(getattr(args, dest) for dest in STDIO_ONLY):
        raise _fail("--role, --agent-attr and --principal do not apply with --listen: the identity comes from each "
                    "request's token", 2)
    if bool(args.server_command) == bool(args.upstream):
        raise _fail("with --listen give exactly one upstream: -- SERVER_COMMAND, or --upstream URL", 2)
    if args.session_idle_timeout is not None and not args.session_idle_timeout > 0:
        raise _fail("--session-idle-timeout must be a positive number of seconds", 2)
    missing = [name for name in LISTEN_MODULES + (("httpx",) if args.upstream else ()) if not _importable(name)]
    if missing:
        raise _fail(f"--listen needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
                    f"installed: {EXTRA_HINT}", 2)


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _check_role(data: Any, role: Optional[str], semantics: str) -> None:
    """--role must be one the policy declares: an undeclared role matches no rule, so every
    call would get the default. Under perso semantics (whose engine takes any role) that is
    a warning on stderr instead."""
    declared = data.get("roles") if isinstance(data, dict) else None
    if not role or not isinstance(declared, list) or role in declared:
        return
    names = ", ".join(str(r) for r in declared) or "(none)"
    if semantics == "perso":
        textout.note(f"warning: --role {role!r} is not declared in the policy's roles ({names}): no rule names it, "
                     "every call gets the default")
        return
    raise _fail(f"--role {role!r}: the policy declares no such role; declared roles: {names}", 2)


def _check_pins(spec: Optional[str]) -> None:
    """--pins must be an existing pins file (a missing one would deny every call, silently),
    or a PostgreSQL database that can be read now."""
    if spec is None:
        return
    from .mcp.pins_pg import is_postgres, open_pins

    if is_postgres(spec):
        try:
            open_pins(spec).pins()
        except (OSError, ValueError) as exc:
            raise _fail(f"--pins: {exc}", 2) from None
        return
    pins = Path(spec)
    if not pins.exists():
        raise _fail(f"--pins {pins}: no such file; create it with `callgate pins approve --pins {pins} -- "
                    "SERVER_COMMAND`", 2)
    problem = _pins_problem(pins)
    if problem:
        raise _fail(f"--pins {pins}: {problem}", 2)


def _pins_problem(pins: Path) -> Optional[str]:
    """Why `pins` is not a pins file ({"tools": {name: {"digest": ...}}}), or None."""
    from .mcp.pins import PinStore

    try:
        entries = PinStore(pins).pins()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    except ValueError as exc:
        text = str(exc)
        return "not a pins file (not JSON)" if "pins file" not in text else text.replace(f"{pins}: ", "")
    bad = [name for name, pin in entries.items() if not isinstance(pin, dict) or not isinstance(pin.get("digest"), str)]
    if bad:
        return f"not a pins file (tool {bad[0]!r} has no digest)"
    return None


def _check_audit(audit: Optional[str], listening: bool) -> None:
    """An audit destination the proxy can write: not stdout on stdio (it is the MCP stream),
    and a file only in a directory that exists (the audit trail creates no directories)."""
    if audit is None:
        return
    if audit in ("-", "console"):
        if not listening:
            raise _fail(f"--audit {audit}: on stdio, stdout is the MCP stream; record to a file (--audit audit.jsonl) "
                        "or serve HTTP with --listen", 2)
        return
    if audit.startswith(("http://", "https://", "postgres://", "postgresql://")) or " " in audit:
        return
    parent = Path(audit).parent
    if not parent.is_dir():
        raise _fail(f"--audit {audit}: the directory {parent} does not exist; create it first (the audit trail "
                    "creates no directories)", 2)
    if Path(audit).is_dir():
        raise _fail(f"--audit {audit}: is a directory; name a file in it (e.g. {Path(audit) / 'audit.jsonl'})", 2)


def _identity(role: Optional[str], agent_attr: List[str], principal: Optional[str] = None,
              chain: Any = None) -> Any:
    from .mcp.gate import Identity, parse_attr

    if not role:
        raise _fail("--role is required (the identity comes from the operator, never from the model)", 2)
    try:
        return Identity(role, parse_attr(agent_attr), principal or None, chain)
    except ValueError as exc:
        raise _fail(str(exc), 2) from None


def _shared_state(args: argparse.Namespace) -> dict[str, Any]:
    """What replicas share (and telemetry), from the flags, checked now (one line, exit 2):
    --ledger (spent approval nonces and 2026 request states; PostgreSQL for replicas),
    --approval-state-key (the key 2026 request states are signed with: the same file on every
    replica), --telemetry (OpenTelemetry spans and metrics; GET /metrics on the HTTP front)."""
    out: dict[str, Any] = {"ledger": None, "state_key": None, "telemetry": None}
    if args.ledger:
        from .ledger import open_ledger

        try:
            out["ledger"] = open_ledger(args.ledger)
        except (ValueError, ImportError) as exc:
            raise _fail(str(exc), 2) from None
    if args.approval_state_key:
        try:
            key = Path(args.approval_state_key).read_bytes().strip()
        except OSError as exc:
            raise _fail(f"--approval-state-key {args.approval_state_key}: cannot read: {exc.strerror or exc}", 2) \
                from None
        if len(key) < 32:
            raise _fail(f"--approval-state-key {args.approval_state_key}: at least 32 bytes of secret", 2)
        out["state_key"] = key
    if args.telemetry:
        from .extras import MissingExtra
        from .telemetry import Telemetry

        try:
            out["telemetry"] = Telemetry.with_prometheus()
        except MissingExtra as exc:
            raise _fail(str(exc), 2) from None
    if args.bundle_url and not args.bundle_key:
        raise _fail("--bundle-url needs --bundle-key PUBKEY.pem: a bundle is activated only when its signature "
                    "verifies", 2)
    return out


def _start_bundles(engine: Any, args: argparse.Namespace) -> None:
    """Poll --bundle-url for signed policy bundles (bundles.Poller): each one that verifies
    under --bundle-key and passes its own cases replaces the policy, atomically."""
    from .bundles import Poller, engine_activator, load_public_keys

    try:
        keys = load_public_keys(args.bundle_key)
        poller = Poller(args.bundle_url, keys, engine_activator(engine), interval=args.bundle_interval,
                        on_refused=lambda why: log.error("policy bundle refused: %s", why))
    except (ValueError, OSError) as exc:
        raise _fail(f"--bundle-url: {exc}", 2) from None
    poller.start()


def _chain_source(args: argparse.Namespace) -> Any:
    """The stdio proxy's principal chain: --chain-file, else CALLGATE_CHAIN, else None; a
    chain needs --trust-issuer (it is verified, never trusted as given)."""
    from .mcp.chains import ChainSourceError, configured_chain

    try:
        source = configured_chain(args.chain_file)
    except ChainSourceError as exc:
        raise _fail(str(exc), 2) from None
    if (source is not None or args.chain_from_meta) and not args.trust_issuer:
        raise _fail("a principal chain (--chain-file, CALLGATE_CHAIN or --chain-from-meta) needs --trust-issuer "
                    "ISS=PUBKEY.pem: it is verified, never trusted as given", 2)
    return source


def _resolver(spec: Optional[str], real_paths: Sequence[str] = (), zones: Sequence[str] = (),
              base: Optional[str] = None) -> Any:
    """--resolver MODULE:FUNCTION, and around it the ready-made path resolver when
    --real-path names arguments (callgate.realpaths)."""
    from .mcp.gate import load_resolver
    from .realpaths import RealPaths, zones_from

    try:
        resolver = load_resolver(spec) if spec else None
        if not real_paths:
            if zones or base is not None:
                raise ValueError("--path-zone and --path-base go with --real-path ARGUMENT")
            return resolver
        if base is not None and not os.path.isdir(base):
            raise ValueError(f"--path-base {base}: not a directory")
        return RealPaths(real_paths, zones_from(zones), base=base, then=resolver)
    except ValueError as exc:
        raise _fail(str(exc), 2) from None


def _approver_keys(items: List[str]) -> list[tuple[str, bytes]]:
    """--trust-approver NAME=PUBLIC_KEY.pem, read."""
    keys = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise _fail(f"--trust-approver must be NAME=PUBLIC_KEY.pem, not {item!r}", 2)
        try:
            keys.append((name, Path(path).read_bytes()))
        except OSError as exc:
            raise _fail(f"--trust-approver {name}: cannot read {path}: {exc.strerror}", 2) from None
    return keys


def _check_approver_keys(keys: list[tuple[str, bytes]]) -> None:
    """Each key must be one the engine will take (an Ed25519 public key, one name per key),
    checked with a keyring of its own: the engine's ledger is made, and announced, only once
    the proxy starts."""
    if not keys:
        return
    from .approvals import Keyring

    ring = Keyring()
    for name, pem in keys:
        try:
            ring.trust(name, pem)
        except (ValueError, TypeError, AttributeError) as exc:
            raise _fail(f"--trust-approver {name}: {exc}", 2) from None


def _trust_approvers(engine: Any, keys: list[tuple[str, bytes]]) -> None:
    """Approvals signed by these keys count."""
    for name, pem in keys:
        try:
            engine.trust_approver(name, pem)
        except (ValueError, TypeError, AttributeError) as exc:
            raise _fail(f"--trust-approver {name}: {exc}", 2) from None


def _elevation(max_approvals: int, timeout: float, windows: Sequence[str] = (), keepalive: float = 15.0,
               client_wait: float = 60.0) -> Any:
    from .mcp.elevate import Elevation

    per_tier: dict[str, float] = {}
    for item in windows:
        tier, sep, seconds = item.partition("=")
        try:
            if not sep or not tier:
                raise ValueError
            per_tier[tier] = float(seconds)
        except ValueError:
            raise _fail(f"--approval-window must be TIER=SECONDS, not {item!r}", 2) from None
    try:
        return Elevation(max_approvals=max_approvals, timeout=timeout, windows=per_tier, keepalive=keepalive,
                         client_wait=client_wait)
    except ValueError as exc:
        raise _fail(f"--elicit-max-approvals / --elicit-timeout / --approval-window / --approval-keepalive / "
                    f"--client-wait: {exc}", 2) from None


def _limits(max_in_flight: int, request_timeout: float) -> Any:
    from .mcp.session import Limits

    try:
        return Limits(max_in_flight=max_in_flight, request_timeout=request_timeout)
    except ValueError as exc:
        raise _fail(f"--max-in-flight / --request-timeout: {exc}", 2) from None


def _front(args: argparse.Namespace) -> tuple[Any, Any]:
    """The HTTP front's token verification and limits, from files and flags (read now, so
    that a bad key is refused before anything starts)."""
    from .mcp.http_front import FrontLimits, parse_listen
    from .mcp.jwt_auth import JwtConfig

    if (args.jwt_key is None) == (args.jwks is None):
        raise _fail("--listen needs exactly one of --jwt-key or --jwks (requests are authenticated)", 2)
    if not args.jwt_issuer or not args.jwt_audience:
        raise _fail("--listen needs --jwt-issuer and --jwt-audience", 2)
    try:
        parse_listen(args.listen)
        jwt_config = JwtConfig.from_files(key=args.jwt_key, jwks=args.jwks, issuer=args.jwt_issuer,
                                          audience=args.jwt_audience, algorithm=args.jwt_algorithm,
                                          role_claim=args.role_claim, attr_claims=args.attr_claim)
        jwt_config.chain = bool(args.trust_issuer)   # the bearer is then the chain too
        limits = FrontLimits(max_body=args.max_body, max_sessions=args.max_sessions, head_timeout=args.head_timeout,
                             body_timeout=args.body_timeout,
                             max_sessions_per_principal=args.max_sessions_per_principal)
    except OSError as exc:
        raise _fail(f"{exc.filename or 'a key file'}: cannot read: {exc.strerror or exc}", 2) from None
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    return jwt_config, limits


log = logging.getLogger("callgate.proxy")


# ---------------------------------------------------------------- proxy


def proxy(args: argparse.Namespace) -> int:
    """`callgate proxy`: check the setup, then relay MCP (stdio, or Streamable HTTP with
    --listen) deciding every tools/call; returns when the session ends."""
    from .engine import Engine
    from .mcp.gate import Gate

    _server_command_option(args)
    _check_modes(args)
    listening = args.listen is not None
    for dest, default in LISTEN_ONLY.items():  # the documented defaults, now that "not given" was seen
        if getattr(args, dest) is None:
            setattr(args, dest, default)
    elevation = _elevation(args.elicit_max_approvals, args.elicit_timeout, args.approval_window,
                           args.approval_keepalive, args.client_wait)
    limits = _limits(args.max_in_flight, args.request_timeout)
    source = load_policy(args.policy)
    compiled = compile_for(source, args.semantics)
    identity = None
    if not listening:
        _check_role(source.data, args.role, args.semantics)
        identity = _identity(args.role, args.agent_attr, args.principal, _chain_source(args))
    elif args.chain_file or args.chain_from_meta:
        raise _fail("--chain-file and --chain-from-meta are stdio options; with --listen each request's bearer "
                    "token is its chain (give --trust-issuer)", 2)
    issuers = trusted_issuers(args.trust_issuer)
    _check_pins(args.pins)
    _check_audit(args.audit, listening)
    resolver = _resolver(args.resolver, args.real_path, args.path_zone, args.path_base)
    approvers = _approver_keys(args.trust_approver)
    _check_approver_keys(approvers)  # a bad key is refused before the audit trail starts
    front = _front(args) if listening else None

    _log_to_stderr()
    # durable: a call waits for its decision's event, and a failing sink stops calls at once
    # (on_failure="deny") instead of letting them wait for a sink that may not come back; an
    # HTTP collector keeps its fsynced local spool, which counts as durable
    remote = args.audit is not None and args.audit.startswith(("http://", "https://"))
    options = {"on_failure": "deny"} if args.audit_mode == "durable" and not remote else {}
    shared = _shared_state(args)   # ledger, approval-state key, telemetry, bundle poller parts
    engine = Engine(compiled, audit=audit_sink(args.audit, **options) if args.audit else None,
                    ledger=shared["ledger"])
    try:
        _trust_approvers(engine, approvers)
        for issuer, key in issuers:
            engine.trust_issuer(issuer, key, **({"audience": args.chain_audience} if args.chain_audience else {}))
        watcher = None
        if Path(args.policy).is_file():   # reloaded when it changes (unless --no-reload) and on SIGHUP
            from .reloading import CHECK_INTERVAL, PolicyWatcher

            watcher = PolicyWatcher(engine, args.policy, interval=float("inf") if args.no_reload else CHECK_INTERVAL)
        from .mcp.pins import policy_pins
        from .mcp.pins_pg import open_pins

        try:   # --pins, else the pins the policy itself requires ("pins")
            pins = open_pins(args.pins) if args.pins else policy_pins(compiled, args.policy if Path(args.policy).is_file()
                                                                      else None)
        except ValueError as exc:
            raise _fail(str(exc), 2) from None
        telemetry = shared["telemetry"]
        if telemetry is not None:
            telemetry.watch_recorder(engine.recorder)
        gate = Gate(engine, resolver, pins, trusted=args.trusted,
                    chain_from_meta=args.chain_from_meta, mode=args.mode, denial_detail=args.denial_detail,
                    watcher=watcher, telemetry=telemetry, state_key=shared["state_key"], state_ledger=shared["ledger"])
        if args.bundle_url:
            _start_bundles(engine, args)
        gate.durable = args.audit is not None and args.audit_mode == "durable"
        if not listening:
            from .mcp.proxy import StdioProxy

            # (identity is set above when not listening)
            return StdioProxy(gate, identity, args.server_command,  # type: ignore[arg-type]
                              elevation=elevation, limits=limits).run()
        from .mcp.http_front import IDLE_TIMEOUT, serve

        jwt_config, front_limits = front  # type: ignore[misc]  # (made above when listening)
        try:
            return serve(gate, jwt_config, args.listen, command=args.server_command or None, upstream=args.upstream,
                         idle_timeout=IDLE_TIMEOUT if args.session_idle_timeout is None else args.session_idle_timeout,
                         elevation=elevation, limits=front_limits, session_limits=limits,
                         allowed_hosts=args.allow_host, allowed_origins=args.allow_origin)
        except ValueError as exc:
            raise _fail(str(exc), 2) from None
    finally:
        engine.close()


# ---------------------------------------------------------------- pins


def _check_pins_directory(pins: Path) -> None:
    if not pins.parent.is_dir():
        raise _fail(f"--pins {pins}: the directory {pins.parent} does not exist; create it first", 2)


def pins_approve(args: argparse.Namespace) -> int:
    """`callgate pins approve`: start the server, list its tools and pin their definitions."""
    from .mcp.rawclient import RawClientError, list_tools_of

    if not args.server_command:
        raise _fail("give the server command after --, e.g. callgate pins approve --pins pins.json -- python "
                    "server.py", 2)
    from .mcp.pins_pg import is_postgres, open_pins

    if not is_postgres(args.pins):
        _check_pins_directory(Path(args.pins))
        if Path(args.pins).exists():
            problem = _pins_problem(Path(args.pins))
            if problem:
                raise _fail(f"--pins {args.pins}: {problem}", 2)
    try:
        tools = list_tools_of(args.server_command)
        changes = open_pins(args.pins).approve(tools, set(args.tool) if args.tool else None)
    except (RawClientError, OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    missing = set(args.tool) - {name for name, _, _ in changes}
    if missing:
        raise _fail(f"the server has no tool named {', '.join(sorted(missing))}")
    for name, old, new in changes:
        state = "unchanged" if old == new else ("approved" if not old else "re-approved (changed)")
        textout.note(f"{name}: {state} {new[:23]}…")
    return 0


def pins_list(args: argparse.Namespace) -> int:
    """`callgate pins list`: print the pinned tools and their digests."""
    from .mcp.pins_pg import open_pins

    _check_pins(args.pins)
    try:
        entries = open_pins(args.pins).pins()
    except (OSError, ValueError) as exc:
        raise _fail(str(exc), 2) from None
    for name, pin in sorted(entries.items()):
        sys.stdout.write(f"{name}\t{pin.get('digest')}\t{pin.get('approved_at', '')}\n")
    return 0


def pins_check(args: argparse.Namespace) -> int:
    """`callgate pins check`: compare the server's tools with the pins; exit 1 if any differ."""
    from .mcp.pins import tool_digest
    from .mcp.pins_pg import open_pins
    from .mcp.rawclient import RawClientError, list_tools_of

    if not args.server_command:
        raise _fail("give the server command after --, e.g. callgate pins check --pins pins.json -- python "
                    "server.py", 2)
    _check_pins(args.pins)
    try:
        tools = list_tools_of(args.server_command)
        store = open_pins(args.pins)
    except (RawClientError, OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    bad = 0
    for t in tools:
        problem = store.problem(t["name"], tool_digest(t))
        bad += problem is not None
        sys.stdout.write(f"{t['name']}: {problem or 'ok'}\n")
    return 1 if bad else 0


# ---------------------------------------------------------------- demo


def demo(args: argparse.Namespace) -> int:
    """`callgate demo`: play the CRM story (or --policy/--script) through the proxy; needs the mcp extra."""
    if (args.policy is None) != (args.script is None):
        raise _fail("--policy and --script go together", 2)
    # the demo plays through the mcp SDK and shows its scenes with rich: both come with the
    # mcp extra, which a base install lacks
    missing = [name for name in DEMO_MODULES if not _importable(name)]
    if missing:
        raise _fail(f"callgate demo needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
                    f"installed: {EXTRA_HINT}", 2)
    try:
        from .demo import DemoError, run_demo
    except ModuleNotFoundError as exc:
        raise _fail(f"callgate demo needs {exc.name}, which is not installed: {EXTRA_HINT}", 2) from None
    try:
        return run_demo(policy=args.policy, script=args.script, server=args.server, resolver=args.resolver)
    except DemoError as exc:
        raise _fail(str(exc)) from None


# ---------------------------------------------------------------- the parsers


def _number(parser: Any, flag: str, kind: type, default: Any, help: str) -> None:
    parser.add_argument(flag, type=kind, default=default, metavar="N" if kind is int else "SECONDS", help=help)


def register(commands: Commands) -> None:
    """Add `callgate proxy`, `callgate pins ...` and `callgate demo` to the command line."""
    p = add_command(commands, "proxy", proxy, """Relay MCP between a client and a server, deciding every tools/call by the policy.

    callgate proxy --policy P --role R [options] -- SERVER_COMMAND [ARGS...]          (stdio)
    callgate proxy --policy P --listen 127.0.0.1:PORT --jwt-key K --jwt-issuer I
                   --jwt-audience A (-- SERVER_COMMAND | --upstream URL)              (Streamable HTTP)

A setup the proxy cannot honour is refused before anything starts: options of the other
mode, a --role the policy does not declare, a missing --pins file, --audit - on stdio, an
--audit file in a directory that does not exist. See docs/mcp.md.""")
    p.add_argument("server_command", nargs="*", metavar="SERVER_COMMAND", help="-- SERVER_COMMAND [ARGS...]")
    p.add_argument("--server-command", dest="server_command_json", metavar="JSON",
                   help='the server command as a JSON array, ["npx", "-y", "server"]: the form for hosts whose '
                        'own argument parsing takes the --')
    p.add_argument("--policy", required=True, help="policy file, or a bundled example (crm)")
    add_semantics(p)
    p.add_argument("--resolver", metavar="MODULE:FUNCTION", help="returns each call's resource attributes")
    p.add_argument("--real-path", action="append", default=[], metavar="ARGUMENT",
                   help="an argument (name or /json/pointer) holding a path: its real path (symlinks followed), "
                        "zone and existence go to ResourceAttributes /paths/ARGUMENT (repeatable; docs/arguments.md)")
    p.add_argument("--path-zone", action="append", default=[], metavar="NAME=ROOT",
                   help="a named root for --real-path: /paths/ARGUMENT/zone is the innermost zone holding the "
                        "real path (repeatable)")
    p.add_argument("--path-base", metavar="DIR", help="relative paths are resolved against DIR (default: the "
                   "current directory)")
    p.add_argument("--pins", metavar="FILE|DSN", help="approved tool definitions (rug-pull protection): a file, or a "
                   "PostgreSQL DSN shared by replicas; "
                   "create it with `callgate pins approve`")
    p.add_argument("--trusted", action="store_true", help="trust the server's tool annotations (readOnlyHint, "
                   "destructiveHint) to set tool tiers; untrusted, they can only make a tool stricter")
    p.add_argument("--trust-approver", action="append", default=[], metavar="NAME=PUBLIC_KEY.pem",
                   help='signed approvals by NAME in _meta["callgate/approvals"] count (repeatable)')
    _number(p, "--elicit-max-approvals", int, 1, "the most approvals an Elevate may need for the proxy to ask the "
            "client's user (elicitation); 0: never (default 1)")
    _number(p, "--elicit-timeout", float, 300.0, "seconds to wait for the user's answer (default 300); on "
            "2026-07-28, how long the approval's requestState stays valid")
    p.add_argument("--approval-window", action="append", default=[], metavar="TIER=SECONDS",
                   help="the approval window of the tools of one tier instead of --elicit-timeout (repeatable)")
    _number(p, "--approval-keepalive", float, 15.0, "seconds between progress notifications while a call that "
            "has a progressToken waits for approval; 0: none (default 15)")
    _number(p, "--client-wait", float, 60.0, "seconds a client waits for a call that gets no progress (the "
            "TypeScript SDK's default is 60): a held call without a progressToken is denied a little before; "
            "0: no bound (default 60)")
    p.add_argument("--audit", metavar="SOURCE", help="record every decision: a .jsonl or .db file (in an existing "
                   "directory), a postgres DSN, an http(s) URL; '-' (stdout) only with --listen")
    p.add_argument("--audit-mode", type=choice("durable", "async"), default="durable", metavar="durable|async",
                   help="durable (default): forward a call only once its decision is durable in the audit trail "
                   "(group commit); async: forward at once, the decision is written behind it (docs/audit.md says "
                   "what an unclean stop can lose)")
    _number(p, "--max-in-flight", int, 4096, "requests that may wait for an answer at once; more get an error "
            "(default 4096)")
    _number(p, "--request-timeout", float, 3600.0, "seconds a request waits for its answer before the proxy "
            "answers it with an error (default 3600)")

    stdio = p.add_argument_group("stdio (the identity is the operator's)")
    stdio.add_argument("--role", help="the role every call is decided for; one the policy declares")
    stdio.add_argument("--agent-attr", action="append", default=[], metavar="KEY=VALUE",
                       help="an agent attribute (repeatable); VALUE is JSON when it parses, else a string")
    stdio.add_argument("--chain-file", metavar="PATH", help="the caller's principal chain token, in a file re-read "
                       "when it changes (else the CALLGATE_CHAIN environment variable); needs --trust-issuer")
    stdio.add_argument("--chain-from-meta", action="store_true", help="also take a per-request chain from "
                       'params._meta["callgate/chain"] (verified like any other)')
    stdio.add_argument("--principal", help="who the stdio client is: recorded in the audit trail, bound by "
                       "approvals, named as approver of elicitations")

    p.add_argument("--mode", type=choice("enforce", "shadow"), default="enforce", metavar="enforce|shadow",
                   help="shadow: decide and record every call (the event says what enforcement would have done), "
                        "then forward it anyway")
    p.add_argument("--denial-detail", type=choice("full", "rule", "generic"), default="full",
                   metavar="full|rule|generic", help="what the model reads of a denial: the full reason (default), "
                                                     "only the rule, or a generic line; the audit trail keeps it all")
    p.add_argument("--no-reload", action="store_true", help="reload the policy file only on SIGHUP, not when it "
                   "changes (by default: both)")
    p.add_argument("--trust-issuer", action="append", default=[], metavar="ISS=PUBKEY.pem",
                   help="verify principal chain tokens of issuer ISS with this public key (repeatable)")
    p.add_argument("--ledger", metavar="DSN|memory", help="where spent approvals and 2026 request states are kept: "
                   "a PostgreSQL DSN shared by replicas (default: this process's memory)")
    p.add_argument("--approval-state-key", metavar="FILE", help="the secret (32+ bytes) 2026 request states are "
                   "signed with: the same file on every replica (default: a random key of this process)")
    p.add_argument("--telemetry", action="store_true", help="OpenTelemetry spans and metrics per decision (the "
                   "otel extra); with --listen, GET /metrics serves them to Prometheus")
    p.add_argument("--bundle-url", metavar="URL", help="poll this URL for signed policy bundles (callgate bundle "
                   "build); a bundle that verifies and passes its own cases replaces the policy")
    p.add_argument("--bundle-key", action="append", default=[], metavar="PUBKEY.pem",
                   help="a key bundles may be signed with (repeatable)")
    p.add_argument("--bundle-interval", type=float, default=10.0, metavar="SECONDS", help="seconds between polls")
    p.add_argument("--chain-audience", metavar="AUD", help="the audience chain tokens must name (RFC 8707: this "
                   "resource)")
    http = p.add_argument_group("Streamable HTTP (--listen; the identity is each request's token)")
    http.add_argument("--listen", metavar="HOST:PORT", help="serve Streamable HTTP, e.g. 127.0.0.1:8765")
    http.add_argument("--upstream", metavar="URL", help="an HTTP MCP server to relay to (instead of -- SERVER_COMMAND)")
    http.add_argument("--jwt-key", type=Path, metavar="FILE",
                      help="PEM public key (or HS secret file) for bearer tokens")
    http.add_argument("--jwks", type=Path, metavar="FILE", help="JWKS file for bearer tokens")
    http.add_argument("--jwt-issuer", metavar="ISS", help="the issuer tokens must have")
    http.add_argument("--jwt-audience", metavar="AUD", help="the audience tokens must have")
    http.add_argument("--jwt-algorithm", metavar="ALG", help="the one algorithm accepted (default RS256)")
    http.add_argument("--role-claim", metavar="CLAIM", help="the claim holding the role (default role)")
    http.add_argument("--attr-claim", action="append", metavar="CLAIM[=ATTR]",
                      help="copy a claim into agent attributes (repeatable)")
    http.add_argument("--session-idle-timeout", type=float, metavar="SECONDS",
                      help="close a session idle this many seconds (default 1800)")
    http.add_argument("--max-sessions", type=int, metavar="N", help="open sessions in all; the least recently used "
                      "idle one is closed to make room (default 64)")
    http.add_argument("--max-sessions-per-principal", type=int, metavar="N",
                      help="open sessions of one token subject (default 8)")
    http.add_argument("--max-body", type=int, metavar="BYTES", help="bytes in one request body (default 4194304)")
    http.add_argument("--head-timeout", type=float, metavar="SECONDS", help="seconds for a request head to arrive, "
                      "else the connection is closed (default 10)")
    http.add_argument("--body-timeout", type=float, metavar="SECONDS", help="seconds for a request body to arrive, "
                      "else 408 (default 30)")
    http.add_argument("--allow-host", action="append", metavar="HOST:PORT",
                      help="a Host header to serve besides the listen address (repeatable)")
    http.add_argument("--allow-origin", action="append", metavar="URL",
                      help="a browser Origin allowed to call the front (repeatable; by default only its own)")

    pins = add_group(commands, "pins", "Approve and inspect pinned tool definitions (rug-pull protection).")
    p = add_command(pins, "approve", pins_approve, """Start the server, list its tools and pin their current definitions.

    callgate pins approve --pins pins.json [--tool NAME ...] -- SERVER_COMMAND [ARGS...]""")
    p.add_argument("server_command", nargs="*", metavar="SERVER_COMMAND", help="-- SERVER_COMMAND [ARGS...]")
    p.add_argument("--pins", required=True, metavar="FILE|DSN", help="the pins file (or PostgreSQL DSN) the proxy reads "
                   "(created if missing, in an existing directory)")
    p.add_argument("--tool", action="append", default=[], metavar="NAME",
                   help="approve only this tool (repeatable); default all")
    p = add_command(pins, "list", pins_list, "Print the approved tools and their digests.")
    p.add_argument("--pins", required=True, metavar="FILE|DSN", help="the pins file, or a PostgreSQL DSN")
    p = add_command(pins, "check", pins_check, """Compare the server's current definitions with the pins; exit 1 if any differ.

    callgate pins check --pins pins.json -- SERVER_COMMAND [ARGS...]""")
    p.add_argument("server_command", nargs="*", metavar="SERVER_COMMAND", help="-- SERVER_COMMAND [ARGS...]")
    p.add_argument("--pins", required=True, metavar="FILE|DSN", help="the pins file, or a PostgreSQL DSN")

    p = add_command(commands, "demo", demo, """Play the CRM story through a real MCP server behind the proxy (no API key needed).

Needs the mcp extra: pip install 'callgate[mcp]'.""")
    p.add_argument("--policy", type=Path, help="your policy (default: the CRM example)")
    p.add_argument("--script", type=Path, help="your scenes: a cases file")
    p.add_argument("--server", metavar="COMMAND", help="server command for --script (default: the CRM server)")
    p.add_argument("--resolver", metavar="MODULE:FUNCTION", help="default: the CRM's")
