"""The daily budget ledger against a real PostgreSQL: thresholds, hard stop, concurrency."""

import logging
from decimal import Decimal

import anyio
import asyncpg
import pytest

from agents.budget import BudgetLedger, Reservation

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

D = Decimal


def _budget_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "agents.budget"]


async def test_reserve_then_record_moves_money_from_reserved_to_spent(pool: asyncpg.Pool) -> None:
    ledger = BudgetLedger(pool, D("1.00"))
    reservation = await ledger.reserve(D("0.10"))
    assert reservation is not None
    status = await ledger.status()
    assert (status.spent, status.reserved, status.limit) == (D("0"), D("0.10"), D("1.00"))
    assert status.day == reservation.day
    status = await ledger.record(reservation, D("0.04"))
    assert (status.spent, status.reserved) == (D("0.04"), D("0"))
    assert await pool.fetchval("SELECT runs FROM agent_budget") == 1


async def test_day_is_the_database_utc_date(pool: asyncpg.Pool) -> None:
    ledger = BudgetLedger(pool, D("1"))
    reservation = await ledger.reserve(D("0.5"))
    assert reservation is not None
    assert reservation.day == await pool.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")


async def test_yesterday_spending_does_not_count_today(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "INSERT INTO agent_budget (day, limit_usd, spent_usd, warned_pct, refused)"
        " VALUES ((now() AT TIME ZONE 'UTC')::date - 1, 1, 1, 100, true)"
    )
    ledger = BudgetLedger(pool, D("1"))
    assert await ledger.reserve(D("0.9")) is not None
    assert (await ledger.status()).spent == D("0")


async def test_warnings_at_75_and_90_percent_and_a_hard_stop_at_100_each_logged_once(
    pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agents.budget")
    ledger = BudgetLedger(pool, D("1.00"))

    async def spend(amount: str) -> None:
        reservation = await ledger.reserve(D(amount))
        assert reservation is not None
        await ledger.record(reservation, D(amount))

    await spend("0.70")
    assert _budget_logs(caplog) == []
    await spend("0.05")  # 75 %
    await spend("0.01")  # 76 %: no second warning
    assert len(_budget_logs(caplog)) == 1
    assert "75% used" in _budget_logs(caplog)[0]
    await spend("0.14")  # 90 %
    assert "90% used" in _budget_logs(caplog)[1]
    await spend("0.05")  # 95 %
    await spend("0.04")  # 99 %
    assert len(_budget_logs(caplog)) == 2
    await spend("0.01")  # 100 %
    logs = _budget_logs(caplog)
    assert len(logs) == 3
    assert "exhausted" in logs[2]
    assert caplog.records[-1].levelno == logging.ERROR
    # the hard stop: nothing more may be reserved today, and the refusal is logged once
    assert await ledger.reserve(D("0.01")) is None
    assert await ledger.reserve(D("0.01")) is None
    logs = _budget_logs(caplog)
    assert len(logs) == 4
    assert "refused" in logs[3]


async def test_a_jump_past_several_thresholds_logs_each_once(
    pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agents.budget")
    ledger = BudgetLedger(pool, D("1.00"))
    reservation = await ledger.reserve(D("0.50"))
    assert reservation is not None
    await ledger.record(reservation, D("0.95"))  # the real cost was more than reserved
    logs = _budget_logs(caplog)
    assert [("75%" in m, "90%" in m) for m in logs] == [(True, False), (False, True)]


async def test_reservations_never_exceed_the_limit(pool: asyncpg.Pool) -> None:
    ledger = BudgetLedger(pool, D("1.00"))
    assert await ledger.reserve(D("0.60")) is not None
    assert await ledger.reserve(D("0.50")) is None  # 0.60 + 0.50 > 1.00, though nothing is spent
    assert await ledger.reserve(D("0.40")) is not None
    assert await ledger.reserve(D("1.01")) is None  # larger than the whole day


async def test_concurrent_spends_do_not_overspend(pool: asyncpg.Pool, database_url: str) -> None:
    ledger = BudgetLedger(pool, D("1.00"))
    granted: list[Reservation] = []

    async def run() -> None:
        reservation = await ledger.reserve(D("0.07"))
        if reservation is not None:
            granted.append(reservation)
            await ledger.record(reservation, D("0.07"))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(40):
                tg.start_soon(run)
    assert len(granted) == 14  # floor(1.00 / 0.07)
    status = await ledger.status()
    assert status.spent == D("0.98")
    assert status.reserved == D("0")
    assert status.spent <= status.limit


async def test_concurrent_threshold_crossings_warn_once(
    pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agents.budget")
    ledger = BudgetLedger(pool, D("10.00"))
    reservations = [await ledger.reserve(D("0.10")) for _ in range(40)]
    assert all(r is not None for r in reservations)

    async def record(r: Reservation | None) -> None:
        assert r is not None
        await ledger.record(r, D("0.20"))  # 40 × 0.20 = 8.00 = 80 %

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for r in reservations:
                tg.start_soon(record, r)
    assert len(_budget_logs(caplog)) == 1
    assert (await ledger.status()).spent == D("8.00")


async def test_negative_amounts_are_refused(pool: asyncpg.Pool) -> None:
    ledger = BudgetLedger(pool, D("1"))
    with pytest.raises(ValueError, match="negative"):
        await ledger.reserve(D("-1"))
    with pytest.raises(ValueError, match="negative"):
        BudgetLedger(pool, D("-1"))
