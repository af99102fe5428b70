-- Make the claim statement (detector/dedup_sql.py) cheaper per new incident; each change was
-- measured with benchmarks/dedup_claims.py.
--
-- 1. The claim statement writes a fingerprint's claim row, its incident and its outbox jobs
--    together, in one statement, with ids it allocated itself: a claim row or job can only ever
--    point at the incident written beside it, and incidents are never deleted. The two foreign
--    keys below checked that again, one trigger call per row: about a fifth of a batch of new
--    incidents. tests/detector check the references after every race and multi-process run.
ALTER TABLE incident_claims DROP CONSTRAINT incident_claims_incident_id_fkey;
ALTER TABLE notification_jobs DROP CONSTRAINT notification_jobs_incident_id_fkey;

-- 2. incidents.latest is written on every occurrence and only ever read whole, by the service:
--    json (validated text) costs a tenth of jsonb's conversion on the way in.
ALTER TABLE incidents ALTER COLUMN latest TYPE json USING latest::text::json;

-- 3. Claim rows and incidents are updated in place on every attach, escalation and recovery.
--    Free space on each page lets PostgreSQL write the new row version beside the old one
--    without touching any index (a HOT update): measured 30% faster re-claims of open incidents.
ALTER TABLE incident_claims SET (fillfactor = 50);
ALTER TABLE incidents SET (fillfactor = 70);
