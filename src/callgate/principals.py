"""Principal chains: who is really calling, verified (docs/principals.md).

A call is made by a model acting for a person through a chain of agents: `user:alice ->
supervisor:triage-bot -> worker:sql-writer`. callgate verifies the chain (it never trusts
one it did not verify; the model never supplies one) and no link may grant more than the
weakest upstream link already has. Three forms, each verified against the issuers trusted
here (`Trust.trust_issuer`):

1. a chain token: a JWT from a trusted issuer, `{"iss", "sub": "user:alice", "agents":
   ["supervisor:triage-bot", "worker:sql-writer"], "scopes": [...], "exp", ...}`; the chain
   is `sub` then `agents` in order (the last is the agent making the call);
2. RFC 8693 delegation: an access token whose nested `act` claims name the actors (the
   outermost `act` is the current actor; the chain is `sub`, then the actors from innermost
   to outermost); scopes in `scope` (space-separated) or `scopes`;
3. attenuated delegation, offline: `BASE~LINK~LINK...`. BASE is a form 1 or 2 token that
   names its holder's Ed25519 key (`cnf.jwk`, RFC 7800); each LINK is a compact JWS
   (EdDSA, `typ` "callgate-delegation+jwt") signed by the holder before it, naming the
   delegate, its scopes (covered by its upstream's), an expiry no later than its
   upstream's, optionally an audience (a subset of its upstream's) and the delegate's own
   key (`cnf.jwk`) if it may delegate further; `prev` binds it to the exact text before it.
   A link that widens anything invalidates the whole chain, and the reason names it.

Trust is per issuer: a key (or keys, or a JWKS URL), the algorithms allowed for it (never
`none`; an HMAC algorithm only with a secret, an asymmetric one only with a public key),
the audience expected (RFC 8707: a token for another resource is refused), the clock skew
allowed, a depth limit and optional replay protection on `jti`. Every refusal is a
ChainError with a code and one line saying why.

Verified chains are cached by token text (bounded, each until its expiry), so a repeated
token costs a dictionary lookup; a replay-protected issuer's tokens are verified (and
their `jti` spent) on every use.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import orjson

from . import scopes as sc
from .approvals import Ledger, NonceLedger
from .errors import CallgateError
from .extras import require

DELEGATION_TYPE = "callgate-delegation+jwt"
MAX_LINK_LENGTH = 256
MAX_TOKEN_LENGTH = 64 * 1024
DEFAULT_MAX_DEPTH = 8
DEFAULT_LEEWAY = 30.0
_LINK = re.compile(r"[^\x00-\x1f\x7f+]+")   # no control characters, no "+" (the label's separator)


class ChainError(CallgateError):
    """A chain callgate refuses. `code` names the cause (malformed, unknown_issuer,
    algorithm, key, signature, expired, not_yet_valid, audience, depth, replayed, widening,
    binding, claims); `link` is the 0-based position of the link at fault in the chain when
    one is (attenuated delegation); str() is the one line saying why."""

    def __init__(self, message: str, code: str, link: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.link = link


@dataclass(frozen=True)
class Chain:
    """A verified chain: `links` from the user to the agent making the call, the scopes the
    token (after attenuation) grants, its issuer, expiry (Unix seconds), `jti`, audience and
    the base token's claims. Effective authority also depends on the policy's ceilings
    (`effective_scopes`)."""

    issuer: str
    links: tuple[str, ...]
    scopes: frozenset[str]
    expires: float
    form: str                           # "token", "delegation" or "attenuated"
    jti: Optional[str] = None
    audience: tuple[str, ...] = ()
    claims: Mapping[str, Any] = field(default_factory=dict)

    @property
    def user(self) -> str:
        """The first link: the person (or service) the chain acts for."""
        return self.links[0]

    @property
    def agents(self) -> tuple[str, ...]:
        """The links after the user, in order."""
        return self.links[1:]

    @property
    def actor(self) -> str:
        """The last link: the agent making this call."""
        return self.links[-1]

    @property
    def depth(self) -> int:
        """The number of links."""
        return len(self.links)

    @property
    def label(self) -> str:
        """The chain as the audit trail writes it: `user:alice+supervisor:triage-bot+worker:x`."""
        return "+".join(self.links)

    def source(self, effective: Iterable[str]) -> dict[str, Any]:
        """The `Principal` source a policy reads: user, agents, actor, depth, the effective
        scopes (sorted), issuer, jti and the token's claims."""
        return {"user": self.user, "agents": list(self.agents), "actor": self.actor, "depth": self.depth,
                "scopes": sorted(effective), "issuer": self.issuer, "jti": self.jti, "claims": dict(self.claims)}


def recorded_chain(identity: Mapping[str, Any]) -> Chain:
    """The chain an audit record keeps (`principal_chain`: label, issuer, jti, effective
    scopes) as a Chain, to replay the call: its scopes are the recorded effective ones, so a
    replaying policy can only narrow them further; the token's other claims were never
    recorded. ValueError when the record does not hold one."""
    label, issuer, scopes = identity.get("label"), identity.get("issuer"), identity.get("scopes")
    if not isinstance(label, str) or not label or not isinstance(issuer, str) or not isinstance(scopes, list) \
            or not all(isinstance(x, str) for x in scopes):
        raise ValueError("not a recorded principal chain (label, issuer and scopes)")
    jti = identity.get("jti")
    return Chain(issuer, tuple(label.split("+")), frozenset(scopes), float("inf"), "recorded",
                 jti if isinstance(jti, str) else None)


def effective_scopes(chain: Chain, ceilings: Optional[Mapping[str, Sequence[str]]] = None,
                     default: Optional[Sequence[str]] = None) -> frozenset[str]:
    """The chain's scopes narrowed by each link's ceiling from the policy's `principals`: a
    link's ceiling is its exact entry, else the intersection of every glob entry (`worker:*`)
    that matches it, else `default` (None: no ceiling)."""
    from .language import glob_match

    ceilings = ceilings or {}

    def ceiling(link: str) -> Optional[frozenset[str]]:
        if link in ceilings:
            return frozenset(ceilings[link])
        matching = [c for name, c in ceilings.items() if "*" in name and glob_match(name, link)]
        if not matching:
            return None if default is None else frozenset(default)
        out = frozenset(matching[0])
        for c in matching[1:]:
            out = sc.intersect(out, c)
        return out

    return sc.narrow(chain.scopes, (ceiling(link) for link in chain.links))


# ---------------------------------------------------------------- keys and issuers

_ASYMMETRIC = ("EdDSA", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_HMAC = ("HS256", "HS384", "HS512")


def _jwt() -> Any:
    require("cryptography", "principal chains", "principals")
    return require("jwt", "principal chains", "principals")


def _load_public_key(key: Any) -> Any:
    """A cryptography public key from a key object, PEM bytes/text or a PEM file path."""
    require("cryptography", "principal chains", "principals")
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if isinstance(key, (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        return key
    if isinstance(key, Path) or (isinstance(key, str) and not key.lstrip().startswith("-----")):
        try:
            key = Path(key).read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read the key {key}: {exc.strerror or exc}") from None
    if isinstance(key, str):
        key = key.encode()
    try:
        return load_pem_public_key(key)
    except ValueError as exc:
        raise ValueError(f"not a PEM public key ({exc})") from None


def _default_algorithms(key: Any) -> tuple[str, ...]:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ed25519.Ed25519PublicKey):
        return ("EdDSA",)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ({"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}[key.curve.name],)
    if isinstance(key, rsa.RSAPublicKey):
        return ("RS256",)
    raise ValueError(f"unsupported key type {type(key).__name__}")


@dataclass
class Issuer:
    """One trusted issuer: its keys (or a JWKS client), the algorithms allowed, the audience
    expected, the clock skew allowed, the depth limit and the `jti` ledger (replay
    protection), or None."""

    name: str
    keys: tuple[Any, ...]
    algorithms: tuple[str, ...]
    audience: Optional[tuple[str, ...]]
    leeway: float
    max_depth: int
    replay: Optional[Ledger]
    jwks: Any = None                     # a PyJWKClient for a JWKS URL

    def keys_for(self, header: Mapping[str, Any]) -> tuple[Any, ...]:
        """The keys a token (by its header) may be verified with: the JWKS key its `kid`
        names, or all."""
        if self.jwks is not None:
            try:
                return (self.jwks.get_signing_key(header.get("kid")).key,)
            except Exception as exc:  # PyJWKClientError and its network causes: refused, never trusted
                raise ChainError(f"issuer {self.name!r}: no key for this token from its JWKS ({exc})", "key") from None
        return self.keys


def make_issuer(name: str, key_or_jwks_url: Any, *, algorithms: Optional[Sequence[str]] = None,
                audience: Union[str, Sequence[str], None] = None, leeway: float = DEFAULT_LEEWAY,
                max_depth: int = DEFAULT_MAX_DEPTH, replay_protection: bool = False,
                ledger: Optional[Ledger] = None) -> Issuer:
    """An Issuer from a public key (object, PEM, PEM file), a list of them, an HMAC secret
    (bytes of at least 32) or a JWKS URL (https://...). ValueError with one line for a
    configuration that could be fooled: `none`, HMAC with a public key, an asymmetric
    algorithm with a secret, an algorithm the key cannot verify."""
    jwt = _jwt()
    if not isinstance(name, str) or not name:
        raise ValueError("an issuer is a non-empty string")
    algs = tuple(algorithms) if algorithms is not None else None
    if algs is not None:
        if not algs:
            raise ValueError(f"issuer {name!r}: at least one algorithm")
        bad = [a for a in algs if a not in _ASYMMETRIC + _HMAC]
        if bad:
            raise ValueError(f"issuer {name!r}: algorithm {bad[0]!r} is not allowed (never 'none')")
    jwks = None
    keys: tuple[Any, ...] = ()
    if isinstance(key_or_jwks_url, str) and key_or_jwks_url.startswith(("https://", "http://")):
        if algs is None:
            raise ValueError(f"issuer {name!r}: name the algorithms its JWKS keys use")
        if any(a in _HMAC for a in algs):
            raise ValueError(f"issuer {name!r}: a JWKS holds public keys: no HMAC algorithm")
        jwks = jwt.PyJWKClient(key_or_jwks_url, cache_keys=True, lifespan=300)
    elif isinstance(key_or_jwks_url, bytes) and not key_or_jwks_url.lstrip().startswith(b"-----"):
        if len(key_or_jwks_url) < 32:
            raise ValueError(f"issuer {name!r}: an HMAC secret has at least 32 bytes")
        algs = algs or ("HS256",)
        if any(a not in _HMAC for a in algs):
            raise ValueError(f"issuer {name!r}: a secret verifies only HMAC algorithms (HS256, HS384, HS512)")
        keys = (key_or_jwks_url,)
    else:
        given = key_or_jwks_url if isinstance(key_or_jwks_url, (list, tuple)) else [key_or_jwks_url]
        keys = tuple(_load_public_key(k) for k in given)
        if not keys:
            raise ValueError(f"issuer {name!r}: no key")
        algs = algs or _default_algorithms(keys[0])
        if any(a in _HMAC for a in algs):
            raise ValueError(f"issuer {name!r}: an HMAC algorithm never verifies with a public key")
        for k in keys:
            fits = set(_default_algorithms(k)) | ({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
                                                  if _default_algorithms(k) == ("RS256",) else set())
            if not set(algs) & fits:
                raise ValueError(f"issuer {name!r}: no algorithm of {list(algs)} verifies a {type(k).__name__}")
    if audience is not None:
        audience = (audience,) if isinstance(audience, str) else tuple(audience)
    if not isinstance(max_depth, int) or max_depth < 1:
        raise ValueError("max_depth is a positive integer")
    if not (isinstance(leeway, (int, float)) and 0 <= leeway <= 600):
        raise ValueError("leeway is 0 to 600 seconds")
    replay = (ledger or NonceLedger()) if replay_protection else None
    return Issuer(name, keys, algs, audience, float(leeway), max_depth, replay, jwks)


# ---------------------------------------------------------------- verifying

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def _b64url_decode(segment: str) -> bytes:
    """Unpadded base64url in its one canonical spelling: a segment whose unused trailing
    bits are set (another text for the same bytes) is refused, so one signature has one
    token text."""
    if len(segment) % 4 == 1 or not _B64URL.fullmatch(segment):
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    if _b64url(data) != segment:
        raise ValueError("not canonical base64url")
    return data


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class _Compact:
    """A compact JWS split and decoded, not verified: its header and payload objects, the
    bytes its signature covers and the signature."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signed: bytes
    signature: bytes


def _compact(text: str, where: str, index: Optional[int] = None) -> _Compact:
    """`text` read as a compact JWS (RFC 7515 section 7.1), or ChainError (malformed). A
    header that asks for what this reader does not do is refused here, before any key is
    tried: `crit` extensions, an unencoded payload (`b64: false`)."""
    parts = text.split(".")
    if len(parts) != 3:
        raise ChainError(f"{where} is not a compact {'JWS' if index else 'JWT'} (three base64url parts)",
                         "malformed", index)
    try:
        header = orjson.loads(_b64url_decode(parts[0]))
        claims = orjson.loads(_b64url_decode(parts[1]))
        signature = _b64url_decode(parts[2])
    except (ValueError, orjson.JSONDecodeError):
        raise ChainError(f"{where} is not base64url JSON", "malformed", index) from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ChainError(f"{where}: header and payload are JSON objects", "malformed", index)
    if "crit" in header or "b64" in header:
        raise ChainError(f"{where}: its header asks for JWS extensions (crit, b64) callgate does not implement",
                         "malformed", index)
    return _Compact(header, claims, f"{parts[0]}.{parts[1]}".encode(), signature)


def _link_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_LINK_LENGTH or not _LINK.fullmatch(value):
        raise ChainError(f"{what} is not a principal name (1 to {MAX_LINK_LENGTH} characters, no '+' "
                         "or control character)", "claims")
    return value


def _scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    if "scope" in claims and "scopes" in claims:
        raise ChainError("both 'scope' and 'scopes': give one", "claims")
    if "scopes" in claims:
        raw = claims["scopes"]
        if not isinstance(raw, list):
            raise ChainError("'scopes' is a list of strings", "claims")
    elif "scope" in claims:
        if not isinstance(claims["scope"], str):
            raise ChainError("'scope' is a space-separated string", "claims")
        raw = claims["scope"].split()
    else:
        raw = []
    try:
        return frozenset(s for s in raw if sc.parse(s) is not None)
    except sc.ScopeError as exc:
        raise ChainError(f"scope {exc}", "claims") from None


def _decode_base(token: _Compact, issuer: Issuer, now: float) -> dict[str, Any]:
    """Verify a form 1 or 2 token with `issuer`: algorithm, signature (PyJWT's algorithm
    for the token's `alg`, over the cryptography key), `iss`, `sub` and `exp` present, the
    audience when the issuer has one (RFC 8707), then exp/nbf/iat against `now` within the
    leeway (the trust's clock, the one the cache and the links use too)."""
    jwt = _jwt()
    alg = token.header.get("alg")
    if alg not in issuer.algorithms:
        raise ChainError(f"algorithm {alg!r} is not allowed for issuer {issuer.name!r} "
                         f"(allowed: {', '.join(issuer.algorithms)})", "algorithm")
    if token.header.get("typ") == DELEGATION_TYPE:
        raise ChainError("a delegation link is not a token: it is verified only after the token it extends",
                         "malformed")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    algorithm = jwt.get_algorithm_by_name(alg)
    for key in issuer.keys_for(token.header):
        if alg == "EdDSA":       # libsodium's verification (_ed25519_verify), as for the links
            if not isinstance(key, Ed25519PublicKey):
                raise ChainError("the issuer's key cannot verify this token", "key")
            if _ed25519_verify(key.public_bytes_raw(), token.signature, token.signed):
                break
            continue
        try:
            if algorithm.verify(token.signed, algorithm.prepare_key(key), token.signature):
                break
        except (jwt.PyJWTError, ValueError, TypeError):
            raise ChainError("the issuer's key cannot verify this token", "key") from None
    else:
        raise ChainError("the signature does not verify", "signature")
    claims = token.claims
    for name in ("exp", "iss", "sub"):
        if name not in claims:
            raise ChainError(f"a required claim is missing ('{name}')", "claims")
    if claims["iss"] != issuer.name:
        raise ChainError("the token's issuer is not the one that signed it", "unknown_issuer")
    if issuer.audience is not None:
        if "aud" not in claims:
            raise ChainError("a required claim is missing ('aud': this resource expects an audience)", "claims")
        if not set(_audience_of(claims)) & set(issuer.audience):
            raise ChainError("the token is for another audience", "audience")
    if _number(claims, "exp", "the token") <= now - issuer.leeway:
        raise ChainError("the token has expired", "expired")
    for name in ("nbf", "iat"):
        if name in claims and _number(claims, name, "the token") > now + issuer.leeway:
            raise ChainError("the token is not valid yet (nbf or iat in the future)", "not_yet_valid")
    return claims


def _links_of(claims: Mapping[str, Any], max_depth: int) -> tuple[tuple[str, ...], str]:
    """The chain a verified form 1 or 2 token names, and its form."""
    user = _link_name(claims.get("sub"), "'sub'")
    if "act" in claims:
        if "agents" in claims:
            raise ChainError("both 'act' (RFC 8693) and 'agents': give one", "claims")
        actors: list[str] = []
        act = claims["act"]
        while act is not None:
            if not isinstance(act, dict):
                raise ChainError("an 'act' claim is an object with 'sub'", "claims")
            actors.append(_link_name(act.get("sub"), "an 'act' claim's 'sub'"))
            if len(actors) >= max_depth:
                raise ChainError(f"the chain is deeper than {max_depth} links", "depth")
            act = act.get("act")
        return (user, *reversed(actors)), "delegation"
    agents = claims.get("agents", [])
    if not isinstance(agents, list):
        raise ChainError("'agents' is a list of principal names", "claims")
    links = (user, *(_link_name(a, "an agent in 'agents'") for a in agents))
    if len(links) > max_depth:
        raise ChainError(f"the chain is deeper than {max_depth} links", "depth")
    return links, "token"


def _holder_key(claims: Mapping[str, Any], where: str) -> Optional[bytes]:
    """The raw Ed25519 key a `cnf.jwk` claim names (the holder who may delegate), or None."""
    cnf = claims.get("cnf")
    if cnf is None:
        return None
    jwk = cnf.get("jwk") if isinstance(cnf, dict) else None
    if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or \
            not isinstance(jwk.get("x"), str):
        raise ChainError(f"{where}: 'cnf.jwk' is an Ed25519 public key (kty OKP, crv Ed25519, x)", "key")
    try:
        raw = _b64url_decode(jwk["x"])
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ChainError(f"{where}: 'cnf.jwk' is not an Ed25519 public key", "key")
    return raw


def _ed25519_verify(public: bytes, signature: bytes, message: bytes) -> bool:
    """Whether `signature` is the Ed25519 signature of `message` by the raw key `public`
    (RFC 8032, libsodium's strict verification through PyNaCl: it refuses small-order keys
    and non-canonical encodings; about twice as fast as OpenSSL's, bench/test_bench_principals.py)."""
    signing = require("nacl.signing", "principal chains", "principals")
    exceptions = require("nacl.exceptions", "principal chains", "principals")
    try:
        signing.VerifyKey(public).verify(message, signature)
    except (exceptions.BadSignatureError, ValueError, TypeError):
        return False
    return True


def _audience_of(claims: Mapping[str, Any]) -> tuple[str, ...]:
    aud = claims.get("aud")
    if aud is None:
        return ()
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return tuple(aud)
    raise ChainError("'aud' is a string or a list of strings", "claims")


def _number(claims: Mapping[str, Any], name: str, where: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ChainError(f"{where}: '{name}' is a number of Unix seconds", "claims")
    return float(value)


def _verify_link(segment: str, parent_text: str, holder: Optional[bytes], index: int, parent: Chain,
                 issuer: Issuer, now: float) -> tuple[Chain, Optional[Any]]:
    """One delegation link: returns the narrowed chain and the delegate's key (or None)."""
    where = f"link {index}"
    link = _compact(segment, where, index)
    header, claims = link.header, link.claims
    if header.get("alg") != "EdDSA" or header.get("typ") != DELEGATION_TYPE:
        raise ChainError(f"{where}: a delegation link is alg EdDSA, typ {DELEGATION_TYPE}", "algorithm", index)
    if holder is None:
        raise ChainError(f"{where}: the link before it names no key to delegate with (no 'cnf.jwk')", "binding", index)
    if not _ed25519_verify(holder, link.signature, link.signed):
        raise ChainError(f"{where}: the signature is not its upstream holder's", "signature", index)
    if claims.get("prev") != _b64url(hashlib.sha256(parent_text.encode()).digest()):
        raise ChainError(f"{where} is not bound to the chain before it ('prev')", "binding", index)
    delegate = _link_name(claims.get("delegate"), f"{where}'s 'delegate'")
    if parent.depth + 1 > issuer.max_depth:
        raise ChainError(f"the chain is deeper than {issuer.max_depth} links", "depth", index)
    if "scopes" not in claims:
        raise ChainError(f"{where} ({delegate}) names no 'scopes'", "claims", index)
    scopes = _scopes_of({"scopes": claims["scopes"]})
    wider = sc.subset(scopes, parent.scopes)
    if wider is not None:
        raise ChainError(f"{where} ({delegate}) grants {wider}, more than its upstream holds", "widening", index)
    expires = _number(claims, "exp", where)
    if expires > parent.expires:
        raise ChainError(f"{where} ({delegate}) expires after its upstream", "widening", index)
    if expires <= now - issuer.leeway:
        raise ChainError(f"{where} ({delegate}) has expired", "expired", index)
    audience = _audience_of(claims) or parent.audience
    if parent.audience and not set(audience) <= set(parent.audience):
        raise ChainError(f"{where} ({delegate}) names an audience its upstream does not have", "widening", index)
    if issuer.audience is not None and not set(audience) & set(issuer.audience):
        raise ChainError(f"{where} ({delegate}) is for another audience", "audience", index)
    chain = Chain(parent.issuer, (*parent.links, delegate), scopes, expires, "attenuated", parent.jti,
                  audience, parent.claims)
    return chain, _holder_key(claims, where)


class Trust:
    """The issuers trusted, and a bounded cache of the chains verified (by token text, each
    until it expires). Thread-safe."""

    def __init__(self, *, cache_size: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self.issuers: dict[str, Issuer] = {}
        self._cache: OrderedDict[str, Chain] = OrderedDict()
        self._cache_size = cache_size
        self._clock = clock
        self._lock = threading.Lock()

    def trust_issuer(self, issuer: str, key_or_jwks_url: Any, **options: Any) -> Issuer:
        """Trust `issuer` (see `make_issuer` for the options); replaces an earlier entry."""
        made = make_issuer(issuer, key_or_jwks_url, **options)
        with self._lock:
            self.issuers[issuer] = made
            self._cache.clear()
        return made

    def verify(self, token: Any) -> Chain:
        """The chain `token` (forms 1-3) carries, or ChainError with the exact reason."""
        if isinstance(token, Chain):
            raise TypeError("verify takes the token text; a Chain is already verified")
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            raise ChainError(f"a chain token is ASCII text of 1 to {MAX_TOKEN_LENGTH} characters", "malformed")
        now = self._clock()
        with self._lock:
            hit = self._cache.get(token)
            if hit is not None:
                if hit.expires > now:
                    self._cache.move_to_end(token)
                    return hit
                del self._cache[token]
        chain, cacheable = self._verify(token, now)
        if cacheable:
            with self._lock:
                self._cache[token] = chain
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return chain

    def _verify(self, token: str, now: float) -> tuple[Chain, bool]:
        base_text, *links = token.split("~")
        base = _compact(base_text, "the token")
        name = base.claims.get("iss")
        issuer = self.issuers.get(name) if isinstance(name, str) else None
        if issuer is None:
            raise ChainError(f"issuer {name!r} is not trusted", "unknown_issuer")
        claims = _decode_base(base, issuer, now)
        chain_links, form = _links_of(claims, issuer.max_depth)
        jti = claims.get("jti")
        if jti is not None and not isinstance(jti, str):
            raise ChainError("'jti' is a string", "claims")
        base_claims = {k: v for k, v in claims.items() if k != "cnf"}
        chain = Chain(issuer.name, chain_links, _scopes_of(claims), _number(claims, "exp", "the token"), form, jti,
                      _audience_of(claims), base_claims)
        holder = _holder_key(claims, "the token") if links else None
        text = base_text
        for index, segment in enumerate(links, start=1):
            chain, holder = _verify_link(segment, text, holder, len(chain.links), chain, issuer, now)
            text = f"{text}~{segment}"
        if issuer.replay is not None:
            if jti is None:
                raise ChainError(f"issuer {issuer.name!r} requires a 'jti' (replay protection)", "claims")
            refused = issuer.replay.claim([(f"{issuer.name}\x00{jti}", chain.expires + issuer.leeway)])
            if refused is not None:
                raise ChainError(f"the token's jti was {refused} (replay protection)", "replayed")
        return chain, issuer.replay is None


# ---------------------------------------------------------------- minting (development, tests)

def _private_key(key: Any) -> Any:
    require("cryptography", "minting chain tokens", "principals")
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if isinstance(key, (str, Path)) and not str(key).lstrip().startswith("-----"):
        key = Path(key).read_bytes()
    if isinstance(key, str):
        key = key.encode()
    if isinstance(key, bytes):
        return load_pem_private_key(key, password=None)
    return key


def _jwk(public_key: Any) -> dict[str, str]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    if not isinstance(public_key, Ed25519PublicKey):
        public_key = _load_public_key(public_key)
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw)}


def mint(key: Any, *, issuer: str, subject: str, agents: Sequence[str] = (), scopes: Sequence[str] = (),
         ttl: float = 600.0, audience: Union[str, Sequence[str], None] = None, holder: Any = None,
         jti: Optional[str] = None, algorithm: Optional[str] = None, now: Optional[float] = None,
         extra: Optional[Mapping[str, Any]] = None) -> str:
    """A chain token (form 1) signed with `key` (a private key object or PEM; an HMAC secret as
    bytes); `holder` (an Ed25519 public key) may then delegate by `attenuate`."""
    jwt = _jwt()
    import secrets

    signing = key if isinstance(key, bytes) and not key.lstrip().startswith(b"-----") else _private_key(key)
    if algorithm is None:
        algorithm = "HS256" if isinstance(signing, bytes) else _default_algorithms(signing.public_key())[0]
    now = time.time() if now is None else now
    claims: dict[str, Any] = {"iss": issuer, "sub": subject, "agents": list(agents), "scopes": list(scopes),
                              "iat": int(now), "exp": int(now + ttl), "jti": jti or secrets.token_hex(16)}
    if audience is not None:
        claims["aud"] = audience
    if holder is not None:
        claims["cnf"] = {"jwk": _jwk(holder)}
    claims.update(extra or {})
    return str(jwt.encode(claims, signing, algorithm=algorithm))


def attenuate(token: str, holder_key: Any, *, delegate: str, scopes: Sequence[str], ttl: float = 300.0,
              audience: Union[str, Sequence[str], None] = None, delegate_key: Any = None,
              now: Optional[float] = None, expires: Optional[float] = None) -> str:
    """`token` with one more link: `delegate`, holding `scopes` (which must not widen: the
    verifier refuses otherwise), signed with the current holder's Ed25519 private key;
    `delegate_key` (its public key) lets it delegate further."""
    require("cryptography", "attenuating chain tokens", "principals")
    key = _private_key(holder_key)
    now = time.time() if now is None else now
    claims: dict[str, Any] = {"prev": _b64url(hashlib.sha256(token.encode()).digest()), "delegate": delegate,
                              "scopes": list(scopes), "iat": int(now),
                              "exp": int(expires if expires is not None else now + ttl)}
    if audience is not None:
        claims["aud"] = audience
    if delegate_key is not None:
        claims["cnf"] = {"jwk": _jwk(delegate_key)}
    header = _b64url(orjson.dumps({"alg": "EdDSA", "typ": DELEGATION_TYPE}))
    payload = _b64url(orjson.dumps(claims))
    signature = _b64url(key.sign(f"{header}.{payload}".encode()))
    return f"{token}~{header}.{payload}.{signature}"
