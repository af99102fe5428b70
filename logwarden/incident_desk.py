"""The HTTP API's incident operations (``logwarden.api.IncidentDesk``) over ``detector.incidents``.

Unknown incident → ``None`` (the API answers 404); acknowledging or resolving a resolved incident
→ :class:`~logwarden.api.ClosedIncident` (409). Acknowledging an already acknowledged incident, or
an action that lost a race with the detector's own resolve, returns the incident as it now is.
"""

from __future__ import annotations

from collections.abc import Sequence

from detector.dedup_errors import IncidentNotFound
from detector.incidents import ActionResult, Incidents
from detector.models import Incident, IncidentStatus
from logwarden.api import ClosedIncident


class IncidentDeskAdapter:
    """Implements ``IncidentDesk``; ``actor`` is recorded as who acknowledged or resolved."""

    def __init__(self, incidents: Incidents, actor: str = "api") -> None:
        self._incidents = incidents
        self._actor = actor

    async def list(
        self, status: IncidentStatus | None, project: str | None, service: str | None, limit: int
    ) -> Sequence[Incident]:
        return await self._incidents.list_incidents(
            status=status, project=project, service=service, limit=limit
        )

    async def acknowledge(self, incident_id: int) -> Incident | None:
        try:
            return _settled(await self._incidents.acknowledge(incident_id, self._actor), "acknowledge")
        except IncidentNotFound:
            return None

    async def resolve(self, incident_id: int) -> Incident | None:
        try:
            return _settled(await self._incidents.resolve(incident_id, self._actor), "resolve")
        except IncidentNotFound:
            return None


def _settled(result: ActionResult, action: str) -> Incident:
    if not result.changed and result.incident.status is IncidentStatus.RESOLVED:
        raise ClosedIncident(f"cannot {action} incident {result.incident.id}: it is already resolved")
    return result.incident
