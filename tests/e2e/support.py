"""Shared pieces of the end-to-end tests: the service opened the way an operator runs it (with
test-sized timings), and readers of what ended up in PostgreSQL and on /metrics."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from logwarden.config import Settings
from logwarden.service import Service

OPERATOR = "operator"
"""The built-in policy's owner of every incident."""
TOOLKITS = ("slack", "jira", "pagerduty")

PD_TRIGGER = "PAGERDUTY_CREATE_INCIDENT_RECORD"
PD_UPDATE = "PAGERDUTY_UPDATE_INCIDENT"
SLACK_POST = "SLACK_SEND_MESSAGE"
SLACK_UPDATE = "SLACK_UPDATE_MESSAGE"
WRITING_TOOLS = frozenset({PD_TRIGGER, PD_UPDATE, SLACK_POST, SLACK_UPDATE, "JIRA_CREATE_ISSUE"})
"""Sandbox tools that change something in an app (searches and reads are not counted)."""

OPENED = Counter({("open", "pagerduty.trigger", "sent"): 1, ("open", "slack.post", "sent"): 1})
"""A critical incident's open job on the built-in policy: one page, one Slack message."""
RESOLVED = Counter({("resolve", "pagerduty.resolve", "sent"): 1, ("resolve", "slack.update", "sent"): 1})
OPENED_CALLS = Counter({PD_TRIGGER: 1, SLACK_POST: 1})
RESOLVED_CALLS = Counter({PD_UPDATE: 1, SLACK_UPDATE: 1})

TEST_TIMINGS: dict[str, Any] = {
    "http_host": "127.0.0.1",
    "http_port": 0,
    "dedup_window": 0.2,
    "dedup_backoff_base": 0.01,
    "dedup_backoff_cap": 0.2,
    "processor_id": "e2e",
}
"""Settings every in-process test starts from: any free port, a dedup window and job backoff
measured in tens of milliseconds (the streams' event time runs far ahead of the wall clock)."""


def e2e_settings(settings: Settings, **changes: Any) -> Settings:
    """``settings`` (this test's database) with :data:`TEST_TIMINGS` and ``changes``, validated."""
    data = settings.model_dump()
    data.update(TEST_TIMINGS)
    data.update(changes)
    return Settings.model_validate(data)


@asynccontextmanager
async def running(settings: Settings, *, grant: bool = True, **options: Any) -> AsyncIterator[Service]:
    """The whole service on event-time buckets, its sandbox router on any free port, and the
    built-in policy's owner connected to Slack, Jira and PagerDuty (unless ``grant`` is False)."""
    options.setdefault("advance_with_clock", False)
    async with Service.open(settings, sandbox_port=0, **options) as service:
        if grant:
            await grant_operator(service.pool)
        yield service


async def grant_operator(pool: asyncpg.Pool) -> None:
    from router.sandbox.store import SandboxStore

    await SandboxStore(pool).grant(OPERATOR, TOOLKITS)


DELIVERIES = "SELECT job_kind, action, status FROM deliveries"
SANDBOX_CALLS = "SELECT tool_slug FROM sandbox_deliveries WHERE outcome = 'ok'"
INCIDENTS = "SELECT id, service, status, severity FROM incidents ORDER BY id"


async def deliveries(db: asyncpg.Pool | asyncpg.Connection) -> Counter[tuple[str, str, str]]:
    """(job kind, action, status) → how many rows in ``deliveries``."""
    return Counter((r["job_kind"], r["action"], r["status"]) for r in await db.fetch(DELIVERIES))


async def app_writes(db: asyncpg.Pool | asyncpg.Connection) -> Counter[str]:
    """Writing tool → how many successful calls the sandbox apps executed."""
    return Counter(r["tool_slug"] for r in await db.fetch(SANDBOX_CALLS) if r["tool_slug"] in WRITING_TOOLS)


async def incidents(db: asyncpg.Pool | asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch(INCIDENTS)]


_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels`` (0 when none)."""
    total = 0.0
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m is None or m["name"] != name:
            continue
        have = dict(_LABEL.findall(m["labels"] or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m["value"])
    return total
