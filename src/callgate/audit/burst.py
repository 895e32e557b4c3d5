"""Deny-burst alerts: a callback fires once per principal per window when that principal's
denials within the window exceed the threshold. Runs on the writer thread, on the
decisions' own timestamps (so it is deterministic for a recorded sequence)."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional

log = logging.getLogger("callgate.audit")


@dataclass(frozen=True)
class BurstAlert:
    """What an on_deny_burst callback gets: the principal, its denials within the window,
    the window (seconds) and the threshold they exceeded."""

    principal: Optional[str]
    denials: int
    window_s: float
    threshold: int


BURST_KEYS = ("principal", "user", "actor")


def burst_key(event: Dict[str, Any], key: str) -> Optional[str]:
    """Whom a denial is counted against: the event's principal, or (`user` / `actor`) the
    first / last link of the verified principal chain it records (its principal without one)."""
    chain = event.get("principal_chain")
    label = chain.get("label") if isinstance(chain, dict) else None
    if key == "principal" or not isinstance(label, str):
        principal = event.get("principal")
        return principal if isinstance(principal, str) or principal is None else str(principal)
    links = label.split("+")
    return links[0] if key == "user" else links[-1]


class _Watch:
    def __init__(self, callback: Callable[[BurstAlert], Any], threshold: int, window_s: float,
                 key: str = "principal") -> None:
        if threshold < 0 or window_s <= 0:
            raise ValueError("threshold must be >= 0 and window_s > 0")
        if key not in BURST_KEYS:
            raise ValueError(f"key is one of {', '.join(BURST_KEYS)}, not {key!r}")
        self.key = key
        self.callback = callback
        self.threshold = threshold
        self.window_ns = int(window_s * 1e9)
        self.window_s = window_s
        self.denials: Dict[Optional[str], Deque[int]] = {}
        self.fired: Dict[Optional[str], int] = {}

    def deny(self, principal: Optional[str], t_ns: int) -> None:
        times = self.denials.setdefault(principal, deque())
        times.append(t_ns)
        while times and times[0] <= t_ns - self.window_ns:
            times.popleft()
        if len(times) > self.threshold:
            last = self.fired.get(principal)
            if last is None or t_ns - last >= self.window_ns:  # once per principal per window
                self.fired[principal] = t_ns
                try:
                    self.callback(BurstAlert(principal, len(times), self.window_s, self.threshold))
                except Exception:  # an alert hook must not stop the audit trail
                    log.exception("on_deny_burst callback failed")
        if len(self.denials) > 100_000:  # bounded memory under many principals
            self.denials = {p: d for p, d in self.denials.items() if d and d[-1] > t_ns - self.window_ns}


class DenyBursts:
    """The deny-burst watches of one recorder (Engine.on_deny_burst adds them)."""

    def __init__(self) -> None:
        self.watches: List[_Watch] = []

    def add(self, callback: Callable[[BurstAlert], Any], threshold: int, window_s: float,
            key: str = "principal") -> None:
        """Watch for more than `threshold` denials of one principal within `window_s` seconds;
        `key` "user" or "actor" counts by the principal chain's first or last link instead."""
        self.watches.append(_Watch(callback, threshold, window_s, key))

    def observe(self, event: Dict[str, Any], t_ns: int) -> None:
        """Count one decision event (only a Deny counts) at its timestamp; may fire callbacks."""
        if event.get("decision") == "Deny":
            for w in self.watches:
                w.deny(burst_key(event, w.key), t_ns)
