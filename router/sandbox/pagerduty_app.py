"""The sandbox's fake PagerDuty: incidents with dedup keys, acknowledge and resolve.

Owns ``sandbox_pd_incidents``. As in PagerDuty, an incident key (dedup key) identifies one open
incident per service: triggering again with the same key while the incident is open returns that
incident (``deduplicated: true``) and pages nobody; once it is resolved, the same key opens a new
incident. A partial unique index makes this hold across concurrent triggers and processes.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from typing import Any

from router.sandbox.app import AppResult, DbConn, Handler, Row, failed, iso, ok

_COLUMNS = (
    "id, incident_number, title, service_id, urgency, status, incident_key, details, resolution, "
    "created_at, updated_at"
)
INSERT_INCIDENT = f"""
INSERT INTO sandbox_pd_incidents
    (user_id, id, incident_number, title, service_id, urgency, status, incident_key, details)
VALUES ($1, $2, nextval('sandbox_pd_incident_number_seq'), $3, $4, $5, 'triggered', $6, $7)
ON CONFLICT (user_id, service_id, incident_key) WHERE status <> 'resolved' AND incident_key IS NOT NULL
DO NOTHING
RETURNING {_COLUMNS}
"""
SELECT_OPEN_BY_KEY = f"""
SELECT {_COLUMNS} FROM sandbox_pd_incidents
WHERE user_id = $1 AND service_id = $2 AND incident_key = $3 AND status <> 'resolved'
"""
SELECT_INCIDENT = f"SELECT {_COLUMNS} FROM sandbox_pd_incidents WHERE user_id = $1 AND id = $2"
UPDATE_INCIDENT = f"""
UPDATE sandbox_pd_incidents
SET status = coalesce($3, status), resolution = coalesce($4, resolution), title = coalesce($5, title),
    urgency = coalesce($6, urgency), updated_at = now()
WHERE user_id = $1 AND id = $2
RETURNING {_COLUMNS}
"""
SELECT_INCIDENTS = f"""
SELECT {_COLUMNS} FROM sandbox_pd_incidents
WHERE user_id = $1
  AND (cardinality($2::text[]) = 0 OR status = ANY($2::text[]))
  AND (cardinality($3::text[]) = 0 OR service_id = ANY($3::text[]))
  AND ($4::text IS NULL OR incident_key = $4)
ORDER BY incident_number DESC
LIMIT $5 OFFSET $6
"""

BASE_URL = "https://sandbox.pagerduty.com"
_ID_ALPHABET = string.ascii_uppercase + string.digits


def _new_id() -> str:
    return "Q" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(13))


def incident_json(row: Row) -> dict[str, Any]:
    """An incident in PagerDuty's REST shape."""
    return {
        "id": row["id"],
        "type": "incident",
        "incident_number": row["incident_number"],
        "title": row["title"],
        "summary": f"[#{row['incident_number']}] {row['title']}",
        "status": row["status"],
        "urgency": row["urgency"],
        "incident_key": row["incident_key"],
        "service": {"id": row["service_id"], "type": "service_reference"},
        "body": {"type": "incident_body", "details": row["details"]},
        "resolve_reason": row["resolution"],
        "html_url": f"{BASE_URL}/incidents/{row['id']}",
        "created_at": iso(row["created_at"]),
        "last_status_change_at": iso(row["updated_at"]),
    }


async def create_incident(conn: DbConn, user_id: str, args: Mapping[str, Any]) -> AppResult:
    title = str(args["incident__title"]).strip()
    service_id = str(args["incident__service__id"]).strip()
    if not title or not service_id:
        return failed("Invalid Input Provided: incident title and service id must not be empty")
    urgency = str(args.get("incident__urgency") or "high")
    key = args.get("incident__incident_key")
    key = str(key) if key not in (None, "") else None
    details = args.get("incident__body__details")
    # A concurrent resolve can free the key between the insert and the select: try again then.
    for _ in range(3):
        row = await conn.fetchrow(
            INSERT_INCIDENT, user_id, _new_id(), title, service_id, urgency, key, details
        )
        if row is not None:
            return ok({"incident": incident_json(row), "deduplicated": False}, external_ref=row["id"])
        existing = await conn.fetchrow(SELECT_OPEN_BY_KEY, user_id, service_id, key)
        if existing is not None:
            return ok(
                {"incident": incident_json(existing), "deduplicated": True}, external_ref=existing["id"]
            )
    return failed("Incident creation conflicted repeatedly with concurrent updates; try again")


async def update_incident(conn: DbConn, user_id: str, args: Mapping[str, Any]) -> AppResult:
    incident_id = str(args["id"]).strip()
    current = await conn.fetchrow(SELECT_INCIDENT, user_id, incident_id)
    if current is None:
        return failed("Incident Not Found")
    status = args.get("incident__status")
    if current["status"] == "resolved" and status is not None:
        return failed("Incident Already Resolved", external_ref=incident_id)
    row = await conn.fetchrow(
        UPDATE_INCIDENT,
        user_id,
        incident_id,
        status,
        args.get("incident__resolution"),
        args.get("incident__title"),
        args.get("incident__urgency"),
    )
    assert row is not None
    return ok({"incident": incident_json(row)}, external_ref=incident_id)


async def get_incident(conn: DbConn, user_id: str, args: Mapping[str, Any]) -> AppResult:
    row = await conn.fetchrow(SELECT_INCIDENT, user_id, str(args["id"]).strip())
    return failed("Incident Not Found") if row is None else ok({"incident": incident_json(row)})


async def list_incidents(conn: DbConn, user_id: str, args: Mapping[str, Any]) -> AppResult:
    limit, offset = int(args.get("limit") or 25), int(args.get("offset") or 0)
    rows = await conn.fetch(
        SELECT_INCIDENTS,
        user_id,
        [str(s) for s in args.get("statuses") or ()],
        [str(s) for s in args.get("service_ids") or ()],
        args.get("incident_key"),
        limit + 1,
        offset,
    )
    incidents = [incident_json(r) for r in rows[:limit]]
    return ok({"incidents": incidents, "limit": limit, "offset": offset, "more": len(rows) > limit})


PAGERDUTY_HANDLERS: dict[str, Handler] = {
    "PAGERDUTY_CREATE_INCIDENT_RECORD": create_incident,
    "PAGERDUTY_UPDATE_INCIDENT": update_incident,
    "PAGERDUTY_GET_INCIDENT": get_incident,
    "PAGERDUTY_LIST_INCIDENTS": list_incidents,
}
