"""One MCP client session on a user's tool-router endpoint (the rules executor's transport).

:func:`open_router_session` opens mcp's Streamable HTTP client on an ``McpEndpoint`` with one
httpx2 client (connect and per-request timeouts) and one initialized ``ClientSession``, reused
for every call of a job. :meth:`RouterSession.call` calls a meta-tool and returns its envelope
(``{"successful", "data", "error"}``). Failures are translated where they happen:

- the endpoint cannot be reached or times out → ``RouterUnavailable`` (retryable; a call may or
  may not have run); it answers a tool call with HTTP 5xx/429 → ``CallRejected`` (retryable;
  the call did not run);
- it answers HTTP 401/403 → ``RouterAuthError`` (permanent: the credentials are wrong);
- it answers a tool call with an MCP error result (bad arguments, its own trouble) →
  :class:`~agents.errors.MetaToolError` (retryable; nothing in that call ran).

The MCP client runs inside anyio task groups, which wrap whatever escapes them in exception
groups; the session unwraps them, so callers see one exception.
"""

from __future__ import annotations

import contextlib
import functools
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from agents.errors import CallRejected, MetaToolError
from router.base import McpEndpoint, RouterAuthError, RouterError, RouterUnavailable

_AUTH_STATUSES = frozenset({401, 403})


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One verifying TLS context for every session of the process, built on first use.

    Building it (loading the CA bundle) is most of what creating an httpx2 client costs (20 ms
    idle, hundreds under load); shared, opening a session per job costs a millisecond or two.
    """
    return httpx2.create_ssl_context()


def _leaf(exc: BaseException) -> BaseException:
    """The one exception inside nested single-member groups (the group itself otherwise)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class _Statuses:
    """Remembers the last HTTP status the endpoint answered (MCP errors do not carry it)."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: int | None = None

    async def hook(self, response: httpx2.Response) -> None:
        self.last = response.status_code

    def latest(self) -> int | None:
        return self.last


def _translate(exc: BaseException, url: str, statuses: _Statuses) -> BaseException:
    if isinstance(exc, RouterError | MetaToolError):
        return exc
    if statuses.last in _AUTH_STATUSES:
        return RouterAuthError(f"the tool router refused the session's credentials (HTTP {statuses.last})")
    if isinstance(exc, MCPError | httpx2.HTTPError | OSError | TimeoutError):
        status = f" (HTTP {statuses.last})" if statuses.last is not None and statuses.last >= 400 else ""
        return RouterUnavailable(f"tool router at {url} failed{status}: {type(exc).__name__}: {exc}")
    return exc


class RouterSession:
    """An initialized MCP session; :meth:`call` runs one meta-tool."""

    __slots__ = ("_session", "_statuses", "_timeout", "url")

    def __init__(self, session: ClientSession, statuses: _Statuses, url: str, timeout: float) -> None:
        self._session = session
        self._statuses = statuses
        self._timeout = timeout
        self.url = url

    async def call(self, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The meta-tool's envelope. Raises RouterUnavailable, RouterAuthError or MetaToolError."""
        self._statuses.last = None
        try:
            result = await self._session.call_tool(name, dict(arguments), read_timeout_seconds=self._timeout)
        except Exception as exc:
            status = self._statuses.latest()
            if (
                isinstance(exc, MCPError)
                and status is not None
                and status >= 400
                and status not in _AUTH_STATUSES
            ):
                raise CallRejected(f"tool router answered {name} with HTTP {status}; nothing ran") from exc
            raise _translate(exc, self.url, self._statuses) from exc
        payload = result.structured_content
        if not isinstance(payload, dict):
            text = "".join(getattr(block, "text", "") for block in result.content)
            try:
                payload = json.loads(text) if text else {}
            except ValueError:
                payload = {"successful": False, "data": None, "error": text[:500]}
        if not isinstance(payload, dict):
            payload = {"successful": False, "data": payload, "error": "unexpected result shape"}
        if result.is_error:
            raise MetaToolError(f"{name} failed: {payload.get('error') or 'error result'}")
        return payload


@contextlib.asynccontextmanager
async def open_router_session(
    endpoint: McpEndpoint, *, connect_timeout: float = 10.0, call_timeout: float = 30.0
) -> AsyncIterator[RouterSession]:
    """An initialized session on ``endpoint`` for the duration of the block (see the module docstring)."""
    statuses = _Statuses()
    timeout = httpx2.Timeout(call_timeout, connect=connect_timeout)
    try:
        async with (
            httpx2.AsyncClient(
                headers=dict(endpoint.headers),
                timeout=timeout,
                verify=shared_ssl_context(),
                event_hooks={"response": [statuses.hook]},
            ) as http,
            streamable_http_client(endpoint.url, http_client=http) as (read, write),
            ClientSession(read, write, read_timeout_seconds=call_timeout) as session,
        ):
            try:
                await session.initialize()
            except Exception as exc:
                raise _translate(exc, endpoint.url, statuses) from exc
            yield RouterSession(session, statuses, endpoint.url, call_timeout)
    except BaseExceptionGroup as group:
        leaf = _leaf(group)
        if leaf is group:
            raise
        translated = _translate(leaf, endpoint.url, statuses)
        if translated is leaf:
            raise leaf from None
        raise translated from leaf
    except (httpx2.HTTPError, OSError, MCPError) as exc:
        raise _translate(exc, endpoint.url, statuses) from exc
