-- The claim statement (detector/dedup_sql.py) writes a fingerprint's claim row, its incident and
-- its outbox jobs together, in one statement, with ids it allocated itself: a claim row or job
-- can only ever point at the incident written beside it. The two foreign keys below checked that
-- again, one trigger call per row, which cost about a fifth of a batch of new incidents
-- (benchmarks/dedup_claims.py). Incidents are never deleted, so nothing can dangle later either;
-- tests/detector check the references after every race and multi-process run.
ALTER TABLE incident_claims DROP CONSTRAINT incident_claims_incident_id_fkey;
ALTER TABLE notification_jobs DROP CONSTRAINT notification_jobs_incident_id_fkey;
