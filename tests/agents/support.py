"""Shared pieces of the agents' integration tests: incidents made by real claims, a worker wired
to a real sandbox router over MCP, and readers of what the sandbox apps received."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg

from agents.job_handler import HandlerOptions
from agents.models import ModelRouter
from agents.policy import BUILTIN_POLICY, Policy
from agents.worker import Worker, WorkerCounters
from detector.dedup import ClaimResult, Dedup, DedupConfig
from detector.models import EventKind, Severity
from detector.outbox import Outbox
from router.base import ToolRouter
from router.sandbox import SandboxServer
from tests.detector.support import anomaly

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
CONFIG = DedupConfig(backoff_base=0.0)
"""Retries are due at once, so one drain() sees a job fail and succeed."""


def fixed_clock(at: datetime = NOW) -> Callable[[], datetime]:
    return lambda: at


async def claim(
    pool: asyncpg.Pool,
    severity: Severity | str = Severity.CRITICAL,
    kind: EventKind | str = EventKind.ONSET,
    *,
    service: str = "checkout",
    messages: tuple[str, ...] = ("upstream timeout after <n>ms",),
) -> ClaimResult:
    """Claim an anomaly as a processor would: incident + outbox job, committed together."""
    return await Dedup(pool, CONFIG).claim(anomaly(kind, severity, service=service, messages=messages))


def make_worker(
    pool: asyncpg.Pool,
    sandbox: SandboxServer,
    *,
    owner: str = "worker-a",
    models: ModelRouter | None = None,
    policy: Policy = BUILTIN_POLICY,
    router: ToolRouter | None = None,
    clock: Callable[[], datetime] | None = None,
    options: HandlerOptions | None = None,
    outbox: Outbox | None = None,
    **extra: Any,
) -> Worker:
    return Worker(
        pool,
        outbox if outbox is not None else Outbox(pool, owner, CONFIG),
        router if router is not None else sandbox.router(),
        policy,
        models,
        clock=clock or fixed_clock(),
        concurrency=2,
        events=WorkerCounters(),
        options=options or HandlerOptions(in_flight_grace=0.0),
        **extra,
    )


async def sent_slugs(sandbox: SandboxServer, user: str = "operator") -> list[str]:
    """Tool slugs the sandbox apps executed for ``user`` successfully, in order."""
    return [d.tool_slug for d in await sandbox.store.deliveries(user) if d.outcome == "ok"]


async def app_calls(sandbox: SandboxServer, user: str = "operator") -> list[tuple[str, str]]:
    return [(d.tool_slug, d.outcome) for d in await sandbox.store.deliveries(user)]


async def rows(pool: asyncpg.Pool, sql: str, *args: Any) -> list[Mapping[str, Any]]:
    return [dict(r) for r in await pool.fetch(sql, *args)]


ACTIONS = {
    "PAGERDUTY_CREATE_INCIDENT_RECORD",
    "PAGERDUTY_UPDATE_INCIDENT",
    "SLACK_SEND_MESSAGE",
    "SLACK_UPDATE_MESSAGE",
    "JIRA_CREATE_ISSUE",
    "JIRA_ADD_COMMENT",
}


async def actions_sent(sandbox: SandboxServer, user: str = "operator") -> list[str]:
    """Only the slugs that act (lookups and probes left out)."""
    return [s for s in await sent_slugs(sandbox, user) if s in ACTIONS]
