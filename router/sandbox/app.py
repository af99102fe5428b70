"""What a fake app's tool handler looks like, and what it returns.

A handler runs inside the transaction that also records the delivery, so the app's state change
and its delivery row commit together. It gets that transaction's connection, the acting user and
the (schema-validated) arguments, and returns an :class:`AppResult`: data on success, or an
app-level error (not found, invalid value) the agent can read and act on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

DbConn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
"""A dedicated or pooled connection (both run queries the same way)."""
Row: TypeAlias = "Mapping[str, Any] | asyncpg.Record"


@dataclass(frozen=True, slots=True)
class AppResult:
    """An app's answer to one tool call."""

    data: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    external_ref: str | None = None
    """The id of what the call created or changed (message ts, issue key, incident id)."""

    @property
    def successful(self) -> bool:
        return self.error is None


def ok(data: Mapping[str, Any], external_ref: str | None = None) -> AppResult:
    return AppResult(data=data, external_ref=external_ref)


def failed(error: str, external_ref: str | None = None) -> AppResult:
    return AppResult(error=error, external_ref=external_ref)


Handler = Callable[[DbConn, str, Mapping[str, Any]], Awaitable[AppResult]]
"""``handler(conn, user_id, arguments) -> AppResult``."""


def iso(value: Any) -> str:
    """A timestamp as ISO 8601 (PostgreSQL timestamptz → str)."""
    return str(value.isoformat())
