"""Signed checkpoints: Ed25519 over (chain, size, head hash) for every chain of a log.

A hash chain shows that nothing inside it changed, but cutting records off its end leaves
a shorter, valid chain. A checkpoint taken earlier (and kept elsewhere) says how long each
chain was and what its head was; verify --checkpoint then fails if a chain is shorter or
its record at that position differs. Records appended after a checkpoint are covered by
the chain only, until the next checkpoint.

The signature is checked against --public-key when given (what a reviewer should do);
otherwise only against the key embedded in the file, which proves integrity, not origin."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Dict, Optional

import orjson

from ._canonical import canonical
from .builder import now_text
from .source import Source
from .verify import Report, verify

_DOMAIN = b"callgate-audit-checkpoint-v1\x00"  # a signature over anything else cannot pass as one


def _serialization():
    from cryptography.hazmat.primitives import serialization

    return serialization


def generate_key(path: str) -> str:
    """Write a new Ed25519 private key (PEM, mode 0600) and return its public key (PEM)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    s = _serialization()
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())
    p = Path(path)
    p.touch(mode=0o600)
    p.write_bytes(pem)
    return key.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo).decode()


def _load_private(path: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = _serialization().load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def make_checkpoint(source: Source, key_path: str) -> Dict[str, Any]:
    """Verify the log, then sign its chains' sizes and heads. Refuses a log that does not verify."""
    report = verify(source)
    if not report.ok:
        raise ValueError(f"the log does not verify, refusing to checkpoint it: {report.problem}")
    key = _load_private(key_path)
    s = _serialization()
    payload = {"version": 1, "source": source.spec if source.kind != "postgres" else "postgres",
               "created": now_text(), "chains": report.chains}
    signature = key.sign(_DOMAIN + canonical(payload))
    public = key.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)
    return {"payload": payload, "signature": base64.b64encode(signature).decode(),
            "public_key": base64.b64encode(public).decode()}


def check_signature(checkpoint: Dict[str, Any], public_key_path: Optional[str] = None) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if public_key_path:
        key = _serialization().load_pem_public_key(Path(public_key_path).read_bytes())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"{public_key_path}: not an Ed25519 public key")
    else:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(checkpoint["public_key"]))
    try:
        key.verify(base64.b64decode(checkpoint["signature"]), _DOMAIN + canonical(checkpoint["payload"]))
    except InvalidSignature:
        raise ValueError("checkpoint signature does not verify") from None


def verify_with_checkpoint(source: Source, checkpoint_path: str, public_key_path: Optional[str] = None) -> Report:
    """verify(), then check that every chain of the checkpoint is still at least as long and
    its record at the checkpointed position is the one that was signed."""
    checkpoint = orjson.loads(Path(checkpoint_path).read_bytes())
    check_signature(checkpoint, public_key_path)
    chains = checkpoint["payload"]["chains"]
    report = verify(source, want={c: v["size"] - 1 for c, v in chains.items()})
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
