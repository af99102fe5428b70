-- One Composio Tool Router session per user (operator), reused across processes and restarts
-- (see router/composio_sessions.py). A row is replaced when the configured toolkit set or the
-- session configuration (its hash) changes, or when Composio says the session is gone.
CREATE TABLE tool_router_sessions (
    user_id     text        PRIMARY KEY CHECK (user_id <> ''),
    session_id  text        NOT NULL CHECK (session_id <> ''),
    toolkits    text[]      NOT NULL,
    config_hash text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
