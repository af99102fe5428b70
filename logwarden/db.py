"""PostgreSQL: which server to use, and the connection pool.

``LOGWARDEN_DATABASE_URL`` when set; otherwise an embedded PostgreSQL (the ``pgserver`` wheel
ships the binaries) in ``<data_dir>/pgdata``, started on first use and kept running for as long as
the returned :class:`Database` is referenced in this process.

Errors: :class:`DatabaseUnavailable` (retryable: the server could not be reached or started).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from logwarden.config import Settings

log = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The database could not be reached or started. Retryable."""

    retryable = True


@dataclass(frozen=True, slots=True)
class Database:
    """A resolved PostgreSQL target. ``dsn`` may hold a password: it is kept out of the repr."""

    dsn: str = field(repr=False)
    source: Literal["embedded", "url"]
    display: str
    """Where it is, safe to print: the URL with its password masked, or the embedded data dir."""
    server: object | None = field(default=None, repr=False, compare=False)
    """The embedded server handle; holding it keeps the embedded server running."""


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe for logs and errors)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(user, safe='')}:***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def with_database(dsn: str, name: str) -> str:
    """The same server URL pointing at database ``name`` (query string, e.g. a socket host, kept)."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(name, safe=""), parts.query, parts.fragment))


def start_embedded(data_dir: Path) -> Database:
    """Start (or attach to) the embedded PostgreSQL cluster under ``data_dir``."""
    pgdata = data_dir / "pgdata"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers); the fallback is fine.
            warnings.simplefilter("ignore", UserWarning)
            import pgserver  # imported lazily: only the embedded path needs it

            server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    except Exception as exc:  # pgserver raises bare exceptions from subprocess failures
        raise DatabaseUnavailable(f"could not start the embedded PostgreSQL in {pgdata}: {exc}") from exc
    return Database(dsn=server.get_uri(), source="embedded", display=f"embedded ({pgdata})", server=server)


def resolve_database(settings: Settings) -> Database:
    """The configured server, or the embedded one when no URL is configured."""
    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
        return Database(dsn=url, source="url", display=mask_url(url))
    return start_embedded(settings.data_dir)


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Pool reset hook that skips asyncpg's reset query.

    asyncpg still rolls back an open transaction on release; what we skip is ``RESET ALL`` /
    ``pg_advisory_unlock_all()`` / ``UNLISTEN *``, which roughly halves round-trip throughput.
    This is safe because pooled connections never hold session state: advisory locks are
    transaction-scoped, and the migrator uses its own dedicated connection.
    """


async def connect(db: Database, settings: Settings) -> asyncpg.Connection:
    """One dedicated connection (for work that must not share a pooled session)."""
    try:
        return await asyncpg.connect(
            db.dsn, timeout=settings.db_connect_timeout, command_timeout=settings.db_command_timeout
        )
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(f"cannot connect to {db.display}: {type(exc).__name__}: {exc}") from None


async def create_pool(db: Database, settings: Settings) -> asyncpg.Pool:
    """A connection pool sized and timed by settings."""
    try:
        pool = await asyncpg.create_pool(
            db.dsn,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            timeout=settings.db_connect_timeout,
            command_timeout=settings.db_command_timeout,
            reset=_keep_session,
        )
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(f"cannot connect to {db.display}: {type(exc).__name__}: {exc}") from None
    assert pool is not None
    return pool
