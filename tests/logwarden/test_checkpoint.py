"""A processor's checkpoint: the detector snapshot goes with the anomaly events it emitted that were
not claimed yet, and with the ongoing anomalies, so a crash right after a snapshot loses no alert
and repeat pages go on after a restart."""

from __future__ import annotations

import asyncpg
import pytest

from detector import Detector
from detector.dedup import Dedup
from detector.models import EventKind
from detector.snapshot import Checkpoint, load_checkpoint
from logwarden.pipeline import Pipeline, PipelineConfig
from logwarden.telemetry import Telemetry
from tests.e2e.streams import BURST_SERVICE, incident

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

PID = "proc-a"


def pipeline(pool: asyncpg.Pool, detector: Detector) -> Pipeline:
    config = PipelineConfig(processor_id=PID, advance_with_clock=False)
    return Pipeline(detector, Dedup(pool), pool, Telemetry(), config, clock=lambda: 1_000.0)


async def test_unclaimed_anomalies_survive_a_crash_after_the_snapshot(pool: asyncpg.Pool) -> None:
    first = pipeline(pool, Detector())
    try:
        await first.ingest_lines(incident().until_burst_ends, wait=True)
        assert first.backlog > 0  # the onset is emitted; nobody has claimed it (no claimer runs)
        await first.save_snapshot()
    finally:
        first.close()  # "crash": the backlog is gone with the process

    checkpoint = await load_checkpoint(pool, PID)
    assert checkpoint is not None
    assert [e.kind for e in checkpoint.unclaimed] == [EventKind.ONSET]
    assert [e.service for e in checkpoint.ongoing] == [BURST_SERVICE]

    second = pipeline(pool, checkpoint.detector)
    try:
        second.restore(checkpoint.unclaimed, checkpoint.ongoing)
        assert await second.claim_pending() == 1
        rows = await pool.fetch("SELECT service, status FROM incidents")
        assert [tuple(r) for r in rows] == [(BURST_SERVICE, "open")]
        # the restored detector does not emit the onset again: the saved event was the only copy
        await second.ingest_lines(b"", wait=True)
        assert second.backlog == 0
        # and the ongoing anomaly is re-claimed like before the restart
        assert second.reclaim_ongoing() == 1
        await second.claim_pending()
        assert await pool.fetchval("SELECT count(*) FROM incidents") == 1
    finally:
        second.close()


async def checkpointed(pool: asyncpg.Pool, body: bytes, *, end_of_input: bool) -> Checkpoint:
    """Run ``body`` through a pipeline, claim everything, save, and load what was saved."""
    p = pipeline(pool, Detector())
    try:
        await p.ingest_lines(body, wait=True)
        if end_of_input:
            await p.flush()
        await p.claim_pending()
        await p.save_snapshot()
    finally:
        p.close()
    checkpoint = await load_checkpoint(pool, PID)
    assert checkpoint is not None
    return checkpoint


async def test_a_claimed_anomaly_is_not_saved_again(pool: asyncpg.Pool) -> None:
    checkpoint = await checkpointed(pool, incident().until_burst_ends, end_of_input=False)
    assert checkpoint.unclaimed == []
    assert [e.service for e in checkpoint.ongoing] == [BURST_SERVICE]


async def test_a_recovered_anomaly_is_no_longer_ongoing(pool: asyncpg.Pool) -> None:
    checkpoint = await checkpointed(pool, incident().whole, end_of_input=True)
    assert (checkpoint.unclaimed, checkpoint.ongoing) == ([], [])
    statuses = await pool.fetch("SELECT status FROM incidents")
    assert [r["status"] for r in statuses] == ["resolved"]
