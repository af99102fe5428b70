"""``logwarden demo``: the whole product on a generated, labelled stream, in under a minute.

Everything is real: an embedded PostgreSQL (a fresh cluster in a temporary directory, removed at
the end, so every run starts clean), the sandbox tool router over MCP, the rules planner, the
HTTP ingest endpoint, claims, the outbox and the notification worker. Only time is accelerated:
the stream carries 15 minutes of event time and is posted as fast as the pipeline takes it, so
buckets close on event time and the dedup window is scaled down to match.
"""

from __future__ import annotations

import asyncio
import gzip
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

import httpx

from detector.models import AnomalyEvent
from logwarden.config import Settings
from logwarden.evaluation import Evaluation, evaluate, group_incidents
from logwarden.labels import Label
from logwarden.workload import Workload, demo_config

DELIVERIES = """
SELECT d.incident_id, i.project, i.service, d.job_kind, d.channel, d.action, d.target, d.status,
       d.external_ref, d.fallback_for
FROM deliveries d JOIN incidents i ON i.id = d.incident_id
ORDER BY d.incident_id, d.id
"""
INCIDENTS = """
SELECT id, project, service, signal, severity, status, occurrences, first_seen, resolved_at
FROM incidents ORDER BY id
"""
DEMO_DEDUP_WINDOW = 0.2
"""Seconds of database time: the stream runs about 60x faster than real time."""


@dataclass
class DemoReport:
    labels: list[Label]
    evaluation: Evaluation
    incidents: list[dict[str, object]]
    deliveries: list[dict[str, object]]
    lines: int
    rejected: int
    seconds: float
    per_channel: Counter[str] = field(default_factory=Counter)


class Progress:
    """A one-line progress bar on a terminal; a few plain lines otherwise."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total, self.out = max(total, 1), out
        self.tty = out.isatty()
        self._last_pct = -1

    def update(self, done: int, note: str) -> None:
        pct = min(100, done * 100 // self.total)
        if self.tty:
            bar = "#" * (pct // 4) + "-" * (25 - pct // 4)
            self.out.write(f"\r  [{bar}] {pct:3d}%  {note:<48}")
            self.out.flush()
        elif pct // 25 != self._last_pct // 25:
            self.out.write(f"  {pct:3d}%  {note}\n")
        self._last_pct = pct

    def close(self) -> None:
        if self.tty:
            self.out.write("\n")


DEFAULT_SPEED = 50.0
"""Event time runs this many times faster than the wall clock (15 minutes in 18 seconds), slow
enough that notifications go out while their incidents are still open, as they would live."""


async def run_demo(
    settings: Settings, *, seed: int = 0, speed: float = DEFAULT_SPEED, out: TextIO = sys.stdout
) -> DemoReport:
    """Run the demo against ``settings`` (a database URL there is used as is; otherwise a fresh
    embedded cluster in a temporary directory)."""
    from logwarden.service import Service

    started = time.perf_counter()
    workload = Workload(replace(demo_config(seed), chunk_s=5))
    labels = list(workload.labels)
    events: list[AnomalyEvent] = []
    scratch: Path | None = None
    if settings.database_url is None:
        scratch = Path(tempfile.mkdtemp(prefix="logwarden-demo-"))
    try:
        demo_settings = settings.model_copy(
            update={
                "data_dir": scratch if scratch is not None else settings.data_dir,
                "dedup_window": DEMO_DEDUP_WINDOW,
                "http_host": "127.0.0.1",
                "http_port": 0,
                "processor_id": "demo",
            }
        )
        async with Service.open(demo_settings, sandbox_port=0, advance_with_clock=False) as service:
            service.pipeline.listeners.append(events.append)
            if service.sandbox is not None:
                fleet = workload.fleet
                owners = {
                    service.policy.for_service(p, n).owner
                    for p, n in zip(fleet.projects, fleet.names, strict=True)
                }
                for owner in sorted(owners):
                    await service.sandbox.store.grant(owner, demo_settings.router_toolkits)
            out.write(
                f"logwarden demo: {len(workload.fleet)} services, "
                f"{workload.config.duration_s // 60} minutes of logs, {len(labels)} injected incidents\n"
                f"  ingest {service.http_url}/ingest  ·  "
                f"sandbox router {getattr(service.sandbox, 'origin', '-')}\n"
            )
            progress = Progress(workload.config.duration_s, out)
            lines, rejected = await _stream(workload, service.http_url or "", progress, speed)
            out.write("  closing buckets and delivering notifications...\n")
            await service.drain(timeout=30.0)
            incidents = [dict(r) for r in await service.pool.fetch(INCIDENTS)]
            deliveries = [dict(r) for r in await service.pool.fetch(DELIVERIES)]
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    grouped = group_incidents(events)
    evaluation = evaluate(labels, grouped, service_days=workload.service_days)
    report = DemoReport(
        labels=labels,
        evaluation=evaluation,
        incidents=incidents,
        deliveries=deliveries,
        lines=lines,
        rejected=rejected,
        seconds=time.perf_counter() - started,
    )
    report.per_channel.update(str(d["channel"]) for d in deliveries if d["status"] == "sent")
    return report


async def _stream(workload: Workload, base_url: str, progress: Progress, speed: float) -> tuple[int, int]:
    """POST the workload's chunks (gzip) to /ingest at ``speed`` times real time; retry 503s
    (back-pressure) until accepted."""
    lines = rejected = 0
    began = time.monotonic()
    async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(60.0, connect=5.0)) as client:
        for chunk in workload.chunks():
            due = began + (chunk.start - workload.config.start_ts) / speed
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            body = gzip.compress(chunk.data, compresslevel=1)
            while True:
                response = await client.post("/ingest", content=body, headers={"content-encoding": "gzip"})
                if response.status_code != 503:
                    break
                await asyncio.sleep(float(response.headers.get("retry-after", "1")) / 10)
            if response.status_code not in (200, 400):
                raise RuntimeError(f"ingest failed: HTTP {response.status_code} {response.text[:200]}")
            answer = response.json()
            lines += chunk.lines
            rejected += int(answer.get("rejected", 0))
            done = int(chunk.end - workload.config.start_ts)
            progress.update(done, f"{lines:,} lines, {rejected:,} rejected")
    progress.close()
    return lines, rejected


def _fmt_time(value: object) -> str:
    return "-" if value is None else f"{value:%H:%M:%S}"


def print_report(report: DemoReport, out: TextIO = sys.stdout) -> None:
    w: Callable[[str], object] = out.write
    w("\nIncidents\n")
    w(f"  {'id':>3}  {'project/service':<30} {'signal':<16} {'severity':<9} {'status':<9} {'seen':>4}\n")
    for i in report.incidents:
        name = f"{i['project']}/{i['service']}"
        w(
            f"  {i['id']:>3}  {name:<30} {i['signal']!s:<16} {_severity(i['severity']):<9} "
            f"{i['status']!s:<9} {i['occurrences']:>4}\n"
        )
    w("\nDeliveries (through the sandbox tool router, over MCP)\n")
    w(f"  {'inc':>3}  {'job':<8} {'action':<18} {'target':<16} {'status':<7} external reference\n")
    for d in report.deliveries:
        fallback = f"  (instead of {d['fallback_for']})" if d["fallback_for"] else ""
        w(
            f"  {d['incident_id']:>3}  {d['job_kind']!s:<8} {d['action']!s:<18} {d['target'] or '-'!s:<16} "
            f"{d['status']!s:<7} {d['external_ref'] or '-'}{fallback}\n"
        )
    ev = report.evaluation
    detected = sum(1 for o in ev.outcomes if o.label.positive and o.detected)
    positive = sum(1 for lb in report.labels if lb.positive)
    w("\nSummary\n")
    w(f"  injected incidents     {positive} (+{len(report.labels) - positive} that should stay silent)\n")
    w(f"  detected               {detected} of {positive}\n")
    w(f"  false incidents        {len(ev.false_incidents)}\n")
    median = ev.overall.median_delay
    w(f"  median detection delay {'-' if median is None else f'{median:.0f} buckets'}\n")
    channels = ", ".join(f"{c} {n}" for c, n in sorted(report.per_channel.items())) or "none"
    w(f"  deliveries             {channels}\n")
    w(f"  log lines              {report.lines:,} ({report.rejected:,} rejected as bad input)\n")
    w(f"  time taken             {report.seconds:.1f} s\n")


def _severity(value: object) -> str:
    return {1: "warning", 2: "critical"}.get(value, str(value)) if isinstance(value, int) else str(value)
