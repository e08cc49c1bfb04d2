"""A loopback TCP proxy that delays each direction by a fixed time: a Redis "far away".

``DelayProxy(target_port, delay)`` listens on a free loopback port (``port``) and forwards
every connection to ``127.0.0.1:target_port``; each chunk is passed on ``delay`` seconds after
it arrived, in order, in both directions (so a round trip costs ``2 * delay``). It runs its
own event loop in a thread, so the test's loop times nothing of its work. ``drop()`` closes
every connection at once (as a restart or a network blip would).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType
from typing import Self

__all__ = ["DelayProxy"]


class DelayProxy:
    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port = target_port
        self.delay = delay
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def url(self, path: str = "/0") -> str:
        return f"redis://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Self:
        self._thread.start()
        self._server = self._call(self._start())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def drop(self) -> None:
        """Close every connection through the proxy now."""
        self._call(self._drop())

    def _call(self, coro: object) -> asyncio.Server:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _start(self) -> asyncio.Server:
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def _drop(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._drop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(client_w)
        try:
            upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.transport.abort()
            self._tasks.discard(task)
            return
        self._writers.add(upstream_w)
        try:
            await asyncio.gather(self._pipe(client_r, upstream_w), self._pipe(upstream_r, client_w))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for writer in (client_w, upstream_w):
                writer.transport.abort()
                self._writers.discard(writer)
            self._tasks.discard(task)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data:
                    sink.transport.abort()
                    return
                sink.write(data)
                await sink.drain()

        forwarder = loop.create_task(forward())
        try:
            while True:
                try:
                    data = await source.read(65536)
                except OSError:
                    data = b""
                queue.put_nowait((loop.time() + self.delay, data))
                if not data:
                    break
            await forwarder
        finally:
            forwarder.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await forwarder
