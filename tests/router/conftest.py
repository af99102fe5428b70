"""Fixtures for the sandbox router: a real server on 127.0.0.1 and real MCP client sessions."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import asyncpg
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from router.base import McpEndpoint
from router.sandbox import SandboxServer

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
