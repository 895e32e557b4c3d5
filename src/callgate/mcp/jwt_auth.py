"""Bearer JWT verification for the HTTP front: who is calling comes from a token the
operator's identity provider signed, never from the MCP message.

Pinned: the one algorithm (no `none`, no algorithm the token picks), the key (a PEM
public key, an HMAC secret file, or a JWKS file selected by `kid`), the issuer, the
audience, an expiry that must be present, and a subject (`sub`): the principal that
sessions and approvals are bound to. Any failure to verify, whatever raised it, is an
AuthError (a 401), never an error of the front.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..extras import require
from .gate import Identity

LEEWAY_S = 5  # clock skew tolerated on exp/nbf/iat


class AuthError(Exception):
    """The request is not authenticated; str(exc) is safe to show the caller."""


@dataclass
class JwtConfig:
    """How the HTTP front verifies bearer tokens: the one algorithm accepted, the issuer and
    audience required, the key (or JWKS), and which claims give the role and agent attributes."""

    algorithm: str
    issuer: str
    audience: str
    key: Any = None                  # a key object / secret, when not using a JWKS
    jwks: Any = None                 # jwt.PyJWKSet
    role_claim: str = "role"
    attr_claims: list[tuple[str, str]] = field(default_factory=list)   # (claim, attribute)
    # the bearer token is also the caller's principal chain (forms 1-2, docs/principals.md),
    # verified by the engine's trusted issuers for each call; never passed to the upstream
    chain: bool = False

    @classmethod
    def from_files(cls, *, key: Optional[Path], jwks: Optional[Path], issuer: str, audience: str,
                   algorithm: str, role_claim: str = "role", attr_claims: Optional[list[str]] = None) -> "JwtConfig":
        """From the command line's files: the JWKS file when given, else the key file (a PEM
        public key, or an HS secret); `attr_claims` items are CLAIM or CLAIM=ATTRIBUTE.
        ValueError (one line) for an algorithm or key that cannot be used."""
        require("jwt", "JWT authentication on the HTTP front", "mcp")
        require("cryptography", "JWT authentication on the HTTP front", "mcp")
        import jwt

        if algorithm.lower() == "none":
            raise ValueError("--jwt-algorithm none is not a signature")
        if algorithm not in jwt.algorithms.get_default_algorithms():
            raise ValueError(f"--jwt-algorithm {algorithm!r} is not supported")
        pairs = []
        for item in attr_claims or []:
            claim, _, attr = item.partition("=")
            pairs.append((claim, attr or claim))
        try:
            if jwks is not None:
                return cls(algorithm, issuer, audience, jwks=jwt.PyJWKSet.from_json(Path(jwks).read_text()),
                           role_claim=role_claim, attr_claims=pairs)
            raw = Path(key).read_bytes()  # type: ignore[arg-type]
        except OSError as exc:
            raise ValueError(f"cannot read the JWT key: {exc.strerror}") from None
        except jwt.PyJWTError as exc:
            raise ValueError(f"--jwks: {exc}") from None
        if algorithm.startswith("HS"):
            material: Any = raw.strip()
        else:
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            try:
                material = load_pem_public_key(raw)
            except ValueError as exc:
                raise ValueError(f"--jwt-key: not a PEM public key ({exc})") from None
        return cls(algorithm, issuer, audience, key=material, role_claim=role_claim, attr_claims=pairs)

    def _key_for(self, token: str) -> Any:
        import jwt

        if self.jwks is None:
            return self.key
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        keys = [k for k in self.jwks.keys if kid is None or k.key_id == kid]
        if kid is None and len(self.jwks.keys) != 1:
            raise AuthError("the token names no key (kid) and the JWKS has several")
        if not keys:
            raise AuthError("the token's key (kid) is not in the JWKS")
        return keys[0].key

    def verify(self, authorization: Optional[str]) -> Identity:
        """The identity in a valid `Authorization: Bearer …` header; AuthError otherwise."""
        import jwt

        if not authorization:
            raise AuthError("a bearer token is required")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("a bearer token is required")
        token = token.strip()
        try:
            claims = jwt.decode(token, self._key_for(token), algorithms=[self.algorithm], audience=self.audience,
                                issuer=self.issuer, leeway=LEEWAY_S,
                                options={"require": ["exp", "iss", "aud", "sub"], "verify_signature": True})
        except AuthError:
            raise
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        except Exception as exc:  # e.g. a JWKS key of another type than the token's algorithm: still a refusal
            raise AuthError(f"invalid token: it cannot be verified with the configured key ({type(exc).__name__})") \
                from None
        role = claims.get(self.role_claim)
        if not isinstance(role, str) or not role:
            raise AuthError(f"the token has no {self.role_claim!r} claim (a string)")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            # the subject is whom sessions and approvals are bound to: a role is not a principal
            raise AuthError("the token has no 'sub' claim (a non-empty string)")
        attrs = {attr: claims[claim] for claim, attr in self.attr_claims if claim in claims}
        return Identity(role, attrs, subject, token if self.chain else None)
