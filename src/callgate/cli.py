"""The `callgate` command line, on the standard library's argparse (the base install has no
typer or rich; callgate.textout draws colour, tables and trees).

This module holds the parser and the engine's commands (eval, check, test, explain, schema,
disasm, compile, build-wasm, compare); audit_cli and mcp_cli add theirs through
`register(commands)`. Every error is one line on stderr (``error: rules[3].condition...:
unknown op 'Ne'...``), argparse's own included, and never a traceback. Exit status: 0 fine,
1 a failed run (an invalid policy, a failing case, differing decisions), 2 bad usage or
input that cannot be used (where a command documents its own codes, it keeps them:
`test` 0/1/2, `explain` 3 on a disagreement).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, List, NoReturn, Optional, Sequence

import orjson

from . import examples, textout
from .errors import CallgateError, RequestError
from .version import __version__

SEMANTICS = ("strict", "perso")
DECISION_STYLE = {"Allow": "bold green", "Deny": "bold red", "Elevate": "bold yellow"}
# what to install when an optional module is missing (the command's own extra comes first)
EXTRA_OF_COMMAND = {"audit": "audit", "replay": "audit", "proxy": "mcp", "pins": "mcp", "demo": "mcp",
                    "compare": "wasm", "token": "principals", "init": "mcp", "serve": "service",
                    "bundle": "bundles"}
EXTRA_OF_MODULE = {"psycopg": "audit", "cryptography": "audit", "httpx": "audit", "wasmtime": "wasm",
                   "mcp": "mcp", "anyio": "mcp", "jwt": "mcp", "uvicorn": "mcp", "starlette": "mcp",
                   "rich": "mcp", "yaml": "yaml"}
_DISTRIBUTION = {"jwt": "PyJWT", "yaml": "PyYAML"}

if TYPE_CHECKING:
    from .compiler import Compiled
    from .policy_files import PolicySource

    # what add_subparsers returns: where a module's register(commands) adds its commands
    Commands = argparse._SubParsersAction["Parser"]


# ---------------------------------------------------------------- the parser


class UsageError(Exception):
    """Bad usage found by argparse: `message` (one line), `prog` the (sub)command it concerns."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.message = message
        self.prog = prog


class Parser(argparse.ArgumentParser):
    """argparse with callgate's manners: an error is raised (main prints it on one line, exit
    2) instead of a usage block; no abbreviated options (`--pol` is not `--policy`: a typo
    must not silently mean something); help text keeps its line breaks. Subcommand parsers
    are of this class too (add_subparsers uses the parent's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Raise UsageError (one line) rather than print usage and exit."""
        raise UsageError(_usage_text(message), self.prog)


def _usage_text(message: str) -> str:
    """argparse's message, said the way callgate says errors: `--tool: expected one argument`."""
    message = textout.one_line(message)
    if message.startswith("argument "):
        message = message[len("argument "):]
    message = re.sub(r"invalid int value: (.*)$", r"expected an integer, got \1", message)
    message = re.sub(r"invalid float value: (.*)$", r"expected a number, got \1", message)
    command = re.fullmatch(r"COMMAND: invalid choice: (.*?) \(choose from (.*)\)", message)
    if command:
        return f"unknown command {command.group(1)}; the commands are {command.group(2).replace(chr(39), '')}"
    return message


def choice(*allowed: str) -> Callable[[str], str]:
    """An argparse type: one of `allowed`, else `expected a or b, got 'x'`."""

    def check(value: str) -> str:
        if value not in allowed:
            wanted = ", ".join(allowed[:-1]) + f" or {allowed[-1]}" if len(allowed) > 1 else allowed[0]
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {value!r}")
        return value

    check.__name__ = "choice"
    return check


def count(value: str) -> int:
    """An argparse type: an integer >= 0."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {n}")
    return n


def add_semantics(parser: argparse.ArgumentParser, default: str = "strict") -> None:
    """Add the --semantics option (strict or perso)."""
    parser.add_argument("--semantics", type=choice(*SEMANTICS), default=default, metavar="strict|perso",
                        help=f"strict or perso (default {default})")


def add_command(commands: Commands, name: str, run: Callable[[argparse.Namespace], int], doc: str,
                **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand: its help line is the first line of `doc`, its description all of it."""
    parser = commands.add_parser(name, help=doc.strip().splitlines()[0], description=doc.strip(), **kwargs)
    parser.set_defaults(run=run, parser=parser)
    return parser


def add_group(commands: Commands, name: str, doc: str) -> Commands:
    """A command with subcommands of its own (`callgate audit ...`): given alone, it prints
    its help (exit 2). Returns the subparsers to add them to."""
    parser = commands.add_parser(name, help=doc.strip().splitlines()[0], description=doc.strip())
    parser.set_defaults(run=None, parser=parser)
    return parser.add_subparsers(title="commands", metavar="COMMAND", dest=f"{name}_command")


def build_parser() -> Parser:
    """The whole command line: the engine's commands, then those of each subsystem present."""
    parser = Parser(prog="callgate", description="callgate: decide whether an AI agent's tool call may run.")
    parser.add_argument("--version", action="version", version=f"callgate {__version__}")
    parser.set_defaults(run=None, parser=parser)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    _register_engine_commands(commands)
    _register_extensions(commands)
    return parser


def _register_extensions(commands: Commands) -> None:
    """Commands that live with their subsystem (audit trail, MCP proxy): each module has
    register(commands). A subsystem that is not there is simply not offered."""
    import importlib

    for name in ("callgate.audit_cli", "callgate.mcp_cli", "callgate.token_cli", "callgate.hosts_cli",
                 "callgate.init_cli", "callgate.playground_cli", "callgate.serve_cli", "callgate.bundle_cli"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(commands)


# ---------------------------------------------------------------- entry point


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line on `argv` and return its exit status. Without `argv` (the
    `callgate` console script, `python -m callgate`) the arguments are sys.argv's and the
    process exits with that status."""
    status = _run(list(sys.argv[1:] if argv is None else argv))
    if argv is None:
        sys.exit(status)
    return status


def _run(argv: List[str]) -> int:
    try:
        parser = build_parser()
        args = _parse(parser, argv)
    except UsageError as exc:
        textout.error(f"{exc.message} (see: {exc.prog} --help)")
        return 2
    except SystemExit as exc:  # --help, --version
        return _status(exc)
    if args.run is None:  # `callgate` or `callgate audit` alone
        args.parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except SystemExit as exc:  # a command's one-line error (already printed) or its status
        return _status(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `callgate audit query ... | head`: the reader has what it wanted
        _quiet_stdout()
        return 1
    except ImportError as exc:
        message = _missing_module(exc, args)
        if message is None:
            raise
        textout.error(message)
        return 2
    except CallgateError as exc:  # anything not caught closer to its cause
        textout.error(str(exc))
        return 1
    except OSError as exc:  # a file that cannot be read or written, where no command expected it
        where = f"{exc.filename}: " if exc.filename else ""
        textout.error(f"{where}{exc.strerror or exc}")
        return 1


def _parse(parser: Parser, argv: List[str]) -> argparse.Namespace:
    """Parse argv. What follows the first `--` is a server command for the commands that run
    one (they have `server_command`): it is taken as is, options and further `--` included;
    for the others `--` keeps its usual meaning."""
    if "--" not in argv:
        return _parse_all(parser, argv)
    cut = argv.index("--")
    try:
        args = _parse_all(parser, argv[:cut])
    except UsageError:
        args = None
    if args is None or not hasattr(args, "server_command"):
        return _parse_all(parser, argv)
    args.server_command = [*args.server_command, *argv[cut + 1:]]
    return args


def _parse_all(parser: Parser, argv: List[str]) -> argparse.Namespace:
    """parse_args, but an unknown argument is blamed on the (sub)command it was given to, so
    that the error points at that command's --help."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        raise UsageError(f"unrecognized arguments: {' '.join(extras)}", getattr(args, "parser", parser).prog)
    return args


def _status(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    textout.error(str(exc.code))
    return 1


def _quiet_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush is silent."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _missing_module(exc: ImportError, args: argparse.Namespace) -> Optional[str]:
    """The one line for an optional dependency that is not installed (None: not one of ours)."""
    if isinstance(exc, CallgateError):  # callgate.extras already says which extra
        return str(exc)
    name = (getattr(exc, "name", None) or "").partition(".")[0]
    if name not in EXTRA_OF_MODULE:
        return None
    extra = EXTRA_OF_COMMAND.get(getattr(args, "command", None) or "", EXTRA_OF_MODULE[name])
    command = getattr(args, "command", None) or "this command"
    return (f"callgate {command} needs {_DISTRIBUTION.get(name, name)}, which is not installed: "
            f"pip install 'callgate[{extra}]'")


# ---------------------------------------------------------------- shared helpers


def _fail(message: str, code: int = 1) -> SystemExit:
    textout.error(message)
    return SystemExit(code)


def show(decision: str) -> textout.Text:
    """A decision, coloured on a terminal."""
    return textout.Text(decision, DECISION_STYLE.get(decision, "bold"))


def _policy_source(policy: Optional[str], code: int = 1) -> tuple[str, PolicySource]:
    """A policy file (JSON, or YAML by its name), or the name of a bundled example ('crm',
    'spec'); none means 'crm'. The name and its policy_files.PolicySource; a file that cannot
    be read or decoded is one line placing the problem (FILE:LINE:COLUMN: PATH: MESSAGE)."""
    from .policy_files import PolicySource, read_policy

    name = policy or "crm"
    if name in examples.EXAMPLES and not Path(name).exists():
        return name, PolicySource(examples.policy(name))
    try:
        return name, read_policy(name)
    except (CallgateError, ValueError) as exc:
        raise _fail(str(exc), code) from None


def _compiled(policy: str, semantics: str) -> Compiled:
    """Compile a policy file or bundled example; a bad policy is one error line."""
    _, src = _policy_source(policy)
    try:
        return src.compile(semantics)
    except (CallgateError, ValueError) as exc:
        raise _fail(str(exc)) from None


def _load_for(policy: str, semantics: str, code: int) -> tuple[str, Any, Any]:
    """Read and compile a policy for `test` / `explain`: any problem is one line naming the
    file (exit `code`)."""
    from .engine import Engine

    name, src = _policy_source(policy, code)
    try:
        compiled = src.compile(semantics)
        return name, compiled, Engine(compiled)
    except (CallgateError, ValueError) as exc:
        raise _fail(str(exc) if src.file else f"{name}: {exc}", code) from None


def _write(option: str, path: Path, data: bytes) -> None:
    """Write an output file; a path that cannot be written is one line saying why (exit 2)."""
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise _fail(f"{option} {path}: cannot write: {why_unwritable(path, exc)}", 2) from None


def why_unwritable(path: Path, exc: OSError) -> str:
    """Why `path` could not be written, naming a missing directory (callgate creates none)."""
    parent = Path(path).parent
    if not parent.is_dir():
        return f"the directory {parent} does not exist (create it first)"
    return exc.strerror or str(exc)


# ---------------------------------------------------------------- JSON options


PROBE_CONTEXT = b'{"role":"-","agent_attrs":{},"resource_attrs":{}}'
OBJECT_OPTIONS = (("args", "--args", "arguments"), ("agent", "--agent", "agent attributes"),
                  ("resource", "--resource", "resource attributes"), ("context", "--context", "the host's context"))


def add_request_options(parser: argparse.ArgumentParser) -> None:
    """Add --args, --agent, --resource and --context (each a JSON object, or @FILE)."""
    for dest, flag, what in OBJECT_OPTIONS:
        parser.add_argument(flag, dest=dest, metavar="JSON",
                            help=f"{what} as a JSON object, or @FILE to read it from a file")


def add_chain_options(parser: argparse.ArgumentParser) -> None:
    """Add --chain and --trust-issuer (a principal chain token, and the issuers it may come from)."""
    parser.add_argument("--chain", metavar="TOKEN", help="the caller's principal chain token, or @FILE holding it")
    parser.add_argument("--trust-issuer", action="append", default=[], metavar="ISS=PUBKEY.pem",
                        help="verify chain tokens of issuer ISS with this public key (repeatable)")


def trusted_issuers(specs: list[str]) -> list[tuple[str, str]]:
    """--trust-issuer ISS=PUBKEY.pem values as (issuer, key file), each key loaded now as the
    issuer it names would be (principals.make_issuer): one line (exit 2) for one that cannot
    be used. Every command taking --trust-issuer reads it here."""
    from .principals import make_issuer

    out = []
    for spec in specs:
        issuer, sep, key = spec.partition("=")
        if not sep or not issuer or not key:
            raise _fail(f"--trust-issuer {spec}: expected ISSUER=PUBKEY.pem", 2)
        if not Path(key).is_file():
            raise _fail(f"--trust-issuer {spec}: no such key file {key}", 2)
        try:
            make_issuer(issuer, key)
        except (ValueError, TypeError, OSError) as exc:
            raise _fail(f"--trust-issuer {spec}: {exc}", 2) from None
        out.append((issuer, key))
    return out


def chain_option(engine: Any, args: argparse.Namespace) -> Optional[str]:
    """Trust the --trust-issuer keys in `engine` and return the --chain token (None without
    one); one line (exit 2) for a key or token file that cannot be used."""
    for issuer, key in trusted_issuers(args.trust_issuer):
        engine.trust_issuer(issuer, key)
    token: Optional[str] = args.chain
    if token is not None and token.startswith("@"):
        try:
            token = Path(token[1:]).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"--chain {args.chain}: cannot read the token: {exc}", 2) from None
    if token is not None and not args.trust_issuer:
        raise _fail("--chain needs --trust-issuer ISS=PUBKEY.pem: a chain is verified, never trusted as given", 2)
    return token


def json_option(engine: Any, text: Optional[str], option: str) -> Optional[dict[str, Any]]:
    """The JSON object an option holds (`@FILE`: the file's), read as strictly as the engine
    reads a request: duplicate keys, numbers beyond a double and lone surrogates are refused
    (`--args: duplicate key "a" at byte 8`), and anything but an object is a type error.
    Each is one line naming the option (exit 2)."""
    if text is None:
        return None
    where = option
    if text.startswith("@"):
        where = f"{option} {text}"
        try:
            data = Path(text[1:]).read_bytes()
        except OSError as exc:
            raise _fail(f"{where}: cannot read the file: {exc.strerror or exc}", 2) from None
    else:
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            raise _fail(f"{where}: not valid UTF-8", 2) from None
    from .values import loads_exact

    try:
        value = loads_exact(data)
    except ValueError as exc:
        raise _fail(f"{where}: not valid JSON ({exc})", 2) from None
    if not isinstance(value, dict):
        raise _fail(f"{where}: expected a JSON object, got {_json_type(value)}", 2)
    problem = _strict_problem(engine, data)
    if problem is not None:
        raise _fail(f"{where}: {problem}", 2)
    obj: dict[str, Any] = value   # (JSON object keys are strings)
    return obj


def _strict_problem(engine: Any, data: bytes) -> Optional[str]:
    """What the engine's own reader refuses in `data` (read as a call's arguments, so that
    offsets are the option's), or None."""
    try:
        engine.evaluate_json(b"-", data, PROBE_CONTEXT)
    except RequestError as exc:
        if exc.code == "duplicate_key" and exc.offset is not None:
            return f"duplicate key {_key_at(data, exc.offset)} at byte {exc.offset}"
        return f"{exc.message} at byte {exc.offset}" if exc.offset is not None else exc.message
    return None


def _key_at(data: bytes, offset: int) -> str:
    """The object key whose text starts at byte `offset` (just after its opening quote), as JSON."""
    try:
        text = data.decode("utf-8")
        # (json.decoder.scanstring exists, but typeshed does not declare it)
        key, _ = json.decoder.scanstring(text, len(data[:offset].decode("utf-8", "ignore")))  # type: ignore[attr-defined]
        return orjson.dumps(key).decode()
    except (ValueError, UnicodeDecodeError):
        return "(unreadable)"


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number",
            type(None): "null"}.get(type(value), type(value).__name__)


# ---------------------------------------------------------------- the engine's commands


def check(args: argparse.Namespace) -> int:
    """`callgate check`: print every finding in file order; exit 1 when one is an error."""
    from .lint import lint

    name, src = _policy_source(args.policy)
    data = src.data
    findings = lint(src, args.semantics)
    if args.server_command or args.url:
        findings += _server_findings(src, args)
    for f in findings:  # in file order, on one stream (errors, warnings and notes interleave)
        textout.echo(f"{f.place}: {f}" if f.place else f"{f}")
    if any(f.level == "error" for f in findings):
        errors = sum(f.level == "error" for f in findings)
        textout.echo(f"{name}: {errors} error{'s' * (errors != 1)}")
        return 1
    warnings = sum(f.level == "warning" for f in findings)
    notes = sum(f.level == "note" for f in findings)
    extra = f", {notes} note{'s' * (notes != 1)}" if notes else ""
    textout.echo(f"{name}: ok ({len(data.get('rules', []))} rules, {warnings} warning{'s' * (warnings != 1)}{extra})")
    return 0


def _server_findings(src: Any, args: argparse.Namespace) -> list[Any]:
    """`check --server`: the policy against the live server's listing (server_check)."""
    from .server_check import ListingError, compare, live_tools

    try:
        compiled = src.compile(args.semantics)
    except CallgateError:
        return []   # lint has reported why it does not compile
    pins = None
    if args.pins is not None:
        from .mcp.pins import PinStore

        if not args.pins.is_file():
            raise _fail(f"--pins {args.pins}: no such file", 2)
        try:
            pins = {name: str(pin.get("digest")) for name, pin in PinStore(args.pins).pins().items()}
        except (OSError, ValueError) as exc:
            raise _fail(f"--pins {args.pins}: {exc}", 2) from None
    try:
        tools = live_tools(args.server_command, args.url)
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    except ListingError as exc:
        raise _fail(str(exc), 1) from None
    from .lint import Finding

    out = []
    for f in compare(compiled, tools, pins):   # placed in the file, as lint places its own
        where = src.position(f.location, False)
        out.append(f if where is None else Finding(f.level, f.location, f.message, src.file, *where))
    return out


def eval_(args: argparse.Namespace) -> int:
    """`callgate eval`: decide one call (--tool, --role), or run a cases file (or the bundled
    example's cases); exit 1 when a case does not hold."""
    from .engine import Engine

    name, src = _policy_source(args.policy)
    try:
        engine = Engine(src.compile(args.semantics))
    except (CallgateError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if args.tool is None:
        given = [flag for dest, flag in (("role", "--role"), *((d, f) for d, f, _ in OBJECT_OPTIONS))
                 if getattr(args, dest) is not None]
        if given:
            raise _fail(f"{', '.join(given)} describe one call: give --tool too (without it, eval runs cases)", 2)
        return _run_cases(engine, name, args.cases, args.json)
    if args.role is None:
        raise _fail("--role is required with --tool", 2)
    if args.cases is not None:
        raise _fail("--cases runs a file of cases: give it without --tool", 2)
    request = {dest: json_option(engine, getattr(args, dest), flag) for dest, flag, _ in OBJECT_OPTIONS}
    chain = chain_option(engine, args)
    try:
        d = engine.evaluate(args.tool, request["args"], role=args.role, agent_attributes=request["agent"],
                            resource_attributes=request["resource"], context=request["context"], chain=chain)
    except CallgateError as exc:
        raise _fail(str(exc), 2 if isinstance(exc, RequestError) else 1) from None
    if args.json:
        sys.stdout.write(orjson.dumps(d.to_dict()).decode() + "\n")
    else:
        textout.echo(show(d.decision).append(f"  {d.reason}"))
    return 0


def _run_cases(engine: Any, name: str, cases_path: Optional[Path], as_json: bool) -> int:
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
    rows, table = [], []
    for r in results:
        got = r.got or {"decision": "Error", "reason": r.error}
        rows.append({"name": r.case.name, "tool": r.case.tool, "role": r.case.role, "decision": got["decision"],
                     "reason": got["reason"], "expected": r.case.expect, "ok": r.passed, "failures": r.failures})
        decision = show(got["decision"])
        if not r.passed:
            decision.append(f" ({'; '.join(r.failures)})", "bold red")
        table.append([f"{r.case.tool}({orjson.dumps(r.case.args or {}).decode()})", r.case.role, decision,
                      got["reason"]])
    mismatches = sum(not r.passed for r in results)
    if as_json:
        sys.stdout.write(orjson.dumps({"results": rows, "mismatches": mismatches}).decode() + "\n")
    else:
        textout.echo_all(textout.table(("call", "role", "decision", "reason"), table,
                                       title=f"callgate eval: {name} ({engine.semantics} semantics)"))
        textout.echo(f"{len(rows)} calls, {sum(r['decision'] == 'Allow' for r in rows)} allowed, "
                     f"{mismatches} unexpected")
    return 1 if mismatches else 0


def test_(args: argparse.Namespace) -> int:
    """`callgate test`: run a cases file against a policy; exit 0 all pass, 1 a failure, 2 bad input."""
    from .policy_tests import CasesError, format_text, load_cases_file, parse_cases, run_cases, summary

    name, compiled, engine = _load_for(args.policy, args.semantics, 2)
    try:
        case_list = parse_cases(load_cases_file(args.cases))
    except CasesError as exc:
        raise _fail(f"{args.cases}: {exc}", 2) from None
    results = run_cases(engine, case_list)
    s = summary(results)
    if args.format == "json":
        doc = {"policy": name, "cases_file": str(args.cases), "semantics": compiled.semantics,
               "results": [r.to_dict() for r in results], **s}
        sys.stdout.write(orjson.dumps(doc).decode() + "\n")
    else:
        for line in format_text(results):
            head = 5 if line.startswith("ERROR") else 4
            style = {"PASS": "green", "FAIL": "bold red", "ERRO": "bold red"}.get(line[:4])
            textout.echo(textout.Text(line[:head], style).append(line[head:]) if style else line)
    return 0 if s["passed"] == s["total"] else 1


def explain(args: argparse.Namespace) -> int:
    """`callgate explain`: show why one call gets its decision; exit 3 if explain and the engine disagree."""
    from .explain import explain_request, render

    name, compiled, engine = _load_for(args.policy, args.semantics, 1)
    request = {"args": json_option(engine, args.args, "--args"),
               "agent_attributes": json_option(engine, args.agent, "--agent"),
               "resource_attributes": json_option(engine, args.resource, "--resource"),
               "context": json_option(engine, args.context, "--context"),
               "chain": chain_option(engine, args)}
    try:
        ex = explain_request(compiled, engine, args.tool, args.role, **request)
    except CallgateError as exc:
        raise _fail(str(exc), 2 if isinstance(exc, RequestError) else 1) from None
    if args.format == "json":
        doc = {"policy": name, **ex.to_dict()}
        sys.stdout.write(orjson.dumps(doc, default=_jsonable).decode() + "\n")
    else:
        textout.echo_all(render(ex))  # whole lines: a tree must not be cropped (a terminal wraps them)
    if not ex.agrees:
        for problem in ex.problems:
            textout.error(f"BUG: explain and the engine disagree: {problem}")
        return 3
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    raise TypeError


def schema(args: argparse.Namespace) -> int:
    """`callgate schema`: print the policy JSON Schema."""
    from .policy import json_schema

    sys.stdout.write(orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def disasm(args: argparse.Namespace) -> int:
    """`callgate disasm`: print a policy's compiled bytecode."""
    from . import bytecode

    sys.stdout.write(bytecode.disassemble(_compiled(args.policy, args.semantics).blob))
    return 0


def compile_(args: argparse.Namespace) -> int:
    """`callgate compile`: write the blob the C core loads."""
    compiled = _compiled(args.policy, args.semantics)
    _write("-o", args.output, compiled.blob)
    textout.echo(f"wrote {args.output} ({len(compiled.blob)} bytes)")
    return 0


def build_wasm(args: argparse.Namespace) -> int:
    """`callgate build-wasm`: write a wasm module with the policy embedded."""
    from .wasm import embed_policy, wasm_path

    compiled = _compiled(args.policy, args.semantics)
    try:
        module = embed_policy(wasm_path().read_bytes(), compiled.blob)
    except (CallgateError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    _write("-o", args.output, module)
    textout.echo(f"wrote {args.output} ({len(module)} bytes, policy {compiled.version!r}, {args.semantics} semantics)")
    return 0


def compare(args: argparse.Namespace) -> int:
    """`callgate compare`: report every call another perso-ABI module decides differently; exit 1 if any."""
    from .compare import compare_calls

    name, src = _policy_source(args.policy)
    try:
        report = compare_calls(args.calls, args.wasm, src.data, args.semantics)
    except (CallgateError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    if args.json:
        sys.stdout.write(orjson.dumps(report).decode() + "\n")
    else:
        for diff in report["differences"]:
            line = textout.Text(f"line {diff['line']}: {diff['tool']} as {diff['role']}: callgate ")
            line.extend(show(diff["callgate"]["decision"])).append(" vs other ").extend(show(diff["other"]["decision"]))
            textout.echo(line)
            textout.echo(f"    callgate: {diff['callgate']['reason']}")
            textout.echo(f"    other:    {diff['other']['reason']}")
        textout.echo(f"{report['calls']} calls, {len(report['differences'])} differ")
    return 1 if report["differences"] else 0


def _register_engine_commands(commands: Commands) -> None:
    p = add_command(commands, "check", check, """Validate a policy and warn about risky corners; exit 1 on errors.

Warns about fail-open corners and rules that never apply; notes v2 constructs in a "perso-"
file (what the original engine does with them). With --server -- SERVER_COMMAND (or --url),
also compares the policy with the live server's tools: fields the policy reads that a
schema lacks, unconstrained parameters of write and destructive tools, undeclared tools,
tools changed since their --pins, annotations that disagree with the tiers.""")
    p.add_argument("policy", metavar="POLICY", help="policy file, or a bundled example (crm, spec, ops)")
    add_semantics(p)
    p.add_argument("--server", dest="server_command", nargs=argparse.REMAINDER, default=[],
                   metavar="-- SERVER_COMMAND", help="compare with a live stdio MCP server: --server -- CMD [ARGS...]")
    p.add_argument("--url", help="compare with a live Streamable HTTP MCP server")
    p.add_argument("--pins", type=Path, metavar="PINS.json", help="with --server/--url: the reviewed definitions")

    p = add_command(commands, "eval", eval_, """Decide one call (--tool/--role), or run a file of cases (the bundled example's by default).

Exit 0 when every case holds, 1 when one does not.""")
    p.add_argument("policy", metavar="POLICY", nargs="?",
                   help="policy file, or a bundled example (crm, spec, ops); default crm")
    p.add_argument("--tool", help="tool name; without it, run the example's cases")
    p.add_argument("--role", help="the caller's role (with --tool)")
    add_request_options(p)
    add_chain_options(p)
    p.add_argument("--cases", type=Path, metavar="FILE", help='a cases file ({"cases": [...]}) to run')
    add_semantics(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add_command(commands, "test", test_, """Check a policy against a file of expected decisions, like `opa test`.

A case: {"name", "tool", "role", "args", "agent_attributes", "resource_attributes",
"context", "expect": "Allow" | "Deny" | "Elevate" | {"decision", "rule" (0-based),
"approvals_required", "reason", "reason_contains"}}. Exit 0 when every case passes,
1 when one fails, 2 when the policy or the cases file cannot be used.""")
    p.add_argument("policy", metavar="POLICY", help="policy file, or a bundled example (crm, spec, ops)")
    p.add_argument("cases", metavar="CASES", type=Path, help="cases file: .json (or .yaml/.yml with PyYAML)")
    add_semantics(p)
    p.add_argument("--format", type=choice("text", "json"), default="text", metavar="text|json",
                   help="text (default) or json")

    p = add_command(commands, "explain", explain, """Show why a call gets its decision.

Every rule for (tool, role) in precedence order, each condition as a tree of T/F/U values
with what the request holds, the deciding rule and the engine's exact reason. Exit 3 if
this explanation and the engine disagree (a bug).""")
    p.add_argument("policy", metavar="POLICY", help="policy file, or a bundled example (crm, spec, ops)")
    p.add_argument("--tool", required=True, help="tool name")
    p.add_argument("--role", required=True, help="role")
    add_request_options(p)
    add_chain_options(p)
    add_semantics(p)
    p.add_argument("--format", type=choice("text", "json"), default="text", metavar="text|json",
                   help="text (default) or json")

    add_command(commands, "schema", schema, "Print the JSON Schema of policy files.")

    p = add_command(commands, "disasm", disasm, "Compile a policy and print its bytecode readably.")
    p.add_argument("policy", metavar="POLICY", help="policy file")
    add_semantics(p)

    p = add_command(commands, "compile", compile_, "Compile a policy to the blob the C core loads.")
    p.add_argument("policy", metavar="POLICY", help="policy file")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="BLOB", help="where to write the blob")
    add_semantics(p)

    p = add_command(commands, "build-wasm", build_wasm,
                    "Write a self-contained WebAssembly module with this policy embedded (init(0, 0) loads it).")
    p.add_argument("policy", metavar="POLICY", help="policy file")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="MODULE", help="the module to write")
    add_semantics(p)

    p = add_command(commands, "compare", compare, """Run every call through callgate and another wasm module; report each call where the decisions differ.

A line is {"tool", "args", "role", "agent_attributes", "resource_attributes"} (or the perso
SDK's "agent_attrs" / "resource_attrs"). Exit 1 if any differ.""")
    p.add_argument("calls", metavar="CALLS", type=Path, help="calls, one JSON object per line")
    p.add_argument("--wasm", type=Path, required=True, help="a module with the perso ABI (e.g. perso.wasm)")
    p.add_argument("--policy", required=True, help="the policy both engines load")
    add_semantics(p, default="perso")
    p.add_argument("--json", action="store_true", help="machine-readable output")


if __name__ == "__main__":
    main()
