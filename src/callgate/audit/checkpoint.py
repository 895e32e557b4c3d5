"""Signed checkpoints: Ed25519 over (chain, size, head hash) for every chain of a log.

A hash chain shows that nothing inside it changed, but cutting records off its end leaves
a shorter, valid chain. A checkpoint taken earlier (and kept elsewhere) says how long each
chain was and what its head was; verify --checkpoint then fails if a chain is shorter or
its record at that position differs. Records appended after a checkpoint are covered by
the chain only, until the next checkpoint.

The signature is checked against --public-key when given (what a reviewer should do);
otherwise only against the key embedded in the file, which proves integrity, not origin.

A checkpoint also says which chains existed: verify --checkpoint reports a chain it does
not name as a finding (started after the checkpoint, or forged) unless writer keys
(audit.genesis) vouch for the chains."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any, Dict, Optional, Set

import orjson

from ..extras import require
from ._canonical import canonical
from .builder import now_text
from .keys import generate_key, load_private_key, load_public_key, raw_public
from .source import Source
from .verify import Report, verify

__all__ = ["generate_key", "make_checkpoint", "check_signature", "verify_with_checkpoint"]

_DOMAIN = b"callgate-audit-checkpoint-v1\x00"  # a signature over anything else cannot pass as one


def make_checkpoint(source: Source, key_path: str) -> Dict[str, Any]:
    """Verify the log, then sign its chains' sizes and heads. Refuses a log that does not verify."""
    report = verify(source)
    if not report.ok:
        raise ValueError(f"the log does not verify, refusing to checkpoint it: {report.problem}")
    key = load_private_key(key_path, "checkpoint key")
    payload = {"version": 1, "source": source.spec if source.kind != "postgres" else "postgres",
               "created": now_text(), "chains": report.chains}
    signature = key.sign(_DOMAIN + canonical(payload))
    return {"payload": payload, "signature": base64.b64encode(signature).decode(),
            "public_key": base64.b64encode(raw_public(key)).decode()}


def check_signature(checkpoint: Dict[str, Any], public_key_path: Optional[str] = None) -> None:
    """ValueError unless the checkpoint's signature verifies under the key at `public_key_path`
    (a PEM file) or, without one, under the public key the checkpoint itself carries."""
    require("cryptography", "checkpoints", "audit")
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        if public_key_path:
            key = load_public_key(public_key_path)
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(checkpoint["public_key"], validate=True))
        key.verify(base64.b64decode(checkpoint["signature"], validate=True), _DOMAIN + canonical(checkpoint["payload"]))
    except InvalidSignature:
        raise ValueError("checkpoint signature does not verify") from None
    except (KeyError, TypeError, binascii.Error) as exc:
        raise ValueError(f"not a checkpoint: its public_key, signature or payload is missing or malformed ({exc})") \
            from None


def _load(checkpoint_path: str) -> Dict[str, Any]:
    """A checkpoint file, checked for shape (ValueError, one line, otherwise)."""
    try:
        checkpoint = orjson.loads(Path(checkpoint_path).read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{checkpoint_path}: not a checkpoint (not JSON: {exc})") from None
    chains = checkpoint.get("payload", {}).get("chains") if isinstance(checkpoint, dict) \
        and isinstance(checkpoint.get("payload"), dict) else None
    if not isinstance(chains, dict) or not all(
            isinstance(c, str) and isinstance(v, dict) and type(v.get("size")) is int and isinstance(v.get("head"), str)
            for c, v in chains.items()):
        raise ValueError(f"{checkpoint_path}: not a checkpoint (no payload.chains of {{size, head}})")
    checked: Dict[str, Any] = checkpoint   # (a dict: payload.chains was found in it)
    return checked


def verify_with_checkpoint(source: Source, checkpoint_path: str, public_key_path: Optional[str] = None,
                           writer_keys: Optional[Set[bytes]] = None) -> Report:
    """verify(), then check that every chain of the checkpoint is still at least as long and
    its record at the checkpointed position is the one that was signed. A chain of the log
    that the checkpoint does not name is a finding unless writer keys vouch for chains."""
    checkpoint = _load(checkpoint_path)
    check_signature(checkpoint, public_key_path)
    chains = checkpoint["payload"]["chains"]
    report = verify(source, want={c: v["size"] - 1 for c, v in chains.items()}, writer_keys=writer_keys,
                    checkpoint_chains=set(chains))
    if not public_key_path:
        report.notes.append("the checkpoint's signature was checked against the key it carries (no --public-key): "
                            "that proves it is intact, not who signed it")
    if not report.ok:
        return report
    for chain, signed in sorted(chains.items()):
        now = report.chains.get(chain, {"size": 0})
        if now["size"] < signed["size"]:
            report.checkpoint = (f"chain {chain!r} truncated: the checkpoint signed {signed['size']} records, "
                                 f"the log has {now['size']} (seq {now['size']}..{signed['size'] - 1} removed)")
            return report
        if report.heads_at.get(chain, {}).get(signed["size"] - 1) != signed["head"]:
            report.checkpoint = (f"chain {chain!r}: record seq {signed['size'] - 1} is not the one the checkpoint "
                                 "signed (the chain was rewritten)")
            return report
    return report
