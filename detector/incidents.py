"""Incidents for people: read and list them, acknowledge and resolve them by hand.

``Incidents(db, config)``:

- ``get(incident_id)`` / ``list_incidents(status=, project=, service=, limit=, before_id=)``: newest first,
  keyset-paginated by id (pass the last id you saw as ``before_id``).
- ``acknowledge(incident_id, by)``: an open incident becomes ``acknowledged``. It keeps collecting
  anomalies and still escalates, but no longer pages on the repeat interval.
- ``resolve(incident_id, by)``: an unresolved incident becomes ``resolved`` and gets a ``resolve``
  job, held for the dedup window exactly like a recovery (an anomaly that comes back inside the
  window reopens it and cancels the job).

Both actions are one statement that goes through the fingerprint's claim row, with the same row
lock every automatic claim takes. So an operator resolve racing a recovery (or an acknowledge
racing either) cannot lose an update or create a second resolve job: whichever commits second
sees the first one's result and changes nothing. Each returns an :class:`ActionResult` saying
whether it changed the incident, and the incident as it is afterwards (an unchanged incident is
read again, so it shows the change that won).

Errors: :class:`~detector.dedup_errors.IncidentNotFound`, and the rest of the tree in
``detector/dedup_errors.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import asyncpg

from detector.dedup import DedupConfig, Executor, own_transaction
from detector.dedup_errors import IncidentNotFound, translated
from detector.models import AnomalyEvent, Incident, IncidentStatus, Severity, Signal

_COLUMNS = """id, fingerprint, project, service, signal, status, severity, first_seen, last_seen,
    occurrences, resolved_at, latest, acknowledged_at, acknowledged_by, resolved_by"""

GET = f"SELECT {_COLUMNS} FROM incidents WHERE id = $1"

LIST = f"""
SELECT {_COLUMNS} FROM incidents
WHERE ($1::text IS NULL OR status = $1)
  AND ($2::text IS NULL OR project = $2)
  AND ($3::text IS NULL OR service = $3)
  AND ($4::bigint IS NULL OR id < $4)
ORDER BY id DESC
LIMIT $5
"""

# $1 incident id, $2 who. The claim row is the lock every claim takes; the incident changes only
# if, under that lock, the claim row still points at this incident as active.
ACKNOWLEDGE = f"""
WITH c AS (
    UPDATE incident_claims
    SET acknowledged = true, updated_at = now()
    WHERE fingerprint = (SELECT fingerprint FROM incidents WHERE id = $1)
      AND incident_id = $1 AND phase = 'active' AND NOT acknowledged
    RETURNING incident_id
), i AS (
    UPDATE incidents
    SET status = 'acknowledged', acknowledged_at = now(), acknowledged_by = $2, updated_at = now()
    WHERE id IN (SELECT incident_id FROM c)
    RETURNING {_COLUMNS}
)
SELECT * FROM i
"""

# $1 incident id, $2 who, $3 dedup window seconds.
RESOLVE = f"""
WITH c AS (
    UPDATE incident_claims
    SET phase = 'recovered', acknowledged = false,
        window_until = now() + make_interval(secs => $3::float8),
        resolve_job_id = nextval('notification_jobs_id_seq'), claims = claims + 1, updated_at = now()
    WHERE fingerprint = (SELECT fingerprint FROM incidents WHERE id = $1)
      AND incident_id = $1 AND phase = 'active'
    RETURNING incident_id, resolve_job_id, window_until
), i AS (
    UPDATE incidents
    SET status = 'resolved', resolved_at = now(), resolved_by = $2, updated_at = now()
    WHERE id IN (SELECT incident_id FROM c)
    RETURNING {_COLUMNS}
), j AS (
    INSERT INTO notification_jobs (id, incident_id, kind, next_attempt_at)
    SELECT resolve_job_id, incident_id, 'resolve', window_until FROM c
)
SELECT * FROM i
"""

_MAX_LIST = 1000


@dataclass(frozen=True, slots=True)
class ActionResult:
    """The outcome of an operator action."""

    changed: bool
    """False when the incident was already in (or past) the requested state."""
    incident: Incident


class Incidents:
    """Reads incidents and applies operator actions. Safe to share between tasks."""

    def __init__(self, db: Executor, config: DedupConfig | None = None) -> None:
        self._db = own_transaction(db)
        self.config = config if config is not None else DedupConfig()

    async def get(self, incident_id: int) -> Incident:
        with translated("get incident"):
            row = await self._db.fetchrow(GET, incident_id)
        if row is None:
            raise IncidentNotFound(f"no incident {incident_id}")
        return incident_from_row(row)

    async def list_incidents(
        self,
        *,
        status: IncidentStatus | None = None,
        project: str | None = None,
        service: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[Incident]:
        """Newest first; at most ``limit`` (1 to 1000)."""
        if not 1 <= limit <= _MAX_LIST:
            raise ValueError(f"limit must be in [1, {_MAX_LIST}], got {limit}")
        with translated("list incidents"):
            rows = await self._db.fetch(
                LIST, None if status is None else status.value, project, service, before_id, limit
            )
        return [incident_from_row(r) for r in rows]

    async def acknowledge(self, incident_id: int, by: str) -> ActionResult:
        """Acknowledge an open incident (no change if acknowledged or resolved already)."""
        return await self._act(ACKNOWLEDGE, "acknowledge", incident_id, by)

    async def resolve(self, incident_id: int, by: str) -> ActionResult:
        """Resolve an unresolved incident and create its resolve job (no change if resolved)."""
        return await self._act(RESOLVE, "resolve", incident_id, by, self.config.window)

    async def _act(self, sql: str, action: str, incident_id: int, by: str, *extra: object) -> ActionResult:
        if not by or "\x00" in by:
            raise ValueError("by must name who acts (non-empty, no NUL)")
        own_transaction(self._db)
        with translated(action):
            row = await self._db.fetchrow(sql, incident_id, by, *extra)
        if row is None:
            # Unchanged: read it again, in a fresh snapshot that includes whatever beat us to it.
            return ActionResult(changed=False, incident=await self.get(incident_id))
        return ActionResult(changed=True, incident=incident_from_row(row))


def incident_from_row(row: asyncpg.Record) -> Incident:
    """The one place an ``incidents`` row becomes an :class:`Incident`."""
    latest = row["latest"]
    return Incident(
        id=row["id"],
        fingerprint=row["fingerprint"],
        project=row["project"],
        service=row["service"],
        signal=Signal(row["signal"]),
        status=IncidentStatus(row["status"]),
        severity=Severity(row["severity"]),
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        occurrences=row["occurrences"],
        resolved_at=row["resolved_at"],
        latest=None if latest is None else AnomalyEvent.from_dict(json.loads(latest)),
        acknowledged_at=row["acknowledged_at"],
        acknowledged_by=row["acknowledged_by"],
        resolved_by=row["resolved_by"],
    )
