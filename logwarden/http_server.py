"""Serving an ASGI app with uvicorn inside our own event loop (signals stay ours)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.types import ASGIApp


class ServeError(Exception):
    """The HTTP server could not bind or start. Permanent (port taken, bad address)."""


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the service handles SIGTERM/SIGINT itself and stops us in order

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        self.ready.set()


class HttpServer:
    """One uvicorn server for ``app`` on ``host:port`` (port 0: any free port)."""

    def __init__(self, app: ASGIApp, host: str, port: int, *, limit_concurrency: int = 256) -> None:
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            ws="none",
            limit_concurrency=limit_concurrency,
            timeout_graceful_shutdown=10,
        )
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.host, self.port = host, port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        server = _Server(self._config)
        task = asyncio.create_task(server.serve(), name=f"http-{self.port}")
        ready = asyncio.create_task(server.ready.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if not server.ready.is_set():
            ready.cancel()
            try:
                await task
            except BaseException as exc:  # uvicorn reports bind failures with sys.exit
                raise ServeError(f"cannot serve HTTP on {self.host}:{self.port}: {exc!r}") from None
            raise ServeError(f"cannot serve HTTP on {self.host}:{self.port}")
        self._server, self._task = server, task
        self.port = int(server.servers[0].sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop accepting, finish in-flight requests (bounded), return."""
        server, task = self._server, self._task
        if server is None or task is None:
            return
        self._server = self._task = None
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, SystemExit):
            await asyncio.wait_for(task, 15)
