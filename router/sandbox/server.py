"""``SandboxServer``: the sandbox router wired together and served on loopback by uvicorn.

In an asyncio program (the service, the demo, a test fixture)::

    async with SandboxServer(pool, port=0) as server:      # any free port on 127.0.0.1
        endpoint = await server.router().session("alice")  # McpEndpoint(url, headers)

In a thread with its own event loop and pool (for synchronous code)::

    with serve_in_thread(dsn) as sandbox:
        endpoint = sandbox.call(lambda s: s.router().session("alice"))

``server.app`` is the plain ASGI app (its lifespan runs MCP) for serving it some other way; pass
``public_url`` then, so connect links and endpoints know where it is.
Pass ``resolver=ProjectKeyResolver(key, sessions)`` to serve Composio-shaped sessions (one
project key, the session id in the URL decides the user).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Collection, Iterator
from typing import Any, TypeVar

import anyio
import asyncpg
from starlette.types import ASGIApp

from router.base import DEFAULT_TOOLKITS
from router.http_server import HttpServer, ServeError
from router.sandbox.auth import CredentialResolver, UserKeyResolver
from router.sandbox.catalog import CATALOGUE, Catalogue
from router.sandbox.errors import InvalidRequest, SandboxStartError
from router.sandbox.executor import Executor
from router.sandbox.failures import FailureInjector
from router.sandbox.http_app import SandboxApp
from router.sandbox.links import Links
from router.sandbox.meta_tools import MetaTools
from router.sandbox.store import SandboxStore
from router.sandbox.tool_router import DEFAULT_LINK_TTL, SandboxRouter

T = TypeVar("T")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
STOP_TIMEOUT = 10.0


class SandboxServer:
    """The sandbox tool router: MCP meta-tools, fake apps, connect links, admin endpoints."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        toolkits: Collection[str] = DEFAULT_TOOLKITS,
        resolver: CredentialResolver | None = None,
        admin_token: str | None = None,
        failures: FailureInjector | None = None,
        link_ttl: float = DEFAULT_LINK_TTL,
        public_url: str | None = None,
        catalogue: Catalogue = CATALOGUE,
        delay_sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if host not in LOOPBACK_HOSTS:
            raise InvalidRequest(
                f"the sandbox serves loopback only ({', '.join(LOOPBACK_HOSTS)}), not {host!r}"
            )
        unknown = [t for t in toolkits if t not in catalogue.toolkits]
        if unknown:
            raise InvalidRequest(f"unknown toolkits {unknown} (catalogue: {', '.join(catalogue.toolkits)})")
        self.host, self.port = host, port
        self.toolkits = tuple(toolkits)
        self.store = SandboxStore(pool)
        self.failures = failures if failures is not None else FailureInjector()
        self.links = Links(public_url)
        self._link_ttl = link_ttl
        self.resolver = resolver if resolver is not None else UserKeyResolver(self.store)
        executor = Executor(
            self.store,
            catalogue,
            self.failures,
            self.links.connection_view,
            link_ttl=link_ttl,
            sleep=delay_sleep,
        )
        meta = MetaTools(
            self.store,
            catalogue,
            executor,
            self.links.connection_view,
            toolkits=self.toolkits,
            link_ttl=link_ttl,
        )
        self._app = SandboxApp(
            store=self.store,
            meta=meta,
            catalogue=catalogue,
            resolver=self.resolver,
            failures=self.failures,
            router=self.router,
            admin_token=admin_token,
        )
        self._http = HttpServer(
            self.app, host, port, name="sandbox router", lifespan="on", graceful_timeout=STOP_TIMEOUT / 2
        )

    def __repr__(self) -> str:
        where = self.links.origin if self._http.started else "not started"
        return f"SandboxServer({where}, toolkits={self.toolkits})"

    @property
    def serving(self) -> bool:
        """Whether its HTTP server is running (started, not stopped, not crashed)."""
        return self._http.serving

    @property
    def app(self) -> ASGIApp:
        """The ASGI app (MCP at /tool_router/{session_id}/mcp, connect links, admin)."""
        return self._app.asgi

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>`` once started (or the public_url given)."""
        return self.links.origin

    def router(self, **options: Any) -> SandboxRouter:
        """A ``ToolRouter`` for this sandbox; options: clock, sleep, poll_interval."""
        return SandboxRouter(
            self.store, self.links, toolkits=self.toolkits, link_ttl=self._link_ttl, **options
        )

    async def start(self) -> None:
        """Bind and serve; returns once requests are being accepted."""
        try:
            await self._http.start()
        except ServeError as exc:
            raise SandboxStartError(str(exc)) from None
        self.port = self._http.port
        if not self.links.known:
            self.links.origin = self._http.url

    async def stop(self) -> None:
        """End MCP sessions, stop serving, wait for the server task."""
        if not self._http.started:
            return
        self._app.close_sessions()
        await self._http.stop()

    async def __aenter__(self) -> SandboxServer:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()


class ThreadedSandbox:
    """A sandbox server running in its own thread and event loop."""

    def __init__(self, server: SandboxServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self._loop = loop

    @property
    def origin(self) -> str:
        return self.server.origin

    @property
    def failures(self) -> FailureInjector:
        """Thread-safe: inject failures from any thread."""
        return self.server.failures

    def call(self, work: Callable[[SandboxServer], Awaitable[T]], timeout: float = 30.0) -> T:
        """Run ``work(server)`` on the server's loop and return its result."""

        async def run() -> T:
            return await work(self.server)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)


@contextlib.contextmanager
def serve_in_thread(dsn: str, *, startup_timeout: float = 30.0, **options: Any) -> Iterator[ThreadedSandbox]:
    """Serve a sandbox (with its own asyncpg pool on ``dsn``) in a daemon thread."""
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4, timeout=10, command_timeout=30)
        try:
            async with SandboxServer(pool, **options) as server:
                stop = asyncio.Event()
                state.update(server=server, loop=asyncio.get_running_loop(), stop=stop)
                ready.set()
                await stop.wait()
        finally:
            await pool.close()

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the starting thread
            state["error"] = exc
            ready.set()

    thread = threading.Thread(target=target, name="sandbox-router", daemon=True)
    thread.start()
    if not ready.wait(startup_timeout) or "error" in state:
        raise SandboxStartError(f"sandbox router thread did not start: {state.get('error')!r}")
    loop: asyncio.AbstractEventLoop = state["loop"]
    try:
        yield ThreadedSandbox(state["server"], loop)
    finally:
        loop.call_soon_threadsafe(state["stop"].set)
        thread.join(STOP_TIMEOUT)
