"""Shared fixtures: a real PostgreSQL for every test that touches storage.

The server is ``LOGWARDEN_TEST_DATABASE_URL`` when set (an admin URL; the suite creates and drops
its own databases there), else an embedded PostgreSQL started once per session in a temporary
directory. All migrations are applied once to a template database; each test gets a fresh copy
(``CREATE DATABASE … TEMPLATE``), which takes milliseconds.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from logwarden import db as dbmod
from logwarden import migrator
from logwarden.config import Settings

_counter = itertools.count()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    """An admin URL for the test server (it may create and drop databases)."""
    configured = Settings().test_database_url
    if configured is not None:
        yield configured.get_secret_value()
        return
    with tempfile.TemporaryDirectory(prefix="logwarden-test-pg-") as tmp:
        embedded = dbmod.start_embedded(Path(tmp))
        yield embedded.dsn
        del embedded


async def _admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _migrate(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await migrator.migrate(conn)
    finally:
        await conn.close()


def _unique(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{next(_counter)}"


@pytest.fixture(scope="session")
def template_database(pg_admin_dsn: str) -> Iterator[str]:
    """Name of a fully migrated database that per-test databases are copied from."""
    name = _unique("lw_template")
    asyncio.run(_admin(pg_admin_dsn, f'CREATE DATABASE "{name}"'))
    asyncio.run(_migrate(dbmod.with_database(pg_admin_dsn, name)))
    yield name
    asyncio.run(_admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def database_url(pg_admin_dsn: str, template_database: str) -> Iterator[str]:
    """URL of a fresh, fully migrated database for this test only."""
    name = _unique("lw_test")
    asyncio.run(_admin(pg_admin_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    yield dbmod.with_database(pg_admin_dsn, name)
    asyncio.run(_admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def empty_database_url(pg_admin_dsn: str) -> Iterator[str]:
    """URL of a fresh database with no schema at all (for migration tests)."""
    name = _unique("lw_empty")
    asyncio.run(_admin(pg_admin_dsn, f'CREATE DATABASE "{name}"'))
    yield dbmod.with_database(pg_admin_dsn, name)
    asyncio.run(_admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings pointing at this test's database (no environment involved)."""
    from pydantic import SecretStr

    return Settings(database_url=SecretStr(database_url), data_dir=tmp_path / "data")


@pytest.fixture
async def pool(database_url: str, settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """An asyncpg pool on this test's database, created the way the service creates it."""
    database = dbmod.resolve_database(settings)
    p = await dbmod.create_pool(database, settings)
    try:
        yield p
    finally:
        await p.close()
