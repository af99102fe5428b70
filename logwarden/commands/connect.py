"""``logwarden connect TOOLKIT --user U``: connect a user's app once, through OAuth.

Prints the connect link (stdout), then waits, with a spinner on a terminal or a progress line
every few seconds otherwise (stderr), until the connection is active (exit 0), failed or expired
(exit 1) or the wait times out (exit 1). Works with whichever router configuration chooses.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from logwarden.commands.routing import check_toolkit, check_user, run_with_router
from logwarden.config import load_settings

if TYPE_CHECKING:
    from router.base import ToolRouter


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "connect",
        help="connect a toolkit (Slack, Jira, PagerDuty) for a user through OAuth and wait for it",
    )
    parser.add_argument("toolkit", help="toolkit slug, one of LOGWARDEN_ROUTER_TOOLKITS")
    parser.add_argument("--user", required=True, help="the user (operator) id the connection belongs to")
    parser.add_argument("--callback-url", help="where OAuth sends the user when done")
    parser.add_argument(
        "--timeout", type=float, help="seconds to wait for the user (default LOGWARDEN_CONNECT_TIMEOUT)"
    )
    parser.add_argument(
        "--reconnect", action="store_true", help="make a new connection even if one is already active"
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    settings = load_settings()
    problem = check_user(args.user) or check_toolkit(settings, args.toolkit)
    if args.timeout is not None and not args.timeout > 0:
        problem = problem or "--timeout must be a positive number of seconds"
    if problem:
        print(f"logwarden: {problem}", file=sys.stderr)
        return 2
    timeout = args.timeout if args.timeout is not None else settings.connect_timeout

    async def body(router: ToolRouter) -> int:
        return await run_connect(
            router,
            user=args.user,
            toolkit=args.toolkit.strip().lower(),
            callback_url=args.callback_url,
            timeout=timeout,
            reconnect=args.reconnect,
            out=sys.stdout,
            err=sys.stderr,
            tty=sys.stderr.isatty(),
        )

    return run_with_router(settings, body)


class Progress:
    """A spinner on a terminal; otherwise one plain line every ``every`` seconds."""

    FRAMES = "|/-\\"

    def __init__(self, stream: TextIO, *, tty: bool, label: str, every: float = 15.0) -> None:
        self._stream = stream
        self._tty = tty
        self._label = label
        self._every = every
        self._next = 0.0
        self._frame = 0

    def update(self, elapsed: float) -> None:
        if self._tty:
            frame = self.FRAMES[self._frame % len(self.FRAMES)]
            self._frame += 1
            self._stream.write(f"\r{frame} {self._label} ({elapsed:.0f}s)")
            self._stream.flush()
        elif elapsed >= self._next:
            self._stream.write(f"{self._label} ({elapsed:.0f}s)\n")
            self._stream.flush()
            self._next = (elapsed // self._every + 1) * self._every

    def done(self) -> None:
        if self._tty:
            self._stream.write("\r\x1b[K")
            self._stream.flush()


async def run_connect(
    router: ToolRouter,
    *,
    user: str,
    toolkit: str,
    callback_url: str | None,
    timeout: float,
    reconnect: bool,
    out: TextIO,
    err: TextIO,
    tty: bool,
    tick: float = 0.1,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Connect ``toolkit`` for ``user`` and wait; returns the exit code."""
    from router.base import ConnectionRequired, ConnectionState, RouterUnavailable

    if not reconnect:
        current = (await router.connections(user)).get(toolkit)
        if current is not None and current.state is ConnectionState.ACTIVE:
            print(
                f"{toolkit} is already connected for {user} (account {current.account_id}); "
                "pass --reconnect to connect again",
                file=out,
            )
            return 0
    link = await router.connect(user, toolkit, callback_url)
    print(f"Open this link to connect {toolkit} for {user}:\n\n    {link.url}\n", file=out, flush=True)

    progress = Progress(err, tty=tty, label=f"waiting for {toolkit} to be connected")
    started = clock()
    waiter = asyncio.create_task(router.wait_connected(user, link.connection_id, timeout))
    try:
        while not waiter.done():
            progress.update(clock() - started)
            await asyncio.wait({waiter}, timeout=tick)
    finally:
        waiter.cancel()
        progress.done()
    try:
        connection = waiter.result()
    except ConnectionRequired as exc:
        again = (
            f"try again at {exc.link.url}"
            if exc.link is not None
            else f"run `logwarden connect {toolkit} --user {user}` again"
        )
        print(
            f"failed: the {toolkit} connection {link.connection_id} failed or expired before it "
            f"became active; {again}",
            file=err,
        )
        return 1
    except RouterUnavailable as exc:
        print(f"failed: {exc}", file=err)
        return 1
    print(f"connected: {toolkit} is active for {user} (account {connection.account_id})", file=out)
    return 0
