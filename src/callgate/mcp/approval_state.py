"""The `requestState` the proxy issues when it asks for an approval on a 2026 request
(MCP's input_required round trip): opaque to the client, unforgeable, bound to the one call,
spent once, and short-lived.

    states = ApprovalStates()                       # a key and a spent-nonce ledger of its own
    token = states.issue(binding, ttl=300)          # into the input_required result
    opened = states.open(token, binding)            # on the retried request
    if isinstance(opened, Refused): deny(opened.reason)

Format: ``cgs1.<payload>.<tag>``, both base64url without padding (canonical form only). The
payload is a JSON object (sorted keys) with exactly ``v`` (1), ``kid`` (the first 8 bytes of
SHA-256 of the key, hex: which proxy issued it), ``tool``, ``args``, ``role``,
``principal``, ``agent``, ``resource``, ``policy`` (see `Binding`), ``n`` (the approvals the
policy asked for), ``iat``/``exp`` (Unix seconds), ``nonce``, ``grant`` (the user already
approved this call in an earlier round: the proxy is carrying the server's own state through
a later round) and ``up`` (that server state, a string, or null). The tag is HMAC-SHA256,
with a 32-byte key the proxy draws at start and holds only in memory, over the ASCII bytes
``cgs1.<payload>``.

Refusals, in the order checked (the first that applies is the reason): ``malformed``
(anything that is not such a token, or longer than MAX_STATE); ``issued by another proxy or
before a restart`` (another key id); ``altered (bad signature)``; ``different tool``,
``different arguments``, ``different role``, ``different principal``, ``different agent
attributes``, ``different resource attributes``, ``different policy``, ``different approval
count``; ``expired``; ``already used`` (the nonce is spent: in this process a state opens
once) or ``ledger full``. Opening spends the nonce only when everything else holds.

The spent-nonce ledger is callgate.approvals.NonceLedger (bounded in entries, each nonce kept
until its state's expiry). Like that ledger, the key is one process's: a state opens only in
the proxy that issued it, and not after a restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import orjson

from ..extras import require

PREFIX = "cgs1"
MAX_STATE = 65536        # characters: a state (with a server's state inside) longer than this is malformed
MAX_LEDGER = 100_000     # unexpired spent nonces held at most

MALFORMED = "malformed"
FOREIGN = "issued by another proxy or before a restart"
ALTERED = "altered (bad signature)"
EXPIRED = "expired"
_FIELDS = frozenset(("v", "kid", "tool", "args", "role", "principal", "agent", "resource", "policy", "n", "iat", "exp",
                     "nonce", "grant", "up"))
_B64 = re.compile(r"[A-Za-z0-9_-]*")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,128}")


@dataclass(frozen=True)
class Binding:
    """The call a state is bound to: the tool, the SHA-256 of the canonical arguments (and of
    the agent and resource attributes: approvals.arguments_digest), the role and principal
    (the role when there is none) of who asked, the policy's digest and the approval count it
    asked for."""

    tool: str
    args: str
    role: str
    principal: str
    agent: str
    resource: str
    policy: str
    required: int

    @classmethod
    def of(cls, tool: str, args: Any, role: str, principal: Optional[str], agent: Any, resource: Any,
           policy: str, required: int) -> "Binding":
        """The binding of one call, its arguments and attributes digested."""
        from ..approvals import arguments_digest

        return cls(tool, arguments_digest(args), role, role if principal is None else principal,
                   arguments_digest(agent, "agent attributes"), arguments_digest(resource, "resource attributes"),
                   policy, required)


@dataclass(frozen=True)
class Opened:
    """A state that verified and was spent: whether the user had already approved the call
    (`grant`) and the server's own state it carried (`upstream`, or None)."""

    grant: bool
    upstream: Optional[str]


@dataclass(frozen=True)
class Refused:
    """A state that did not verify (nothing was spent): why."""

    reason: str


def is_ours(state: Any) -> bool:
    """Whether a requestState is in this module's format (it may still fail to open)."""
    return isinstance(state, str) and state.startswith(PREFIX + ".")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> Optional[bytes]:
    if len(text) % 4 == 1 or not _B64.fullmatch(text):
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return data if _b64(data) == text else None


class ApprovalStates:
    """Issues and opens approval states with one key and one spent-nonce ledger (thread-safe:
    the ledger locks; the key never changes)."""

    def __init__(self, *, key: Optional[bytes] = None, clock: Callable[[], float] = time.time,
                 max_entries: int = MAX_LEDGER, ledger: Any = None) -> None:
        require("cryptography", "approvals on requests of the 2026 protocol", "mcp")
        from ..approvals import NonceLedger

        self._key = key if key is not None else secrets.token_bytes(32)
        if len(self._key) < 32:
            raise ValueError("an approval-state key is at least 32 bytes")
        self.kid = hashlib.sha256(self._key).hexdigest()[:16]
        self._clock = clock
        # a shared ledger (ledger.PostgresLedger) spends a state once across replicas
        self.ledger = ledger if ledger is not None else NonceLedger(max_entries, clock=clock)

    def _tag(self, signed: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes, hmac

        mac = hmac.HMAC(self._key, hashes.SHA256())
        mac.update(signed)
        return mac.finalize()

    def _verify(self, signed: bytes, tag: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, hmac

        mac = hmac.HMAC(self._key, hashes.SHA256())
        mac.update(signed)
        try:
            mac.verify(tag)   # constant time
        except InvalidSignature:
            return False
        return True

    def issue(self, binding: Binding, ttl: float, *, grant: bool = False, upstream: Optional[str] = None) -> str:
        """A state for `binding`, valid for `ttl` seconds; `grant`: the user approved the call
        already; `upstream`: the server's own state to give back to it on the next round.
        ValueError when it would be longer than MAX_STATE."""
        if not (isinstance(ttl, (int, float)) and math.isfinite(ttl) and ttl > 0):
            raise ValueError("the approval window must be a positive number of seconds")
        now = self._clock()
        payload = {"v": 1, "kid": self.kid, "tool": binding.tool, "args": binding.args, "role": binding.role,
                   "principal": binding.principal, "agent": binding.agent, "resource": binding.resource,
                   "policy": binding.policy, "n": binding.required, "iat": now, "exp": now + ttl,
                   "nonce": secrets.token_urlsafe(18), "grant": grant, "up": upstream}
        signed = f"{PREFIX}.{_b64(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS))}"
        token = f"{signed}.{_b64(self._tag(signed.encode('ascii')))}"
        if len(token) > MAX_STATE:
            raise ValueError(f"the request state would be {len(token)} characters (at most {MAX_STATE})")
        return token

    def open(self, token: Any, binding: Binding) -> Opened | Refused:
        """Verify a state against the call it is presented with and spend it: Opened, or
        Refused with the reason (module docstring); never raises for a bad token."""
        claims = self._claims(token)
        if isinstance(claims, Refused):
            return claims
        for field, want, cause in (("tool", binding.tool, "different tool"), ("args", binding.args, "different arguments"),
                                   ("role", binding.role, "different role"),
                                   ("principal", binding.principal, "different principal"),
                                   ("agent", binding.agent, "different agent attributes"),
                                   ("resource", binding.resource, "different resource attributes"),
                                   ("policy", binding.policy, "different policy"),
                                   ("n", binding.required, "different approval count")):
            if claims[field] != want:
                return Refused(cause)
        now = self._clock()
        if not now < claims["exp"]:
            return Refused(EXPIRED)
        refused = self.ledger.claim([(claims["nonce"], claims["exp"])])
        if refused is not None:
            return Refused(refused)
        return Opened(claims["grant"], claims["up"])

    def _claims(self, token: Any) -> dict[str, Any] | Refused:
        if not isinstance(token, str) or len(token) > MAX_STATE or not token.isascii():
            return Refused(MALFORMED)
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            return Refused(MALFORMED)
        body, tag = _unb64(parts[1]), _unb64(parts[2])
        if body is None or tag is None or len(tag) != 32:
            return Refused(MALFORMED)
        try:
            claims = orjson.loads(body)
        except orjson.JSONDecodeError:
            return Refused(MALFORMED)
        if not _well_formed(claims):
            return Refused(MALFORMED)
        if claims["kid"] != self.kid:
            return Refused(FOREIGN)
        if not self._verify(f"{parts[0]}.{parts[1]}".encode("ascii"), tag):
            return Refused(ALTERED)
        checked: dict[str, Any] = claims
        return checked


def _well_formed(claims: Any) -> bool:
    if not isinstance(claims, dict) or set(claims) != _FIELDS or claims["v"] != 1:
        return False
    if not all(isinstance(claims[k], str) for k in ("kid", "tool", "role", "principal", "policy", "nonce")):
        return False
    if not all(isinstance(claims[k], str) and _HEX64.fullmatch(claims[k]) for k in ("args", "agent", "resource")):
        return False
    n = claims["n"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        return False
    for k in ("iat", "exp"):
        x = claims[k]
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            return False
    if not claims["exp"] > claims["iat"] or not _NONCE.fullmatch(claims["nonce"]):
        return False
    return isinstance(claims["grant"], bool) and (claims["up"] is None or isinstance(claims["up"], str))


def binding_for(verdict: Any, identity: Any, policy_digest: str) -> Binding:
    """The Binding of a gate Verdict (an Elevate) for the identity that asked."""
    # bound to the whole chain when the call carried one (alice through another agent is not alice)
    principal = verdict.principal_of(identity) if hasattr(verdict, "principal_of") else identity.principal
    return Binding.of(verdict.tool or "", verdict.args, identity.role, principal,
                      dict(identity.agent_attributes), dict(verdict.resource), policy_digest,
                      verdict.approvals_required)
