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


def _policy(tmp_path):
    policy = tmp_path / "chains.json"
    policy.write_text(json.dumps({
        "version": "c", "default_action": "Deny", "tools": ["query"], "roles": ["agent"],
        "principals": {"worker:*": {"max_scopes": ["pg.read.*"]}},
        "rules": [{"tool_name": "query", "roles": ["agent"],
                   "condition": {"ScopeCheck": {"requires": ["pg.write.t"]}}}]}))
    return policy


def test_eval_and_explain_take_a_verified_chain(keys, tmp_path):
    """`eval --chain TOKEN --trust-issuer ISS=PUB` decides with the chain's effective scopes
    (the supervisor's write scope passes; the worker's ceiling takes it away), and `explain`
    shows the ScopeCheck over Principal.scopes; a chain without a trusted issuer, or a key
    file that is not there, is one line (exit 2)."""
    policy = _policy(tmp_path)
    mint = ["token", "mint", "--key", f"{keys['issuer']}.pem", "--iss", "auth", "--sub", "user:alice",
            "--scope", "pg.*.*"]
    sup = invoke(*mint, "--agent", "supervisor:triage").stdout.strip()
    worker = invoke(*mint, "--agent", "supervisor:triage", "--agent", "worker:sql").stdout.strip()
    trust = ["--trust-issuer", f"auth={keys['issuer']}.pub"]
    r = invoke("eval", str(policy), "--tool", "query", "--role", "agent", "--chain", sup, *trust, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["decision"] == "Allow", r.stderr
    (tmp_path / "worker.tok").write_text(worker + "\n")
    r = invoke("eval", str(policy), "--tool", "query", "--role", "agent", "--chain", f"@{tmp_path / 'worker.tok'}",
               *trust, "--json")
    assert json.loads(r.stdout)["decision"] == "Deny"
    r = invoke("explain", str(policy), "--tool", "query", "--role", "agent", "--chain", worker, *trust)
    assert r.exit_code == 0 and 'Principal.scopes grants all of ["pg.write.t"]' in r.stdout, r.stdout
    r = invoke("eval", str(policy), "--tool", "query", "--role", "agent", "--chain", worker)
    assert r.exit_code == 2 and r.stderr.startswith("error: --chain needs --trust-issuer")
    r = invoke("eval", str(policy), "--tool", "query", "--role", "agent", "--chain", worker,
               "--trust-issuer", f"auth={tmp_path / 'missing.pub'}")
    assert r.exit_code == 2 and "no such key file" in r.stderr and "Traceback" not in r.stderr
    r = invoke("eval", str(policy), "--tool", "query", "--role", "agent", "--chain", worker,
               "--trust-issuer", f"auth={keys['stranger']}.pub", "--json")
    out = json.loads(r.stdout)
    assert out["decision"] == "Deny" and out["reason"].startswith("the principal chain is refused")
