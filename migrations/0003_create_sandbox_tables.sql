-- The local sandbox tool router (router/sandbox): its users and their credentials, their app
-- connections, every tool call it executed, and the state of its fake Slack, Jira and PagerDuty
-- apps. All of it lives here so several logwarden processes can share one sandbox and it
-- survives restarts. Everything is scoped by user_id: a user sees only their own apps.

-- One row per sandbox user: the per-user API key (sent as x-api-key) and the user's tool-router
-- session id (the MCP URL is /tool_router/<session_id>/mcp).
CREATE TABLE sandbox_users (
    user_id    text        PRIMARY KEY,
    api_key    text        NOT NULL UNIQUE,
    session_id text        NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per connection attempt (like a Composio connected account). Opening the link
-- (GET /connect/<link_token>) before expires_at makes it active.
CREATE TABLE sandbox_connections (
    id           text        PRIMARY KEY,
    user_id      text        NOT NULL,
    toolkit      text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('initiated', 'active', 'failed', 'expired')),
    link_token   text        NOT NULL UNIQUE,
    callback_url text,
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sandbox_connections_user_toolkit ON sandbox_connections (user_id, toolkit, created_at DESC);

-- Every tool call the sandbox executed (or that failed inside the app, injected failures included).
CREATE TABLE sandbox_deliveries (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       text        NOT NULL,
    tool_slug     text        NOT NULL,
    toolkit       text        NOT NULL,
    connection_id text,
    arguments     jsonb       NOT NULL,
    external_ref  text,
    outcome       text        NOT NULL
        CHECK (outcome IN ('ok', 'failed', 'rate_limited', 'upstream_error', 'timeout')),
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sandbox_deliveries_user_created ON sandbox_deliveries (user_id, created_at);

-- Slack: messages per user's workspace. ts is unique per channel, as in Slack.
CREATE SEQUENCE sandbox_slack_ts_seq;
CREATE TABLE sandbox_slack_messages (
    user_id      text        NOT NULL,
    channel_id   text        NOT NULL,
    channel_name text,
    ts           text        NOT NULL,
    thread_ts    text,
    text         text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    edited_at    timestamptz,
    PRIMARY KEY (user_id, channel_id, ts)
);

-- Jira: issue numbers per (user, project), issues and their comments.
CREATE TABLE sandbox_jira_counters (
    user_id     text    NOT NULL,
    project     text    NOT NULL,
    last_number integer NOT NULL,
    PRIMARY KEY (user_id, project)
);
CREATE TABLE sandbox_jira_issues (
    user_id     text        NOT NULL,
    issue_key   text        NOT NULL,
    project     text        NOT NULL,
    summary     text        NOT NULL,
    description text,
    issuetype   text        NOT NULL,
    priority    text,
    labels      text[]      NOT NULL DEFAULT '{}',
    status      text        NOT NULL DEFAULT 'To Do',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, issue_key)
);
CREATE INDEX sandbox_jira_issues_labels ON sandbox_jira_issues USING gin (labels);
CREATE TABLE sandbox_jira_comments (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    text        NOT NULL,
    issue_key  text        NOT NULL,
    body       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (user_id, issue_key) REFERENCES sandbox_jira_issues (user_id, issue_key)
);

-- PagerDuty: incidents. While an incident is open, its incident_key (dedup key) is unique per
-- service, so a second trigger with the same key returns the same incident.
CREATE SEQUENCE sandbox_pd_incident_number_seq;
CREATE TABLE sandbox_pd_incidents (
    user_id         text        NOT NULL,
    id              text        NOT NULL,
    incident_number bigint      NOT NULL,
    title           text        NOT NULL,
    service_id      text        NOT NULL,
    urgency         text        NOT NULL CHECK (urgency IN ('high', 'low')),
    status          text        NOT NULL CHECK (status IN ('triggered', 'acknowledged', 'resolved')),
    incident_key    text,
    details         text,
    resolution      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, id)
);
CREATE UNIQUE INDEX sandbox_pd_incidents_open_key ON sandbox_pd_incidents (user_id, service_id, incident_key)
    WHERE status <> 'resolved' AND incident_key IS NOT NULL;
