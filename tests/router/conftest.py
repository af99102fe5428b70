"""Fixtures for the router tests.

Sandbox: a real server on 127.0.0.1 and real MCP client sessions. Composio: a respx-mocked
Composio API and an injected clock; the Composio SDK is imported once per test session
(``composio_sdk``), since that takes seconds.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from types import ModuleType
from typing import Any

import asyncpg
import httpx2
import pytest
import respx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from router.base import McpEndpoint
from router.composio import ComposioRouter, ComposioRouterConfig
from router.sandbox import SandboxServer
from tests.router import composio_fixtures as fx

ADMIN_TOKEN = "admin-test-token"


@pytest.fixture
async def sandbox(pool: asyncpg.Pool) -> AsyncIterator[SandboxServer]:
    """A sandbox router serving on a free loopback port, on this test's database."""
    async with SandboxServer(pool, admin_token=ADMIN_TOKEN) as server:
        yield server


@contextlib.asynccontextmanager
async def mcp_session(
    url: str, headers: Mapping[str, str], *, read_timeout: float = 10.0
) -> AsyncIterator[ClientSession]:
    """An initialized MCP client session over Streamable HTTP (mcp's own client, httpx2)."""
    timeout = httpx2.Timeout(10.0, read=read_timeout)
    async with (
        httpx2.AsyncClient(headers=dict(headers), timeout=timeout) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@contextlib.asynccontextmanager
async def user_session(endpoint: McpEndpoint, **options: Any) -> AsyncIterator[ClientSession]:
    async with mcp_session(endpoint.url, endpoint.headers, **options) as session:
        yield session


def payload(result: CallToolResult) -> dict[str, Any]:
    """The Composio envelope a tool call returned (decoded from its JSON text content)."""
    assert result.content, result
    text = getattr(result.content[0], "text", None)
    assert isinstance(text, str)
    data: dict[str, Any] = json.loads(text)
    assert result.structured_content == data
    return data


async def execute(session: ClientSession, *calls: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """COMPOSIO_MULTI_EXECUTE_TOOL with these (slug, arguments) calls; returns the envelope."""
    result = await session.call_tool(
        "COMPOSIO_MULTI_EXECUTE_TOOL",
        {"tools": [{"tool_slug": s, "arguments": a} for s, a in calls], "sync_response_to_workbench": False},
    )
    assert not result.is_error, result
    return payload(result)


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(scope="session")
def composio_sdk() -> ModuleType:
    import composio

    return composio


@pytest.fixture
def api(composio_sdk: ModuleType) -> Iterator[respx.MockRouter]:
    """The Composio REST API at ``fx.API``; any request without a route fails the call."""
    with respx.mock(base_url=fx.API, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_router(pool: asyncpg.Pool, clock: FakeClock) -> Callable[..., ComposioRouter]:
    """Build a router on this test's database; keyword arguments override the config."""

    def make(**overrides: Any) -> ComposioRouter:
        settings: dict[str, Any] = {
            "api_key": fx.KEY,
            "base_url": fx.API,
            "timeout": 5.0,
            "max_retries": 0,
            "poll_interval": 2.0,
        }
        settings.update(overrides)
        return ComposioRouter(ComposioRouterConfig(**settings), pool, sleep=clock.sleep, clock=clock)

    return make
