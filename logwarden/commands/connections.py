"""``logwarden connections --user U``: a user's connection state per configured toolkit."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from logwarden.commands.routing import check_user, run_with_router
from logwarden.config import load_settings

if TYPE_CHECKING:
    from router.base import Connection, ToolRouter


def register(sub: Any) -> None:
    parser = sub.add_parser("connections", help="a user's connection state per toolkit (table)")
    parser.add_argument("--user", required=True, help="the user (operator) id")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    settings = load_settings()
    problem = check_user(args.user)
    if problem:
        print(f"logwarden: {problem}", file=sys.stderr)
        return 2

    async def body(router: ToolRouter) -> int:
        print_table(await router.connections(args.user), sys.stdout)
        return 0

    return run_with_router(settings, body)


def print_table(connections: Mapping[str, Connection], out: TextIO) -> None:
    """Toolkit, state and account id, one row per toolkit, columns aligned."""
    rows = [("TOOLKIT", "STATE", "ACCOUNT")]
    rows += [(c.toolkit, c.state.value, c.account_id or "-") for c in connections.values()]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for toolkit, state, account in rows:
        print(f"{toolkit:<{widths[0]}}  {state:<{widths[1]}}  {account}", file=out)
