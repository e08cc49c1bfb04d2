"""A loopback server that reads a request and never answers it: for requests cancelled while
they wait for their answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import attrs


@attrs.frozen
class Hanging:
    """The server's base URL, and an event set once a request has reached it."""

    url: str
    arrived: asyncio.Event


@contextlib.asynccontextmanager
async def hanging_server() -> AsyncIterator[Hanging]:
    release = asyncio.Event()
    arrived = asyncio.Event()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        arrived.set()
        await release.wait()
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Hanging(f"http://127.0.0.1:{port}", arrived)
    finally:
        release.set()
        server.close()
        await server.wait_closed()
