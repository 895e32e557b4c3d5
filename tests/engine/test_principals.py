"""Principal chains (docs/principals.md): the three forms verified, every refusal with its
code and reason, the intersection rule for effective scopes, and the cache."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callgate import scopes as sc
from callgate.principals import ChainError, Trust, attenuate, effective_scopes, mint

ISSUER_KEY = Ed25519PrivateKey.generate()
ALICE_AGENT = Ed25519PrivateKey.generate()      # the supervisor's key (holder of the base token)
WORKER = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()


def trust(**options) -> Trust:
    t = Trust()
    t.trust_issuer("auth", ISSUER_KEY.public_key(), **options)
    return t


def base(**overrides) -> str:
    args = dict(issuer="auth", subject="user:alice", agents=["supervisor:triage-bot"],
                scopes=["postgres.read.*", "files.read.reports"], holder=ALICE_AGENT.public_key())
    args.update(overrides)
    return mint(ISSUER_KEY, **args)


def refused(t: Trust, token: str) -> ChainError:
    with pytest.raises(ChainError) as exc:
        t.verify(token)
    return exc.value


# ---------------------------------------------------------------- scopes

def test_scope_segments_match_whole_segments_only():
    """`postgres.read.*` covers `postgres.read.analytics`, not `postgres.readwrite.x`, nor
    one segment fewer or more; meet and intersect keep what both sides cover."""
    assert sc.covers("postgres.read.*", "postgres.read.analytics")
    assert not sc.covers("postgres.read.*", "postgres.readwrite.x")
    assert not sc.covers("postgres.read.*", "postgres.read")
    assert not sc.covers("postgres.read.*", "postgres.read.analytics.events")
    assert sc.meet("postgres.*.analytics", "postgres.read.*") == "postgres.read.analytics"
    assert sc.meet("a.b", "a.c") is None
    assert sc.intersect({"postgres.read.*", "files.read.x"}, {"postgres.*.analytics"}) == {"postgres.read.analytics"}
    with pytest.raises(sc.ScopeError):
        sc.parse("postgres..read")
    with pytest.raises(sc.ScopeError):
        sc.parse("postgres.re*d")
    with pytest.raises(sc.ScopeError):
        sc.parse("postgres.*", wildcards=False)


# ---------------------------------------------------------------- the three forms

def test_form_1_chain_token():
    """A chain token: `sub` then `agents`; the label the audit trail writes; the scopes."""
    chain = trust().verify(base())
    assert chain.links == ("user:alice", "supervisor:triage-bot")
    assert (chain.user, chain.actor, chain.depth, chain.form) == ("user:alice", "supervisor:triage-bot", 2, "token")
    assert chain.label == "user:alice+supervisor:triage-bot"
    assert chain.scopes == {"postgres.read.*", "files.read.reports"}


def test_form_2_rfc8693_nested_act():
    """RFC 8693: the outermost `act` is the current actor; the chain is `sub`, then the
    actors from innermost to outermost; `scope` is space-separated."""
    now = int(time.time())
    token = jwt.encode({"iss": "auth", "sub": "user:alice", "exp": now + 60, "scope": "postgres.read.analytics",
                        "act": {"sub": "worker:sql-writer", "act": {"sub": "supervisor:triage-bot"}}},
                       ISSUER_KEY, algorithm="EdDSA")
    chain = trust().verify(token)
    assert chain.links == ("user:alice", "supervisor:triage-bot", "worker:sql-writer")
    assert chain.form == "delegation" and chain.scopes == {"postgres.read.analytics"}


def test_form_3_attenuated_delegation():
    """A supervisor hands a worker a narrower chain offline: one more link, narrower scopes,
    an expiry no later than its upstream's, signed with the supervisor's key."""
    token = attenuate(base(), ALICE_AGENT, delegate="worker:sql-writer", scopes=["postgres.read.analytics"],
                      delegate_key=WORKER.public_key())
    chain = trust().verify(token)
    assert chain.links == ("user:alice", "supervisor:triage-bot", "worker:sql-writer")
    assert chain.scopes == {"postgres.read.analytics"} and chain.form == "attenuated"
    deeper = attenuate(token, WORKER, delegate="tool:runner", scopes=["postgres.read.analytics"])
    assert trust().verify(deeper).actor == "tool:runner"


# ---------------------------------------------------------------- refusals

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_every_refusal_has_its_code_and_reason():
    """Bad signature, unknown issuer, alg none, HS256 signed with the issuer's public key,
    expired, not yet valid, audience mismatch, depth over the limit, replayed jti: each is
    refused with its own code and a reason naming the cause."""
    t = trust()
    header, payload, _ = base().split("~")[0].split(".")
    forged = f"{header}.{payload}.{_b64(OTHER.sign(f'{header}.{payload}'.encode()))}"
    assert refused(t, forged).code == "signature"
    assert refused(t, mint(OTHER, issuer="elsewhere", subject="user:x")).code == "unknown_issuer"
    none_header = _b64(orjson.dumps({"alg": "none", "typ": "JWT"}))
    none_token = f"{none_header}.{payload}."
    err = refused(t, none_token)
    assert err.code == "algorithm" and "'none'" in err.message
    # HS256 keyed with the issuer's own public key bytes: the algorithm-confusion attack
    public_pem = ISSUER_KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    signing_input = (f"{_b64(orjson.dumps({'alg': 'HS256', 'typ': 'JWT'}))}."
                     f"{_b64(orjson.dumps({'iss': 'auth', 'sub': 'user:mallory', 'exp': now + 60}))}")
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    confused = f"{signing_input}.{_b64(mac)}"
    assert refused(t, confused).code == "algorithm"
    assert refused(t, base(ttl=-120)).code == "expired"
    assert refused(t, base(extra={"nbf": now + 3600})).code == "not_yet_valid"
    aud = trust(audience="https://mcp.example.com")
    assert aud.verify(base(audience="https://mcp.example.com")).links[0] == "user:alice"
    err = refused(aud, base(audience="https://other.example.com"))
    assert err.code == "audience" and "another audience" in err.message
    assert refused(aud, base()).code == "claims"       # an audience is expected: a token without one
    assert refused(trust(max_depth=2), base(agents=["a:1", "a:2"])).code == "depth"
    once = trust(replay_protection=True)
    token = base()
    once.verify(token)
    err = refused(once, token)
    assert err.code == "replayed" and "already used" in err.message


def test_clock_skew_boundaries():
    """A token expired less than the leeway ago still verifies; one expired longer ago does not."""
    t = trust(leeway=30)
    assert t.verify(base(ttl=-10)).user == "user:alice"
    assert refused(t, base(ttl=-40)).code == "expired"


def test_attenuation_refusals_name_the_link():
    """A link that widens the scopes, outlives its upstream, widens the audience, is signed
    by a key other than its upstream holder's, or is not bound to the text before it
    invalidates the chain, and the reason names the link."""
    t = trust()
    token = base()
    err = refused(t, attenuate(token, ALICE_AGENT, delegate="worker:x", scopes=["postgres.write.analytics"]))
    assert (err.code, err.link) == ("widening", 2)
    assert "link 2 (worker:x) grants postgres.write.analytics" in err.message
    exp = jwt.decode(token.split("~")[0], options={"verify_signature": False})["exp"]
    err = refused(t, attenuate(token, ALICE_AGENT, delegate="worker:x", scopes=["postgres.read.a"], expires=exp + 60))
    assert err.code == "widening" and "expires after its upstream" in err.message
    narrow_aud = base(audience=["https://a.example"])
    err = refused(t, attenuate(narrow_aud, ALICE_AGENT, delegate="worker:x", scopes=["postgres.read.a"],
                               audience="https://b.example"))
    assert err.code == "widening" and "audience" in err.message
    assert refused(t, attenuate(token, OTHER, delegate="worker:x", scopes=["postgres.read.a"])).code == "signature"
    # a link lifted from one chain onto another: 'prev' binds it to the exact text before it
    other_base = base(subject="user:bob")
    link = attenuate(token, ALICE_AGENT, delegate="worker:x", scopes=["postgres.read.a"]).split("~")[1]
    assert refused(t, f"{other_base}~{link}").code == "binding"
    # a holder without a key (no cnf) cannot delegate
    no_key = base(holder=None)
    err = refused(t, attenuate(no_key, ALICE_AGENT, delegate="worker:x", scopes=["postgres.read.a"]))
    assert err.code == "binding"


def test_dropping_or_reordering_links_breaks_verification():
    """Each link is bound to the exact chain before it: removing the middle link or swapping
    two links is refused."""
    t = trust()
    one = attenuate(base(), ALICE_AGENT, delegate="worker:a", scopes=["postgres.read.*"], delegate_key=WORKER.public_key())
    two = attenuate(one, WORKER, delegate="tool:b", scopes=["postgres.read.x"])
    b, l1, l2 = two.split("~")
    assert refused(t, f"{b}~{l2}").code in ("binding", "signature")
    assert refused(t, f"{b}~{l2}~{l1}").code in ("binding", "signature")


def test_issuer_configuration_that_could_be_fooled_is_refused():
    """`none`, an HMAC algorithm with a public key, a short HMAC secret, an algorithm the key
    cannot verify: each is a configuration error at trust_issuer."""
    t = Trust()
    with pytest.raises(ValueError, match="never 'none'"):
        t.trust_issuer("a", ISSUER_KEY.public_key(), algorithms=["none"])
    with pytest.raises(ValueError, match="HMAC algorithm never verifies with a public key"):
        t.trust_issuer("a", ISSUER_KEY.public_key(), algorithms=["HS256"])
    with pytest.raises(ValueError, match="at least 32 bytes"):
        t.trust_issuer("a", b"short")
    with pytest.raises(ValueError, match="verifies a"):
        t.trust_issuer("a", generate_private_key(SECP256R1()).public_key(), algorithms=["EdDSA"])


# ---------------------------------------------------------------- effective authority

def test_effective_scopes_intersect_every_link_ceiling():
    """The token's scopes narrowed by each link's ceiling: an exact entry, else every glob
    entry that matches; a link without one keeps no ceiling unless a default is given."""
    chain = trust().verify(attenuate(base(), ALICE_AGENT, delegate="worker:sql-writer",
                                     scopes=["postgres.read.*", "files.read.reports"]))
    ceilings = {"worker:*": ["postgres.read.*"], "supervisor:triage-bot": ["postgres.*.analytics", "files.read.*"]}
    assert effective_scopes(chain, ceilings) == {"postgres.read.analytics"}
    assert effective_scopes(chain, {}) == {"postgres.read.*", "files.read.reports"}
    assert effective_scopes(chain, {}, default=[]) == frozenset()


names = st.sampled_from(["a", "b", "c", "*"])
patterns = st.lists(names, min_size=2, max_size=3).map(".".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(patterns, min_size=1, max_size=4), st.lists(st.lists(patterns, max_size=3), min_size=1, max_size=3),
       st.lists(st.lists(names.filter(lambda s: s != "*"), min_size=2, max_size=3).map(".".join), max_size=6))
def test_effective_scopes_are_within_every_grant_and_ceiling(granted, ceilings, probes):
    """For random grants and ceilings, a concrete scope is granted by the effective set
    exactly when the token and every ceiling grant it (the intersection rule)."""
    effective = sc.narrow(granted, ceilings)
    for scope in probes:
        expected = sc.granted(granted, scope) and all(sc.granted(c, scope) for c in ceilings)
        assert sc.granted(effective, scope) == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(patterns, min_size=1, max_size=3), st.lists(patterns, min_size=1, max_size=3))
def test_a_link_verifies_exactly_when_it_does_not_widen(parent_scopes, child_scopes):
    """An attenuation link verifies exactly when each of its scopes is covered by one of its
    upstream's (otherwise it is refused as widening)."""
    t = trust()
    token = attenuate(base(scopes=parent_scopes), ALICE_AGENT, delegate="worker:x", scopes=child_scopes)
    widens = sc.subset(child_scopes, parent_scopes) is not None
    if widens:
        assert refused(t, token).code == "widening"
    else:
        assert t.verify(token).scopes == frozenset(child_scopes)


# ---------------------------------------------------------------- the cache

def test_verified_chains_are_cached_until_they_expire():
    """A repeated token is a cache hit (the same object); once expired it is verified again
    and refused; a replay-protected issuer's tokens are never cached."""
    clock = [time.time()]
    t = Trust(clock=lambda: clock[0])
    t.trust_issuer("auth", ISSUER_KEY.public_key(), leeway=0)
    token = base(ttl=60)
    first = t.verify(token)
    assert t.verify(token) is first
    clock[0] += 120
    with pytest.raises(ChainError):
        t.verify(token)


def test_malformed_tokens_are_refused_not_crashed():
    """Garbage in every part of the token text is a ChainError, never another exception."""
    t = trust()
    for text in ["", "x", "a.b", "a.b.c", "ü", "a" * 70000, base() + "~", base() + "~a.b.c",
                 base() + "~" + _b64(orjson.dumps({"alg": "EdDSA"})) + "." + _b64(b"[]") + ".x"]:
        with pytest.raises(ChainError):
            t.verify(text)


def _signed(header: dict, claims: dict, key=ISSUER_KEY) -> str:
    """A compact JWS over exactly these header and claims, signed with `key` (Ed25519)."""
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}"
    return f"{signing_input}.{_b64(key.sign(signing_input.encode()))}"


def _claims(**extra) -> dict:
    now = int(time.time())
    return {"iss": "auth", "sub": "user:alice", "exp": now + 300, "iat": now, "scopes": ["a.b"], **extra}


def test_jws_forms_the_reader_does_not_implement_are_refused_even_when_signed():
    """A correctly signed token is still refused (malformed) when its header asks for JWS
    extensions (`crit`, `b64: false`), when a part is base64url in a non-canonical spelling
    (trailing bits set: a second text for the same signature), or when it is a delegation
    link (typ callgate-delegation+jwt) presented as the token itself."""
    t = trust()
    assert t.verify(_signed({"alg": "EdDSA", "typ": "JWT"}, _claims())).user == "user:alice"
    for header in ({"alg": "EdDSA", "crit": ["exp"], "exp": 1}, {"alg": "EdDSA", "b64": False},
                   {"alg": "EdDSA", "typ": "callgate-delegation+jwt"}):
        err = refused(t, _signed(header, _claims()))
        assert err.code == "malformed", (header, err.message)
    good = _signed({"alg": "EdDSA", "typ": "JWT"}, _claims())
    head, body, sig = good.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(sig[-1])          # 64-byte signature: 86 chars, the last carries 2 unused bits
    twin = sig[:-1] + alphabet[last | 1]
    assert twin != sig and base64.urlsafe_b64decode(twin + "==") == base64.urlsafe_b64decode(sig + "==")
    assert refused(t, f"{head}.{body}.{twin}").code == "malformed"
    assert refused(t, f"{head}.{body}.{sig}=").code == "malformed"       # padding is not base64url


def test_missing_required_claims_are_named():
    """A signed token without `exp`, `iss` or `sub` (and, when the issuer expects an
    audience, without `aud`) is refused with code claims naming the claim."""
    t = trust()
    for name in ("exp", "sub"):
        claims = _claims()
        del claims[name]
        err = refused(t, _signed({"alg": "EdDSA"}, claims))
        assert err.code == "claims" and f"'{name}'" in err.message
    aud = trust(audience="https://mcp.example.test")
    err = refused(aud, _signed({"alg": "EdDSA"}, _claims()))
    assert err.code == "claims" and "'aud'" in err.message
    assert aud.verify(_signed({"alg": "EdDSA"}, _claims(aud=["x", "https://mcp.example.test"]))).user == "user:alice"
    assert refused(aud, _signed({"alg": "EdDSA"}, _claims(aud="https://other.example.test"))).code == "audience"


def test_a_jwks_issuer_verifies_with_the_key_its_kid_names():
    """An issuer trusted by JWKS URL verifies a token with the key its `kid` names; a token
    naming an unknown kid is refused with code key; one signed by another key with a known
    kid is refused with code signature."""
    from support.service import StaticServer

    jwk = orjson.loads(jwt.algorithms.OKPAlgorithm.to_jwk(ISSUER_KEY.public_key()))
    server = StaticServer()
    try:
        server.publish(orjson.dumps({"keys": [dict(jwk, kid="k1", use="sig")]}))
        t = Trust()
        t.trust_issuer("auth", server.url, algorithms=["EdDSA"])
        assert t.verify(_signed({"alg": "EdDSA", "kid": "k1"}, _claims())).user == "user:alice"
        assert refused(t, _signed({"alg": "EdDSA", "kid": "k9"}, _claims(jti="x"))).code == "key"
        assert refused(t, _signed({"alg": "EdDSA", "kid": "k1"}, _claims(jti="y"), key=OTHER)).code == "signature"
    finally:
        server.close()


def test_a_small_order_holder_key_cannot_carry_a_forged_link():
    """A base token whose `cnf.jwk` names a small-order Ed25519 point (the identity, which
    "verifies" the signature R = identity, S = 0 over any message under a lax verifier) does
    not let anyone append a link: the link is refused with code signature (libsodium's strict
    verification refuses small-order keys)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    identity = b"\x01" + b"\x00" * 31
    token = base(holder=Ed25519PublicKey.from_public_bytes(identity))
    now = int(time.time())
    claims = {"prev": _b64(hashlib.sha256(token.encode()).digest()), "delegate": "attacker:x",
              "scopes": ["postgres.read.x"], "iat": now, "exp": now + 60}
    signing_input = f"{_b64(orjson.dumps({'alg': 'EdDSA', 'typ': 'callgate-delegation+jwt'}))}.{_b64(orjson.dumps(claims))}"
    forged = f"{token}~{signing_input}.{_b64(identity + bytes(32))}"
    err = refused(trust(), forged)
    assert (err.code, err.link) == ("signature", 2)
