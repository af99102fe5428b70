-- Detector state snapshots, one row per processor, so a restarted processor resumes exactly
-- where it stopped (see detector/snapshot.py).
CREATE TABLE detector_state (
    processor_id text        PRIMARY KEY,
    format       integer     NOT NULL,
    state        bytea       NOT NULL,
    saved_at     timestamptz NOT NULL DEFAULT now()
);
