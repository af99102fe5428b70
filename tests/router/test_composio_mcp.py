"""End to end: a session made through the (respx-mocked) Composio API is used by a real MCP
client over Streamable HTTP, against the sandbox tool router served on the same loopback origin
in Composio's shape (one project key; the session id in the URL decides the user).

respx patches httpx, which the Composio SDK uses; the MCP client speaks httpx2, which respx does
not touch, so REST calls are answered by the mock while MCP traffic reaches the real server.
Being on the API origin is what makes the SDK hand out the key in the session's MCP headers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from types import ModuleType

import anyio
import asyncpg
import httpx
import pytest
import respx
from mcp.shared.exceptions import MCPError

from router.base import McpEndpoint
from router.composio import ComposioRouter, ComposioRouterConfig
from router.sandbox import ProjectKeyResolver, SandboxServer
from tests.router import composio_fixtures as fx
from tests.router.conftest import execute, payload, user_session

pytestmark = pytest.mark.anyio


@pytest.fixture
def sessions() -> dict[str, str]:
    """Session id → user: what the mocked Composio API created, which the server trusts."""
    return {}


@pytest.fixture
async def tool_router(pool: asyncpg.Pool, sessions: dict[str, str]) -> AsyncIterator[SandboxServer]:
    async with SandboxServer(pool, resolver=ProjectKeyResolver(fx.KEY, sessions)) as server:
        yield server


@pytest.fixture
def api(
    composio_sdk: ModuleType, tool_router: SandboxServer, sessions: dict[str, str]
) -> Iterator[respx.MockRouter]:
    """The Composio REST API on the MCP server's origin: sessions made here exist there."""
    origin = tool_router.origin

    def create(request: httpx.Request) -> httpx.Response:
        user = json.loads(request.content)["user_id"]
        session_id = f"trs_{len(sessions) + 1}"
        sessions[session_id] = user
        return httpx.Response(201, json=fx.session_body(session_id, user, origin=origin))

    def use(request: httpx.Request, session_id: str) -> httpx.Response:
        if session_id not in sessions:
            return httpx.Response(404, json=fx.error_body(404, "Session not found"))
        return httpx.Response(200, json=fx.session_body(session_id, sessions[session_id], origin=origin))

    with respx.mock(base_url=origin, assert_all_called=False) as mock:
        mock.post(fx.SESSIONS, name="create").mock(side_effect=create)
        mock.get(path__regex=rf"{fx.SESSIONS}/(?P<session_id>\w+)$", name="use").mock(side_effect=use)
        yield mock


@pytest.fixture
def make_router(pool: asyncpg.Pool, tool_router: SandboxServer) -> Callable[[], ComposioRouter]:
    config = ComposioRouterConfig(api_key=fx.KEY, base_url=tool_router.origin, timeout=5, max_retries=0)
    return lambda: ComposioRouter(config, pool)


async def test_session_endpoint_works_with_a_real_mcp_client(
    api: respx.MockRouter, make_router: Callable[[], ComposioRouter], tool_router: SandboxServer
) -> None:
    endpoint = await make_router().session("alice")
    await tool_router.store.grant("alice", ["slack"])
    assert endpoint.url == f"{tool_router.origin}/tool_router/{endpoint.session_id}/mcp"
    assert dict(endpoint.headers) == {"x-api-key": fx.KEY}

    with anyio.fail_after(15):
        async with user_session(endpoint) as mcp:
            tools = {tool.name for tool in (await mcp.list_tools()).tools}
            found = payload(
                await mcp.call_tool(
                    "COMPOSIO_SEARCH_TOOLS", {"queries": [{"use_case": "post a message to slack"}]}
                )
            )
            slug = found["data"]["results"][0]["primary_tool_slugs"][0]
            sent = await execute(mcp, (slug, {"channel": "#ops", "text": "checkout 5xx"}))

    assert tools == set(fx.META_TOOLS)  # what the session says it offers is what MCP lists
    assert slug == "SLACK_SEND_MESSAGE"
    assert sent["successful"]
    [delivery] = await tool_router.store.deliveries()
    assert (delivery.user_id, delivery.tool_slug, delivery.outcome) == ("alice", "SLACK_SEND_MESSAGE", "ok")
    assert delivery.external_ref == sent["data"]["results"][0]["response"]["data"]["ts"]


async def test_reused_session_reaches_the_same_user(
    api: respx.MockRouter, make_router: Callable[[], ComposioRouter], tool_router: SandboxServer
) -> None:
    first = await make_router().session("bob")
    again = await make_router().session("bob")  # from PostgreSQL, checked with a GET
    await tool_router.store.grant("bob", ["pagerduty"])

    with anyio.fail_after(15):
        async with user_session(again) as mcp:
            paged = await execute(
                mcp,
                (
                    "PAGERDUTY_CREATE_INCIDENT_RECORD",
                    {"incident__title": "db down", "incident__service__id": "P1"},
                ),
            )

    assert api["create"].call_count == 1
    assert api["use"].call_count == 1
    assert again.url == first.url
    assert paged["successful"]
    assert [d.user_id for d in await tool_router.store.deliveries()] == ["bob"]


async def test_a_user_acts_only_through_their_own_connections(
    api: respx.MockRouter, make_router: Callable[[], ComposioRouter], tool_router: SandboxServer
) -> None:
    router = make_router()
    carol = await router.session("carol")
    dave = await router.session("dave")
    await tool_router.store.grant("carol", ["slack"])

    with anyio.fail_after(15):
        async with user_session(dave) as mcp:
            refused = await execute(mcp, ("SLACK_SEND_MESSAGE", {"channel": "#ops", "text": "hi"}))

    assert carol.url != dave.url
    assert refused["data"]["results"][0]["error_code"] == "connection_required"
    assert await tool_router.store.deliveries() == []  # nothing was sent, for anyone


async def _refused(url: str, headers: dict[str, str]) -> bool:
    """True when the server refused the request (the client reports an HTTP refusal as an
    MCPError, possibly inside exception groups)."""
    try:
        with anyio.fail_after(15):
            async with user_session(McpEndpoint(url, headers)) as mcp:
                await mcp.list_tools()
    except Exception as exc:
        leaves: list[BaseException] = [exc]
        while any(isinstance(e, BaseExceptionGroup) for e in leaves):
            leaves = [x for e in leaves for x in (e.exceptions if isinstance(e, BaseExceptionGroup) else [e])]
        assert all(isinstance(leaf, MCPError) for leaf in leaves), leaves
        return True
    return False


async def test_the_mcp_endpoint_needs_the_sessions_credentials(
    api: respx.MockRouter, make_router: Callable[[], ComposioRouter]
) -> None:
    endpoint = await make_router().session("erin")
    assert endpoint.session_id is not None
    unknown_session = endpoint.url.replace(endpoint.session_id, "trs_nope")

    assert await _refused(endpoint.url, {})
    assert await _refused(endpoint.url, {"x-api-key": "ak_wrong"})
    assert await _refused(unknown_session, dict(endpoint.headers))
    assert not await _refused(endpoint.url, dict(endpoint.headers))
