-- What the agents sent and why (see agents/deliveries.py and agents/audit.py).
--
-- deliveries: one row per channel action (a Slack post, a Jira ticket, a PagerDuty trigger...),
-- keyed by its idempotency key ('logwarden-<incident>/<job kind>/<action>', plus '/<job id>' for
-- repeats). The guard reserves the row BEFORE the tool call and completes it after: the unique
-- key is what makes "at most one action per key" hold across retries, crashes and processes. A
-- row left 'reserved' means an attempt died (or timed out) between the two: its outcome is
-- unknown, and the next attempt finds out before it sends anything again.
CREATE TABLE deliveries (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key text        COLLATE "C" NOT NULL UNIQUE,
    incident_id     bigint      NOT NULL REFERENCES incidents (id),
    job_id          bigint      REFERENCES notification_jobs (id),
    job_kind        text        NOT NULL CHECK (job_kind IN ('open', 'escalate', 'repeat', 'resolve')),
    owner           text        NOT NULL,
    channel         text        NOT NULL CHECK (channel IN ('slack', 'jira', 'pagerduty')),
    action          text        NOT NULL CHECK (action IN ('slack.post', 'slack.update', 'jira.create',
                                                           'jira.comment', 'pagerduty.trigger',
                                                           'pagerduty.resolve')),
    tool_slug       text        NOT NULL,
    target          text,
    arguments       jsonb       NOT NULL,           -- redacted
    path            text        NOT NULL CHECK (path IN ('rules', 'agent')),
    fallback_for    text        CHECK (fallback_for IN ('slack', 'jira', 'pagerduty')),
    status          text        NOT NULL CHECK (status IN ('reserved', 'sent', 'failed')),
    attempts        integer     NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    external_ref    text,                           -- Slack ts, Jira issue key, PagerDuty incident id
    error           text,
    retryable       boolean,
    recovered       text,                           -- how an unknown outcome was settled, if it was
    reserved_at     timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    CHECK ((status = 'reserved') = (completed_at IS NULL))
);
CREATE INDEX deliveries_by_incident ON deliveries (incident_id, id);
-- Rate limits count an owner's new notifications per channel over a sliding window.
CREATE INDEX deliveries_new_by_owner ON deliveries (owner, channel, reserved_at)
    WHERE action IN ('slack.post', 'jira.create', 'pagerduty.trigger') AND status <> 'failed';

-- decisions: one row per job attempt: which path decided (rules, triage model, agent model),
-- with which models, what tools were offered and called (each with the guard's verdict), the
-- output, tokens, cost, latency and every fallback taken.
CREATE TABLE decisions (
    id                 bigint        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id             bigint        NOT NULL REFERENCES notification_jobs (id),
    incident_id        bigint        NOT NULL REFERENCES incidents (id),
    job_kind           text          NOT NULL,
    attempt            integer       NOT NULL,
    worker             text          NOT NULL,
    owner              text,
    path               text          NOT NULL CHECK (path IN ('rules', 'triage_model', 'agent_model')),
    verdict            jsonb         NOT NULL,      -- triage: action, channels, urgency, rationale, path, reason
    models             text[]        NOT NULL DEFAULT '{}',
    tools_offered      integer       NOT NULL DEFAULT 0,
    tool_schema_tokens integer       NOT NULL DEFAULT 0,
    tool_calls         jsonb         NOT NULL DEFAULT '[]',   -- each with its guard verdict
    output             jsonb         NOT NULL DEFAULT '{}',   -- deliveries, skipped channels, agent's report
    fallbacks          text[]        NOT NULL DEFAULT '{}',
    connect_links      jsonb         NOT NULL DEFAULT '{}',   -- toolkit -> link the owner must open
    outcome            text          NOT NULL,
    error              text,
    requests           integer       NOT NULL DEFAULT 0,
    input_tokens       integer       NOT NULL DEFAULT 0,
    output_tokens      integer       NOT NULL DEFAULT 0,
    cost_usd           numeric(14, 6) NOT NULL DEFAULT 0,
    latency_ms         double precision NOT NULL,
    created_at         timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX decisions_by_job ON decisions (job_id, id);
CREATE INDEX decisions_by_incident ON decisions (incident_id, id);
