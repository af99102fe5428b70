"""Shared by the commands that talk to the configured tool router (``connect``, ``connections``).

Runs a command body against the router chosen by configuration and turns failures into one
clear line on stderr and an exit code: 2 for configuration (a refused API key, a toolkit that is
not configured), 1 for everything else (router or database unreachable, schema not migrated).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from logwarden.config import Settings

if TYPE_CHECKING:
    from router.base import ToolRouter


def check_user(user: str) -> str | None:
    """An error message when ``user`` is not a usable user id, else None."""
    if not user.strip() or user != user.strip():
        return f"invalid --user {user!r}: a non-empty id without surrounding spaces"
    return None


def check_toolkit(settings: Settings, toolkit: str) -> str | None:
    """An error message when ``toolkit`` is not one of the configured toolkits, else None."""
    if toolkit.strip().lower() in settings.router_toolkits:
        return None
    return (
        f"{toolkit!r} is not a configured toolkit; LOGWARDEN_ROUTER_TOOLKITS is "
        f"{','.join(settings.router_toolkits)}"
    )


def run_with_router(settings: Settings, body: Callable[[ToolRouter], Awaitable[int]]) -> int:
    """``body(router)`` on the configured router, with failures reported as exit codes."""
    return asyncio.run(_run(settings, body))


async def _run(settings: Settings, body: Callable[[ToolRouter], Awaitable[int]]) -> int:
    import asyncpg

    from logwarden.db import DatabaseUnavailable
    from logwarden.routers import configured_router
    from router.base import RouterAuthError, RouterError

    try:
        async with configured_router(settings) as router:
            return await body(router)
    except RouterAuthError as exc:
        return _fail(str(exc), 2)
    except (RouterError, DatabaseUnavailable) as exc:
        if isinstance(exc.__cause__, asyncpg.UndefinedTableError):
            return _fail("the database schema is not up to date; run `logwarden db migrate` first", 1)
        return _fail(str(exc), 1)


def _fail(message: str, code: int) -> int:
    print(f"logwarden: {message}", file=sys.stderr)
    return code
