"""Fixtures for the Composio router tests: a respx-mocked Composio API and an injected clock.

The Composio SDK is imported once per test session (``composio_sdk``); it takes seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import asyncpg
import pytest
import respx

from router.composio import ComposioRouter, ComposioRouterConfig
from tests.router import composio_fixtures as fx


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
