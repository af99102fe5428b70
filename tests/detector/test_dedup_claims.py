"""Claims against a real PostgreSQL: the incident lifecycle, scenario by scenario."""

from __future__ import annotations

import json
from typing import cast

import asyncpg
import pytest

from detector.dedup import ClaimReason, Dedup, DedupConfig, _keys, _repeats
from detector.dedup_errors import DedupStorageError, InvalidAnomaly
from detector.dedup_sql import CLAIM_MANY, CLAIM_NEW, PRECHECK_MANY
from detector.incidents import Incidents
from detector.models import AnomalyEvent, JobKind, Severity, Signal
from tests.detector.support import (
    Recorder,
    age_last_page,
    anomaly,
    expire_window,
    incidents_of,
    job_kinds,
    jobs_of,
)

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

R = ClaimReason


async def test_first_claim_opens_an_incident_with_an_open_job(pool: asyncpg.Pool) -> None:
    a = anomaly(messages=("timeout after <n>ms", "connection reset"))
    result = await Dedup(pool).claim(a)
    assert (result.reason, result.job_kind, result.fingerprint) == (
        R.NEW_INCIDENT,
        JobKind.OPEN,
        a.fingerprint,
    )
    [row] = await incidents_of(pool, a.fingerprint)
    assert row["id"] == result.incident_id
    assert (row["project"], row["service"], row["signal"]) == ("shop", "checkout", "error_rate")
    assert (row["status"], row["severity"], row["occurrences"]) == ("open", 1, 1)
    assert row["first_seen"] == row["last_seen"]
    assert await jobs_of(pool, a.fingerprint) == [("open", "pending")]
    incident = await Incidents(pool).get(result.incident_id)
    assert incident.latest == a
    assert json.loads(row["latest"])["messages"] == ["timeout after <n>ms", "connection reset"]


async def test_database_clock_not_event_time(pool: asyncpg.Pool) -> None:
    """Event times (here wildly skewed) are stored for people but never decide anything."""
    dedup = Dedup(pool)
    first = await dedup.claim(anomaly(window_start=4_000_000_000.0))
    second = await dedup.claim(anomaly(window_start=1.0))
    assert (first.reason, second.reason) == (R.NEW_INCIDENT, R.DUPLICATE_IN_WINDOW)
    db_now = await pool.fetchval("SELECT now()")
    [row] = await incidents_of(pool, anomaly().fingerprint)
    assert abs((row["first_seen"] - db_now).total_seconds()) < 60


async def test_second_claim_inside_the_window_is_a_read_only_duplicate(pool: asyncpg.Pool) -> None:
    dedup = Dedup(pool)
    a = anomaly()
    first = await dedup.claim(a)
    before = await pool.fetchrow(
        "SELECT xmin::text, * FROM incident_claims WHERE fingerprint = $1", a.fingerprint
    )
    dup = await dedup.claim(a)
    assert (dup.reason, dup.incident_id, dup.job_id) == (R.DUPLICATE_IN_WINDOW, first.incident_id, None)
    after = await pool.fetchrow(
        "SELECT xmin::text, * FROM incident_claims WHERE fingerprint = $1", a.fingerprint
    )
    assert before == after  # not even a new row version: nothing was written or locked
    [row] = await incidents_of(pool, a.fingerprint)
    assert row["occurrences"] == 1


async def test_escalation_creates_one_escalate_job_and_flapping_inside_the_window_none(
    pool: asyncpg.Pool,
) -> None:
    dedup = Dedup(pool)
    fp = anomaly().fingerprint
    assert (await dedup.claim(anomaly("onset", "warning"))).reason is R.NEW_INCIDENT
    esc = await dedup.claim(anomaly("escalation", "critical"))
    assert (esc.reason, esc.job_kind) == (R.ESCALATED, JobKind.ESCALATE)
    # severity flaps down and up, inside the window: the incident stays critical, no more pages
    flaps = [
        await dedup.claim(anomaly(k, s)) for k, s in [("onset", "warning"), ("escalation", "critical")] * 3
    ]
    assert {f.reason for f in flaps} == {R.DUPLICATE_IN_WINDOW}
    # the anomaly flaps on and off inside the window: the resolve is held, then cancelled
    assert (await dedup.claim(anomaly("recovery"))).reason is R.RESOLVED
    assert (await dedup.claim(anomaly("onset", "warning"))).reason is R.REOPENED
    assert (await dedup.claim(anomaly("recovery"))).reason is R.RESOLVED
    assert (await dedup.claim(anomaly("escalation", "critical"))).reason is R.REOPENED
    assert await jobs_of(pool, fp) == [
        ("open", "pending"),
        ("escalate", "pending"),
        ("resolve", "cancelled"),
        ("resolve", "cancelled"),
    ]
    [row] = await incidents_of(pool, fp)
    assert (row["status"], row["severity"]) == ("open", 2)
    # after the window, a further escalation of an already critical incident is just attached
    await expire_window(pool, fp)
    assert (await dedup.claim(anomaly("escalation", "critical"))).reason is R.ATTACHED_TO_OPEN
    assert (await job_kinds(pool))["escalate"] == 1


async def test_same_service_in_two_projects_is_two_incidents(pool: asyncpg.Pool) -> None:
    dedup = Dedup(pool)
    a = await dedup.claim(anomaly(project="shop", service="api"))
    b = await dedup.claim(anomaly(project="billing", service="api"))
    assert (a.reason, b.reason) == (R.NEW_INCIDENT, R.NEW_INCIDENT)
    assert a.fingerprint != b.fingerprint
    assert a.incident_id != b.incident_id
    rows = await pool.fetch("SELECT project, service FROM incidents ORDER BY project")
    assert [tuple(r) for r in rows] == [("billing", "api"), ("shop", "api")]
    assert (await job_kinds(pool))["open"] == 2


async def test_same_service_different_signal_is_another_incident(pool: asyncpg.Pool) -> None:
    dedup = Dedup(pool)
    a = await dedup.claim(anomaly(signal=Signal.ERROR_RATE))
    b = await dedup.claim(anomaly(signal=Signal.VOLUME_COLLAPSE))
    assert (a.reason, b.reason) == (R.NEW_INCIDENT, R.NEW_INCIDENT)


async def test_persistent_anomaly_pages_again_only_after_the_repeat_interval(pool: asyncpg.Pool) -> None:
    dedup = Dedup(pool, DedupConfig(repeat_interval=3600))
    fp = anomaly().fingerprint
    await dedup.claim(anomaly())
    for _ in range(3):
        await expire_window(pool, fp)
        assert (await dedup.claim(anomaly())).reason is R.ATTACHED_TO_OPEN
    await expire_window(pool, fp)
    await age_last_page(pool, fp, 3599)
    assert (await dedup.claim(anomaly())).reason is R.ATTACHED_TO_OPEN
    await expire_window(pool, fp)
    await age_last_page(pool, fp, 2)
    repeat = await dedup.claim(anomaly())
    assert (repeat.reason, repeat.job_kind) == (R.REPEAT_DUE, JobKind.REPEAT)
    await expire_window(pool, fp)
    assert (await dedup.claim(anomaly())).reason is R.ATTACHED_TO_OPEN  # the interval restarted
    [row] = await incidents_of(pool, fp)
    assert row["occurrences"] == 7
    assert await jobs_of(pool, fp) == [("open", "pending"), ("repeat", "pending")]


async def test_acknowledged_incident_does_not_repeat_but_still_escalates(pool: asyncpg.Pool) -> None:
    dedup = Dedup(pool, DedupConfig(repeat_interval=60))
    fp = anomaly().fingerprint
    opened = await dedup.claim(anomaly())
    assert opened.incident_id is not None
    assert (await Incidents(pool).acknowledge(opened.incident_id, "alice")).changed
    await expire_window(pool, fp)
    await age_last_page(pool, fp, 3600)
    assert (await dedup.claim(anomaly())).reason is R.ATTACHED_TO_OPEN
    assert (await dedup.claim(anomaly("escalation", "critical"))).reason is R.ESCALATED
    [row] = await incidents_of(pool, fp)
    assert (row["status"], row["severity"], row["acknowledged_by"]) == ("acknowledged", 2, "alice")


async def test_recovery_resolves_and_a_later_onset_opens_a_new_incident(pool: asyncpg.Pool) -> None:
    dedup = Dedup(pool)
    fp = anomaly().fingerprint
    first = await dedup.claim(anomaly())
    resolved = await dedup.claim(anomaly("recovery"))
    assert (resolved.reason, resolved.incident_id, resolved.job_kind) == (
        R.RESOLVED,
        first.incident_id,
        JobKind.RESOLVE,
    )
    assert (await dedup.claim(anomaly("recovery"))).reason is R.DUPLICATE_IN_WINDOW
    await expire_window(pool, fp)
    again = await dedup.claim(anomaly("recovery"))
    assert (again.reason, again.incident_id) == (R.NOTHING_OPEN, None)
    later = await dedup.claim(anomaly())
    assert later.reason is R.NEW_INCIDENT
    assert later.incident_id != first.incident_id
    old, new = await incidents_of(pool, fp)
    assert (old["status"], old["resolved_by"], new["status"]) == ("resolved", "detector", "open")
    assert old["resolved_at"] is not None
    assert new["resolved_at"] is None
    assert await jobs_of(pool, fp) == [("open", "pending"), ("resolve", "pending"), ("open", "pending")]


async def test_resolve_job_is_held_for_the_window(pool: asyncpg.Pool) -> None:
    dedup = Dedup(pool, DedupConfig(window=30))
    await dedup.claim(anomaly())
    resolved = await dedup.claim(anomaly("recovery"))
    held = await pool.fetchval(
        "SELECT extract(epoch FROM next_attempt_at - now()) FROM notification_jobs WHERE id = $1",
        resolved.job_id,
    )
    assert 29 < held <= 30


async def test_recovery_with_nothing_ever_open_writes_nothing(pool: asyncpg.Pool) -> None:
    result = await Dedup(pool).claim(anomaly("recovery"))
    assert (result.reason, result.incident_id, result.job_id) == (R.NOTHING_OPEN, None, None)
    assert await pool.fetchval("SELECT count(*) FROM incident_claims") == 0


async def test_claim_many_applies_each_fingerprints_anomalies_in_order(pool: asyncpg.Pool) -> None:
    dedup = Dedup(pool)
    a = {"project": "shop", "service": "a"}
    b = {"project": "shop", "service": "b"}
    batch = [
        anomaly("onset", "warning", **a),
        anomaly("recovery", **b),
        anomaly("onset", "warning", **b),
        anomaly("escalation", "critical", **a),
        anomaly("onset", "warning", **a),
        anomaly("recovery", **a),
        anomaly("onset", "critical", **a),
        anomaly("onset", "warning", **b),
    ]
    results = await dedup.claim_many(batch)
    assert [r.reason for r in results] == [
        R.NEW_INCIDENT,
        R.NOTHING_OPEN,
        R.NEW_INCIDENT,
        R.ESCALATED,
        R.DUPLICATE_IN_WINDOW,
        R.RESOLVED,
        R.REOPENED,
        R.DUPLICATE_IN_WINDOW,
    ]
    assert [r.fingerprint for r in results] == [x.fingerprint for x in batch]
    fp_a = batch[0].fingerprint
    assert await jobs_of(pool, fp_a) == [
        ("open", "pending"),
        ("escalate", "pending"),
        ("resolve", "cancelled"),
    ]
    [row] = await incidents_of(pool, fp_a)
    assert (row["status"], row["severity"], row["occurrences"]) == ("open", 2, 3)
    assert json.loads(row["latest"])["severity"] == Severity.CRITICAL
    # the same batch again, now that both fingerprints have state
    again = await dedup.claim_many(batch)
    assert [r.reason for r in again][:3] == [R.DUPLICATE_IN_WINDOW, R.RESOLVED, R.REOPENED]


async def test_claim_many_resolve_and_new_incident_in_one_batch(pool: asyncpg.Pool) -> None:
    """Resolving one incident and opening the next for the same fingerprint in one statement
    must not trip the one-unresolved-incident index."""
    dedup = Dedup(pool, DedupConfig(window=0))
    results = await dedup.claim_many(
        [anomaly(), anomaly("recovery"), anomaly(), anomaly("recovery"), anomaly()]
    )
    assert [r.reason for r in results] == [
        R.NEW_INCIDENT,
        R.RESOLVED,
        R.NEW_INCIDENT,
        R.RESOLVED,
        R.NEW_INCIDENT,
    ]
    rows = await incidents_of(pool, anomaly().fingerprint)
    assert [r["status"] for r in rows] == ["resolved", "resolved", "open"]
    assert len({r.incident_id for r in results}) == 3


async def test_claim_many_answers_repeats_without_sending_them(pool: asyncpg.Pool) -> None:
    """A repeat of the anomaly before it for the same fingerprint is answered as a duplicate of
    it (claim_many does not send it), and the answers equal claiming one by one."""

    def batch(project: str) -> list[AnomalyEvent]:
        return [
            anomaly(kind, severity, project=project, **extra)
            for kind, severity, extra in [
                ("onset", "warning", {}),
                ("onset", "warning", {}),
                ("escalation", "warning", {"service": "other"}),
                ("escalation", "critical", {}),
                ("onset", "critical", {}),
                ("recovery", "warning", {}),
                ("recovery", "warning", {}),
                ("recovery", "warning", {"service": "other"}),
                ("recovery", "warning", {"service": "other"}),
                ("recovery", "warning", {"service": "never-seen"}),
                ("recovery", "warning", {"service": "never-seen"}),
            ]
        ]

    fps, codes = _keys(batch("a"))
    sent, copy_of = _repeats(fps, codes, compress=True)
    assert sent == [0, 2, 3, 5, 7, 9]
    assert copy_of == {1: 0, 4: 3, 6: 5, 8: 7, 10: 9}
    assert _repeats(fps, codes, compress=False) == (list(range(11)), {})

    results = await Dedup(pool).claim_many(batch("a"))
    singly = [await Dedup(pool).claim(a) for a in batch("b")]
    assert (
        [r.reason for r in results]
        == [r.reason for r in singly]
        == [
            R.NEW_INCIDENT,
            R.DUPLICATE_IN_WINDOW,
            R.NEW_INCIDENT,
            R.ESCALATED,
            R.DUPLICATE_IN_WINDOW,
            R.RESOLVED,
            R.DUPLICATE_IN_WINDOW,
            R.RESOLVED,
            R.DUPLICATE_IN_WINDOW,
            R.NOTHING_OPEN,
            R.NOTHING_OPEN,
        ]
    )
    assert [r.job_kind for r in results] == [r.job_kind for r in singly]
    ids = [r.incident_id for r in results]
    assert ids[0] == ids[1] == ids[3] == ids[4] == ids[5] == ids[6]
    assert ids[2] == ids[7] == ids[8]
    assert ids[9] is ids[10] is None


@pytest.mark.parametrize("precheck", [True, False], ids=["precheck", "one-statement"])
async def test_claim_many_precheck_sends_only_fingerprints_that_may_write(
    pool: asyncpg.Pool, precheck: bool
) -> None:
    """With the pre-check, a fingerprint whose anomalies are all no-ops is answered from the
    read and never sent to the claim statement; a fingerprint with any anomaly that writes is
    sent whole (its no-ops too: they fold in order), and a new fingerprint with one anomaly goes
    to the new-incident statement. Answers are the same either way."""
    project = f"pre-{precheck}"
    a, b, c, d = ({"project": project, "service": s} for s in "abcd")
    recorder = Recorder(pool)
    dedup = Dedup(cast(asyncpg.Pool, recorder), DedupConfig(precheck=precheck))
    opened = await dedup.claim_many([anomaly(**a), anomaly(**b), anomaly(**d)])
    assert [r.reason for r in opened] == [R.NEW_INCIDENT] * 3
    recorder.calls.clear()
    batch = [
        anomaly(**a),  # duplicate
        anomaly("recovery", **b),  # resolves
        anomaly(**c),  # new incident
        anomaly(**a),  # a repeat: answered by the client
        anomaly(**d),  # duplicate, then
        anomaly("escalation", "critical", **d),  # escalates: d is sent whole
        anomaly("recovery", project=project, service="never"),  # nothing open
    ]
    results = await dedup.claim_many(batch)
    assert [r.reason for r in results] == [
        R.DUPLICATE_IN_WINDOW,
        R.RESOLVED,
        R.NEW_INCIDENT,
        R.DUPLICATE_IN_WINDOW,
        R.DUPLICATE_IN_WINDOW,
        R.ESCALATED,
        R.NOTHING_OPEN,
    ]
    assert results[0].incident_id == results[3].incident_id == opened[0].incident_id
    assert results[4].incident_id == results[5].incident_id == opened[2].incident_id
    assert results[6].incident_id is None
    fp = [x.fingerprint for x in batch]
    sent = {sql: args[0] for sql, args in recorder.calls}
    if precheck:
        # the read; c, new and alone for its fingerprint, opens its incident without the fold;
        # b and d (whole) go to the claim statement
        assert [sql for sql, _ in recorder.calls] == [PRECHECK_MANY, CLAIM_NEW, CLAIM_MANY]
        assert sent[PRECHECK_MANY] == ",".join(fp[i] for i in (0, 1, 2, 4, 5, 6))
        assert sent[CLAIM_NEW] == fp[2]
        assert sent[CLAIM_MANY] == ",".join(fp[i] for i in (1, 4, 5))
    else:
        assert [sql for sql, _ in recorder.calls] == [CLAIM_MANY]
        assert sent[CLAIM_MANY] == ",".join(fp[i] for i in (0, 1, 2, 4, 5, 6))
    # the incidents: a still open, b resolved, c opened, d escalated
    assert [r["status"] for r in await incidents_of(pool, fp[0])] == ["open"]
    assert [r["status"] for r in await incidents_of(pool, fp[1])] == ["resolved"]
    assert [kind for kind, _ in await jobs_of(pool, fp[5])] == ["open", "escalate"]


async def test_claim_many_sends_repeats_when_the_window_is_zero(pool: asyncpg.Pool) -> None:
    """With no window a repeat is not a duplicate: it attaches to the incident, and counts."""
    results = await Dedup(pool, DedupConfig(window=0)).claim_many([anomaly()] * 3)
    assert [r.reason for r in results] == [R.NEW_INCIDENT, R.ATTACHED_TO_OPEN, R.ATTACHED_TO_OPEN]
    [row] = await incidents_of(pool, anomaly().fingerprint)
    assert row["occurrences"] == 3


async def test_empty_batch(pool: asyncpg.Pool) -> None:
    assert await Dedup(pool).claim_many([]) == []


async def test_bad_anomaly_is_refused_before_anything_is_written(pool: asyncpg.Pool) -> None:
    good = anomaly(service="good")
    forged = AnomalyEvent.from_dict({**anomaly(service="other").to_dict(), "fingerprint": good.fingerprint})
    with pytest.raises(InvalidAnomaly) as info:
        await Dedup(pool).claim_many([good, forged])
    assert info.value.index == 1
    assert not info.value.retryable
    assert "fingerprint does not match" in str(info.value)
    nul = AnomalyEvent.from_dict({**anomaly().to_dict(), "service": "a\x00b"})
    with pytest.raises(InvalidAnomaly):
        await Dedup(pool).claim(nul)
    assert await pool.fetchval("SELECT count(*) FROM incident_claims") == 0
    assert (await Dedup(pool).claim(good)).reason is R.NEW_INCIDENT


async def test_nul_in_messages_is_stored_replaced(pool: asyncpg.Pool) -> None:
    result = await Dedup(pool).claim(anomaly(messages=("bad\x00byte",)))
    assert result.incident_id is not None
    incident = await Incidents(pool).get(result.incident_id)
    assert incident.latest is not None
    assert incident.latest.messages == ("bad\ufffdbyte",)


async def test_unmigrated_database_is_a_permanent_error(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        with pytest.raises(DedupStorageError) as info:
            await Dedup(conn).claim(anomaly())
        assert not info.value.retryable
    finally:
        await conn.close()


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="window"):
        DedupConfig(window=-1)
    with pytest.raises(ValueError, match="max_attempts"):
        DedupConfig(max_attempts=0)
    with pytest.raises(ValueError, match="backoff_cap"):
        DedupConfig(backoff_cap=float("inf"))


async def test_a_connection_inside_a_transaction_is_refused(pool: asyncpg.Pool) -> None:
    """Inside the caller's transaction the claim's row locks would outlive the statement."""
    async with pool.acquire() as conn:
        dedup = Dedup(conn)
        async with conn.transaction():
            with pytest.raises(ValueError, match="transaction"):
                await dedup.claim(anomaly())
            with pytest.raises(ValueError, match="transaction"):
                Incidents(conn)
        assert (await dedup.claim(anomaly())).reason is R.NEW_INCIDENT


async def test_new_incidents_get_their_subject_whether_or_not_it_was_sent(pool: asyncpg.Pool) -> None:
    """A fingerprint this Dedup has not seen sends its subject; one it has seen does not, and a
    new incident for it (after a resolution) reads the subject from the anomaly instead."""
    dedup = Dedup(pool, DedupConfig(window=60))
    first = anomaly(project="pay", service="ledger")
    opened = await dedup.claim_many([first, anomaly(project="pay", service="fx")])
    assert first.fingerprint in dedup._seen
    assert (await dedup.claim_many([anomaly("recovery", project="pay", service="ledger")]))[
        0
    ].reason is R.RESOLVED
    await expire_window(pool, first.fingerprint)
    [again] = await dedup.claim_many([anomaly("onset", "critical", project="pay", service="ledger")])
    assert again.reason is R.NEW_INCIDENT
    assert again.incident_id != opened[0].incident_id
    rows = await pool.fetch("SELECT id, project, service, signal, status FROM incidents")
    assert {r["id"]: tuple(r)[1:] for r in rows} == {
        opened[0].incident_id: ("pay", "ledger", "error_rate", "resolved"),
        opened[1].incident_id: ("pay", "fx", "error_rate", "open"),
        again.incident_id: ("pay", "ledger", "error_rate", "open"),
    }
