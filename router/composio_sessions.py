"""The ``tool_router_sessions`` table: one Composio Tool Router session per user.

A row says which session a user's agent talks through, which toolkit set it was created with and
a hash of the rest of its configuration, so a configuration change is noticed and a new session
made. Writes are compare-and-swap: a row is inserted only if the user has none, and replaced only
if it still holds the session the writer saw. Two processes that create a session for the same
user at once therefore agree on one (the loser reads the winner's), and no lock is held while
the Composio API is called.

A database that is down, restarting or unreachable (or not migrated) raises
``RouterUnavailable`` (retryable), with the database error as its cause.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from router.base import RouterUnavailable

SELECT_SESSION = """
SELECT user_id, session_id, toolkits, config_hash, created_at
FROM tool_router_sessions
WHERE user_id = $1
"""
INSERT_SESSION = """
INSERT INTO tool_router_sessions (user_id, session_id, toolkits, config_hash)
VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id) DO NOTHING
RETURNING session_id
"""
REPLACE_SESSION = """
UPDATE tool_router_sessions
SET session_id = $3, toolkits = $4, config_hash = $5, created_at = now()
WHERE user_id = $1 AND session_id = $2
RETURNING session_id
"""


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A user's persisted session."""

    user_id: str
    session_id: str
    toolkits: tuple[str, ...]
    """Sorted, as created."""
    config_hash: str
    created_at: datetime

    def matches(self, toolkits: tuple[str, ...], config_hash: str) -> bool:
        """True when this session was created with this toolkit set and configuration."""
        return self.toolkits == tuple(sorted(set(toolkits))) and self.config_hash == config_hash


def config_hash(settings: Mapping[str, object]) -> str:
    """A stable hash of a session configuration (sha256 over canonical JSON)."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(canonical.encode()).hexdigest()


_DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class SessionStore:
    """Reads and compare-and-swap writes of ``tool_router_sessions``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def __repr__(self) -> str:
        return "SessionStore()"

    async def _fetchrow(self, query: str, *args: object) -> asyncpg.Record | None:
        try:
            return await self._pool.fetchrow(query, *args)
        except _DATABASE_ERRORS as exc:
            raise RouterUnavailable(f"tool-router session store unavailable: {type(exc).__name__}") from exc

    async def get(self, user_id: str) -> StoredSession | None:
        row = await self._fetchrow(SELECT_SESSION, user_id)
        if row is None:
            return None
        return StoredSession(
            user_id=row["user_id"],
            session_id=row["session_id"],
            toolkits=tuple(row["toolkits"]),
            config_hash=row["config_hash"],
            created_at=row["created_at"],
        )

    async def swap(
        self,
        user_id: str,
        *,
        expected: str | None,
        session_id: str,
        toolkits: tuple[str, ...],
        config_hash: str,
    ) -> bool:
        """Store ``session_id`` for the user if the stored session is still ``expected``
        (``None``: the user has no row). False when another writer got there first."""
        toolkit_set = sorted(set(toolkits))
        if expected is None:
            won = await self._fetchrow(INSERT_SESSION, user_id, session_id, toolkit_set, config_hash)
        else:
            won = await self._fetchrow(
                REPLACE_SESSION, user_id, expected, session_id, toolkit_set, config_hash
            )
        return won is not None
