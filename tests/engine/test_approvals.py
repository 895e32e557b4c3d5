"""Signed approvals (src/callgate/approvals.py, docs/policy-v2.md "Approvals"): the token
format, every cause of rejection and the order in which they are checked, the reason suffix,
canonical argument digests, the keyring (one key, one approver), and the nonce ledger (its
id, its own clock, atomicity, purge, cap, threads)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import replace

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from callgate.approvals import (CAUSES, MAX_APPROVALS, MAX_TOKEN_LENGTH, Call, Keyring,
                                NonceLedger, Verdict, arguments_digest, check_approvals,
                                sign_approval)
from callgate.errors import RequestError

POLICY = hashlib.sha256(b"compiled policy blob").hexdigest()
OTHER_POLICY = hashlib.sha256(b"another compiled policy blob").hexdigest()
LEDGER = "test-ledger-1"
NOW = 1_750_000_000.0
CALL = Call("process_refund", {"amount": 800, "to": "acct-9"}, role="agent", principal="user:42",
            agent_attributes={"user_id": "agt-7"}, resource_attributes={"owner": "acct-9"},
            context={"risk": 10})

ALICE = Ed25519PrivateKey.generate()
BOB = Ed25519PrivateKey.generate()
CAROL = Ed25519PrivateKey.generate()
MALLORY = Ed25519PrivateKey.generate()


@pytest.fixture
def keyring() -> Keyring:
    k = Keyring()
    k.trust("alice", ALICE.public_key())
    k.trust("bob", BOB.public_key())
    k.trust("carol", CAROL.public_key())
    return k


class Clock:
    """A ledger's own clock that the test sets (the ledger never takes a caller's `now`)."""

    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def new_ledger(clock=None, **kw) -> NonceLedger:
    return NonceLedger(ledger_id=LEDGER, clock=clock or Clock(), **kw)


@pytest.fixture
def ledger() -> NonceLedger:
    return new_ledger()


def sign(call=CALL, approver="bob", key=BOB, policy=POLICY, ttl=300, now=NOW, nonce=None,
         ledger=LEDGER):
    return sign_approval(call, approver=approver, key=key, policy_digest=policy, ledger=ledger,
                         ttl=ttl, now=now, nonce=nonce)


def check(tokens, keyring, ledger, call=CALL, policy=POLICY, now=NOW + 1) -> Verdict:
    return check_approvals(tokens, call, policy_digest=policy, keyring=keyring, ledger=ledger,
                           now=now)


def causes(verdict: Verdict) -> list:
    return [cause for _, _, cause in verdict.problems]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def payload_of(token: str) -> dict:
    return json.loads(unb64(token.split(".")[1]))


def good_payload(**over) -> dict:
    p = {"v": 2, "approver": "bob", "tool": CALL.tool, "args": arguments_digest(CALL.arguments),
         "role": CALL.role, "agent": arguments_digest(CALL.agent_attributes),
         "resource": arguments_digest(CALL.resource_attributes),
         "context": arguments_digest(CALL.context), "principal": CALL.bound_principal,
         "policy": POLICY, "ledger": LEDGER, "iat": NOW, "exp": NOW + 300, "nonce": "n" * 22}
    p.update(over)
    return p


def forge(body, key=BOB, prefix="cga2") -> str:
    """A token with an arbitrary payload (dict -> canonical JSON, or raw bytes), validly
    signed by `key`: what a trusted approver's buggy or hostile tooling could produce."""
    if isinstance(body, dict):
        body = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    signing_input = f"{prefix}.{b64(body)}"
    return f"{signing_input}.{b64(key.sign(signing_input.encode()))}"


# ---------------------------------------------------------------- format and the happy path


def test_token_format(keyring, ledger):
    """A token is cga2.<base64url payload>.<base64url signature> without padding; the payload
    is the canonical (orjson, sorted keys) JSON of exactly the documented fields (v 2, the
    role as itself, the arguments, agent attributes, resource attributes and context as
    digests, the ledger id); the signature is Ed25519 over the ASCII text before the last
    dot."""
    token = sign(nonce="A" * 22)
    prefix, body, sig = token.split(".")
    assert prefix == "cga2" and "=" not in token
    raw = unb64(body)
    p = orjson.loads(raw)
    assert raw == orjson.dumps(p, option=orjson.OPT_SORT_KEYS)
    assert p == {"v": 2, "approver": "bob", "tool": "process_refund",
                 "args": arguments_digest({"to": "acct-9", "amount": 800}), "role": "agent",
                 "agent": arguments_digest({"user_id": "agt-7"}),
                 "resource": arguments_digest({"owner": "acct-9"}),
                 "context": arguments_digest({"risk": 10}),
                 "principal": "user:42", "policy": POLICY, "ledger": LEDGER, "iat": NOW,
                 "exp": NOW + 300, "nonce": "A" * 22}
    assert len(unb64(sig)) == 64
    BOB.public_key().verify(unb64(sig), f"{prefix}.{body}".encode())  # raises if not
    assert len(token) <= MAX_TOKEN_LENGTH


def test_valid_approval_counts(keyring, ledger):
    """One valid approval satisfies 1, not 2; its nonce and expiry are reported for spending;
    the reason suffix names the approver."""
    token = sign()
    v = check([token], keyring, ledger)
    assert v.valid_approvers == ("bob",) and v.problems == ()
    assert v.nonces == ((payload_of(token)["nonce"], NOW + 300),)
    assert v.satisfies(1) and not v.satisfies(2)
    assert v.reason_suffix(1) == "; approved by 'bob'"
    assert v.reason_suffix(2) == "; 1 of 2 approvals valid"


def test_random_nonces_differ():
    """sign_approval draws a fresh random nonce each time, so two approvals of the same call
    are two distinct tokens."""
    assert payload_of(sign())["nonce"] != payload_of(sign())["nonce"]


def test_two_distinct_approvers(keyring, ledger):
    """Two approvers satisfy 2; valid_approvers keeps the order given and the suffix lists
    them quoted, comma-separated."""
    v = check([sign(approver="bob", key=BOB), sign(approver="alice", key=ALICE)], keyring, ledger)
    assert v.valid_approvers == ("bob", "alice")
    assert v.satisfies(2)
    assert v.reason_suffix(2) == "; approved by 'bob', 'alice'"


def test_more_than_required_all_counted(keyring, ledger):
    """Three valid approvals for a requirement of two: all three count, all three nonces are
    to be spent (none stays replayable), and the suffix names all three."""
    tokens = [sign(approver=n, key=k) for n, k in (("alice", ALICE), ("bob", BOB), ("carol", CAROL))]
    v = check(tokens, keyring, ledger)
    assert len(v.nonces) == 3
    assert v.reason_suffix(2) == "; approved by 'alice', 'bob', 'carol'"


# ---------------------------------------------------------------- signature failures


def test_forged_signed_by_another_key(keyring, ledger):
    """An approval naming bob but signed by mallory's key is a bad signature."""
    v = check([sign(approver="bob", key=MALLORY)], keyring, ledger)
    assert v.problems == ((1, "bob", "bad signature"),) and not v.satisfies(1)


def test_tampered_payload(keyring, ledger):
    """Changing the payload (here: the expiry) under the original signature is a bad
    signature."""
    prefix, body, sig = sign().split(".")
    p = payload_of(f"{prefix}.{body}.{sig}")
    p["exp"] = NOW + 10**6
    tampered = f"{prefix}.{b64(orjson.dumps(p, option=orjson.OPT_SORT_KEYS))}.{sig}"
    assert causes(check([tampered], keyring, ledger)) == ["bad signature"]


def test_tampered_signature(keyring, ledger):
    """Flipping one bit of the signature is a bad signature."""
    prefix, body, sig = sign().split(".")
    raw = bytearray(unb64(sig))
    raw[10] ^= 1
    assert causes(check([f"{prefix}.{body}.{b64(bytes(raw))}"], keyring, ledger)) == ["bad signature"]


def test_signature_binds_version_prefix(keyring, ledger):
    """The signature covers the "cga2." prefix: a signature over the bare payload text (no
    prefix) does not verify."""
    body = b64(orjson.dumps(good_payload(), option=orjson.OPT_SORT_KEYS))
    token = f"cga2.{body}.{b64(BOB.sign(body.encode()))}"
    assert causes(check([token], keyring, ledger)) == ["bad signature"]
    assert causes(check([forge(good_payload())], keyring, ledger)) == []


# ---------------------------------------------------------------- binding


def test_different_tool(keyring, ledger):
    """An approval for another tool does not count for this one."""
    token = sign(call=replace(CALL, tool="delete_account"))
    assert check([token], keyring, ledger).problems == ((1, "bob", "different tool"),)


def test_different_arguments(keyring, ledger):
    """An approval for other arguments does not count."""
    token = sign(call=replace(CALL, arguments={"amount": 801, "to": "acct-9"}))
    assert check([token], keyring, ledger).problems == ((1, "bob", "different arguments"),)


def test_argument_key_order_does_not_matter(keyring, ledger):
    """Arguments are bound by canonical JSON (sorted keys): the same object with its keys in
    another order, at any depth, is the same call."""
    a = Call("t", {"x": {"b": 1, "a": 2}, "y": [1, {"d": 3, "c": 4}]}, role="r")
    b = Call("t", {"y": [1, {"c": 4, "d": 3}], "x": {"a": 2, "b": 1}}, role="r")
    assert causes(check([sign(call=a)], keyring, ledger, call=b)) == []


def test_int_and_float_are_different_arguments(keyring, ledger):
    """Pinned: the digest is of orjson's canonical form of the decoded value, so 1 and 1.0
    (and 1 and True) are different arguments: the tool would see a different value."""
    one, one_float = Call("t", {"a": 1}, role="r"), Call("t", {"a": 1.0}, role="r")
    assert arguments_digest({"a": 1}) != arguments_digest({"a": 1.0})
    assert arguments_digest({"a": 1}) != arguments_digest({"a": True})
    assert causes(check([sign(call=one)], keyring, ledger, call=one_float)) == ["different arguments"]
    assert causes(check([sign(call=one_float)], keyring, ledger, call=one)) == ["different arguments"]


def test_none_arguments_mean_empty_object(keyring, ledger):
    """Arguments None are {}: an approval of one is an approval of the other."""
    assert arguments_digest(None) == arguments_digest({})
    token = sign(call=Call("t", None, role="r"))
    assert causes(check([token], keyring, ledger, call=Call("t", {}, role="r"))) == []


def test_different_principal(keyring, ledger):
    """An approval for another principal does not count, even with the same role."""
    token = sign(call=replace(CALL, principal="user:43"))
    assert check([token], keyring, ledger).problems == ((1, "bob", "different principal"),)


def test_principal_defaults_to_role(keyring, ledger):
    """With no principal the role is the principal: an approval for role "agent" and no
    principal matches a call by role "agent" and principal "agent", and not one by principal
    "user:42"; the role is bound on its own, so principal "agent" with another role is a
    different role."""
    by_role = replace(CALL, principal=None)
    assert by_role.bound_principal == "agent" and payload_of(sign(call=by_role))["principal"] == "agent"
    named_agent = replace(CALL, principal="agent")
    assert causes(check([sign(call=by_role)], keyring, ledger, call=named_agent)) == []
    assert causes(check([sign(call=by_role)], keyring, ledger)) == ["different principal"]
    other_role = replace(CALL, role="other", principal="agent")
    assert causes(check([sign(call=by_role)], keyring, ledger, call=other_role)) == ["different role"]


def test_different_policy(keyring, ledger):
    """An approval given under another policy (digest) does not count after a reload."""
    token = sign(policy=OTHER_POLICY)
    assert check([token], keyring, ledger).problems == ((1, "bob", "different policy"),)


def test_different_role(keyring, ledger):
    """The role is bound on its own: an approval for role "agent" does not count for the same
    principal calling as role "intern" (finding 3c)."""
    token = sign()
    assert check([token], keyring, ledger, call=replace(CALL, role="intern")).problems == \
        ((1, "bob", "different role"),)


@pytest.mark.parametrize("field, value, cause", [
    ("agent_attributes", {"user_id": "agt-8"}, "different agent attributes"),
    ("agent_attributes", None, "different agent attributes"),
    ("resource_attributes", {"owner": "acct-1"}, "different resource attributes"),
    ("resource_attributes", {"owner": "acct-9", "extra": 1}, "different resource attributes"),
    ("context", {"risk": 99}, "different context"),
    ("context", {"risk": 10.0}, "different context"),
    ("context", None, "different context"),
], ids=["agent", "agent-none", "resource", "resource-extra-key", "context", "context-float", "context-none"])
def test_attributes_and_context_are_bound(keyring, ledger, field, value, cause):
    """Everything that decided the call is bound: an approval signed with agent attributes
    {"user_id": "agt-7"}, resource attributes {"owner": "acct-9"} and context {"risk": 10}
    does not count when any of them differs in any value, key or JSON type (finding 3c)."""
    token = sign()
    assert check([token], keyring, ledger, call=replace(CALL, **{field: value})).problems == \
        ((1, "bob", cause),)


def test_attributes_and_context_bound_by_canonical_value(keyring, ledger):
    """Attributes and context are bound like arguments: key order does not matter, and None
    is {} (an approval of a call without context counts for context {})."""
    reordered = replace(CALL, agent_attributes={"user_id": "agt-7"},
                        context=dict(reversed(list({"risk": 10, "zone": "eu"}.items()))))
    signed = replace(CALL, context={"risk": 10, "zone": "eu"})
    assert causes(check([sign(call=signed)], keyring, ledger, call=reordered)) == []
    bare = Call("t", None, role="r")
    empty = Call("t", {}, role="r", agent_attributes={}, resource_attributes={}, context={})
    assert causes(check([sign(call=bare)], keyring, ledger, call=empty)) == []
    assert payload_of(sign(call=bare))["context"] == arguments_digest({})


def test_different_ledger(keyring, ledger):
    """An approval is bound to the nonce ledger it may be spent in: one signed for another
    ledger (another process, or this one before a restart) is "different ledger"; sign_approval
    takes the ledger or its id (finding 3a)."""
    assert check([sign(ledger="mem-" + "0" * 32)], keyring, ledger).problems == \
        ((1, "bob", "different ledger"),)
    assert causes(check([sign(ledger=ledger)], keyring, ledger)) == []
    other = NonceLedger()
    assert causes(check([sign(ledger=other)], keyring, ledger)) == ["different ledger"]
    assert causes(check([sign(ledger=other)], keyring, other)) == []   # it counts where it was meant for


def test_old_format_tokens_get_their_own_cause(keyring, ledger):
    """A token of the earlier cga1 format (which bound neither the role, the attributes, the
    context nor a ledger) is refused as "old format", approver "?", even when validly signed;
    other prefixes stay malformed."""
    old = {"v": 1, "approver": "bob", "tool": CALL.tool, "args": arguments_digest(CALL.arguments),
           "principal": CALL.bound_principal, "policy": POLICY, "iat": NOW, "exp": NOW + 300,
           "nonce": "n" * 22}
    v = check([forge(old, prefix="cga1"), forge(good_payload(), prefix="cga1"), "cga1.x.y",
               forge(good_payload(), prefix="cga3")], keyring, ledger)
    assert v.problems == ((1, "?", "old format"), (2, "?", "old format"), (3, "?", "old format"),
                          (4, "?", "malformed"))
    assert v.reason_suffix(1) == ("; 0 of 1 approvals valid: approval 1 (?): old format; "
                                  "approval 2 (?): old format; approval 3 (?): old format; "
                                  "approval 4 (?): malformed")


# ---------------------------------------------------------------- time


def test_expired(keyring, ledger):
    """An approval is valid while now < exp: at exp exactly and after it is expired."""
    token = sign(ttl=300)
    assert causes(check([token], keyring, ledger, now=NOW + 299.999)) == []
    assert check([token], keyring, ledger, now=NOW + 300).problems == ((1, "bob", "expired"),)
    assert causes(check([token], keyring, ledger, now=NOW + 10**6)) == ["expired"]


def test_future_iat(keyring, ledger):
    """An approval issued up to 60 s in the future is accepted (clock skew); beyond that it
    is not yet valid."""
    assert causes(check([sign(now=NOW + 60)], keyring, ledger, now=NOW)) == []
    assert check([sign(now=NOW + 61)], keyring, ledger, now=NOW).problems == \
        ((1, "bob", "not yet valid"),)


# ---------------------------------------------------------------- nonces and duplicates


def test_reused_after_spend(keyring, ledger):
    """Checking does not spend; once the engine spends the verdict's nonces, the same token is
    "already used"; a fresh approval of the same call still works."""
    token = sign()
    v = check([token], keyring, ledger)
    assert check([token], keyring, ledger) == v and len(ledger) == 0  # checking spends nothing
    assert ledger.spend(v.nonces)
    assert check([token], keyring, ledger, now=NOW + 2).problems == ((1, "bob", "already used"),)
    assert not ledger.spend(v.nonces)
    assert check([sign()], keyring, ledger, now=NOW + 2).satisfies(1)


def test_same_approver_twice(keyring, ledger):
    """Two different approvals by one approver count once: 1 of 2 valid."""
    v = check([sign(), sign()], keyring, ledger)
    assert v.valid_approvers == ("bob",)
    assert v.problems == ((2, "bob", "same approver counted once"),)
    assert len(v.nonces) == 1
    assert not v.satisfies(2)
    assert v.reason_suffix(2) == "; 1 of 2 approvals valid: approval 2 (bob): same approver counted once"


def test_same_token_twice(keyring, ledger):
    """Two copies of one token count once; the second is "same approver counted once"."""
    token = sign()
    v = check([token, token], keyring, ledger)
    assert v.valid_approvers == ("bob",) and causes(v) == ["same approver counted once"]
    assert v.nonces == ((payload_of(token)["nonce"], NOW + 300),)


def test_invalid_first_approval_does_not_block_a_valid_second(keyring, ledger):
    """Only counted approvals make an approver "already counted": bob's expired approval
    followed by a valid one from bob still counts bob."""
    v = check([sign(ttl=1, now=NOW - 100), sign()], keyring, ledger)
    assert v.valid_approvers == ("bob",) and v.problems == ((1, "bob", "expired"),)


def test_shared_nonce_between_approvers(keyring, ledger):
    """Two approvers whose approvals carry the same nonce: the second is "already used" (one
    nonce cannot pay for two approvals)."""
    nonce = "shared-nonce-0123456789"
    v = check([sign(approver="alice", key=ALICE, nonce=nonce), sign(nonce=nonce)], keyring, ledger)
    assert v.valid_approvers == ("alice",) and v.problems == ((2, "bob", "already used"),)


def test_unknown_approver(keyring, ledger):
    """An approver not in the keyring is unknown; forget() makes a trusted one unknown."""
    assert check([sign(approver="dave", key=MALLORY)], keyring, ledger).problems == \
        ((1, "dave", "unknown approver"),)
    keyring.forget("bob")
    keyring.forget("bob")  # forgetting twice is no error
    assert causes(check([sign()], keyring, ledger)) == ["unknown approver"]


# ---------------------------------------------------------------- keyring


def test_keyring_accepts_pem_raw_bytes_and_object(ledger):
    """A key registered as an Ed25519PublicKey, as 32 raw bytes, as a PEM str and as PEM bytes
    all verify approvals."""
    pub = BOB.public_key()
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for form in (pub, raw, pem.decode(), pem, bytearray(raw)):
        k = Keyring()
        k.trust("bob", form)
        assert "bob" in k and len(k) == 1
        assert check([sign()], k, ledger).satisfies(1), type(form)


def test_keyring_rejects_bad_keys():
    """trust() refuses a private key, raw bytes of the wrong length, a non-Ed25519 PEM, junk
    text, another type, and approver names outside the documented charset."""
    k = Keyring()
    with pytest.raises(TypeError):
        k.trust("bob", BOB)
    with pytest.raises(ValueError):
        k.trust("bob", b"\x00" * 31)
    rsa_pem = generate_private_key(65537, 2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with pytest.raises(ValueError):
        k.trust("bob", rsa_pem)
    with pytest.raises(ValueError):
        k.trust("bob", "not a key")
    with pytest.raises(TypeError):
        k.trust("bob", 42)
    for name in ("", "bob smith", "bob'", "a;b", "(x)", "-bob", "x" * 129, "bób"):
        with pytest.raises(ValueError):
            k.trust(name, BOB.public_key())
    assert len(k) == 0 and k.get(None) is None and k.get("bob") is None


def test_keyring_rotation(ledger):
    """trust() replaces an approver's key: approvals signed with the old key stop verifying."""
    k = Keyring()
    k.trust("bob", MALLORY.public_key())
    assert causes(check([sign()], k, ledger)) == ["bad signature"]
    k.trust("bob", BOB.public_key())
    assert causes(check([sign()], k, ledger)) == []
    assert k.names() == ("bob",)


def test_keyring_refuses_one_key_under_two_names(ledger):
    """One public key is one approver: trusting bob's key as "bob2" too is a ValueError naming
    the approver who holds it, in every key form (object, raw bytes, PEM), so one person
    cannot satisfy a 2-approval Elevate by signing as two names (finding 3b). The refused
    name stays untrusted, and its token is "unknown approver"."""
    k = Keyring()
    k.trust("bob", BOB.public_key())
    raw = BOB.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = BOB.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    for form in (BOB.public_key(), raw, pem, pem.decode()):
        with pytest.raises(ValueError, match="already trusted as approver 'bob'"):
            k.trust("bob2", form)
    assert k.names() == ("bob",)
    v = check([sign(), sign(approver="bob2")], k, ledger)
    assert v.valid_approvers == ("bob",) and v.problems == ((2, "bob2", "unknown approver"),)
    assert not v.satisfies(2)


def test_keyring_retrust_rotation_and_forget_free_the_key(ledger):
    """Re-trusting a name with its own key (any form) is allowed; rotating a name to a new key
    frees the old key for another name; forget() frees a name's key; a key held by one name
    still cannot be taken by another."""
    k = Keyring()
    k.trust("bob", BOB.public_key())
    k.trust("bob", BOB.public_key().public_bytes(serialization.Encoding.Raw,
                                                 serialization.PublicFormat.Raw))   # same key again
    k.trust("bob", CAROL.public_key())            # rotation: bob's old key is free now
    k.trust("robert", BOB.public_key())
    assert causes(check([sign(approver="robert")], k, ledger)) == []
    with pytest.raises(ValueError):
        k.trust("carol", CAROL.public_key())       # held by bob since the rotation
    k.forget("bob")
    k.trust("carol", CAROL.public_key())
    assert k.names() == ("carol", "robert")


# ---------------------------------------------------------------- malformed tokens


def test_malformed_tokens_never_raise(keyring, ledger):
    """Wrong types, oversized, non-ASCII, wrong shape or prefix (other than cga1, the old
    format), bad base64 (bad characters, padding, truncation), short signatures and non-JSON
    payloads are all "malformed" with approver "?", and none raises."""
    good = sign()
    _, body, sig = good.split(".")
    tokens = [
        None, 42, b"cga2.x.y", ["cga2"], {"t": good}, 1.5,
        "", "cga2", "cga2..", "cga2.x", f"{good}.x", f"cga3.{body}.{sig}", f"CGA2.{body}.{sig}",
        "cga2." + "A" * (MAX_TOKEN_LENGTH + 10) + "." + sig,
        good + "é", f"cga2.{body}=.{sig}", f"cga2.{body}.{sig}==", f"cga2.{body}.{sig[:-2]}",
        f"cga2.{body.replace('e', '+', 1)}.{sig}", f"cga2.{body} .{sig}", f"cga2.{body}.{sig}\n",
        f"cga2.{body[:-1]}.{sig}", f"cga2.{b64(b'not json')}.{sig}",
        f"cga2.{b64(b'{')}.{sig}", f"cga2.{b64(b'[' * 3000)}.{sig}",
        "cga2.\x00.\x00",
    ]
    v = check(tokens, keyring, ledger)
    assert v.valid_approvers == () and v.nonces == ()
    assert v.problems == tuple((i, "?", "malformed") for i in range(1, len(tokens) + 1))


def _bump_unused_bits(part: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(part) % 4 in (2, 3)  # the last character carries 4 or 2 unused bits
    bumped = part[:-1] + alphabet[alphabet.index(part[-1]) ^ 1]
    assert bumped != part and unb64(bumped) == unb64(part)
    return bumped


def test_noncanonical_base64_is_malformed(keyring, ledger):
    """A base64 part whose unused trailing bits are set decodes to the same bytes but is not
    canonical: malformed (one approval, one spelling), for the signature and the payload."""
    prefix, body, sig = sign().split(".")
    assert causes(check([f"{prefix}.{body}.{sig}"], keyring, ledger)) == []
    assert causes(check([f"{prefix}.{body}.{_bump_unused_bits(sig)}"], keyring, ledger)) == ["malformed"]
    for nonce_len in range(22, 26):  # some payload length leaves unused bits
        prefix, body, sig = sign(nonce="n" * nonce_len).split(".")
        if len(body) % 4:
            break
    assert causes(check([f"{prefix}.{_bump_unused_bits(body)}.{sig}"], keyring, ledger)) == ["malformed"]


@pytest.mark.parametrize("body", [
    b"\xff\xfe not utf-8",
    b'{"v":1}',
    b"[1,2,3]",
    b'"a string"',
    b'{"v":1,"v":1,' + orjson.dumps(good_payload())[1:],  # a duplicate key
    orjson.dumps(good_payload())[:-1] + b',"v":1}',           # a duplicate key, last wins
    orjson.dumps(good_payload()).replace(b'"exp":1750000300.0', b'"exp":NaN'),
    orjson.dumps(good_payload()).replace(b'"exp":1750000300.0', b'"exp":Infinity'),
    orjson.dumps(good_payload()).replace(b'"exp":1750000300.0', b'"exp":1e999'),
    orjson.dumps(good_payload()).replace(b'"exp":1750000300.0', b'"exp":' + b"9" * 400),
    orjson.dumps(good_payload()).replace(b'"tool":"process_refund"', b'"tool":"\\ud800"'),
    orjson.dumps(good_payload()).replace(b'"role":"agent"', b'"role":"\\udc00"'),
], ids=["not-utf8", "missing-fields", "array", "string", "dup-key-first", "dup-key-last",
        "nan", "infinity", "overflow-float", "huge-int", "lone-surrogate", "lone-surrogate-role"])
def test_malformed_signed_payloads(keyring, ledger, body):
    """Validly signed payloads that are not UTF-8, not an object, lack fields, repeat a key,
    or hold NaN/Infinity, numbers beyond a float or lone surrogates are malformed (parsing
    comes before the signature)."""
    assert forge(body).count(".") == 2
    assert check([forge(body)], keyring, ledger).problems == ((1, "?", "malformed"),)


@pytest.mark.parametrize("over", [
    {"v": 1}, {"v": 3}, {"v": True}, {"v": 2.0}, {"v": "2"},
    {"approver": None}, {"approver": ""}, {"approver": "bob smith"}, {"approver": "b'ob"},
    {"approver": "x" * 129},
    {"tool": 1}, {"tool": None}, {"principal": ["user:42"]}, {"policy": {"d": POLICY}},
    {"role": None}, {"role": 7},
    {"args": "00"}, {"args": arguments_digest(CALL.arguments).upper()}, {"args": None},
    {"agent": {"user_id": "agt-7"}}, {"agent": None}, {"resource": "0" * 63},
    {"context": {"risk": 10}}, {"context": arguments_digest({}).upper()},
    {"ledger": None}, {"ledger": ""}, {"ledger": "a ledger"}, {"ledger": "x" * 129}, {"ledger": 1},
    {"iat": "1750000000"}, {"iat": True}, {"iat": None}, {"exp": [NOW]},
    {"exp": NOW}, {"exp": NOW - 1},  # exp <= iat
    {"nonce": "short"}, {"nonce": "n" * 129}, {"nonce": "bad nonce 0123456789"}, {"nonce": 7},
    {"extra": 1},
], ids=lambda o: json.dumps(o)[:40])
def test_malformed_fields(keyring, ledger, over):
    """Every mistyped, out-of-format or extra payload field is malformed, even when bob
    signed it."""
    assert check([forge(good_payload(**over))], keyring, ledger).problems == ((1, "?", "malformed"),)


def test_missing_each_field(keyring, ledger):
    """A payload missing any one field is malformed; the complete forged payload is valid
    (so the forge helper itself is sound)."""
    assert check([forge(good_payload())], keyring, ledger).valid_approvers == ("bob",)
    for field in good_payload():
        p = good_payload()
        del p[field]
        assert causes(check([forge(p)], keyring, ledger)) == ["malformed"], field


def test_noncanonical_payload_json_is_accepted(keyring, ledger):
    """The signature covers the exact payload bytes, so a signed payload with other key order
    or whitespace is accepted: canonical form is required of arguments, not of the payload."""
    p = good_payload()
    body = json.dumps(dict(reversed(list(p.items()))), indent=1).encode()
    assert check([forge(body)], keyring, ledger).valid_approvers == ("bob",)


# ---------------------------------------------------------------- check order


def test_check_order(keyring, ledger):
    """The first failing check names the cause, in the documented order: parse, approver
    known, signature, then the bindings (tool, arguments, role, principal, agent attributes,
    resource attributes, context, policy, ledger), expiry, future iat, ledger, duplicate
    approver."""
    wrong_call = Call("other_tool", {"x": 1}, role="r", principal="p", agent_attributes={"a": 1},
                      resource_attributes={"b": 2}, context={"c": 3})
    wrong = dict(call=wrong_call, policy=OTHER_POLICY, ledger="other-ledger", ttl=1, now=NOW - 1000)
    # unknown approver beats a bad signature and every binding
    assert causes(check([sign(approver="dave", key=MALLORY, **wrong)], keyring, ledger)) == ["unknown approver"]
    # bad signature beats the bindings
    assert causes(check([sign(key=MALLORY, **wrong)], keyring, ledger)) == ["bad signature"]
    # each binding beats the ones after it and the time: put right one fact at a time
    call = wrong_call
    for field, cause in (("tool", "different tool"), ("arguments", "different arguments"),
                         ("role", "different role"), ("principal", "different principal"),
                         ("agent_attributes", "different agent attributes"),
                         ("resource_attributes", "different resource attributes"),
                         ("context", "different context")):
        assert causes(check([sign(**{**wrong, "call": call})], keyring, ledger)) == [cause], field
        call = replace(call, **{field: getattr(CALL, field)})
    assert call == CALL
    assert causes(check([sign(**{**wrong, "call": call})], keyring, ledger)) == ["different policy"]
    assert causes(check([sign(**{**wrong, "call": call, "policy": POLICY})], keyring, ledger)) == \
        ["different ledger"]
    assert causes(check([sign(**{**wrong, "call": call, "policy": POLICY, "ledger": LEDGER})],
                        keyring, ledger)) == ["expired"]
    # expired beats already used
    stale = sign(ttl=10)
    assert ledger.spend([(payload_of(stale)["nonce"], NOW + 10)])
    assert causes(check([stale], keyring, ledger, now=NOW + 5)) == ["already used"]
    fresh_ledger = new_ledger()
    assert fresh_ledger.spend([(payload_of(stale)["nonce"], NOW + 1000)])
    assert causes(check([stale], keyring, fresh_ledger, now=NOW + 20)) == ["expired"]
    # already used beats same approver
    first, second = sign(), sign()
    assert ledger.spend([(payload_of(second)["nonce"], NOW + 300)])
    assert causes(check([first, second], keyring, ledger)) == ["already used"]


# ---------------------------------------------------------------- reason suffix


def test_reason_suffix_formats(keyring, ledger):
    """The exact suffixes: satisfied -> "; approved by 'a', 'b'" (problems not reported);
    otherwise "; K of N approvals valid" then ": " and "approval I (WHO): CAUSE" items joined
    by "; ", WHO "?" for a malformed token; "; 0 of 1 approvals valid" for no approvals."""
    assert check([], keyring, ledger).reason_suffix(1) == "; 0 of 1 approvals valid"
    assert check(None, keyring, ledger).reason_suffix(2) == "; 0 of 2 approvals valid"
    v = check([sign(approver="alice", key=ALICE), sign(ttl=1, now=NOW - 100), "junk"], keyring, ledger)
    assert v.reason_suffix(2) == \
        "; 1 of 2 approvals valid: approval 2 (bob): expired; approval 3 (?): malformed"
    assert v.reason_suffix(1) == "; approved by 'alice'"
    v = check(["junk"], keyring, ledger)
    assert v.reason_suffix(1) == "; 0 of 1 approvals valid: approval 1 (?): malformed"
    with pytest.raises(ValueError):
        v.reason_suffix(0)
    with pytest.raises(ValueError):
        v.satisfies(True)


def test_reason_suffix_when_the_spend_is_refused(keyring):
    """A satisfied verdict whose nonces the ledger refuses (a concurrent use, a full ledger)
    is not an approval; reason_suffix(n, refused=cause) says so with the ledger's cause."""
    led = new_ledger(max_entries=1)
    v = check([sign(approver="alice", key=ALICE), sign()], keyring, led)
    assert v.satisfies(2)
    cause = led.claim(v.nonces)
    assert cause == "ledger full" and len(led) == 0
    assert v.reason_suffix(2, cause) == "; approvals by 'alice', 'bob' refused: ledger full"
    led = new_ledger()
    assert led.spend(v.nonces[1:])  # bob's approval used meanwhile by another call
    assert v.reason_suffix(2, led.claim(v.nonces)) == \
        "; approvals by 'alice', 'bob' refused: already used"


def test_every_cause_is_reachable(keyring, ledger):
    """Each of the seventeen documented cause strings is produced by some approval, in the
    order of CAUSES, and nothing else is."""
    spent = sign()
    assert ledger.spend(check([spent], keyring, ledger).nonces)
    tokens = [
        "junk",
        forge(good_payload(v=1), prefix="cga1"),
        sign(approver="dave", key=MALLORY),
        sign(key=MALLORY),
        sign(call=replace(CALL, tool="other")),
        sign(call=replace(CALL, arguments={})),
        sign(call=replace(CALL, role="intern")),
        sign(call=replace(CALL, principal=None)),
        sign(call=replace(CALL, agent_attributes=None)),
        sign(call=replace(CALL, resource_attributes=None)),
        sign(call=replace(CALL, context={"risk": 99})),
        sign(policy=OTHER_POLICY),
        sign(ledger="another-ledger"),
        sign(ttl=1, now=NOW - 100),
        sign(now=NOW + 1000),
        spent,
        sign(approver="alice", key=ALICE),
        sign(approver="alice", key=ALICE),
    ]
    v = check(tokens, keyring, ledger)
    assert len(CAUSES) == len(set(CAUSES)) == 17
    assert causes(v) == list(CAUSES)
    assert [i for i, _, _ in v.problems] == [*range(1, 17), 18]
    assert v.valid_approvers == ("alice",)


# ---------------------------------------------------------------- the list of approvals


def test_approvals_container(keyring, ledger):
    """The approvals argument is a list (any iterable) of at most MAX_APPROVALS items; a bare
    string, bytes or a mapping, another type, or too many items is a RequestError (a bad
    request, not a bad token)."""
    token = sign()
    assert check((t for t in [token]), keyring, ledger).valid_approvers == ("bob",)
    for bad in (token, token.encode(), {"a": token}, 42):
        with pytest.raises(RequestError):
            check(bad, keyring, ledger)
    assert len(check(["junk"] * MAX_APPROVALS, keyring, ledger).problems) == MAX_APPROVALS
    with pytest.raises(RequestError):
        check(["junk"] * (MAX_APPROVALS + 1), keyring, ledger)


# ---------------------------------------------------------------- signing parameters


def test_sign_approval_validates_parameters():
    """sign_approval refuses a non-Ed25519 key, an approver name outside the charset, an
    empty policy digest, a non-positive or non-finite ttl, a bad nonce, arguments JSON cannot
    carry (RequestError) and a call too big for a token."""
    with pytest.raises(TypeError):
        sign(key=BOB.public_key())
    with pytest.raises(ValueError):
        sign(approver="bob smith")
    with pytest.raises(ValueError):
        sign(policy="")
    for ttl in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            sign(ttl=ttl)
    with pytest.raises(ValueError):
        sign(nonce="short")
    with pytest.raises(RequestError):
        sign(call=Call("t", {"a": float("nan")}, role="r"))
    with pytest.raises(ValueError):
        sign(call=Call("t" * MAX_TOKEN_LENGTH, None, role="r"))


def test_sign_approval_validates_the_new_bindings():
    """An approval must name a ledger (a NonceLedger or an id in the approver charset: no
    default, so no approval is spendable anywhere), the role must be a str, and attributes
    or context JSON cannot carry are a RequestError."""
    with pytest.raises(TypeError):
        sign_approval(CALL, approver="bob", key=BOB, policy_digest=POLICY)   # no ledger
    for bad in (None, "", "a ledger", "x" * 129, 7):
        with pytest.raises(ValueError):
            sign(ledger=bad)
    with pytest.raises(TypeError):
        sign(call=replace(CALL, role=None))
    with pytest.raises(RequestError, match="context values"):
        sign(call=replace(CALL, context={"risk": float("nan")}))
    with pytest.raises(RequestError, match="agent attributes"):
        sign(call=replace(CALL, agent_attributes={"groups": {"a", "b"}}))
    with pytest.raises(RequestError, match="resource attributes"):
        sign(call=replace(CALL, resource_attributes={"owner": "\ud800"}))


# ---------------------------------------------------------------- canonical digests


def test_canonical_digests_are_stable():
    """Pinned digests: SHA-256 of orjson's sorted-key JSON; key order is irrelevant; None is
    {}; non-ASCII keys sort by code point and are written as raw UTF-8; integers beyond 64
    bits fall back to the standard library's form. Changing any of these invalidates every
    outstanding approval."""
    cases = [
        (None, b"{}", "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"),
        ({"to": "acct-9", "amount": 800}, b'{"amount":800,"to":"acct-9"}',
         "8130531f9eb6746797e3fe8ec59caeeb4bfb63b46e786c54eee5762ff9dbb42c"),
        ({"b": {"d": 2, "c": -0.0}, "a": [1.5, "x", True, None]},
         b'{"a":[1.5,"x",true,null],"b":{"c":-0.0,"d":2}}',
         "4bad31288345a0d275bab37ec893c669537aa224a0ebff80285a0d3ae4d7743d"),
        ({"z": "\U0001F600", "é": "ü"}, '{"z":"\U0001F600","é":"ü"}'.encode(),
         "67f832154106f1709748a9a86c21edea84047cf681e79550739a79a99e2efae6"),
        ({"n": 2**70}, b'{"n":1180591620717411303424}',
         "b69ef9299f5d6958cce991bf150e23cf960a2d5295e188735d6c700ab34ff975"),
    ]
    for value, canonical, digest in cases:
        assert hashlib.sha256(canonical).hexdigest() == digest
        assert arguments_digest(value) == digest, value
    assert arguments_digest({"a": 1, "b": 2}) == arguments_digest({"b": 2, "a": 1})
    assert arguments_digest([1, 2]) != arguments_digest([2, 1])
    assert arguments_digest((1, 2)) == arguments_digest([1, 2])


@pytest.mark.parametrize("value", [
    float("nan"), {"a": float("inf")}, [1, [-float("inf")]], {"a": {1, 2}}, {"a": b"bytes"},
    {"a": "\ud800"}, {1: "x", "a": "y"}, object(),
], ids=["nan", "inf", "nested-inf", "set", "bytes", "surrogate", "mixed-keys", "object"])
def test_digest_refuses_what_json_cannot_carry(value):
    """NaN, infinities, sets, bytes, lone surrogates, unsortable keys and arbitrary objects
    raise RequestError (from callgate.errors), never a bare TypeError/ValueError."""
    with pytest.raises(RequestError):
        arguments_digest(value)


def test_check_with_undigestible_call_arguments_raises_request_error(keyring, ledger):
    """A call whose own arguments JSON cannot carry is a bad request (RequestError), reported
    only when an approval gets as far as the argument binding."""
    bad = Call(CALL.tool, {"a": float("nan")}, role="agent", principal="user:42")
    assert causes(check(["junk"], keyring, ledger, call=bad)) == ["malformed"]
    with pytest.raises(RequestError):
        check([sign()], keyring, ledger, call=bad)


# ---------------------------------------------------------------- the ledger


def test_ledger_ids():
    """A ledger's id is given, or "mem-" and 32 random hex digits (unguessable, a new one per
    ledger); an id outside the approver charset, or a clock that is not callable, is refused."""
    ids = {NonceLedger().ledger_id for _ in range(3)}
    assert len(ids) == 3 and all(re.fullmatch(r"mem-[0-9a-f]{32}", i) for i in ids)
    assert NonceLedger(ledger_id="db:approvals-1").ledger_id == "db:approvals-1"
    for bad in ("", "a b", "x" * 129, 7, "-x"):
        with pytest.raises(ValueError):
            NonceLedger(ledger_id=bad)
    with pytest.raises(TypeError):
        NonceLedger(clock=NOW)


def test_ledger_spend_is_atomic():
    """spend() records all nonces or none: a batch with one used nonce records nothing, so its
    other nonces stay spendable; a batch naming one nonce twice is refused."""
    led = new_ledger()
    assert led.spend([("a", NOW + 10), ("b", NOW + 10)])
    assert not led.spend([("c", NOW + 10), ("b", NOW + 10)])
    assert not led.is_spent("c") and len(led) == 2
    assert led.claim([("d", NOW + 10), ("d", NOW + 10)]) == "already used"
    assert not led.is_spent("d")
    assert led.spend([("c", NOW + 10)]) and led.is_spent("c")
    assert led.spend([])


def test_ledger_purges_expired():
    """Spent nonces are kept until their expiry by the ledger's own clock and forgotten at it,
    so memory stays bounded by the approvals still valid."""
    clock = Clock()
    led = new_ledger(clock)
    assert led.spend([("a", NOW + 10), ("b", NOW + 20)])
    clock.t = NOW + 9.9
    assert led.is_spent("a") and len(led) == 2
    clock.t = NOW + 10
    assert not led.is_spent("a") and led.is_spent("b") and len(led) == 1
    clock.t = NOW + 25
    assert led.spend([("c", NOW + 100)])
    assert len(led) == 1 and not led.is_spent("b")


def test_ledger_refuses_what_it_may_have_forgotten():
    """The ledger never accepts a nonce whose expiry is not after the latest time its own
    clock has shown (its horizon, which never moves back): a clock that steps back cannot
    replay an approval the ledger already purged."""
    clock = Clock(NOW + 50)
    led = new_ledger(clock)
    assert led.spend([("a", NOW + 100)])
    clock.t = NOW + 101
    assert not led.is_spent("a")                     # purged at NOW+101
    clock.t = NOW + 60                               # the clock steps back
    assert led.claim([("a", NOW + 100)]) == "expired"
    assert led.claim([("z", NOW + 5)]) == "expired"
    assert led.spend([("y", NOW + 102)])


def test_ledger_refuses_the_approvals_of_a_check_that_came_back_in_time(keyring):
    """End to end: an approval spent, then purged once the ledger's clock passed its expiry,
    then presented with a caller's `now` in the past: the check may count it, but the spend
    refuses it, so it is not approved."""
    clock = Clock(NOW + 10)
    led = new_ledger(clock)
    token = sign(ttl=100)
    v = check([token], keyring, led, now=NOW + 10)
    assert led.spend(v.nonces)
    clock.t = NOW + 500
    assert not led.is_spent(v.nonces[0][0])          # purged
    late = check([token], keyring, led, now=NOW + 20)
    assert late.satisfies(1) and led.claim(late.nonces) == "expired"


def test_a_callers_future_now_does_not_move_the_horizon(keyring):
    """Finding 3d: checking and spending with a caller's `now` far in the future (approvals
    issued then) leaves the ledger's horizon at its own clock: an ordinary approval checked
    afterwards at the real time is still spent, and the future approval's nonce is still
    remembered (not replayable)."""
    clock = Clock(NOW)
    led = new_ledger(clock)
    future = NOW + 10**9
    far = sign(now=future)
    v = check([far], keyring, led, now=future)
    assert v.satisfies(1) and led.spend(v.nonces)
    clock.t = NOW + 1
    normal = check([sign()], keyring, led, now=NOW + 1)
    assert normal.satisfies(1) and led.claim(normal.nonces) is None
    assert check([far], keyring, led, now=future).problems == ((1, "bob", "already used"),)


def test_ledger_cap_fails_closed():
    """With max_entries unexpired nonces held, new approvals are refused ("ledger full"), and
    no unexpired nonce is forgotten to make room; once some expire there is room again."""
    clock = Clock()
    led = new_ledger(clock, max_entries=2)
    assert led.spend([("a", NOW + 10), ("b", NOW + 20)])
    assert led.claim([("c", NOW + 30)]) == "ledger full"
    assert not led.spend([("c", NOW + 30)])
    assert led.is_spent("a") and led.is_spent("b") and not led.is_spent("c")
    clock.t = NOW + 10
    assert led.claim([("c", NOW + 30), ("d", NOW + 30)]) == "ledger full"
    assert led.spend([("c", NOW + 30)])   # "a" expired: room for one
    assert led.is_spent("b") and led.is_spent("c")
    with pytest.raises(ValueError):
        NonceLedger(max_entries=0)
    assert NonceLedger().max_entries == 1_000_000


def test_ledger_rejects_bad_input():
    """spend() takes (str, finite number) pairs, and the ledger's clock must give a finite
    number: anything else is an error (TypeError/ValueError), never a silent success."""
    led = new_ledger()
    with pytest.raises(TypeError):
        led.spend([(1, NOW)])
    with pytest.raises(TypeError):
        led.spend([("a", float("nan"))])
    broken = new_ledger(lambda: float("nan"))
    with pytest.raises(ValueError):
        broken.spend([("a", NOW + 1)])
    with pytest.raises(ValueError):
        broken.is_spent("a")
    assert len(led) == 0 and len(broken) == 0


def test_concurrent_spend_of_one_nonce_has_one_winner():
    """Many threads spending the same nonce at once: exactly one succeeds, every round."""
    for round_ in range(20):
        led = new_ledger()
        threads_n = 16
        barrier = threading.Barrier(threads_n)
        results = []
        lock = threading.Lock()

        def race(i, led=led, barrier=barrier, shared=f"nonce-{round_}", results=results,
                 lock=lock):
            barrier.wait()
            ok = led.spend([(shared, NOW + 60), (f"own-{i}", NOW + 60)])
            with lock:
                results.append(ok)

        threads = [threading.Thread(target=race, args=(i,)) for i in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count(True) == 1, results
        assert len(led) == 2  # the shared nonce and the winner's own: losers recorded nothing


def test_concurrent_spend_of_distinct_nonces_loses_none():
    """Threads spending distinct nonces concurrently all succeed and all are recorded."""
    led = new_ledger()

    def work(i):
        for j in range(500):
            assert led.spend([(f"n-{i}-{j}", NOW + 60)])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(led) == 8 * 500


def test_concurrent_check_and_spend_of_one_approval(keyring):
    """The engine's sequence (check, then spend only if satisfied) run by many threads with
    the same approval: every thread may see it valid, but exactly one spend wins."""
    led = new_ledger()
    token = sign()
    barrier = threading.Barrier(12)
    wins = []

    def engine():
        barrier.wait()
        v = check([token], keyring, led)
        wins.append(v.satisfies(1) and led.spend(v.nonces))

    threads = [threading.Thread(target=engine) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1
