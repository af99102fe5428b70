"""``logwarden connect`` and ``logwarden connections`` against both routers configuration chooses:
Composio (REST mocked with respx) and the sandbox (real PostgreSQL, no account anywhere)."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import respx

from logwarden.cli import main
from logwarden.commands.connect import Progress, run_connect
from logwarden.commands.connections import print_table
from router.base import Connection, ConnectionState
from router.composio import ComposioRouter, ComposioRouterConfig
from router.sandbox import Links, SandboxRouter, SandboxStore
from tests.router import composio_fixtures as fx
from tests.router.conftest import FakeClock as Clock

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def composio_api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=fx.API, assert_all_called=False) as mock:
        mock.post(fx.SESSIONS).respond(201, json=fx.session_body("trs_1"))
        mock.post(f"{fx.SESSIONS}/trs_1/link").respond(201, json=fx.link_body("ca_NEW"))
        yield mock


def composio_router(pool: asyncpg.Pool, clock: Clock) -> ComposioRouter:
    config = ComposioRouterConfig(api_key=fx.KEY, base_url=fx.API, max_retries=0, timeout=5)
    return ComposioRouter(config, pool, sleep=clock.sleep, clock=clock)


def list_route(api: respx.MockRouter, *accounts: dict[str, object]) -> None:
    api.get(fx.ACCOUNTS).respond(200, json=fx.account_page(list(accounts)))


async def connect(router: object, **options: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    settings: dict[str, object] = {
        "user": fx.USER,
        "toolkit": "jira",
        "callback_url": None,
        "timeout": 60.0,
        "reconnect": False,
        "out": out,
        "err": err,
        "tty": False,
    }
    settings.update(options)
    code = await run_connect(router, **settings)  # type: ignore[arg-type]
    return code, out.getvalue(), err.getvalue()


@pytest.mark.anyio
async def test_connect_prints_the_link_and_waits_until_active(
    composio_api: respx.MockRouter, pool: asyncpg.Pool
) -> None:
    list_route(composio_api)
    composio_api.get(f"{fx.ACCOUNTS}/ca_NEW").mock(
        side_effect=[
            httpx.Response(200, json=fx.account("ca_NEW", "jira", "INITIATED")),
            httpx.Response(200, json=fx.account("ca_NEW", "jira", "ACTIVE")),
        ]
    )

    code, out, err = await connect(composio_router(pool, Clock()))

    assert code == 0
    assert "https://connect.composio.test/link/lt_abc" in out
    assert out.rstrip().endswith(f"connected: jira is active for {fx.USER} (account ca_NEW)")
    assert err.startswith("waiting for jira to be connected (0s)\n")


@pytest.mark.anyio
@pytest.mark.parametrize("status", ["FAILED", "EXPIRED"])
async def test_connect_fails_when_the_connection_fails_or_expires(
    composio_api: respx.MockRouter, pool: asyncpg.Pool, status: str
) -> None:
    list_route(composio_api)
    composio_api.get(f"{fx.ACCOUNTS}/ca_NEW").respond(200, json=fx.account("ca_NEW", "jira", status))

    code, _out, err = await connect(composio_router(pool, Clock()))

    assert code == 1
    assert "failed: the jira connection ca_NEW failed or expired" in err
    assert f"run `logwarden connect jira --user {fx.USER}` again" in err


@pytest.mark.anyio
async def test_connect_gives_up_after_the_timeout(composio_api: respx.MockRouter, pool: asyncpg.Pool) -> None:
    list_route(composio_api)
    composio_api.get(f"{fx.ACCOUNTS}/ca_NEW").respond(200, json=fx.account("ca_NEW", "jira", "INITIATED"))

    code, _out, err = await connect(composio_router(pool, Clock()), timeout=30.0)

    assert code == 1
    assert "failed: timed out after 30s waiting for connection ca_NEW" in err


@pytest.mark.anyio
async def test_connect_leaves_an_active_connection_alone_unless_asked(
    composio_api: respx.MockRouter, pool: asyncpg.Pool
) -> None:
    list_route(composio_api, fx.account("ca_OLD", "jira", "ACTIVE"))
    composio_api.get(f"{fx.ACCOUNTS}/ca_NEW").respond(200, json=fx.account("ca_NEW", "jira", "ACTIVE"))
    router = composio_router(pool, Clock())

    code, out, _ = await connect(router)
    assert code == 0
    assert "jira is already connected for operator-42 (account ca_OLD); pass --reconnect" in out

    code, out, _ = await connect(router, reconnect=True)
    assert code == 0
    assert "connected: jira is active for operator-42 (account ca_NEW)" in out


@pytest.mark.anyio
async def test_connect_works_against_the_sandbox_with_no_account(pool: asyncpg.Pool) -> None:
    """The sandbox's connect link, opened by the user while the command waits, activates it."""
    store = SandboxStore(pool)
    clock = Clock()

    async def user_opens_the_link(seconds: float) -> None:
        pending = await store.best_connections(fx.USER, ["slack"])
        await store.open_link(pending["slack"].link_token)
        await clock.sleep(seconds)

    router = SandboxRouter(store, Links("http://127.0.0.1:8790"), clock=clock, sleep=user_opens_the_link)

    code, out, _ = await connect(router, toolkit="slack")

    assert code == 0
    assert "http://127.0.0.1:8790/connect/" in out
    assert (await router.connections(fx.USER))["slack"].state is ConnectionState.ACTIVE
    assert f"connected: slack is active for {fx.USER}" in out


def test_progress_is_a_spinner_on_a_terminal_and_sparse_lines_otherwise() -> None:
    tty, plain = io.StringIO(), io.StringIO()
    spinner = Progress(tty, tty=True, label="waiting")
    lines = Progress(plain, tty=False, label="waiting", every=15)
    for elapsed in (0.0, 0.1, 0.2, 0.3, 0.4, 14.9, 15.0, 15.1, 31.0):
        spinner.update(elapsed)
        lines.update(elapsed)
    spinner.done()
    lines.done()

    assert tty.getvalue().startswith(
        "\r| waiting (0s)\r/ waiting (0s)\r- waiting (0s)\r\\ waiting (0s)\r| waiting"
    )
    assert tty.getvalue().endswith("\r\x1b[K")
    assert plain.getvalue() == "waiting (0s)\nwaiting (15s)\nwaiting (31s)\n"


def test_connections_table_is_aligned() -> None:
    out = io.StringIO()
    print_table(
        {
            "slack": Connection("slack", ConnectionState.ACTIVE, "ca_1"),
            "pagerduty": Connection("pagerduty", ConnectionState.MISSING),
        },
        out,
    )
    assert out.getvalue().splitlines() == [
        "TOOLKIT    STATE    ACCOUNT",
        "slack      active   ca_1",
        "pagerduty  missing  -",
    ]


def rows(table: str) -> list[list[str]]:
    return [line.split() for line in table.splitlines()]


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.setenv("LOGWARDEN_DATABASE_URL", database_url)
    monkeypatch.setenv("LOGWARDEN_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LOGWARDEN_COMPOSIO_API_KEY", raising=False)
    return monkeypatch


def test_connections_command_uses_composio_when_a_key_is_set(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("LOGWARDEN_COMPOSIO_API_KEY", fx.KEY)
    environment.setenv("LOGWARDEN_COMPOSIO_BASE_URL", fx.API)
    with respx.mock(base_url=fx.API) as api:
        list_route(api, fx.account("ca_S", "slack", "ACTIVE"), fx.account("ca_P", "pagerduty", "EXPIRED"))
        code = main(["connections", "--user", fx.USER])

    assert code == 0
    assert rows(capsys.readouterr().out) == [
        ["TOOLKIT", "STATE", "ACCOUNT"],
        ["slack", "active", "ca_S"],
        ["jira", "missing", "-"],
        ["pagerduty", "expired", "ca_P"],
    ]


def test_connections_command_uses_the_sandbox_without_a_key(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["connections", "--user", "alice"])

    assert code == 0
    assert rows(capsys.readouterr().out) == [
        ["TOOLKIT", "STATE", "ACCOUNT"],
        ["slack", "missing", "-"],
        ["jira", "missing", "-"],
        ["pagerduty", "missing", "-"],
    ]


def test_a_refused_key_is_a_configuration_error(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("LOGWARDEN_COMPOSIO_API_KEY", fx.KEY)
    environment.setenv("LOGWARDEN_COMPOSIO_BASE_URL", fx.API)
    with respx.mock(base_url=fx.API) as api:
        api.get(fx.ACCOUNTS).respond(401, json=fx.error_body(401, "Invalid API key"))
        code = main(["connections", "--user", fx.USER])

    err = capsys.readouterr().err
    assert code == 2
    assert "HTTP 401" in err
    assert fx.KEY not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["connect", "github", "--user", "u"], "'github' is not a configured toolkit"),
        (["connect", "slack", "--user", " u"], "invalid --user ' u'"),
        (["connect", "slack", "--user", "u", "--timeout", "0"], "--timeout must be a positive"),
        (["connections", "--user", ""], "invalid --user ''"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    monkeypatch.setenv("LOGWARDEN_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/never-contacted")
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_light_commands_do_not_import_router_sdks() -> None:
    heavy = "{'composio', 'composio_client', 'mcp', 'uvicorn'}"
    script = (
        "import sys; from logwarden.cli import build_parser; import logwarden.routers; build_parser(); "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {heavy}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_an_unmigrated_database_gets_a_hint(
    monkeypatch: pytest.MonkeyPatch, empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOGWARDEN_DATABASE_URL", empty_database_url)
    monkeypatch.delenv("LOGWARDEN_COMPOSIO_API_KEY", raising=False)

    assert main(["connections", "--user", "alice"]) == 1
    assert "run `logwarden db migrate` first" in capsys.readouterr().err


def test_the_service_does_not_import_the_mcp_client_stack_until_an_agent_runs() -> None:
    """The agent's MCP client (pydantic_ai.mcp and the fastmcp client under it) takes about a
    second to import; a service with no model configured never needs it."""
    script = (
        "import sys; import logwarden.service; "
        "print(sorted(m for m in sys.modules if m == 'pydantic_ai.mcp' or m.split('.')[0] == 'fastmcp'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
