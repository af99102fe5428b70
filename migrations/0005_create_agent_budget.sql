-- The agents' daily model-cost budget (see agents/budget.py): one row per UTC day of the
-- database clock. A run reserves its maximum cost before it starts and records what it really
-- cost afterwards, in single statements that lock only this row, so concurrent runs on any
-- number of processes can never reserve past the limit.
CREATE TABLE agent_budget (
    day          date           PRIMARY KEY,
    limit_usd    numeric(14, 6) NOT NULL CHECK (limit_usd >= 0),
    spent_usd    numeric(14, 6) NOT NULL DEFAULT 0 CHECK (spent_usd >= 0),
    reserved_usd numeric(14, 6) NOT NULL DEFAULT 0 CHECK (reserved_usd >= 0),
    runs         integer        NOT NULL DEFAULT 0 CHECK (runs >= 0),
    warned_pct   smallint       NOT NULL DEFAULT 0 CHECK (warned_pct IN (0, 75, 90, 100)),
    refused      boolean        NOT NULL DEFAULT false,
    updated_at   timestamptz    NOT NULL DEFAULT now()
);
