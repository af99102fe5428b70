"""Stopping a processor that runs on event time (old logs, ``--event-clock``) closes its buckets
without declaring anything recovered: the processor stopping is not the service recovering."""

from __future__ import annotations

import anyio
import asyncpg
import pytest

from logwarden.config import Settings
from tests.e2e import streams, support

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def test_stop_on_event_time_closes_buckets_and_keeps_the_incident_open(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    stream = streams.incident(burst_s=3)  # the burst is still in open buckets when we stop
    with anyio.fail_after(60):
        async with support.running(
            support.e2e_settings(settings), serve_http=False, run_worker=False
        ) as service:
            await service.pipeline.ingest_lines(stream.until_burst_ends)
            assert await support.incidents(pool) == []

    [incident] = await support.incidents(pool)
    assert incident["status"] == "open"
    assert [tuple(r) for r in await pool.fetch("SELECT kind, status FROM notification_jobs")] == [
        ("open", "pending")
    ]
    assert await pool.fetchval("SELECT count(*) FROM detector_state") == 1
