"""Connect an `mcp` SDK ClientSession to a pair of byte pipes (newline-delimited JSON-RPC),
the way the SDK's stdio_client connects it to a child process. The demo uses it to talk
to a proxy it hosts in-process, so the operator (the demo) can set each step's identity.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import IO, TYPE_CHECKING, Any, AsyncIterator

import anyio
import anyio.to_thread

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream


@asynccontextmanager
async def pipe_transport(reader: IO[bytes], writer: IO[bytes]) -> AsyncIterator[tuple[Any, Any]]:
    """(read_stream, write_stream) for ClientSession over two binary file objects."""
    import mcp_types as types
    from mcp.shared.message import SessionMessage

    read_send: MemoryObjectSendStream[Any]
    read_recv: MemoryObjectReceiveStream[Any]
    write_send: MemoryObjectSendStream[Any]
    write_recv: MemoryObjectReceiveStream[Any]
    read_send, read_recv = anyio.create_memory_object_stream(0)
    write_send, write_recv = anyio.create_memory_object_stream(0)

    async def pump_in() -> None:
        async with read_send:
            while True:
                line = await anyio.to_thread.run_sync(reader.readline, abandon_on_cancel=True)
                if not line:
                    return
                if not line.strip():
                    continue
                try:
                    item: Any = SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
                except ValueError as exc:
                    item = exc
                await read_send.send(item)

    async def pump_out() -> None:
        async with write_recv:
            async for message in write_recv:
                data = message.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"

                def put() -> None:
                    writer.write(data)
                    writer.flush()

                await anyio.to_thread.run_sync(put)

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump_in)
        tg.start_soon(pump_out)
        try:
            yield read_recv, write_send
        finally:
            await write_send.aclose()
            await read_recv.aclose()
            tg.cancel_scope.cancel()
