"""Ed25519 keys for the audit trail (checkpoints, writer keys): loaded from PEM files or
taken as cryptography objects, with a one-line ValueError for anything else."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..extras import require


def _serialization() -> Any:
    require("cryptography", "audit keys (writer keys, checkpoints)", "audit")
    from cryptography.hazmat.primitives import serialization

    return serialization


def load_private_key(key: Any, what: str = "key") -> Any:
    """An Ed25519PrivateKey from such an object or the path of a PEM file (unencrypted)."""
    require("cryptography", "audit keys (writer keys, checkpoints)", "audit")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if isinstance(key, Ed25519PrivateKey):
        return key
    if not isinstance(key, (str, os.PathLike)):
        raise ValueError(f"{what}: expected an Ed25519 private key or the path of its PEM file, "
                         f"not {type(key).__name__}")
    try:
        loaded = _serialization().load_pem_private_key(Path(key).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{what} {os.fspath(key)}: cannot load an Ed25519 private key ({exc})") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{what} {os.fspath(key)}: not an Ed25519 private key")
    return loaded


def load_public_key(path: Any, what: str = "public key") -> Any:
    """An Ed25519PublicKey from a PEM file (SubjectPublicKeyInfo)."""
    require("cryptography", "audit keys (writer keys, checkpoints)", "audit")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        loaded = _serialization().load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{what} {os.fspath(path)}: cannot load an Ed25519 public key ({exc})") from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise ValueError(f"{what} {os.fspath(path)}: not an Ed25519 public key")
    return loaded


def raw_public(key: Any) -> bytes:
    """The 32 raw bytes of an Ed25519 public key (or of a private key's public half)."""
    s = _serialization()
    public = key.public_key() if hasattr(key, "public_key") else key
    raw: bytes = public.public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)
    return raw


def generate_key(path: str) -> str:
    """Write a new Ed25519 private key (PEM, mode 0600) and return its public key (PEM)."""
    require("cryptography", "audit keys (writer keys, checkpoints)", "audit")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    s = _serialization()
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())
    p = Path(path)
    p.touch(mode=0o600)
    p.write_bytes(pem)
    return key.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo).decode()
