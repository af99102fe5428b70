"""The claimer wakes the local worker when its claims create outbox jobs, and only then."""

from __future__ import annotations

import asyncpg
import pytest

from detector import Detector
from detector.dedup import Dedup
from logwarden.pipeline import Pipeline, PipelineConfig
from logwarden.telemetry import Telemetry
from tests.e2e.streams import incident

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def test_claims_that_create_jobs_wake_the_worker(pool: asyncpg.Pool) -> None:
    config = PipelineConfig(processor_id="p", advance_with_clock=False)
    p = Pipeline(Detector(), Dedup(pool), pool, Telemetry(), config, clock=lambda: 1_000.0)
    wakes: list[int] = []
    p.job_listeners.append(lambda: wakes.append(1))
    try:
        await p.ingest_lines(incident().until_burst_ends, wait=True)
        assert await p.claim_pending() == 1  # the onset: a new incident and its open job
        assert wakes == [1]
        assert p.reclaim_ongoing() == 1
        assert await p.claim_pending() == 1  # a duplicate inside the window: no job, no wake
        assert wakes == [1]
    finally:
        p.close()
