"""The whole service: lines/s through HTTP and stdin beside the detector alone, and anomaly →
delivery latency through claims, the outbox, the rules planner and the sandbox router.

    python benchmarks/service_e2e.py [--database-url URL] [--preset default] [--duration 900]
        [--clients 4] [--body-lines 20000] [--latency-services 120] [--speed 5]

The server is ``--database-url``, else ``LOGWARDEN_DATABASE_URL``, else an embedded PostgreSQL in a
temporary directory; each phase gets a scratch database (the URL needs CREATEDB), dropped at the
end. One generated workload (``logwarden.workload``, ``--preset`` cut to ``--duration`` seconds of
event time) goes through:

1. the detector alone: ``Detector.feed`` over the file in 1 MiB chunks, then ``flush`` (measured
   before and after the service runs; the better one is the baseline);
2. stdin: ``logwarden run --stdin --no-http --exit-at-eof --event-clock`` (an OS process) fed the
   file through a pipe: lines/s from "processor started" to "processor stopped" in its own log
   (ingest, detection, claims, notifications delivered, snapshot), and its start-up time apart;
3. HTTP: ``logwarden run --event-clock`` (an OS process) and ``--clients`` concurrent clients in
   this process posting gzip bodies of ``--body-lines`` JSON lines to /ingest (compressed before
   the clock starts): lines/s from the first request to the last answer (every body detected
   before its answer), then the SIGTERM shutdown (closing buckets, claims, snapshot) apart.

Concurrent clients send event time out of order, so every path runs the detector with a 60 s
allowed lateness (``LOGWARDEN_DETECTOR__ALLOWED_LATENESS_SECONDS``) to keep the comparison fair.

4. Latency: the service in this process (HTTP ingest, rules planner, sandbox router over MCP,
   worker as in production) on ``--latency-services`` services that each burst once (60 s of 90%
   errors), one every ``--gap`` wall seconds, streamed at ``--speed`` times real time after an
   unpaced warm-up. For each
   incident: the anomaly's emission (``pipeline.listeners``, wall clock) to its claim committed
   (``incidents.created_at``), to its first delivery completed (``deliveries.completed_at``), and
   to its open job finished (``notification_jobs.finished_at``); p50, p99 and max.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import resource
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.dedup_claims import scratch
from detector import Detector
from detector.config import DetectorConfig
from detector.models import AnomalyEvent, EventKind
from logwarden import db as dbmod
from logwarden import migrator
from logwarden.config import Settings, load_settings
from logwarden.workload import PRESETS, Workload, preset_config
from tests.e2e.processes import RunProcess, logwarden_run, run_env

LATENESS = 60.0
CHUNK = 1 << 20
T0 = 1_735_689_600
OPERATOR_TOOLKITS = ("slack", "jira", "pagerduty")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(label: str, lines: int, seconds: float, baseline_rate: float) -> None:
    rate = lines / seconds if seconds > 0 else 0.0
    print(f"  {label:<46} {rate / 1e3:8.0f} k lines/s   ratio {rate / baseline_rate:.2f}")


# -- database ---------------------------------------------------------------------------------


async def prepared(admin_dsn: str, name: str) -> str:
    """A fresh, migrated database where the built-in policy's owner has every toolkit connected."""
    from router.sandbox.store import SandboxStore

    await scratch(admin_dsn, name, create=True)
    url = dbmod.with_database(admin_dsn, name)
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await migrator.migrate(conn)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        await SandboxStore(pool).grant("operator", OPERATOR_TOOLKITS)
    finally:
        await pool.close()
    return url


async def outcome(url: str) -> str:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        incidents = await conn.fetchval("SELECT count(*) FROM incidents")
        sent = await conn.fetchval("SELECT count(*) FROM deliveries WHERE status = 'sent'")
        jobs = await conn.fetchval(
            "SELECT count(*) FROM notification_jobs WHERE status IN ('pending','leased')"
        )
    finally:
        await conn.close()
    return f"{incidents} incidents, {sent} deliveries sent, {jobs} jobs unfinished"


# -- the detector alone -----------------------------------------------------------------------


def detector_only(path: Path, config: DetectorConfig) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, events accepted) for Detector.feed over the file."""
    detector = Detector(config)
    with path.open("rb") as f:
        chunks = iter(lambda: f.read(CHUNK), b"")
        wall, cpu = time.perf_counter(), time.process_time()
        for chunk in chunks:
            detector.feed(chunk)
        detector.flush()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, detector.stats().events_accepted


# -- logwarden run processes ------------------------------------------------------------------


def log_time(run: RunProcess, message: str) -> float:
    for entry in run.entries:
        if entry.get("msg") == message and "ts" in entry:
            return datetime.fromisoformat(str(entry["ts"])).timestamp()
    raise RuntimeError(f"{run.name} never logged {message!r}:\n{run.log()}")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def started(entry: dict[str, Any]) -> bool:
    return entry.get("msg") == "logwarden processor started"


@dataclass
class RunFigures:
    lines: int
    seconds: float
    startup: float
    note: str
    cpu: float
    """CPU seconds (user + system) of the logwarden process over its whole life, start-up included."""


async def through_stdin(admin: str, path: Path, lines: int, tmp: Path, phase: str = "stdin") -> RunFigures:
    url = await prepared(admin, f"lw_bench_{phase}_{os.getpid()}")
    env = run_env(url, tmp / phase, detector__allowed_lateness_seconds=LATENESS, log_level="info")
    args = ["--stdin", "--no-http", "--exit-at-eof", "--event-clock", "--processor-id", "bench-stdin"]
    spawned, cpu = time.time(), children_cpu()
    async with logwarden_run(args, env, name="stdin") as run:
        await run.wait_for_log(started)
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                await run.send(chunk)
        await run.close_input()
        if await run.wait() != 0:
            raise RuntimeError(f"logwarden run failed:\n{run.log()}")
    began, ended = log_time(run, "logwarden processor started"), log_time(run, "logwarden processor stopped")
    cpu = children_cpu() - cpu
    return RunFigures(lines, ended - began, began - spawned, await outcome(url), cpu)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bodies(path: Path, body_lines: int) -> Iterator[tuple[bytes, int]]:
    """(gzip body, lines) pieces of the file, in order."""
    with path.open("rb") as f:
        batch: list[bytes] = []
        for line in f:
            batch.append(line)
            if len(batch) == body_lines:
                yield gzip.compress(b"".join(batch), compresslevel=6), len(batch)
                batch = []
        if batch:
            yield gzip.compress(b"".join(batch), compresslevel=6), len(batch)


async def through_http(
    admin: str, path: Path, clients: int, body_lines: int, tmp: Path
) -> tuple[RunFigures, str]:
    url = await prepared(admin, f"lw_bench_http_{os.getpid()}")
    port = free_port()
    env = run_env(url, tmp / "http", detector__allowed_lateness_seconds=LATENESS, http_port=port)
    payloads = list(bodies(path, body_lines))
    queue = iter(payloads)
    counts = {"accepted": 0, "rejected": 0, "overloaded": 0}
    spawned, cpu = time.time(), children_cpu()

    async def client(http: httpx.AsyncClient) -> None:
        for body, _ in queue:
            while True:
                response = await http.post("/ingest", content=body, headers={"content-encoding": "gzip"})
                if response.status_code != 503:
                    break
                counts["overloaded"] += 1
                await asyncio.sleep(0.05)
            if response.status_code not in (200, 400):
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
            answer = response.json()
            counts["accepted"] += answer["accepted"]
            counts["rejected"] += answer["rejected"]

    async with logwarden_run(["--event-clock", "--processor-id", "bench-http"], env, name="http") as run:
        await run.wait_for_log(started)
        startup = time.time() - spawned
        limits = httpx.Limits(max_connections=clients)
        timeout = httpx.Timeout(120.0, connect=10.0)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=timeout
        ) as http:
            began = time.perf_counter()
            await asyncio.gather(*(client(http) for _ in range(clients)))
            posting = time.perf_counter() - began
        stopping = time.perf_counter()
        run.process.send_signal(signal.SIGTERM)
        if await run.wait() != 0:
            raise RuntimeError(f"logwarden run failed:\n{run.log()}")
        shutdown = time.perf_counter() - stopping
    lines = sum(n for _, n in payloads)
    size = sum(len(b) for b, _ in payloads) / 1e6
    note = (
        f"{counts['accepted']:,} accepted, {counts['rejected']:,} rejected, "
        f"{counts['overloaded']} answers 503; "
        f"{len(payloads)} bodies of {body_lines:,} lines, {size:.1f} MB gzip"
    )
    figures = RunFigures(lines, posting, startup, note, children_cpu() - cpu)
    return figures, f"SIGTERM shutdown {shutdown:.2f} s; {await outcome(url)}"


# -- anomaly → delivery latency ----------------------------------------------------------------

LATENCY = """
SELECT i.fingerprint,
       extract(epoch FROM i.created_at) AS claimed,
       extract(epoch FROM j.finished_at) AS finished,
       (SELECT sum(latency_ms) / 1000 FROM decisions c WHERE c.job_id = j.id) AS handling,
       (SELECT extract(epoch FROM min(d.completed_at)) FROM deliveries d
         WHERE d.job_id = j.id AND d.status = 'sent') AS first_delivery
FROM incidents i JOIN notification_jobs j ON j.incident_id = i.id AND j.kind = 'open'
"""


def burst_stream(
    services: int, warmup_s: int, spacing: float, burst_s: int, tail_s: int
) -> list[tuple[int, bytes]]:
    """(event second, JSON lines) per second: 4 lines/s per service, 2% errors; service k has
    90% errors from warmup + k*spacing for burst_s seconds."""
    stop = warmup_s + int(services * spacing) + burst_s + tail_s
    out = []
    for second in range(stop):
        lines = []
        for k in range(services):
            start = warmup_s + k * spacing
            bursting = start <= second < start + burst_s
            for i in range(4):
                n = second * 4 + i
                error = (n % 10 != 0) if bursting else (n % 50 == 0)
                level = "ERROR" if error else "INFO"
                message = "upstream timeout after 3001ms" if error else "GET /api 200"
                ts = T0 + second + i / 4
                lines.append(f'{{"ts":{ts},"service":"svc-{k:03d}","level":"{level}","message":"{message}"}}')
        out.append((second, ("\n".join(lines) + "\n").encode()))
    return out


async def latency(
    admin: str, services: int, speed: float, gap: float, poll: float, tmp: Path
) -> dict[str, list[float]]:
    from pydantic import SecretStr

    from logwarden.service import Service

    url = await prepared(admin, f"lw_bench_latency_{os.getpid()}")
    settings = Settings(
        database_url=SecretStr(url),
        data_dir=tmp / "latency",
        http_port=0,
        processor_id="bench-latency",
        worker_poll_interval=poll,
        log_level="warning",
    )
    warmup_s, burst_s = 90, 60
    stream = burst_stream(services, warmup_s, gap * speed, burst_s, tail_s=20)
    emitted: dict[str, float] = {}

    def on_anomaly(event: AnomalyEvent) -> None:
        if event.kind is EventKind.ONSET and event.fingerprint not in emitted:
            emitted[event.fingerprint] = time.time()

    async with Service.open(settings, sandbox_port=0, advance_with_clock=False) as service:
        service.pipeline.listeners.append(on_anomaly)
        async with httpx.AsyncClient(base_url=service.http_url or "", timeout=60) as http:
            warm = b"".join(body for second, body in stream if second < warmup_s - 10)
            assert (await http.post("/ingest", content=warm)).status_code == 200
            paced = [(s, b) for s, b in stream if s >= warmup_s - 10]
            began = time.monotonic()
            for second, body in paced:
                due = began + (second - paced[0][0]) / speed
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                assert (await http.post("/ingest", content=body)).status_code == 200
        await service.drain()
        rows = await service.pool.fetch(LATENCY)
    out: dict[str, list[float]] = {
        "claim": [],
        "first delivery": [],
        "job done": [],
        "not delivered": [],
        "queued": [],
        "handling": [],
    }
    for row in rows:
        t = emitted.get(row["fingerprint"])
        if t is None:
            continue
        out["claim"].append(float(row["claimed"]) - t)
        if row["first_delivery"] is None:
            out["not delivered"].append(1.0)
            continue
        out["first delivery"].append(float(row["first_delivery"]) - t)
        out["job done"].append(float(row["finished"]) - t)
        out["queued"].append(float(row["finished"]) - float(row["handling"]) - float(row["claimed"]))
        out["handling"].append(float(row["handling"]))
    return out


# -- main -------------------------------------------------------------------------------------


async def run(admin: str, args: argparse.Namespace, tmp: Path) -> None:
    if "stdin" in args.phases or "http" in args.phases:
        await throughput(admin, args, tmp)
    if "latency" in args.phases:
        await delivery_latency(admin, args, tmp)


async def throughput(admin: str, args: argparse.Namespace, tmp: Path) -> None:
    workload = Workload(replace(preset_config(args.preset, args.seed, duration_s=args.duration)))
    path = tmp / "workload.jsonl"
    with path.open("wb") as f:
        totals = workload.write(f)
    print(
        f"workload: preset {args.preset}, {len(workload.fleet)} services, {args.duration} s of event time, "
        f"{totals.lines:,} lines ({totals.bytes / 1e6:.0f} MB, {totals.bad:,} bad)"
    )
    config = DetectorConfig(allowed_lateness_seconds=LATENESS)

    before = detector_only(path, config)
    empty = tmp / "empty.jsonl"
    empty.write_bytes(b"")
    idle = await through_stdin(admin, empty, 0, tmp, "idle")  # start-up and shutdown alone
    stdin = await through_stdin(admin, path, totals.lines, tmp) if "stdin" in args.phases else None
    http = (
        await through_http(admin, path, args.clients, args.body_lines, tmp) if "http" in args.phases else None
    )
    after = detector_only(path, config)
    det_wall = min(before[0], after[0])
    det_rate = totals.lines / det_wall

    print("\nthroughput (same bytes; ratio = path / detector alone)")
    row("detector alone (Detector.feed, one thread)", totals.lines, det_wall, det_rate)
    print(
        f"         wall {before[0]:.2f} s before, {after[0]:.2f} s after; "
        f"CPU {min(before[1], after[1]):.2f} s"
    )
    if stdin is not None:
        row("stdin  logwarden run --stdin (process)", stdin.lines, stdin.seconds, det_rate)
        print(f"         {stdin.seconds:.2f} s; start-up {stdin.startup:.1f} s apart; {stdin.note}")
        net = stdin.cpu - idle.cpu
        print(
            f"         process CPU {stdin.cpu:.1f} s; {net:.1f} s beyond an empty run's {idle.cpu:.1f} s: "
            f"{totals.lines / net / 1e3:.0f} k lines per CPU-second (detector alone: "
            f"{totals.lines / min(before[1], after[1]) / 1e3:.0f} k)"
        )
    if http is not None:
        figures, shutdown = http
        row(f"HTTP   POST /ingest gzip, {args.clients} clients", figures.lines, figures.seconds, det_rate)
        print(f"         {figures.seconds:.2f} s; start-up {figures.startup:.1f} s apart")
        net = figures.cpu - idle.cpu
        print(
            f"         process CPU {figures.cpu:.1f} s; {net:.1f} s beyond an empty run's: "
            f"{totals.lines / net / 1e3:.0f} k lines per CPU-second (gzip, HTTP and detection)"
        )
        print(f"         {figures.note}")
        print(f"         {shutdown}")


async def delivery_latency(admin: str, args: argparse.Namespace, tmp: Path) -> None:
    lat = await latency(admin, args.latency_services, args.speed, args.gap, args.poll, tmp)
    print(
        f"\nanomaly → delivery latency: {args.latency_services} services, one burst every {args.gap:g} s "
        f"(wall), event time at {args.speed:g}x real time; rules planner, sandbox router over MCP, "
        f"worker: 4 jobs at once, polling every {args.poll:g} s when idle"
    )
    labels = {
        "claim": "emitted → claim",
        "first delivery": "emitted → first delivery",
        "job done": "emitted → job done",
        "queued": "  claim → job leased",
        "handling": "  job handling",
    }
    for name, label in labels.items():
        values = lat[name]
        if values:
            print(
                f"  {label:<25} n={len(values):<4} p50 {pct(values, 0.5) * 1e3:7.1f} ms   "
                f"p99 {pct(values, 0.99) * 1e3:7.1f} ms   max {max(values) * 1e3:7.1f} ms   "
                f"mean {statistics.fmean(values) * 1e3:7.1f} ms"
            )
    if lat["not delivered"]:
        print(f"  {len(lat['not delivered'])} incidents recovered before their page went out (nothing sent)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="an admin URL of a PostgreSQL server")
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS))
    parser.add_argument("--duration", type=int, default=900, help="seconds of event time (default 900)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients (default 4)")
    parser.add_argument("--body-lines", type=int, default=20_000, help="lines per HTTP body (default 20000)")
    parser.add_argument("--latency-services", type=int, default=100, help="bursts in the latency run")
    parser.add_argument("--speed", type=float, default=20.0, help="latency stream: x real time (default 20)")
    parser.add_argument("--gap", type=float, default=0.5, help="latency stream: wall s between bursts (0.5)")
    parser.add_argument(
        "--poll", type=float, default=1.0, help="worker poll interval, s (default 1, as shipped)"
    )
    parser.add_argument(
        "--phases", default="stdin,http,latency", help="comma-separated: stdin, http, latency (default all)"
    )
    args = parser.parse_args()

    url = args.database_url
    if url is None and (configured := load_settings().database_url) is not None:
        url = configured.get_secret_value()
    with tempfile.TemporaryDirectory(prefix="logwarden-bench-e2e-") as tmp:
        embedded = None
        if url is None:
            embedded = dbmod.start_embedded(Path(tmp) / "pg")
            url = embedded.dsn
        print(f"server: {dbmod.mask_url(url)}")
        try:
            asyncio.run(run(url, args, Path(tmp)))
        finally:
            for phase in ("idle", "stdin", "http", "latency"):
                asyncio.run(scratch(url, f"lw_bench_{phase}_{os.getpid()}", create=False))
            del embedded


if __name__ == "__main__":
    main()
