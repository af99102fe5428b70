"""Agents tests never reach a model provider: only FunctionModel / TestModel. Integration tests
talk to a real sandbox tool router over MCP Streamable HTTP on 127.0.0.1."""

from collections.abc import AsyncIterator

import asyncpg
import pytest
from pydantic_ai import models

from router.sandbox import SandboxServer

models.ALLOW_MODEL_REQUESTS = False


@pytest.fixture
async def sandbox(pool: asyncpg.Pool) -> AsyncIterator[SandboxServer]:
    """A sandbox router on a free loopback port, on this test's database; ``operator`` (the
    built-in policy's owner) has Slack, Jira and PagerDuty connected."""
    async with SandboxServer(pool) as server:
        await server.store.grant("operator", server.toolkits)
        yield server
