"""The claim statements (used by ``detector/dedup.py``): ``dedup_rules`` in SQL, one statement each.

Both statements have the same shape and share every fragment below:

1. ``ev``: the anomalies, each with a *snapshot* read of its claim row and the no-op answer
   (``duplicate_in_window`` / ``nothing_open``) that read allows; a fingerprint whose anomalies
   are all no-ops is answered from here, with no lock and no write.
2. ``locked``: the other fingerprints' claim rows, ``FOR UPDATE``, in fingerprint order; this
   yields their latest committed version, which is what the decision uses.
3. ``cancelled``: a resolve job held for the window is cancelled (if nobody leased it yet) when
   an anomaly for a recovered fingerprint arrives; whether that worked decides ``reopened``.
4. ``steps`` / ``st``: the decision per anomaly, in order per fingerprint (a recursive fold in
   CLAIM_MANY, a single step in CLAIM_ONE), with ids for new incidents and jobs from nextval.
5. ``claims_w``, ``incidents_w``, ``jobs_w``: the writes. A claim row that did not exist when
   the statement started is inserted with ON CONFLICT DO NOTHING; if another claimer created it
   meanwhile, nothing at all is written for that fingerprint and its anomalies come back as
   ``retry`` (the caller runs them again and then finds the row).

Parameters: $1..$7 fingerprint, project, service, signal, kind, severity (1/2), latest anomaly
JSON (arrays in CLAIM_MANY, scalars in CLAIM_ONE); $8 window seconds; $9 repeat interval seconds;
CLAIM_MANY only: $10 each anomaly's position among the batch's anomalies for its fingerprint
(1, 2, ...; computed by the caller, so the statement needs no window function).
Output: one row per anomaly, in input order: reason, incident_id, job_id, job_kind.
"""

from __future__ import annotations

_NOOP = "('duplicate_in_window', 'nothing_open')"
_OCCURRENCE = "('new_incident', 'attached_to_open', 'escalated', 'repeat_due', 'reopened')"
_CANCELLED = """'{"cancelled": "the incident reopened inside the dedup window"}'::jsonb"""

# The no-op answers a snapshot read of claim row `c` allows for event `e` (NULL: must decide
# under the row lock).
_SNAPSHOT_NOOP = """
CASE
  WHEN e.kind = 'recovery' THEN
    CASE WHEN c.phase = 'active' THEN NULL
         WHEN c.window_until > now() THEN 'duplicate_in_window'
         ELSE 'nothing_open' END
  WHEN c.phase = 'active' AND e.severity <= c.severity AND c.window_until > now()
    THEN 'duplicate_in_window'
END"""

# dedup_rules.decide() on state `s` (phase 'none' when there is no claim row) and event `e`.
_DECIDE = """
CASE
  WHEN e.kind = 'recovery' THEN
    CASE WHEN s.phase = 'active' THEN 'resolved'
         WHEN s.phase = 'recovered' AND s.window_until > now() THEN 'duplicate_in_window'
         ELSE 'nothing_open' END
  WHEN s.phase = 'none' THEN 'new_incident'
  WHEN s.phase = 'recovered' THEN
    CASE WHEN s.window_until > now() AND s.held_ok THEN 'reopened' ELSE 'new_incident' END
  WHEN e.severity > s.severity THEN 'escalated'
  WHEN s.window_until > now() THEN 'duplicate_in_window'
  WHEN NOT s.ack AND s.paged_at + make_interval(secs => $9::float8) <= now() THEN 'repeat_due'
  ELSE 'attached_to_open'
END"""

# dedup_rules.job_for().
_JOB = """
CASE d.reason
  WHEN 'new_incident' THEN 'open'
  WHEN 'escalated' THEN 'escalate'
  WHEN 'repeat_due' THEN 'repeat'
  WHEN 'resolved' THEN 'resolve'
  WHEN 'reopened' THEN CASE WHEN e.severity > s.severity THEN 'escalate' END
END"""

_STEP_COLUMNS = (
    "fp, k, existed, incident_id, phase, severity, ack, window_until, paged_at, resolve_job_id, "
    "held_ok, applied, ord, reason, job_kind, job_id, cancels, project, service, signal, latest, "
    "occ, lat"
)

# One step of the fold: state `s` + event `e` → the state after (dedup_rules.advance()) and what
# the step did, in _STEP_COLUMNS order.
_STEP = f"""
    SELECT s.fp, e.k, s.existed,
           CASE WHEN d.reason = 'new_incident' THEN n.incident_id ELSE s.incident_id END,
           CASE WHEN d.reason IN ('new_incident', 'reopened') THEN 'active'
                WHEN d.reason = 'resolved' THEN 'recovered' ELSE s.phase END,
           CASE WHEN d.reason = 'new_incident' THEN e.severity
                WHEN d.reason IN ('resolved', 'duplicate_in_window', 'nothing_open') THEN s.severity
                ELSE greatest(s.severity, e.severity) END,
           CASE WHEN d.reason IN ('new_incident', 'reopened', 'resolved') THEN false ELSE s.ack END,
           CASE WHEN d.reason IN {_NOOP} THEN s.window_until
                ELSE now() + make_interval(secs => $8::float8) END,
           CASE WHEN j.job_kind IN ('open', 'escalate', 'repeat') THEN now() ELSE s.paged_at END,
           CASE WHEN d.reason = 'resolved' THEN n.job_id
                WHEN d.reason IN ('reopened', 'new_incident') THEN NULL ELSE s.resolve_job_id END,
           CASE WHEN d.reason = 'resolved' THEN true
                WHEN d.reason IN ('reopened', 'new_incident') THEN false ELSE s.held_ok END,
           s.applied + CASE WHEN d.reason IN {_NOOP} THEN 0 ELSE 1 END,
           e.ord, d.reason, j.job_kind, n.job_id,
           CASE WHEN d.reason = 'reopened' THEN s.resolve_job_id END,
           e.project, e.service, e.signal, e.latest,
           CASE WHEN d.reason = 'new_incident' THEN 1
                WHEN d.reason IN {_OCCURRENCE} THEN s.occ + 1 ELSE s.occ END,
           CASE WHEN d.reason IN {_OCCURRENCE} THEN e.latest ELSE s.lat END
    FROM {{state}} s
    JOIN ev e ON e.fp = s.fp AND e.k = s.k + 1
    CROSS JOIN LATERAL (SELECT {_DECIDE} AS reason) d
    CROSS JOIN LATERAL (SELECT {_JOB} AS job_kind) j
    CROSS JOIN LATERAL (
        SELECT CASE WHEN d.reason = 'new_incident' THEN nextval('incidents_id_seq') END AS incident_id,
               CASE WHEN j.job_kind IS NOT NULL THEN nextval('notification_jobs_id_seq') END AS job_id
        OFFSET 0  -- evaluated once per row: never inline nextval into several columns
    ) n"""

_LOCK = f"""
-- the latest version of each claim row that may change, locked in fingerprint order (so that
-- concurrent batches cannot deadlock); a row that did not exist yet is created by claims_w
locked AS MATERIALIZED (
    SELECT l.*
    FROM (SELECT DISTINCT fp FROM ev WHERE noop IS NULL ORDER BY fp) t
    CROSS JOIN LATERAL (
        SELECT c.* FROM incident_claims c WHERE c.fingerprint = t.fp FOR UPDATE
    ) l
),
cancelled AS (
    UPDATE notification_jobs j
    SET status = 'cancelled', finished_at = now(), updated_at = now(), result = {_CANCELLED}
    FROM locked l
    WHERE j.id = l.resolve_job_id AND j.status = 'pending'
      AND l.phase = 'recovered' AND l.window_until > now()
      AND l.fingerprint IN (SELECT fp FROM ev WHERE kind <> 'recovery')
    RETURNING j.id
),
-- the state each fingerprint starts from (k = 0)
base AS MATERIALIZED (
    SELECT t.fp, 0::bigint AS k, l.fingerprint IS NOT NULL AS existed, l.incident_id,
           COALESCE(l.phase, 'none') AS phase, l.severity, COALESCE(l.acknowledged, false) AS ack,
           l.window_until, l.paged_at, l.resolve_job_id,
           COALESCE(l.resolve_job_id IN (SELECT id FROM cancelled), false) AS held_ok,
           0::bigint AS applied, NULL::bigint AS ord, NULL::text AS reason, NULL::text AS job_kind,
           NULL::bigint AS job_id, NULL::bigint AS cancels, NULL::text AS project,
           NULL::text AS service, NULL::text AS signal, NULL::text AS latest,
           0::bigint AS occ, NULL::text AS lat
    FROM (SELECT DISTINCT fp FROM ev WHERE noop IS NULL) t
    LEFT JOIN locked l ON l.fingerprint = t.fp
),"""

_WRITE = f"""
claims_w AS (
    INSERT INTO incident_claims AS c
        (fingerprint, incident_id, phase, severity, acknowledged, window_until, paged_at,
         resolve_job_id, claims)
    SELECT DISTINCT ON (f.fp) f.fp, f.incident_id, f.phase, f.severity, f.ack, f.window_until,
           f.paged_at, f.resolve_job_id, f.applied
    FROM st f WHERE f.applied > 0
    ORDER BY f.fp, f.k DESC
    ON CONFLICT (fingerprint) DO UPDATE
    SET incident_id = excluded.incident_id, phase = excluded.phase, severity = excluded.severity,
        acknowledged = excluded.acknowledged, window_until = excluded.window_until,
        paged_at = excluded.paged_at, resolve_job_id = excluded.resolve_job_id,
        claims = c.claims + excluded.claims, updated_at = now()
    -- only a row this statement locked; one another claimer created meanwhile means "retry"
    WHERE c.fingerprint IN (SELECT fingerprint FROM locked)
    RETURNING c.fingerprint
),
ok AS MATERIALIZED (SELECT fingerprint AS fp FROM claims_w),
incidents_w AS (
    INSERT INTO incidents AS i
        (id, fingerprint, project, service, signal, status, severity, occurrences, latest,
         resolved_at, resolved_by)
    SELECT t.incident_id, t.fp, t.project, t.service, t.signal,
           CASE WHEN t.phase = 'recovered' THEN 'resolved' WHEN t.ack THEN 'acknowledged' ELSE 'open' END,
           t.severity, t.occ, t.lat::jsonb,
           CASE WHEN t.phase = 'recovered' THEN now() END,
           CASE WHEN t.phase = 'recovered' THEN 'detector' END
    -- each incident's state after its last step in the batch: the fold carries the occurrences
    -- it added (occ) and its latest anomaly (lat); severity only rises within an incident
    FROM (
        SELECT DISTINCT ON (s.incident_id) s.*
        FROM st s
        WHERE s.reason NOT IN {_NOOP} AND s.fp IN (SELECT fp FROM ok)
        ORDER BY s.incident_id, s.k DESC
    ) t
    -- ascending ids: an incident resolved in this batch is updated before its successor is
    -- inserted, so the two never overlap in the one-unresolved-per-fingerprint index
    ORDER BY t.incident_id
    ON CONFLICT (id) DO UPDATE
    SET status = excluded.status,
        severity = greatest(i.severity, excluded.severity),
        occurrences = i.occurrences + excluded.occurrences,
        last_seen = CASE WHEN excluded.occurrences > 0 THEN now() ELSE i.last_seen END,
        latest = COALESCE(excluded.latest, i.latest),
        resolved_at = excluded.resolved_at,
        resolved_by = excluded.resolved_by,
        updated_at = now()
),
jobs_w AS (
    INSERT INTO notification_jobs (id, incident_id, kind, status, next_attempt_at, finished_at, result)
    SELECT s.job_id, s.incident_id, s.job_kind,
           CASE WHEN x.cancelled THEN 'cancelled' ELSE 'pending' END,
           CASE WHEN s.job_kind = 'resolve' THEN s.window_until ELSE now() END,
           CASE WHEN x.cancelled THEN now() END,
           CASE WHEN x.cancelled THEN {_CANCELLED} END
    FROM st s
    CROSS JOIN LATERAL (
        SELECT s.job_id IN (SELECT cancels FROM st WHERE cancels IS NOT NULL) AS cancelled
    ) x
    WHERE s.job_id IS NOT NULL AND s.fp IN (SELECT fp FROM ok)
    ORDER BY s.job_id
)
SELECT CASE WHEN s.fp IS NULL THEN e.noop
            WHEN NOT s.existed AND s.fp NOT IN (SELECT fp FROM ok) THEN 'retry'
            ELSE s.reason END AS reason,
       COALESCE(s.incident_id, e.seen_incident) AS incident_id,
       s.job_id, s.job_kind
FROM ev e
LEFT JOIN st s ON s.ord = e.ord
ORDER BY e.ord
"""

CLAIM_MANY = f"""
WITH RECURSIVE
ev AS MATERIALIZED (
    SELECT e.ord, e.fp COLLATE "C" AS fp, e.project, e.service, e.signal, e.kind, e.severity,
           e.latest, e.k,
           c.incident_id AS seen_incident, {_SNAPSHOT_NOOP} AS noop
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int2[], $7::text[],
                $10::int8[])
         WITH ORDINALITY AS e (fp, project, service, signal, kind, severity, latest, k, ord)
    -- a plain read of the snapshot; LIMIT keeps it a per-anomaly index probe whatever the plan
    LEFT JOIN LATERAL (
        SELECT c.incident_id, c.phase, c.severity, c.window_until
        FROM incident_claims c WHERE c.fingerprint = e.fp LIMIT 1
    ) c ON true
),
{_LOCK}
steps ({_STEP_COLUMNS}) AS (
    SELECT * FROM base
  UNION ALL
    {_STEP.format(state="steps")}
),
st AS MATERIALIZED (SELECT * FROM steps WHERE k > 0),
{_WRITE}"""

CLAIM_ONE = f"""
WITH
ev AS MATERIALIZED (
    SELECT 1::bigint AS ord, $1::text COLLATE "C" AS fp, $2::text AS project, $3::text AS service,
           $4::text AS signal, $5::text AS kind, $6::int2 AS severity, $7::text AS latest,
           1::bigint AS k, c.incident_id AS seen_incident, {_SNAPSHOT_NOOP} AS noop
    FROM (SELECT $5::text AS kind, $6::int2 AS severity) e
    LEFT JOIN incident_claims c ON c.fingerprint = $1
),
{_LOCK}
st ({_STEP_COLUMNS}) AS MATERIALIZED ({_STEP.format(state="base")}),
{_WRITE}"""

# The no-op answer for one anomaly from a plain read ($1 fingerprint, $2 kind, $3 severity):
# reason NULL means "this claim writes: run CLAIM_ONE".
PRECHECK = f"""
SELECT c.incident_id, {_SNAPSHOT_NOOP} AS reason
FROM (SELECT $2::text AS kind, $3::int2 AS severity) e
LEFT JOIN incident_claims c ON c.fingerprint = $1
"""
