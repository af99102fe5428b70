"""The daily model-cost budget, kept in PostgreSQL (table ``agent_budget``, migration 0005).

One row per day, where the day is the UTC date of the *database* clock (processor clocks are
never trusted, and every processor agrees on when the day turns). A model run first reserves its
maximum cost (:meth:`BudgetLedger.reserve`, one statement that succeeds only if
``spent + reserved + amount <= limit``, so concurrent runs can never reserve past the limit), then
records what it really cost (:meth:`BudgetLedger.record`, which releases the reservation). When
the spend crosses 75 % and 90 % of the limit a warning is logged, and at 100 % an error; each
exactly once per day across all processes (the level reached is stored in the row). When a
reservation no longer fits (at 100 %, or when outstanding reservations fill the rest) ``reserve``
returns None — the hard stop — and the first refusal of the day is logged once; callers use the
rules planner until the database clock reaches the next UTC day.

A process that dies between reserve and record leaves its reservation counted for the rest of the
day: the budget errs on the side of spending less. Database errors propagate (asyncpg's own,
retryable); callers treat an unreachable ledger as "no budget" and use the rules.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import asyncpg

log = logging.getLogger(__name__)

THRESHOLDS: tuple[int, ...] = (75, 90, 100)
"""Percent of the daily limit at which the ledger warns (75, 90) and stops (100)."""

_TODAY = "(now() AT TIME ZONE 'UTC')::date"

RESERVE = f"""
INSERT INTO agent_budget AS b (day, limit_usd, reserved_usd)
SELECT {_TODAY}, $1::numeric, $2::numeric
 WHERE $2::numeric <= $1::numeric
ON CONFLICT (day) DO UPDATE
   SET reserved_usd = b.reserved_usd + EXCLUDED.reserved_usd,
       limit_usd = EXCLUDED.limit_usd,
       updated_at = now()
 WHERE b.spent_usd + b.reserved_usd + EXCLUDED.reserved_usd <= EXCLUDED.limit_usd
RETURNING b.day, b.limit_usd, b.spent_usd, b.reserved_usd
"""

MARK_REFUSED = f"""
UPDATE agent_budget
   SET refused = true, updated_at = now()
 WHERE day = {_TODAY} AND NOT refused
RETURNING day, limit_usd, spent_usd, reserved_usd
"""

RECORD = """
WITH before AS (
    SELECT day, warned_pct FROM agent_budget WHERE day = $1 FOR UPDATE
)
UPDATE agent_budget AS b
   SET spent_usd = b.spent_usd + $3::numeric,
       reserved_usd = greatest(b.reserved_usd - $2::numeric, 0),
       runs = b.runs + 1,
       warned_pct = greatest(
           b.warned_pct,
           CASE
               WHEN b.spent_usd + $3::numeric >= b.limit_usd THEN 100
               WHEN b.spent_usd + $3::numeric >= 0.90 * b.limit_usd THEN 90
               WHEN b.spent_usd + $3::numeric >= 0.75 * b.limit_usd THEN 75
               ELSE 0
           END),
       updated_at = now()
  FROM before
 WHERE b.day = before.day
RETURNING b.day, b.limit_usd, b.spent_usd, b.reserved_usd, before.warned_pct AS level_before,
          b.warned_pct AS level_after
"""

STATUS = f"""
SELECT {_TODAY} AS day,
       coalesce(b.limit_usd, $1::numeric) AS limit_usd,
       coalesce(b.spent_usd, 0) AS spent_usd,
       coalesce(b.reserved_usd, 0) AS reserved_usd
  FROM (SELECT 1) AS one
  LEFT JOIN agent_budget AS b ON b.day = {_TODAY}
"""


@dataclass(frozen=True, slots=True)
class Reservation:
    """Money set aside for one run on ``day`` (the database's UTC day when it was reserved)."""

    day: date
    amount: Decimal


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    day: date
    limit: Decimal
    spent: Decimal
    reserved: Decimal

    @property
    def used_fraction(self) -> float:
        """Spent share of the limit (1.0 when the limit is zero)."""
        return float(self.spent / self.limit) if self.limit > 0 else 1.0


def _status(row: asyncpg.Record) -> BudgetStatus:
    return BudgetStatus(
        day=row["day"], limit=row["limit_usd"], spent=row["spent_usd"], reserved=row["reserved_usd"]
    )


class BudgetLedger:
    """Reserve and record model spend against a daily limit in USD."""

    def __init__(self, pool: asyncpg.Pool, daily_limit: Decimal) -> None:
        if daily_limit < 0:
            raise ValueError("daily_limit must not be negative")
        self._pool = pool
        self._limit = daily_limit

    @property
    def daily_limit(self) -> Decimal:
        return self._limit

    async def reserve(self, amount: Decimal) -> Reservation | None:
        """Set ``amount`` aside for a run today; None when it does not fit (the hard stop)."""
        if amount < 0:
            raise ValueError("amount must not be negative")
        row = await self._pool.fetchrow(RESERVE, self._limit, amount)
        if row is not None:
            return Reservation(day=row["day"], amount=amount)
        marked = await self._pool.fetchrow(MARK_REFUSED)
        if marked is not None:
            status = _status(marked)
            log.error(
                "daily model budget full on %s (spent %s + reserved %s of %s USD): model runs are "
                "refused and the rules planner decides until the next UTC day",
                status.day,
                status.spent,
                status.reserved,
                status.limit,
            )
        return None

    async def record(self, reservation: Reservation, actual: Decimal) -> BudgetStatus:
        """Record a run's real cost and release its reservation; log thresholds crossed."""
        if actual < 0:
            raise ValueError("actual must not be negative")
        row = await self._pool.fetchrow(RECORD, reservation.day, reservation.amount, actual)
        if row is None:  # the row is created by reserve(); nothing to release without it
            raise LookupError(f"no budget row for {reservation.day}")
        status = _status(row)
        before, after = row["level_before"], row["level_after"]
        for level in THRESHOLDS:
            if before < level <= after:
                self._announce(level, status)
        return status

    async def status(self) -> BudgetStatus:
        """Today's figures (zero spend if nothing was reserved yet today)."""
        row = await self._pool.fetchrow(STATUS, self._limit)
        assert row is not None  # the query always returns exactly one row
        return _status(row)

    @staticmethod
    def _announce(level: int, status: BudgetStatus) -> None:
        if level >= 100:
            log.error(
                "daily model budget exhausted on %s: spent %s of %s USD; "
                "the rules planner decides until the next UTC day",
                status.day,
                status.spent,
                status.limit,
            )
        else:
            log.warning(
                "daily model budget %d%% used on %s: spent %s of %s USD",
                level,
                status.day,
                status.spent,
                status.limit,
            )
