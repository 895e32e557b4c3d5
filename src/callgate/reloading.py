"""Reloading a policy without a restart: the proxy, the HTTP front and guard() watch the
policy file and reload it when it changes (checked at most once per interval, on the next
call) and on demand (SIGHUP).

A reload compiles the new file first; only a policy that compiles replaces the old one, in
one assignment (Engine.reload), so every call is decided by the old policy or the new one,
never a mix. A file that does not compile leaves the old policy in force and says so, on
stderr (logger "callgate.reload") and in the audit trail: a "policy_change" event carrying
the digest of the policy in force and of the file offered.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

log = logging.getLogger("callgate.reload")

CHECK_INTERVAL = 1.0   # seconds between looks at the file's stamp


class PolicyWatcher:
    """Watches one policy file for `engine`. poll() is cheap (a clock read) except once per
    interval (a stat); reload() compiles and swaps, or keeps the old policy."""

    def __init__(self, engine: Any, path: os.PathLike[str] | str, *, interval: float = CHECK_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.path = Path(path)
        self.interval = interval
        self._clock = clock
        self._next = clock() + interval
        self._stamp = self._stat()
        self._lock = threading.Lock()
        self.last_error: Optional[str] = None

    def _stat(self) -> Any:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def poll(self) -> None:
        """Reload if the interval has passed and the file changed since it was last read."""
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self.interval
        stamp = self._stat()
        if stamp is not None and stamp != self._stamp:
            self.reload("the policy file changed")

    def reload(self, why: str = "asked to reload") -> bool:
        """Compile the file and swap it in; True when the new policy is in force. A file
        that cannot be read or compiled keeps the old policy (False), reported on stderr
        and in the audit trail."""
        from .errors import CallgateError

        with self._lock:
            self._stamp = self._stat()
            old = self.engine.policy_digest
            try:
                offered = hashlib.sha256(self.path.read_bytes()).hexdigest()
            except OSError as exc:
                return self._refused(old, None, f"cannot read {self.path}: {exc.strerror or exc}")
            try:
                self.engine.reload(self.path)
            except (CallgateError, ValueError, OSError) as exc:
                return self._refused(old, offered, str(exc))
            new = self.engine.policy_digest
            self.last_error = None
            log.warning("policy reloaded from %s (%s): %s -> %s", self.path, why, old[:12], new[:12])
            self.engine.record_policy_change(outcome="loaded", old_digest=old, new_digest=new, source=str(self.path),
                                             reason=why)
            return True

    def _refused(self, old: str, offered: Optional[str], reason: str) -> bool:
        self.last_error = reason
        log.error("policy NOT reloaded from %s, the previous one stays in force: %s", self.path, reason)
        self.engine.record_policy_change(outcome="refused", old_digest=old, new_digest=offered, source=str(self.path),
                                         reason=reason)
        return False
