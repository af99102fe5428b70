"""Schema migrations: ``migrations/NNNN_verb_noun.sql``, forward only, applied in order.

Each migration runs in its own transaction together with its row in ``schema_migrations``, so a
crash leaves it either fully applied or not at all. The whole run holds a PostgreSQL advisory lock
on a dedicated connection (closed afterwards, so the lock can never leak into a pool): several
processes starting at once apply each migration exactly once. Running again is a no-op.

Errors (all permanent, all :class:`MigrationError`):
- :class:`UnknownMigrationError`: the database has a migration this code does not know (it was
  migrated by a newer logwarden); refusing is safer than running old code against a newer schema.
- :class:`ChecksumMismatchError`: an applied migration's file has changed since it was applied.
- :class:`BadMigrationError`: a file in ``migrations/`` is misnamed or numbered twice.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from importlib.abc import Traversable

import asyncpg

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

# A fixed 64-bit key, derived once from the project name; other applications sharing the
# database would have to choose the same number by accident to collide.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"logwarden:migrations").digest()[:8], "big", signed=True)

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""
SELECT_APPLIED = "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"
TABLE_EXISTS = "SELECT to_regclass('schema_migrations') IS NOT NULL"
INSERT_APPLIED = "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"


class MigrationError(Exception):
    """The schema cannot be brought up to date by this code. Permanent."""

    retryable = False


class UnknownMigrationError(MigrationError):
    """The database has migrations this code does not know."""


class ChecksumMismatchError(MigrationError):
    """An applied migration's SQL differs from the file shipped with this code."""


class BadMigrationError(MigrationError):
    """A migration file is misnamed or its number is used twice."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True, slots=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str
    applied_at: datetime

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    applied: tuple[AppliedMigration, ...]
    pending: tuple[Migration, ...]
    unknown: tuple[AppliedMigration, ...]


def discover(root: Traversable | None = None) -> tuple[Migration, ...]:
    """The migrations in ``root`` (default: the shipped ``migrations`` package), in version order."""
    found: dict[int, Migration] = {}
    for entry in (root if root is not None else resources.files("migrations")).iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME.match(entry.name)
        if match is None:
            raise BadMigrationError(f"migration file {entry.name!r} must be named NNNN_verb_noun.sql")
        version = int(match.group(1))
        if version in found:
            raise BadMigrationError(f"migration number {version:04d} is used twice")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return tuple(found[v] for v in sorted(found))


async def _applied(conn: asyncpg.Connection) -> list[AppliedMigration]:
    if not await conn.fetchval(TABLE_EXISTS):
        return []
    rows = await conn.fetch(SELECT_APPLIED)
    return [AppliedMigration(r["version"], r["name"], r["checksum"], r["applied_at"]) for r in rows]


def _compare(known: tuple[Migration, ...], applied: list[AppliedMigration]) -> MigrationStatus:
    by_version = {m.version: m for m in known}
    unknown = tuple(a for a in applied if a.version not in by_version)
    done = {a.version for a in applied}
    return MigrationStatus(
        applied=tuple(a for a in applied if a.version in by_version),
        pending=tuple(m for m in known if m.version not in done),
        unknown=unknown,
    )


def _check(status: MigrationStatus, known: tuple[Migration, ...]) -> None:
    if status.unknown:
        labels = ", ".join(a.label for a in status.unknown)
        raise UnknownMigrationError(
            f"the database has migrations this logwarden does not know ({labels}); "
            "it was migrated by a newer version: upgrade logwarden or use another database"
        )
    by_version = {m.version: m for m in known}
    changed = [a.label for a in status.applied if by_version[a.version].checksum != a.checksum]
    if changed:
        raise ChecksumMismatchError(
            f"applied migrations were edited after they ran: {', '.join(changed)}; "
            "migrations are forward only: add a new migration instead"
        )


async def status(conn: asyncpg.Connection, known: tuple[Migration, ...] | None = None) -> MigrationStatus:
    """Applied, pending and unknown migrations (reads only, takes no lock)."""
    known = discover() if known is None else known
    return _compare(known, await _applied(conn))


async def migrate(conn: asyncpg.Connection, known: tuple[Migration, ...] | None = None) -> list[Migration]:
    """Apply every pending migration; returns what this call applied (empty when up to date).

    ``conn`` must be a dedicated connection, not one from a pool: the advisory lock is held on
    its session for the duration of the run and released before returning.
    """
    known = discover() if known is None else known
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(CREATE_TABLE)
        current = _compare(known, await _applied(conn))
        _check(current, known)
        done: list[Migration] = []
        for migration in current.pending:
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(INSERT_APPLIED, migration.version, migration.name, migration.checksum)
            done.append(migration)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
