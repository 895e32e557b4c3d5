"""Chain registration: the signed genesis record a writer with a writer key puts at seq 0 of
every chain it starts, and the check `callgate audit verify --writer-key` makes of it.

Anyone who can write the store can start a chain of their own (seq 0 links to 32 zero
bytes, no key needed); a chain whose first record is a genesis record signed by a trusted
writer key was started by a holder of that key. The signature (Ed25519, domain-separated)
covers the chain id, the writer's public key and the creation time:

    {"kind": "chain", "chain": id, "seq": 0, "timestamp": t, "public_key": base64(raw 32 bytes),
     "signature": base64(Ed25519(DOMAIN || canonical({"chain", "public_key", "timestamp"}))), ...}

It vouches for the chain's start only: records appended to the chain later are held by the
chain's links (and by checkpoints), not by the key."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Iterable, Optional, Set

from ..extras import require
from ..version import __version__
from ._canonical import canonical
from .keys import load_public_key, raw_public

KIND = "chain"
_DOMAIN = b"callgate-audit-chain-v1\x00"  # a signature over anything else cannot pass as one


def _message(chain: str, public_key: str, timestamp: str) -> bytes:
    return _DOMAIN + canonical({"chain": chain, "public_key": public_key, "timestamp": timestamp})


def genesis_event(chain: str, key: Any, event_id: str, timestamp: str) -> dict[str, Any]:
    """The genesis event of `chain`, signed with `key` (an Ed25519PrivateKey); the sealer
    adds chain and seq (0)."""
    public = base64.b64encode(raw_public(key)).decode()
    signature = base64.b64encode(key.sign(_message(chain, public, timestamp))).decode()
    return {"kind": KIND, "id": event_id, "timestamp": timestamp, "public_key": public, "signature": signature,
            "engine_version": __version__}


def trusted_keys(paths: Iterable[Any]) -> Set[bytes]:
    """The raw public keys of PEM files (ValueError, one line, for a file that is not one)."""
    return {raw_public(load_public_key(p, "writer key")) for p in paths}


def unvouched(record: Any, trusted: Set[bytes]) -> Optional[str]:
    """None when `record` (a chain's seq-0 record) is a genesis record of its chain signed by
    one of the `trusted` keys; else why not, in a few words."""
    require("cryptography", "writer keys", "audit")
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not isinstance(record, dict):
        return "its first record is missing"
    kind = record.get("kind")
    if kind != KIND:
        return f"its first record (seq 0) is {'a ' + repr(kind) if isinstance(kind, str) else 'not a'} " \
               "record, not a signed genesis record"
    chain, public, signature, timestamp = (record.get(k) for k in ("chain", "public_key", "signature", "timestamp"))
    if not all(isinstance(v, str) for v in (chain, public, signature, timestamp)):
        return "its genesis record lacks chain, public_key, signature or timestamp"
    # (each is a str: checked above, which all() does not tell the type checker)
    try:
        raw = base64.b64decode(public, validate=True)  # type: ignore[arg-type]
        sig = base64.b64decode(signature, validate=True)  # type: ignore[arg-type]
    except (binascii.Error, ValueError):
        return "its genesis record's key or signature is not base64"
    if raw not in trusted:
        return f"its genesis record is signed by a key that is not trusted (public key {public})"
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(sig, _message(chain, public, timestamp))  # type: ignore[arg-type]
    except (InvalidSignature, ValueError):
        return "its genesis signature does not verify (the record was altered or forged)"
    return None
