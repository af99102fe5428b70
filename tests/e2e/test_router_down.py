"""The tool router unavailable for a while: notifications wait (their jobs retried with backoff,
nothing marked sent) and go out once it is back, each exactly once."""

from __future__ import annotations

from collections import Counter

import anyio
import pytest

from logwarden.config import Settings
from logwarden.service import Service
from router.sandbox import SandboxServer
from router.sandbox.failures import Failure, FailureKind
from tests.e2e import streams, support

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

JOBS = "SELECT kind, status, attempts, last_error FROM notification_jobs ORDER BY id"


async def open_incident(service: Service) -> None:
    """Ingest a burst and claim it: the incident and its open job exist, nothing is sent yet."""
    stream = streams.incident()
    await service.pipeline.ingest_lines(stream.until_burst_ends)
    await service.pipeline.flush()
    await service.pipeline.claim_pending()
    assert [i["status"] for i in await support.incidents(service.pool)] == ["open"]


def sandbox_of(service: Service) -> SandboxServer:
    assert isinstance(service.sandbox, SandboxServer)
    return service.sandbox


async def test_router_stopped_then_back_on_the_same_port(settings: Settings) -> None:
    # Retries due at once, so each drain round below is one more attempt while the router is down.
    at_once = support.e2e_settings(settings, dedup_backoff_base=0.0)
    with anyio.fail_after(60):
        async with support.running(at_once, run_worker=False, serve_http=False) as service:
            await open_incident(service)
            sandbox = sandbox_of(service)
            port = sandbox.port
            assert (await service.readiness())["router"] is True
            await sandbox.stop()
            assert (await service.readiness())["router"] is False

            for attempt in (1, 2):
                [handled] = await service.worker.drain(max_rounds=1)
                assert handled.disposition.value == "retry"
                assert "RouterUnavailable" in (handled.error or "")
                [job] = await service.pool.fetch(JOBS)
                assert (job["kind"], job["status"], job["attempts"]) == ("open", "pending", attempt)
            assert await support.app_writes(service.pool) == Counter()
            assert not any(status == "sent" for _, _, status in await support.deliveries(service.pool))

            await sandbox.start()
            assert sandbox.port == port
            assert (await service.readiness())["router"] is True
            await service.drain()

            [job] = await service.pool.fetch(JOBS)
            assert (job["status"], job["attempts"]) == ("done", 3)
            assert await support.deliveries(service.pool) == support.OPENED
            assert await support.app_writes(service.pool) == support.OPENED_CALLS


async def test_router_answering_503_for_a_while(settings: Settings) -> None:
    with anyio.fail_after(60):
        async with support.running(support.e2e_settings(settings), serve_http=False) as service:
            # The next five MCP tool calls get HTTP 503 before any tool runs; the worker is
            # running as in production, and drain() waits for the job to be done.
            sandbox_of(service).failures.inject(Failure(FailureKind.HTTP_ERROR, count=5))
            await open_incident(service)
            await service.drain()

            assert sandbox_of(service).failures.pending() == []
            [job] = await service.pool.fetch(JOBS)
            assert job["status"] == "done"
            assert job["attempts"] > 1
            assert "503" in job["last_error"]
            assert await support.deliveries(service.pool) == support.OPENED
            assert await support.app_writes(service.pool) == support.OPENED_CALLS
