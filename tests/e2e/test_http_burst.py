"""An error burst posted over HTTP goes all the way: one incident, one page, one Slack message;
its recovery resolves the incident and closes the loop on both channels."""

from __future__ import annotations

import gzip

import anyio
import httpx
import pytest

from logwarden.config import Settings
from tests.e2e import streams, support
from tests.e2e.streams import BURST_SERVICE

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def post_lines(client: httpx.AsyncClient, data: bytes, parts: int = 4) -> int:
    """POST ``data`` to /ingest in ``parts`` bodies (every other one gzip); lines accepted."""
    accepted = 0
    for i, body in enumerate(streams.split_lines(data, parts)):
        headers = {"content-type": "application/x-ndjson"}
        if i % 2:
            body, headers["content-encoding"] = gzip.compress(body), "gzip"
        response = await client.post("/ingest", content=body, headers=headers)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["rejected"] == 0, answer
        accepted += answer["accepted"]
    return accepted


async def test_burst_pages_once_and_recovery_resolves(settings: Settings) -> None:
    stream = streams.incident()
    with anyio.fail_after(60):
        async with support.running(support.e2e_settings(settings)) as service:
            async with httpx.AsyncClient(base_url=service.http_url or "", timeout=30) as client:
                sent = stream.until_burst_ends
                assert await post_lines(client, sent) == sent.count(b"\n")
                await service.drain()

                [incident] = await support.incidents(service.pool)
                assert incident["service"] == BURST_SERVICE
                assert incident["status"] == "open"
                assert incident["severity"] == 2  # critical: it pages
                assert await support.deliveries(service.pool) == support.OPENED
                assert await support.app_writes(service.pool) == support.OPENED_CALLS

                await post_lines(client, streams.json_lines(stream.recovery))
                await service.drain()

            [incident] = await support.incidents(service.pool)
            assert incident["status"] == "resolved"
            assert await support.deliveries(service.pool) == support.OPENED + support.RESOLVED
            assert await support.app_writes(service.pool) == support.OPENED_CALLS + support.RESOLVED_CALLS
            # The apps' own state: the page is resolved, the one Slack message was edited in place.
            pd = await service.pool.fetch("SELECT status FROM sandbox_pd_incidents")
            assert [r["status"] for r in pd] == ["resolved"]
            slack = await service.pool.fetch("SELECT edited_at FROM sandbox_slack_messages")
            assert len(slack) == 1
            assert slack[0]["edited_at"] is not None
