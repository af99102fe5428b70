"""The decision audit (table ``decisions``, migration 0006): one row per job attempt.

A :class:`Decision` says which path decided (``rules``: triage rules and the rules executor;
``triage_model``: the triage model judged an ambiguous case, the rules executor acted;
``agent_model``: the log-anomaly-alert agent acted), with which models, what tools the model was
offered (count and schema tokens), every tool call with the guard's verdict and what became of
it, the output (deliveries, skipped channels, the agent's own report), tokens, cost, latency, the
fallbacks taken and the connect links recorded for the owner. Everything is redacted before it is
stored (:mod:`agents.redact`). Plain code records it; the models only return data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import asyncpg

from agents.redact import redact, redact_text
from detector.models import JobKind

INSERT = """
INSERT INTO decisions (job_id, incident_id, job_kind, attempt, worker, owner, path, verdict, models,
                       tools_offered, tool_schema_tokens, tool_calls, output, fallbacks, connect_links,
                       outcome, error, requests, input_tokens, output_tokens, cost_usd, latency_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12::jsonb, $13::jsonb, $14, $15::jsonb,
        $16, $17, $18, $19, $20, $21, $22)
RETURNING id
"""

_COLUMNS = """id, job_id, incident_id, job_kind, attempt, worker, owner, path, verdict::text AS verdict,
    models, tools_offered, tool_schema_tokens, tool_calls::text AS tool_calls, output::text AS output,
    fallbacks, connect_links::text AS connect_links, outcome, error, requests, input_tokens,
    output_tokens, cost_usd, latency_ms, created_at"""

FOR_JOB = f"SELECT {_COLUMNS} FROM decisions WHERE job_id = $1 ORDER BY id"
FOR_INCIDENT = f"SELECT {_COLUMNS} FROM decisions WHERE incident_id = $1 ORDER BY id"

_MAX_ERROR = 2000


class DecisionPath(StrEnum):
    RULES = "rules"
    TRIAGE_MODEL = "triage_model"
    AGENT_MODEL = "agent_model"


class Outcome(StrEnum):
    DELIVERED = "delivered"
    """Everything planned was sent (or had been)."""
    NOTHING_TO_DO = "nothing_to_do"
    """Triage decided nobody needs telling."""
    HELD = "held"
    """Quiet hours held something back; the job runs again when they end."""
    RETRY = "retry"
    FAILED = "failed"
    """Permanent: dead-lettered."""
    LOST = "lost"
    """The lease or a reservation was taken over by another attempt; its outcome stands."""


@dataclass(frozen=True, slots=True)
class Decision:
    job_id: int
    incident_id: int
    job_kind: JobKind
    attempt: int
    worker: str
    path: DecisionPath
    outcome: Outcome
    latency_ms: float
    owner: str | None = None
    verdict: Mapping[str, Any] = field(default_factory=dict)
    models: tuple[str, ...] = ()
    tools_offered: int = 0
    tool_schema_tokens: int = 0
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    output: Mapping[str, Any] = field(default_factory=dict)
    fallbacks: tuple[str, ...] = ()
    connect_links: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class DecisionRow:
    id: int
    created_at: datetime
    decision: Decision


def _json(value: Any) -> str:
    return json.dumps(redact(value), sort_keys=True, default=str)


class AuditLog:
    """Writes and reads ``decisions``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, d: Decision) -> int:
        """Store one decision (redacted); returns its id."""
        error = None if d.error is None else redact_text(d.error)[:_MAX_ERROR]
        decision_id: int = await self._pool.fetchval(
            INSERT,
            d.job_id,
            d.incident_id,
            d.job_kind.value,
            d.attempt,
            d.worker,
            d.owner,
            d.path.value,
            _json(dict(d.verdict)),
            list(d.models),
            d.tools_offered,
            d.tool_schema_tokens,
            _json([dict(c) for c in d.tool_calls]),
            _json(dict(d.output)),
            list(d.fallbacks),
            _json(dict(d.connect_links)),
            d.outcome.value,
            error,
            d.requests,
            d.input_tokens,
            d.output_tokens,
            d.cost_usd,
            d.latency_ms,
        )
        return decision_id

    async def for_job(self, job_id: int) -> list[DecisionRow]:
        """A job's decisions, one per attempt, oldest first."""
        return [_row(r) for r in await self._pool.fetch(FOR_JOB, job_id)]

    async def for_incident(self, incident_id: int) -> list[DecisionRow]:
        return [_row(r) for r in await self._pool.fetch(FOR_INCIDENT, incident_id)]


def _row(r: asyncpg.Record) -> DecisionRow:
    return DecisionRow(
        id=r["id"],
        created_at=r["created_at"],
        decision=Decision(
            job_id=r["job_id"],
            incident_id=r["incident_id"],
            job_kind=JobKind(r["job_kind"]),
            attempt=r["attempt"],
            worker=r["worker"],
            path=DecisionPath(r["path"]),
            outcome=Outcome(r["outcome"]),
            latency_ms=r["latency_ms"],
            owner=r["owner"],
            verdict=json.loads(r["verdict"]),
            models=tuple(r["models"]),
            tools_offered=r["tools_offered"],
            tool_schema_tokens=r["tool_schema_tokens"],
            tool_calls=tuple(json.loads(r["tool_calls"])),
            output=json.loads(r["output"]),
            fallbacks=tuple(r["fallbacks"]),
            connect_links=json.loads(r["connect_links"]),
            error=r["error"],
            requests=r["requests"],
            input_tokens=r["input_tokens"],
            output_tokens=r["output_tokens"],
            cost_usd=r["cost_usd"],
        ),
    )
