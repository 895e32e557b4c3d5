"""`callgate demo`: the CRM story through a real MCP server, a real MCP client and the proxy.

The demo is the operator: it hosts the stdio proxy in-process (two pipes between the
client and the proxy, a real child process for the server) and sets the identity of each
step the way a host would for a session: role and agent attributes from the script,
resource attributes from the resolver, never from the model. Every call goes over
JSON-RPC through the proxy; the server journals what it actually ran, which the summary
checks against the decisions.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import anyio
import orjson

from ..mcp.gate import DENIED_PREFIX, Gate, Identity, load_resolver
from ..mcp.proxy import StdioProxy
from ..policy_tests import Case, CasesError, load_cases_file, parse_cases

if TYPE_CHECKING:  # rich comes with the mcp extra; imported when the demo plays (_console)
    from rich.console import Console

SCENE_TITLES = {"agent": "Scene 1: the support agent", "manager": "Scene 2: the manager",
                "admin": "Scene 3: the admin"}
STEP_TIMEOUT = 30.0


class DemoError(Exception):
    """Why the demo cannot run or did not finish, in one line (rich missing, a bad --policy or
    --script, a failed session)."""


RICH_MISSING = "callgate demo needs rich, which is not installed: pip install 'callgate[mcp]'"


def _console() -> Any:
    """rich's Console class (the demo's colours and tables); a one-line DemoError naming the
    extra when rich is not installed (the base install has no rich)."""
    try:
        from rich.console import Console
    except ImportError:
        raise DemoError(RICH_MISSING) from None
    return Console


def load_script(path: Optional[Path]) -> list[Case]:
    """The scenes: a cases file (callgate.policy_tests: the schema `callgate test` reads; a
    misspelled key is an error with its location), the CRM's by default."""
    from .. import examples

    try:
        if path is None:
            return parse_cases(examples.cases_document("crm"))
        return parse_cases(load_cases_file(Path(path)))
    except CasesError as exc:
        raise DemoError(f"{path}: {exc}") from None


def _call_text(case: Case) -> str:
    args = ", ".join(f"{k}={orjson.dumps(v).decode()}" for k, v in (case.args or {}).items())
    return f"{case.tool}({args})"


def _who_and_what(identity: Identity, case: Case, resolver: Optional[Any]) -> str:
    """The attributes the decision turns on: the caller's (the host's choice) and, when a
    resolver looks the record up, the record's (its owner): `as manager {"user_id":"mgr-001"}
    on {"owner_id":"mgr-002"}`. The resolver is asked here only to show what the gate sees."""
    text = f"as {identity.role} {orjson.dumps(dict(identity.agent_attributes)).decode()}"
    if resolver is not None:
        try:
            record = resolver(case.tool, case.args or {})
        except Exception:  # the gate itself reports a failing resolver; here it only goes unshown
            record = None
        if record:
            text += f" on {orjson.dumps(dict(record)).decode()}"
    return text


def _result_text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content if getattr(c, "type", "") == "text")


async def _play(proxy: StdioProxy, client_in: Any, client_out: Any, cases: list[Case], out: Console,
                resolver: Optional[Any] = None) -> list[dict[str, Any]]:
    from mcp import ClientSession

    from .pipes import pipe_transport

    rows = []
    async with pipe_transport(client_in, client_out) as (r, w), ClientSession(r, w) as session:
        with anyio.fail_after(STEP_TIMEOUT):
            await session.initialize()
        scene = None
        for n, case in enumerate(cases, 1):
            identity = Identity(case.role, case.agent_attributes or {})
            proxy.identity = identity  # the operator's choice for this step, not the model's
            if case.role != scene:
                scene = case.role
                with anyio.fail_after(STEP_TIMEOUT):
                    listed = await session.list_tools()
                out.print()
                out.rule(f"[bold]{SCENE_TITLES.get(scene, f'Scene: role {scene}')}[/]")
                out.print(f"[dim]tools/list as {scene}: {', '.join(t.name for t in listed.tools) or '(none)'}[/]")
            out.print(f"\n[bold]{n}. {case.name}[/]", highlight=False)
            out.print(f"   {_call_text(case)}  [dim]{_who_and_what(identity, case, resolver)}[/]", markup=True,
                      highlight=False)
            with anyio.fail_after(STEP_TIMEOUT):
                result = await session.call_tool(case.tool, case.args or {})
            text = _result_text(result)
            if result.is_error and text.startswith(DENIED_PREFIX):
                decision, detail = "Deny", text[len(DENIED_PREFIX):]
                out.print(f"   [bold red]Deny[/]   {detail}", highlight=False)
            else:
                decision, detail = "Allow", text
                label = "tool error" if result.is_error else "result"
                out.print(f"   [bold green]Allow[/]  [dim]{label}:[/] {detail}", highlight=False)
            rows.append({"n": n, "case": case, "decision": decision, "detail": detail})
    return rows


def run_demo(policy: Optional[Path] = None, script: Optional[Path] = None, server: Optional[str] = None,
             resolver: Optional[str] = None, out: Optional[Console] = None) -> int:
    """Play the script; 0 when every decision matched its expectation and the server ran
    exactly the allowed calls."""
    from .. import examples
    from ..engine import Engine
    from ..errors import CallgateError

    out = out or _console()(highlight=False)
    cases = load_script(script)
    try:
        engine = Engine.from_file(policy) if policy else Engine.from_dict(examples.policy("crm"))
    except CallgateError as exc:
        raise DemoError(str(exc)) from None
    journal = None
    if server:
        command = shlex.split(server)
    else:
        fd, journal = tempfile.mkstemp(prefix="callgate-demo-", suffix=".jsonl")
        os.close(fd)
        command = [sys.executable, "-m", "callgate.demo.crm_server", "--journal", journal]
        resolver = resolver or "callgate.demo.crm:resolve"
    try:
        resolve = load_resolver(resolver) if resolver else None
    except ValueError as exc:
        raise DemoError(str(exc)) from None
    gate = Gate(engine, resolve)

    c2p_r, c2p_w = os.pipe()
    p2c_r, p2c_w = os.pipe()
    proxy_in, proxy_out = os.fdopen(c2p_r, "rb"), os.fdopen(p2c_w, "wb")
    client_in, client_out = os.fdopen(p2c_r, "rb"), os.fdopen(c2p_w, "wb")
    proxy = StdioProxy(gate, Identity(cases[0].role if cases else "none"), command,
                       client_in=proxy_in, client_out=proxy_out)
    status: dict[str, Any] = {}

    def host() -> None:
        status["rc"] = proxy.run()
        proxy_out.close()  # the client sees the end of the session

    thread = threading.Thread(target=host, name="callgate-demo-proxy", daemon=True)
    thread.start()
    out.print(f"[bold]callgate demo[/]: {len(cases)} calls through `callgate proxy` to "
              f"[cyan]{' '.join(command[:3]) if server else 'the example CRM MCP server'}[/]")
    try:
        rows = anyio.run(_play, proxy, client_in, client_out, cases, out, resolve)
    except Exception as exc:
        raise DemoError(f"the demo session failed: {exc!r}") from None
    finally:
        client_out.close()  # end of the client's stream: the proxy stops the server
        thread.join(timeout=15)
        client_in.close()
        proxy_in.close()
    executed = None
    if journal:
        executed = [orjson.loads(line) for line in Path(journal).read_bytes().splitlines() if line.strip()]
        os.unlink(journal)
    return _summary(rows, executed, out)


def _summary(rows: list[dict[str, Any]], executed: Optional[list[dict[str, Any]]], out: Console) -> int:
    from rich.table import Table  # (rich is there: the console that prints it is rich's)

    table = Table(title="Summary", show_lines=False)
    for col in ("#", "call", "role", "decision", "expected"):
        table.add_column(col, overflow="fold")
    mismatches = 0
    for row in rows:
        case, decision = row["case"], row["decision"]
        # the proxy tells Allow from Deny (an Elevate it could not get approved is a denial)
        expected = case.expect["decision"]
        ok = decision == ("Deny" if expected == "Elevate" else expected)
        mismatches += not ok
        colour = "green" if decision == "Allow" else "red"
        table.add_row(str(row["n"]), _call_text(case), case.role, f"[{colour}]{decision}[/]",
                      expected + ("" if ok else " [bold red]✗[/]"))
    out.print()
    out.print(table)
    allowed = sum(r["decision"] == "Allow" for r in rows)
    out.print(f"{len(rows)} calls: {allowed} allowed, {len(rows) - allowed} denied, {mismatches} unexpected")
    if executed is not None:
        ran_ok = len(executed) == allowed and all(
            e["tool"] == r["case"].tool for e, r in zip(executed, [r for r in rows if r["decision"] == "Allow"]))
        verdict = "[green]only the allowed calls[/]" if ran_ok else "[bold red]NOT just the allowed calls[/]"
        out.print(f"the CRM server ran {len(executed)} call(s): {verdict}; denied calls never reached it")
        mismatches += not ran_ok
    return 1 if mismatches else 0
