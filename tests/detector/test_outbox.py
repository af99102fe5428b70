"""The outbox on a real PostgreSQL: leases, fencing, retries, dead letters, per-incident order."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from detector.dedup import Dedup, DedupConfig
from detector.dedup_errors import LeaseLost
from detector.models import JobKind, JobStatus
from detector.outbox import Outbox
from tests.detector.support import anomaly, expire_lease

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

CONFIG = DedupConfig(max_attempts=3, backoff_base=10, backoff_cap=25)
DELAY = "SELECT extract(epoch FROM next_attempt_at - updated_at) FROM notification_jobs WHERE id = $1"


async def _open_incidents(pool: asyncpg.Pool, n: int) -> list[int]:
    results = await Dedup(pool).claim_many([anomaly(service=f"svc-{i}") for i in range(n)])
    return [r.incident_id for r in results if r.incident_id is not None]


async def test_lease_then_complete(pool: asyncpg.Pool) -> None:
    [incident_id] = await _open_incidents(pool, 1)
    worker = Outbox(pool, "w1", CONFIG)
    [job] = await worker.lease(10, lease_for=60)
    assert (job.incident_id, job.kind, job.status, job.attempts) == (incident_id, JobKind.OPEN, "leased", 1)
    assert (job.lease_owner, job.lease_token) == ("w1", 1)
    assert job.lease_expires_at is not None
    assert await worker.lease(10, lease_for=60) == []  # leased jobs are not handed out twice
    incident = await worker.incident(job)
    assert incident.id == incident_id
    assert incident.latest is not None
    done = await worker.complete(job, {"slack": "ts-1", "note": "nul\x00"})
    assert (done.status, done.result, done.lease_owner) == (
        JobStatus.DONE,
        {"slack": "ts-1", "note": "nul\ufffd"},
        None,
    )
    assert done.finished_at is not None
    with pytest.raises(LeaseLost):
        await worker.complete(job, {"again": True})


async def test_concurrent_workers_never_share_a_job(pool: asyncpg.Pool) -> None:
    await _open_incidents(pool, 30)
    async with pool.acquire() as c1, pool.acquire() as c2, pool.acquire() as c3:
        workers = [Outbox(c, f"w{i}", CONFIG) for i, c in enumerate((c1, c2, c3))]
        batches = await asyncio.gather(*(w.lease(12, lease_for=60) for w in workers))
    ids = [j.id for batch in batches for j in batch]
    assert len(ids) == len(set(ids)) == 30
    for worker, batch in zip(workers, batches, strict=True):
        assert {j.lease_owner for j in batch} <= {worker.owner}


async def test_jobs_of_one_incident_are_handed_out_in_order(pool: asyncpg.Pool) -> None:
    dedup = Dedup(pool, DedupConfig(window=0))
    await dedup.claim_many([anomaly(), anomaly("escalation", "critical"), anomaly("recovery")])
    worker = Outbox(pool, "w", CONFIG)
    kinds = []
    while jobs := await worker.lease(10, lease_for=60):
        assert len(jobs) == 1  # never the next one while the previous is unfinished
        kinds.append(jobs[0].kind)
        await worker.complete(jobs[0], {})
    assert kinds == [JobKind.OPEN, JobKind.ESCALATE, JobKind.RESOLVE]


async def test_held_resolve_job_waits_for_the_window(pool: asyncpg.Pool) -> None:
    dedup = Dedup(pool)
    await dedup.claim(anomaly())
    worker = Outbox(pool, "w", CONFIG)
    [opened] = await worker.lease(10, lease_for=60)
    await worker.complete(opened, {})
    await dedup.claim(anomaly("recovery"))
    assert await worker.lease(10, lease_for=60) == []
    # a worker at the very end of the window takes the resolve job ...
    await pool.execute("UPDATE notification_jobs SET next_attempt_at = now() WHERE kind = 'resolve'")
    [resolve] = await worker.lease(10, lease_for=60)
    assert resolve.kind is JobKind.RESOLVE
    # ... so it can no longer be cancelled: an onset still inside the window is a new incident
    again = await dedup.claim(anomaly())
    assert again.reason == "new_incident"
    assert again.incident_id != resolve.incident_id


async def test_worker_dies_holding_a_lease_and_another_completes_exactly_once(pool: asyncpg.Pool) -> None:
    await _open_incidents(pool, 1)
    dead, alive = Outbox(pool, "dead", CONFIG), Outbox(pool, "alive", CONFIG)
    [lost] = await dead.lease(1, lease_for=300)
    assert await alive.lease(1, lease_for=300) == []  # not before the lease expires
    await expire_lease(pool, lost.id)
    [taken] = await alive.lease(1, lease_for=300)
    assert (taken.id, taken.attempts, taken.lease_token, taken.lease_owner) == (lost.id, 2, 2, "alive")
    # the first worker comes back to life: fenced off, whatever it tries
    for late in (dead.complete(lost, {"by": "dead"}), dead.fail(lost, True, "x"), dead.release(lost)):
        with pytest.raises(LeaseLost):
            await late
    done = await alive.complete(taken, {"by": "alive"})
    assert (done.status, done.result) == (JobStatus.DONE, {"by": "alive"})
    with pytest.raises(LeaseLost):
        await alive.complete(taken, {"by": "alive, twice"})
    row = await pool.fetchrow(
        "SELECT status, result::text, attempts FROM notification_jobs WHERE id = $1", lost.id
    )
    assert (row["status"], row["result"], row["attempts"]) == ("done", '{"by": "alive"}', 2)


async def test_expired_lease_not_taken_over_can_still_complete(pool: asyncpg.Pool) -> None:
    await _open_incidents(pool, 1)
    slow = Outbox(pool, "slow", CONFIG)
    [job] = await slow.lease(1, lease_for=300)
    await expire_lease(pool, job.id)
    assert (await slow.complete(job, {"late": True})).status is JobStatus.DONE


async def test_a_stranger_cannot_touch_a_lease(pool: asyncpg.Pool) -> None:
    await _open_incidents(pool, 1)
    [job] = await Outbox(pool, "owner", CONFIG).lease(1, lease_for=60)
    with pytest.raises(LeaseLost):
        await Outbox(pool, "stranger", CONFIG).complete(job, {})


async def test_retryable_failures_back_off_exponentially_then_dead_letter(pool: asyncpg.Pool) -> None:
    await _open_incidents(pool, 1)
    worker = Outbox(pool, "w", CONFIG)
    delays = []
    for attempt in (1, 2, 3):
        [job] = await worker.lease(1, lease_for=60)
        assert job.attempts == attempt
        failed = await worker.fail(job, retryable=True, error=f"slack 503 #{attempt}")
        delays.append(await pool.fetchval(DELAY, job.id))
        if attempt < 3:
            assert failed.status is JobStatus.PENDING
            assert failed.finished_at is None
            assert await worker.lease(1, lease_for=60) == []  # backing off
            await pool.execute("UPDATE notification_jobs SET next_attempt_at = now() WHERE id = $1", job.id)
    assert delays[:2] == [10, 20]  # base, then doubled (capped at 25 from then on)
    assert (failed.status, failed.last_error, failed.attempts) == (JobStatus.DEAD, "slack 503 #3", 3)
    assert failed.finished_at is not None
    assert await worker.lease(1, lease_for=60) == []
    [dead] = await worker.jobs(status=JobStatus.DEAD)
    assert dead.id == failed.id  # dead letters stay visible
    requeued = await worker.requeue(dead.id)
    assert requeued is not None
    assert (requeued.status, requeued.attempts) == (JobStatus.PENDING, 0)
    assert await worker.requeue(dead.id) is None


async def test_backoff_is_capped(pool: asyncpg.Pool) -> None:
    await _open_incidents(pool, 1)
    worker = Outbox(pool, "w", DedupConfig(max_attempts=10, backoff_base=10, backoff_cap=25))
    await pool.execute("UPDATE notification_jobs SET attempts = 5")
    [job] = await worker.lease(1, lease_for=60)
    await worker.fail(job, retryable=True, error="again")
    assert await pool.fetchval(DELAY, job.id) == 25


async def test_permanent_failure_dead_letters_at_once(pool: asyncpg.Pool) -> None:
    await _open_incidents(pool, 1)
    worker = Outbox(pool, "w", CONFIG)
    [job] = await worker.lease(1, lease_for=60)
    failed = await worker.fail(job, retryable=False, error="channel not allowed: " + "x" * 10_000)
    assert failed.status is JobStatus.DEAD
    assert failed.attempts == 1
    assert failed.last_error is not None
    assert len(failed.last_error) == 4000


async def test_a_job_whose_every_lease_expires_is_dead_lettered(pool: asyncpg.Pool) -> None:
    await _open_incidents(pool, 1)
    worker = Outbox(pool, "crashy", CONFIG)
    for attempt in (1, 2, 3):
        [job] = await worker.lease(1, lease_for=60)
        assert job.attempts == attempt
        await expire_lease(pool, job.id)
    assert await worker.lease(1, lease_for=60) == []
    [dead] = await worker.jobs(status=JobStatus.DEAD)
    assert dead.attempts == 3
    assert dead.lease_owner is None
    assert dead.last_error is not None
    assert "lease expired" in dead.last_error


async def test_release_gives_the_job_back_without_counting_the_attempt(pool: asyncpg.Pool) -> None:
    await _open_incidents(pool, 1)
    worker = Outbox(pool, "w", CONFIG)
    [job] = await worker.lease(1, lease_for=60)
    released = await worker.release(job)
    assert (released.status, released.attempts, released.lease_owner) == (JobStatus.PENDING, 0, None)
    [again] = await Outbox(pool, "other", CONFIG).lease(1, lease_for=60)
    assert (again.id, again.attempts, again.lease_token) == (job.id, 1, 2)


async def test_extend_keeps_the_lease(pool: asyncpg.Pool) -> None:
    await _open_incidents(pool, 1)
    worker = Outbox(pool, "w", CONFIG)
    [job] = await worker.lease(1, lease_for=1)
    extended = await worker.extend(job, lease_for=600)
    remaining = await pool.fetchval(
        "SELECT extract(epoch FROM lease_expires_at - now()) FROM notification_jobs WHERE id = $1", job.id
    )
    assert remaining > 500
    assert extended.lease_token == job.lease_token
    assert await Outbox(pool, "other", CONFIG).lease(1, lease_for=60) == []


async def test_bad_arguments(pool: asyncpg.Pool) -> None:
    with pytest.raises(ValueError, match="owner"):
        Outbox(pool, "")
    worker = Outbox(pool, "w", CONFIG)
    with pytest.raises(ValueError, match="n must"):
        await worker.lease(0, lease_for=1)
    with pytest.raises(ValueError, match="lease_for"):
        await worker.lease(1, lease_for=0)
    await _open_incidents(pool, 1)
    [job] = await worker.lease(1, lease_for=60)
    with pytest.raises(ValueError, match="JSON object"):
        await worker.complete(job, {"x": object()})
    assert (await worker.complete(job, {"ok": 1})).status is JobStatus.DONE
