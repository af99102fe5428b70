"""``logwarden db migrate`` and ``logwarden db status``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any


def register(sub: Any) -> None:
    db = sub.add_parser("db", help="database schema: migrate, status")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    migrate = db_sub.add_parser("migrate", help="apply pending migrations (safe to run concurrently)")
    migrate.set_defaults(handler=_migrate)
    status = db_sub.add_parser("status", help="applied and pending migrations, and which server")
    status.set_defaults(handler=_status)


def _migrate(_args: argparse.Namespace) -> int:
    return asyncio.run(_run(apply=True))


def _status(_args: argparse.Namespace) -> int:
    return asyncio.run(_run(apply=False))


async def _run(*, apply: bool) -> int:
    from logwarden import db, migrator
    from logwarden.config import load_settings

    settings = load_settings()
    try:
        database = db.resolve_database(settings)
        conn = await db.connect(database, settings)
    except db.DatabaseUnavailable as exc:
        print(f"logwarden: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"server: {database.display}")
        if apply:
            done = await migrator.migrate(conn)
            for m in done:
                print(f"applied {m.label}")
            print(f"schema up to date ({len(done)} applied now)")
            return 0
        state = await migrator.status(conn)
        for a in state.applied:
            print(f"applied  {a.label}  {a.applied_at:%Y-%m-%d %H:%M:%S%z}")
        for m in state.pending:
            print(f"pending  {m.label}")
        for a in state.unknown:
            print(f"UNKNOWN  {a.label}  (applied by a newer logwarden)")
        print(f"{len(state.applied)} applied, {len(state.pending)} pending, {len(state.unknown)} unknown")
        return 1 if state.unknown else 0
    except migrator.MigrationError as exc:
        print(f"logwarden: {exc}", file=sys.stderr)
        return 1
    finally:
        await conn.close()
