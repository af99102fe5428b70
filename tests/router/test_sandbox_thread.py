"""The sandbox served from a thread, driven from synchronous code."""

from __future__ import annotations

import asyncio

import pytest

from router.sandbox import Failure, FailureKind, SandboxStartError, serve_in_thread
from tests.router.conftest import execute, user_session


async def _send(url: str, headers: dict[str, str]) -> dict[str, object]:
    from router.base import McpEndpoint

    async with asyncio.timeout(15), user_session(McpEndpoint(url, headers)) as s:
        return await execute(s, ("SLACK_SEND_MESSAGE", {"channel": "#a", "text": "from a thread"}))


def test_serve_in_thread(database_url: str) -> None:
    with serve_in_thread(database_url) as sandbox:
        endpoint = sandbox.call(lambda s: s.router().session("alice"))
        sandbox.call(lambda s: s.store.grant("alice", ["slack"]))
        sandbox.failures.inject(Failure(FailureKind.RATE_LIMITED, toolkit="slack"))
        limited = asyncio.run(_send(endpoint.url, dict(endpoint.headers)))
        sent = asyncio.run(_send(endpoint.url, dict(endpoint.headers)))
        outcomes = [d.outcome for d in sandbox.call(lambda s: s.store.deliveries("alice"))]
        assert endpoint.url.startswith(sandbox.origin)
    assert not limited["successful"]
    assert sent["successful"]
    assert outcomes == ["rate_limited", "ok"]


def test_a_thread_that_cannot_start_says_so() -> None:
    with (
        pytest.raises(SandboxStartError),
        serve_in_thread("postgresql://nobody@127.0.0.1:1/none", startup_timeout=20),
    ):
        pass
