"""Signed approvals: what turns an Elevate into an Allow (docs/policy-v2.md, "Approvals").

Self-contained (orjson, cryptography, the standard library); the engine calls it.

    ledger = NonceLedger()                     # ledger.ledger_id: "mem-<32 hex>", random
    token = sign_approval(call, approver="bob", key=bob_private_key, policy_digest=digest,
                          ledger=ledger.ledger_id)
    keyring.trust("bob", bob_public_key)
    verdict = check_approvals([token], call, policy_digest=digest, keyring=keyring,
                              ledger=ledger, now=time.time())
    refused = ledger.claim(verdict.nonces) if verdict.satisfies(n) else None
    if verdict.satisfies(n) and refused is None:
        ...  # Allow, reason + verdict.reason_suffix(n)
    else:
        ...  # still Elevate, reason + verdict.reason_suffix(n, refused)

Token format
------------
``cga2.<payload>.<signature>``: both parts base64url without padding, in canonical form (a
part whose unused trailing bits are not zero is malformed). The payload is a JSON object with
exactly the keys ``v`` (the integer 2), ``approver``, ``tool``, ``args`` (the hex SHA-256 of
the canonical arguments, see `arguments_digest`), ``role``, ``agent``, ``resource`` and
``context`` (the same digest of the agent attributes, the resource attributes and the
context), ``principal``, ``policy`` (the policy digest), ``ledger`` (the id of the nonce
ledger the approval may be spent in), ``iat`` and ``exp`` (Unix seconds, finite numbers,
``exp > iat``) and ``nonce``; `sign_approval` writes it with orjson, sorted keys. The Ed25519
signature covers the ASCII bytes ``cga2.<payload>`` (everything before the last dot), so it
binds the exact payload bytes and the format version. A token is at most
`MAX_TOKEN_LENGTH` characters. The earlier format, ``cga1`` (no role, attributes, context or
ledger), is not accepted: such a token gets the cause ``old format``.

Approver names and ledger ids match ``[A-Za-z0-9_][A-Za-z0-9_.@+:-]{0,127}`` (so an approver
named in a reason cannot forge reason text); nonces match ``[A-Za-z0-9_-]{16,128}``.

Values are bound by value: a digest is SHA-256 over ``orjson.dumps(value,
option=OPT_SORT_KEYS)`` (None means ``{}``), so key order does not matter but JSON types do:
``{"a": 1}`` and ``{"a": 1.0}`` are different arguments (the tool would see a different
value). Integers beyond 64 bits, which orjson cannot write, fall back to
``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, as the engine does.
NaN, infinities, lone surrogates and non-JSON types raise `RequestError`. The role is bound
as itself, and so is the principal (the role when the call names none).

Checks, in order; the first that fails is the approval's cause
----------------------------------------------------------------
1. parse: a token that is a str of at most `MAX_TOKEN_LENGTH` ASCII characters in three
   dot-separated parts, the first ``cga1`` -> ``old format``; any other token that is not a
   str, too long, not ASCII, not three dot-separated parts, not ``cga2``, bad base64, a
   signature that is not 64 bytes, a payload that is not UTF-8 or not JSON (duplicate keys,
   NaN/Infinity literals included), missing, extra or mistyped fields, a bad approver name,
   ledger id or nonce, ``exp <= iat`` -> ``malformed``
2. the approver is in the keyring -> else ``unknown approver``
3. the signature verifies under that approver's key -> else ``bad signature``
4. binding, checked in this order: ``different tool``, ``different arguments``,
   ``different role``, ``different principal``, ``different agent attributes``,
   ``different resource attributes``, ``different context``, ``different policy``,
   ``different ledger`` (the call's facts, then the policy, then where the approval may be
   spent)
5. time: ``now >= exp`` -> ``expired``; ``iat > now + 60`` -> ``not yet valid``
6. the nonce is in the ledger -> ``already used``
7. an earlier approval by the same approver already counted -> ``same approver counted
   once`` (so a second copy of one token gets this cause); an earlier counted approval
   carried the same nonce -> ``already used``

Checking never raises for a bad token and never spends a nonce: the engine spends
`Verdict.nonces` (all counted approvals, also those beyond the required count) only when the
approvals make the decision Allow.

Reason suffix (`Verdict.reason_suffix`), appended to the Elevate reason
-----------------------------------------------------------------------
- satisfied: ``; approved by 'alice', 'bob'`` (the counted approvers, in the order given;
  problems with other approvals are not reported);
- satisfied, but the ledger refused to spend the nonces (``refused``, the cause from
  `NonceLedger.claim`: a concurrent use, ``ledger full``...): ``; approvals by 'alice', 'bob'
  refused: already used``; the decision stays Elevate;
- otherwise: ``; K of N approvals valid`` (K counted distinct approvers, N required; the word
  is always "approvals"), then, when some approval was rejected, ``: `` and each rejected
  approval as ``approval I (WHO): CAUSE`` joined by ``; ``. I is the approval's 1-based
  position in the list given, WHO its approver as the payload names it, or ``?`` when the
  token is malformed or of the old format. Example: ``; 1 of 2 approvals valid: approval 2
  (bob): expired; approval 3 (?): malformed``; with no approvals at all: ``; 0 of 1
  approvals valid``.

Keyring
-------
`Keyring` maps approver names to Ed25519 public keys. One key is one approver: trusting a key
already trusted under another name is a ValueError (else one person holding it would count as
two approvers). Re-trusting a name with the same or a new key (rotation) is allowed, and
`forget` frees the name's key.

Nonce ledger
------------
`NonceLedger` has an id (``ledger_id``: given, or ``mem-`` and 32 random hex digits) that
approvals bind, so an approval is spent in one ledger only: a ledger in memory is local to
one process, and another process (or this one after a restart) has another id and refuses
the approval as ``different ledger``. It keeps spent nonces until their approval's expiry,
then forgets them (an expired approval is refused before its nonce is looked up). Its horizon
is the latest time its own clock (``clock``, default time.time) has shown: never a
caller-supplied ``now``, which only decides whether an approval has expired or is not yet
valid. It forgets the nonces that expired by its horizon and refuses to record a nonce whose
expiry is not after it, since such a nonce may already have been forgotten: so neither a
clock that steps back nor a caller's ``now`` in the past can replay an approval, and a
caller's ``now`` in the future cannot make it refuse later approvals. Beyond
``max_entries`` unexpired nonces it refuses new approvals ("ledger full") rather than forget
any.
`Ledger` is the interface (`NonceLedger` is the in-memory one); callgate.ledger.PostgresLedger
keeps spent nonces in PostgreSQL so that replicas share them, and when it cannot be reached an
approval gets the cause ``ledger unavailable`` and a satisfied set is refused with
``ledger unavailable (WHY)``: fail closed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import itertools
import json
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import orjson
from .extras import require

require("cryptography", "signed approvals", "approvals")   # one line naming the extra when it is missing
from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey  # noqa: E402

from .values import big_ints_as_fragments, has_nonfinite
from .errors import RequestError

__all__ = [
    "Call", "Keyring", "Ledger", "LedgerUnavailable", "NonceLedger", "Verdict", "arguments_digest", "sign_approval",
    "check_approvals", "MAX_TOKEN_LENGTH", "MAX_APPROVALS", "CLOCK_SKEW", "CAUSES",
]

PREFIX = "cga2"
OLD_PREFIX = "cga1"     # the format before role, attributes, context and ledger were bound
MAX_TOKEN_LENGTH = 4096
MAX_APPROVALS = 32      # more approvals in one request is a RequestError
CLOCK_SKEW = 60.0       # an approval issued up to this many seconds in the future is accepted

MALFORMED = "malformed"
OLD_FORMAT = "old format"
UNKNOWN_APPROVER = "unknown approver"
BAD_SIGNATURE = "bad signature"
DIFFERENT_TOOL = "different tool"
DIFFERENT_ARGUMENTS = "different arguments"
DIFFERENT_ROLE = "different role"
DIFFERENT_PRINCIPAL = "different principal"
DIFFERENT_AGENT = "different agent attributes"
DIFFERENT_RESOURCE = "different resource attributes"
DIFFERENT_CONTEXT = "different context"
DIFFERENT_POLICY = "different policy"
DIFFERENT_LEDGER = "different ledger"
EXPIRED = "expired"
NOT_YET_VALID = "not yet valid"
ALREADY_USED = "already used"
SAME_APPROVER = "same approver counted once"
LEDGER_FULL = "ledger full"
LEDGER_UNAVAILABLE = "ledger unavailable"   # a shared ledger (callgate.ledger) could not be asked
CAUSES = (MALFORMED, OLD_FORMAT, UNKNOWN_APPROVER, BAD_SIGNATURE, DIFFERENT_TOOL,
          DIFFERENT_ARGUMENTS, DIFFERENT_ROLE, DIFFERENT_PRINCIPAL, DIFFERENT_AGENT,
          DIFFERENT_RESOURCE, DIFFERENT_CONTEXT, DIFFERENT_POLICY, DIFFERENT_LEDGER, EXPIRED,
          NOT_YET_VALID, ALREADY_USED, SAME_APPROVER)

_APPROVER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+:-]{0,127}")
_LEDGER_RE = _APPROVER_RE   # ledger ids: the same charset (mem-<32 hex> by default)
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")
_B64_RE = re.compile(r"[A-Za-z0-9_-]*")
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
_FIELDS = frozenset(("v", "approver", "tool", "args", "role", "agent", "resource", "context",
                     "principal", "policy", "ledger", "iat", "exp", "nonce"))
_SORT = orjson.OPT_SORT_KEYS


# ---------------------------------------------------------------- the call


@dataclass(frozen=True)
class Call:
    """The exact call an approval is bound to: every field is bound (each of arguments,
    agent_attributes, resource_attributes and context by its canonical digest, None meaning
    {}); `principal` None means the role is the principal."""

    tool: str
    arguments: Any = None
    role: str = ""
    principal: Optional[str] = None
    agent_attributes: Optional[Mapping[str, Any]] = None
    resource_attributes: Optional[Mapping[str, Any]] = None
    context: Optional[Mapping[str, Any]] = None

    @property
    def bound_principal(self) -> str:
        """The principal approvals bind: `principal`, or the role when it is None."""
        return self.role if self.principal is None else self.principal


def _canonical(value: Any, what: str = "arguments") -> bytes:
    """Canonical JSON bytes of a value (sorted keys, orjson's text); RequestError for what
    JSON cannot carry (`what` names the value in its message)."""
    try:
        try:
            out = orjson.dumps(value, option=_SORT)
        except orjson.JSONEncodeError:  # integers beyond 64 bits: JSON carries them
            out = orjson.dumps(big_ints_as_fragments(value), option=_SORT)
    except RecursionError:
        raise RequestError(f"{what} are nested too deeply", "depth") from None
    except orjson.JSONEncodeError as exc:
        if "surrogates" in str(exc):
            raise RequestError(f"{what} hold a string that is not valid Unicode", "utf8") from None
        raise RequestError(f"{what} hold a value JSON cannot carry: {exc}", "unserializable") from None
    if b"null" in out and has_nonfinite(value):  # orjson writes NaN and infinities as null
        raise RequestError(f"{what} hold NaN or Infinity, which are not JSON", "nonfinite")
    return out


def arguments_digest(arguments: Any, what: str = "arguments") -> str:
    """Hex SHA-256 of the canonical JSON of `arguments` (None means {}). Approvals bind the
    agent attributes, resource attributes and context by the same digest."""
    return hashlib.sha256(_canonical({} if arguments is None else arguments, what)).hexdigest()


# ---------------------------------------------------------------- signing


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> Optional[bytes]:
    """Strict base64url without padding: canonical form only; None if not."""
    if len(text) % 4 == 1 or not _B64_RE.fullmatch(text):
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return data if _b64(data) == text else None


def _finite_number(x: Any) -> bool:
    """A JSON number (not a bool) that a float can hold."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:  # an integer beyond the float range
        return False


def sign_approval(call: Call, *, approver: str, key: Ed25519PrivateKey, policy_digest: str,
                  ledger: Union[str, "Ledger"], ttl: float = 300,
                  now: Optional[float] = None, nonce: Optional[str] = None) -> str:
    """An approval by `approver` of exactly `call` under the policy whose digest is
    `policy_digest`, to be spent in the nonce ledger `ledger` (its id, or the Ledger
    itself), valid for `ttl` seconds from `now` (default: time.time()). Returns
    ``cga2.<payload>.<signature>``. Raises TypeError/ValueError for bad parameters and
    RequestError for arguments, attributes or context JSON cannot carry."""
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError(f"key must be an Ed25519PrivateKey, not {type(key).__name__}")
    if not isinstance(approver, str) or not _APPROVER_RE.fullmatch(approver):
        raise ValueError(f"approver name {approver!r} must match {_APPROVER_RE.pattern}")
    if not isinstance(call, Call):
        raise TypeError(f"call must be a callgate Call, not {type(call).__name__}")
    if not isinstance(call.tool, str):
        raise TypeError("call.tool must be a str")
    if not isinstance(call.role, str):
        raise TypeError("call.role must be a str")
    principal = call.bound_principal
    if not isinstance(principal, str):
        raise TypeError("call.principal must be a str (or None: the role)")
    if not isinstance(policy_digest, str) or not policy_digest:
        raise ValueError("policy_digest must be a non-empty str")
    ledger_id = ledger.ledger_id if isinstance(ledger, Ledger) else ledger
    if not isinstance(ledger_id, str) or not _LEDGER_RE.fullmatch(ledger_id):
        raise ValueError(f"ledger must be a Ledger or a ledger id matching {_LEDGER_RE.pattern}, "
                         f"not {ledger!r}")
    if not _finite_number(ttl) or ttl <= 0:
        raise ValueError(f"ttl must be a positive number of seconds, not {ttl!r}")
    if now is None:
        now = time.time()
    elif not _finite_number(now):
        raise ValueError(f"now must be a finite number, not {now!r}")
    if nonce is None:
        nonce = secrets.token_urlsafe(16)
    elif not isinstance(nonce, str) or not _NONCE_RE.fullmatch(nonce):
        raise ValueError(f"nonce must match {_NONCE_RE.pattern}")
    exp = now + ttl
    if not math.isfinite(exp) or exp <= now:
        raise ValueError(f"ttl {ttl!r} from now {now!r} gives no validity period")
    payload = {"v": 2, "approver": approver, "tool": call.tool,
               "args": arguments_digest(call.arguments), "role": call.role,
               "agent": arguments_digest(call.agent_attributes, "agent attributes"),
               "resource": arguments_digest(call.resource_attributes, "resource attributes"),
               "context": arguments_digest(call.context, "context values"),
               "principal": principal, "policy": policy_digest, "ledger": ledger_id,
               "iat": now, "exp": exp, "nonce": nonce}
    try:
        body = orjson.dumps(payload, option=_SORT)
    except orjson.JSONEncodeError as exc:
        raise RequestError(f"the approval cannot be written as JSON: {exc}", "utf8") from None
    signing_input = f"{PREFIX}.{_b64(body)}"
    token = f"{signing_input}.{_b64(key.sign(signing_input.encode('ascii')))}"
    if len(token) > MAX_TOKEN_LENGTH:
        raise ValueError(f"the approval would be {len(token)} characters, over the limit of "
                         f"{MAX_TOKEN_LENGTH} (tool, role, principal or policy digest too long)")
    return token


# ---------------------------------------------------------------- keyring


def _public_key(public_key: Union[Ed25519PublicKey, bytes, str]) -> Ed25519PublicKey:
    if isinstance(public_key, Ed25519PublicKey):
        return public_key
    if isinstance(public_key, Ed25519PrivateKey):
        raise TypeError("trust() takes the approver's public key, not the private key")
    if isinstance(public_key, (bytes, bytearray, memoryview)):
        raw = bytes(public_key)
        if len(raw) == 32:
            return Ed25519PublicKey.from_public_bytes(raw)
        if raw.lstrip().startswith(b"-----BEGIN"):
            public_key = raw.decode("ascii", "replace")
        else:
            raise ValueError(f"a raw Ed25519 public key is 32 bytes, not {len(raw)}")
    if isinstance(public_key, str):
        try:
            loaded = serialization.load_pem_public_key(public_key.encode("utf-8"))
        except (ValueError, TypeError, UnicodeEncodeError) as exc:
            raise ValueError(f"not a PEM public key: {exc}") from None
        if not isinstance(loaded, Ed25519PublicKey):
            raise ValueError(f"the PEM key is {type(loaded).__name__}, not an Ed25519 public key")
        return loaded
    raise TypeError("public_key must be an Ed25519PublicKey, 32 raw bytes or a PEM string, "
                    f"not {type(public_key).__name__}")


class Keyring:
    """Trusted approvers: name -> Ed25519 public key, one name per key. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._names: dict[bytes, str] = {}   # raw public key -> the one approver trusted with it

    def trust(self, approver: str, public_key: Union[Ed25519PublicKey, bytes, str]) -> None:
        """Trust `approver`'s key (replacing any earlier key of that name: rotation). The key
        is an Ed25519PublicKey, its 32 raw bytes, or a PEM (SubjectPublicKeyInfo) str or
        bytes. A key already trusted under another name is a ValueError: one key is one
        approver, or its holder would count as two (`forget` the other name first)."""
        if not isinstance(approver, str) or not _APPROVER_RE.fullmatch(approver):
            raise ValueError(f"approver name {approver!r} must match {_APPROVER_RE.pattern}")
        key = _public_key(public_key)
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        with self._lock:
            holder = self._names.get(raw)
            if holder is not None and holder != approver:
                raise ValueError(f"this public key is already trusted as approver {holder!r}: one key "
                                 f"cannot be two approvers ({approver!r} and {holder!r})")
            old = self._keys.get(approver)
            if old is not None:
                del self._names[old.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)]
            self._keys[approver] = key
            self._names[raw] = approver

    def forget(self, approver: str) -> None:
        """Stop trusting `approver` (no error if it was not trusted); its key may then be
        trusted under another name."""
        with self._lock:
            key = self._keys.pop(approver, None)
            if key is not None:
                del self._names[key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)]

    def get(self, approver: Any) -> Optional[Ed25519PublicKey]:
        """The key trusted for `approver`, or None (also for a name that is not a str)."""
        if not isinstance(approver, str):
            return None
        with self._lock:
            return self._keys.get(approver)

    def __contains__(self, approver: Any) -> bool:
        return self.get(approver) is not None

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    def names(self) -> tuple[str, ...]:
        """The trusted approvers' names, sorted."""
        with self._lock:
            return tuple(sorted(self._keys))


# ---------------------------------------------------------------- nonce ledger


class LedgerUnavailable(Exception):
    """A shared ledger (callgate.ledger.PostgresLedger) could not be asked whether a nonce is
    spent: the approval does not count (cause "ledger unavailable"), never the reverse."""


class Ledger:
    """What approvals, chain `jti` replay protection and MCP requestState ids are spent in:
    `ledger_id`, `claim`, `spend`, `is_spent`, `len()`. `NonceLedger` keeps them in this
    process's memory; callgate.ledger.PostgresLedger in PostgreSQL, shared by replicas.
    `claim` never raises for an unreachable store: it returns the cause (fail closed);
    `is_spent` raises LedgerUnavailable then."""

    @property
    def ledger_id(self) -> str:
        """The id approvals bind (the payload's "ledger")."""
        raise NotImplementedError

    def claim(self, nonces: Iterable[tuple[str, float]]) -> Optional[str]:
        """Atomically record every (key, expiry) pair and return None, or record none and
        return why ("already used", "expired", "ledger full", "ledger unavailable ...")."""
        raise NotImplementedError

    def spend(self, nonces: Iterable[tuple[str, float]]) -> bool:
        """Atomically: all unused -> record all and return True; otherwise record none and
        return False (see `claim` for the reason)."""
        return self.claim(nonces) is None

    def is_spent(self, nonce: str) -> bool:
        """Whether `nonce` is recorded and not yet expired (LedgerUnavailable if unknowable)."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def __bool__(self) -> bool:
        # a ledger is a place, not a collection: an empty one is still given (`ledger or
        # NonceLedger()` must not swap a shared, empty ledger for a private one)
        return True


class NonceLedger(Ledger):
    """Spent nonces, each kept until its approval's expiry. Thread-safe; bounded memory.

    `ledger_id` names this ledger: approvals bind it (`sign_approval(ledger=...)`) and
    `check_approvals` refuses one bound to another ledger ("different ledger"). Not given, it
    is "mem-" and 32 random hex digits: unguessable, so no approval can be prepared for a
    ledger that does not exist yet, and one ledger in memory is one process (a restart is a
    new ledger). Give an id only to one ledger: two ledgers with the same id would each spend
    the same approval once.

    The horizon is the latest time `clock` (default time.time) has shown, never a caller's
    `now`: the ledger forgets nonces that expired by it and refuses to record a nonce whose
    expiry is not after it (it may have been forgotten already), so no clock stepping back
    and no `now` given by a caller can replay an approval, and no caller's `now` in the
    future can make it refuse later ones. With `max_entries` unexpired nonces held, new
    approvals are refused ("ledger full"): it never forgets an unexpired nonce to make room."""

    def __init__(self, max_entries: int = 1_000_000, *, ledger_id: Optional[str] = None,
                 clock: Callable[[], float] = time.time) -> None:
        if not isinstance(max_entries, int) or isinstance(max_entries, bool) or max_entries < 1:
            raise ValueError("max_entries must be a positive integer")
        if ledger_id is None:
            ledger_id = "mem-" + secrets.token_hex(16)
        elif not isinstance(ledger_id, str) or not _LEDGER_RE.fullmatch(ledger_id):
            raise ValueError(f"ledger_id {ledger_id!r} must match {_LEDGER_RE.pattern}")
        if not callable(clock):
            raise TypeError("clock must be a callable returning Unix seconds")
        self.max_entries = max_entries
        self._ledger_id = ledger_id
        self._clock = clock
        self._lock = threading.Lock()
        self._spent: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._horizon = -math.inf

    @property
    def ledger_id(self) -> str:
        """The id approvals bind (the payload's "ledger")."""
        return self._ledger_id

    def _purge(self) -> None:
        """Advance the horizon to the clock (never back) and forget what expired by it."""
        now = self._clock()
        if not _finite_number(now):  # a broken clock must not stop the horizon or move it anywhere
            raise ValueError(f"the ledger's clock returned {now!r}, not a finite number")
        if now > self._horizon:
            self._horizon = now
        heap, spent, horizon = self._heap, self._spent, self._horizon
        while heap and heap[0][0] <= horizon:
            _, nonce = heapq.heappop(heap)
            del spent[nonce]

    def claim(self, nonces: Iterable[tuple[str, float]]) -> Optional[str]:
        """Atomically record every (nonce, expiry) pair and return None; or record none and
        return why: "already used" (a nonce in the ledger, or twice in `nonces`), "expired"
        (an expiry not after the ledger's horizon) or "ledger full"."""
        items = [(n, e) for n, e in nonces]
        for n, e in items:
            if not isinstance(n, str) or not _finite_number(e):
                raise TypeError("nonces must be (str, finite number) pairs")
        with self._lock:
            self._purge()
            seen: set[str] = set()
            for n, e in items:
                if n in self._spent or n in seen:
                    return ALREADY_USED
                if e <= self._horizon:
                    return EXPIRED
                seen.add(n)
            if len(self._spent) + len(items) > self.max_entries:
                return LEDGER_FULL
            for n, e in items:
                self._spent[n] = e
                heapq.heappush(self._heap, (e, n))
            return None

    def is_spent(self, nonce: str) -> bool:
        """Whether `nonce` is recorded and not yet forgotten (expired ones are purged)."""
        with self._lock:
            self._purge()
            return nonce in self._spent

    def __len__(self) -> int:
        with self._lock:
            return len(self._spent)


# ---------------------------------------------------------------- checking


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking a list of approvals against one call."""

    valid_approvers: tuple[str, ...]              # distinct, in the order given
    problems: tuple[tuple[int, str, str], ...]    # (1-based position, approver or "?", cause)
    nonces: tuple[tuple[str, float], ...]         # (nonce, expiry) of the counted approvals

    def satisfies(self, required: int) -> bool:
        """Whether at least `required` distinct approvers counted (ValueError unless required >= 1)."""
        return len(self.valid_approvers) >= _required(required)

    def reason_suffix(self, required: int, refused: Optional[str] = None) -> str:
        """``; approved by 'alice', 'bob'`` when satisfied, else ``; K of N approvals valid``
        followed by ``: approval I (WHO): CAUSE`` items joined by ``; `` (module docstring).
        `refused` is the ledger's cause (`NonceLedger.claim`) when a satisfied verdict could
        not be spent: ``; approvals by 'alice', 'bob' refused: already used``."""
        names = ", ".join(f"'{a}'" for a in self.valid_approvers)
        if self.satisfies(required):
            if refused is not None:
                return f"; approvals by {names} refused: {refused}"
            return "; approved by " + names
        head = f"; {len(self.valid_approvers)} of {required} approvals valid"
        if not self.problems:
            return head
        return head + ": " + "; ".join(f"approval {i} ({who}): {cause}"
                                       for i, who, cause in self.problems)


def _required(required: Any) -> int:
    if not isinstance(required, int) or isinstance(required, bool) or required < 1:
        raise ValueError(f"required approvals must be a positive integer, not {required!r}")
    return required


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate key")
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def _utf8(s: Any) -> bool:
    if not isinstance(s, str):
        return False
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
        return False
    return True


def _parse(token: Any) -> Union[tuple[dict[str, Any], bytes, bytes], str]:
    """(payload, signing input, signature), or the cause: "malformed", or "old format" for a
    token of the cga1 format (check 1 of the module docstring)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        return MALFORMED
    parts = token.split(".")
    if len(parts) != 3:
        return MALFORMED
    if parts[0] != PREFIX:
        return OLD_FORMAT if parts[0] == OLD_PREFIX else MALFORMED
    body, sig = _unb64(parts[1]), _unb64(parts[2])
    if body is None or sig is None or len(sig) != 64:
        return MALFORMED
    try:
        payload = _decoder.decode(body.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        return MALFORMED
    if not isinstance(payload, dict) or payload.keys() != _FIELDS:
        return MALFORMED
    v = payload["v"]
    if type(v) is not int or v != 2:
        return MALFORMED
    approver, nonce, ledger = payload["approver"], payload["nonce"], payload["ledger"]
    if not isinstance(approver, str) or not _APPROVER_RE.fullmatch(approver):
        return MALFORMED
    if not isinstance(nonce, str) or not _NONCE_RE.fullmatch(nonce):
        return MALFORMED
    if not isinstance(ledger, str) or not _LEDGER_RE.fullmatch(ledger):
        return MALFORMED
    for k in ("args", "agent", "resource", "context"):
        if not isinstance(payload[k], str) or not _DIGEST_RE.fullmatch(payload[k]):
            return MALFORMED
    if not all(_utf8(payload[k]) for k in ("tool", "role", "principal", "policy")):
        return MALFORMED
    iat, exp = payload["iat"], payload["exp"]
    if not _finite_number(iat) or not _finite_number(exp) or exp <= iat:
        return MALFORMED
    return payload, f"{parts[0]}.{parts[1]}".encode("ascii"), sig


def _token_list(tokens: Any) -> list[Any]:
    if tokens is None:
        return []
    if isinstance(tokens, (str, bytes, bytearray, memoryview, Mapping)):
        raise RequestError("approvals must be a list of approval strings, not "
                           f"{type(tokens).__name__}", "type")
    try:
        items = list(itertools.islice(iter(tokens), MAX_APPROVALS + 1))
    except TypeError:
        raise RequestError("approvals must be a list of approval strings, not "
                           f"{type(tokens).__name__}", "type") from None
    if len(items) > MAX_APPROVALS:
        raise RequestError(f"more than {MAX_APPROVALS} approvals", "too_many")
    return items


class _Checker:
    """One call's checks, with each digest of the call computed once, when first needed (so
    a list of malformed tokens never digests anything)."""

    __slots__ = ("call", "policy_digest", "keyring", "ledger", "now", "_digests")

    def __init__(self, call: Call, policy_digest: str, keyring: Keyring, ledger: Ledger,
                 now: float) -> None:
        self.call, self.policy_digest, self.keyring, self.ledger, self.now = \
            call, policy_digest, keyring, ledger, now
        self._digests: dict[str, str] = {}

    def digest(self, field: str, what: str) -> str:
        """The digest of the call's `field` (a Call attribute), computed once."""
        d = self._digests.get(field)
        if d is None:
            d = self._digests[field] = arguments_digest(getattr(self.call, field), what)
        return d

    def cause(self, payload: dict[str, Any], signing_input: bytes, sig: bytes) -> Optional[str]:
        """Why a parsed approval does not count on its own (None: it does), checks 2-6."""
        key = self.keyring.get(payload["approver"])
        if key is None:
            return UNKNOWN_APPROVER
        try:
            key.verify(sig, signing_input)
        except InvalidSignature:
            return BAD_SIGNATURE
        call = self.call
        if payload["tool"] != call.tool:
            return DIFFERENT_TOOL
        if payload["args"] != self.digest("arguments", "arguments"):
            return DIFFERENT_ARGUMENTS
        if payload["role"] != call.role:
            return DIFFERENT_ROLE
        if payload["principal"] != call.bound_principal:
            return DIFFERENT_PRINCIPAL
        if payload["agent"] != self.digest("agent_attributes", "agent attributes"):
            return DIFFERENT_AGENT
        if payload["resource"] != self.digest("resource_attributes", "resource attributes"):
            return DIFFERENT_RESOURCE
        if payload["context"] != self.digest("context", "context values"):
            return DIFFERENT_CONTEXT
        if payload["policy"] != self.policy_digest:
            return DIFFERENT_POLICY
        if payload["ledger"] != self.ledger.ledger_id:
            return DIFFERENT_LEDGER
        if self.now >= payload["exp"]:
            return EXPIRED
        if payload["iat"] > self.now + CLOCK_SKEW:
            return NOT_YET_VALID
        try:
            spent = self.ledger.is_spent(payload["nonce"])
        except LedgerUnavailable:  # fail closed: an approval whose nonce cannot be looked up does not count
            return LEDGER_UNAVAILABLE
        return ALREADY_USED if spent else None


def check_approvals(tokens: Sequence[str], call: Call, *, policy_digest: str,
                    keyring: Keyring, ledger: Ledger, now: float) -> Verdict:
    """Check each approval against `call`, to be spent in `ledger` (module docstring: checks
    and their order). `now` (Unix seconds) decides only expiry and not-yet-valid; the
    ledger keeps its own clock. Never raises for a bad token, never spends a nonce. Raises
    RequestError when `tokens` is not a list of at most MAX_APPROVALS items, or when the
    call's arguments, attributes or context cannot be digested."""
    if not _finite_number(now):
        raise ValueError(f"now must be a finite number, not {now!r}")
    items = _token_list(tokens)
    checker = _Checker(call, policy_digest, keyring, ledger, now)
    counted: list[str] = []
    nonces: list[tuple[str, float]] = []
    problems: list[tuple[int, str, str]] = []
    for position, token in enumerate(items, 1):
        parsed = _parse(token)
        if isinstance(parsed, str):
            problems.append((position, "?", parsed))
            continue
        payload = parsed[0]
        approver, nonce = payload["approver"], payload["nonce"]
        cause = checker.cause(*parsed)
        if cause is None and approver in counted:
            cause = SAME_APPROVER
        if cause is None and any(nonce == n for n, _ in nonces):
            cause = ALREADY_USED
        if cause is not None:
            problems.append((position, approver, cause))
            continue
        counted.append(approver)
        nonces.append((nonce, float(payload["exp"])))
    return Verdict(tuple(counted), tuple(problems), tuple(nonces))
