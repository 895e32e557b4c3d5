"""`callgate audit ...` (tail, query, stats, verify, checkpoint, keygen) and `callgate replay`.

Registered by cli.py through register(app). Exit status: 0 fine, 1 the log does not
verify (or replay found changes), 2 bad usage or an unreadable source."""

from __future__ import annotations

import sys
import time
from collections import Counter, deque
from pathlib import Path
from typing import List, Optional, Set

import orjson
import typer
from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

audit_app = typer.Typer(no_args_is_help=True, help="The audit trail: read, verify, checkpoint.")
TableOpt = typer.Option(None, "--table", help="PostgreSQL table (default callgate_audit)")
JsonOpt = typer.Option(False, "--json", help="machine-readable output")
WriterKeyOpt = typer.Option(None, "--writer-key", help="a trusted writer's Ed25519 public key (PEM); repeatable")


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"error: {message}", markup=False)
    return typer.Exit(code)


def _source(spec: str, table: Optional[str]):
    from .audit.source import Source

    try:
        return Source(spec, table)
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None


def _writer_keys(paths: Optional[List[Path]]) -> Optional[Set[bytes]]:
    """The trusted writer keys (None when none was given); a bad key file is a one-line error."""
    if not paths:
        return None
    from .audit.genesis import trusted_keys

    try:
        return trusted_keys(paths)
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _left_out(excluded: dict) -> None:
    """Say on stderr which events --writer-key left out (never silently)."""
    if excluded:
        chains = ", ".join(f"{c!r} ({n})" for c, n in sorted(excluded.items()))
        err.print(f"note: {sum(excluded.values())} events of chains not vouched for by a trusted writer key were "
                  f"left out: {chains}", markup=False)


def _line(record: dict) -> str:
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


def _emit(record: dict, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode() + "\n")
    else:
        out.print(_line(record), markup=False)


@audit_app.command()
def tail(source: str = typer.Argument(..., help=".db, .jsonl or postgres DSN"),
         n: int = typer.Option(10, "-n", help="how many of the last records"),
         follow: bool = typer.Option(False, "-f", "--follow", help="keep printing new records"),
         as_json: bool = JsonOpt, table: Optional[str] = TableOpt) -> None:
    """The last records, and with -f every new one as it is written."""
    from .audit.query import events
    from .audit.source import SourceError

    src = _source(source, table)
    last: deque = deque(maxlen=max(n, 0))
    pos = None
    try:
        for pos, record, _ in events(src):
            last.append(record)
        for record in last:
            _emit(record, as_json)
        sys.stdout.flush()
        while follow:
            time.sleep(0.5)
            for pos, record, _ in events(src, after=pos):
                _emit(record, as_json)
            sys.stdout.flush()
    except SourceError as exc:
        raise _fail(str(exc)) from None


@audit_app.command()
def query(source: str = typer.Argument(..., help=".db, .jsonl or postgres DSN"),
          principal: Optional[str] = typer.Option(None, "--principal"),
          tool: Optional[str] = typer.Option(None, "--tool"),
          decision: Optional[str] = typer.Option(None, "--decision", help="Allow, Deny or Elevate"),
          since: Optional[str] = typer.Option(None, "--since", help="e.g. 30m, 1h, 2d, or an RFC 3339 time"),
          limit: int = typer.Option(0, "--limit", help="at most this many (0: all)"),
          writer_key: Optional[List[Path]] = WriterKeyOpt,
          as_json: bool = JsonOpt, table: Optional[str] = TableOpt) -> None:
    """Records matching every filter given, oldest first. With --writer-key, only chains
    vouched for by one of those keys (what is left out is said on stderr)."""
    from .audit.query import events
    from .audit.source import SourceError

    src = _source(source, table)
    trusted = _writer_keys(writer_key)
    shown = 0
    excluded: Counter = Counter()
    try:
        for _, record, _ in events(src, principal, tool, decision, since, trusted=trusted, excluded=excluded):
            _emit(record, as_json)
            shown += 1
            if limit and shown >= limit:
                break
    except (ValueError, SourceError) as exc:
        raise _fail(str(exc)) from None
    _left_out(excluded)


@audit_app.command()
def stats(source: str = typer.Argument(..., help=".db, .jsonl or postgres DSN"),
          since: Optional[str] = typer.Option(None, "--since"),
          bucket: str = typer.Option("hour", "--bucket", help="hour or day"),
          writer_key: Optional[List[Path]] = WriterKeyOpt,
          as_json: bool = JsonOpt, table: Optional[str] = TableOpt) -> None:
    """Decisions per tool, role and rule, and over time. With --writer-key, only chains
    vouched for by one of those keys (what is left out is said, and in --json "excluded")."""
    from .audit.query import stats as compute
    from .audit.source import SourceError

    src = _source(source, table)
    trusted = _writer_keys(writer_key)
    try:
        result = compute(src, since, bucket, trusted)
    except (ValueError, SourceError) as exc:
        raise _fail(str(exc)) from None
    _left_out(result["excluded"])
    if as_json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return
    out.print(f"{result['records']} records: " + ", ".join(f"{k} {v}" for k, v in sorted(result["kinds"].items())),
              markup=False)
    from .audit.query import decision_label

    out.print("count  decision    tool / role / rule", markup=False)
    for row in result["by_tool_role_rule"]:
        out.print(f"{row['count']:>5}  {decision_label(row):<10}  {row['tool']} / {row['role']} / {row['rule']}",
                  markup=False)
    out.print(f"per {bucket}:", markup=False)
    for row in result["over_time"]:
        out.print(f"  {row[bucket]}  {decision_label(row):<10} {row['count']}", markup=False)
    if result["approvals"]:
        out.print("after Elevate: method / outcome", markup=False)
        for row in result["approvals"]:
            out.print(f"{row['count']:>5}  {row['method']} / {row['outcome']}", markup=False)


@audit_app.command("verify")
def verify_cmd(source: str = typer.Argument(..., help=".db, .jsonl or postgres DSN"),
               checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="a signed checkpoint"),
               public_key: Optional[Path] = typer.Option(None, "--public-key", help="Ed25519 public key (PEM) the "
                                                         "checkpoint must be signed with"),
               writer_key: Optional[List[Path]] = WriterKeyOpt,
               as_json: bool = JsonOpt, table: Optional[str] = TableOpt) -> None:
    """Check every chain; name the first record modified, deleted, inserted or reordered, and
    every chain no trusted writer key (or checkpoint) vouches for. Warnings: torn records a
    crash explains, writers that did not stop cleanly."""
    from .audit.checkpoint import verify_with_checkpoint
    from .audit.verify import verify

    src = _source(source, table)
    trusted = _writer_keys(writer_key)
    try:
        report = (verify_with_checkpoint(src, str(checkpoint), str(public_key) if public_key else None, trusted)
                  if checkpoint else verify(src, writer_keys=trusted))
    except (OSError, ValueError, KeyError) as exc:
        raise _fail(str(exc), 1 if isinstance(exc, ValueError) else 2) from None
    if as_json:
        sys.stdout.write(orjson.dumps(report.to_dict()).decode() + "\n")
    else:
        for warning in report.warnings:
            out.print(f"warning: {warning}", markup=False)
        for note in report.notes:
            out.print(f"note: {note}", markup=False)
        for finding in report.findings:
            out.print(f"FAILED: {finding}", markup=False)
        if report.checkpoint is not None:
            out.print(f"FAILED: {report.checkpoint}", markup=False)
        if report.ok:
            chains = ", ".join(f"{c} ({v['size']})" for c, v in sorted(report.chains.items()))
            note = " and the checkpoint" if checkpoint else ""
            out.print(f"ok: {report.records} records in {len(report.chains)} chain(s){note} verify: {chains}",
                      markup=False)
    raise typer.Exit(0 if report.ok else 1)


@audit_app.command("checkpoint")
def checkpoint_cmd(source: str = typer.Argument(..., help=".db, .jsonl or postgres DSN"),
                   key: Path = typer.Option(..., "--key", help="Ed25519 private key (PEM)"),
                   output: Optional[Path] = typer.Option(None, "-o", "--output",
                                                         help="default: SOURCE.checkpoint.json"),
                   table: Optional[str] = TableOpt) -> None:
    """Sign (chain, size, head hash) of every chain: detects later truncation."""
    from .audit.checkpoint import make_checkpoint

    src = _source(source, table)
    try:
        cp = make_checkpoint(src, str(key))
    except (OSError, ValueError) as exc:
        raise _fail(str(exc), 1) from None
    target = output or Path((source if src.kind != "postgres" else "postgres-audit") + ".checkpoint.json")
    target.write_bytes(orjson.dumps(cp, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    out.print(f"{target}: {len(cp['payload']['chains'])} chain(s) signed", markup=False)


@audit_app.command()
def keygen(path: Path = typer.Argument(..., help="where to write the private key (PEM)")) -> None:
    """Make an Ed25519 key pair (checkpoints, writer keys): the private key to PATH, the public to PATH.pub."""
    from .audit.keys import generate_key

    if path.exists():
        err.print(f"error: {path} exists; refusing to overwrite a key", markup=False)
        raise typer.Exit(2)
    public = generate_key(str(path))
    Path(str(path) + ".pub").write_text(public)
    out.print(f"{path} (private), {path}.pub (public)", markup=False)


def replay_cmd(source: str = typer.Argument(..., help=".db, .jsonl or postgres DSN"),
               policy: Path = typer.Option(..., "--policy", help="the candidate policy"),
               semantics: str = typer.Option("strict", "--semantics"),
               since: Optional[str] = typer.Option(None, "--since"),
               writer_key: Optional[List[Path]] = WriterKeyOpt,
               as_json: bool = JsonOpt, table: Optional[str] = TableOpt) -> None:
    """Re-evaluate recorded calls under a candidate policy; show those whose decision changes.
    Exit 1 if any would change. With --writer-key, only chains vouched for by those keys."""
    from .audit.query import decision_label
    from .audit.replay import replay
    from .audit.source import SourceError
    from .engine import Engine
    from .errors import CallgateError

    src = _source(source, table)
    trusted = _writer_keys(writer_key)
    try:
        candidate = Engine.from_file(policy, semantics)
    except CallgateError as exc:
        raise _fail(str(exc)) from None
    try:
        result = replay(src, candidate, since, trusted)
    except (ValueError, SourceError) as exc:
        raise _fail(str(exc)) from None
    _left_out(result["excluded"])
    if as_json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
    else:
        for group in result["changed"]:
            out.print(f"{group['tool']} as {group['role']}: {group['count']} call(s) change", markup=False)
            for call in group["calls"]:
                b, a = call["before"], call["after"]
                out.print(f"  {call['timestamp']} {call['principal'] or '-'} args={orjson.dumps(call['args']).decode()}",
                          markup=False)
                out.print(f"    recorded:  {decision_label(b)}: {b['reason']}", markup=False)
                out.print(f"    candidate: {decision_label(a)}: {a['reason']}", markup=False)
        out.print(f"{result['replayed']} calls replayed ({result['skipped']} without full arguments skipped), "
                  f"{result['changed_calls']} would change", markup=False)
    raise typer.Exit(1 if result["changed_calls"] else 0)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
    app.command("replay")(replay_cmd)
