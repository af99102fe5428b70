"""Serving an ASGI app with uvicorn inside the caller's event loop.

Used for the service's HTTP API (``logwarden``) and the sandbox tool router (``router.sandbox``):
signals stay the host's (it stops servers in its own order), ``start`` returns once requests are
being accepted or raises :class:`ServeError`, and ``stop`` is prompt (no polling interval to wait
out) and bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any, Literal

import uvicorn
from starlette.types import ASGIApp

_TICK = 1.0
"""Seconds between uvicorn's housekeeping ticks (the Date header has a resolution of a second)."""


class ServeError(Exception):
    """The server could not bind or start. Permanent (port taken, bad address)."""


class _Uvicorn(uvicorn.Server):
    """uvicorn that leaves signal handling to its host, says when it has started, and stops as
    soon as it is asked to."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()
        self.exit_requested = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: Any = None) -> None:
        try:
            await super().startup(sockets)
        except SystemExit as exc:
            # uvicorn exits the process when it cannot bind or its lifespan startup fails; inside
            # a task a SystemExit would escape the event loop and end the host. The cause (the
            # bind's OSError) is its context.
            raise ServeError(str(exc.__context__ or "startup failed")) from None
        self.ready.set()

    async def main_loop(self) -> None:
        # uvicorn's own loop polls should_exit every 100 ms; this one wakes when asked to stop,
        # and ticks once a second for the Date header
        while not await self.on_tick(0):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.exit_requested.wait(), _TICK)


class HttpServer:
    """One uvicorn server for ``app`` on ``host:port`` (port 0: any free port, kept for a
    restart); ``name`` is for task names and errors."""

    def __init__(
        self,
        app: ASGIApp,
        host: str,
        port: int,
        *,
        name: str = "HTTP",
        lifespan: Literal["on", "off"] = "off",
        limit_concurrency: int | None = None,
        graceful_timeout: float = 10.0,
    ) -> None:
        self._app = app
        self._options: dict[str, Any] = {
            "lifespan": lifespan,
            "limit_concurrency": limit_concurrency,
            "timeout_graceful_shutdown": int(graceful_timeout),
        }
        self._graceful = graceful_timeout
        self._server: _Uvicorn | None = None
        self._task: asyncio.Task[None] | None = None
        self.name = name
        self.host, self.port = host, port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def started(self) -> bool:
        """Started and not stopped (it may have crashed since: see :attr:`serving`)."""
        return self._task is not None

    @property
    def serving(self) -> bool:
        """Started, not stopped, not crashed."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Bind and serve; return once requests are being accepted (``port`` is then the bound
        port). Raises ServeError when it cannot bind or start, or is already running."""
        if self._task is not None:
            raise ServeError(f"{self.name} is already being served on {self.url}")
        config = uvicorn.Config(
            self._app,
            host=self.host,
            port=self.port,  # once started: the bound port, so a restart serves the same address
            log_config=None,
            log_level="warning",
            access_log=False,
            ws="none",
            **self._options,
        )
        server = _Uvicorn(config)
        task = asyncio.create_task(server.serve(), name=f"{self.name} server")
        ready = asyncio.create_task(server.ready.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if not server.ready.is_set():
            ready.cancel()
            try:
                await task
            except Exception as exc:
                raise ServeError(f"cannot serve {self.name} on {self.host}:{self.port}: {exc}") from None
            raise ServeError(f"cannot serve {self.name} on {self.host}:{self.port}")
        self._server, self._task = server, task
        self.port = int(server.servers[0].sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop accepting, finish in-flight requests (bounded by the graceful timeout), return."""
        server, task = self._server, self._task
        if server is None or task is None:
            return
        self._server = self._task = None
        server.should_exit = True
        server.exit_requested.set()
        with contextlib.suppress(asyncio.CancelledError, SystemExit, TimeoutError):
            await asyncio.wait_for(task, self._graceful + 5)
