"""``logwarden sandbox-router``: serve the local sandbox tool router until Ctrl-C.

It uses the configured database (embedded by default), applies pending migrations, listens on
127.0.0.1 and prints its URL, how to get a user's MCP endpoint and key, and the admin token.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from logwarden.config import Settings, load_settings


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "sandbox-router",
        help="serve the local sandbox tool router (MCP on 127.0.0.1) until Ctrl-C",
        description="Serve the local sandbox tool router: Composio-style meta-tools over MCP (Streamable "
        "HTTP) with fake Slack, Jira and PagerDuty apps whose state lives in the configured database.",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="port on 127.0.0.1 (default LOGWARDEN_SANDBOX_PORT; 0 = any free)",
    )
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="USER",
        help="print USER's MCP endpoint and key (repeatable)",
    )
    parser.add_argument(
        "--connect-all", action="store_true", help="connect every toolkit for the --user users straight away"
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    settings = load_settings()
    port = settings.sandbox_port if args.port is None else args.port
    if not 0 <= port <= 65535:
        print(f"logwarden: --port must be 0-65535, not {port}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(settings, port=port, users=args.user, connect_all=args.connect_all))
    except KeyboardInterrupt:
        print("sandbox router stopped")
        return 0


async def serve(
    settings: Settings,
    *,
    port: int,
    users: Sequence[str] = (),
    connect_all: bool = False,
    out: TextIO = sys.stdout,
    stop: asyncio.Event | None = None,
) -> int:
    """Migrate, serve and print how to use it; runs until ``stop`` is set (or forever)."""
    from logwarden import db, migrator
    from router.sandbox import SandboxError, SandboxServer

    try:
        database = db.resolve_database(settings)
        conn = await db.connect(database, settings)
        try:
            await migrator.migrate(conn)
        finally:
            await conn.close()
        pool = await db.create_pool(database, settings)
    except (db.DatabaseUnavailable, migrator.MigrationError) as exc:
        print(f"logwarden: {exc}", file=sys.stderr)
        return 1
    configured = settings.sandbox_admin_token
    admin_token = configured.get_secret_value() if configured is not None else secrets.token_urlsafe(18)
    try:
        async with SandboxServer(pool, port=port, admin_token=admin_token) as server:
            router = server.router()
            print(f"sandbox tool router on {server.origin} (database: {database.display})", file=out)
            print(f"  toolkits: {', '.join(server.toolkits)}", file=out)
            for user in users:
                endpoint = await router.session(user)
                if connect_all:
                    await server.store.grant(user, server.toolkits)
                print(f"  user {user}: MCP {endpoint.url}", file=out)
                for name, value in endpoint.headers.items():
                    print(f"    header {name}: {value}", file=out)
            shown = "(LOGWARDEN_SANDBOX_ADMIN_TOKEN)" if configured is not None else admin_token
            print(f"  admin token: {shown}", file=out)
            print("  a user's endpoint and key:", file=out)
            print(
                f"    curl -X POST -H 'authorization: Bearer <admin token>' {server.origin}/admin/users/USER",
                file=out,
            )
            print("  connect links come from COMPOSIO_MANAGE_CONNECTIONS, or:", file=out)
            print(f"    curl -X POST -H '...' {server.origin}/admin/users/USER/connect/slack", file=out)
            print("Ctrl-C to stop.", file=out, flush=True)
            await (stop if stop is not None else asyncio.Event()).wait()
    except SandboxError as exc:
        print(f"logwarden: {exc}", file=sys.stderr)
        return 1
    finally:
        await pool.close()
    return 0
