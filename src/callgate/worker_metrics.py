"""One scrape for all the worker processes of `callgate serve --workers N --telemetry`.

Each worker keeps its own OpenTelemetry metrics, and a scrape reaches whichever worker the
kernel hands the connection to. So that a scrape sees the whole service, each worker writes
its Prometheus text to a directory the workers share (`worker-PID.prom`, replaced atomically,
every `interval` seconds and whenever it answers a scrape), and the worker answering GET
/metrics merges the texts of the live workers: every sample gains a `worker` label (the
PID), so counters stay monotonic per worker and a restarted worker is a new series (sum them:
`sum by (outcome) (rate(callgate_decisions_total[1m]))`). Another worker's numbers are at
most `interval` seconds old; a dead worker's file is dropped at the next scrape.

The texts are read and written with prometheus_client's own parser and renderer.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = ["SharedExposition"]

_PREFIX, _SUFFIX = "worker-", ".prom"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # exists, owned by someone else: not one of ours, but alive
        return True
    return True


class SharedExposition:
    """This worker's side of the shared directory: `publish()` writes its text, `exposition()`
    is the merged text of every live worker (the /metrics body and content type). `own`
    returns this worker's Prometheus text (bytes)."""

    def __init__(self, directory: str, own: Callable[[], bytes], *, interval: float = 2.0) -> None:
        self.directory = Path(directory)
        self.own = own
        self.interval = interval
        self.pid = os.getpid()
        self.path = self.directory / f"{_PREFIX}{self.pid}{_SUFFIX}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def publish(self) -> None:
        """Write this worker's text (a temporary file renamed over the old one)."""
        text = self.own()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(text)
        os.replace(tmp, self.path)

    def start(self) -> None:
        """Publish now, then every `interval` seconds until stop()."""
        self.publish()

        def loop() -> None:
            while not self._stop.wait(self.interval):
                try:
                    self.publish()
                except OSError:   # a full or vanished directory: the next scrape says so
                    pass

        self._thread = threading.Thread(target=loop, name="callgate-metrics-share", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop publishing and remove this worker's file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def _texts(self) -> Iterator[tuple[int, str]]:
        for entry in sorted(self.directory.glob(f"{_PREFIX}*{_SUFFIX}")):
            digits = entry.name[len(_PREFIX):-len(_SUFFIX)]
            if not digits.isdigit():
                continue
            pid = int(digits)
            if pid != self.pid and not _alive(pid):
                try:
                    entry.unlink()
                except FileNotFoundError:
                    pass
                continue
            try:
                yield pid, entry.read_text(encoding="utf-8")
            except FileNotFoundError:   # its worker stopped between the listing and the read
                continue

    def exposition(self) -> tuple[bytes, str]:
        """The merged Prometheus text of every live worker, each sample labelled `worker`."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        from prometheus_client.parser import text_string_to_metric_families
        from prometheus_client.registry import CollectorRegistry
        from prometheus_client.samples import Sample

        self.publish()
        families: dict[str, Any] = {}
        for pid, text in self._texts():
            for family in text_string_to_metric_families(text):
                merged = families.setdefault(family.name, family)
                labelled = [Sample(s.name, {**s.labels, "worker": str(pid)}, s.value, s.timestamp, s.exemplar)
                            for s in family.samples]
                if merged is family:
                    family.samples = labelled
                else:
                    merged.samples.extend(labelled)

        class Merged:
            def collect(self) -> Iterator[Any]:
                return iter(families.values())

        registry = CollectorRegistry(auto_describe=False)
        registry.register(Merged())
        return generate_latest(registry), CONTENT_TYPE_LATEST
