"""Several ``logwarden run`` OS processes on one PostgreSQL: they agree on one incident and one
set of notifications, a processor killed mid-stream loses nothing, and SIGTERM drains, closes
buckets, snapshots and exits 0."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import anyio
import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from logwarden.config import Settings
from tests.e2e import streams, support
from tests.e2e.processes import LogEntry, logwarden_run, run_env, stdin_args
from tests.e2e.streams import BURST_SERVICE

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.slow]

SNAPSHOTS = "SELECT processor_id FROM detector_state ORDER BY processor_id"
JOBS = "SELECT kind, status, lease_owner FROM notification_jobs ORDER BY id"


def opened(entry: LogEntry) -> bool:
    return entry.get("claim") == "new_incident"


async def assert_one_incident_paged_once(pool: asyncpg.Pool) -> None:
    [incident] = await support.incidents(pool)
    assert (incident["service"], incident["status"], incident["severity"]) == (BURST_SERVICE, "open", 2)
    assert await support.deliveries(pool) == support.OPENED
    assert await support.app_writes(pool) == support.OPENED_CALLS
    assert [tuple(r) for r in await pool.fetch(JOBS)] == [("open", "done", None)]


async def test_two_processors_fed_the_same_stream(
    database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    await support.grant_operator(pool)
    data = streams.incident().until_burst_ends
    env = run_env(database_url, tmp_path, dedup_window=1)
    with anyio.fail_after(90):
        async with (
            logwarden_run(stdin_args("A"), env, name="A") as a,
            logwarden_run(stdin_args("B"), env, name="B") as b,
        ):
            for part in streams.split_lines(data, 4):  # interleaved, as two shippers would
                await a.send(part)
                await b.send(part)
            await a.close_input()
            await b.close_input()
            assert await a.wait() == 0, a.log()
            assert await b.wait() == 0, b.log()

    await assert_one_incident_paged_once(pool)
    # Both read everything and stopped cleanly, each leaving its detector snapshot.
    assert [r["processor_id"] for r in await pool.fetch(SNAPSHOTS)] == ["A", "B"]


async def test_processor_killed_mid_stream_loses_nothing_and_doubles_nothing(
    database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    await support.grant_operator(pool)
    stream = streams.incident()
    half_burst = len(stream.burst) // 2
    first_half = streams.json_lines(stream.baseline + stream.burst[:half_burst])
    # A short lease and grace, so the survivor takes over whatever the dead processor held at once.
    env = run_env(
        database_url,
        tmp_path,
        worker_lease_seconds=5,
        agent_run_timeout=1,
        router_call_timeout=1.5,
        delivery_in_flight_grace=2,
    )
    with anyio.fail_after(90):
        async with (
            logwarden_run(stdin_args("A"), env, name="A") as a,
            logwarden_run(stdin_args("B"), env, name="B") as b,
        ):
            await a.send(first_half)
            entry = await a.wait_for_log(opened)  # A committed the incident and its open job...
            a.kill()  # ...and dies before it can do anything more
            assert await a.wait() == -signal.SIGKILL

            await b.send(stream.until_burst_ends)  # the survivor reads the whole stream
            await b.close_input()
            assert await b.wait() == 0, b.log()
            assert not any(opened(e) for e in b.entries)  # B found A's incident, opened none

    await assert_one_incident_paged_once(pool)
    [incident] = await support.incidents(pool)
    assert incident["id"] == entry["incident_id"]
    assert [r["processor_id"] for r in await pool.fetch(SNAPSHOTS)] == ["B"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_sigterm_closes_buckets_snapshots_and_exits_zero(
    database_url: str, pool: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    await support.grant_operator(pool)
    stream = streams.incident(burst_s=3)
    # The burst's last buckets are still open (within the allowed lateness) when SIGTERM comes:
    # only the shutdown's closing of buckets can turn them into the incident.
    port = free_port()
    env = run_env(database_url, tmp_path, http_port=port)
    with anyio.fail_after(90):
        async with logwarden_run(["--event-clock", "--processor-id", "T"], env, name="T") as run:
            await run.wait_for_log(lambda e: e.get("msg") == "logwarden processor started")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                response = await client.post("/ingest", content=stream.until_burst_ends)
                assert response.status_code == 200, response.text
                assert await support.incidents(pool) == []
            run.terminate()
            assert await run.wait() == 0, run.log()
        assert any(opened(e) for e in run.entries), run.log()

    [incident] = await support.incidents(pool)
    assert incident["status"] == "open"
    assert [tuple(r) for r in await pool.fetch(JOBS)] == [("open", "pending", None)]
    assert [r["processor_id"] for r in await pool.fetch(SNAPSHOTS)] == ["T"]

    # The next processor with that id resumes from the snapshot and delivers the waiting job.
    resumed = support.e2e_settings(settings, database_url=SecretStr(database_url), processor_id="T")
    async with support.running(resumed, grant=False, serve_http=False) as service:
        assert (await service.pipeline.refresh_stats()).keys == 2
        await service.drain()
    await assert_one_incident_paged_once(pool)
