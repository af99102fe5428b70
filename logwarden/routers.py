"""Which tool router this deployment uses, built from settings (the composition root for router/).

Composio when ``LOGWARDEN_COMPOSIO_API_KEY`` is set, else the local sandbox router (served by
``logwarden sandbox-router`` on ``LOGWARDEN_SANDBOX_PORT``, sharing the database). Router
modules are imported inside the functions: ``router.composio`` pulls in the Composio SDK
(≈6 s) the first time it calls the API, and light commands must not pay for any of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Literal

import asyncpg

from logwarden.config import ConfigError, Settings

if TYPE_CHECKING:
    from router.base import ToolRouter
    from router.composio import ComposioRouterConfig

RouterKind = Literal["composio", "sandbox"]


def router_kind(settings: Settings) -> RouterKind:
    """``composio`` when a Composio API key is configured, else ``sandbox``."""
    return "composio" if settings.composio_api_key is not None else "sandbox"


def composio_config(settings: Settings) -> ComposioRouterConfig:
    """The Composio router's configuration from settings (requires the API key)."""
    from router.composio import ComposioRouterConfig

    if settings.composio_api_key is None:
        raise ConfigError("LOGWARDEN_COMPOSIO_API_KEY is not set")
    return ComposioRouterConfig(
        api_key=settings.composio_api_key.get_secret_value(),
        base_url=settings.composio_base_url,
        timeout=settings.composio_timeout,
        max_retries=settings.composio_max_retries,
        toolkits=settings.router_toolkits,
        auth_configs=dict(settings.composio_auth_configs),
        manage_connections=settings.composio_manage_connections,
        callback_url=settings.connect_callback_url,
        poll_interval=settings.connect_poll_interval,
    )


def sandbox_origin(settings: Settings) -> str:
    """Where the sandbox router serves (``logwarden sandbox-router``), for processes that use it
    through the shared database: its MCP endpoints and connect links point there."""
    if settings.sandbox_port == 0:
        raise ConfigError(
            "LOGWARDEN_SANDBOX_PORT is 0 (any free port), so other processes cannot find the "
            "sandbox router; set the port it serves on"
        )
    return f"http://127.0.0.1:{settings.sandbox_port}"


@asynccontextmanager
async def open_router(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[ToolRouter]:
    """The configured tool router, usable until the context exits."""
    if router_kind(settings) == "composio":
        from router.composio import ComposioRouter

        router = ComposioRouter(composio_config(settings), pool)
        try:
            yield router
        finally:
            await router.aclose()
        return
    from router.sandbox import Links, SandboxRouter, SandboxStore

    yield SandboxRouter(
        SandboxStore(pool),
        Links(sandbox_origin(settings)),
        toolkits=settings.router_toolkits,
        poll_interval=settings.connect_poll_interval,
    )


@asynccontextmanager
async def configured_router(settings: Settings) -> AsyncIterator[ToolRouter]:
    """The configured tool router on its own connection pool (for commands run on their own)."""
    from logwarden import db

    database = db.resolve_database(settings)  # held: an embedded server lives as long as this
    pool = await db.create_pool(database, settings)
    try:
        async with open_router(settings, pool) as router:
            yield router
    finally:
        await pool.close()
        del database
