"""The claim statements (used by ``detector/dedup.py``): ``dedup_rules`` in SQL, one statement each.

``PRECHECK`` / ``PRECHECK_MANY`` are the read-only pre-check: the no-op answers a snapshot read
allows, from fingerprints and codes only. ``CLAIM_NEW`` opens new incidents for anomalies that
the pre-check found alone in their batch for a fingerprint with no claim row: what the
``new_incident`` step below writes, without the fold. Everything else goes to ``CLAIM_ONE`` /
``CLAIM_MANY``, which have the same shape and share every fragment below:

1. ``ev``: the anomalies, each with a *snapshot* read of its claim row and the no-op answer
   (``duplicate_in_window`` / ``nothing_open``) that read allows; a fingerprint whose anomalies
   are all no-ops is answered from here, with no lock and no write.
2. ``fps``: per fingerprint, whether it may write, whether the snapshot saw its claim row, and
   how many anomalies it has. ``locked``: the claim rows of the fingerprints that may write,
   ``FOR UPDATE``, in fingerprint order; this yields their latest committed version, which is
   what the decision uses.
3. ``cancelled``: a resolve job held for the window is cancelled (if nobody leased it yet) when
   an anomaly for a recovered fingerprint arrives; whether that worked decides ``reopened``.
4. ``steps`` / ``st``: the decision per anomaly, in order per fingerprint (a recursive fold in
   CLAIM_MANY, a single step for fingerprints with one anomaly and in CLAIM_ONE), with ids for
   new incidents and jobs from nextval.
5. ``claims_u``/``claims_i``, ``incidents_u``/``incidents_i``, ``jobs_w``: the writes, each
   row once, with its state after the fingerprint's (incident's) last step. A claim row that did
   not exist when the statement started is inserted with ON CONFLICT DO NOTHING; if another
   claimer created it meanwhile, nothing at all is written for that fingerprint and its
   anomalies come back as ``retry`` (the caller runs them again and then finds the row).

Every choice here was measured with benchmarks/dedup_claims.py (EXPLAIN ANALYZE for the parts):
CTE row estimates are guesses, so no step joins two batch-sized CTEs in a way a nested loop
could be planned for; per-incident results are carried through the fold instead of aggregated
afterwards; existing rows are UPDATEd (cheaper than INSERT ... ON CONFLICT DO UPDATE).

Parameters (arrays in CLAIM_MANY, scalars in CLAIM_ONE): $1 fingerprint; $2 severity code (1
warning, 2 critical, 0 a recovery); $3 the anomaly as JSON (NULL for a recovery); $4 the subject
as a small JSON object (project, service, signal), or NULL where the caller has seen the
fingerprint's incident already (a new incident then reads its subject from the anomaly JSON, a
tenth as fast to parse); then $5 window seconds and $6 repeat interval seconds; CLAIM_MANY
only: $7 each anomaly's position among the batch's anomalies for its fingerprint (1, 2, ...;
computed by the caller, so the statement needs no window function). In CLAIM_MANY $1, $2 and $7
come as one text each (comma-separated hex fingerprints, one digit per code, comma-separated
positions): asyncpg type-checks every element of an array parameter, so fewer, simpler arrays
are cheaper to send.
Output: one row per anomaly, in no particular order: ord (its 1-based position in the
parameters), reason, incident_id, job_id, job_kind.
"""

from __future__ import annotations

_NOOP = "('duplicate_in_window', 'nothing_open')"
_OCCURRENCE = "('new_incident', 'attached_to_open', 'escalated', 'repeat_due', 'reopened')"
_CANCELLED = """'{"cancelled": "the incident reopened inside the dedup window"}'::jsonb"""

# The no-op answers a snapshot read of claim row `c` allows for event `e` (NULL: must decide
# under the row lock).
_SNAPSHOT_NOOP = """
CASE
  WHEN e.severity = 0 THEN
    CASE WHEN c.phase = 'active' THEN NULL
         WHEN c.window_until > now() THEN 'duplicate_in_window'
         ELSE 'nothing_open' END
  WHEN c.phase = 'active' AND e.severity <= c.severity AND c.window_until > now()
    THEN 'duplicate_in_window'
END"""

# Claim row `c` of anomaly `e`'s fingerprint as the statement's snapshot has it (no lock); LIMIT
# keeps it a per-anomaly index probe whatever the plan.
_SNAPSHOT_READ = """LEFT JOIN LATERAL (
        SELECT c.incident_id, c.phase, c.severity, c.window_until
        FROM incident_claims c WHERE c.fingerprint = e.fp COLLATE "C" LIMIT 1
    ) c ON true"""

# dedup_rules.decide() on state `s` (phase 'none' when there is no claim row) and event `e`.
_DECIDE = """
CASE
  WHEN e.severity = 0 THEN
    CASE WHEN s.phase = 'active' THEN 'resolved'
         WHEN s.phase = 'recovered' AND s.window_until > now() THEN 'duplicate_in_window'
         ELSE 'nothing_open' END
  WHEN s.phase = 'none' THEN 'new_incident'
  WHEN s.phase = 'recovered' THEN
    CASE WHEN s.window_until > now() AND s.held_ok THEN 'reopened' ELSE 'new_incident' END
  WHEN e.severity > s.severity THEN 'escalated'
  WHEN s.window_until > now() THEN 'duplicate_in_window'
  WHEN NOT s.ack AND s.paged_at + make_interval(secs => $6::float8) <= now() THEN 'repeat_due'
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
    "held_ok, applied, ord, reason, job_kind, job_id, cancels, occ, lat, fresh, sub"
)

# One step of the fold: state `s` + event `e` (both bound by `source`) → the state after
# (dedup_rules.advance()) and what the step did, in _STEP_COLUMNS order.
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
                ELSE now() + make_interval(secs => $5::float8) END,
           CASE WHEN j.job_kind IN ('open', 'escalate', 'repeat') THEN now() ELSE s.paged_at END,
           CASE WHEN d.reason = 'resolved' THEN n.job_id
                WHEN d.reason IN ('reopened', 'new_incident') THEN NULL ELSE s.resolve_job_id END,
           CASE WHEN d.reason = 'resolved' THEN true
                WHEN d.reason IN ('reopened', 'new_incident') THEN false ELSE s.held_ok END,
           s.applied + CASE WHEN d.reason IN {_NOOP} THEN 0 ELSE 1 END,
           e.ord, d.reason, j.job_kind, n.job_id,
           CASE WHEN d.reason = 'reopened' THEN s.resolve_job_id END,
           CASE WHEN d.reason = 'new_incident' THEN 1
                WHEN d.reason IN {_OCCURRENCE} THEN s.occ + 1 ELSE s.occ END,
           CASE WHEN d.reason IN {_OCCURRENCE} THEN e.latest ELSE s.lat END,
           d.reason = 'new_incident' OR s.fresh,
           s.sub
    FROM {{source}}
    CROSS JOIN LATERAL (SELECT {_DECIDE} AS reason) d
    CROSS JOIN LATERAL (SELECT {_JOB} AS job_kind) j
    CROSS JOIN LATERAL (
        SELECT CASE WHEN d.reason = 'new_incident' THEN nextval('incidents_id_seq') END AS incident_id,
               CASE WHEN j.job_kind IS NOT NULL THEN nextval('notification_jobs_id_seq') END AS job_id
        OFFSET 0  -- evaluated once per row: never inline nextval into several columns
    ) n
    {{where}}"""

_LOCK = f"""
-- per fingerprint: whether any of its anomalies may write (else the snapshot answered them all),
-- whether the snapshot saw its claim row, how many anomalies it has, and, for a fingerprint with
-- one anomaly, that anomaly (min() of one value). A hash aggregate: no sort, no join, so no plan
-- can turn into a nested loop over the batch (CTE row estimates are guesses).
fps AS MATERIALIZED (
    SELECT fp, bool_or(noop IS NULL) AS writes, bool_or(seen_incident IS NOT NULL) AS seen,
           bool_or(severity > 0) AS onsets, count(*) AS n,
           min(ord) AS first_ord, min(severity) AS first_severity,
           min(latest) FILTER (WHERE noop IS NULL) AS first_latest,
           min(subject) FILTER (WHERE noop IS NULL) AS subject
    FROM ev GROUP BY fp
),
-- the latest version of each claim row that may change, locked in fingerprint order (so that
-- concurrent batches cannot deadlock). Only rows the statement's snapshot saw: a row committed
-- after it cannot be seen (nor locked) by this statement anyway; claims_i then finds it and
-- answers "retry"
locked AS MATERIALIZED (
    SELECT l.*
    FROM (SELECT fp FROM fps WHERE writes AND seen ORDER BY fp) t
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
      AND l.fingerprint IN (SELECT fp FROM fps WHERE onsets)
    RETURNING j.id
),
-- the state each fingerprint starts from (k = 0), and its one anomaly if it has only one
base AS MATERIALIZED (
    SELECT t.fp, 0::bigint AS k, l.fingerprint IS NOT NULL AS existed, l.incident_id,
           COALESCE(l.phase, 'none') AS phase, l.severity, COALESCE(l.acknowledged, false) AS ack,
           l.window_until, l.paged_at, l.resolve_job_id,
           COALESCE(l.resolve_job_id IN (SELECT id FROM cancelled), false) AS held_ok,
           0::bigint AS applied, NULL::bigint AS ord, NULL::text AS reason, NULL::text AS job_kind,
           NULL::bigint AS job_id, NULL::bigint AS cancels, 0::bigint AS occ, NULL::text AS lat,
           false AS fresh,
           t.subject AS sub, t.n, t.first_ord, t.first_severity, t.first_latest
    FROM (SELECT * FROM fps WHERE writes) t
    LEFT JOIN locked l ON l.fingerprint = t.fp
),"""

# The step of a fingerprint with one anomaly: its state and the anomaly are one row of `base`.
_ONE = """base s
    CROSS JOIN LATERAL (
        SELECT s.first_ord AS ord, s.first_severity AS severity, s.first_latest AS latest, 1::bigint AS k
    ) e"""

_WRITE = f"""
-- each fingerprint's state after its last step
final AS MATERIALIZED (
    SELECT DISTINCT ON (f.fp) f.fp, f.existed, f.incident_id, f.phase, f.severity, f.ack,
           f.window_until, f.paged_at, f.resolve_job_id, f.applied
    FROM st f WHERE f.applied > 0
    ORDER BY f.fp, f.k DESC
),
claims_u AS (
    UPDATE incident_claims c
    SET incident_id = f.incident_id, phase = f.phase, severity = f.severity,
        acknowledged = f.ack, window_until = f.window_until, paged_at = f.paged_at,
        resolve_job_id = f.resolve_job_id, claims = c.claims + f.applied, updated_at = now()
    FROM final f
    WHERE f.existed AND c.fingerprint = f.fp
    RETURNING c.fingerprint
),
-- a claim row the snapshot did not see; if another claimer created it meanwhile, nothing is
-- written for that fingerprint and its anomalies come back as "retry"
claims_i AS (
    INSERT INTO incident_claims
        (fingerprint, incident_id, phase, severity, acknowledged, window_until, paged_at,
         resolve_job_id, claims)
    SELECT f.fp, f.incident_id, f.phase, f.severity, f.ack, f.window_until, f.paged_at,
           f.resolve_job_id, f.applied
    FROM final f WHERE NOT f.existed
    ORDER BY f.fp
    ON CONFLICT (fingerprint) DO NOTHING
    RETURNING fingerprint
),
ok AS MATERIALIZED (SELECT fingerprint AS fp FROM claims_u UNION ALL SELECT fingerprint FROM claims_i),
-- each incident's state after its last step in the batch: the fold carries the occurrences it
-- added (occ), its latest anomaly (lat) and whether this batch created it (fresh); severity only
-- rises within an incident
touched AS MATERIALIZED (
    SELECT DISTINCT ON (s.incident_id) s.*,
           CASE WHEN s.phase = 'recovered' THEN 'resolved' WHEN s.ack THEN 'acknowledged'
                ELSE 'open' END AS status
    FROM st s
    WHERE s.reason NOT IN {_NOOP} AND s.fp IN (SELECT fp FROM ok)
    ORDER BY s.incident_id, s.k DESC
),
incidents_u AS (
    UPDATE incidents i
    SET status = t.status,
        severity = greatest(i.severity, t.severity),
        occurrences = i.occurrences + t.occ,
        last_seen = CASE WHEN t.occ > 0 THEN now() ELSE i.last_seen END,
        latest = COALESCE(t.lat::json, i.latest),
        resolved_at = CASE WHEN t.phase = 'recovered' THEN now() END,
        resolved_by = CASE WHEN t.phase = 'recovered' THEN 'detector' END,
        updated_at = now()
    FROM touched t
    WHERE i.id = t.incident_id AND NOT t.fresh
    RETURNING i.id
),
incidents_i AS (
    INSERT INTO incidents
        (id, fingerprint, project, service, signal, status, severity, occurrences, latest,
         resolved_at, resolved_by)
    SELECT t.incident_id, t.fp, a.project, a.service, a.signal, t.status, t.severity, t.occ,
           t.lat::json,
           CASE WHEN t.phase = 'recovered' THEN now() END,
           CASE WHEN t.phase = 'recovered' THEN 'detector' END
    FROM touched t
    -- the subject: sent on its own, or read from the anomaly (a new incident always has one)
    CROSS JOIN LATERAL json_to_record(COALESCE(t.sub, t.lat)::json)
        AS a (project text, service text, signal text)
    -- only once the updates are done (reading incidents_u runs it to completion): an incident
    -- this batch resolves leaves the one-unresolved-per-fingerprint index before its successor
    -- enters it; ascending ids do the same among the new incidents
    WHERE t.fresh AND (SELECT count(*) FROM incidents_u) >= 0
    ORDER BY t.incident_id
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
-- unordered (the caller places each row by ord): no sort, no join of two batch-sized sets
SELECT s.ord,
       CASE WHEN NOT s.existed AND s.fp NOT IN (SELECT fp FROM ok) THEN 'retry' ELSE s.reason END,
       s.incident_id, s.job_id, s.job_kind
FROM st s
UNION ALL
SELECT e.ord, e.noop, e.seen_incident, NULL, NULL
FROM ev e
WHERE e.fp NOT IN (SELECT fp FROM fps WHERE writes)
"""

CLAIM_MANY = f"""
WITH RECURSIVE
ev AS MATERIALIZED (
    SELECT e.ord, e.fp COLLATE "C" AS fp, e.severity, e.latest, e.subject, e.k,
           c.incident_id AS seen_incident, {_SNAPSHOT_NOOP} AS noop
    FROM unnest(string_to_array($1::text, ','), string_to_array($2::text, NULL)::int2[],
                $3::text[], $4::text[], string_to_array($7::text, ',')::int8[])
         WITH ORDINALITY AS e (fp, severity, latest, subject, k, ord)
    {_SNAPSHOT_READ}
),
{_LOCK}
-- fingerprints with several anomalies: the fold, one recursion level per anomaly
steps ({_STEP_COLUMNS}) AS (
    SELECT {_STEP_COLUMNS} FROM base WHERE n > 1
  UNION ALL
    {_STEP.format(source="steps s JOIN ev e ON e.fp = s.fp AND e.k = s.k + 1", where="")}
),
st ({_STEP_COLUMNS}) AS MATERIALIZED (
    {_STEP.format(source=_ONE, where="WHERE s.n = 1")}
  UNION ALL
    SELECT * FROM steps WHERE k > 0
),
{_WRITE}"""

CLAIM_ONE = f"""
WITH
ev AS MATERIALIZED (
    SELECT 1::bigint AS ord, $1::text COLLATE "C" AS fp, e.severity, $3::text AS latest,
           $4::text AS subject,
           1::bigint AS k, c.incident_id AS seen_incident, {_SNAPSHOT_NOOP} AS noop
    FROM (SELECT $2::int2 AS severity) e
    LEFT JOIN incident_claims c ON c.fingerprint = $1
),
{_LOCK}
st ({_STEP_COLUMNS}) AS MATERIALIZED ({_STEP.format(source=_ONE, where="")}),
{_WRITE}"""

# The no-op answer for one anomaly from a plain read ($1 fingerprint, $2 severity code), as one
# row (ord, incident_id, reason); reason NULL means "this claim writes: run CLAIM_ONE".
PRECHECK = f"""
SELECT 1::bigint AS ord, c.incident_id, {_SNAPSHOT_NOOP} AS reason
FROM (SELECT $2::int2 AS severity) e
LEFT JOIN incident_claims c ON c.fingerprint = $1
"""

# The same for a batch ($1 fingerprints and $2 codes as one text each, as in CLAIM_MANY): one row
# per anomaly, unordered, with its 1-based position. Nothing but fingerprints and codes is sent,
# so a batch of duplicates costs a read of its claim rows; the anomalies of a fingerprint that may
# write are then sent whole to CLAIM_MANY.
PRECHECK_MANY = f"""
SELECT e.ord, c.incident_id, {_SNAPSHOT_NOOP} AS reason
FROM unnest(string_to_array($1::text, ','), string_to_array($2::text, NULL)::int2[])
     WITH ORDINALITY AS e (fp, severity, ord)
{_SNAPSHOT_READ}
"""

# New incidents for brand-new fingerprints: the anomalies ($1 fingerprints and $2 codes as one text
# each, $3 the anomalies as JSON, $4 subjects or NULL, $5 window seconds) are onsets or
# escalations, one per fingerprint, whose fingerprint had no claim row when the pre-check read
# it. Each gets what CLAIM_MANY's new_incident step writes (a claim row, an open incident and its
# open job) without the fold: nothing can be locked, cancelled or folded for a fingerprint with no
# state. A claim row that another claimer created meanwhile wins: nothing is written for that
# fingerprint and its anomaly comes back as ``retry``, as in CLAIM_MANY.
# Output: as CLAIM_MANY's.
CLAIM_NEW = """
WITH
ev AS MATERIALIZED (
    SELECT e.ord, e.fp COLLATE "C" AS fp, e.severity, e.latest, e.subject,
           nextval('incidents_id_seq') AS incident_id, nextval('notification_jobs_id_seq') AS job_id
    FROM unnest(string_to_array($1::text, ','), string_to_array($2::text, NULL)::int2[],
                $3::text[], $4::text[])
         WITH ORDINALITY AS e (fp, severity, latest, subject, ord)
),
claims_i AS (
    INSERT INTO incident_claims
        (fingerprint, incident_id, phase, severity, acknowledged, window_until, paged_at, claims)
    SELECT fp, incident_id, 'active', severity, false, now() + make_interval(secs => $5::float8),
           now(), 1
    FROM ev ORDER BY fp  -- the lock order of every claim statement
    ON CONFLICT (fingerprint) DO NOTHING
    RETURNING fingerprint
),
ok AS MATERIALIZED (SELECT * FROM ev WHERE fp IN (SELECT fingerprint FROM claims_i)),
incidents_i AS (
    INSERT INTO incidents (id, fingerprint, project, service, signal, status, severity, occurrences, latest)
    SELECT o.incident_id, o.fp, a.project, a.service, a.signal, 'open', o.severity, 1, o.latest::json
    FROM ok o
    CROSS JOIN LATERAL json_to_record(COALESCE(o.subject, o.latest)::json)
        AS a (project text, service text, signal text)
    ORDER BY o.incident_id
),
jobs_w AS (
    INSERT INTO notification_jobs (id, incident_id, kind, status, next_attempt_at)
    SELECT job_id, incident_id, 'open', 'pending', now() FROM ok ORDER BY job_id
)
SELECT e.ord, CASE WHEN e.fp IN (SELECT fp FROM ok) THEN 'new_incident' ELSE 'retry' END,
       e.incident_id, e.job_id, 'open'
FROM ev e
"""
