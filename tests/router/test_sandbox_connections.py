"""Connections: connection-required results, local connect links, and SandboxRouter's protocol."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import anyio
import asyncpg
import httpx2
import pytest

from router.base import ConnectionRequired, ConnectionState, RouterUnavailable, ToolRouter
from router.sandbox import InvalidRequest, SandboxServer
from tests.router.conftest import execute, payload, user_session

pytestmark = pytest.mark.anyio


class FakeClock:
    """A monotonic clock that only moves when the fake sleep says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def open_link(url: str, **params: str) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=10) as http:
        return await http.get(url, params=params)


async def test_sandbox_router_implements_the_tool_router_protocol(sandbox: SandboxServer) -> None:
    router = sandbox.router()
    assert isinstance(router, ToolRouter)
    endpoint = await router.session("alice")
    again = await router.session("alice")
    assert endpoint == again
    assert endpoint.headers == again.headers
    assert endpoint.url == f"{sandbox.origin}/tool_router/{endpoint.session_id}/mcp"
    assert set(endpoint.headers) == {"x-api-key"}
    assert endpoint.headers["x-api-key"] not in repr(endpoint)
    with pytest.raises(InvalidRequest):
        await router.session("")


async def test_connection_required_then_open_the_link_then_it_executes(sandbox: SandboxServer) -> None:
    endpoint = await sandbox.router().session("alice")
    send = ("SLACK_SEND_MESSAGE", {"channel": "#alerts", "text": "hi"})
    with anyio.fail_after(15):
        async with user_session(endpoint) as s:
            first = await execute(s, send)
            entry = first["data"]["results"][0]
            assert entry["error_code"] == "connection_required"
            assert not entry["retryable"]
            link = entry["connection"]["redirect_url"]
            assert entry["connection"]["status"] == "initiated"
            assert link in entry["error"]
            assert await sandbox.store.deliveries("alice") == []
            opened = await open_link(link)
            assert opened.status_code == 200
            assert "slack: active" in opened.text
            second = await execute(s, send)
            search = payload(
                await s.call_tool("COMPOSIO_SEARCH_TOOLS", {"queries": [{"use_case": "slack message"}]})
            )
    assert second["successful"]
    assert second["data"]["results"][0]["response"]["data"]["ts"]
    assert search["data"]["toolkit_connection_statuses"][0]["has_active_connection"] is True
    connection = (await sandbox.router().connections("alice"))["slack"]
    assert connection.state is ConnectionState.ACTIVE
    assert connection.account_id == entry["connection"]["connected_account_id"]
    assert [d.outcome for d in await sandbox.store.deliveries("alice")] == ["ok"]
    # Opening it again changes nothing.
    assert (await open_link(link)).status_code == 200
    assert (await sandbox.router().connections("alice"))["slack"].state is ConnectionState.ACTIVE


async def test_connections_report_every_toolkit(sandbox: SandboxServer) -> None:
    router = sandbox.router()
    states = await router.connections("alice")
    assert {k: (c.state, c.account_id) for k, c in states.items()} == {
        "slack": (ConnectionState.MISSING, None),
        "jira": (ConnectionState.MISSING, None),
        "pagerduty": (ConnectionState.MISSING, None),
    }
    link = await router.connect("alice", "Jira")
    assert link.toolkit == "jira"
    assert link.url.startswith(sandbox.origin + "/connect/")
    assert (await router.connections("alice"))["jira"] == type(states["jira"])(
        "jira", ConnectionState.INITIATED, link.connection_id
    )
    await open_link(link.url)
    assert (await router.connections("alice"))["jira"].state is ConnectionState.ACTIVE


async def test_wait_connected_polls_until_the_link_is_opened(sandbox: SandboxServer) -> None:
    clock = FakeClock()
    link_url = ""

    async def sleep(seconds: float) -> None:
        await clock.sleep(seconds)
        if len(clock.sleeps) == 2:
            await open_link(link_url)

    router = sandbox.router(clock=clock, sleep=sleep, poll_interval=2.0)
    link = await router.connect("alice", "pagerduty")
    link_url = link.url
    with anyio.fail_after(10):
        connection = await router.wait_connected("alice", link.connection_id, timeout=60)
    assert connection.state is ConnectionState.ACTIVE
    assert connection.account_id == link.connection_id
    assert clock.sleeps == [2.0, 2.0]


async def test_wait_connected_times_out_on_its_deadline(sandbox: SandboxServer) -> None:
    clock = FakeClock()
    router = sandbox.router(clock=clock, sleep=clock.sleep, poll_interval=2.0)
    link = await router.connect("alice", "slack")
    with anyio.fail_after(10), pytest.raises(RouterUnavailable, match="not connected within 5 s") as info:
        await router.wait_connected("alice", link.connection_id, timeout=5)
    assert info.value.retryable
    assert clock.sleeps == [2.0, 2.0, 1.0]


async def test_a_denied_link_fails_and_waiting_offers_a_fresh_link(sandbox: SandboxServer) -> None:
    clock = FakeClock()
    router = sandbox.router(clock=clock, sleep=clock.sleep)
    link = await router.connect("alice", "slack")
    denied = await open_link(link.url, outcome="deny")
    assert "slack: failed" in denied.text
    with pytest.raises(ConnectionRequired) as info:
        await router.wait_connected("alice", link.connection_id, timeout=30)
    assert not info.value.retryable
    assert info.value.toolkit == "slack"
    fresh = info.value.link
    assert fresh is not None
    assert fresh.connection_id != link.connection_id
    assert fresh.url != link.url
    assert clock.sleeps == []
    assert (await router.connections("alice"))["slack"].state is ConnectionState.INITIATED


async def test_an_expired_link_cannot_connect(pool: asyncpg.Pool) -> None:
    async with SandboxServer(pool, link_ttl=0) as server:
        router = server.router()
        link = await router.connect("alice", "jira")
        assert (await router.connections("alice"))["jira"].state is ConnectionState.EXPIRED
        opened = await open_link(link.url)
        assert opened.status_code == 410
        assert "expired" in opened.text
        with pytest.raises(ConnectionRequired):
            await router.wait_connected("alice", link.connection_id, timeout=1)


async def test_the_link_redirects_to_the_callback_with_the_outcome(sandbox: SandboxServer) -> None:
    router = sandbox.router()
    link = await router.connect("alice", "slack", callback_url="https://ops.example/done?from=cli")
    async with httpx2.AsyncClient(timeout=10, follow_redirects=False) as http:
        reply = await http.get(link.url)
    assert reply.status_code == 303
    target = urlsplit(reply.headers["location"])
    assert (target.scheme, target.netloc, target.path) == ("https", "ops.example", "/done")
    assert parse_qs(target.query) == {
        "from": ["cli"],
        "status": ["success"],
        "connected_account_id": [link.connection_id],
        "toolkit": ["slack"],
    }


@pytest.mark.parametrize(
    ("toolkit", "callback", "message"),
    [("github", None, "unknown toolkit"), ("slack", "javascript:alert(1)", "callback_url")],
)
async def test_connect_rejects_bad_input(
    sandbox: SandboxServer, toolkit: str, callback: str | None, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        await sandbox.router().connect("alice", toolkit, callback_url=callback)


async def test_a_revoked_connection_requires_connecting_again(sandbox: SandboxServer) -> None:
    [granted] = await sandbox.store.grant("alice", ["jira"])
    endpoint = await sandbox.router().session("alice")
    create = ("JIRA_CREATE_ISSUE", {"project": "OPS", "summary": "s"})
    with anyio.fail_after(15):
        async with user_session(endpoint) as s:
            assert (await execute(s, create))["successful"]
            await sandbox.store.set_connection_state(granted.id, ConnectionState.EXPIRED)
            again = await execute(s, create)
    assert again["data"]["results"][0]["error_code"] == "connection_required"
    assert (await sandbox.router().connections("alice"))["jira"].state is ConnectionState.INITIATED
