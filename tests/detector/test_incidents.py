"""Operator actions and listings on a real PostgreSQL."""

from __future__ import annotations

import asyncpg
import pytest

from detector.dedup import ClaimReason, Dedup
from detector.dedup_errors import IncidentNotFound
from detector.incidents import Incidents
from detector.models import IncidentStatus, Severity
from tests.detector.support import anomaly, expire_window, jobs_of

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def _open(pool: asyncpg.Pool, **subject: str) -> int:
    result = await Dedup(pool).claim(anomaly(**subject))
    assert result.incident_id is not None
    return result.incident_id


async def test_get_and_list(pool: asyncpg.Pool) -> None:
    ids = [await _open(pool, project=p, service=s) for p, s in [("a", "x"), ("a", "y"), ("b", "x")]]
    incidents = Incidents(pool)
    got = await incidents.get(ids[0])
    assert (got.project, got.service, got.status, got.severity) == (
        "a",
        "x",
        IncidentStatus.OPEN,
        Severity.WARNING,
    )
    assert got.first_seen <= got.last_seen
    assert got.occurrences == 1
    assert [i.id for i in await incidents.list_incidents()] == ids[::-1]
    assert [i.id for i in await incidents.list_incidents(project="a")] == [ids[1], ids[0]]
    assert [i.id for i in await incidents.list_incidents(service="x")] == [ids[2], ids[0]]
    assert [i.id for i in await incidents.list_incidents(limit=1, before_id=ids[2])] == [ids[1]]
    await incidents.resolve(ids[1], "ops")
    assert [i.id for i in await incidents.list_incidents(status=IncidentStatus.RESOLVED)] == [ids[1]]
    with pytest.raises(IncidentNotFound):
        await incidents.get(999_999)
    with pytest.raises(ValueError, match="limit"):
        await incidents.list_incidents(limit=0)


async def test_acknowledge(pool: asyncpg.Pool) -> None:
    incident_id = await _open(pool)
    incidents = Incidents(pool)
    first = await incidents.acknowledge(incident_id, "alice")
    assert first.changed
    assert first.incident.status is IncidentStatus.ACKNOWLEDGED
    assert first.incident.acknowledged_by == "alice"
    assert first.incident.acknowledged_at is not None
    second = await incidents.acknowledge(incident_id, "bob")
    assert not second.changed
    assert second.incident.acknowledged_by == "alice"
    # an acknowledged incident keeps collecting anomalies and stays acknowledged
    await expire_window(pool, anomaly().fingerprint)
    assert (await Dedup(pool).claim(anomaly())).reason is ClaimReason.ATTACHED_TO_OPEN
    assert (await incidents.get(incident_id)).status is IncidentStatus.ACKNOWLEDGED
    assert await jobs_of(pool, anomaly().fingerprint) == [("open", "pending")]


async def test_manual_resolve_creates_one_held_resolve_job(pool: asyncpg.Pool) -> None:
    incident_id = await _open(pool)
    incidents = Incidents(pool)
    await incidents.acknowledge(incident_id, "alice")
    resolved = await incidents.resolve(incident_id, "alice")
    assert resolved.changed
    assert resolved.incident.status is IncidentStatus.RESOLVED
    assert resolved.incident.resolved_by == "alice"
    assert resolved.incident.resolved_at is not None
    again = await incidents.resolve(incident_id, "bob")
    assert not again.changed
    assert again.incident.resolved_by == "alice"
    assert not (await incidents.acknowledge(incident_id, "bob")).changed
    assert await jobs_of(pool, anomaly().fingerprint) == [("open", "pending"), ("resolve", "pending")]
    # the detector's recovery arriving afterwards changes nothing
    assert (await Dedup(pool).claim(anomaly("recovery"))).reason is ClaimReason.DUPLICATE_IN_WINDOW


async def test_anomaly_back_inside_the_window_after_manual_resolve_reopens(pool: asyncpg.Pool) -> None:
    incident_id = await _open(pool)
    await Incidents(pool).resolve(incident_id, "alice")
    reopened = await Dedup(pool).claim(anomaly("escalation", "critical"))
    assert (reopened.reason, reopened.incident_id) == (ClaimReason.REOPENED, incident_id)
    assert await jobs_of(pool, anomaly().fingerprint) == [
        ("open", "pending"),
        ("resolve", "cancelled"),
        ("escalate", "pending"),
    ]
    incident = await Incidents(pool).get(incident_id)
    assert (incident.status, incident.resolved_at, incident.severity) == (
        IncidentStatus.OPEN,
        None,
        Severity.CRITICAL,
    )


async def test_actions_on_unknown_incident_and_bad_actor(pool: asyncpg.Pool) -> None:
    incidents = Incidents(pool)
    with pytest.raises(IncidentNotFound):
        await incidents.acknowledge(424242, "alice")
    with pytest.raises(IncidentNotFound):
        await incidents.resolve(424242, "alice")
    incident_id = await _open(pool)
    with pytest.raises(ValueError, match="by"):
        await incidents.resolve(incident_id, "")
