"""Where a principal chain comes from at an MCP front (docs/principals.md, "Where a call
arrives"): the host's credential, never the model's say-so.

- stdio proxy: `--chain-file PATH` (the token in a file, re-read when the file changes, so a
  rotated credential takes effect without a restart) or the `CALLGATE_CHAIN` environment
  variable; and, only when the operator allows it (`--chain-from-meta`), a per-request token
  in `params._meta["callgate/chain"]`, verified like any other;
- Streamable HTTP front: the bearer token itself (forms 1-2, audience-bound), which is never
  passed on to the upstream;
- guard(): whatever the host's identity callable finds in the SDK's request context.

Every token is verified by the engine (Engine.trust_issuer); this module only finds it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Optional

META_KEY = "callgate/chain"
ENV_VAR = "CALLGATE_CHAIN"
# environment variables for the proxy alone, never passed on to a server it starts: the
# chain token (a credential) and a wrapped host entry (hosts.WRAPPED_ENV)
PROXY_ONLY_ENV = (ENV_VAR, "CALLGATE_WRAPPED")
MAX_TOKEN_BYTES = 64 * 1024


class ChainSourceError(ValueError):
    """A chain source that cannot be used (unreadable file, not ASCII, too long); str() is
    one line."""


def _token_text(data: bytes, where: str) -> str:
    if len(data) > MAX_TOKEN_BYTES:
        raise ChainSourceError(f"{where}: a chain token is at most {MAX_TOKEN_BYTES} bytes")
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ChainSourceError(f"{where}: a chain token is ASCII text") from None
    if not text or any(c.isspace() for c in text):
        raise ChainSourceError(f"{where}: not one chain token (empty, or more than one word)")
    return text


class ChainFile:
    """A token kept in a file: read at start (an unusable file is a ChainSourceError then),
    and again whenever its modification time, size or inode changes. A file that becomes
    unreadable or empty later yields None: calls then carry no chain (and a policy that
    needs one denies), never the stale token."""

    def __init__(self, path: os.PathLike[str] | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: Any = None
        self._token: Optional[str] = None
        self._load(strict=True)

    def _load(self, strict: bool) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp == self._stamp:
                return
            token = _token_text(self.path.read_bytes(), str(self.path))
        except (OSError, ChainSourceError) as exc:
            if strict:
                raise ChainSourceError(f"--chain-file {self.path}: {getattr(exc, 'strerror', None) or exc}") from None
            self._stamp, self._token = None, None
            return
        self._stamp, self._token = stamp, token

    def current(self) -> Optional[str]:
        """The token the file holds now (None when it cannot be read any more)."""
        with self._lock:
            self._load(strict=False)
            return self._token


class FixedChain:
    """A token given once (the CALLGATE_CHAIN environment variable)."""

    def __init__(self, token: str, where: str = ENV_VAR) -> None:
        self._token = _token_text(token.encode("utf-8", "surrogatepass"), where)

    def current(self) -> Optional[str]:
        """The token."""
        return self._token


def configured_chain(chain_file: Optional[str], environ: Optional[dict[str, str]] = None) -> Any:
    """The stdio proxy's chain source: --chain-file, else CALLGATE_CHAIN, else None.
    ChainSourceError (one line) when the one given cannot be used."""
    if chain_file:
        return ChainFile(chain_file)
    env = os.environ if environ is None else environ
    token = env.get(ENV_VAR)
    if token:
        return FixedChain(token)
    return None


def chain_in_meta(params: Any) -> tuple[Optional[str], Optional[str]]:
    """(token, problem) from a request's params._meta["callgate/chain"]: (None, None) when
    absent, a problem when it is there but not a token string."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict) or META_KEY not in meta:
        return None, None
    token = meta[META_KEY]
    if not isinstance(token, str):
        return None, f'_meta["{META_KEY}"] must be a chain token (a string)'
    try:
        return _token_text(token.encode("utf-8", "surrogatepass"), f'_meta["{META_KEY}"]'), None
    except ChainSourceError as exc:
        return None, str(exc)
