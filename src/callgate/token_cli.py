"""`callgate token mint | attenuate | inspect`: principal chain tokens for development, tests
and checking one (docs/principals.md). The host's identity provider issues real tokens;
these commands make the same kind of token with a local key and show what callgate makes of
any token: its chain, the effective scopes, or why it is refused.
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

_ISSUER_HELP = "ISS=PUBKEY.pem (repeatable): an issuer to trust and its public key"


def _fail(message: str, code: int = 2) -> SystemExit:
    textout.error(message)
    return SystemExit(code)


def _read_token(text: str) -> str:
    """A token given as text, @FILE or - (stdin)."""
    if text == "-":
        return sys.stdin.read().strip()
    if text.startswith("@"):
        try:
            return Path(text[1:]).read_text().strip()
        except OSError as exc:
            raise _fail(f"{text}: cannot read: {exc.strerror or exc}") from None
    return text.strip()


def trust_from(specs: list[str], audience: Optional[str] = None) -> Any:
    """A principals.Trust from --trust-issuer ISS=PUBKEY.pem options (one-line errors)."""
    from .principals import Trust

    trust = Trust()
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise _fail(f"--trust-issuer {spec!r}: expected ISS=PUBKEY.pem")
        try:
            trust.trust_issuer(name, Path(path), audience=audience)
        except ValueError as exc:
            raise _fail(f"--trust-issuer {name}: {exc}") from None
    return trust


def mint_cmd(args: argparse.Namespace) -> int:
    """Print a chain token signed with --key."""
    from .principals import mint

    try:
        token = mint(Path(args.key), issuer=args.iss, subject=args.sub, agents=args.agent or [],
                     scopes=args.scope or [], ttl=args.ttl, audience=args.aud,
                     holder=Path(args.holder_key) if args.holder_key else None)
    except (OSError, ValueError, TypeError) as exc:
        raise _fail(f"cannot mint: {exc}") from None
    sys.stdout.write(token + "\n")
    return 0


def attenuate_cmd(args: argparse.Namespace) -> int:
    """Print TOKEN with one more link, signed with the holder's --key."""
    from .principals import attenuate

    try:
        token = attenuate(_read_token(args.token), Path(args.key), delegate=args.delegate, scopes=args.scope or [],
                          ttl=args.ttl, audience=args.aud,
                          delegate_key=Path(args.delegate_key) if args.delegate_key else None)
    except (OSError, ValueError, TypeError) as exc:
        raise _fail(f"cannot attenuate: {exc}") from None
    sys.stdout.write(token + "\n")
    return 0


def inspect_cmd(args: argparse.Namespace) -> int:
    """The chain TOKEN carries (and its effective scopes under --policy), or why it is
    refused (exit 1)."""
    from .principals import ChainError, effective_scopes

    trust = trust_from(args.trust_issuer or [], args.audience)
    try:
        chain = trust.verify(_read_token(args.token))
    except ChainError as exc:
        if args.json:
            sys.stdout.write(orjson.dumps({"ok": False, "code": exc.code, "reason": exc.message,
                                           "link": exc.link}).decode() + "\n")
        else:
            textout.echo(f"refused ({exc.code}): {exc.message}")
        return 1
    ceilings, default = None, None
    if args.policy:
        from .errors import CallgateError
        from .policy_files import read_policy

        try:
            data = read_policy(args.policy).data
        except CallgateError as exc:
            raise _fail(str(exc)) from None
        ceilings = {k: v.get("max_scopes", []) for k, v in (data.get("principals") or {}).items()
                    if isinstance(v, dict)}
        pd = data.get("principals_default")
        default = pd.get("max_scopes") if isinstance(pd, dict) else None
    effective = effective_scopes(chain, ceilings, default)
    doc = {"ok": True, "chain": chain.label, "user": chain.user, "agents": list(chain.agents), "actor": chain.actor,
           "depth": chain.depth, "issuer": chain.issuer, "form": chain.form, "jti": chain.jti,
           "token_scopes": sorted(chain.scopes), "effective_scopes": sorted(effective), "expires": chain.expires}
    if args.json:
        sys.stdout.write(orjson.dumps(doc).decode() + "\n")
    else:
        textout.echo(f"chain     {chain.label}  ({chain.form}, issuer {chain.issuer})")
        textout.echo(f"scopes    {', '.join(sorted(chain.scopes)) or '(none)'}")
        textout.echo(f"effective {', '.join(sorted(effective)) or '(none)'}")
    return 0


def register(commands: "Commands") -> None:
    """Add `callgate token ...` to the command line (cli.build_parser)."""
    token = add_group(commands, "token", "Principal chain tokens: mint, attenuate, inspect.")
    p = add_command(token, "mint", mint_cmd, "A chain token signed with a local key (development and tests).")
    p.add_argument("--key", required=True, metavar="KEY.pem", help="the issuer's private key (PEM)")
    p.add_argument("--iss", required=True, help="the issuer (iss)")
    p.add_argument("--sub", required=True, help="the user the chain acts for (sub)")
    p.add_argument("--agent", action="append", metavar="A", help="an agent of the chain, in order (repeatable)")
    p.add_argument("--scope", action="append", metavar="S", help="a scope (repeatable)")
    p.add_argument("--ttl", type=float, default=600.0, metavar="SECONDS", help="lifetime (default 600)")
    p.add_argument("--aud", help="the audience (the resource the token is for)")
    p.add_argument("--holder-key", metavar="PUB.pem", help="the Ed25519 public key of the last link, to delegate")

    p = add_command(token, "attenuate", attenuate_cmd, "TOKEN with one more, narrower link (offline delegation).")
    p.add_argument("token", help="the token (text, @FILE or -)")
    p.add_argument("--key", required=True, metavar="KEY.pem", help="the current holder's Ed25519 private key")
    p.add_argument("--delegate", required=True, help="the new link (the agent delegated to)")
    p.add_argument("--scope", action="append", metavar="S", help="a scope it keeps (repeatable; a subset)")
    p.add_argument("--ttl", type=float, default=300.0, metavar="SECONDS", help="lifetime (default 300)")
    p.add_argument("--aud", help="a narrower audience")
    p.add_argument("--delegate-key", metavar="PUB.pem", help="the delegate's Ed25519 public key, to delegate further")

    p = add_command(token, "inspect", inspect_cmd, "The chain a token carries, or why it is refused (exit 1).")
    p.add_argument("token", help="the token (text, @FILE or -)")
    p.add_argument("--trust-issuer", action="append", metavar="ISS=PUBKEY.pem", help=_ISSUER_HELP)
    p.add_argument("--audience", help="the audience expected (this resource)")
    p.add_argument("--policy", metavar="POLICY", help="apply the policy's principal ceilings")
    p.add_argument("--json", action="store_true", help="one JSON object")
