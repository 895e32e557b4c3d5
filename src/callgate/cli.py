"""The `callgate` command line.

Every error is one line on stderr (``error: rules[3].condition...: unknown op 'Ne'...``)
and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import orjson
import typer
from rich.console import Console
from rich.table import Table

from . import bytecode, examples
from .compiler import compile_policy
from .engine import Engine
from .errors import CallgateError
from .lint import lint
from .policy import json_schema, parse_json

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="callgate: decide whether an AI agent's tool call may run.")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

SemanticsOpt = typer.Option("strict", "--semantics", help="strict (default) or perso")


def _fail(message: str, code: int = 1) -> "typer.Exit":
    err.print(f"error: {message}", markup=False)
    return typer.Exit(code)


def _policy_source(policy: Optional[str]) -> tuple[str, Any]:
    """A policy path, or the name of a bundled example ('crm', 'spec'); none means 'crm'."""
    name = policy or "crm"
    if name in examples.EXAMPLES and not Path(name).exists():
        return name, examples.policy(name)
    try:
        return name, parse_json(Path(name).read_bytes())
    except OSError as exc:
        raise _fail(f"{name}: {exc.strerror}") from None


def _compiled(policy: str, semantics: str):
    """Compile a policy file or bundled example; a bad policy is one error line."""
    _, data = _policy_source(policy)
    try:
        return compile_policy(data, semantics)
    except (CallgateError, ValueError) as exc:
        raise _fail(str(exc)) from None


def _json_arg(text: Optional[str], what: str) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _fail(f"--{what}: not valid JSON ({exc})", 2) from None


def _show(decision: str) -> str:
    colour = {"Allow": "green", "Deny": "red", "Elevate": "yellow"}.get(decision, "white")
    return f"[bold {colour}]{decision}[/]"


@app.command()
def check(policy: str = typer.Argument(..., help="policy file"), semantics: str = SemanticsOpt) -> None:
    """Validate a policy and warn about risky corners; exit 1 on errors."""
    name, data = _policy_source(policy)
    findings = lint(data, semantics)
    for f in findings:
        (err if f.level == "error" else out).print(f"{f}", markup=False)
    errors = sum(f.level == "error" for f in findings)
    if errors:
        raise typer.Exit(1)
    warnings = sum(f.level == "warning" for f in findings)
    notes = sum(f.level == "note" for f in findings)
    extra = f", {notes} note{'s' * (notes != 1)}" if notes else ""
    out.print(f"{name}: ok ({len(data.get('rules', []))} rules, {warnings} warning{'s' * (warnings != 1)}{extra})")


@app.command("eval")
def eval_(
    policy: Optional[str] = typer.Argument(None, help="policy file, or a bundled example (crm, spec); default crm"),
    tool: Optional[str] = typer.Option(None, "--tool", help="tool name; without it, run the example's cases"),
    role: Optional[str] = typer.Option(None, "--role"),
    args: Optional[str] = typer.Option(None, "--args", help="arguments as JSON"),
    agent: Optional[str] = typer.Option(None, "--agent", help="agent attributes as JSON"),
    resource: Optional[str] = typer.Option(None, "--resource", help="resource attributes as JSON"),
    context: Optional[str] = typer.Option(None, "--context", help="the host's context object as JSON"),
    cases: Optional[Path] = typer.Option(None, "--cases", help="a cases file ({\"cases\": [...]}) to run"),
    semantics: str = SemanticsOpt,
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Decide one call (--tool/--role), or run a file of cases (the bundled example's by default)."""
    name, data = _policy_source(policy)
    try:
        engine = Engine.from_dict(data, semantics)
    except (CallgateError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if tool is not None:
        if role is None:
            raise _fail("--role is required with --tool", 2)
        try:
            d = engine.evaluate(tool, _json_arg(args, "args"), role=role,
                                agent_attributes=_json_arg(agent, "agent"),
                                resource_attributes=_json_arg(resource, "resource"),
                                context=_json_arg(context, "context"))
        except CallgateError as exc:
            raise _fail(str(exc)) from None
        if as_json:
            sys.stdout.write(orjson.dumps(d.to_dict()).decode() + "\n")
        else:
            out.print(f"{_show(d.decision)}  {d.reason}")
        return
    _run_cases(engine, name, cases, as_json)


def _run_cases(engine: Engine, name: str, cases_path: Optional[Path], as_json: bool) -> None:
    """The cases (the file's, or the bundled example's) through the one runner `callgate
    test` uses (policy_tests), shown as a table: exit 0 when every case holds, 1 otherwise."""
    from .policy_tests import CasesError, load_cases_file, parse_cases, run_cases

    try:
        if cases_path is not None:
            case_list = parse_cases(load_cases_file(cases_path))
        elif name in examples.EXAMPLES:
            case_list = parse_cases(examples.cases_document(name))
        else:
            raise _fail("give --tool and --role, or --cases FILE", 2)
    except CasesError as exc:
        raise _fail(f"{cases_path}: {exc}", 2) from None
    results = run_cases(engine, case_list)
    table = Table(title=f"callgate eval: {name} ({engine.semantics} semantics)", show_lines=False)
    for col in ("call", "role", "decision", "reason"):
        table.add_column(col, overflow="fold")
    rows = []
    for r in results:
        got = r.got or {"decision": "Error", "reason": r.error}
        rows.append({"name": r.case.name, "tool": r.case.tool, "role": r.case.role, "decision": got["decision"],
                     "reason": got["reason"], "expected": r.case.expect, "ok": r.passed, "failures": r.failures})
        call = f"{r.case.tool}({orjson.dumps(r.case.args or {}).decode()})"
        mark = "" if r.passed else f" [bold red]({'; '.join(r.failures)})[/]"
        table.add_row(call, r.case.role, _show(got["decision"]) + mark, got["reason"])
    mismatches = sum(not r.passed for r in results)
    if as_json:
        sys.stdout.write(orjson.dumps({"results": rows, "mismatches": mismatches}).decode() + "\n")
    else:
        out.print(table)
        out.print(f"{len(rows)} calls, {sum(r['decision'] == 'Allow' for r in rows)} allowed, "
                  f"{mismatches} unexpected")
    raise typer.Exit(1 if mismatches else 0)


def _load_for(policy: str, semantics: str, code: int):
    """Read and compile a policy for `test` / `explain`: any problem is one line naming the
    file (exit `code`)."""
    from .compiler import SEMANTICS

    if semantics not in SEMANTICS:
        raise _fail(f"--semantics: expected {' or '.join(SEMANTICS)}, got '{semantics}'", 2)
    name = policy
    try:
        if policy in examples.EXAMPLES and not Path(policy).exists():
            data = examples.policy(policy)
        else:
            data = parse_json(Path(policy).read_bytes())
        compiled = compile_policy(data, semantics)
        return name, compiled, Engine(compiled)
    except OSError as exc:
        raise _fail(f"{name}: {exc.strerror}", code) from None
    except (CallgateError, ValueError) as exc:
        raise _fail(f"{name}: {exc}", code) from None


@app.command("test")
def test_(
    policy: str = typer.Argument(..., help="policy file, or a bundled example (crm, spec)"),
    cases: Path = typer.Argument(..., help="cases file: .json (or .yaml/.yml with PyYAML)"),
    semantics: str = SemanticsOpt,
    fmt: str = typer.Option("text", "--format", help="text or json"),
) -> None:
    """Check a policy against a file of expected decisions, like `opa test`.

    A case: {"name", "tool", "role", "args", "agent_attributes", "resource_attributes",
    "context", "expect": "Allow" | "Deny" | "Elevate" | {"decision", "rule" (0-based),
    "approvals_required", "reason", "reason_contains"}}. Exit 0 when every case passes,
    1 when one fails, 2 when the policy or the cases file cannot be used."""
    from rich.text import Text

    from .policy_tests import CasesError, format_text, load_cases_file, parse_cases, run_cases, summary

    if fmt not in ("text", "json"):
        raise _fail(f"--format: expected text or json, got '{fmt}'", 2)
    name, compiled, engine = _load_for(policy, semantics, 2)
    try:
        case_list = parse_cases(load_cases_file(cases))
    except CasesError as exc:
        raise _fail(f"{cases}: {exc}", 2) from None
    results = run_cases(engine, case_list)
    s = summary(results)
    if fmt == "json":
        doc = {"policy": name, "cases_file": str(cases), "semantics": compiled.semantics,
               "results": [r.to_dict() for r in results], **s}
        sys.stdout.write(orjson.dumps(doc).decode() + "\n")
    else:
        for line in format_text(results):
            style = {"PASS": "green", "FAIL": "bold red", "ERRO": "bold red"}.get(line[:4])
            text = Text(line)
            if style:
                text.stylize(style, 0, 5 if line.startswith("ERROR") else 4)
            out.print(text)
    raise typer.Exit(0 if s["passed"] == s["total"] else 1)


@app.command()
def explain(
    policy: str = typer.Argument(..., help="policy file, or a bundled example (crm, spec)"),
    tool: str = typer.Option(..., "--tool", help="tool name"),
    role: str = typer.Option(..., "--role", help="role"),
    args: Optional[str] = typer.Option(None, "--args", help="arguments as JSON"),
    agent: Optional[str] = typer.Option(None, "--agent", help="agent attributes as JSON"),
    resource: Optional[str] = typer.Option(None, "--resource", help="resource attributes as JSON"),
    context: Optional[str] = typer.Option(None, "--context", help="context as JSON"),
    semantics: str = SemanticsOpt,
    fmt: str = typer.Option("text", "--format", help="text or json"),
) -> None:
    """Show why a call gets its decision: every rule for (tool, role) in precedence order,
    each condition as a tree of T/F/U values with what the request holds, the deciding rule
    and the engine's exact reason. Exit 3 if this explanation and the engine disagree (a bug)."""
    from .explain import explain_request, render

    if fmt not in ("text", "json"):
        raise _fail(f"--format: expected text or json, got '{fmt}'", 2)
    request = {"args": _json_arg(args, "args"), "agent_attributes": _json_arg(agent, "agent"),
               "resource_attributes": _json_arg(resource, "resource"), "context": _json_arg(context, "context")}
    name, compiled, engine = _load_for(policy, semantics, 1)
    try:
        ex = explain_request(compiled, engine, tool, role, **request)
    except CallgateError as exc:
        raise _fail(str(exc)) from None
    if fmt == "json":
        doc = {"policy": name, **ex.to_dict()}
        sys.stdout.write(orjson.dumps(doc, default=_jsonable).decode() + "\n")
    else:
        # a terminal wraps long lines; a pipe gets them whole (a tree must not be cropped)
        console = Console(highlight=False) if out.is_terminal else Console(highlight=False, width=100_000)
        console.print(render(ex))
    if not ex.agrees:
        for problem in ex.problems:
            err.print(f"error: BUG: explain and the engine disagree: {problem}", markup=False)
        raise typer.Exit(3)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    raise TypeError


@app.command()
def schema() -> None:
    """Print the JSON Schema of policy files."""
    sys.stdout.write(orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")


@app.command()
def disasm(policy: str = typer.Argument(..., help="policy file"), semantics: str = SemanticsOpt) -> None:
    """Compile a policy and print its bytecode readably."""
    sys.stdout.write(bytecode.disassemble(_compiled(policy, semantics).blob))


@app.command("compile")
def compile_(policy: str = typer.Argument(..., help="policy file"),
             output: Path = typer.Option(..., "-o", "--output", help="where to write the blob"),
             semantics: str = SemanticsOpt) -> None:
    """Compile a policy to the blob the C core loads."""
    compiled = _compiled(policy, semantics)
    output.write_bytes(compiled.blob)
    out.print(f"wrote {output} ({len(compiled.blob)} bytes)")


@app.command("build-wasm")
def build_wasm(policy: str = typer.Argument(..., help="policy file"),
               output: Path = typer.Option(..., "-o", "--output", help="the module to write"),
               semantics: str = SemanticsOpt) -> None:
    """Write a self-contained WebAssembly module with this policy embedded (init(0, 0) loads it)."""
    from .wasm import embed_policy, wasm_path

    compiled = _compiled(policy, semantics)
    try:
        module = embed_policy(wasm_path().read_bytes(), compiled.blob)
    except (CallgateError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    output.write_bytes(module)
    out.print(f"wrote {output} ({len(module)} bytes, policy {compiled.version!r}, {semantics} semantics)")


@app.command()
def compare(calls: Path = typer.Argument(..., help="calls, one JSON object per line"),
            wasm: Path = typer.Option(..., "--wasm", help="a module with the perso ABI (e.g. perso.wasm)"),
            policy: str = typer.Option(..., "--policy", help="the policy both engines load"),
            semantics: str = typer.Option("perso", "--semantics", help="callgate's semantics (perso by default)"),
            as_json: bool = typer.Option(False, "--json")) -> None:
    """Run every call through callgate and another wasm module; report each call where the
    decisions differ. A line is {"tool", "args", "role", "agent_attributes", "resource_attributes"}
    (or the perso SDK's "agent_attrs" / "resource_attrs"). Exit 1 if any differ."""
    from .compare import compare_calls

    name, data = _policy_source(policy)
    try:
        report = compare_calls(calls, wasm, data, semantics)
    except (CallgateError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        sys.stdout.write(orjson.dumps(report).decode() + "\n")
    else:
        for diff in report["differences"]:
            out.print(f"line {diff['line']}: {diff['tool']} as {diff['role']}: callgate {_show(diff['callgate']['decision'])} "
                      f"vs other {_show(diff['other']['decision'])}")
            out.print(f"    callgate: {diff['callgate']['reason']}", markup=False)
            out.print(f"    other:    {diff['other']['reason']}", markup=False)
        out.print(f"{report['calls']} calls, {len(report['differences'])} differ")
    raise typer.Exit(1 if report["differences"] else 0)


def _register_extensions() -> None:
    """Commands that live with their subsystem (audit trail, MCP proxy): each module has
    register(app). A subsystem that is not there yet is simply not offered."""
    import importlib

    for name in ("callgate.audit_cli", "callgate.mcp_cli"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(app)


_register_extensions()


def main() -> None:
    try:
        app()
    except CallgateError as exc:  # anything not caught closer to its cause
        err.print(f"error: {exc}", markup=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
