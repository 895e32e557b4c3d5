"""Signed approvals (src/callgate/approvals.py, docs/policy-v2.md "Approvals"): the token
format, every cause of rejection and the order in which they are checked, the reason suffix,
canonical argument digests, and the nonce ledger (atomicity, purge, cap, threads)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading

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
NOW = 1_750_000_000.0
CALL = Call("process_refund", {"amount": 800, "to": "acct-9"}, role="agent", principal="user:42")

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


@pytest.fixture
def ledger() -> NonceLedger:
    return NonceLedger()


def sign(call=CALL, approver="bob", key=BOB, policy=POLICY, ttl=300, now=NOW, nonce=None):
    return sign_approval(call, approver=approver, key=key, policy_digest=policy, ttl=ttl,
                         now=now, nonce=nonce)


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
    p = {"v": 1, "approver": "bob", "tool": CALL.tool, "args": arguments_digest(CALL.arguments),
         "principal": CALL.bound_principal, "policy": POLICY, "iat": NOW, "exp": NOW + 300,
         "nonce": "n" * 22}
    p.update(over)
    return p


def forge(body, key=BOB, prefix="cga1") -> str:
    """A token with an arbitrary payload (dict -> canonical JSON, or raw bytes), validly
    signed by `key`: what a trusted approver's buggy or hostile tooling could produce."""
    if isinstance(body, dict):
        body = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    signing_input = f"{prefix}.{b64(body)}"
    return f"{signing_input}.{b64(key.sign(signing_input.encode()))}"


# ---------------------------------------------------------------- format and the happy path


def test_token_format(keyring, ledger):
    """A token is cga1.<base64url payload>.<base64url signature> without padding; the payload
    is the canonical (orjson, sorted keys) JSON of exactly the documented fields; the
    signature is Ed25519 over the ASCII text before the last dot."""
    token = sign(nonce="A" * 22)
    prefix, body, sig = token.split(".")
    assert prefix == "cga1" and "=" not in token
    raw = unb64(body)
    p = orjson.loads(raw)
    assert raw == orjson.dumps(p, option=orjson.OPT_SORT_KEYS)
    assert p == {"v": 1, "approver": "bob", "tool": "process_refund",
                 "args": arguments_digest({"to": "acct-9", "amount": 800}),
                 "principal": "user:42", "policy": POLICY, "iat": NOW, "exp": NOW + 300,
                 "nonce": "A" * 22}
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
    """The signature covers the "cga1." prefix: a signature over the bare payload text (no
    prefix) does not verify."""
    body = b64(orjson.dumps(good_payload(), option=orjson.OPT_SORT_KEYS))
    token = f"cga1.{body}.{b64(BOB.sign(body.encode()))}"
    assert causes(check([token], keyring, ledger)) == ["bad signature"]
    assert causes(check([forge(good_payload())], keyring, ledger)) == []


# ---------------------------------------------------------------- binding


def test_different_tool(keyring, ledger):
    """An approval for another tool does not count for this one."""
    token = sign(call=Call("delete_account", CALL.arguments, role="agent", principal="user:42"))
    assert check([token], keyring, ledger).problems == ((1, "bob", "different tool"),)


def test_different_arguments(keyring, ledger):
    """An approval for other arguments does not count."""
    token = sign(call=Call(CALL.tool, {"amount": 801, "to": "acct-9"}, role="agent",
                           principal="user:42"))
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
    token = sign(call=Call(CALL.tool, CALL.arguments, role="agent", principal="user:43"))
    assert check([token], keyring, ledger).problems == ((1, "bob", "different principal"),)


def test_principal_defaults_to_role(keyring, ledger):
    """With no principal the role is the principal: an approval for role "agent" and no
    principal matches a call by principal "agent", and not one by principal "user:42"."""
    by_role = Call(CALL.tool, CALL.arguments, role="agent")
    assert by_role.bound_principal == "agent" and payload_of(sign(call=by_role))["principal"] == "agent"
    named_agent = Call(CALL.tool, CALL.arguments, role="other", principal="agent")
    assert causes(check([sign(call=by_role)], keyring, ledger, call=named_agent)) == []
    assert causes(check([sign(call=by_role)], keyring, ledger)) == ["different principal"]


def test_different_policy(keyring, ledger):
    """An approval given under another policy (digest) does not count after a reload."""
    token = sign(policy=OTHER_POLICY)
    assert check([token], keyring, ledger).problems == ((1, "bob", "different policy"),)


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
    assert ledger.spend(v.nonces, NOW + 1)
    assert check([token], keyring, ledger, now=NOW + 2).problems == ((1, "bob", "already used"),)
    assert not ledger.spend(v.nonces, NOW + 2)
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


# ---------------------------------------------------------------- malformed tokens


def test_malformed_tokens_never_raise(keyring, ledger):
    """Wrong types, oversized, non-ASCII, wrong shape or prefix, bad base64 (bad characters,
    padding, truncation), short signatures and non-JSON payloads are all
    "malformed" with approver "?", and none raises."""
    good = sign()
    _, body, sig = good.split(".")
    tokens = [
        None, 42, b"cga1.x.y", ["cga1"], {"t": good}, 1.5,
        "", "cga1", "cga1..", "cga1.x", f"{good}.x", f"cga2.{body}.{sig}", f"CGA1.{body}.{sig}",
        "cga1." + "A" * (MAX_TOKEN_LENGTH + 10) + "." + sig,
        good + "é", f"cga1.{body}=.{sig}", f"cga1.{body}.{sig}==", f"cga1.{body}.{sig[:-2]}",
        f"cga1.{body.replace('e', '+', 1)}.{sig}", f"cga1.{body} .{sig}", f"cga1.{body}.{sig}\n",
        f"cga1.{body[:-1]}.{sig}", f"cga1.{b64(b'not json')}.{sig}",
        f"cga1.{b64(b'{')}.{sig}", f"cga1.{b64(b'[' * 3000)}.{sig}",
        "cga1.\x00.\x00",
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
], ids=["not-utf8", "missing-fields", "array", "string", "dup-key-first", "dup-key-last",
        "nan", "infinity", "overflow-float", "huge-int", "lone-surrogate"])
def test_malformed_signed_payloads(keyring, ledger, body):
    """Validly signed payloads that are not UTF-8, not an object, lack fields, repeat a key,
    or hold NaN/Infinity, numbers beyond a float or lone surrogates are malformed (parsing
    comes before the signature)."""
    assert forge(body).count(".") == 2
    assert check([forge(body)], keyring, ledger).problems == ((1, "?", "malformed"),)


@pytest.mark.parametrize("over", [
    {"v": 2}, {"v": True}, {"v": 1.0}, {"v": "1"},
    {"approver": None}, {"approver": ""}, {"approver": "bob smith"}, {"approver": "b'ob"},
    {"approver": "x" * 129},
    {"tool": 1}, {"tool": None}, {"principal": ["user:42"]}, {"policy": {"d": POLICY}},
    {"args": "00"}, {"args": arguments_digest(CALL.arguments).upper()}, {"args": None},
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
    known, signature, tool, arguments, principal, policy, expiry, future iat, ledger,
    duplicate approver."""
    other = Call("other_tool", {"x": 1}, role="r", principal="p")
    wrong = dict(call=other, policy=OTHER_POLICY, ttl=1, now=NOW - 1000)
    # unknown approver beats a bad signature and every binding
    assert causes(check([sign(approver="dave", key=MALLORY, **wrong)], keyring, ledger)) == ["unknown approver"]
    # bad signature beats the bindings
    assert causes(check([sign(key=MALLORY, **wrong)], keyring, ledger)) == ["bad signature"]
    # tool beats arguments, principal, policy, time
    assert causes(check([sign(**wrong)], keyring, ledger)) == ["different tool"]
    same_tool = Call(CALL.tool, {"x": 1}, role="r", principal="p")
    assert causes(check([sign(**{**wrong, "call": same_tool})], keyring, ledger)) == ["different arguments"]
    same_args = Call(CALL.tool, CALL.arguments, role="r", principal="p")
    assert causes(check([sign(**{**wrong, "call": same_args})], keyring, ledger)) == ["different principal"]
    assert causes(check([sign(policy=OTHER_POLICY, ttl=1, now=NOW - 1000)], keyring, ledger)) == ["different policy"]
    # expired beats already used
    stale = sign(ttl=10)
    assert ledger.spend([(payload_of(stale)["nonce"], NOW + 10)], NOW)
    assert causes(check([stale], keyring, ledger, now=NOW + 5)) == ["already used"]
    fresh_ledger = NonceLedger()
    assert fresh_ledger.spend([(payload_of(stale)["nonce"], NOW + 1000)], NOW)
    assert causes(check([stale], keyring, fresh_ledger, now=NOW + 20)) == ["expired"]
    # already used beats same approver
    first, second = sign(), sign()
    assert ledger.spend([(payload_of(second)["nonce"], NOW + 300)], NOW)
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
    led = NonceLedger(max_entries=1)
    v = check([sign(approver="alice", key=ALICE), sign()], keyring, led)
    assert v.satisfies(2)
    cause = led.claim(v.nonces, NOW + 1)
    assert cause == "ledger full" and len(led) == 0
    assert v.reason_suffix(2, cause) == "; approvals by 'alice', 'bob' refused: ledger full"
    led = NonceLedger()
    assert led.spend(v.nonces[1:], NOW + 1)  # bob's approval used meanwhile by another call
    assert v.reason_suffix(2, led.claim(v.nonces, NOW + 1)) == \
        "; approvals by 'alice', 'bob' refused: already used"


def test_every_cause_is_reachable(keyring, ledger):
    """Each of the eleven documented cause strings is produced by some approval, and nothing
    else is."""
    spent = sign()
    assert ledger.spend(check([spent], keyring, ledger).nonces, NOW)
    tokens = [
        "junk",
        sign(approver="dave", key=MALLORY),
        sign(key=MALLORY),
        sign(call=Call("other", CALL.arguments, role="agent", principal="user:42")),
        sign(call=Call(CALL.tool, {}, role="agent", principal="user:42")),
        sign(call=Call(CALL.tool, CALL.arguments, role="agent")),
        sign(policy=OTHER_POLICY),
        sign(ttl=1, now=NOW - 100),
        sign(now=NOW + 1000),
        spent,
        sign(approver="alice", key=ALICE),
        sign(approver="alice", key=ALICE),
    ]
    v = check(tokens, keyring, ledger)
    assert causes(v) == list(CAUSES)
    assert [i for i, _, _ in v.problems] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12]
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


def test_ledger_spend_is_atomic():
    """spend() records all nonces or none: a batch with one used nonce records nothing, so its
    other nonces stay spendable; a batch naming one nonce twice is refused."""
    led = NonceLedger()
    assert led.spend([("a", NOW + 10), ("b", NOW + 10)], NOW)
    assert not led.spend([("c", NOW + 10), ("b", NOW + 10)], NOW)
    assert not led.is_spent("c", NOW) and len(led) == 2
    assert led.claim([("d", NOW + 10), ("d", NOW + 10)], NOW) == "already used"
    assert not led.is_spent("d", NOW)
    assert led.spend([("c", NOW + 10)], NOW) and led.is_spent("c", NOW)
    assert led.spend([], NOW)


def test_ledger_purges_expired():
    """Spent nonces are kept until their expiry and forgotten at it, so memory stays bounded
    by the approvals still valid."""
    led = NonceLedger()
    assert led.spend([("a", NOW + 10), ("b", NOW + 20)], NOW)
    assert led.is_spent("a", NOW + 9.9) and len(led) == 2
    assert not led.is_spent("a", NOW + 10) and led.is_spent("b", NOW + 10) and len(led) == 1
    assert led.spend([("c", NOW + 100)], NOW + 25)
    assert len(led) == 1 and not led.is_spent("b", NOW + 25)


def test_ledger_refuses_what_it_may_have_forgotten():
    """The ledger never accepts a nonce whose expiry is not after the latest `now` it has
    seen: a caller whose clock steps back cannot replay an approval it already purged."""
    led = NonceLedger()
    assert led.spend([("a", NOW + 100)], NOW + 50)
    assert not led.is_spent("a", NOW + 101)          # purged at NOW+101
    assert led.claim([("a", NOW + 100)], NOW + 60) == "expired"
    assert led.claim([("z", NOW + 5)], NOW) == "expired"


def test_ledger_refuses_the_approvals_of_a_check_that_came_back_in_time(keyring):
    """End to end: an approval spent, then purged by a later `now`, then presented with an
    earlier `now`: the check may count it, but the spend refuses it, so it is not approved."""
    led = NonceLedger()
    token = sign(ttl=100)
    v = check([token], keyring, led, now=NOW + 10)
    assert led.spend(v.nonces, NOW + 10)
    led.is_spent("anything", NOW + 500)              # a later clock purges it
    late = check([token], keyring, led, now=NOW + 20)
    assert late.satisfies(1) and not led.spend(late.nonces, NOW + 20)


def test_ledger_cap_fails_closed():
    """With max_entries unexpired nonces held, new approvals are refused ("ledger full"), and
    no unexpired nonce is forgotten to make room; once some expire there is room again."""
    led = NonceLedger(max_entries=2)
    assert led.spend([("a", NOW + 10), ("b", NOW + 20)], NOW)
    assert led.claim([("c", NOW + 30)], NOW) == "ledger full"
    assert not led.spend([("c", NOW + 30)], NOW)
    assert led.is_spent("a", NOW) and led.is_spent("b", NOW) and not led.is_spent("c", NOW)
    assert led.claim([("c", NOW + 30), ("d", NOW + 30)], NOW + 10) == "ledger full"
    assert led.spend([("c", NOW + 30)], NOW + 10)   # "a" expired: room for one
    assert led.is_spent("b", NOW + 10) and led.is_spent("c", NOW + 10)
    with pytest.raises(ValueError):
        NonceLedger(max_entries=0)
    assert NonceLedger().max_entries == 1_000_000


def test_ledger_rejects_bad_input():
    """spend() takes (str, finite number) pairs and a finite now: anything else is a
    programming error (TypeError/ValueError), not a silent success."""
    led = NonceLedger()
    with pytest.raises(TypeError):
        led.spend([(1, NOW)], NOW)
    with pytest.raises(TypeError):
        led.spend([("a", float("nan"))], NOW)
    with pytest.raises(ValueError):
        led.spend([("a", NOW + 1)], float("nan"))
    assert len(led) == 0


def test_concurrent_spend_of_one_nonce_has_one_winner():
    """Many threads spending the same nonce at once: exactly one succeeds, every round."""
    for round_ in range(20):
        led = NonceLedger()
        threads_n = 16
        barrier = threading.Barrier(threads_n)
        results = []
        lock = threading.Lock()

        def race(i, led=led, barrier=barrier, shared=f"nonce-{round_}", results=results,
                 lock=lock):
            barrier.wait()
            ok = led.spend([(shared, NOW + 60), (f"own-{i}", NOW + 60)], NOW)
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
    led = NonceLedger()

    def work(i):
        for j in range(500):
            assert led.spend([(f"n-{i}-{j}", NOW + 60)], NOW)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(led) == 8 * 500


def test_concurrent_check_and_spend_of_one_approval(keyring):
    """The engine's sequence (check, then spend only if satisfied) run by many threads with
    the same approval: every thread may see it valid, but exactly one spend wins."""
    led = NonceLedger()
    token = sign()
    barrier = threading.Barrier(12)
    wins = []

    def engine():
        barrier.wait()
        v = check([token], keyring, led)
        wins.append(v.satisfies(1) and led.spend(v.nonces, NOW + 1))

    threads = [threading.Thread(target=engine) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1
