-- A processor's checkpoint is its detector snapshot plus the anomaly events that snapshot has
-- already emitted but PostgreSQL has not yet claimed (lost on a crash otherwise: the restored
-- detector would not emit them again), and the anomalies still ongoing (re-claimed periodically
-- so that repeat pages keep coming). Both are JSON arrays of anomaly events, saved in the same
-- row and statement as the snapshot (see detector/snapshot.py and logwarden/pipeline.py).
ALTER TABLE detector_state
    ADD COLUMN unclaimed json NOT NULL DEFAULT '[]',
    ADD COLUMN ongoing   json NOT NULL DEFAULT '[]';
