"""Who an MCP request belongs to: credential resolvers.

A resolver maps a request's session id (from ``/tool_router/{session_id}/mcp``) and headers to a
user id, or to None, which the HTTP layer answers with 401 before anything runs.

- :class:`UserKeyResolver` (the default): each user has their own key, issued by the sandbox
  (``x-api-key``), and their own session id; both must match.
- :class:`ProjectKeyResolver`: Composio's shape, for serving the sandbox where a mocked Composio
  API says the MCP server is: one project key for every request, and the session id decides the
  user (a mapping the caller keeps up to date, e.g. as its mocked API creates sessions).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from router.sandbox.store import SandboxStore

API_KEY_HEADER = "x-api-key"


@dataclass(frozen=True, slots=True)
class CredentialRequest:
    """What a resolver may look at."""

    session_id: str
    headers: Mapping[str, str] = field(repr=False)


CredentialResolver = Callable[[CredentialRequest], Awaitable[str | None]]


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class UserKeyResolver:
    """Per-user keys and session ids issued by the sandbox (``SandboxStore.ensure_user``)."""

    __slots__ = ("_store",)

    def __init__(self, store: SandboxStore) -> None:
        self._store = store

    async def __call__(self, request: CredentialRequest) -> str | None:
        key = request.headers.get(API_KEY_HEADER)
        if not key:
            return None
        user = await self._store.user_by_key(key)
        if user is None or not _same(user.session_id, request.session_id):
            return None
        return user.user_id


class ProjectKeyResolver:
    """One project key; ``sessions`` maps a session id to its user (read on every request)."""

    __slots__ = ("_key", "_sessions")

    def __init__(self, api_key: str, sessions: Mapping[str, str]) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        self._key = api_key
        self._sessions = sessions

    def __repr__(self) -> str:
        return f"ProjectKeyResolver(sessions={len(self._sessions)})"

    async def __call__(self, request: CredentialRequest) -> str | None:
        key = request.headers.get(API_KEY_HEADER)
        if not key or not _same(key, self._key):
            return None
        return self._sessions.get(request.session_id)
