"""``SandboxRouter``: the ``router.base.ToolRouter`` protocol over the sandbox.

It needs only the sandbox's database and its origin, so any process sharing the database can
hand out endpoints and connect links of a sandbox server that runs elsewhere. Waiting for a
connection polls the database with an injected clock and sleep (tests pass fakes and never
sleep).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from router.base import (
    DEFAULT_TOOLKITS,
    Connection,
    ConnectionRequired,
    ConnectionState,
    ConnectLink,
    McpEndpoint,
    RouterUnavailable,
)
from router.sandbox.auth import API_KEY_HEADER
from router.sandbox.errors import InvalidRequest
from router.sandbox.links import Links
from router.sandbox.store import DATABASE_ERRORS, ConnectionRecord, SandboxStore

T = TypeVar("T")

DEFAULT_LINK_TTL = 600.0
"""Seconds a connect link stays valid."""


async def _guard(work: Awaitable[T]) -> T:
    """Database trouble becomes RouterUnavailable (retryable)."""
    try:
        return await work
    except DATABASE_ERRORS as exc:
        raise RouterUnavailable(f"sandbox database unavailable: {type(exc).__name__}") from exc


class SandboxRouter:
    """Per-user sessions and connections of the local sandbox tool router."""

    __slots__ = ("_clock", "_link_ttl", "_links", "_poll_interval", "_sleep", "_store", "toolkits")

    def __init__(
        self,
        store: SandboxStore,
        links: Links,
        *,
        toolkits: Collection[str] = DEFAULT_TOOLKITS,
        link_ttl: float = DEFAULT_LINK_TTL,
        poll_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self._store = store
        self._links = links
        self.toolkits = tuple(toolkits)
        self._link_ttl = link_ttl
        self._poll_interval = poll_interval
        self._clock = clock
        self._sleep = sleep

    async def session(self, user_id: str) -> McpEndpoint:
        """The user's MCP endpoint; their key and session id are issued on first use."""
        user = await _guard(self._store.ensure_user(user_id))
        return McpEndpoint(
            url=self._links.mcp_url(user.session_id),
            headers={API_KEY_HEADER: user.api_key},
            session_id=user.session_id,
        )

    async def connections(self, user_id: str) -> Mapping[str, Connection]:
        """Each toolkit's state: the active connection if any, else the latest attempt, else missing."""
        best = await _guard(self._store.best_connections(user_id, self.toolkits))
        result: dict[str, Connection] = {}
        for toolkit in self.toolkits:
            record = best.get(toolkit)
            if record is None:
                result[toolkit] = Connection(toolkit, ConnectionState.MISSING)
            else:
                result[toolkit] = Connection(toolkit, record.state, record.id)
        return result

    async def connect(self, user_id: str, toolkit: str, callback_url: str | None = None) -> ConnectLink:
        """A local connect link; opening it (GET) makes the connection active."""
        toolkit = toolkit.strip().lower()
        if toolkit not in self.toolkits:
            raise InvalidRequest(f"unknown toolkit {toolkit!r} (available: {', '.join(self.toolkits)})")
        if callback_url is not None and urlsplit(callback_url).scheme not in ("http", "https"):
            raise InvalidRequest("callback_url must be an http(s) URL")
        record = await _guard(self._store.start_connection(user_id, toolkit, callback_url, self._link_ttl))
        return self._link(record)

    async def wait_connected(self, user_id: str, connection_id: str, timeout: float) -> Connection:
        """Poll until active (returned), failed or expired (ConnectionRequired with a fresh link),
        or ``timeout`` seconds pass (RouterUnavailable). Unknown ids raise UnknownConnection."""
        deadline = self._clock() + timeout
        while True:
            record = await _guard(self._store.get_connection(user_id, connection_id))
            if record.state is ConnectionState.ACTIVE:
                return Connection(record.toolkit, record.state, record.id)
            if record.state in (ConnectionState.FAILED, ConnectionState.EXPIRED):
                fresh = await _guard(
                    self._store.start_connection(user_id, record.toolkit, record.callback_url, self._link_ttl)
                )
                raise ConnectionRequired(record.toolkit, self._link(fresh))
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise RouterUnavailable(f"{record.toolkit} was not connected within {timeout:g} s")
            await self._sleep(min(self._poll_interval, remaining))

    def _link(self, record: ConnectionRecord) -> ConnectLink:
        return ConnectLink(
            url=self._links.connect_url(record.link_token), connection_id=record.id, toolkit=record.toolkit
        )
