import asyncpg
import pytest

from detector.dedup import Dedup
from detector.incidents import Incidents
from detector.models import IncidentStatus
from logwarden.api import ClosedIncident, IncidentDesk
from logwarden.incident_desk import IncidentDeskAdapter
from tests.detector.support import anomaly

pytestmark = pytest.mark.anyio


async def test_the_api_desk_over_real_incidents(pool: asyncpg.Pool) -> None:
    desk: IncidentDesk = IncidentDeskAdapter(Incidents(pool), actor="ops-api")
    opened = await Dedup(pool).claim(anomaly(project="shop", service="api"))
    assert opened.incident_id is not None
    [listed] = await desk.list(IncidentStatus.OPEN, "shop", "api", 10)
    assert listed.id == opened.incident_id
    assert await desk.list(IncidentStatus.OPEN, "other", None, 10) == []

    acked = await desk.acknowledge(opened.incident_id)
    assert acked is not None
    assert (acked.status, acked.acknowledged_by) == (IncidentStatus.ACKNOWLEDGED, "ops-api")
    again = await desk.acknowledge(opened.incident_id)
    assert again is not None
    assert again.status is IncidentStatus.ACKNOWLEDGED

    resolved = await desk.resolve(opened.incident_id)
    assert resolved is not None
    assert (resolved.status, resolved.resolved_by) == (IncidentStatus.RESOLVED, "ops-api")
    with pytest.raises(ClosedIncident):
        await desk.resolve(opened.incident_id)
    with pytest.raises(ClosedIncident):
        await desk.acknowledge(opened.incident_id)
    assert await desk.acknowledge(987_654) is None
    assert await desk.resolve(987_654) is None
