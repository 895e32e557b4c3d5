"""HttpSink: batched POSTs of envelope lines (application/x-ndjson) with retries and
exponential backoff; when the endpoint stays down the writer spools locally (the default
on_failure here is "spool") and resends in order once it is back.

Each POST carries `Idempotency-Key` (the hash of its last record) so a receiver can drop a
batch it already has: a batch whose response was lost is sent again."""

from __future__ import annotations

import time
from typing import Any, Mapping, Optional, Sequence

from ..extras import require
from .records import Record, lines
from .sinks import Sink, process_chain_id


class HttpSink(Sink):
    """Batched POSTs of JSON lines, with retries, backoff and the local spool."""

    concurrent_writes = True
    writer_markers = True

    def __init__(self, url: str, headers: Optional[Mapping[str, str]] = None, timeout: float = 5.0,
                 retries: int = 3, backoff: float = 0.05, **options: Any) -> None:
        require("httpx", "the HTTP audit sink", "audit")   # at construction: a one-line error at start
        options.setdefault("on_failure", "spool")
        # durability is the receiver's (a 2xx answer), the spool is fsynced: "batch" when
        # durable=True asks to wait for that answer, else "never"
        options.setdefault("fsync", "batch" if options.get("durable") else "never")
        super().__init__(**options)
        self.url = url
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.default_chain = process_chain_id()
        self.client: Any = None

    def identity(self) -> str:
        """The URL: what names this sink's spool."""
        return self.url

    def open(self, chain: str) -> None:
        """Make the HTTP client. None: the receiver's chain is not read back (the writer goes
        on from its spool, or starts the chain: by default its id is this process's, host:pid)."""
        import httpx

        self.client = httpx.Client(timeout=self.timeout, headers=self.headers)
        return None

    def write(self, records: Sequence[Record]) -> None:
        """POST the records' lines (Idempotency-Key: the last hash), retrying with backoff;
        raise the last error when every attempt failed or the receiver refused the batch."""
        body = lines(records)
        headers = {"Content-Type": "application/x-ndjson", "Idempotency-Key": records[-1].hash.hex()}
        error: Exception = RuntimeError("no attempt")
        for attempt in range(self.retries):
            try:
                response = self.client.post(self.url, content=body, headers=headers)
                if response.status_code < 300:
                    return
                error = RuntimeError(f"HTTP {response.status_code} from {self.url}")
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    break  # the receiver refuses this batch: retrying will not help
            except Exception as exc:  # connection refused, timeout, reset
                error = exc
            time.sleep(self.backoff * (2 ** attempt))
        raise error

    def close(self) -> None:
        """Close the HTTP client."""
        if self.client is not None:
            self.client.close()
            self.client = None
