"""The incident desk: operator actions over HTTP, on top of ``detector.incidents``."""

from __future__ import annotations

from collections.abc import Sequence

from detector.dedup_errors import IncidentNotFound
from detector.incidents import Incidents
from detector.models import Incident, IncidentStatus
from logwarden.api import ClosedIncident


class IncidentDesk:
    """Implements ``api.IncidentDesk``: list, acknowledge and resolve, naming who acted."""

    def __init__(self, incidents: Incidents, actor: str = "api") -> None:
        self._incidents = incidents
        self._actor = actor

    async def list(
        self, status: IncidentStatus | None, project: str | None, service: str | None, limit: int
    ) -> Sequence[Incident]:
        return await self._incidents.list_incidents(status=status, project=project, service=service, limit=limit)

    async def acknowledge(self, incident_id: int) -> Incident | None:
        return await self._act(incident_id, resolve=False)

    async def resolve(self, incident_id: int) -> Incident | None:
        return await self._act(incident_id, resolve=True)

    async def _act(self, incident_id: int, *, resolve: bool) -> Incident | None:
        try:
            if resolve:
                result = await self._incidents.resolve(incident_id, self._actor)
            else:
                result = await self._incidents.acknowledge(incident_id, self._actor)
        except IncidentNotFound:
            return None
        if not result.changed and result.incident.status is IncidentStatus.RESOLVED:
            raise ClosedIncident(f"incident {incident_id} is already resolved")
        return result.incident
