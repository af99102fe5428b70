"""PostgreSQL stopped and started again under a running service: claims wait and retry, the
backlog stays bounded (ingestion answers 503 once it is full), and after the restart the
service recovers by itself: the incident and its notifications exist exactly once.

This test owns its PostgreSQL: an embedded cluster in a temporary directory, stopped and started
with the ``pg_ctl`` that ships in the pgserver wheel.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from pydantic import SecretStr

from logwarden import db
from logwarden.config import Settings
from tests.e2e import streams, support

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@dataclass
class Cluster:
    """A PostgreSQL cluster this test may stop and start."""

    dsn: str
    pgdata: Path
    socket_dir: str
    system_user: str | None

    def pg_ctl(self, *args: str) -> None:
        import pgserver

        binary = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_ctl"
        subprocess.run(
            [str(binary), "-D", str(self.pgdata), *args],
            check=True,
            capture_output=True,
            timeout=60,
            user=self.system_user,  # pgserver runs the server as its own user when we are root
        )

    def stop(self) -> None:
        self.pg_ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        options = f'-h "" -k {self.socket_dir}'  # Unix socket only, as pgserver starts it
        self.pg_ctl("-w", "-o", options, "-l", str(self.pgdata / "log"), "start")

    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    embedded = db.start_embedded(tmp_path / "pg")
    server = embedded.server
    socket_dir = parse_qs(urlsplit(embedded.dsn).query)["host"][0]
    found = Cluster(
        embedded.dsn, tmp_path / "pg" / "pgdata", socket_dir, getattr(server, "system_user", None)
    )
    try:
        yield found
    finally:
        # pgserver stops only the server process it started; after a restart that is ours to stop.
        if found.running():
            found.stop()
        del server, embedded


async def test_service_rides_out_a_postgres_restart(cluster: Cluster, tmp_path: Path) -> None:
    settings = Settings(
        database_url=SecretStr(cluster.dsn),
        data_dir=tmp_path / "data",
        max_backlog=1,
        db_connect_timeout=2,
        db_command_timeout=5,
    )
    settings = support.e2e_settings(settings)
    stream = streams.incident()
    half = len(stream.burst) // 2
    burst_start, burst_rest = streams.json_lines(stream.burst[:half]), streams.json_lines(stream.burst[half:])

    with anyio.fail_after(60):
        async with (
            support.running(settings) as service,
            httpx.AsyncClient(base_url=service.http_url or "", timeout=30) as client,
        ):
            assert (
                await client.post("/ingest", content=streams.json_lines(stream.baseline))
            ).status_code == 200

            await anyio.to_thread.run_sync(cluster.stop)
            # The burst's onset is detected and waits to be claimed...
            response = await client.post("/ingest", content=burst_start)
            assert response.status_code == 200, response.text
            assert service.pipeline.backlog == 1
            # ...and with the backlog full, ingestion is refused (clients retry), not buffered.
            refused = await client.post("/ingest", content=burst_rest)
            assert refused.status_code == 503
            assert "retry-after" in refused.headers
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"] is False
            assert (await client.get("/healthz")).status_code == 200

            await anyio.to_thread.run_sync(cluster.start)
            await service.pipeline.wait_claimed()  # the claimer's retry got through
            response = await client.post("/ingest", content=burst_rest)  # the client's retry
            assert response.status_code == 200, response.text
            await service.drain()
            assert (await client.get("/readyz")).status_code == 200

            [incident] = await support.incidents(service.pool)
            assert incident["status"] == "open"
            assert await support.deliveries(service.pool) == support.OPENED

            await client.post("/ingest", content=streams.json_lines(stream.recovery))
            await service.drain()

            [incident] = await support.incidents(service.pool)
            assert incident["status"] == "resolved"
            assert await support.deliveries(service.pool) == support.OPENED + support.RESOLVED
            assert await support.app_writes(service.pool) == support.OPENED_CALLS + support.RESOLVED_CALLS

            metrics = (await client.get("/metrics")).text
            assert support.metric(metrics, "logwarden_claim_retries_total") >= 1
            assert support.metric(metrics, "logwarden_ingest_shed_total", reason="claim_backlog_full") == 1
            expected = len(stream.baseline) + len(stream.burst) + len(stream.recovery)
            assert support.metric(metrics, "logwarden_log_records_accepted_total") == expected
