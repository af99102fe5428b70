"""The notification outbox (``notification_jobs``): what workers lease, and how a job ends.

Claims (``detector/dedup.py``) write jobs in the same transaction as the incident change; this
module hands them to workers. ``Outbox(db, owner, config)``, ``owner`` naming the worker (for
example ``host:pid:random``):

- ``lease(n, lease_for)`` → up to ``n`` jobs, oldest first, locked with ``FOR UPDATE SKIP LOCKED``
  so concurrent workers never get the same job. A job is due when it is ``pending`` and its
  ``next_attempt_at`` has passed, or ``leased`` and its lease has expired (its worker died or
  hung: the lease is taken over; a leased job's ``next_attempt_at`` is its lease's expiry, the
  time anyone may next attempt it). Jobs of one incident go strictly in order: a job is not handed
  out while an older job of the same incident is pending or leased (a resolve never overtakes its
  open). Each lease increments ``attempts`` and ``lease_token`` and sets ``lease_owner`` and
  ``lease_expires_at = now() + lease_for``. An expired lease that had already used
  ``max_attempts`` is dead-lettered instead of leased again, so may return fewer than ``n``.
- ``complete(job, result)``: ``done``, with ``result`` (a JSON object) stored.
- ``fail(job, retryable, error)``: retryable and attempts left → ``pending`` again after
  ``min(backoff_cap, backoff_base * 2 ** (attempts - 1))`` seconds; otherwise ``dead``
  (dead-lettered: kept and visible, never deleted; ``requeue`` puts it back).
- ``release(job)``: give the job back untouched (graceful shutdown): ``pending``, due now, and
  the attempt is not counted.
- ``defer(job, until, note)``: like ``release``, but due at ``until`` (a notification held back
  by quiet hours runs again when they end).
- ``extend(job, lease_for)``: keep a lease alive during long work.
- ``incident(job)``: the job's :class:`~detector.models.Incident` as it is now.

Fencing: ``complete``, ``fail``, ``release`` and ``extend`` change the row only where
``status = 'leased' AND lease_owner = <this worker> AND lease_token = <the token this lease got>``.
A worker whose lease expired and was taken over (new token) therefore cannot overwrite the new
owner's outcome: it gets :class:`~detector.dedup_errors.LeaseLost`, and should drop the job.
A worker that finishes after its lease expired but before anyone took the job over still
completes it (its token is still current).

All times are the database clock. Errors: ``detector/dedup_errors.py``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from detector.dedup import DedupConfig, Executor, own_transaction
from detector.dedup_errors import LeaseLost, translated
from detector.incidents import Incidents
from detector.models import Incident, JobKind, JobStatus, NotificationJob

_COLUMNS = """id, incident_id, kind, status, attempts, lease_owner, lease_expires_at,
    next_attempt_at, last_error, created_at, lease_token, result, finished_at"""

_EARLIER_UNFINISHED = """NOT EXISTS (
        SELECT 1 FROM notification_jobs e
        WHERE e.incident_id = j.incident_id AND e.id < j.id AND e.status IN ('pending', 'leased'))"""

_EXHAUSTED = "(j.status = 'leased' AND j.attempts >= $4)"

# $1 n, $2 owner, $3 lease seconds, $4 max attempts. A job is due when next_attempt_at has
# passed: for a pending job that is its (retry) time, for a leased one the lease's expiry.
LEASE = f"""
WITH picked AS (
    SELECT j.id FROM notification_jobs j
    WHERE j.status IN ('pending', 'leased') AND j.next_attempt_at <= now() AND {_EARLIER_UNFINISHED}
    ORDER BY j.next_attempt_at, j.id
    LIMIT $1
    FOR UPDATE OF j SKIP LOCKED
)
UPDATE notification_jobs j
SET status = CASE WHEN {_EXHAUSTED} THEN 'dead' ELSE 'leased' END,
    attempts = CASE WHEN {_EXHAUSTED} THEN j.attempts ELSE j.attempts + 1 END,
    lease_owner = CASE WHEN {_EXHAUSTED} THEN NULL ELSE $2 END,
    lease_token = CASE WHEN {_EXHAUSTED} THEN j.lease_token ELSE j.lease_token + 1 END,
    lease_expires_at = CASE WHEN {_EXHAUSTED} THEN NULL
                            ELSE now() + make_interval(secs => $3::float8) END,
    next_attempt_at = CASE WHEN {_EXHAUSTED} THEN j.next_attempt_at
                           ELSE now() + make_interval(secs => $3::float8) END,
    last_error = CASE WHEN {_EXHAUSTED}
                      THEN 'dead-lettered: the lease expired on every one of '
                           || j.attempts || ' attempts (last error: '
                           || COALESCE(j.last_error, 'none') || ')'
                      ELSE j.last_error END,
    finished_at = CASE WHEN {_EXHAUSTED} THEN now() END,
    updated_at = now()
FROM picked p
WHERE j.id = p.id
RETURNING {", ".join("j." + c.strip() for c in _COLUMNS.split(","))}
"""

_FENCE = "id = $1 AND status = 'leased' AND lease_owner = $2 AND lease_token = $3"

# $4 result JSON.
COMPLETE = f"""
UPDATE notification_jobs
SET status = 'done', result = $4::jsonb, lease_owner = NULL, lease_expires_at = NULL,
    finished_at = now(), updated_at = now()
WHERE {_FENCE}
RETURNING {_COLUMNS}
"""

_RETRY = "($4 AND attempts < $6)"

# $4 retryable, $5 error, $6 max attempts, $7 backoff base, $8 backoff cap (seconds).
FAIL = f"""
UPDATE notification_jobs
SET status = CASE WHEN {_RETRY} THEN 'pending' ELSE 'dead' END,
    next_attempt_at = CASE WHEN {_RETRY}
        THEN now() + make_interval(secs => least($8::float8, $7::float8 * power(2::float8, attempts - 1)))
        ELSE next_attempt_at END,
    finished_at = CASE WHEN {_RETRY} THEN NULL ELSE now() END,
    last_error = $5, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
WHERE {_FENCE}
RETURNING {_COLUMNS}
"""

RELEASE = f"""
UPDATE notification_jobs
SET status = 'pending', attempts = attempts - 1, next_attempt_at = now(),
    lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
WHERE {_FENCE}
RETURNING {_COLUMNS}
"""

# $4 when (timestamptz), $5 note. The attempt is not counted: nothing failed.
DEFER = f"""
UPDATE notification_jobs
SET status = 'pending', attempts = attempts - 1, next_attempt_at = $4, last_error = $5,
    lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
WHERE {_FENCE}
RETURNING {_COLUMNS}
"""

# $4 lease seconds.
EXTEND = f"""
UPDATE notification_jobs
SET lease_expires_at = now() + make_interval(secs => $4::float8),
    next_attempt_at = now() + make_interval(secs => $4::float8), updated_at = now()
WHERE {_FENCE}
RETURNING {_COLUMNS}
"""

REQUEUE = f"""
UPDATE notification_jobs
SET status = 'pending', attempts = 0, next_attempt_at = now(), finished_at = NULL, updated_at = now()
WHERE id = $1 AND status = 'dead'
RETURNING {_COLUMNS}
"""

UNFINISHED = "SELECT count(*) FROM notification_jobs WHERE status IN ('pending', 'leased')"
LIST = f"""
SELECT {_COLUMNS} FROM notification_jobs
WHERE ($1::bigint IS NULL OR incident_id = $1)
  AND ($2::text IS NULL OR status = $2)
  AND ($3::bigint IS NULL OR id < $3)
ORDER BY id DESC
LIMIT $4
"""

_MAX_ERROR = 4000
_MAX_LIST = 1000


class Outbox:
    """One worker's view of the outbox. Safe to share between that worker's tasks."""

    def __init__(self, db: Executor, owner: str, config: DedupConfig | None = None) -> None:
        if not owner or "\x00" in owner:
            raise ValueError("owner must name the worker (non-empty, no NUL)")
        self._db = own_transaction(db)
        self.owner = owner
        self.config = config if config is not None else DedupConfig()

    async def lease(self, n: int, lease_for: float) -> list[NotificationJob]:
        """Lease up to ``n`` due jobs for ``lease_for`` seconds (see the module docstring)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if not lease_for > 0:
            raise ValueError(f"lease_for must be > 0 seconds, got {lease_for}")
        own_transaction(self._db)
        with translated("lease jobs"):
            rows = await self._db.fetch(LEASE, n, self.owner, lease_for, self.config.max_attempts)
        jobs = [job_from_row(r) for r in rows]
        return sorted((j for j in jobs if j.status is JobStatus.LEASED), key=lambda j: j.id)

    async def complete(self, job: NotificationJob, result: Mapping[str, Any]) -> NotificationJob:
        """Mark the leased job done with ``result``. Raises LeaseLost if the lease is gone."""
        try:
            payload = json.dumps(_scrub(dict(result)), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"result must be a JSON object: {exc}") from None
        return await self._fenced(COMPLETE, "complete job", job, payload)

    async def fail(self, job: NotificationJob, retryable: bool, error: str) -> NotificationJob:
        """Record a failed attempt: retry later with backoff, or dead-letter (see module docstring)."""
        cfg = self.config
        return await self._fenced(
            FAIL,
            "fail job",
            job,
            retryable,
            _clip(error),
            cfg.max_attempts,
            cfg.backoff_base,
            cfg.backoff_cap,
        )

    async def release(self, job: NotificationJob) -> NotificationJob:
        """Give the job back without counting the attempt (graceful shutdown)."""
        return await self._fenced(RELEASE, "release job", job)

    async def defer(self, job: NotificationJob, until: datetime, note: str) -> NotificationJob:
        """Give the job back to run again at ``until`` (e.g. when quiet hours end); the attempt
        is not counted. ``note`` says why (kept in ``last_error``)."""
        if until.tzinfo is None:
            raise ValueError("until must be timezone-aware")
        return await self._fenced(DEFER, "defer job", job, until, _clip(note))

    async def extend(self, job: NotificationJob, lease_for: float) -> NotificationJob:
        """Push the lease's expiry to ``lease_for`` seconds from now; returns the updated job."""
        if not lease_for > 0:
            raise ValueError(f"lease_for must be > 0 seconds, got {lease_for}")
        return await self._fenced(EXTEND, "extend lease", job, lease_for)

    async def incident(self, job: NotificationJob) -> Incident:
        """The job's incident, as it is now."""
        return await Incidents(self._db, self.config).get(job.incident_id)

    async def requeue(self, job_id: int) -> NotificationJob | None:
        """Put a dead-lettered job back in the queue (attempts reset); None if it is not dead."""
        with translated("requeue job"):
            row = await self._db.fetchrow(REQUEUE, job_id)
        return None if row is None else job_from_row(row)

    async def jobs(
        self,
        *,
        incident_id: int | None = None,
        status: JobStatus | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[NotificationJob]:
        """Jobs newest first (dead letters: ``status=JobStatus.DEAD``)."""
        if not 1 <= limit <= _MAX_LIST:
            raise ValueError(f"limit must be in [1, {_MAX_LIST}], got {limit}")
        with translated("list jobs"):
            rows = await self._db.fetch(
                LIST, incident_id, None if status is None else status.value, before_id, limit
            )
        return [job_from_row(r) for r in rows]

    async def unfinished(self) -> int:
        """Jobs not yet done, dead or cancelled (pending, including held ones, or leased)."""
        with translated("count jobs"):
            count: int = await self._db.fetchval(UNFINISHED)
        return count

    async def _fenced(self, sql: str, action: str, job: NotificationJob, *args: object) -> NotificationJob:
        if job.lease_owner != self.owner:
            raise LeaseLost(f"{action}: job {job.id} was not leased by this worker ({self.owner!r})")
        own_transaction(self._db)
        with translated(action):
            row = await self._db.fetchrow(sql, job.id, self.owner, job.lease_token, *args)
        if row is None:
            raise LeaseLost(
                f"{action}: job {job.id} is no longer leased by {self.owner!r} under token "
                f"{job.lease_token} (the lease expired and was taken over, or the job already ended)"
            )
        return job_from_row(row)


def _scrub(value: Any) -> Any:
    """``value`` with NUL characters replaced (jsonb cannot store U+0000)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, Mapping):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _clip(error: str) -> str:
    text = error.replace("\x00", "\ufffd")
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"


def job_from_row(row: asyncpg.Record) -> NotificationJob:
    """The one place a ``notification_jobs`` row becomes a :class:`NotificationJob`."""
    result = row["result"]
    return NotificationJob(
        id=row["id"],
        incident_id=row["incident_id"],
        kind=JobKind(row["kind"]),
        status=JobStatus(row["status"]),
        attempts=row["attempts"],
        lease_owner=row["lease_owner"],
        lease_expires_at=row["lease_expires_at"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        lease_token=row["lease_token"],
        result=None if result is None else json.loads(result),
        finished_at=row["finished_at"],
    )
