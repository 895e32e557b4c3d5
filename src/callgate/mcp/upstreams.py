"""Upstreams for the HTTP front: an MCP server the front relays one session to.

- StdioUpstream: a child process per session (its request ids are the client's own, so
  sessions cannot mix);
- HttpUpstream: a Streamable HTTP server, reached with a fresh request per message and
  headers built from scratch (the client's Authorization never leaves the front), plus the
  server's own GET event stream for what it sends outside any answer.

Both offer: request(msg) -> response dict, send(msg) for notifications and responses, and
`incoming`, a queue of what the server sends on its own (requests, notifications).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any, Optional, Sequence

import orjson

from . import jsonrpc as rpc

REQUEST_TIMEOUT = 300.0
GET_RETRIES = 5         # failed attempts in a row before the upstream's GET stream is given up
GET_RETRY_DELAY = 0.5   # seconds, times the failures so far


INCOMING_MAX = 1000  # server-initiated messages kept for a client that has no event stream open


class UpstreamGone(Exception):
    pass


class _Incoming:
    """What the server sends on its own, for the session's GET event stream. Bounded: the
    oldest message is dropped when no client reads them. list_changed also marks the gate's
    tool definitions stale at once (pins are checked against a fresh listing)."""

    def __init__(self) -> None:
        self.incoming: "asyncio.Queue[bytes]" = asyncio.Queue(INCOMING_MAX)
        self.on_list_changed: Any = None

    def _deliver(self, item: dict) -> None:
        if item.get("method") == "notifications/tools/list_changed" and self.on_list_changed is not None:
            self.on_list_changed()
        self.to_client(item)

    def to_client(self, item: dict) -> None:
        """Queue a message for the client's event stream (the front's own, e.g. an
        elicitation request, goes the same way as the server's)."""
        if self.incoming.full():
            self.incoming.get_nowait()
        self.incoming.put_nowait(orjson.dumps(item))


class StdioUpstream(_Incoming):
    def __init__(self, command: Sequence[str]) -> None:
        super().__init__()
        self.command = list(command)
        self._pending: dict[tuple, asyncio.Future] = {}
        self.proc: Optional[asyncio.subprocess.Process] = None
        self._reader: Optional[asyncio.Task] = None
        self.gone: Optional[str] = None

    async def start(self) -> None:
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=None,
                limit=rpc_limit())
        except OSError as exc:
            raise UpstreamGone(f"cannot start the MCP server {self.command[0]!r}: {exc.strerror or exc}") from None
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    break
                if not line.strip():
                    continue
                try:
                    msg = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                items = msg if isinstance(msg, list) else [msg]
                for item in items:
                    key = rpc.id_key(item.get("id")) if rpc.kind(item) == "response" else None
                    fut = self._pending.pop(key, None) if key is not None else None
                    if fut is not None and not fut.done():
                        fut.set_result(item)
                    elif rpc.kind(item) in ("request", "notification"):
                        self._deliver(item)
        except (asyncio.LimitOverrunError, ValueError) as exc:
            print(f"callgate proxy: unreadable output from the MCP server: {exc}", file=sys.stderr)
        rc = await self.proc.wait()
        self.gone = f"the MCP server exited with status {rc}"
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(UpstreamGone(self.gone))
        self._pending.clear()

    async def _write(self, data: bytes) -> None:
        if self.gone or self.proc is None or self.proc.stdin is None:
            raise UpstreamGone(self.gone or "the MCP server is not running")
        try:
            self.proc.stdin.write(data + b"\n")
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise UpstreamGone(f"the MCP server stopped reading ({exc})") from None

    async def request(self, msg: dict, raw: bytes) -> dict:
        key = rpc.id_key(msg["id"])
        fut = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        await self._write(raw)
        try:
            return await asyncio.wait_for(fut, REQUEST_TIMEOUT)
        finally:
            self._pending.pop(key, None)

    async def send(self, raw: bytes) -> None:
        await self._write(raw)

    async def close(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        try:
            proc.stdin.close()  # type: ignore[union-attr]
            await asyncio.wait_for(proc.wait(), 3)
        except (asyncio.TimeoutError, OSError):
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            self._reader.cancel()


class HttpUpstream(_Incoming):
    """One session with a Streamable HTTP MCP server.

    What the server sends on its own arrives two ways, and both reach `incoming` as each
    message arrives: inside the event stream answering a POST (a tool's log, progress or
    sampling request, sent while the POST is still open: the answer to such a request goes
    back with send() while request() waits), and on the session's GET event stream, which
    is opened once the server has given a session id and reopened (with Last-Event-ID)
    when it drops."""

    def __init__(self, url: str) -> None:
        import httpx

        super().__init__()
        self.url = url
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=10.0), follow_redirects=False)
        self._session_id: Optional[str] = None
        self._protocol: Optional[str] = None
        self._listener: Optional[asyncio.Task] = None
        self._closed = False
        self.gone: Optional[str] = None

    async def start(self) -> None:
        return None

    def _headers(self) -> dict:
        # built from scratch: nothing of the client's request (its token above all) is copied
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        if self._session_id:
            headers["mcp-session-id"] = self._session_id
        if self._protocol:
            headers["mcp-protocol-version"] = self._protocol
        return headers

    async def _post(self, raw: bytes) -> list[dict]:
        """POST one message; the responses in the answer. Requests and notifications in it
        are delivered at once, while the answer is still streaming."""
        import httpx

        responses: list[dict] = []
        try:
            async with self._client.stream("POST", self.url, content=raw, headers=self._headers()) as resp:
                if resp.headers.get("mcp-session-id"):
                    self._session_id = resp.headers["mcp-session-id"]
                if resp.status_code == 202:
                    return []
                if resp.status_code >= 400:
                    body = (await resp.aread())[:200].decode("utf-8", "replace")
                    raise UpstreamGone(f"the upstream answered HTTP {resp.status_code}: {body}")
                if resp.headers.get("content-type", "").startswith("text/event-stream"):
                    async for _event_id, item in _sse_messages(resp):
                        self._sort(item, responses)
                    return responses
                data = orjson.loads(await resp.aread())
                for item in (data if isinstance(data, list) else [data]):
                    if isinstance(item, dict):
                        self._sort(item, responses)
                return responses
        except httpx.HTTPError as exc:
            raise UpstreamGone(f"the upstream cannot be reached: {exc}") from None
        except orjson.JSONDecodeError:
            raise UpstreamGone("the upstream answered with something that is not JSON") from None

    def _sort(self, item: dict, responses: list) -> None:
        kind = rpc.kind(item)
        if kind == "response":
            responses.append(item)
        elif kind in ("request", "notification"):
            self._deliver(item)

    async def request(self, msg: dict, raw: bytes) -> dict:
        answer = None
        for item in await self._post(raw):
            if item.get("id") == msg["id"]:
                answer = item
        if answer is None:
            raise UpstreamGone(f"the upstream did not answer {msg.get('method')}")
        if msg.get("method") == "initialize" and isinstance(answer.get("result"), dict):
            self._protocol = answer["result"].get("protocolVersion")
        self._listen_soon()
        return answer

    async def send(self, raw: bytes) -> None:
        await self._post(raw)
        self._listen_soon()

    def _listen_soon(self) -> None:
        if self._session_id and self._listener is None and not self._closed:
            self._listener = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        """The session's GET event stream, relayed to `incoming` in order. Reopened with
        Last-Event-ID after a drop (the server replays what was missed if it keeps events);
        given up after GET_RETRIES failures in a row, or at once if the server has no such
        stream (405) or no longer knows the session (404)."""
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
                            if rpc.kind(item) in ("request", "notification"):
                                self._deliver(item)
            except (httpx.HTTPError, orjson.JSONDecodeError):
                failures += 1
            if not self._closed:
                await asyncio.sleep(GET_RETRY_DELAY * (1 + failures))

    async def close(self) -> None:
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        if self._session_id:
            try:
                await self._client.delete(self.url, headers=self._headers(), timeout=10.0)
            except Exception:
                pass
        await self._client.aclose()


async def _sse_messages(resp: Any):
    """(event id, JSON-RPC message) from a text/event-stream response (data lines of each event)."""
    data: list[str] = []
    event_id: Optional[str] = None
    async for line in resp.aiter_lines():
        if line == "":
            if data:
                try:
                    msg = orjson.loads("\n".join(data))
                except orjson.JSONDecodeError:
                    msg = None
                data = []
                for item in (msg if isinstance(msg, list) else [msg]):
                    if isinstance(item, dict):
                        yield event_id, item
            continue
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        elif line.startswith("id:"):
            event_id = line[3:].strip() or None


def rpc_limit() -> int:
    from .proxy import MAX_MESSAGE

    return MAX_MESSAGE + 1024
