"""Concurrent claims and operator actions on a real PostgreSQL, and a connection dropped mid-claim."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import cast

import anyio
import asyncpg
import pytest

from detector.dedup import ClaimReason, ClaimResult, Dedup, _keys, _latest_json
from detector.dedup_errors import DedupUnavailable
from detector.dedup_sql import CLAIM_MANY, CLAIM_NEW, PRECHECK, PRECHECK_MANY
from detector.incidents import Incidents
from tests.detector.support import (
    Recorder,
    anomaly,
    assert_references_hold,
    expire_window,
    incidents_of,
    jobs_of,
)

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

R = ClaimReason


async def test_two_claimers_racing_200_times_make_one_incident_and_one_job(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as c1, pool.acquire() as c2:
        first, second = Dedup(c1), Dedup(c2)
        for i in range(200):
            a = anomaly(service=f"race-{i}")
            r1, r2 = await asyncio.gather(first.claim(a), second.claim(a))
            assert sorted([r1.reason, r2.reason]) == [R.DUPLICATE_IN_WINDOW, R.NEW_INCIDENT], i
            assert r1.incident_id == r2.incident_id is not None
    per_fp = await pool.fetch("SELECT fingerprint, count(*) AS n FROM incidents GROUP BY fingerprint")
    assert len(per_fp) == 200
    assert {r["n"] for r in per_fp} == {1}
    jobs = await pool.fetch("SELECT incident_id, kind FROM notification_jobs")
    assert len(jobs) == 200
    assert {r["kind"] for r in jobs} == {"open"}
    assert len({r["incident_id"] for r in jobs}) == 200
    assert await pool.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0
    await assert_references_hold(pool)


async def test_racing_escalations_create_one_escalate_job(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as c1, pool.acquire() as c2:
        first, second = Dedup(c1), Dedup(c2)
        for i in range(50):
            onset = anomaly(service=f"esc-{i}")
            await first.claim(onset)
            await expire_window(pool, onset.fingerprint)
            esc = anomaly("escalation", "critical", service=f"esc-{i}")
            r1, r2 = await asyncio.gather(first.claim(esc), second.claim(esc))
            assert sorted([r1.reason, r2.reason]) == [R.DUPLICATE_IN_WINDOW, R.ESCALATED], i
            assert await jobs_of(pool, onset.fingerprint) == [("open", "pending"), ("escalate", "pending")]


async def test_operator_resolve_racing_a_recovery_resolves_once(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as c1, pool.acquire() as c2:
        dedup, incidents = Dedup(c1), Incidents(c2)
        outcomes: Counter[str] = Counter()
        for i in range(40):
            opened = await dedup.claim(anomaly(service=f"op-{i}"))
            assert opened.incident_id is not None
            auto, manual = await asyncio.gather(
                dedup.claim(anomaly("recovery", service=f"op-{i}")),
                incidents.resolve(opened.incident_id, "alice"),
            )
            assert (auto.reason is R.RESOLVED) != manual.changed, i  # exactly one of them resolved it
            outcomes["manual" if manual.changed else "auto"] += 1
            assert manual.incident.status == "resolved"
            assert await jobs_of(pool, opened.fingerprint) == [("open", "pending"), ("resolve", "pending")]
            [row] = await incidents_of(pool, opened.fingerprint)
            assert row["status"] == "resolved"
            assert row["resolved_by"] == ("alice" if manual.changed else "detector")
    assert sum(outcomes.values()) == 40


async def test_acknowledge_racing_a_recovery_loses_nothing(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as c1, pool.acquire() as c2:
        dedup, incidents = Dedup(c1), Incidents(c2)
        for i in range(40):
            opened = await dedup.claim(anomaly(service=f"ack-{i}"))
            assert opened.incident_id is not None
            auto, ack = await asyncio.gather(
                dedup.claim(anomaly("recovery", service=f"ack-{i}")),
                incidents.acknowledge(opened.incident_id, "bob"),
            )
            assert auto.reason is R.RESOLVED  # an acknowledgement never blocks the recovery
            [row] = await incidents_of(pool, opened.fingerprint)
            assert row["status"] == "resolved"
            assert (row["acknowledged_by"] == "bob") == ack.changed
            claim = await pool.fetchrow(
                "SELECT * FROM incident_claims WHERE fingerprint = $1", opened.fingerprint
            )
            assert (claim["phase"], claim["acknowledged"]) == ("recovered", False)
            assert await jobs_of(pool, opened.fingerprint) == [("open", "pending"), ("resolve", "pending")]


async def _wait_until_blocked(admin: asyncpg.Pool, pid: int) -> None:
    """Return once backend ``pid`` waits for a lock (polls the server; no sleeping). Each poll is
    its own transaction, so pg_stat_activity is fresh every time."""
    with anyio.fail_after(10):
        while not await admin.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
        ):
            await anyio.lowlevel.checkpoint()


async def test_connection_dropped_mid_claim_is_retryable_leaves_nothing_and_retry_succeeds(
    pool: asyncpg.Pool, database_url: str
) -> None:
    dedup = Dedup(pool)
    opened = await dedup.claim(anomaly())
    fp = opened.fingerprint
    await expire_window(pool, fp)
    claim_before = await pool.fetchrow("SELECT * FROM incident_claims WHERE fingerprint = $1", fp)
    [incident_before] = await incidents_of(pool, fp)

    blocker = await asyncpg.connect(database_url)
    victim = await asyncpg.connect(database_url)
    try:
        # Hold the incident row: the escalation locks and rewrites the claim row, then waits here,
        # in the middle of its statement, with part of its writes done but not committed.
        blocker_tx = blocker.transaction()
        await blocker_tx.start()
        await blocker.execute("SELECT 1 FROM incidents WHERE id = $1 FOR UPDATE", opened.incident_id)
        claim = asyncio.ensure_future(Dedup(victim).claim(anomaly("escalation", "critical")))
        await _wait_until_blocked(pool, victim.get_server_pid())
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", victim.get_server_pid())
        with pytest.raises(DedupUnavailable) as info:
            await claim
        assert info.value.retryable
        await blocker_tx.rollback()
    finally:
        await blocker.close()
        victim.terminate()

    assert await pool.fetchrow("SELECT * FROM incident_claims WHERE fingerprint = $1", fp) == claim_before
    assert await incidents_of(pool, fp) == [incident_before]
    assert await jobs_of(pool, fp) == [("open", "pending")]

    retry = await dedup.claim(anomaly("escalation", "critical"))
    assert retry.reason is R.ESCALATED
    assert await jobs_of(pool, fp) == [("open", "pending"), ("escalate", "pending")]


@pytest.mark.parametrize("shape", ["claim", "claim_many", "folded"])
async def test_losing_the_race_to_create_a_claim_row_goes_round_again_through_the_precheck(
    pool: asyncpg.Pool, database_url: str, shape: str
) -> None:
    """Another claimer creates the fingerprints' claim rows while our claim runs: ours waits for
    its commit, writes nothing, and goes round again, pre-check first. A new fingerprint with one
    anomaly (``claim``, ``claim_many``) went to the new-incident statement, and the pre-check then
    answers it as a duplicate of the winner's incident, with no second claim statement. One with
    two (``folded``: an onset, then an escalation) went to the claim statement; the second round
    answers the onset as a duplicate and claims the escalation."""
    size = 1 if shape == "claim" else 3
    subjects = [{"service": f"lost-race-{shape}-{i}"} for i in range(size)]
    winner_anomalies = [anomaly(**s) for s in subjects]
    losing = [anomaly(**s) for s in subjects]
    if shape == "folded":
        losing = [x for s in subjects for x in (anomaly(**s), anomaly("escalation", "critical", **s))]
    blocker = await asyncpg.connect(database_url)
    victim = await asyncpg.connect(database_url)
    try:
        # the winner's claim statement, run inside a transaction that stays open for now
        blocker_tx = blocker.transaction()
        await blocker_tx.start()
        fps, codes = _keys(winner_anomalies)
        await blocker.fetch(
            CLAIM_MANY,
            ",".join(fps),
            "".join(str(c) for c in codes),
            [_latest_json(a) for a in winner_anomalies],
            [None] * size,
            5.0,
            3600.0,
            ",".join("1" * size),
        )
        recorder = Recorder(victim)
        dedup = Dedup(cast(asyncpg.Connection, recorder))
        claim = asyncio.ensure_future(
            dedup.claim(losing[0]) if shape == "claim" else dedup.claim_many(losing)
        )
        await _wait_until_blocked(pool, victim.get_server_pid())
        await blocker_tx.commit()
        got = await claim
        results = [got] if isinstance(got, ClaimResult) else got
    finally:
        await blocker.close()
        await victim.close()
    statements = [sql for sql, _ in recorder.calls]
    if shape == "folded":
        assert [r.reason for r in results] == [R.DUPLICATE_IN_WINDOW, R.ESCALATED] * size
        assert statements == [PRECHECK_MANY, CLAIM_MANY, PRECHECK_MANY, CLAIM_MANY]
    else:
        assert [r.reason for r in results] == [R.DUPLICATE_IN_WINDOW] * size
        precheck = PRECHECK if shape == "claim" else PRECHECK_MANY
        assert statements == [precheck, CLAIM_NEW, precheck]
    for a, r in zip(losing, results, strict=True):
        [row] = await incidents_of(pool, a.fingerprint)
        assert r.incident_id == row["id"]
        kinds = [kind for kind, _ in await jobs_of(pool, a.fingerprint)]
        assert kinds == (["open", "escalate"] if shape == "folded" else ["open"])
    await assert_references_hold(pool)


async def test_overlapping_batches_in_opposite_orders_do_not_deadlock(pool: asyncpg.Pool) -> None:
    dedup = Dedup(pool)
    subjects = [{"service": f"order-{i}"} for i in range(40)]
    await dedup.claim_many([anomaly(**s) for s in subjects])
    async with pool.acquire() as c1, pool.acquire() as c2:
        first, second = Dedup(c1), Dedup(c2)
        for round_ in range(10):
            await pool.execute("UPDATE incident_claims SET window_until = now() - interval '1 second'")
            forward = [anomaly("escalation" if round_ == 0 else "onset", "critical", **s) for s in subjects]
            r1, r2 = await asyncio.gather(first.claim_many(forward), second.claim_many(forward[::-1]))
            changed = [r for r in r1 + r2 if r.reason is not R.DUPLICATE_IN_WINDOW]
            assert len(changed) == len(subjects), round_  # each fingerprint changed exactly once
    escalations = await pool.fetchval("SELECT count(*) FROM notification_jobs WHERE kind = 'escalate'")
    assert escalations == len(subjects)
    await assert_references_hold(pool)
