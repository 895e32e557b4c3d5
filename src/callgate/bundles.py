"""Signed policy bundles (docs/deploy.md): one file holding a policy, its tool pins, its
cases and metadata, signed with Ed25519, that replicas fetch from any static HTTP server,
verify, test and swap in atomically. OPA's bundles are the model.

The file is JSON: ``{"format": "callgate-bundle-1", "payload": B64, "signatures": [{"keyid":
HEX, "sig": B64}]}``, base64url without padding. The signature covers the exact payload
bytes prefixed with ``callgate-bundle-1\\n`` (so a signature over anything else, or over
another format, never verifies); `keyid` is the first 16 hex digits of the SHA-256 of the
raw public key. The payload is a JSON object with exactly the keys ``revision`` (text),
``created`` (Unix seconds), ``policy`` (the decoded policy), ``pins`` and ``cases`` (decoded
JSON, or null), ``metadata`` (an object).

A bundle is activated only when, in this order: it is at most MAX_BUNDLE bytes of that
shape; a signature by a configured key verifies; its payload is of that shape (duplicate
keys refused); it is not older (`created`) than the active bundle (a replayed old bundle
cannot roll a replica back); its policy compiles; and every one of its own cases passes
against it. Otherwise it is refused with one line saying why, and the active policy stays.

`Poller` fetches a URL every `interval` seconds with If-None-Match (the last ETag), so an
unchanged bundle costs a 304; `engine_activator` swaps an Engine's policy (Engine.reload:
every concurrent decision sees the old or the new policy, never a mix).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import orjson

from .errors import CallgateError
from .extras import require

__all__ = ["Bundle", "BundleError", "FORMAT", "Poller", "build_bundle", "engine_activator", "key_id",
           "load_private_key", "load_public_keys", "check_bundle", "verify_bundle"]

log = logging.getLogger("callgate.bundles")

FORMAT = "callgate-bundle-1"
MAX_BUNDLE = 8 << 20
_PAYLOAD_KEYS = frozenset(("revision", "created", "policy", "pins", "cases", "metadata"))
_DOMAIN = FORMAT.encode("ascii") + b"\n"


class BundleError(CallgateError, ValueError):
    """A bundle that is refused: str() is the one line saying why."""


@dataclass(frozen=True)
class Bundle:
    """A verified bundle's contents, and the key id that signed it."""

    revision: str
    created: float
    policy: Mapping[str, Any]
    pins: Any
    cases: Any
    metadata: Mapping[str, Any]
    keyid: str = ""


# ---------------------------------------------------------------- keys


def _crypto() -> Any:
    require("cryptography", "signed policy bundles", "bundles")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return serialization, ed25519


def load_private_key(path: Union[str, Path]) -> Any:
    """An Ed25519 private key from a PEM file (ValueError, one line, otherwise)."""
    serialization, ed25519 = _crypto()
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a usable PEM private key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError(f"{path}: a bundle is signed with an Ed25519 key, not {type(key).__name__}")
    return key


def load_public_keys(paths: Sequence[Union[str, Path]]) -> list[Any]:
    """Ed25519 public keys from PEM files (ValueError, one line, for one that is not)."""
    serialization, ed25519 = _crypto()
    keys = []
    for path in paths:
        try:
            key = serialization.load_pem_public_key(Path(path).read_bytes())
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}: not a usable PEM public key ({exc})") from None
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise ValueError(f"{path}: bundle keys are Ed25519, not {type(key).__name__}")
        keys.append(key)
    return keys


def key_id(public_key: Any) -> str:
    """The first 16 hex digits of the SHA-256 of the raw public key."""
    serialization, _ = _crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str) or len(text) % 4 == 1 or not all(c.isalnum() or c in "-_" for c in text):
        raise BundleError(f"{what} is not base64url text")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BundleError(f"{what} is not base64url text") from None
    if _b64(data) != text:
        raise BundleError(f"{what} is not in canonical base64url form")
    return data


# ---------------------------------------------------------------- building


def build_bundle(policy: Mapping[str, Any], *, key: Any, pins: Any = None, cases: Any = None,
                 revision: Optional[str] = None, metadata: Optional[Mapping[str, Any]] = None,
                 created: Optional[float] = None) -> bytes:
    """The bundle file's bytes: the payload (revision: given, or the first 16 hex digits of
    the SHA-256 of policy, pins and cases) signed with `key` (an Ed25519 private key).
    The policy must compile and the cases must pass: a bundle is never built broken."""
    body = {"policy": policy, "pins": pins, "cases": cases}
    if revision is None:
        revision = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
    if not isinstance(revision, str) or not revision or len(revision) > 128:
        raise ValueError("revision must be 1 to 128 characters")
    payload = {"revision": revision, "created": time.time() if created is None else float(created),
               "policy": policy, "pins": pins, "cases": cases, "metadata": dict(metadata or {})}
    check_bundle(Bundle(revision, payload["created"], policy, pins, cases, payload["metadata"]))
    data = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    signature = key.sign(_DOMAIN + data)
    envelope = {"format": FORMAT, "payload": _b64(data),
                "signatures": [{"keyid": key_id(key.public_key()), "sig": _b64(signature)}]}
    return orjson.dumps(envelope, option=orjson.OPT_INDENT_2) + b"\n"


# ---------------------------------------------------------------- verifying


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate key")
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def _strict_json(data: bytes, what: str) -> Any:
    try:
        return _decoder.decode(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:   # UnicodeDecodeError and JSONDecodeError included
        raise BundleError(f"{what} is not strict JSON ({exc})") from None


def verify_bundle(data: bytes, keys: Sequence[Any]) -> Bundle:
    """The bundle `data` holds, once a signature by one of `keys` verifies over its payload;
    BundleError (one line) otherwise. Does not compile or test it (check_bundle does)."""
    if not keys:
        raise BundleError("no bundle key is configured: an unsigned or unverifiable bundle is never activated")
    if not isinstance(data, (bytes, bytearray)) or len(data) > MAX_BUNDLE:
        raise BundleError(f"a bundle is at most {MAX_BUNDLE} bytes")
    envelope = _strict_json(bytes(data), "the bundle")
    if not isinstance(envelope, dict) or set(envelope) != {"format", "payload", "signatures"}:
        raise BundleError("not a callgate bundle (expected format, payload and signatures)")
    if envelope["format"] != FORMAT:
        raise BundleError(f"unknown bundle format {envelope['format']!r} (expected {FORMAT})")
    sigs = envelope["signatures"]
    if not isinstance(sigs, list) or not sigs or len(sigs) > 8:
        raise BundleError("the bundle is not signed (signatures must list 1 to 8 signatures)")
    payload = _unb64(envelope["payload"], "payload")
    from cryptography.exceptions import InvalidSignature

    by_id = {key_id(k): k for k in keys}
    signer = None
    for sig in sigs:
        if not isinstance(sig, dict) or set(sig) != {"keyid", "sig"}:
            raise BundleError("a signature is an object with exactly keyid and sig")
        key = by_id.get(sig["keyid"]) if isinstance(sig["keyid"], str) else None
        if key is None:
            continue
        raw = _unb64(sig["sig"], "a signature")
        try:
            key.verify(raw, _DOMAIN + payload)
        except InvalidSignature:
            raise BundleError(f"bad signature by key {sig['keyid']}") from None
        signer = sig["keyid"]
        break
    if signer is None:
        raise BundleError("not signed by any configured key (key ids "
                          + ", ".join(sorted(str(s.get("keyid")) for s in sigs if isinstance(s, dict))) + ")")
    body = _strict_json(payload, "the payload")
    if not isinstance(body, dict) or set(body) != _PAYLOAD_KEYS:
        raise BundleError(f"the payload must hold exactly {', '.join(sorted(_PAYLOAD_KEYS))}")
    revision, created = body["revision"], body["created"]
    if not isinstance(revision, str) or not revision or len(revision) > 128:
        raise BundleError("revision must be 1 to 128 characters")
    if isinstance(created, bool) or not isinstance(created, (int, float)) or not math.isfinite(created):
        raise BundleError("created must be a number of Unix seconds")
    if not isinstance(body["policy"], dict) or not isinstance(body["metadata"], dict):
        raise BundleError("policy and metadata must be JSON objects")
    return Bundle(revision, float(created), body["policy"], body["pins"], body["cases"], body["metadata"], signer)


def check_bundle(bundle: Bundle, semantics: str = "strict") -> Any:
    """Compile the bundle's policy and run its own cases against it; the compiled Engine,
    or BundleError naming the first failure."""
    from .engine import Engine
    from .policy_tests import parse_cases, run_cases

    try:
        candidate = Engine.from_dict(bundle.policy, semantics)
    except CallgateError as exc:
        raise BundleError(f"revision {bundle.revision}: the policy does not compile: {exc}") from None
    if bundle.cases is not None:
        try:
            cases = parse_cases(bundle.cases)
        except CallgateError as exc:
            raise BundleError(f"revision {bundle.revision}: its cases cannot be read: {exc}") from None
        failed = [r for r in run_cases(candidate, cases) if not r.passed]
        if failed:
            first = failed[0]
            raise BundleError(f"revision {bundle.revision}: {len(failed)} of {len(cases)} of its own cases fail; "
                              f"first: {first.case.name}: {'; '.join(first.failures)}")
    return candidate


# ---------------------------------------------------------------- activating


def engine_activator(engine: Any, activated: Optional[Callable[[Optional[str], Optional[str]], None]] = None,
                     semantics: Optional[str] = None) -> Callable[[Bundle], None]:
    """What a Poller calls with a verified bundle: test it (check_bundle), then swap it into
    `engine` (Engine.reload, atomic) and call activated(revision, None). Raises BundleError
    when refused (the engine keeps its policy)."""

    def activate(bundle: Bundle) -> None:
        check_bundle(bundle, semantics or engine.semantics)
        try:
            engine.reload(bundle.policy)
        except CallgateError as exc:
            raise BundleError(f"revision {bundle.revision}: {exc}") from None
        if activated is not None:
            activated(bundle.revision, None)

    return activate


class _TooBig(Exception):
    """A bundle response over MAX_BUNDLE bytes (the read stops there)."""


@dataclass
class PollState:
    """What a Poller reports (`callgate bundle status`, the service's /v1/status)."""

    revision: Optional[str] = None
    created: Optional[float] = None
    loaded_at: Optional[float] = None
    last_error: Optional[str] = None
    last_poll: Optional[float] = None
    etag: Optional[str] = None
    polls: int = 0
    history: list[str] = field(default_factory=list)


class Poller:
    """Fetch `url` every `interval` seconds (If-None-Match: the last ETag) and activate each
    new bundle that verifies under `keys` and passes `activate` (which raises BundleError to
    refuse it). A refused or unreachable bundle leaves the active one in place and is noted
    in `state.last_error` (and passed to on_refused)."""

    def __init__(self, url: str, keys: Sequence[Any], activate: Callable[[Bundle], None], *, interval: float = 10.0,
                 timeout: float = 5.0, on_refused: Optional[Callable[[str], None]] = None,
                 client: Any = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"--bundle-url {url!r}: expected an http(s) URL")
        if not interval > 0:
            raise ValueError("the poll interval is a positive number of seconds")
        self.url, self.keys, self.activate = url, list(keys), activate
        self.interval, self.timeout, self.on_refused = interval, timeout, on_refused
        self.state = PollState()
        self._client = client
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    def _http(self) -> Any:
        if self._client is None:
            httpx = require("httpx", "polling policy bundles", "bundles")
            self._client = httpx.Client(timeout=self.timeout, follow_redirects=False)
        return self._client

    def poll_once(self) -> str:
        """One poll: "unchanged" (304 or the same revision), "activated", or "refused: WHY"."""
        with self._lock:
            state = self.state
            state.polls += 1
            state.last_poll = time.time()
            headers = {"If-None-Match": state.etag} if state.etag else {}
            try:
                status, etag, data = self._fetch(headers)
            except _TooBig:
                return self._refused(f"{self.url}: the bundle is over {MAX_BUNDLE} bytes")
            except Exception as exc:   # httpx.HTTPError and its causes: the active bundle stays
                return self._refused(f"cannot fetch {self.url}: {exc}")
            if status == 304:
                return "unchanged"
            if status != 200:
                return self._refused(f"{self.url} answered HTTP {status}")
            try:
                bundle = verify_bundle(data, self.keys)
                if bundle.revision == state.revision:
                    state.etag = etag
                    return "unchanged"
                if state.created is not None and bundle.created < state.created:
                    raise BundleError(f"revision {bundle.revision} is older than the active revision "
                                      f"{state.revision} (a rollback is refused)")
                self.activate(bundle)
            except BundleError as exc:
                return self._refused(str(exc))
            state.revision, state.created, state.loaded_at = bundle.revision, bundle.created, time.time()
            state.last_error = None
            state.etag = etag
            state.history.append(bundle.revision)
            log.info("policy bundle revision %s activated", bundle.revision)
            return "activated"

    def _fetch(self, headers: dict[str, str]) -> tuple[int, Optional[str], bytes]:
        """(status, ETag, body) of one GET, reading at most MAX_BUNDLE bytes of the body (a
        server sending more is cut off: _TooBig)."""
        with self._http().stream("GET", self.url, headers=headers) as response:
            chunks, size = [], 0
            if response.status_code == 200:
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_BUNDLE:
                        raise _TooBig()
                    chunks.append(chunk)
            return response.status_code, response.headers.get("etag"), b"".join(chunks)

    def _refused(self, why: str) -> str:
        self.state.last_error = why
        log.warning("policy bundle refused, the active policy stays: %s", why)
        if self.on_refused is not None:
            self.on_refused(why)
        return f"refused: {why}"

    def start(self) -> None:
        """Poll now and then every `interval` seconds on a daemon thread, until stop()."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="callgate-bundle-poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:   # never let the poller die: the active policy stays either way
                log.exception("policy bundle poll failed")
            self._stop.wait(self.interval)

    def stop(self) -> None:
        """Stop polling (waits for a poll in progress, bounded by the fetch timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 5)
            self._thread = None
