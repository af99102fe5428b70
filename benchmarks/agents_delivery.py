"""Agents delivery benchmark: tool-definition tokens per decision, and outbox job → delivery latency.

1. Tokens offered per decision. The log-anomaly-alert agent runs once (a scripted FunctionModel:
   search, execute, report) through the guarded router session; the decision record says what the
   model was offered per request (the router's meta-tools + two local tools) and how many requests
   it made. Against it: the same decision with the Slack, Jira and PagerDuty toolkits preloaded
   (no search round trip, one request fewer), and the rules path (no model: zero tokens).
2. Latency with the rules planner (no model): a critical incident is claimed (incident + outbox
   job), the worker drains it (lease, triage, plan, MCP session, PagerDuty trigger + Slack post
   through the guard, decision, completion). Measured on the database clock: the job's creation →
   the PagerDuty trigger and → the last delivery recorded by the sandbox apps; and the worker's
   own time per job. Baselines in the same run: one bare MCP tool call on an open session (the
   same Slack post, no guard, no bookkeeping) and opening an MCP session.

    python benchmarks/agents_delivery.py [--database-url URL] [--jobs 200] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic_ai import models

from agents.audit import AuditLog
from agents.job_handler import HandlerOptions
from agents.log_anomaly_alert import local_tools
from agents.models import ModelConfig, ModelRouter
from agents.policy_file import parse_policy
from agents.router_session import open_router_session
from agents.worker import Worker
from detector.dedup import Dedup, DedupConfig
from detector.models import AnomalyEvent, EventKind, Severity
from detector.outbox import Outbox
from logwarden import db, migrator
from router.context_cost import definitions_cost, offered_cost
from router.sandbox import CATALOGUE, SandboxServer
from tests.agents.agent_scripts import agent_script, as_triage_says
from tests.agents.agent_scripts import model as scripted
from tests.detector.support import anomaly

models.ALLOW_MODEL_REQUESTS = False
CONFIG = DedupConfig(backoff_base=0.0)
POLICY = parse_policy(
    "version = 1\n[defaults]\nslack = { rate_limit = { enabled = false } }\n", "benchmark policy"
)
"""The built-in policy without Slack's 30-per-hour limit (every job here pages and posts)."""


def _anomaly(i: int) -> AnomalyEvent:
    """A critical onset on its own service (the rules page it: PagerDuty + Slack)."""
    return anomaly(EventKind.ONSET, Severity.CRITICAL, project="bench", service=f"svc-{i}")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _line(label: str, values: list[float], baseline: float | None = None) -> str:
    p50, p99 = _pct(values, 0.5), _pct(values, 0.99)
    ratio = f"{p50 / baseline:>7.1f}x" if baseline else " " * 8
    return f"{label:<52} p50 {p50:>7.2f} ms  p99 {p99:>7.2f} ms {ratio}"


def _worker(pool: asyncpg.Pool, server: SandboxServer, owner: str, concurrency: int, **extra: Any) -> Worker:
    return Worker(
        pool,
        Outbox(pool, owner, CONFIG),
        server.router(),
        POLICY,
        extra.pop("models", None),
        concurrency=concurrency,
        options=HandlerOptions(in_flight_grace=0.0),
        **extra,
    )


async def tokens(pool: asyncpg.Pool, server: SandboxServer) -> None:
    router = ModelRouter(
        ModelConfig(fast="bench"), resolve=lambda n: scripted(agent_script(as_triage_says), n)
    )
    dedup = Dedup(pool, CONFIG)
    claimed = await dedup.claim(_anomaly(10_000))
    [handled] = await _worker(pool, server, "bench-agent", 1, models=router).drain()
    [row] = await AuditLog(pool).for_job(handled.job_id)
    d = row.decision
    endpoint = await server.router().session("operator")
    meta = await offered_cost(endpoint)
    local = definitions_cost((t.name, t.description, t.parameters_json_schema) for t in _local_defs())
    preload = definitions_cost((t.slug, t.description, t.input_schema) for t in CATALOGUE.tools())
    search = sum(1 for c in d.tool_calls if c["tool"] == "COMPOSIO_SEARCH_TOOLS")
    requests = d.requests - (1 if d.verdict.get("path") == "model" else 0)  # the triage model's request
    meta_total = d.tool_schema_tokens * requests
    preload_per_request = preload.schema_tokens + local.schema_tokens
    preload_total = preload_per_request * max(1, requests - search)
    print(f"incident {claimed.incident_id}: agent run of {requests} model requests ({search} tool search)")
    header = f"{'tool definitions offered':<44} {'tools':>6} {'tokens/req':>11}"
    print(f"{header} {'tokens/decision':>16} {'ratio':>7}")
    print(
        f"{'meta-tools + 2 local (recorded by the agent)':<44} {d.tools_offered:>6} "
        f"{d.tool_schema_tokens:>11} {meta_total:>16} {1.0:>6.2f}x"
    )
    print(
        f"{'preloaded slack+jira+pagerduty + 2 local':<44} {preload.tools + local.tools:>6} "
        f"{preload_per_request:>11} {preload_total:>16} {preload_total / meta_total:>6.2f}x"
    )
    print(f"{'rules (no model)':<44} {0:>6} {0:>11} {0:>16} {0:>6.2f}x")
    alone = f"{meta.tools} tools, {meta.schema_tokens} tokens"
    print(f"(meta-tools alone, MCP tools/list: {alone}; tokens {meta.tokenizer})")


def _local_defs() -> list[Any]:
    return [t.tool_def for t in local_tools().tools.values()]


async def latency(pool: asyncpg.Pool, server: SandboxServer, jobs: int, concurrency: int) -> None:
    endpoint = await server.router().session("operator")
    call = {
        "tools": [
            {"tool_slug": "SLACK_SEND_MESSAGE", "arguments": {"channel": "#bench", "markdown_text": "x"}}
        ],
        "sync_response_to_workbench": False,
    }
    bare: list[float] = []
    opens: list[float] = []
    async with open_router_session(endpoint) as session:
        for _ in range(20):
            await session.call("COMPOSIO_MULTI_EXECUTE_TOOL", call)
        for _ in range(jobs):
            t0 = time.perf_counter()
            await session.call("COMPOSIO_MULTI_EXECUTE_TOOL", call)
            bare.append((time.perf_counter() - t0) * 1000)
    for _ in range(min(jobs, 50)):
        t0 = time.perf_counter()
        async with open_router_session(endpoint):
            pass
        opens.append((time.perf_counter() - t0) * 1000)
    dedup = Dedup(pool, CONFIG)
    worker = _worker(pool, server, "bench-rules", 1)
    own: list[float] = []
    for i in range(jobs):
        await dedup.claim(_anomaly(i))
        t0 = time.perf_counter()
        [handled] = await worker.drain()
        own.append((time.perf_counter() - t0) * 1000)
        assert handled.disposition.value == "complete", handled.error
    rows = await pool.fetch(
        """
        SELECT j.id,
               extract(epoch FROM min(s.created_at) FILTER (WHERE s.toolkit = 'pagerduty') - j.created_at)
                   AS page,
               extract(epoch FROM max(s.created_at) FILTER (WHERE s.toolkit = 'slack') - j.created_at)
                   AS done
          FROM notification_jobs j
          JOIN incidents i ON i.id = j.incident_id
          JOIN deliveries d ON d.job_id = j.id AND d.status = 'sent'
          JOIN sandbox_deliveries s ON s.tool_slug = d.tool_slug AND s.external_ref = d.external_ref
                                   AND s.user_id = d.owner AND s.outcome = 'ok'
         WHERE i.project = 'bench' AND i.service <> 'svc-10000'
         GROUP BY j.id, j.created_at
        """
    )
    to_page = [float(r["page"]) * 1000 for r in rows]
    to_done = [float(r["done"]) * 1000 for r in rows]
    assert len(rows) == jobs, len(rows)
    base = statistics.median(bare)
    print(f"{jobs} critical incidents, one at a time, rules planner (no model), sandbox router over MCP")
    print(_line("baseline: bare MCP tool call (open session)", bare, base))
    print(_line("baseline: open an MCP session (httpx2 + initialize)", opens, base))
    print(_line("job created -> PagerDuty trigger recorded (DB clock)", to_page, base))
    print(_line("job created -> last delivery recorded (DB clock)", to_done, base))
    print(_line("worker drain() per job (lease ... complete)", own, base))
    burst = [await dedup.claim(_anomaly(20_000 + i)) for i in range(jobs)]
    busy = _worker(pool, server, "bench-burst", concurrency)
    t0 = time.perf_counter()
    handled = await busy.drain()
    took = time.perf_counter() - t0
    assert len(handled) == len(burst)
    print(f"burst of {jobs} jobs, concurrency {concurrency}: {took:.2f} s, {jobs / took:.0f} jobs/s")


async def run(dsn: str, jobs: int, concurrency: int) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await migrator.migrate(conn)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=max(8, concurrency * 2), timeout=10)
    try:
        async with SandboxServer(pool) as server:
            await server.store.grant("operator", server.toolkits)
            await tokens(pool, server)
            print()
            await latency(pool, server, jobs, concurrency)
    finally:
        await pool.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: embedded, in a temporary directory)")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    if args.database_url:
        asyncio.run(run(args.database_url, args.jobs, args.concurrency))
        return 0
    with tempfile.TemporaryDirectory(prefix="lw-bench-pg-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        embedded = db.start_embedded(Path(tmp))
        asyncio.run(run(embedded.dsn, args.jobs, args.concurrency))
        del embedded
    return 0


if __name__ == "__main__":
    sys.exit(main())
