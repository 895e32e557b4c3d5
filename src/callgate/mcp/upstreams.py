"""Links from the HTTP front to the MCP server of one session: they carry bytes the session
core wrote to the server, and hand what the server sends to the core.

- StdioLink: a child process per session (so the ids of different sessions cannot mix);
  each line it writes goes to `on_line`, and its exit to `on_gone`.
- HttpLink: a Streamable HTTP server, reached with a POST per message and headers built
  from scratch (the client's Authorization never leaves the front), plus the server's own
  GET event stream; every message in a POST's answer or on that stream goes to
  `on_message`, as it arrives. A request of the 2026 revision is sent with the headers
  that mirror its body (modern.upstream_headers), built from the body that was decided.

Both offer start(), send(data) and close().
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any, Callable, Mapping, Optional, Sequence

from ..extras import require
from ..values import loads_exact
from . import jsonrpc as rpc
from .chains import PROXY_ONLY_ENV
from . import modern
from .wire import MAX_MESSAGE

log = logging.getLogger("callgate.mcp")
REQUEST_TIMEOUT = 300.0
GET_RETRIES = 5         # failed attempts in a row before the upstream's GET stream is given up
GET_RETRY_DELAY = 0.5   # seconds, times the failures so far


class UpstreamGone(Exception):
    """The server of a session cannot be reached any more; str() says why."""


class StdioLink:
    """A server process for one session."""

    def __init__(self, command: Sequence[str], on_line: Callable[[bytes], None],
                 on_gone: Callable[[str], None]) -> None:
        self.command = list(command)
        self.on_line, self.on_gone = on_line, on_gone
        self.proc: Optional[asyncio.subprocess.Process] = None
        self._reader: Optional[asyncio.Task[None]] = None
        self.gone: Optional[str] = None

    async def start(self) -> None:
        """Start the server process and the task reading its output; UpstreamGone if it cannot start."""
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=None,
                limit=MAX_MESSAGE + 1024, env={k: v for k, v in os.environ.items() if k not in PROXY_ONLY_ENV})
        except OSError as exc:
            raise UpstreamGone(f"cannot start the MCP server {self.command[0]!r}: {exc.strerror or exc}") from None
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        stdout = self.proc.stdout
        while True:
            try:
                line = await stdout.readline()
            except (asyncio.LimitOverrunError, ValueError):
                log.warning("dropped a message from the MCP server larger than %d bytes", MAX_MESSAGE)
                with contextlib.suppress(Exception):
                    await stdout.readuntil(b"\n")
                continue
            if not line:
                break
            self.on_line(line)
        rc = await self.proc.wait()
        self.gone = f"the MCP server exited with status {rc}" if rc >= 0 else \
            f"the MCP server was killed by signal {-rc}"
        self.on_gone(self.gone)

    async def send(self, data: bytes) -> None:
        """Write one message (a line) to the server; UpstreamGone once it is gone."""
        if self.gone or self.proc is None or self.proc.stdin is None:
            raise UpstreamGone(self.gone or "the MCP server is not running")
        try:
            self.proc.stdin.write(data + b"\n")
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise UpstreamGone(f"the MCP server stopped reading ({exc})") from None

    async def close(self) -> None:
        """End the server: close its input, then kill it if it has not exited within 3 s."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            try:
                proc.stdin.close()  # type: ignore[union-attr]  # the polite way to end a stdio server
                await asyncio.wait_for(proc.wait(), 3)
            except (asyncio.TimeoutError, OSError):
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._reader, 3)


class HttpLink:
    """One session with a Streamable HTTP MCP server.

    Messages the session core sends are POSTed; until the server has answered initialize
    they go one at a time (its session id comes with that answer), then concurrently, since
    a call may stream for a long time while the client answers the server's questions.
    Everything the server sends comes back through `on_message`: inside the answer to a
    POST (JSON or an event stream, relayed as each message arrives) and on the session's
    GET event stream, opened once there is a session id and reopened with Last-Event-ID
    when it drops. A request the server answers with an HTTP error gets a JSON-RPC error."""

    def __init__(self, url: str, on_message: Callable[[Any], None], on_gone: Callable[[str], None],
                 schemas: Optional[Mapping[str, Any]] = None) -> None:
        require("httpx", "an HTTP upstream (--upstream URL)", "mcp")
        import httpx

        self.url = url
        self.on_message, self.on_gone = on_message, on_gone
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=10.0), follow_redirects=False)
        self._session_id: Optional[str] = None
        self._protocol: Optional[str] = None
        self._established = False
        self._listener: Optional[asyncio.Task[None]] = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.gone: Optional[str] = None
        self.schemas = schemas if schemas is not None else {}   # tool -> inputSchema (Mcp-Param-* headers)

    async def start(self) -> None:
        """Nothing to start: the first message sent opens the session."""
        return None

    def _headers(self) -> dict[str, str]:
        # built from scratch: nothing of the client's request (its token above all) is copied
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        if self._session_id:
            headers["mcp-session-id"] = self._session_id
        if self._protocol:
            headers["mcp-protocol-version"] = self._protocol
        return headers

    async def send(self, data: bytes) -> None:
        """POST one message (one at a time until initialize is answered, then concurrently);
        what comes back goes to on_message. UpstreamGone once the server is gone."""
        if self.gone:
            raise UpstreamGone(self.gone)
        if not self._established:
            await self._post(data)
            self._established = self._session_id is not None or b'"method":"initialize"' not in data
            self._listen_soon()
            return
        task = asyncio.create_task(self._post(data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, data: bytes) -> None:
        """POST one message; what the answer holds goes to on_message."""
        import httpx

        msg = loads_exact(data)
        request_id = msg.get("id") if rpc.kind(msg) == "request" else None
        answered = False
        headers = self._headers()
        if modern.is_modern(msg):
            params = msg.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            headers.update(modern.upstream_headers(msg, self.schemas.get(name) if isinstance(name, str) else None))
        try:
            async with self._client.stream("POST", self.url, content=data, headers=headers) as resp:
                if resp.headers.get("mcp-session-id"):
                    self._session_id = resp.headers["mcp-session-id"]
                if resp.status_code == 404 and self._session_id:
                    self._lost("the upstream no longer knows the session (HTTP 404)")
                    return
                if resp.status_code >= 400:
                    body = (await resp.aread())[:200].decode("utf-8", "replace")
                    self._failed(request_id, f"the upstream answered HTTP {resp.status_code}: {body}")
                    return
                if resp.status_code == 202:
                    return
                if resp.headers.get("content-type", "").startswith("text/event-stream"):
                    async for _event_id, item in _sse_messages(resp):
                        answered = self._received(item, msg) or answered
                else:
                    answer = loads_exact(await resp.aread())
                    for item in (answer if isinstance(answer, list) else [answer]):
                        answered = self._received(item, msg) or answered
        except httpx.HTTPError as exc:
            self._failed(request_id, f"the upstream cannot be reached: {exc}")
            return
        except ValueError:
            pass  # not JSON: answered below
        if not answered and request_id is not None:
            self._failed(request_id, "the upstream's answer is not valid JSON-RPC; it was not relayed")

    def _received(self, item: Any, sent: dict[str, Any]) -> bool:
        """Hand one message of a POST's answer on; True if it answers the request POSTed."""
        answers = rpc.kind(item) == "response" and "id" in sent and item.get("id") == sent.get("id")
        if answers and sent.get("method") == "initialize" and isinstance(item.get("result"), dict):
            version = item["result"].get("protocolVersion")
            self._protocol = version if isinstance(version, str) else None
        self.on_message(item)
        return answers

    def _failed(self, request_id: Any, why: str) -> None:
        if request_id is None:
            log.warning("a message to the upstream failed: %s", why)
            return
        self.on_message(rpc.error_message(request_id, rpc.SERVER_GONE, why))

    def _lost(self, why: str) -> None:
        if self.gone is None:
            self.gone = why
            self.on_gone(why)

    def _listen_soon(self) -> None:
        if self._session_id and self._listener is None and not self._closed:
            self._listener = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        """The session's GET event stream. Reopened with Last-Event-ID after a drop (the
        server replays what was missed if it keeps events); given up after GET_RETRIES
        failures in a row, or at once if the server has no such stream (405) or no longer
        knows the session (404)."""
        import httpx

        last_event_id: Optional[str] = None
        failures = 0
        while not self._closed and failures < GET_RETRIES:
            headers = self._headers()
            headers["accept"] = "text/event-stream"
            del headers["content-type"]
            if last_event_id:
                headers["last-event-id"] = last_event_id
            try:
                async with self._client.stream("GET", self.url, headers=headers,
                                               timeout=httpx.Timeout(None, connect=10.0)) as resp:
                    if resp.status_code in (404, 405):
                        return
                    if resp.status_code != 200 or \
                            not resp.headers.get("content-type", "").startswith("text/event-stream"):
                        failures += 1
                    else:
                        failures = 0
                        async for event_id, item in _sse_messages(resp):
                            if event_id:
                                last_event_id = event_id
                            self.on_message(item)
            except httpx.HTTPError:
                failures += 1
            if not self._closed:
                await asyncio.sleep(GET_RETRY_DELAY * (1 + failures))

    async def close(self) -> None:
        """Stop every request and the event stream, and end the server's session (DELETE)."""
        self._closed = True
        for task in [self._listener, *self._tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._session_id and self.gone is None:
            with contextlib.suppress(Exception):
                await self._client.delete(self.url, headers=self._headers(), timeout=10.0)
        await self._client.aclose()


async def _sse_messages(resp: Any) -> Any:
    """(event id, decoded JSON-RPC message) from a text/event-stream response; an event whose
    data is not JSON is dropped (the session core never sees it)."""
    data: list[str] = []
    event_id: Optional[str] = None
    async for line in resp.aiter_lines():
        if line == "":
            if data:
                text = "\n".join(data)
                data = []
                try:
                    msg = loads_exact(text.encode("utf-8", "surrogatepass"))
                except ValueError:
                    log.warning("dropped an event from the upstream that is not JSON")
                    continue
                for item in (msg if isinstance(msg, list) else [msg]):
                    yield event_id, item
            continue
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        elif line.startswith("id:"):
            event_id = line[3:].strip() or None
