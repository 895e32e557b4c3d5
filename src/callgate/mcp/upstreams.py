"""Upstreams for the HTTP front: an MCP server the front relays one session to.

- StdioUpstream: a child process per session (its request ids are the client's own, so
  sessions cannot mix);
- HttpUpstream: a Streamable HTTP server, reached with a fresh request per message and
  headers built from scratch (the client's Authorization never leaves the front).

Both offer: request(msg) -> response dict, send(msg) for notifications and responses, and
`incoming`, a queue of what the server sends on its own (requests, notifications).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Optional, Sequence

import orjson

from . import jsonrpc as rpc

REQUEST_TIMEOUT = 300.0


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
    """One session with a Streamable HTTP MCP server."""

    def __init__(self, url: str) -> None:
        import httpx

        super().__init__()
        self.url = url
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=10.0), follow_redirects=False)
        self._session_id: Optional[str] = None
        self._protocol: Optional[str] = None
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
        import httpx

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
                    return [m async for m in _sse_messages(resp)]
                data = orjson.loads(await resp.aread())
                return data if isinstance(data, list) else [data]
        except httpx.HTTPError as exc:
            raise UpstreamGone(f"the upstream cannot be reached: {exc}") from None
        except orjson.JSONDecodeError:
            raise UpstreamGone("the upstream answered with something that is not JSON") from None

    async def request(self, msg: dict, raw: bytes) -> dict:
        answer = None
        for item in await self._post(raw):
            if rpc.kind(item) == "response" and item.get("id") == msg["id"]:
                answer = item
            elif rpc.kind(item) in ("request", "notification"):
                self._deliver(item)
        if answer is None:
            raise UpstreamGone(f"the upstream did not answer {msg.get('method')}")
        if msg.get("method") == "initialize" and isinstance(answer.get("result"), dict):
            self._protocol = answer["result"].get("protocolVersion")
        return answer

    async def send(self, raw: bytes) -> None:
        for item in await self._post(raw):
            if rpc.kind(item) in ("request", "notification"):
                self._deliver(item)

    async def close(self) -> None:
        if self._session_id:
            try:
                await self._client.delete(self.url, headers=self._headers())
            except Exception:
                pass
        await self._client.aclose()


async def _sse_messages(resp: Any):
    """JSON-RPC messages from a text/event-stream response (data lines of each event)."""
    data: list[str] = []
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
                        yield item
            continue
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" "))


def rpc_limit() -> int:
    from .proxy import MAX_MESSAGE

    return MAX_MESSAGE + 1024
