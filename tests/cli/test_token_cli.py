"""`callgate token mint | attenuate | inspect`: a chain minted with a local key, narrowed
offline, and inspected against the issuer's public key; refusals print the code and the
reason (exit 1); bad input is one line (exit 2)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from support.cli import invoke


@pytest.fixture
def keys(tmp_path):
    out = {}
    for name in ("issuer", "supervisor", "stranger"):
        key = Ed25519PrivateKey.generate()
        (tmp_path / f"{name}.pem").write_bytes(key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8,
                                                                 s.NoEncryption()))
        (tmp_path / f"{name}.pub").write_bytes(key.public_key().public_bytes(s.Encoding.PEM,
                                                                            s.PublicFormat.SubjectPublicKeyInfo))
        out[name] = tmp_path / name
    return out


def test_mint_attenuate_inspect(keys):
    """The minted chain verifies against the issuer's key; the attenuated one names the new
    link and its narrower scopes; with the policy's ceilings the effective scopes narrow too."""
    r = invoke("token", "mint", "--key", f"{keys['issuer']}.pem", "--iss", "auth", "--sub", "user:alice",
               "--agent", "supervisor:triage", "--scope", "postgres.read.*", "--holder-key", f"{keys['supervisor']}.pub")
    assert r.exit_code == 0, r.output
    token = r.stdout.strip()
    r = invoke("token", "attenuate", token, "--key", f"{keys['supervisor']}.pem", "--delegate", "worker:sql",
               "--scope", "postgres.read.analytics")
    assert r.exit_code == 0, r.output
    narrowed = r.stdout.strip()
    r = invoke("token", "inspect", narrowed, "--trust-issuer", f"auth={keys['issuer']}.pub", "--json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 0
    assert (doc["chain"], doc["form"], doc["effective_scopes"]) == (
        "user:alice+supervisor:triage+worker:sql", "attenuated", ["postgres.read.analytics"])


def test_inspect_says_why_a_chain_is_refused(keys):
    """A widening link and a signature by another key are refused with their code and
    reason, exit 1; an unreadable key is one line, exit 2."""
    token = invoke("token", "mint", "--key", f"{keys['issuer']}.pem", "--iss", "auth", "--sub", "user:alice",
                   "--scope", "a.read", "--holder-key", f"{keys['supervisor']}.pub").stdout.strip()
    wider = invoke("token", "attenuate", token, "--key", f"{keys['supervisor']}.pem", "--delegate", "worker:x",
                   "--scope", "a.write").stdout.strip()
    r = invoke("token", "inspect", wider, "--trust-issuer", f"auth={keys['issuer']}.pub")
    assert r.exit_code == 1
    assert r.stdout.strip() == "refused (widening): link 1 (worker:x) grants a.write, more than its upstream holds"
    r = invoke("token", "inspect", token, "--trust-issuer", f"auth={keys['stranger']}.pub")
    assert (r.exit_code, r.stdout.strip()) == (1, "refused (signature): the signature does not verify")
    r = invoke("token", "inspect", token, "--trust-issuer", "auth=/nowhere.pub")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "cannot read the key" in r.stderr
