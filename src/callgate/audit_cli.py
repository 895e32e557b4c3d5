"""`callgate audit ...` (tail, query, stats, verify, checkpoint, keygen) and `callgate replay`.

Registered by cli.py through register(commands). Exit status: 0 fine, 1 the log does not
verify (or replay found changes), 2 bad usage or a source that cannot be used: a file that
is not an audit log, a database that cannot be reached, a missing driver (its extra named)."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Mapping, Optional, Set

import orjson

from . import textout
from .language import rule_name
from .cli import add_command, add_group, add_semantics, choice, count, why_unwritable

if TYPE_CHECKING:
    from .cli import Commands

DECISIONS = ("Allow", "Deny", "Elevate")
SOURCE_HELP = "a .db or .jsonl audit log, or a postgres DSN"


def _fail(message: str, code: int = 2) -> SystemExit:
    textout.error(message)
    return SystemExit(code)


# ---------------------------------------------------------------- the source


def _source(spec: str, table: Optional[str]) -> Any:
    """The audit log SPEC names, checked before it is read: it exists, it is an audit log (not
    a policy or any other file), a database is reachable and its driver installed."""
    from .audit.source import Source

    try:
        src = Source(spec, table)
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    except ImportError as exc:  # callgate.extras: the driver's extra, named
        raise _fail(str(exc)) from None
    if table is not None and src.kind != "postgres":
        kind = "SQLite" if src.kind == "sqlite" else "JSONL"
        raise _fail(f"--table applies to a PostgreSQL source; {spec} is a {kind} log (remove --table)")
    if src.kind == "postgres":
        _connect(src)
    elif src.kind == "sqlite":
        _check_sqlite(src)
    else:
        _check_jsonl(src)
    return src


def _connect(src: Any) -> None:
    """A PostgreSQL source must be reachable: one line saying why not (the DSN is not repeated:
    it may hold a password)."""
    try:
        import psycopg
    except ImportError:
        raise _fail("reading a PostgreSQL audit log needs psycopg, which is not installed: "
                    "pip install 'callgate[audit]'") from None
    try:
        psycopg.connect(src.spec, connect_timeout=10).close()
    except psycopg.Error as exc:
        detail = (str(exc).strip().splitlines() or ["no detail"])[0]
        raise _fail(f"postgres audit source: cannot connect ({type(exc).__name__}: {detail}); check the DSN and that "
                    "the server is running") from None


def _check_sqlite(src: Any) -> None:
    """A SQLite file without the audit table is not an audit log. (A file that is not a
    readable database at all is left to the command: verify reports it as a finding.)"""
    import sqlite3
    from urllib.parse import quote

    from .audit.sqlite import TABLE

    try:
        db = sqlite3.connect(f"file:{quote(str(Path(src.spec).resolve()))}?mode=ro", uri=True)
        try:
            found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return
    if found is None:
        raise _fail(f"{src.spec}: not an audit log (a SQLite database without the {TABLE} table)")


def _check_jsonl(src: Any) -> None:
    """A JSONL audit log is empty or holds at least one record line; lines that are neither
    records nor what a crash leaves of one make a file that is not an audit log (a policy,
    say). Reading stops at the first record, so a log costs one line."""
    from .audit.source import SourceError

    strays = 0
    try:
        for entry in src.entries():
            if entry.is_record:
                return
            strays += not entry.cut_short
    except SourceError:
        return  # unreadable: the command says so in its own terms
    if strays:
        raise _fail(f"{src.spec}: not an audit log (no line of it is an audit record "
                    '{"hash":...,"record":...}); give the .jsonl or .db file the audit trail writes')


def _writer_keys(paths: Optional[List[Path]]) -> Optional[Set[bytes]]:
    """The trusted writer keys (None when none was given); a bad key file is a one-line error."""
    if not paths:
        return None
    from .audit.genesis import trusted_keys

    try:
        return trusted_keys(paths)
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _left_out(excluded: Mapping[str, int]) -> None:
    """Say on stderr which events --writer-key left out (never silently)."""
    if excluded:
        chains = ", ".join(f"{c!r} ({n})" for c, n in sorted(excluded.items()))
        textout.note(f"note: {sum(excluded.values())} events of chains not vouched for by a trusted writer key were "
                     f"left out: {chains}")


def _line(record: dict[str, Any]) -> str:
    from .audit.query import decision_label

    if record.get("kind") == "gap":
        return f"{record.get('timestamp')}  GAP  {record.get('reason')}"
    who = record.get("principal") or "-"
    note = ""
    approval = record.get("approval")
    if isinstance(approval, dict):
        approvers = approval.get("approved_by")
        by = ", ".join(str(n) for n in approvers) if isinstance(approvers, list) else ""
        note = f"[approval: {approval.get('method')} {approval.get('outcome')}{' by ' + by if by else ''}]  "
    return (f"{record.get('timestamp')}  {decision_label(record):<5}  {record.get('tool')} as {record.get('role')}"
            f"  {who}  {note}{record.get('reason')}")


def _emit(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode() + "\n")
    else:
        textout.echo(_line(record))


# ---------------------------------------------------------------- the commands


def tail(args: argparse.Namespace) -> int:
    """`callgate audit tail`: the last N records, and with -f every new one."""
    from .audit.query import events
    from .audit.source import SourceError

    src = _source(args.source, args.table)
    last: deque[dict[str, Any]] = deque(maxlen=args.n)
    pos = None
    try:
        for pos, record, _ in events(src):
            last.append(record)
        for record in last:
            _emit(record, args.json)
        sys.stdout.flush()
        while args.follow:
            time.sleep(0.5)
            for pos, record, _ in events(src, after=pos):
                _emit(record, args.json)
            sys.stdout.flush()
    except SourceError as exc:
        raise _fail(str(exc)) from None
    return 0


def query(args: argparse.Namespace) -> int:
    """`callgate audit query`: the records matching every filter given, oldest first."""
    from .audit.query import events
    from .audit.source import SourceError

    src = _source(args.source, args.table)
    trusted = _writer_keys(args.writer_key)
    shown = 0
    excluded: Counter[str] = Counter()
    try:
        for _, record, _ in events(src, args.principal, args.tool, args.decision, args.since, trusted=trusted,
                                   excluded=excluded):
            _emit(record, args.json)
            shown += 1
            if args.limit and shown >= args.limit:
                break
    except (ValueError, SourceError) as exc:
        raise _fail(str(exc)) from None
    _left_out(excluded)
    return 0


def _rule_text(rule: Any) -> str:
    """A stats row's rule as texts name rules (`rule 4`, from the index 3 the event holds);
    the events hold no ids, their reasons do."""
    return rule_name(rule) if isinstance(rule, int) and not isinstance(rule, bool) else "a default"


def stats(args: argparse.Namespace) -> int:
    """`callgate audit stats`: decisions per tool, role and rule, and over time."""
    from .audit.query import decision_label, stats as compute
    from .audit.source import SourceError

    src = _source(args.source, args.table)
    trusted = _writer_keys(args.writer_key)
    bucket = args.bucket
    try:
        result = compute(src, args.since, bucket, trusted)
    except (ValueError, SourceError) as exc:
        raise _fail(str(exc)) from None
    _left_out(result["excluded"])
    if args.json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return 0
    textout.echo(f"{result['records']} records: " + ", ".join(f"{k} {v}" for k, v in sorted(result["kinds"].items())))
    textout.echo("count  decision    tool / role / rule")
    for row in result["by_tool_role_rule"]:
        textout.echo(f"{row['count']:>5}  {decision_label(row):<10}  {row['tool']} / {row['role']} / {_rule_text(row['rule'])}")
    textout.echo(f"per {bucket}:")
    for row in result["over_time"]:
        textout.echo(f"  {row[bucket]}  {decision_label(row):<10} {row['count']}")
    if result["shadow_would_have"]:
        textout.echo("not enforced (shadow mode), what enforcement would have done: tool / rule")
        for row in result["shadow_would_have"]:
            textout.echo(f"{row['count']:>5}  {row['decision']:<10}  {row['tool']} / {_rule_text(row['rule'])}")
    if result["approvals"]:
        textout.echo("after Elevate: method / outcome")
        for row in result["approvals"]:
            textout.echo(f"{row['count']:>5}  {row['method']} / {row['outcome']}")
    return 0


def verify_cmd(args: argparse.Namespace) -> int:
    """`callgate audit verify`: check every chain (and a checkpoint); exit 1 if the log does not verify."""
    from .audit.checkpoint import verify_with_checkpoint
    from .audit.verify import verify

    src = _source(args.source, args.table)
    trusted = _writer_keys(args.writer_key)
    try:
        report = (verify_with_checkpoint(src, str(args.checkpoint), str(args.public_key) if args.public_key else None,
                                         trusted)
                  if args.checkpoint else verify(src, writer_keys=trusted))
    except (OSError, ValueError, KeyError) as exc:
        raise _fail(str(exc), 1 if isinstance(exc, ValueError) else 2) from None
    if args.json:
        sys.stdout.write(orjson.dumps(report.to_dict()).decode() + "\n")
    else:
        for warning in report.warnings:
            textout.echo(f"warning: {warning}")
        for note in report.notes:
            textout.echo(f"note: {note}")
        for finding in report.findings:
            textout.echo(textout.Text("FAILED", "bold red").append(f": {finding}"))
        if report.checkpoint is not None:
            textout.echo(textout.Text("FAILED", "bold red").append(f": {report.checkpoint}"))
        if report.ok:
            chains = ", ".join(f"{c} ({v['size']})" for c, v in sorted(report.chains.items()))
            note = " and the checkpoint" if args.checkpoint else ""
            textout.echo(textout.Text("ok", "bold green").append(
                f": {report.records} records in {len(report.chains)} chain(s){note} verify: {chains}"))
    return 0 if report.ok else 1


def checkpoint_cmd(args: argparse.Namespace) -> int:
    """`callgate audit checkpoint`: sign every chain's (size, head hash) into a checkpoint file."""
    from .audit.checkpoint import make_checkpoint

    src = _source(args.source, args.table)
    target = args.output or Path((args.source if src.kind != "postgres" else "postgres-audit") + ".checkpoint.json")
    if not target.parent.is_dir():
        raise _fail(f"-o {target}: the directory {target.parent} does not exist (create it first)")
    try:
        cp = make_checkpoint(src, str(args.key))
    except (OSError, ValueError) as exc:
        raise _fail(str(exc), 1) from None
    try:
        target.write_bytes(orjson.dumps(cp, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    except OSError as exc:
        raise _fail(f"-o {target}: cannot write: {why_unwritable(target, exc)}") from None
    textout.echo(f"{target}: {len(cp['payload']['chains'])} chain(s) signed")
    return 0


def keygen(args: argparse.Namespace) -> int:
    """`callgate audit keygen`: write an Ed25519 key pair (PATH, PATH.pub); never overwrites."""
    from .audit.keys import generate_key

    path: Path = args.path
    if path.exists():
        raise _fail(f"{path} exists; refusing to overwrite a key")
    if not path.parent.is_dir():
        raise _fail(f"{path}: the directory {path.parent} does not exist (create it first)")
    try:
        public = generate_key(str(path))
        Path(str(path) + ".pub").write_text(public)
    except OSError as exc:
        raise _fail(f"{exc.filename or path}: cannot write: {why_unwritable(path, exc)}") from None
    textout.echo(f"{path} (private), {path}.pub (public)")
    return 0


def replay_cmd(args: argparse.Namespace) -> int:
    """`callgate replay`: the recorded calls a candidate policy decides differently; exit 1 if any."""
    from .audit.query import decision_label
    from .audit.replay import replay
    from .audit.source import SourceError
    from .engine import Engine
    from .errors import CallgateError

    src = _source(args.source, args.table)
    trusted = _writer_keys(args.writer_key)
    try:
        candidate = Engine.from_file(args.policy, args.semantics)
    except CallgateError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"--policy {args.policy}: {exc.strerror or exc}") from None
    try:
        result = replay(src, candidate, args.since, trusted)
    except (ValueError, SourceError) as exc:
        raise _fail(str(exc)) from None
    _left_out(result["excluded"])
    if args.json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
    else:
        for group in result["changed"]:
            textout.echo(f"{group['tool']} as {group['role']}: {group['count']} call(s) change")
            for call in group["calls"]:
                b, a = call["before"], call["after"]
                args_text = orjson.dumps(call["args"]).decode()
                textout.echo(f"  {call['timestamp']} {call['principal'] or '-'} args={args_text}")
                textout.echo(f"    recorded:  {decision_label(b)}: {b['reason']}")
                textout.echo(f"    candidate: {decision_label(a)}: {a['reason']}")
        textout.echo(f"{result['replayed']} calls replayed ({result['skipped']} without full arguments skipped), "
                     f"{result['changed_calls']} would change")
    return 1 if result["changed_calls"] else 0


# ---------------------------------------------------------------- the parsers


def _common(p: Any, json: bool = True, writer_key: bool = False) -> None:
    p.add_argument("source", metavar="SOURCE", help=SOURCE_HELP)
    if writer_key:
        p.add_argument("--writer-key", type=Path, action="append", metavar="PUB.pem",
                       help="a trusted writer's Ed25519 public key (PEM); repeatable")
    if json:
        p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--table", help="PostgreSQL table (default callgate_audit)")


def register(commands: Commands) -> None:
    """Add `callgate audit ...` and `callgate replay` to the command line (cli.build_parser)."""
    audit = add_group(commands, "audit", "The audit trail: read, verify, checkpoint.")

    p = add_command(audit, "tail", tail, "The last records, and with -f every new one as it is written.")
    _common(p)
    p.add_argument("-n", type=count, default=10, metavar="N", help="how many of the last records (default 10)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new records")

    p = add_command(audit, "query", query, """Records matching every filter given, oldest first.

With --writer-key, only chains vouched for by one of those keys (what is left out is said
on stderr).""")
    _common(p, writer_key=True)
    p.add_argument("--principal", help="who made the call")
    p.add_argument("--tool", help="the tool called")
    p.add_argument("--decision", type=choice(*DECISIONS), metavar="Allow|Deny|Elevate", help="Allow, Deny or Elevate")
    p.add_argument("--since", help="e.g. 30m, 1h, 2d, or an RFC 3339 time")
    p.add_argument("--limit", type=count, default=0, metavar="N", help="at most this many (default 0: all)")

    p = add_command(audit, "stats", stats, """Decisions per tool, role and rule, and over time.

With --writer-key, only chains vouched for by one of those keys (what is left out is said,
and in --json "excluded").""")
    _common(p, writer_key=True)
    p.add_argument("--since", help="e.g. 30m, 1h, 2d, or an RFC 3339 time")
    p.add_argument("--bucket", type=choice("hour", "day"), default="hour", metavar="hour|day",
                   help="hour (default) or day")

    p = add_command(audit, "verify", verify_cmd, """Check every chain.

Names the first record modified, deleted, inserted or reordered, and every chain no trusted
writer key (or checkpoint) vouches for. Warnings: torn records a crash explains, writers
that did not stop cleanly. Exit 1 if the log does not verify.""")
    _common(p, writer_key=True)
    p.add_argument("--checkpoint", type=Path, metavar="FILE", help="a signed checkpoint")
    p.add_argument("--public-key", type=Path, metavar="PUB.pem",
                   help="Ed25519 public key (PEM) the checkpoint must be signed with")

    p = add_command(audit, "checkpoint", checkpoint_cmd,
                    "Sign (chain, size, head hash) of every chain: detects later truncation.")
    _common(p, json=False)
    p.add_argument("--key", type=Path, required=True, metavar="KEY.pem", help="Ed25519 private key (PEM)")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="default: SOURCE.checkpoint.json")

    p = add_command(audit, "keygen", keygen, """Make an Ed25519 key pair (checkpoints, writer keys).

The private key goes to PATH, the public one to PATH.pub.""")
    p.add_argument("path", type=Path, metavar="PATH", help="where to write the private key (PEM)")

    p = add_command(commands, "replay", replay_cmd, """Re-evaluate recorded calls under a candidate policy; show those whose decision changes.

Exit 1 if any would change. With --writer-key, only chains vouched for by those keys.""")
    _common(p, writer_key=True)
    p.add_argument("--policy", type=Path, required=True, help="the candidate policy")
    add_semantics(p)
    p.add_argument("--since", help="e.g. 30m, 1h, 2d, or an RFC 3339 time")
