"""Test helpers for the dedup layer: anomaly factories and moving database time.

Time is never waited for: windows, repeat intervals and leases are moved into the past with an
UPDATE, which is exactly what the passage of time looks like to the database clock.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import asyncpg

from detector.dedup import Executor
from detector.models import AnomalyEvent, EventKind, Severity, Signal, fingerprint


def anomaly(
    kind: EventKind | str = EventKind.ONSET,
    severity: Severity | str = Severity.WARNING,
    *,
    project: str = "shop",
    service: str = "checkout",
    signal: Signal = Signal.ERROR_RATE,
    window_start: float = 1_700_000_000.0,
    messages: tuple[str, ...] = ("timeout after <n>ms",),
) -> AnomalyEvent:
    """A well-formed anomaly event; only what matters to dedup is a parameter."""
    sev = Severity.parse(severity) if isinstance(severity, str) else severity
    return AnomalyEvent(
        kind=EventKind(kind),
        project=project,
        service=service,
        signal=signal,
        severity=sev,
        fingerprint=fingerprint(project, service, signal),
        window_start=window_start,
        window_end=window_start + 1.0,
        error_count=40,
        total_count=200,
        observed_rate=0.2,
        baseline_mean=0.01,
        baseline_std=0.005,
        z=38.0,
        ewma=0.05,
        rate_of_change=19.0,
        score=0.99,
        messages=messages,
    )


async def expire_window(db: Executor, fp: str) -> None:
    """The dedup window of ``fp`` has passed (and with it the hold on its resolve job)."""
    await db.execute(
        """
        WITH c AS (
            UPDATE incident_claims SET window_until = now() - interval '1 second'
            WHERE fingerprint = $1 RETURNING resolve_job_id
        )
        UPDATE notification_jobs SET next_attempt_at = now() - interval '1 second'
        WHERE id IN (SELECT resolve_job_id FROM c) AND status = 'pending'
        """,
        fp,
    )


async def age_last_page(db: Executor, fp: str, seconds: float) -> None:
    """The last page for ``fp`` happened ``seconds`` earlier than it did."""
    await db.execute(
        "UPDATE incident_claims SET paged_at = paged_at - make_interval(secs => $2) WHERE fingerprint = $1",
        fp,
        seconds,
    )


async def expire_lease(db: Executor, job_id: int) -> None:
    """The lease on ``job_id`` has run out (a leased job is next due when its lease expires)."""
    await db.execute(
        """
        UPDATE notification_jobs
        SET lease_expires_at = now() - interval '1 second', next_attempt_at = now() - interval '1 second'
        WHERE id = $1
        """,
        job_id,
    )


async def jobs_of(db: Executor, fp: str) -> list[tuple[str, str]]:
    """(kind, status) of every job of every incident of ``fp``, in creation order."""
    rows = await db.fetch(
        """
        SELECT j.kind, j.status FROM notification_jobs j JOIN incidents i ON i.id = j.incident_id
        WHERE i.fingerprint = $1 ORDER BY j.id
        """,
        fp,
    )
    return [(r["kind"], r["status"]) for r in rows]


async def incidents_of(db: Executor, fp: str) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM incidents WHERE fingerprint = $1 ORDER BY id", fp)


async def job_kinds(db: Executor) -> Counter[str]:
    rows = await db.fetch("SELECT kind FROM notification_jobs")
    return Counter(r["kind"] for r in rows)


DANGLING = """
SELECT 'incident_claims' AS source, c.fingerprint AS ref FROM incident_claims c
WHERE NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = c.incident_id AND i.fingerprint = c.fingerprint)
UNION ALL
SELECT 'notification_jobs', j.id::text FROM notification_jobs j
WHERE NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = j.incident_id)
UNION ALL
SELECT 'incident_claims.resolve_job_id', c.fingerprint FROM incident_claims c
WHERE c.resolve_job_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM notification_jobs j
    WHERE j.id = c.resolve_job_id AND j.incident_id = c.incident_id AND j.kind = 'resolve')
"""


async def assert_references_hold(db: Executor) -> None:
    """Every claim row points at an incident of its own fingerprint (and at that incident's
    resolve job, if any), and every job at an existing incident: what the foreign keys dropped by
    migration 0007 would have checked, and a little more."""
    dangling = await db.fetch(DANGLING)
    assert [tuple(r) for r in dangling] == []


class Recorder:
    """A pool or connection that records the statements run through its ``fetch`` (and runs
    them); everything else passes through."""

    def __init__(self, db: Executor) -> None:
        self.db = db
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        self.calls.append((sql, args))
        return await self.db.fetch(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)
