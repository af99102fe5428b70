-- Incidents, the per-fingerprint claim state that arbitrates them, and the notification outbox
-- (see detector/dedup.py, detector/incidents.py and detector/outbox.py).
--
-- Ids come from explicit sequences because a claim statement allocates them (nextval) before it
-- inserts the rows, so that the claim row, the incident and the job can point at each other
-- inside one statement.

CREATE SEQUENCE incidents_id_seq AS bigint;

CREATE TABLE incidents (
    id              bigint      PRIMARY KEY DEFAULT nextval('incidents_id_seq'),
    fingerprint     text        COLLATE "C" NOT NULL,
    project         text        NOT NULL,
    service         text        NOT NULL,
    signal          text        NOT NULL,
    status          text        NOT NULL DEFAULT 'open'
                                CHECK (status IN ('open', 'acknowledged', 'resolved')),
    severity        smallint    NOT NULL CHECK (severity IN (1, 2)),
    first_seen      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    occurrences     integer     NOT NULL DEFAULT 1 CHECK (occurrences >= 0),
    latest          jsonb,
    acknowledged_at timestamptz,
    acknowledged_by text,
    resolved_at     timestamptz,
    resolved_by     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
ALTER SEQUENCE incidents_id_seq OWNED BY incidents.id;

-- At most one unresolved (open or acknowledged) incident per fingerprint.
CREATE UNIQUE INDEX incidents_one_unresolved_per_fingerprint
    ON incidents (fingerprint) WHERE status <> 'resolved';
CREATE INDEX incidents_by_subject ON incidents (project, service, id);

-- One row per fingerprint ever claimed: the state every claim decides on, under its row lock.
-- phase 'active': incident_id is unresolved; 'recovered': incident_id was resolved and
-- resolve_job_id is its resolve job, held until window_until so that a flap can cancel it.
CREATE TABLE incident_claims (
    fingerprint     text        COLLATE "C" PRIMARY KEY,
    incident_id     bigint      NOT NULL REFERENCES incidents (id),
    phase           text        NOT NULL CHECK (phase IN ('active', 'recovered')),
    severity        smallint    NOT NULL CHECK (severity IN (1, 2)),
    acknowledged    boolean     NOT NULL DEFAULT false,
    window_until    timestamptz NOT NULL,
    paged_at        timestamptz NOT NULL,
    resolve_job_id  bigint,
    claims          bigint      NOT NULL DEFAULT 1,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE SEQUENCE notification_jobs_id_seq AS bigint;

-- The outbox. Rows are never deleted: done, dead (dead-lettered) and cancelled rows stay visible.
-- Indexes are few on purpose: a claim statement touches every table and index here, and more
-- than 16 relations overflow PostgreSQL's fast-path locks (measured: LockManager contention).
CREATE TABLE notification_jobs (
    id               bigint      PRIMARY KEY DEFAULT nextval('notification_jobs_id_seq'),
    incident_id      bigint      NOT NULL REFERENCES incidents (id),
    kind             text        NOT NULL CHECK (kind IN ('open', 'escalate', 'repeat', 'resolve')),
    status           text        NOT NULL DEFAULT 'pending'
                                 CHECK (status IN ('pending', 'leased', 'done', 'dead', 'cancelled')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_owner      text,
    lease_token      bigint      NOT NULL DEFAULT 0,
    lease_expires_at timestamptz,
    last_error       text,
    result           jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    CHECK ((status = 'leased') = (lease_owner IS NOT NULL)),
    CHECK ((status = 'leased') = (lease_expires_at IS NOT NULL))
);
ALTER SEQUENCE notification_jobs_id_seq OWNED BY notification_jobs.id;

-- An incident is opened (paged) once.
CREATE UNIQUE INDEX notification_jobs_one_open_per_incident
    ON notification_jobs (incident_id) WHERE kind = 'open';
-- The queue: a job is due at next_attempt_at, which for a leased job is when its lease expires.
CREATE INDEX notification_jobs_queue ON notification_jobs (next_attempt_at, id)
    WHERE status IN ('pending', 'leased');
CREATE INDEX notification_jobs_by_incident ON notification_jobs (incident_id, id);
CREATE INDEX notification_jobs_dead ON notification_jobs (id) WHERE status = 'dead';
