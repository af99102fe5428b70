"""The SQL claims agree with the pure rules (detector/dedup_rules.py), reason for reason.

Seeded random sequences of claims (single and batched, over two fingerprints that share a service
name), window expiries, repeat intervals passing, workers taking held resolve jobs, and operator
actions run against PostgreSQL and against a model built on ``decide``/``advance``. Time moves
only by UPDATEs (see support.py), with a window and repeat interval far longer than the test, so
the model's notion of "inside the window" is exact.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from detector.dedup import Dedup, DedupConfig
from detector.dedup_rules import ClaimReason, ClaimState, Phase, advance, decide, job_for
from detector.incidents import Incidents
from detector.models import EventKind, JobKind, Severity
from tests.detector.support import age_last_page, anomaly, assert_references_hold, expire_window, jobs_of

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

CONFIG = DedupConfig(window=3600, repeat_interval=7200)
T = datetime(2030, 1, 1, tzinfo=UTC)  # the model's "now": the database's now, symbolically
WINDOW = timedelta(seconds=CONFIG.window)
REPEAT = timedelta(seconds=CONFIG.repeat_interval)
SEQUENCES = 40
STEPS = 14
OCCURRENCES = {
    ClaimReason.NEW_INCIDENT,
    ClaimReason.ATTACHED_TO_OPEN,
    ClaimReason.ESCALATED,
    ClaimReason.REPEAT_DUE,
    ClaimReason.REOPENED,
}
OPS = ["claim"] * 3 + ["batch"] * 2 + ["expire"] * 2 + ["age"] * 2 + ["lease", "ack", "resolve"]


@dataclass
class Model:
    state: ClaimState | None = None
    jobs: list[list[str]] = field(default_factory=list)  # [kind, status] in creation order
    held: int | None = None  # index in jobs of the held resolve job
    occurrences: dict[int, int] = field(default_factory=dict)  # incident id → occurrences
    latest: dict[int, tuple[str, int]] = field(default_factory=dict)  # incident id → (kind, severity)

    def claim(self, kind: EventKind, severity: Severity, incident_id: int | None) -> ClaimReason:
        reason = decide(self.state, kind, severity, T, REPEAT)
        job = job_for(reason, self.state, severity)
        if reason in OCCURRENCES:
            assert incident_id is not None
            self.occurrences[incident_id] = self.occurrences.get(incident_id, 0) + 1
            self.latest[incident_id] = (kind.value, severity.value)
        if reason is ClaimReason.REOPENED:
            assert self.held is not None
            self.jobs[self.held][1] = "cancelled"
        self.state = advance(self.state, reason, severity, T, WINDOW, incident_id or 0)
        if reason in (ClaimReason.REOPENED, ClaimReason.NEW_INCIDENT):
            self.held = None
        if job is not None:
            self.jobs.append([job.value, "pending"])
            if job is JobKind.RESOLVE:
                self.held = len(self.jobs) - 1
        return reason


async def _lease_held(pool: asyncpg.Pool, fp: str) -> None:
    """A worker takes the held resolve job (as it would once the window has passed)."""
    await pool.execute(
        """
        UPDATE notification_jobs SET status = 'leased', attempts = 1, lease_owner = 'model',
               lease_token = 1, lease_expires_at = now() + interval '1 hour'
        WHERE id = (SELECT resolve_job_id FROM incident_claims WHERE fingerprint = $1)
          AND status = 'pending'
        """,
        fp,
    )


def _random_claim(rng: random.Random) -> tuple[EventKind, Severity]:
    kind = rng.choice([EventKind.ONSET, EventKind.ONSET, EventKind.ESCALATION, EventKind.RECOVERY])
    return kind, rng.choice([Severity.WARNING, Severity.CRITICAL])


@pytest.mark.parametrize("precheck", [True, False], ids=["precheck", "one-statement"])
async def test_sql_claims_follow_the_pure_rules(pool: asyncpg.Pool, precheck: bool) -> None:
    rng = random.Random(20240611)
    dedup = Dedup(pool, replace(CONFIG, precheck=precheck))
    incidents = Incidents(pool, CONFIG)
    for seq in range(SEQUENCES):
        subjects = [{"project": f"p{seq}", "service": "api"}, {"project": f"q{seq}", "service": "api"}]
        fps = [anomaly(**s).fingerprint for s in subjects]
        models = [Model(), Model()]
        for step in range(STEPS):
            op = rng.choice(OPS)
            which = rng.randrange(2)
            fp, model, subject = fps[which], models[which], subjects[which]
            where = f"sequence {seq} step {step} op {op}"
            if op == "claim":
                kind, sev = _random_claim(rng)
                got = await dedup.claim(anomaly(kind, sev, **subject))
                assert got.reason is model.claim(kind, sev, got.incident_id), where
            elif op == "batch":
                picks = [(rng.randrange(2), *_random_claim(rng)) for _ in range(rng.randint(2, 6))]
                got_all = await dedup.claim_many([anomaly(k, s, **subjects[i]) for i, k, s in picks])
                for (i, k, s), got in zip(picks, got_all, strict=True):
                    assert got.reason is models[i].claim(k, s, got.incident_id), where
            elif op == "expire":
                await expire_window(pool, fp)
                if model.state is not None:
                    model.state = replace(model.state, window_until=T - timedelta(seconds=1))
            elif op == "age":
                await age_last_page(pool, fp, CONFIG.repeat_interval + 1)
                if model.state is not None:
                    model.state = replace(model.state, paged_at=T - REPEAT - timedelta(seconds=1))
            elif op == "lease":
                await _lease_held(pool, fp)
                if (
                    model.state is not None
                    and model.held is not None
                    and model.state.phase is Phase.RECOVERED
                ):
                    model.jobs[model.held][1] = "leased"
                    model.state = replace(model.state, resolve_job_pending=False)
            elif model.state is not None:  # ack / resolve the fingerprint's current incident
                incident_id = model.state.incident_id
                active = model.state.phase is Phase.ACTIVE
                if op == "ack":
                    result = await incidents.acknowledge(incident_id, "model")
                    assert result.changed == (active and not model.state.acknowledged), where
                    if result.changed:
                        model.state = replace(model.state, acknowledged=True)
                else:
                    result = await incidents.resolve(incident_id, "model")
                    assert result.changed == active, where
                    if result.changed:
                        model.state = replace(
                            model.state,
                            phase=Phase.RECOVERED,
                            acknowledged=False,
                            window_until=T + WINDOW,
                            resolve_job_pending=True,
                        )
                        model.jobs.append(["resolve", "pending"])
                        model.held = len(model.jobs) - 1
            for i in (0, 1) if op == "batch" else (which,):
                assert await jobs_of(pool, fps[i]) == [tuple(j) for j in models[i].jobs], where
                await _check_incident(pool, fps[i], models[i], where)
    await assert_references_hold(pool)


async def _check_incident(pool: asyncpg.Pool, fp: str, model: Model, where: str) -> None:
    rows = await pool.fetch("SELECT * FROM incidents WHERE fingerprint = $1 ORDER BY id", fp)
    unresolved = [r for r in rows if r["status"] != "resolved"]
    assert len(unresolved) <= 1, where
    state = model.state
    if state is None:
        assert rows == [], where
        return
    current = next(r for r in rows if r["id"] == state.incident_id)
    expected = (
        "resolved" if state.phase is Phase.RECOVERED else "acknowledged" if state.acknowledged else "open"
    )
    assert (current["status"], current["severity"]) == (expected, state.severity.value), where
    for row in rows:  # occurrences and the latest anomaly, of every incident of the fingerprint
        assert row["occurrences"] == model.occurrences[row["id"]], where
        latest = json.loads(row["latest"])
        assert (latest["kind"], latest["severity"]) == model.latest[row["id"]], where


@pytest.mark.parametrize("precheck", [True, False], ids=["precheck", "one-statement"])
async def test_large_batch_matches_the_rules_applied_one_by_one(pool: asyncpg.Pool, precheck: bool) -> None:
    """A 600-anomaly batch over 40 fingerprints, some of them with state already."""
    rng = random.Random(77)
    dedup = Dedup(pool, replace(CONFIG, precheck=precheck))
    subjects = [{"project": "big", "service": f"s{i}"} for i in range(40)]
    models = [Model() for _ in subjects]
    warmup = [(i, EventKind.ONSET, Severity.WARNING) for i in range(0, 40, 2)]
    warmup += [(i, EventKind.RECOVERY, Severity.WARNING) for i in range(0, 40, 8)]
    for events in (warmup, [(rng.randrange(40), *_random_claim(rng)) for _ in range(600)]):
        results = await dedup.claim_many([anomaly(k, s, **subjects[i]) for i, k, s in events])
        for (i, k, s), got in zip(events, results, strict=True):
            assert got.reason is models[i].claim(k, s, got.incident_id), (i, k, s)
        for subject in subjects:
            fp = anomaly(**subject).fingerprint
            [model] = [m for m, sub in zip(models, subjects, strict=True) if sub is subject]
            assert await jobs_of(pool, fp) == [tuple(j) for j in model.jobs]
            await _check_incident(pool, fp, model, "large batch")
    await assert_references_hold(pool)
