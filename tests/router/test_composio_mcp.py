"""End to end: a session made through the (respx-mocked) Composio API is used by a real MCP
client over Streamable HTTP, against a real MCP server on the same loopback origin.

respx patches httpx, which the Composio SDK uses; the MCP client speaks httpx2, which respx does
not touch, so REST calls are answered by the mock while MCP traffic reaches the server. Being on
the API origin is what makes the SDK hand out the key in the session's MCP headers.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

import asyncpg
import httpx
import httpx2
import pytest
import respx
import uvicorn
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from router.base import McpEndpoint
from router.composio import ComposioRouter, ComposioRouterConfig
from tests.router import composio_fixtures as fx

pytestmark = pytest.mark.anyio

MCP_PATH = "/tool_router/{session_id}/mcp"


class UseCase(BaseModel):
    use_case: str


class ToolCall(BaseModel):
    tool_slug: str
    arguments: dict[str, Any]


class ToolRouterStandIn:
    """A tool-router MCP server for any number of sessions: the meta-tools Composio documents,
    a credential check, and a record of what each session did."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.sessions: dict[str, str] = {}  # session id -> user id
        self.calls: list[dict[str, Any]] = []
        self.server = self._build()

    def _build(self) -> MCPServer:
        server = MCPServer("composio-tool-router-stand-in", log_level="WARNING")

        @server.tool(name="COMPOSIO_SEARCH_TOOLS", description="Find tools for use cases")
        def search(queries: list[UseCase], ctx: Context) -> dict[str, Any]:
            self._record(ctx, "COMPOSIO_SEARCH_TOOLS", [q.use_case for q in queries])
            results = [{"use_case": q.use_case, "primary_tool_slugs": ["SLACK_SEND_MESSAGE"]} for q in queries]
            return {"successful": True, "data": {"results": results}}

        @server.tool(name="COMPOSIO_MULTI_EXECUTE_TOOL", description="Execute discovered tools")
        def execute(tools: list[ToolCall], sync_response_to_workbench: bool, ctx: Context) -> dict[str, Any]:
            self._record(ctx, "COMPOSIO_MULTI_EXECUTE_TOOL", [t.tool_slug for t in tools])
            results = [{"index": i, "tool_slug": t.tool_slug, "response": {"ts": "1700000000.000100"}} for i, t in enumerate(tools)]
            return {"successful": True, "data": {"results": results, "error_count": 0}}

        return server

    def _record(self, ctx: Context, tool: str, what: list[str]) -> None:
        request = ctx.request_context.request
        assert isinstance(request, Request)
        session_id = request.path_params["session_id"]
        self.calls.append({"tool": tool, "session": session_id, "user": self.sessions[session_id], "what": what})

    def app(self) -> ASGIApp:
        inner = self.server.streamable_http_app(streamable_http_path=MCP_PATH)
        stand_in = self

        async def checked(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                request = Request(scope)
                if request.headers.get("x-api-key") != stand_in.api_key:
                    await JSONResponse({"error": "invalid x-api-key"}, status_code=401)(scope, receive, send)
                    return
                session_id = request.url.path.removeprefix("/tool_router/").split("/", 1)[0]
                if session_id not in stand_in.sessions:
                    await JSONResponse({"error": "no such session"}, status_code=404)(scope, receive, send)
                    return
            await inner(scope, receive, send)

        return checked


@pytest.fixture(scope="module")
def stand_in() -> ToolRouterStandIn:
    return ToolRouterStandIn(fx.KEY)


@pytest.fixture(scope="module")
def origin(stand_in: ToolRouterStandIn) -> Iterator[str]:
    """Serve the stand-in on 127.0.0.1. The socket listens before the server thread starts, so
    clients can connect at once (the backlog holds them); nothing waits for start-up."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(stand_in.app(), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
def api(composio_sdk: ModuleType, origin: str, stand_in: ToolRouterStandIn) -> Iterator[respx.MockRouter]:
    """The Composio REST API on the MCP server's origin: sessions made here exist there."""

    def create(request: httpx.Request) -> httpx.Response:
        user = json.loads(request.content)["user_id"]
        session_id = f"trs_{user}_{len(stand_in.sessions)}"
        stand_in.sessions[session_id] = user
        return httpx.Response(201, json=fx.session_body(session_id, user, origin=origin))

    def use(request: httpx.Request, session_id: str) -> httpx.Response:
        if session_id not in stand_in.sessions:
            return httpx.Response(404, json=fx.error_body(404, "Session not found"))
        return httpx.Response(200, json=fx.session_body(session_id, stand_in.sessions[session_id], origin=origin))

    with respx.mock(base_url=origin, assert_all_called=False) as mock:
        mock.post(fx.SESSIONS, name="create").mock(side_effect=create)
        mock.get(path__regex=rf"{fx.SESSIONS}/(?P<session_id>[\w-]+)$", name="use").mock(side_effect=use)
        yield mock


@pytest.fixture
def make_router(pool: asyncpg.Pool, origin: str) -> Callable[[], ComposioRouter]:
    config = ComposioRouterConfig(api_key=fx.KEY, base_url=origin, timeout=5, max_retries=0)
    return lambda: ComposioRouter(config, pool)


@asynccontextmanager
async def mcp_session(url: str, headers: dict[str, str]) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(10)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def payload(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    data: dict[str, Any] = json.loads(result.content[0].text)
    return data


async def test_session_endpoint_works_with_a_real_mcp_client(
    api: respx.MockRouter, make_router: Callable[[], ComposioRouter], stand_in: ToolRouterStandIn, origin: str
) -> None:
    endpoint = await make_router().session("alice")
    assert endpoint.url == f"{origin}/tool_router/{endpoint.session_id}/mcp"

    async with mcp_session(endpoint.url, dict(endpoint.headers)) as mcp:
        tools = {tool.name for tool in (await mcp.list_tools()).tools}
        found = payload(await mcp.call_tool("COMPOSIO_SEARCH_TOOLS", {"queries": [{"use_case": "post to slack"}]}))
        slug = found["data"]["results"][0]["primary_tool_slugs"][0]
        done = payload(
            await mcp.call_tool(
                "COMPOSIO_MULTI_EXECUTE_TOOL",
                {"tools": [{"tool_slug": slug, "arguments": {"channel": "#ops"}}], "sync_response_to_workbench": False},
            )
        )

    assert tools == {"COMPOSIO_SEARCH_TOOLS", "COMPOSIO_MULTI_EXECUTE_TOOL"}
    assert done["data"]["results"][0]["response"]["ts"] == "1700000000.000100"
    mine = [c for c in stand_in.calls if c["session"] == endpoint.session_id]
    assert [(c["tool"], c["user"]) for c in mine] == [
        ("COMPOSIO_SEARCH_TOOLS", "alice"),
        ("COMPOSIO_MULTI_EXECUTE_TOOL", "alice"),
    ]


async def test_reused_session_reaches_the_same_mcp_session(
    api: respx.MockRouter, make_router: Callable[[], ComposioRouter], stand_in: ToolRouterStandIn
) -> None:
    first = await make_router().session("bob")
    again = await make_router().session("bob")  # from PostgreSQL, checked with a GET

    assert api["create"].call_count == 1 and api["use"].call_count == 1
    assert again.url == first.url
    async with mcp_session(again.url, dict(again.headers)) as mcp:
        await mcp.call_tool("COMPOSIO_SEARCH_TOOLS", {"queries": [{"use_case": "page on-call"}]})
    assert stand_in.calls[-1]["session"] == first.session_id
    assert stand_in.calls[-1]["user"] == "bob"


async def test_each_user_gets_their_own_mcp_session(
    api: respx.MockRouter, make_router: Callable[[], ComposioRouter]
) -> None:
    router = make_router()
    carol = await router.session("carol")
    dave = await router.session("dave")

    assert carol.url != dave.url
    assert carol.session_id != dave.session_id


async def _rejected(endpoint: McpEndpoint, headers: dict[str, str], url: str | None = None) -> bool:
    """True when the server refused the request (the client reports an HTTP refusal as an
    MCPError, possibly inside exception groups)."""
    try:
        async with mcp_session(url or endpoint.url, headers) as mcp:
            await mcp.list_tools()
    except Exception as exc:
        leaves = [exc]
        while any(isinstance(e, BaseExceptionGroup) for e in leaves):
            leaves = [leaf for e in leaves for leaf in (e.exceptions if isinstance(e, BaseExceptionGroup) else [e])]
        assert all(isinstance(leaf, MCPError) for leaf in leaves), leaves
        return True
    return False


async def test_the_mcp_endpoint_needs_the_sessions_credentials(
    api: respx.MockRouter, make_router: Callable[[], ComposioRouter]
) -> None:
    endpoint = await make_router().session("erin")

    assert await _rejected(endpoint, {})
    assert await _rejected(endpoint, {"x-api-key": "ak_wrong"})
    assert await _rejected(endpoint, dict(endpoint.headers), url=endpoint.url.replace(endpoint.session_id or "", "trs_nope"))
    assert not await _rejected(endpoint, dict(endpoint.headers))
