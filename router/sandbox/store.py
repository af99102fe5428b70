"""PostgreSQL state of the sandbox router: users and their keys, connections, deliveries.

Owns ``sandbox_users``, ``sandbox_connections`` and ``sandbox_deliveries`` (the fake apps own
their own tables). Every time comparison uses the database clock, so several processes sharing
the sandbox agree on when a connect link expired.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from router.base import ConnectionState
from router.sandbox.app import DbConn
from router.sandbox.errors import InvalidRequest, UnknownConnection

INSERT_USER = """
INSERT INTO sandbox_users (user_id, api_key, session_id) VALUES ($1, $2, $3)
ON CONFLICT (user_id) DO NOTHING
"""
SELECT_USER = "SELECT user_id, api_key, session_id FROM sandbox_users WHERE user_id = $1"
SELECT_USER_BY_KEY = "SELECT user_id, api_key, session_id FROM sandbox_users WHERE api_key = $1"

_CONNECTION_COLUMNS = """
    id, user_id, toolkit, callback_url, expires_at, link_token,
    CASE WHEN status = 'initiated' AND expires_at <= now() THEN 'expired' ELSE status END AS status
"""
SELECT_BEST_CONNECTIONS = f"""
SELECT DISTINCT ON (toolkit) {_CONNECTION_COLUMNS}
FROM sandbox_connections
WHERE user_id = $1 AND toolkit = ANY($2::text[])
ORDER BY toolkit, (status = 'active') DESC, created_at DESC, id
"""
SELECT_CONNECTION = f"SELECT {_CONNECTION_COLUMNS} FROM sandbox_connections WHERE id = $1 AND user_id = $2"
SELECT_CONNECTION_BY_TOKEN = f"SELECT {_CONNECTION_COLUMNS} FROM sandbox_connections WHERE link_token = $1"
INSERT_CONNECTION = f"""
INSERT INTO sandbox_connections (id, user_id, toolkit, status, link_token, callback_url, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))
RETURNING {_CONNECTION_COLUMNS}
"""
OPEN_LINK = f"""
UPDATE sandbox_connections
SET status = CASE WHEN $2 AND expires_at > now() THEN 'active'
                  WHEN expires_at > now() THEN 'failed'
                  ELSE 'expired' END,
    updated_at = now()
WHERE link_token = $1 AND status = 'initiated'
RETURNING {_CONNECTION_COLUMNS}
"""
SET_CONNECTION_STATUS = f"""
UPDATE sandbox_connections SET status = $2, updated_at = now() WHERE id = $1
RETURNING {_CONNECTION_COLUMNS}
"""
INSERT_DELIVERY = """
INSERT INTO sandbox_deliveries
    (user_id, tool_slug, toolkit, connection_id, arguments, external_ref, outcome, error)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8)
RETURNING id
"""
SELECT_DELIVERIES = """
SELECT id, user_id, tool_slug, toolkit, connection_id, arguments::text AS arguments, external_ref, outcome,
       error, created_at
FROM sandbox_deliveries
WHERE $1::text IS NULL OR user_id = $1
ORDER BY id
"""

DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)
"""What a database that is down, restarting or unreachable raises (retryable for callers)."""

_USER_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


@dataclass(frozen=True, slots=True)
class SandboxUser:
    """A sandbox user's credentials: the key goes in ``x-api-key``; it is kept out of the repr."""

    user_id: str
    session_id: str
    api_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    """One connection attempt (like a Composio connected account)."""

    id: str
    user_id: str
    toolkit: str
    state: ConnectionState
    expires_at: datetime
    callback_url: str | None = None
    link_token: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One executed tool call, as recorded."""

    id: int
    user_id: str
    tool_slug: str
    toolkit: str
    connection_id: str | None
    arguments: Mapping[str, Any]
    external_ref: str | None
    outcome: str
    error: str | None
    created_at: datetime


def check_user_id(user_id: str) -> str:
    """The user id, or InvalidRequest when it is empty, too long or has control characters."""
    if not isinstance(user_id, str) or not user_id.strip() or not _USER_ID.match(user_id):
        raise InvalidRequest("user id must be 1-200 printable characters")
    return user_id


def _connection(row: asyncpg.Record) -> ConnectionRecord:
    return ConnectionRecord(
        id=row["id"],
        user_id=row["user_id"],
        toolkit=row["toolkit"],
        state=ConnectionState(row["status"]),
        expires_at=row["expires_at"],
        callback_url=row["callback_url"],
        link_token=row["link_token"],
    )


def _user(row: asyncpg.Record) -> SandboxUser:
    return SandboxUser(user_id=row["user_id"], session_id=row["session_id"], api_key=row["api_key"])


class SandboxStore:
    """The sandbox's users, connections and deliveries in PostgreSQL."""

    __slots__ = ("pool",)

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # users -------------------------------------------------------------------------------
    async def ensure_user(self, user_id: str) -> SandboxUser:
        """The user's credentials, issued on first use (a random key and session id)."""
        check_user_id(user_id)
        key = "lwsk_" + secrets.token_urlsafe(24)
        session_id = "trs_sbx_" + secrets.token_hex(8)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(INSERT_USER, user_id, key, session_id)
            row = await conn.fetchrow(SELECT_USER, user_id)
        assert row is not None
        return _user(row)

    async def user_by_key(self, api_key: str) -> SandboxUser | None:
        """The user this key belongs to, or None."""
        row = await self.pool.fetchrow(SELECT_USER_BY_KEY, api_key)
        return None if row is None else _user(row)

    # connections -------------------------------------------------------------------------
    async def best_connections(self, user_id: str, toolkits: Collection[str]) -> dict[str, ConnectionRecord]:
        """Per toolkit, the active connection if there is one, else the latest attempt."""
        rows = await self.pool.fetch(SELECT_BEST_CONNECTIONS, user_id, list(toolkits))
        return {row["toolkit"]: _connection(row) for row in rows}

    async def start_connection(
        self, user_id: str, toolkit: str, callback_url: str | None, link_ttl: float
    ) -> ConnectionRecord:
        """A pending connection with a fresh link; an unexpired pending one is reused."""
        check_user_id(user_id)
        latest = (await self.best_connections(user_id, [toolkit])).get(toolkit)
        if (
            latest is not None
            and latest.state is ConnectionState.INITIATED
            and latest.callback_url == callback_url
        ):
            return latest
        row = await self.pool.fetchrow(
            INSERT_CONNECTION,
            "ca_sbx_" + secrets.token_hex(8),
            user_id,
            toolkit,
            ConnectionState.INITIATED.value,
            secrets.token_urlsafe(24),
            callback_url,
            float(link_ttl),
        )
        assert row is not None
        return _connection(row)

    async def grant(self, user_id: str, toolkits: Collection[str]) -> list[ConnectionRecord]:
        """Active connections for these toolkits straight away (seeding demos and tests)."""
        check_user_id(user_id)
        done = []
        async with self.pool.acquire() as conn, conn.transaction():
            for toolkit in toolkits:
                row = await conn.fetchrow(
                    INSERT_CONNECTION,
                    "ca_sbx_" + secrets.token_hex(8),
                    user_id,
                    toolkit,
                    ConnectionState.ACTIVE.value,
                    secrets.token_urlsafe(24),
                    None,
                    0.0,
                )
                assert row is not None
                done.append(_connection(row))
        return done

    async def get_connection(self, user_id: str, connection_id: str) -> ConnectionRecord:
        """The user's connection; UnknownConnection when it is not theirs or does not exist."""
        row = await self.pool.fetchrow(SELECT_CONNECTION, connection_id, user_id)
        if row is None:
            raise UnknownConnection(f"no connection {connection_id!r} for this user")
        return _connection(row)

    async def open_link(self, link_token: str, *, approve: bool = True) -> ConnectionRecord | None:
        """What opening a connect link does: approve (active) or deny (failed) a pending
        connection; a link opened after it expired marks it expired. None for an unknown link."""
        row = await self.pool.fetchrow(OPEN_LINK, link_token, approve)
        if row is None:
            row = await self.pool.fetchrow(SELECT_CONNECTION_BY_TOKEN, link_token)
        return None if row is None else _connection(row)

    async def set_connection_state(self, connection_id: str, state: ConnectionState) -> ConnectionRecord:
        """Force a connection's state (tests and admin: revoke, fail, expire)."""
        if state is ConnectionState.MISSING:
            raise InvalidRequest("a connection cannot be set to 'missing'")
        row = await self.pool.fetchrow(SET_CONNECTION_STATUS, connection_id, state.value)
        if row is None:
            raise UnknownConnection(f"no connection {connection_id!r}")
        return _connection(row)

    # deliveries --------------------------------------------------------------------------
    @staticmethod
    async def record_delivery(
        conn: DbConn,
        *,
        user_id: str,
        tool_slug: str,
        toolkit: str,
        connection_id: str | None,
        arguments: Mapping[str, Any],
        external_ref: str | None,
        outcome: str,
        error: str | None = None,
    ) -> int:
        """Record one executed call on ``conn`` (inside the caller's transaction)."""
        delivery_id: int = await conn.fetchval(
            INSERT_DELIVERY,
            user_id,
            tool_slug,
            toolkit,
            connection_id,
            json.dumps(arguments, sort_keys=True),
            external_ref,
            outcome,
            error,
        )
        return delivery_id

    async def deliveries(self, user_id: str | None = None) -> list[Delivery]:
        """Recorded deliveries, oldest first (one user's, or everyone's)."""
        rows = await self.pool.fetch(SELECT_DELIVERIES, user_id)
        return [
            Delivery(
                id=r["id"],
                user_id=r["user_id"],
                tool_slug=r["tool_slug"],
                toolkit=r["toolkit"],
                connection_id=r["connection_id"],
                arguments=json.loads(r["arguments"]),
                external_ref=r["external_ref"],
                outcome=r["outcome"],
                error=r["error"],
                created_at=r["created_at"],
            )
            for r in rows
        ]
