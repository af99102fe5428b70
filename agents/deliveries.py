"""The deliveries record (table ``deliveries``, migration 0006): one row per channel action.

The guard (:mod:`agents.guard`) is the only writer. For every action it calls
:meth:`DeliveryStore.reserve` *before* the tool call, with the action's idempotency key
(:func:`agents.planner.idempotency_key`; unique in the table), and :meth:`complete` or
:meth:`fail` after it. ``reserve`` answers what the key's history allows:

==============  =====================================================================
``new``         first time: the row is now ``reserved`` for this attempt; send
``retry``       an earlier attempt failed (nothing sent); reserved again; send
``unknown``     an earlier attempt reserved and never finished (it crashed, or its call
                timed out): the action may or may not have happened. Reserved again;
                the guard settles it before sending anything (see :mod:`agents.guard`)
``in_flight``   an unfinished attempt reserved less than ``in_flight_grace`` seconds ago and
                may still be running: left alone; try again later
``done``        already sent: do not call again (``external_ref`` says what was made)
==============  =====================================================================

Each reservation carries the row's ``attempts`` after it was taken; ``complete`` and ``fail``
change the row only under that number, so an attempt that was taken over cannot overwrite the
newer one's outcome. Times are the database clock. Database errors propagate as asyncpg's own
(the worker treats them as retryable).

Also here: the planner's inputs that come from this record (:meth:`prior`: what was sent for an
incident; :meth:`sent_in_window`: an owner's recent new notifications per channel, for rate
limits) and reads for people and tests (:meth:`for_incident`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg

from agents.planner import NEW_NOTIFICATIONS, ActionKind, PriorDelivery
from agents.policy import CHANNEL_ORDER, Channel, ServicePolicy
from agents.redact import redact, redact_text
from detector.models import JobKind

_RETURNING = "attempts, status, external_ref, reserved_at"

INSERT = f"""
INSERT INTO deliveries (idempotency_key, incident_id, job_id, job_kind, owner, channel, action,
                        tool_slug, target, arguments, path, fallback_for, status)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12, 'reserved')
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING {_RETURNING}
"""

# Take over a key whose last attempt failed, or never finished and reserved at least $6 seconds
# ago (a younger unfinished attempt may still be in flight). The old row is read under its lock.
TAKE_OVER = """
WITH old AS (
    SELECT idempotency_key, status, reserved_at FROM deliveries WHERE idempotency_key = $1 FOR UPDATE
)
UPDATE deliveries AS d
   SET status = 'reserved', attempts = d.attempts + 1, job_id = $2, path = $3, arguments = $4::jsonb,
       tool_slug = $5, reserved_at = now(), completed_at = NULL, error = NULL, retryable = NULL
  FROM old
 WHERE d.idempotency_key = old.idempotency_key
   AND (old.status = 'failed'
        OR (old.status = 'reserved' AND old.reserved_at <= now() - make_interval(secs => $6::float8)))
RETURNING d.attempts, old.status AS previous, old.reserved_at AS previous_reserved_at,
          extract(epoch FROM now() - old.reserved_at) AS previous_age
"""

SELECT_STATE = "SELECT attempts, status, external_ref FROM deliveries WHERE idempotency_key = $1"

COMPLETE = """
UPDATE deliveries
   SET status = 'sent', external_ref = $3, recovered = $4, error = NULL, retryable = NULL,
       completed_at = now()
 WHERE idempotency_key = $1 AND attempts = $2 AND status = 'reserved'
RETURNING id
"""

FAIL = """
UPDATE deliveries
   SET status = 'failed', error = $3, retryable = $4, completed_at = now()
 WHERE idempotency_key = $1 AND attempts = $2 AND status = 'reserved'
RETURNING id
"""

PRIOR = """
SELECT channel, action, target, external_ref, job_kind FROM deliveries
 WHERE incident_id = $1 AND status = 'sent'
 ORDER BY id
"""

# $2..$4: window seconds for pagerduty, slack, jira (NULL: no limit, not counted).
SENT_IN_WINDOW = """
SELECT
  count(*) FILTER (WHERE channel = 'pagerduty' AND reserved_at > now() - make_interval(secs => $2)),
  count(*) FILTER (WHERE channel = 'slack' AND reserved_at > now() - make_interval(secs => $3)),
  count(*) FILTER (WHERE channel = 'jira' AND reserved_at > now() - make_interval(secs => $4))
  FROM deliveries
 WHERE owner = $1 AND action = ANY($5::text[]) AND status <> 'failed'
   AND reserved_at > now() - make_interval(secs => greatest($2, $3, $4))
"""

FOR_INCIDENT = """
SELECT id, idempotency_key, incident_id, job_id, job_kind, owner, channel, action, tool_slug, target,
       arguments::text AS arguments, path, fallback_for, status, attempts, external_ref, error,
       retryable, recovered, reserved_at, completed_at
  FROM deliveries WHERE incident_id = $1 ORDER BY id
"""

_MAX_ERROR = 2000


class Claim(StrEnum):
    NEW = "new"
    RETRY = "retry"
    UNKNOWN = "unknown"
    IN_FLIGHT = "in_flight"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Reservation:
    """What :meth:`DeliveryStore.reserve` decided for one key."""

    key: str
    claim: Claim
    attempts: int
    """The row's attempt number now held (fences complete/fail)."""
    external_ref: str | None = None
    """For ``done``: what the earlier attempt made."""
    previous_reserved_at: datetime | None = None
    """For ``unknown``: when the unfinished attempt reserved (where to start looking)."""
    previous_age: float = 0.0
    """For ``unknown``: seconds since that attempt reserved."""


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """The action being reserved."""

    key: str
    incident_id: int
    job_id: int
    job_kind: JobKind
    owner: str
    channel: Channel
    action: ActionKind
    tool_slug: str
    target: str | None
    arguments: Mapping[str, Any]
    """As they will be sent; stored redacted."""
    path: str
    """``rules`` or ``agent``."""
    fallback_for: Channel | None = None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One row of the record, as read back."""

    id: int
    key: str
    incident_id: int
    job_id: int | None
    job_kind: JobKind
    owner: str
    channel: Channel
    action: ActionKind
    tool_slug: str
    target: str | None
    arguments: Mapping[str, Any]
    path: str
    fallback_for: Channel | None
    status: str
    attempts: int
    external_ref: str | None
    error: str | None
    retryable: bool | None
    recovered: str | None
    reserved_at: datetime
    completed_at: datetime | None


class DeliveryLost(Exception):
    """A completion found its reservation taken over by a newer attempt. Permanent for this
    attempt: the newer attempt's outcome stands."""

    retryable = False


def _clip(text: str) -> str:
    text = redact_text(text.replace("\x00", "\ufffd"))
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"


class DeliveryStore:
    """Reads and writes ``deliveries``. Safe to share between tasks."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def reserve(self, req: ActionRequest, in_flight_grace: float = 0.0) -> Reservation:
        """Reserve ``req.key`` for this attempt (see the module docstring for the answers).

        An unfinished attempt that reserved less than ``in_flight_grace`` seconds ago is left
        alone (``in_flight``): it may still be running somewhere.
        """
        stored = json.dumps(redact(dict(req.arguments)), sort_keys=True, default=str)
        row = await self._pool.fetchrow(
            INSERT,
            req.key,
            req.incident_id,
            req.job_id,
            req.job_kind.value,
            req.owner,
            req.channel.value,
            req.action.value,
            req.tool_slug,
            req.target,
            stored,
            req.path,
            None if req.fallback_for is None else req.fallback_for.value,
        )
        if row is not None:
            return Reservation(req.key, Claim.NEW, row["attempts"])
        taken = await self._pool.fetchrow(
            TAKE_OVER, req.key, req.job_id, req.path, stored, req.tool_slug, float(in_flight_grace)
        )
        if taken is not None:
            if taken["previous"] == "failed":
                return Reservation(req.key, Claim.RETRY, taken["attempts"])
            return Reservation(
                req.key,
                Claim.UNKNOWN,
                taken["attempts"],
                previous_reserved_at=taken["previous_reserved_at"],
                previous_age=float(taken["previous_age"]),
            )
        row = await self._pool.fetchrow(SELECT_STATE, req.key)
        if row is None or row["status"] == "failed":  # changed under us: a concurrent attempt; later
            return Reservation(req.key, Claim.IN_FLIGHT, 0 if row is None else row["attempts"])
        if row["status"] == "reserved":
            return Reservation(req.key, Claim.IN_FLIGHT, row["attempts"])
        return Reservation(req.key, Claim.DONE, row["attempts"], external_ref=row["external_ref"])

    async def complete(
        self, res: Reservation, external_ref: str | None, recovered: str | None = None
    ) -> None:
        """Mark the reserved action sent. Raises DeliveryLost if a newer attempt took it over."""
        if await self._pool.fetchval(COMPLETE, res.key, res.attempts, external_ref, recovered) is None:
            raise DeliveryLost(f"delivery {res.key} attempt {res.attempts} was taken over")

    async def fail(self, res: Reservation, error: str, retryable: bool) -> None:
        """Mark the reserved action failed (nothing was sent). Raises DeliveryLost like complete."""
        if await self._pool.fetchval(FAIL, res.key, res.attempts, _clip(error), retryable) is None:
            raise DeliveryLost(f"delivery {res.key} attempt {res.attempts} was taken over")

    async def prior(self, incident_id: int) -> tuple[PriorDelivery, ...]:
        """Everything sent for the incident, oldest first (the planner's ``prior``)."""
        rows = await self._pool.fetch(PRIOR, incident_id)
        return tuple(
            PriorDelivery(
                channel=Channel(r["channel"]),
                action=ActionKind(r["action"]),
                target=r["target"] or "",
                external_ref=r["external_ref"],
                job_kind=JobKind(r["job_kind"]),
            )
            for r in rows
        )

    async def sent_in_window(self, owner: str, policy: ServicePolicy) -> dict[Channel, int]:
        """The owner's new notifications per rate-limited channel within that channel's window."""
        windows: dict[Channel, float | None] = {}
        for channel in CHANNEL_ORDER:
            limit = policy.channel(channel).rate_limit
            windows[channel] = None if limit is None else limit.window.total_seconds()
        if all(w is None for w in windows.values()):
            return {}
        args = [windows[c] if windows[c] is not None else 0.0 for c in CHANNEL_ORDER]
        row = await self._pool.fetchrow(
            SENT_IN_WINDOW, owner, *args, sorted(a.value for a in NEW_NOTIFICATIONS)
        )
        assert row is not None  # an aggregate always returns one row
        return {c: int(row[i]) for i, c in enumerate(CHANNEL_ORDER) if windows[c] is not None}

    async def for_incident(self, incident_id: int) -> list[DeliveryRow]:
        """Every row for the incident, oldest first."""
        rows = await self._pool.fetch(FOR_INCIDENT, incident_id)
        return [_row(r) for r in rows]


def _row(r: asyncpg.Record) -> DeliveryRow:
    fallback = r["fallback_for"]
    return DeliveryRow(
        id=r["id"],
        key=r["idempotency_key"],
        incident_id=r["incident_id"],
        job_id=r["job_id"],
        job_kind=JobKind(r["job_kind"]),
        owner=r["owner"],
        channel=Channel(r["channel"]),
        action=ActionKind(r["action"]),
        tool_slug=r["tool_slug"],
        target=r["target"],
        arguments=json.loads(r["arguments"]),
        path=r["path"],
        fallback_for=None if fallback is None else Channel(fallback),
        status=r["status"],
        attempts=r["attempts"],
        external_ref=r["external_ref"],
        error=r["error"],
        retryable=r["retryable"],
        recovered=r["recovered"],
        reserved_at=r["reserved_at"],
        completed_at=r["completed_at"],
    )
