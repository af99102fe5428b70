"""The Composio Tool Router behind the ``ToolRouter`` protocol (composio 0.29.0).

Each user gets one Tool Router session enabling the configured toolkits, with MCP on: the agent
reaches exactly that user's connected apps through the session's meta-tools. The session id is
kept in PostgreSQL (``router.composio_sessions``) and reused; a new one is created when the
toolkit set or the session configuration changes, or when Composio says the session is gone.
Connect links come from ``session.authorize`` (or ``connected_accounts.link`` when an auth config
is configured for the toolkit), never from the retired ``initiate`` endpoint; waiting for a
connection is async polling against a deadline.

The SDK is synchronous and slow to import (≈6 s): it is imported when the first call needs the
client, and every call runs in a worker thread so the event loop never blocks. The client always
has an explicit HTTP timeout and telemetry off (the SDK keeps its tracking switch in a context
variable, which is why it is set again inside every worker call). The API key never appears in
a repr, a log record or an error message (``router.composio_errors``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

import asyncpg

from router.base import (
    DEFAULT_TOOLKITS,
    Connection,
    ConnectionRequired,
    ConnectionState,
    ConnectLink,
    McpEndpoint,
    RouterError,
    RouterUnavailable,
)
from router.composio_accounts import TERMINAL_STATUSES, Account, account_from_sdk, summarize
from router.composio_errors import is_gone, translate
from router.composio_sessions import SessionStore, config_hash

if TYPE_CHECKING:
    from composio import Composio
    from composio.core.models.connected_accounts import ConnectionRequest
    from composio.core.models.tool_router import ToolRouterSessionWithMcp

    Client = Composio[Any, Any]
    Session = ToolRouterSessionWithMcp[Any, Any]

log = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_PAGES = 50
_MAX_SWAPS = 3


@dataclass(frozen=True, slots=True)
class ComposioRouterConfig:
    """What the Composio router needs; built from settings by the composition root."""

    api_key: str = field(repr=False)
    base_url: str = "https://backend.composio.dev"
    timeout: float = 15.0
    """Seconds per HTTP request (the SDK's own default is no timeout at all)."""
    max_retries: int = 2
    toolkits: tuple[str, ...] = DEFAULT_TOOLKITS
    auth_configs: Mapping[str, str] = field(default_factory=dict)
    """Optional auth config id per toolkit (the organisation's own OAuth apps)."""
    manage_connections: bool = True
    """Expose COMPOSIO_MANAGE_CONNECTIONS in sessions."""
    callback_url: str | None = None
    """Where OAuth sends the user when done (default for ``connect``)."""
    poll_interval: float = 2.0

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ValueError("the Composio API key is empty")
        if not self.toolkits:
            raise ValueError("at least one toolkit must be configured")
        if self.timeout <= 0 or self.poll_interval <= 0:
            raise ValueError("timeout and poll_interval must be positive")
        unknown = sorted(set(self.auth_configs) - set(self.toolkits))
        if unknown:
            raise ValueError(f"auth configs for toolkits that are not configured: {', '.join(unknown)}")

    def session_settings(self) -> dict[str, object]:
        """Everything that shapes a session besides its user (hashed to notice changes)."""
        return {
            "base_url": self.base_url,
            "toolkits": sorted(set(self.toolkits)),
            "auth_configs": dict(sorted(self.auth_configs.items())),
            "manage_connections": self.manage_connections,
            "callback_url": self.callback_url,
        }


def build_client(config: ComposioRouterConfig) -> Client:
    """The SDK client: explicit timeout and retries, telemetry off. Imports composio (slow)."""
    from composio import Composio

    return Composio(
        api_key=config.api_key,
        base_url=config.base_url,
        # Typed int by the SDK's settings dict; the HTTP client underneath takes float seconds.
        timeout=cast(int, config.timeout),
        max_retries=config.max_retries,
        allow_tracking=False,
    )


def _endpoint(session: Session) -> McpEndpoint:
    headers = {name: value for name, value in (session.mcp.headers or {}).items() if value is not None}
    return McpEndpoint(url=session.mcp.url, headers=headers, session_id=session.session_id)


def _check_user(user_id: str) -> str:
    if not isinstance(user_id, str) or not user_id.strip() or user_id != user_id.strip():
        raise ValueError(f"invalid user id {user_id!r}: a non-empty string without surrounding spaces")
    return user_id


class ComposioRouter:
    """``ToolRouter`` over the Composio Tool Router, one persisted session per user."""

    def __init__(
        self,
        config: ComposioRouterConfig,
        pool: asyncpg.Pool,
        *,
        client_factory: Callable[[ComposioRouterConfig], Client] = build_client,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._store = SessionStore(pool)
        self._factory = client_factory
        self._client: Client | None = None
        self._client_lock = threading.Lock()
        self._sleep = sleep
        self._clock = clock
        self._hash = config_hash(config.session_settings())

    def __repr__(self) -> str:
        return f"ComposioRouter(base_url={self._config.base_url!r}, toolkits={self._config.toolkits!r})"

    @property
    def toolkits(self) -> tuple[str, ...]:
        return self._config.toolkits

    # -- the ToolRouter protocol -------------------------------------------------------------

    async def session(self, user_id: str) -> McpEndpoint:
        return _endpoint(await self._open_session(_check_user(user_id)))

    async def connections(self, user_id: str) -> Mapping[str, Connection]:
        _check_user(user_id)
        accounts = await self._call("connected accounts listing", lambda c: self._list_accounts(c, user_id))
        mine = [a for a in accounts if a.user_id in (None, user_id)]
        if len(mine) != len(accounts):
            log.warning("Composio listed %d accounts of other users; ignored", len(accounts) - len(mine))
        return summarize(mine, self._config.toolkits)

    async def connect(self, user_id: str, toolkit: str, callback_url: str | None = None) -> ConnectLink:
        _check_user(user_id)
        slug = toolkit.strip().lower()
        if slug not in self._config.toolkits:
            raise ValueError(f"{toolkit!r} is not a configured toolkit ({', '.join(self._config.toolkits)})")
        callback = callback_url or self._config.callback_url
        auth_config = self._config.auth_configs.get(slug)
        request: ConnectionRequest
        if auth_config is not None:
            request = await self._call(
                "connect link",
                lambda c: c.connected_accounts.link(
                    user_id, auth_config, callback_url=callback, allow_multiple=True
                ),
            )
        else:
            session = await self._open_session(user_id)
            request = await self._call(
                "toolkit authorization", lambda _c: session.authorize(slug, callback_url=callback)
            )
        if not request.redirect_url or not request.id:
            raise RouterError(f"Composio returned no connect link for {slug}")
        log.info("connect link created for user %s, toolkit %s (connection %s)", user_id, slug, request.id)
        return ConnectLink(url=request.redirect_url, connection_id=request.id, toolkit=slug)

    async def wait_connected(self, user_id: str, connection_id: str, timeout: float) -> Connection:
        _check_user(user_id)
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        deadline = self._clock() + timeout
        last = "not checked"
        while True:
            try:
                account = await self._call(
                    "connection check", lambda c: account_from_sdk(c.connected_accounts.get(connection_id))
                )
            except RouterUnavailable as exc:
                last = str(exc)  # transient: keep polling until the deadline
            else:
                if account.user_id not in (None, user_id):
                    raise ValueError(f"connection {connection_id} does not belong to user {user_id}")
                last = account.status
                if account.state is ConnectionState.ACTIVE:
                    return Connection(account.toolkit, ConnectionState.ACTIVE, account.id)
                if account.status.upper() in TERMINAL_STATUSES or account.disabled:
                    log.info("connection %s ended %s", connection_id, account.status)
                    raise ConnectionRequired(account.toolkit, None)
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise RouterUnavailable(
                    f"timed out after {timeout:g}s waiting for connection {connection_id} (last: {last})"
                )
            await self._sleep(min(self._config.poll_interval, remaining))

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections (a later call opens new ones)."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.client.close)

    # -- sessions -----------------------------------------------------------------------------

    async def _open_session(self, user_id: str) -> Session:
        """The user's stored session if still valid and current, else a new one (stored)."""
        config = self._config
        created: Session | None = None
        for _ in range(_MAX_SWAPS):
            stored = await self._store.get(user_id)
            if stored is not None and stored.matches(config.toolkits, self._hash):
                lookup = functools.partial(self._use, session_id=stored.session_id, user_id=user_id)
                found = await self._call("session lookup", lookup)
                if found is not None:
                    return found
                log.info("session %s of user %s is gone; creating a new one", stored.session_id, user_id)
            elif stored is not None:
                log.info(
                    "session configuration changed for user %s; replacing %s", user_id, stored.session_id
                )
            created = await self._call("session creation", lambda c: self._create(c, user_id))
            if await self._store.swap(
                user_id,
                expected=stored.session_id if stored is not None else None,
                session_id=created.session_id,
                toolkits=config.toolkits,
                config_hash=self._hash,
            ):
                log.info("created tool-router session %s for user %s", created.session_id, user_id)
                return created
            log.info("another process stored a session for user %s first; using it", user_id)
        assert created is not None
        return created

    def _create(self, client: Client, user_id: str) -> Session:
        config = self._config
        manage: Any = config.manage_connections
        if config.manage_connections and config.callback_url:
            manage = {"enable": True, "callback_url": config.callback_url}
        return client.sessions.create(
            user_id=user_id,
            toolkits=list(config.toolkits),
            auth_configs=dict(config.auth_configs) or None,
            manage_connections=manage,
            mcp=True,
        )

    @staticmethod
    def _use(client: Client, session_id: str, user_id: str) -> Session | None:
        """The session, or None when it is gone or (never expected) belongs to someone else."""
        try:
            session = client.use(session_id, mcp=True)
        except Exception as exc:
            if is_gone(exc):
                return None
            raise
        owner = getattr(session.config, "user_id", None)
        if owner is not None and owner != user_id:
            log.warning("stored session %s belongs to another user; replacing it", session_id)
            return None
        return session

    def _list_accounts(self, client: Client, user_id: str) -> list[Account]:
        toolkits = list(self._config.toolkits)
        accounts: list[Account] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            if cursor is None:
                page = client.connected_accounts.list(user_ids=[user_id], toolkit_slugs=toolkits)
            else:
                page = client.connected_accounts.list(
                    user_ids=[user_id], toolkit_slugs=toolkits, cursor=cursor
                )
            accounts.extend(account_from_sdk(item) for item in page.items)
            cursor = page.next_cursor
            if not cursor:
                break
        return accounts

    # -- running SDK calls --------------------------------------------------------------------

    def _ensure_client(self) -> Client:
        with self._client_lock:
            if self._client is None:
                self._client = self._factory(self._config)
            return self._client

    def _run(self, fn: Callable[[Client], T]) -> T:
        client = self._ensure_client()
        from composio.core.models.base import allow_tracking

        allow_tracking.set(False)  # this worker's context is a copy: set it for this call
        try:
            return fn(client)
        except StopIteration as exc:
            # A StopIteration raised into the awaiting future would leave it pending forever.
            raise RuntimeError("StopIteration escaped a Composio SDK call") from exc

    async def _call(self, operation: str, fn: Callable[[Client], T]) -> T:
        """Run ``fn(client)`` in a worker thread; SDK failures become router errors."""
        try:
            return await asyncio.to_thread(self._run, fn)
        except RouterError:
            raise
        except Exception as exc:
            error = translate(exc, operation, self._config.api_key)
            if error is None:
                raise
            log.debug("%s (%s)", error, type(exc).__name__)
        raise error
