import asyncpg
import pytest
from pydantic import SecretStr

from logwarden import db
from logwarden.config import Settings

pytestmark = pytest.mark.anyio


def test_mask_url_hides_the_password_only() -> None:
    assert db.mask_url("postgresql://app:s3cret@db.internal:5433/logs?sslmode=require") == (
        "postgresql://app:***@db.internal:5433/logs?sslmode=require"
    )
    assert db.mask_url("postgresql://app@db/logs") == "postgresql://app@db/logs"


def test_with_database_keeps_socket_host_in_query() -> None:
    dsn = "postgresql://postgres:@/postgres?host=/tmp/sock"
    assert db.with_database(dsn, "lw_1") == "postgresql://postgres:@/lw_1?host=/tmp/sock"


def test_resolve_url_is_masked_and_not_in_repr() -> None:
    s = Settings(database_url=SecretStr("postgresql://app:s3cret@db/logs"))
    target = db.resolve_database(s)
    assert target.source == "url"
    assert "s3cret" not in target.display
    assert "s3cret" not in repr(target)


async def test_pool_round_trip_and_release_rolls_back(pool: asyncpg.Pool) -> None:
    assert await pool.fetchval("SELECT 1") == 1
    # A connection released with an open, unmanaged transaction must come back clean.
    conn = await pool.acquire()
    await conn.execute("BEGIN")
    await conn.execute("CREATE TEMP TABLE scratch (x int)")
    await pool.release(conn)
    async with pool.acquire() as again:
        assert not again.is_in_transaction()


async def test_unreachable_server_is_a_retryable_error(tmp_path: object) -> None:
    s = Settings(database_url=SecretStr("postgresql://app:s3cret@127.0.0.1:1/logs"), db_connect_timeout=2)
    with pytest.raises(db.DatabaseUnavailable) as info:
        await db.create_pool(db.resolve_database(s), s)
    assert info.value.retryable
    assert "s3cret" not in str(info.value)
