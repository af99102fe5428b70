"""Dedup claims: throughput and latency beside a ``SELECT 1`` round trip measured in the same run.

    python benchmarks/dedup_claims.py [--database-url URL] [--seconds 2] [--concurrency 1,4,16,64]

The server is ``--database-url``, else ``LOGWARDEN_DATABASE_URL``, else an embedded PostgreSQL in a
temporary directory. On a given server a scratch database is created (the URL needs CREATEDB) and
dropped at the end. For every concurrency (one pool connection per concurrent task) it prints:

- ``SELECT 1`` through the project's pool (no reset query on release) and through a pool with
  asyncpg's default reset, the baselines;
- ``claim()`` workloads: ``storm`` (every anomaly claimed by 4 processors: 1 new incident, then
  3 duplicates), the same with the read-only pre-check off, ``new`` (every claim opens an incident:
  three rows and a commit), ``dup`` (every claim a duplicate), and ``storm`` through the
  default-reset pool;
- p50/p99 latency, claims/s, and p99 as a multiple of ``SELECT 1``'s p99 on the same kind of pool.

Then ``claim_many`` throughput in batches of 1,000, beside a floor (one statement inserting the
rows 1,000 new incidents write, deciding nothing): ``new`` fingerprints, ``dup``licates (with the
read-only pre-check, the default, and without: one statement that is sent every anomaly's JSON),
``storm`` (250 fingerprints x 4 copies in each batch, folded in order), ``attach`` (open incidents
whose window has passed), and 4 connections claiming the same batches at once (4 processors in a
storm).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.dedup import Dedup, DedupConfig, _latest_json
from detector.models import AnomalyEvent
from logwarden import db as dbmod
from logwarden import migrator
from logwarden.config import Settings, load_settings
from tests.detector.support import anomaly as make_anomaly

_ids = itertools.count()
TARGET_MANY = 100_000
MESSAGES = ("timeout after <n>ms calling <host>", "connection reset by peer")


def anomaly(service: str) -> AnomalyEvent:
    return make_anomaly(project="bench", service=service, messages=MESSAGES)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(
    concurrency: int, seconds: float, op: Callable[[int], Awaitable[Any]]
) -> tuple[float, list[float]]:
    """Run ``op(i)`` from ``concurrency`` tasks for ``seconds``; (ops per second, latencies)."""
    latencies: list[float] = []
    counter = itertools.count()
    deadline = time.perf_counter() + seconds

    async def task() -> None:
        while time.perf_counter() < deadline:
            i = next(counter)
            t0 = time.perf_counter()
            await op(i)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(task() for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - start), latencies


async def make_pool(dsn: str, size: int, *, default_reset: bool) -> asyncpg.Pool:
    if default_reset:
        pool = await asyncpg.create_pool(dsn, min_size=size, max_size=size)
    else:
        settings = Settings(db_pool_min_size=size, db_pool_max_size=size)
        pool = await dbmod.create_pool(dbmod.Database(dsn=dsn, source="url", display="bench"), settings)
    assert pool is not None
    return pool


def row(conc: int, name: str, rate: float, lat: list[float], base_p99: float | None) -> None:
    p50, p99 = pct(lat, 0.50) * 1e3, pct(lat, 0.99) * 1e3
    ratio = "" if base_p99 is None else f"{p99 / base_p99:8.2f}x"
    print(f"{conc:>4}  {name:<36} {rate:>9.0f} {p50:>9.3f} {p99:>9.3f} {ratio}", flush=True)


async def single_claims(dsn: str, concurrencies: list[int], seconds: float) -> None:
    print("\nclaim(): one anomaly per call")
    print(f"{'conc':>4}  {'operation':<36} {'ops/s':>9} {'p50 ms':>9} {'p99 ms':>9} p99 vs SELECT 1")
    for conc in concurrencies:
        tag = next(_ids)
        # one pool at a time: 2 x 64 connections would exceed a default max_connections
        pool = await make_pool(dsn, conc, default_reset=False)
        try:
            await pool.execute("CREATE TABLE IF NOT EXISTS bench_commit (n bigint)")
            rate, lat = await measure(conc, seconds, lambda i, p=pool: p.fetchval("SELECT 1"))
            base = pct(lat, 0.99) * 1e3
            row(conc, "SELECT 1 (pool, no reset)", rate, lat, None)
            rate, lat = await measure(
                conc, seconds, lambda i, p=pool: p.execute("INSERT INTO bench_commit VALUES ($1)", i)
            )
            row(conc, "INSERT one row + commit (floor)", rate, lat, base)
            for name, precheck in (("claim storm (one statement)", False), ("claim storm (pre-check)", True)):
                await storm(pool, conc, seconds, f"{tag}-{precheck}", name, precheck, base)

            dedup = Dedup(pool, DedupConfig(precheck=False))
            fresh = [anomaly(f"new-{tag}-{i}") for i in range(int(seconds * 15_000))]
            rate, lat = await measure(conc, seconds, lambda i, d=dedup, f=fresh: d.claim(f[i % len(f)]))
            row(conc, "claim new incident", rate, lat, base)

            known = [anomaly(f"dup-{tag}-{i}") for i in range(1000)]
            await Dedup(pool, DedupConfig(window=3600)).claim_many(known)
            for name, precheck in (
                ("claim duplicate (one statement)", False),
                ("claim duplicate (pre-check)", True),
            ):
                held = Dedup(pool, DedupConfig(window=3600, precheck=precheck))
                rate, lat = await measure(conc, seconds, lambda i, h=held, k=known: h.claim(k[i % len(k)]))
                row(conc, name, rate, lat, base)
            await pool.execute("DROP TABLE bench_commit")
        finally:
            await pool.close()
        plain = await make_pool(dsn, conc, default_reset=True)
        try:
            rate, lat = await measure(conc, seconds, lambda i, p=plain: p.fetchval("SELECT 1"))
            row(conc, "SELECT 1 (asyncpg default reset)", rate, lat, None)
            name = "claim storm (default reset)"
            await storm(plain, conc, seconds, f"{tag}-plain", name, False, pct(lat, 0.99) * 1e3)
        finally:
            await plain.close()


async def storm(
    pool: asyncpg.Pool, conc: int, seconds: float, tag: str, name: str, precheck: bool, base_p99: float
) -> None:
    """Every anomaly claimed 4 times in a row (4 processors): 1 new incident, 3 duplicates."""
    dedup = Dedup(pool, DedupConfig(precheck=precheck))
    anomalies = [anomaly(f"storm-{tag}-{i}") for i in range(int(seconds * 8_000))]
    rate, lat = await measure(conc, seconds, lambda i: dedup.claim(anomalies[(i // 4) % len(anomalies)]))
    row(conc, name, rate, lat, base_p99)


FLOOR = """
WITH i AS (
    INSERT INTO incidents (id, fingerprint, project, service, signal, severity, latest)
    SELECT nextval('incidents_id_seq'), fp, 'bench', fp, 'error_rate', 1, l::json
    FROM unnest($1::text[], $2::text[]) AS u (fp, l)
    RETURNING id, fingerprint
), c AS (
    INSERT INTO incident_claims (fingerprint, incident_id, phase, severity, window_until, paged_at)
    SELECT fingerprint, id, 'active', 1, now(), now() FROM i
)
INSERT INTO notification_jobs (id, incident_id, kind)
SELECT nextval('notification_jobs_id_seq'), id, 'open' FROM i
"""
"""The rows 1,000 new incidents write (claim row, incident, open job), inserted without deciding
anything: the floor under ``new incidents``."""


async def batch_claims(dsn: str, seconds: float, rounds: int) -> None:
    print(
        "\nclaim_many(): batches of 1,000 anomalies (a read-only pre-check, then a claim statement for"
        f" what may change); best of {rounds} rounds"
    )
    pool = await make_pool(dsn, 4, default_reset=False)
    best: dict[str, tuple[float, float]] = {}  # workload → (claims/s, batch p50 s)

    def keep(name: str, rate: float, lat: list[float]) -> None:
        if name not in best or rate > best[name][0]:
            best[name] = (rate, statistics.median(lat) if lat else 0.0)

    try:
        for round_ in range(rounds):
            tag = next(_ids)
            await one_round(pool, tag, seconds, keep)
            print(f"  round {round_ + 1}: load average {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        await pool.close()
    floor = best[FLOOR_NAME][0]
    print(f"{'workload':<48} {'claims/s':>10} {'batch p50 ms':>13} {'vs floor':>9}")
    for name, (rate, p50) in best.items():
        print(f"{name:<48} {rate:>10.0f} {p50 * 1e3:>13.1f} {rate / floor:>8.2f}x", flush=True)
    print(f"target: claim_many >= {TARGET_MANY:,.0f} claims/s")


FLOOR_NAME = "floor: insert what 1,000 new incidents write"


async def timed(batches: list[Any], op: Callable[[Any], Awaitable[Any]]) -> list[float]:
    """Seconds each ``op(batch)`` took, one batch after another."""
    out = []
    for batch in batches:
        t0 = time.perf_counter()
        await op(batch)
        out.append(time.perf_counter() - t0)
    return out


async def one_round(
    pool: asyncpg.Pool, tag: int, seconds: float, keep: Callable[[str, float, list[float]], None]
) -> None:
    """Every claim_many workload once; ``keep(name, claims per second, batch latencies)``."""
    dedup = Dedup(pool)
    long_window = Dedup(pool, DedupConfig(window=3600))
    one_statement = Dedup(pool, DedupConfig(window=3600, precheck=False))
    known = [anomaly(f"mdup-{tag}-{i}") for i in range(1000)]
    await long_window.claim_many(known)
    attach = [anomaly(f"mattach-{tag}-{i}") for i in range(1000)]
    await dedup.claim_many(attach)
    expire = "UPDATE incident_claims SET window_until = now() WHERE fingerprint = ANY($1::text[])"
    attach_fps = [a.fingerprint for a in attach]

    # every batch is used once (a batch claimed again would be all duplicates)
    count = max(8, int(seconds * 20))
    latest = _latest_json(anomaly("floor"))
    floor_batches = [([f"floor-{tag}-{i}-{j}" for j in range(1000)], [latest] * 1000) for i in range(count)]
    lat = await timed(floor_batches, lambda b: pool.execute(FLOOR, *b))
    keep(FLOOR_NAME, 1000 * len(lat) / sum(lat), lat)
    batches: dict[str, Callable[[int], list[AnomalyEvent]]] = {
        "new incidents (1,000 fingerprints)": lambda i: [anomaly(f"mnew-{tag}-{i}-{j}") for j in range(1000)],
        "duplicates (1,000 open, in window)": lambda i: known,
        "duplicates, one statement (pre-check off)": lambda i: known,
        "storm (250 fingerprints x 4 copies)": lambda i: [
            anomaly(f"mstorm-{tag}-{i}-{j // 4}") for j in range(1000)
        ],
    }
    for name, make in batches.items():
        claims = (
            one_statement if "pre-check off" in name else long_window if name.startswith("dup") else dedup
        )
        lat = await timed([make(i) for i in range(count)], claims.claim_many)
        keep(name, 1000 * len(lat) / sum(lat), lat)

    # re-claims of open incidents after their window: each attaches (claim row + incident)
    lat = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        await pool.execute(expire, attach_fps)
        t0 = time.perf_counter()
        await dedup.claim_many(attach)
        lat.append(time.perf_counter() - t0)
    keep("attach (1,000 open, window passed)", 1000 * len(lat) / sum(lat), lat)

    # 4 processors claim the same storm batches at the same time
    shared = [[anomaly(f"mshared-{tag}-{i}-{j // 4}") for j in range(1000)] for i in range(200)]
    done = 0
    lat = []
    t0 = time.perf_counter()
    for batch in shared:
        t1 = time.perf_counter()
        await asyncio.gather(*(dedup.claim_many(batch) for _ in range(4)))
        lat.append(time.perf_counter() - t1)
        done += 4000
        if time.perf_counter() - t0 > seconds:
            break
    keep("storm x 4 connections on the same batches", done / (time.perf_counter() - t0), lat)


async def prepare(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrator.migrate(conn)
        version = await conn.fetchval("SHOW server_version")
        print(f"PostgreSQL {version}; load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
    finally:
        await conn.close()


async def run(dsn: str, concurrencies: list[int], seconds: float, batches: bool, rounds: int) -> None:
    await prepare(dsn)
    if concurrencies:
        await single_claims(dsn, concurrencies, seconds)
    if batches:
        await batch_claims(dsn, seconds, rounds)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


async def scratch(admin_dsn: str, name: str, create: bool) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="an admin URL of a PostgreSQL server")
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement (default 2)")
    parser.add_argument("--concurrency", default="1,4,16,64", help="comma-separated (default 1,4,16,64)")
    parser.add_argument("--no-batches", action="store_true", help="skip the claim_many measurements")
    parser.add_argument("--rounds", type=int, default=3, help="claim_many rounds, best reported (default 3)")
    parser.add_argument("--no-single", action="store_true", help="skip the claim() measurements")
    args = parser.parse_args()
    concurrencies = [] if args.no_single else [int(c) for c in args.concurrency.split(",")]
    url = args.database_url
    if url is None and (configured := load_settings().database_url) is not None:
        url = configured.get_secret_value()
    if url is None:
        with tempfile.TemporaryDirectory(prefix="logwarden-bench-") as tmp:
            server = dbmod.start_embedded(Path(tmp))
            print(f"server: {server.display}")
            asyncio.run(run(server.dsn, concurrencies, args.seconds, not args.no_batches, args.rounds))
            del server
        return
    name = f"lw_bench_{os.getpid()}"
    print(f"server: {dbmod.mask_url(url)} (scratch database {name})")
    asyncio.run(scratch(url, name, create=True))
    try:
        asyncio.run(
            run(dbmod.with_database(url, name), concurrencies, args.seconds, not args.no_batches, args.rounds)
        )
    finally:
        asyncio.run(scratch(url, name, create=False))


if __name__ == "__main__":
    main()
