"""Connections: listing and status mapping, connect links, waiting for OAuth to finish."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
import respx

from router.base import ConnectionRequired, ConnectionState, RouterAuthError, RouterUnavailable
from router.composio import ComposioRouter
from router.composio_accounts import Account, summarize
from tests.router import composio_fixtures as fx
from tests.router.conftest import FakeClock

pytestmark = pytest.mark.anyio

Make = Callable[..., ComposioRouter]
TOOLKITS = ("slack", "jira", "pagerduty")


def accounts_route(api: respx.MockRouter, *items: dict[str, object]) -> respx.Route:
    return api.get(fx.ACCOUNTS, name="list").respond(200, json=fx.account_page(list(items)))


def poll_route(api: respx.MockRouter, account_id: str, *statuses: str, toolkit: str = "jira") -> respx.Route:
    answers = [httpx.Response(200, json=fx.account(account_id, toolkit, s)) for s in statuses]
    return api.get(f"{fx.ACCOUNTS}/{account_id}", name="poll").mock(side_effect=answers)


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("INITIALIZING", ConnectionState.INITIATED),
        ("INITIATED", ConnectionState.INITIATED),
        ("ACTIVE", ConnectionState.ACTIVE),
        ("EXPIRED", ConnectionState.EXPIRED),
        ("FAILED", ConnectionState.FAILED),
        ("REVOKED", ConnectionState.FAILED),
        ("INACTIVE", ConnectionState.FAILED),
    ],
)
async def test_every_composio_status_maps_to_a_connection_state(
    api: respx.MockRouter, make_router: Make, status: str, state: ConnectionState
) -> None:
    route = accounts_route(api, fx.account("ca_1", "slack", status))

    connections = await make_router().connections(fx.USER)

    assert list(connections) == list(TOOLKITS)
    assert connections["slack"].state is state
    assert connections["slack"].account_id == "ca_1"
    assert connections["jira"].state is ConnectionState.MISSING
    assert connections["jira"].account_id is None
    query = route.calls.last.request.url.params
    assert query["user_ids"] == fx.USER
    assert query["toolkit_slugs"] == "slack,jira,pagerduty"


async def test_listing_follows_cursors(api: respx.MockRouter, make_router: Make) -> None:
    second = api.get(fx.ACCOUNTS, params={"cursor": "page2"}).respond(
        200, json=fx.account_page([fx.account("ca_p", "pagerduty")])
    )
    first = api.get(fx.ACCOUNTS).respond(
        200, json=fx.account_page([fx.account("ca_s", "slack")], next_cursor="page2")
    )

    connections = await make_router().connections(fx.USER)

    assert (first.call_count, second.call_count) == (1, 1)
    assert {t: c.account_id for t, c in connections.items()} == {
        "slack": "ca_s",
        "jira": None,
        "pagerduty": "ca_p",
    }


async def test_accounts_of_other_users_are_ignored(api: respx.MockRouter, make_router: Make) -> None:
    accounts_route(api, fx.account("ca_theirs", "slack", user_id="someone-else"))

    connections = await make_router().connections(fx.USER)

    assert connections["slack"].state is ConnectionState.MISSING


@pytest.mark.parametrize(
    ("accounts", "expected"),
    [
        # the active one wins over newer pending, expired and failed ones
        (
            [
                Account("a1", "slack", "ACTIVE", "u", "2026-01-01"),
                Account("a2", "slack", "INITIATED", "u", "2026-02-01"),
                Account("a3", "slack", "FAILED", "u", "2026-03-01"),
            ],
            ("a1", ConnectionState.ACTIVE),
        ),
        # among equals the most recently updated
        (
            [
                Account("old", "slack", "EXPIRED", "u", "2026-01-01"),
                Account("new", "slack", "EXPIRED", "u", "2026-05-01"),
            ],
            ("new", ConnectionState.EXPIRED),
        ),
        # pending beats expired, expired beats failed
        (
            [Account("x", "slack", "EXPIRED", "u"), Account("p", "slack", "INITIALIZING", "u")],
            ("p", ConnectionState.INITIATED),
        ),
        (
            [Account("f", "slack", "REVOKED", "u"), Account("e", "slack", "EXPIRED", "u")],
            ("e", ConnectionState.EXPIRED),
        ),
        # a disabled account is not usable; an unknown status is not trusted
        ([Account("d", "slack", "ACTIVE", "u", disabled=True)], ("d", ConnectionState.FAILED)),
        ([Account("q", "slack", "SOMETHING_NEW", "u")], ("q", ConnectionState.FAILED)),
    ],
)
def test_summary_picks_the_best_account_per_toolkit(
    accounts: list[Account], expected: tuple[str, ConnectionState]
) -> None:
    result = summarize(accounts, ["slack", "jira"])
    assert (result["slack"].account_id, result["slack"].state) == expected
    assert result["jira"].state is ConnectionState.MISSING


async def test_connect_authorizes_through_the_users_session(api: respx.MockRouter, make_router: Make) -> None:
    api.post(fx.SESSIONS).respond(201, json=fx.session_body("trs_1"))
    link = api.post(f"{fx.SESSIONS}/trs_1/link").respond(201, json=fx.link_body("ca_NEW"))

    result = await make_router().connect(fx.USER, "Jira", "https://ops.example/done")

    assert json.loads(link.calls.last.request.content) == {
        "toolkit": "jira",
        "callback_url": "https://ops.example/done",
    }
    assert result.url == "https://connect.composio.test/link/lt_abc"
    assert (result.connection_id, result.toolkit) == ("ca_NEW", "jira")


async def test_connect_uses_the_configured_callback_by_default(
    api: respx.MockRouter, make_router: Make
) -> None:
    api.post(fx.SESSIONS).respond(201, json=fx.session_body("trs_1"))
    link = api.post(f"{fx.SESSIONS}/trs_1/link").respond(201, json=fx.link_body("ca_NEW"))

    await make_router(callback_url="https://ops.example/default").connect(fx.USER, "slack")

    assert json.loads(link.calls.last.request.content)["callback_url"] == "https://ops.example/default"


async def test_connect_with_an_auth_config_uses_a_connect_link(
    api: respx.MockRouter, make_router: Make
) -> None:
    precheck = api.get(fx.ACCOUNTS, params={"auth_config_ids": "ac_pd_own"}).respond(
        200, json=fx.account_page([])
    )
    link = api.post(f"{fx.ACCOUNTS}/link").respond(201, json=fx.link_body("ca_PD", "lt_pd"))

    result = await make_router(auth_configs={"pagerduty": "ac_pd_own"}).connect(fx.USER, "pagerduty")

    assert precheck.called
    assert json.loads(link.calls.last.request.content) == {"auth_config_id": "ac_pd_own", "user_id": fx.USER}
    assert (result.url, result.connection_id) == ("https://connect.composio.test/link/lt_pd", "ca_PD")
    assert not any(c.request.url.path.startswith(fx.SESSIONS) for c in api.calls)


async def test_connect_refuses_a_toolkit_that_is_not_configured(
    api: respx.MockRouter, make_router: Make
) -> None:
    with pytest.raises(ValueError, match="'github' is not a configured toolkit"):
        await make_router().connect(fx.USER, "github")
    assert not api.calls


async def test_wait_polls_until_active(api: respx.MockRouter, make_router: Make, clock: FakeClock) -> None:
    poll = poll_route(api, "ca_NEW", "INITIALIZING", "INITIATED", "ACTIVE")

    connection = await make_router().wait_connected(fx.USER, "ca_NEW", timeout=60)

    assert (connection.toolkit, connection.state, connection.account_id) == (
        "jira",
        ConnectionState.ACTIVE,
        "ca_NEW",
    )
    assert poll.call_count == 3
    assert clock.sleeps == [2.0, 2.0]


@pytest.mark.parametrize("status", ["FAILED", "EXPIRED", "REVOKED"])
async def test_wait_stops_when_the_connection_fails_or_expires(
    api: respx.MockRouter, make_router: Make, clock: FakeClock, status: str
) -> None:
    poll = poll_route(api, "ca_NEW", "INITIATED", status)

    with pytest.raises(ConnectionRequired) as info:
        await make_router().wait_connected(fx.USER, "ca_NEW", timeout=60)

    assert info.value.toolkit == "jira"
    assert not info.value.retryable
    assert poll.call_count == 2


async def test_wait_times_out_at_the_deadline(
    api: respx.MockRouter, make_router: Make, clock: FakeClock
) -> None:
    api.get(f"{fx.ACCOUNTS}/ca_NEW").respond(200, json=fx.account("ca_NEW", "jira", "INITIATED"))

    with pytest.raises(
        RouterUnavailable, match=r"timed out after 5s waiting for connection ca_NEW \(last: INITIATED\)"
    ):
        await make_router().wait_connected(fx.USER, "ca_NEW", timeout=5)

    assert clock.sleeps == [2.0, 2.0, 1.0]


async def test_wait_rides_out_a_transient_failure(
    api: respx.MockRouter, make_router: Make, clock: FakeClock
) -> None:
    api.get(f"{fx.ACCOUNTS}/ca_NEW").mock(
        side_effect=[
            httpx.Response(503, json=fx.error_body(503, "busy")),
            httpx.ConnectError("connection refused"),
            httpx.Response(200, json=fx.account("ca_NEW", "jira", "ACTIVE")),
        ]
    )

    connection = await make_router().wait_connected(fx.USER, "ca_NEW", timeout=60)

    assert connection.state is ConnectionState.ACTIVE
    assert len(clock.sleeps) == 2


async def test_wait_gives_up_at_once_when_the_key_is_refused(
    api: respx.MockRouter, make_router: Make, clock: FakeClock
) -> None:
    api.get(f"{fx.ACCOUNTS}/ca_NEW").respond(401, json=fx.error_body(401, "Invalid API key"))

    with pytest.raises(RouterAuthError):
        await make_router().wait_connected(fx.USER, "ca_NEW", timeout=60)
    assert clock.sleeps == []


async def test_wait_refuses_another_users_connection(api: respx.MockRouter, make_router: Make) -> None:
    api.get(f"{fx.ACCOUNTS}/ca_X").respond(200, json=fx.account("ca_X", "slack", user_id="someone-else"))

    with pytest.raises(ValueError, match="does not belong to user"):
        await make_router().wait_connected(fx.USER, "ca_X", timeout=60)
