"""``logwarden sandbox-router``: serves, prints how to reach it, stops cleanly."""

from __future__ import annotations

import asyncio
import io
import re

import anyio
import pytest

from logwarden.cli import build_parser, main
from logwarden.commands.sandbox_router import serve
from logwarden.config import Settings
from router.base import McpEndpoint
from tests.router.conftest import execute, user_session

pytestmark = pytest.mark.anyio


class Screen(io.StringIO):
    """Captured output that says when the command has finished printing its banner."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = anyio.Event()

    def write(self, text: str) -> int:
        if "Ctrl-C" in text:
            self.ready.set()
        return super().write(text)


def test_the_command_is_registered() -> None:
    args = build_parser().parse_args(["sandbox-router", "--port", "0", "--user", "a", "--user", "b"])
    assert (args.port, args.user, args.connect_all) == (0, ["a", "b"], False)


def test_a_bad_port_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox-router", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err


async def test_serve_prints_endpoints_and_serves_until_stopped(settings: Settings) -> None:
    screen, stop = Screen(), asyncio.Event()
    with anyio.fail_after(30):
        task = asyncio.create_task(
            serve(settings, port=0, users=["alice"], connect_all=True, out=screen, stop=stop)
        )
        await screen.ready.wait()
        text = screen.getvalue()
        url = re.search(r"user alice: MCP (\S+)", text)
        key = re.search(r"header x-api-key: (\S+)", text)
        token = re.search(r"admin token: (\S+)", text)
        assert url, text
        assert key, text
        assert token, text
        async with user_session(McpEndpoint(url.group(1), {"x-api-key": key.group(1)})) as session:
            sent = await execute(session, ("SLACK_SEND_MESSAGE", {"channel": "#cli", "text": "hello"}))
        stop.set()
        assert await task == 0
    assert sent["successful"]
    assert "127.0.0.1" in url.group(1)
    assert "/admin/users/USER" in text
