import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from logwarden import migrator
from logwarden.cli import main

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def empty_conn(empty_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(empty_database_url, timeout=10)
    try:
        yield conn
    finally:
        await conn.close()


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


async def test_every_migration_applies_to_an_empty_database(empty_conn: asyncpg.Connection) -> None:
    known = migrator.discover()
    assert known, "migrations/ ships no migration"
    assert [m.version for m in known] == sorted({m.version for m in known})
    applied = await migrator.migrate(empty_conn)
    assert [m.label for m in applied] == [m.label for m in known]
    state = await migrator.status(empty_conn)
    assert state.pending == ()
    assert state.unknown == ()
    assert [a.label for a in state.applied] == [m.label for m in known]
    assert {"schema_migrations", "detector_state"} <= await _tables(empty_conn)


async def test_second_run_is_a_no_op(empty_conn: asyncpg.Connection) -> None:
    await migrator.migrate(empty_conn)
    before = await empty_conn.fetch("SELECT version, applied_at FROM schema_migrations ORDER BY version")
    assert await migrator.migrate(empty_conn) == []
    after = await empty_conn.fetch("SELECT version, applied_at FROM schema_migrations ORDER BY version")
    assert before == after


async def test_unknown_newer_migration_is_refused(empty_conn: asyncpg.Connection) -> None:
    await migrator.migrate(empty_conn)
    await empty_conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'from_the_future', 'x')"
    )
    with pytest.raises(migrator.UnknownMigrationError, match="9999_from_the_future"):
        await migrator.migrate(empty_conn)
    state = await migrator.status(empty_conn)
    assert [a.label for a in state.unknown] == ["9999_from_the_future"]


async def test_edited_migration_is_refused(empty_conn: asyncpg.Connection) -> None:
    await migrator.migrate(empty_conn)
    await empty_conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    with pytest.raises(migrator.ChecksumMismatchError, match="0001_"):
        await migrator.migrate(empty_conn)


async def test_failing_migration_leaves_nothing_of_itself(empty_conn: asyncpg.Connection) -> None:
    known = (
        migrator.Migration(1, "create_good", "CREATE TABLE good (x int)"),
        migrator.Migration(2, "create_bad", "CREATE TABLE bad (x int); SELECT 1 / 0"),
    )
    with pytest.raises(asyncpg.DivisionByZeroError):
        await migrator.migrate(empty_conn, known)
    assert "good" in await _tables(empty_conn)
    assert "bad" not in await _tables(empty_conn)
    state = await migrator.status(empty_conn, known)
    assert [m.label for m in state.pending] == ["0002_create_bad"]
    # The advisory lock was released even though the run failed.
    assert await empty_conn.fetchval("SELECT pg_try_advisory_lock($1)", migrator.LOCK_KEY)


def test_misnamed_or_duplicate_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_create_a.sql").write_text("SELECT 1")
    (tmp_path / "1_oops.sql").write_text("SELECT 1")
    with pytest.raises(migrator.BadMigrationError, match=r"1_oops\.sql"):
        migrator.discover(tmp_path)
    (tmp_path / "1_oops.sql").unlink()
    (tmp_path / "0001_create_b.sql").write_text("SELECT 1")
    with pytest.raises(migrator.BadMigrationError, match="0001 is used twice"):
        migrator.discover(tmp_path)


async def test_two_processes_migrating_at_once_end_with_one_schema(
    empty_database_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGWARDEN_")}
    env["LOGWARDEN_DATABASE_URL"] = empty_database_url
    env["LOGWARDEN_DATA_DIR"] = str(tmp_path)
    cmd = [sys.executable, "-m", "logwarden", "db", "migrate"]
    procs = [
        await asyncio.create_subprocess_exec(
            *cmd, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(2)
    ]
    results = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    applied_lines = [
        line for out, _ in results for line in out.decode().splitlines() if line.startswith("applied")
    ]
    known = migrator.discover()
    assert sorted(applied_lines) == sorted(f"applied {m.label}" for m in known)
    conn = await asyncpg.connect(empty_database_url, timeout=10)
    try:
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == [m.version for m in known]
        assert (await migrator.status(conn)).pending == ()
    finally:
        await conn.close()


def test_cli_status_masks_the_password(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Trust authentication ignores the password, so a made-up one still connects.
    parts = urlsplit(empty_database_url)
    host = parts.netloc.rpartition("@")[2]
    url = urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}:hunter2@{host}"))
    monkeypatch.setenv("LOGWARDEN_DATABASE_URL", url)
    assert main(["db", "status"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    assert "pending  0001_create_detector_state" in out
    assert main(["db", "migrate"]) == 0
    assert main(["db", "status"]) == 0
    out = capsys.readouterr().out
    assert "0 pending" in out


def test_cli_config_error_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOGWARDEN_DB_POOL_MAX_SIZE", "none")
    assert main(["db", "status"]) == 2
    assert "LOGWARDEN_DB_POOL_MAX_SIZE" in capsys.readouterr().err
