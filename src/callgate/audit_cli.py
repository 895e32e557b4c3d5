"""`callgate audit ...` (tail, query, stats, verify, checkpoint, keygen) and `callgate replay`.

Registered by cli.py through register(app). Exit status: 0 fine, 1 the log does not
verify (or replay found changes), 2 bad usage or an unreadable source."""

from __future__ import annotations

import sys
import time
from collections import deque
from pathlib import Path
from typing import Optional

import orjson
import typer
from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

audit_app = typer.Typer(no_args_is_help=True, help="The audit trail: read, verify, checkpoint.")
TableOpt = typer.Option(None, "--table", help="PostgreSQL table (default callgate_audit)")
JsonOpt = typer.Option(False, "--json", help="machine-readable output")


def _source(spec: str, table: Optional[str]):
    from .audit.source import Source

    try:
        return Source(spec, table)
    except (OSError, ValueError) as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None


def _line(record: dict) -> str:
    from .audit.query import decision_label

    if record.get("kind") == "gap":
        return f"{record.get('timestamp')}  GAP  {record.get('reason')}"
    who = record.get("principal") or "-"
    note = ""
    approval = record.get("approval")
    if isinstance(approval, dict):
        by = ", ".join(str(n) for n in approval.get("approved_by") or ())
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

    src = _source(source, table)
    last: deque = deque(maxlen=max(n, 0))
    pos = None
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


@audit_app.command()
def query(source: str = typer.Argument(..., help=".db, .jsonl or postgres DSN"),
          principal: Optional[str] = typer.Option(None, "--principal"),
          tool: Optional[str] = typer.Option(None, "--tool"),
          decision: Optional[str] = typer.Option(None, "--decision", help="Allow, Deny or Elevate"),
          since: Optional[str] = typer.Option(None, "--since", help="e.g. 30m, 1h, 2d, or an RFC 3339 time"),
          limit: int = typer.Option(0, "--limit", help="at most this many (0: all)"),
          as_json: bool = JsonOpt, table: Optional[str] = TableOpt) -> None:
    """Records matching every filter given, oldest first."""
    from .audit.query import events

    src = _source(source, table)
    shown = 0
    try:
        for _, record, _ in events(src, principal, tool, decision, since):
            _emit(record, as_json)
            shown += 1
            if limit and shown >= limit:
                break
    except ValueError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None


@audit_app.command()
def stats(source: str = typer.Argument(..., help=".db, .jsonl or postgres DSN"),
          since: Optional[str] = typer.Option(None, "--since"),
          bucket: str = typer.Option("hour", "--bucket", help="hour or day"),
          as_json: bool = JsonOpt, table: Optional[str] = TableOpt) -> None:
    """Decisions per tool, role and rule, and over time."""
    from .audit.query import stats as compute

    result = compute(_source(source, table), since, bucket)
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
               as_json: bool = JsonOpt, table: Optional[str] = TableOpt) -> None:
    """Check every chain; name the first record modified, deleted, inserted or reordered."""
    from .audit.checkpoint import verify_with_checkpoint
    from .audit.verify import verify

    src = _source(source, table)
    try:
        report = (verify_with_checkpoint(src, str(checkpoint), str(public_key) if public_key else None)
                  if checkpoint else verify(src))
    except (OSError, ValueError, KeyError) as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1 if isinstance(exc, ValueError) else 2) from None
    if as_json:
        sys.stdout.write(orjson.dumps(report.to_dict()).decode() + "\n")
    else:
        for torn in report.torn:
            out.print(f"warning: {torn}", markup=False)
        if report.problem is not None:
            out.print(f"FAILED: {report.problem}", markup=False)
        elif report.checkpoint is not None:
            out.print(f"FAILED: {report.checkpoint}", markup=False)
        else:
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
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None
    target = output or Path((source if src.kind != "postgres" else "postgres-audit") + ".checkpoint.json")
    target.write_bytes(orjson.dumps(cp, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    out.print(f"{target}: {len(cp['payload']['chains'])} chain(s) signed", markup=False)


@audit_app.command()
def keygen(path: Path = typer.Argument(..., help="where to write the private key (PEM)")) -> None:
    """Make an Ed25519 key pair for checkpoints: the private key to PATH, the public to PATH.pub."""
    from .audit.checkpoint import generate_key

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
               as_json: bool = JsonOpt, table: Optional[str] = TableOpt) -> None:
    """Re-evaluate recorded calls under a candidate policy; show those whose decision changes.
    Exit 1 if any would change."""
    from .audit.query import decision_label
    from .audit.replay import replay
    from .engine import Engine
    from .errors import CallgateError

    src = _source(source, table)
    try:
        candidate = Engine.from_file(policy, semantics)
    except CallgateError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None
    result = replay(src, candidate, since)
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
