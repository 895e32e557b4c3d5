"""`callgate serve POLICY --listen HOST:PORT [--workers N]`: the decision service
(callgate.service) under uvicorn, for callers in any language (docs/deploy.md).

With --workers N > 1, uvicorn runs N processes (and starts a new one when one dies); each
builds its own engine from the same configuration, passed in the environment variable
CALLGATE_SERVE_CONFIG. The workers share what must be shared: the approval ledger
(--ledger, PostgreSQL) and the audit trail (--audit, PostgreSQL or HTTP), so several
workers refuse a memory ledger with approvers and a file audit trail. With --audit, every
decision is durable in the trail before its answer is sent (--audit-mode durable, the
default): a worker killed mid-request loses no decision it answered. With --telemetry, GET
/metrics on any worker serves every live worker's metrics (callgate.worker_metrics).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import orjson

from . import textout
from .cli import add_command, choice

if TYPE_CHECKING:
    from .cli import Commands

CONFIG_ENV = "CALLGATE_SERVE_CONFIG"


def _fail(message: str, code: int = 2) -> SystemExit:
    textout.error(message)
    return SystemExit(code)


def parse_listen(listen: str) -> tuple[str, int]:
    """--listen HOST:PORT as (host, port); ValueError (one line) otherwise."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen must be HOST:PORT (e.g. 127.0.0.1:8181), not {listen!r}")
    return host.strip("[]"), int(port)


def _pairs(specs: Optional[list[str]], option: str, what: str) -> list[tuple[str, str]]:
    out = []
    for spec in specs or []:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise _fail(f"{option} {spec!r}: expected {what}")
        if not Path(path).is_file():
            raise _fail(f"{option} {spec!r}: {path} is not a file")
        out.append((name, path))
    return out


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The workers' configuration from the command line, checked (one-line errors, exit 2)."""
    from .ledger import is_postgres_dsn

    try:
        host, port = parse_listen(args.listen)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if args.workers < 1:
        raise _fail(f"--workers must be 1 or more, not {args.workers}")
    if not Path(args.policy).is_file():
        raise _fail(f"{args.policy}: no such policy file")
    approvers = _pairs(args.approver, "--approver", "NAME=PUBKEY.pem")
    issuers = _pairs(args.trust_issuer, "--trust-issuer", "ISS=PUBKEY.pem")
    ledger = args.ledger or "memory"
    if ledger != "memory" and not is_postgres_dsn(ledger):
        raise _fail(f"--ledger {ledger!r}: expected 'memory' or a PostgreSQL DSN (postgresql://...)")
    if args.workers > 1 and approvers and ledger == "memory":
        raise _fail("--approver with --workers > 1 needs a shared ledger: --ledger postgresql://... (a ledger in "
                    "memory is one per worker, so an approval could be spent once in each)")
    audit = args.audit
    if audit is not None and args.workers > 1 and not (is_postgres_dsn(audit) or audit.startswith(("http://",
                                                                                                    "https://"))):
        raise _fail(f"--audit {audit}: with --workers > 1 the workers share the audit trail: a PostgreSQL DSN or "
                    "an http(s) URL")
    keys = [str(Path(k)) for k in args.bundle_key or []]
    if args.bundle_url and not keys:
        raise _fail("--bundle-url needs --bundle-key PUBKEY.pem: a bundle is activated only with a trusted signature")
    for k in keys:
        if not Path(k).is_file():
            raise _fail(f"--bundle-key {k}: no such file")
    if args.audit_flush_interval is not None and not 0 < args.audit_flush_interval <= 10:
        raise _fail("--audit-flush-interval must be more than 0 and at most 10 seconds")
    token = None
    if args.auth_token_file:
        try:
            token = Path(args.auth_token_file).read_text().strip()
        except OSError as exc:
            raise _fail(f"--auth-token-file {args.auth_token_file}: cannot read: {exc.strerror or exc}") from None
        if len(token) < 32 or not token.isascii() or not token.isprintable() or " " in token:
            raise _fail(f"--auth-token-file {args.auth_token_file}: the token must be at least 32 printable ASCII "
                        "characters without spaces")
    if not args.poll_interval > 0:
        raise _fail("--poll-interval must be a positive number of seconds")
    return {"policy": str(Path(args.policy).resolve()), "semantics": args.semantics, "host": host, "port": port,
            "workers": args.workers, "audit": audit, "audit_mode": args.audit_mode,
            "audit_flush_interval": args.audit_flush_interval, "ledger": ledger,
            "approvers": approvers, "issuers": issuers, "telemetry": args.telemetry,
            "public_url": args.public_url or f"http://{host if ':' not in host else f'[{host}]'}:{port}",
            "bundle_url": args.bundle_url, "bundle_keys": keys, "poll_interval": args.poll_interval,
            # the file, not the token: the configuration travels in the workers' environment
            "auth_token_file": None if token is None else str(Path(args.auth_token_file).resolve())}


def build_app(config: dict[str, Any]) -> Any:
    """One worker's application from the configuration: its engine (with the audit trail),
    ledger, approvers, chain issuers, telemetry and bundle poller."""
    from .engine import Engine
    from .service import Decider, make_app

    options: dict[str, Any] = {}
    if config.get("audit"):
        from .audit import open_sink

        durable = config.get("audit_mode", "durable") == "durable"
        remote = config["audit"].startswith(("http://", "https://"))
        sink_options: dict[str, Any] = {"durable": True, "on_failure": "deny"} if durable and not remote else {}
        if config.get("audit_flush_interval") is not None:
            sink_options["flush_interval"] = config["audit_flush_interval"]
        options["audit"] = open_sink(config["audit"], **sink_options)
    engine = Engine.from_file(config["policy"], config.get("semantics", "strict"), **options)
    keyring = ledger = trust = None
    if config.get("approvers"):
        from .approvals import Keyring
        from .ledger import open_ledger

        keyring = Keyring()
        for name, path in config["approvers"]:
            keyring.trust(name, Path(path).read_text())
        ledger = open_ledger(config.get("ledger"))
    if config.get("issuers"):
        from .principals import Trust

        trust = Trust()
        for iss, path in config["issuers"]:
            trust.trust_issuer(iss, Path(path))
    telemetry = None
    metrics = None
    if config.get("telemetry"):
        from .telemetry import Telemetry

        telemetry = Telemetry.with_prometheus()
        metrics = telemetry.exposition
        telemetry.watch_recorder(engine.recorder)
    decider = Decider(engine, ledger=ledger, keyring=keyring, trust=trust, telemetry=telemetry)
    starts: list[Any] = []
    stops: list[Any] = [engine.close]
    if telemetry is not None and config.get("metrics_dir"):   # --workers N: one scrape for all of them
        from .worker_metrics import SharedExposition

        tel = telemetry
        share = SharedExposition(config["metrics_dir"], lambda: tel.exposition()[0])
        metrics = share.exposition
        starts.append(share.start)
        stops.append(share.stop)
    if config.get("bundle_url"):
        from .bundles import Poller, engine_activator, load_public_keys

        poller = Poller(config["bundle_url"], load_public_keys(config["bundle_keys"]),
                        engine_activator(engine, decider.activated), interval=config.get("poll_interval", 10.0),
                        on_refused=lambda why: decider.activated(None, why))
        starts.append(poller.start)
        stops.insert(0, poller.stop)
    return make_app(decider, public_url=config["public_url"], metrics=metrics, on_startup=starts, on_shutdown=stops,
                    auth_token=Path(config["auth_token_file"]).read_text().strip()
                    if config.get("auth_token_file") else None)


def worker_app() -> Any:
    """uvicorn's factory in each worker process: the app from CALLGATE_SERVE_CONFIG."""
    return build_app(orjson.loads(os.environ[CONFIG_ENV]))


def serve_cmd(args: argparse.Namespace) -> int:
    """Run the decision service until interrupted."""
    from .extras import require

    require("uvicorn", "callgate serve", "service")
    require("starlette", "callgate serve", "service")
    import uvicorn

    config = config_from_args(args)
    os.environ[CONFIG_ENV] = orjson.dumps(config).decode()
    if config["workers"] == 1:
        try:
            app = build_app(config)
        except Exception as exc:   # a policy, key or sink that cannot be used: one line, exit 1
            raise _fail(f"cannot start: {exc}", 1) from None
        uvicorn.run(app, host=config["host"], port=config["port"], log_level="warning", access_log=False)
    else:
        try:   # the workers build their own; this finds a broken configuration before they start
            build_app({**config, "audit": None, "bundle_url": None, "approvers": config["approvers"],
                       "ledger": "memory"})
        except Exception as exc:
            raise _fail(f"cannot start: {exc}", 1) from None
        metrics_dir = tempfile.mkdtemp(prefix="callgate-metrics-") if config.get("telemetry") else None
        os.environ[CONFIG_ENV] = orjson.dumps({**config, "metrics_dir": metrics_dir}).decode()
        try:
            uvicorn.run("callgate.serve_cli:worker_app", factory=True, host=config["host"], port=config["port"],
                        workers=config["workers"], log_level="warning", access_log=False)
        finally:
            if metrics_dir is not None:
                shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def register(commands: "Commands") -> None:
    """Add `callgate serve` to the command line (cli.build_parser)."""
    p = add_command(commands, "serve", serve_cmd, """Serve decisions over HTTP: the OpenID AuthZEN Authorization API 1.0
(POST /access/v1/evaluation, /access/v1/evaluations, GET /.well-known/authzen-configuration)
and a plain JSON endpoint (POST /v1/decide); GET /v1/status. See docs/deploy.md.""")
    p.add_argument("policy", metavar="POLICY", help="the policy file (JSON or YAML)")
    p.add_argument("--listen", required=True, metavar="HOST:PORT", help="where to listen (e.g. 127.0.0.1:8181)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes (default 1)")
    p.add_argument("--semantics", type=choice("strict", "perso"), default="strict", metavar="strict|perso",
                   help="strict or perso (default strict)")
    p.add_argument("--audit", metavar="SOURCE", help="record every decision: a PostgreSQL DSN, an http(s) URL, or "
                   "(one worker) a .jsonl or .db file")
    p.add_argument("--audit-mode", type=choice("durable", "async"), default="durable", metavar="durable|async",
                   help="durable (default): answer only once the decision is durable in the trail")
    p.add_argument("--audit-flush-interval", type=float, metavar="SECONDS",
                   help="how long the audit writer gathers a batch (default 0.01; durable answers never wait for it)")
    p.add_argument("--ledger", metavar="memory|DSN", help="where approvals are spent (default memory; a PostgreSQL "
                   "DSN to share it between workers and replicas)")
    p.add_argument("--approver", action="append", metavar="NAME=PUBKEY.pem", help="trust this approver (repeatable)")
    p.add_argument("--trust-issuer", action="append", metavar="ISS=PUBKEY.pem",
                   help="verify principal chains from this issuer (repeatable)")
    p.add_argument("--auth-token-file", metavar="FILE", help="callers must send Authorization: Bearer <the token "
                   "in FILE> (every endpoint but the metadata document)")
    p.add_argument("--telemetry", action="store_true", help="OpenTelemetry spans and metrics, and GET /metrics")
    p.add_argument("--public-url", metavar="URL", help="the base URL callers use (the metadata document names it)")
    p.add_argument("--bundle-url", metavar="URL", help="poll a signed policy bundle here (callgate bundle build)")
    p.add_argument("--bundle-key", action="append", metavar="PUBKEY.pem", help="a key bundles may be signed with")
    p.add_argument("--poll-interval", type=float, default=10.0, metavar="SECONDS", help="bundle poll interval")


