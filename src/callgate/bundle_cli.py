"""`callgate bundle build | verify | status`: signed policy bundles (callgate.bundles,
docs/deploy.md). build packs a policy, its pins and its cases and signs them; verify checks
a bundle file as a replica would (signature, shape, the policy compiles, its cases pass);
status asks a running `callgate serve` for its active revision, when it was loaded and the
last error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import orjson

from . import textout
from .cli import add_command, add_group

if TYPE_CHECKING:
    from .cli import Commands


def _fail(message: str, code: int = 2) -> SystemExit:
    textout.error(message)
    return SystemExit(code)


def _json_file(path: Optional[str], what: str) -> Any:
    if path is None:
        return None
    from .policy_tests import load_cases_file

    try:
        if what == "cases":
            return load_cases_file(Path(path))
        return orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise _fail(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise _fail(f"{path}: not JSON: {exc}") from None


def build_cmd(args: argparse.Namespace) -> int:
    """Write a signed bundle of POLICY (with --pins and --cases) to -o."""
    from .bundles import build_bundle, load_private_key
    from .errors import CallgateError
    from .policy_files import read_policy

    try:
        policy = read_policy(args.policy).data
        key = load_private_key(args.key)
    except (CallgateError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    pins, cases = _json_file(args.pins, "pins"), _json_file(args.cases, "cases")
    try:
        data = build_bundle(policy, key=key, pins=pins, cases=cases, revision=args.revision)
    except (CallgateError, ValueError) as exc:
        raise _fail(f"cannot build: {exc}", 1) from None
    Path(args.output).write_bytes(data)
    from .bundles import verify_bundle

    bundle = verify_bundle(data, [key.public_key()])
    textout.echo(f"{args.output}: revision {bundle.revision}, signed by {bundle.keyid}")
    return 0


def verify_cmd(args: argparse.Namespace) -> int:
    """Check BUNDLE as a replica would before activating it; exit 1 when it would be refused."""
    from .bundles import BundleError, check_bundle, load_public_keys, verify_bundle

    try:
        keys = load_public_keys(args.key)
        data = Path(args.bundle).read_bytes()
    except (ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    try:
        bundle = verify_bundle(data, keys)
        check_bundle(bundle)
    except BundleError as exc:
        textout.echo(f"refused: {exc}")
        return 1
    cases = 0 if bundle.cases is None else len(bundle.cases.get("cases", []) if isinstance(bundle.cases, dict)
                                                else bundle.cases)
    textout.echo(f"ok: revision {bundle.revision}, signed by {bundle.keyid}, {cases} cases pass")
    return 0


def status_cmd(args: argparse.Namespace) -> int:
    """The active revision of a running `callgate serve` (its GET /v1/status)."""
    from .extras import require

    httpx = require("httpx", "callgate bundle status", "bundles")
    url = args.url.rstrip("/") + "/v1/status"
    try:
        response = httpx.get(url, timeout=5.0)
        status = response.json()["policy"]
    except Exception as exc:   # connection, HTTP or shape: one line
        raise _fail(f"{url}: no status ({exc})", 1) from None
    if args.json:
        sys.stdout.write(orjson.dumps(status).decode() + "\n")
    else:
        textout.echo(f"revision   {status.get('revision') or '(the policy file it started with)'}")
        textout.echo(f"version    {status.get('version')}")
        textout.echo(f"loaded at  {status.get('loaded_at')}")
        textout.echo(f"last error {status.get('last_error') or '(none)'}")
    return 0


def register(commands: "Commands") -> None:
    """Add `callgate bundle ...` to the command line (cli.build_parser)."""
    bundle = add_group(commands, "bundle", "Signed policy bundles: build, verify, status.")
    p = add_command(bundle, "build", build_cmd, "Pack and sign a policy, its pins and its cases.")
    p.add_argument("policy", metavar="POLICY", help="the policy file (JSON or YAML)")
    p.add_argument("--pins", metavar="PINS.json", help="the tool pins to ship with it")
    p.add_argument("--cases", metavar="CASES", help="its cases: every replica runs them before activating it")
    p.add_argument("--key", required=True, metavar="KEY.pem", help="the Ed25519 private key to sign with")
    p.add_argument("--revision", help="the revision name (default: a digest of the contents)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write the bundle")

    p = add_command(bundle, "verify", verify_cmd, "Check a bundle as a replica would (exit 1: it would be refused).")
    p.add_argument("bundle", metavar="BUNDLE", help="the bundle file")
    p.add_argument("--key", required=True, action="append", metavar="PUBKEY.pem", help="a trusted key (repeatable)")

    p = add_command(bundle, "status", status_cmd, "The active revision of a running callgate serve.")
    p.add_argument("url", metavar="URL", help="the service's base URL (http://127.0.0.1:8181)")
    p.add_argument("--json", action="store_true", help="one JSON object")
