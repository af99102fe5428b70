"""Per-user Composio Tool Router sessions: created once, stored in PostgreSQL, reused, replaced."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest
import respx

from router.base import RouterUnavailable
from router.composio import ComposioRouter, ComposioRouterConfig
from tests.router import composio_fixtures as fx

pytestmark = pytest.mark.anyio

Make = Callable[..., ComposioRouter]


def create_route(api: respx.MockRouter, *session_ids: str) -> respx.Route:
    """POST create answering with the given session ids, one per call."""
    bodies = [httpx.Response(201, json=fx.session_body(sid)) for sid in session_ids]
    return api.post(fx.SESSIONS, name="create").mock(side_effect=bodies)


def use_route(api: respx.MockRouter, session_id: str, status: int = 200, **kw: Any) -> respx.Route:
    body = fx.session_body(session_id, **kw) if status == 200 else fx.error_body(status, "Session not found")
    return api.get(f"{fx.SESSIONS}/{session_id}", name=f"use {session_id}").respond(status, json=body)


async def stored(pool: asyncpg.Pool, user: str = fx.USER) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT session_id, toolkits, config_hash FROM tool_router_sessions WHERE user_id = $1", user
    )


async def test_first_session_is_created_for_the_user_and_stored(
    api: respx.MockRouter, make_router: Make, pool: asyncpg.Pool
) -> None:
    create = create_route(api, "trs_1")

    endpoint = await make_router().session(fx.USER)

    request = create.calls.last.request
    assert json.loads(request.content) == {
        "user_id": fx.USER,
        "toolkits": {"enable": ["slack", "jira", "pagerduty"]},
        "manage_connections": {"enable": True},
    }
    assert request.headers["x-api-key"] == fx.KEY
    assert endpoint.url == f"{fx.API}/tool_router/trs_1/mcp"
    assert dict(endpoint.headers) == {"x-api-key": fx.KEY}
    assert endpoint.session_id == "trs_1"
    row = await stored(pool)
    assert row is not None
    assert row["session_id"] == "trs_1"
    assert row["toolkits"] == ["jira", "pagerduty", "slack"]


async def test_session_options_reach_the_create_request(api: respx.MockRouter, make_router: Make) -> None:
    create = create_route(api, "trs_1", "trs_2")

    await make_router(
        toolkits=("slack", "pagerduty"),
        auth_configs={"slack": "ac_slack_own"},
        callback_url="https://ops.example/connected",
    ).session(fx.USER)
    await make_router(manage_connections=False).session("operator-7")

    with_options, without_management = (json.loads(call.request.content) for call in create.calls)
    assert with_options == {
        "user_id": fx.USER,
        "toolkits": {"enable": ["slack", "pagerduty"]},
        "auth_configs": {"slack": "ac_slack_own"},
        "manage_connections": {"enable": True, "callback_url": "https://ops.example/connected"},
    }
    assert without_management["manage_connections"] == {"enable": False}


async def test_stored_session_is_reused_by_a_fresh_router(api: respx.MockRouter, make_router: Make) -> None:
    create = create_route(api, "trs_1")
    use = use_route(api, "trs_1")

    first = await make_router().session(fx.USER)
    again = await make_router().session(fx.USER)  # a new process: nothing in memory

    assert create.call_count == 1
    assert use.call_count == 1
    assert again.session_id == first.session_id == "trs_1"
    assert again.url == first.url
    assert dict(again.headers) == {"x-api-key": fx.KEY}


async def test_session_gone_at_composio_is_recreated(
    api: respx.MockRouter, make_router: Make, pool: asyncpg.Pool
) -> None:
    create = create_route(api, "trs_1", "trs_2")
    gone = use_route(api, "trs_1", status=404)

    await make_router().session(fx.USER)
    endpoint = await make_router().session(fx.USER)

    assert gone.call_count == 1
    assert create.call_count == 2
    assert endpoint.session_id == "trs_2"
    row = await stored(pool)
    assert row is not None
    assert row["session_id"] == "trs_2"


async def test_toolkit_change_creates_a_new_session(
    api: respx.MockRouter, make_router: Make, pool: asyncpg.Pool
) -> None:
    create = create_route(api, "trs_1", "trs_2")
    use = use_route(api, "trs_1")

    await make_router().session(fx.USER)
    endpoint = await make_router(toolkits=("slack", "pagerduty")).session(fx.USER)

    assert use.call_count == 0
    assert endpoint.session_id == "trs_2"
    assert json.loads(create.calls.last.request.content)["toolkits"] == {"enable": ["slack", "pagerduty"]}
    row = await stored(pool)
    assert row is not None
    assert row["toolkits"] == ["pagerduty", "slack"]


async def test_toolkit_order_alone_is_not_a_change(api: respx.MockRouter, make_router: Make) -> None:
    create = create_route(api, "trs_1")
    use = use_route(api, "trs_1")

    await make_router().session(fx.USER)
    await make_router(toolkits=("pagerduty", "slack", "jira")).session(fx.USER)

    assert (create.call_count, use.call_count) == (1, 1)


async def test_configuration_change_creates_a_new_session(
    api: respx.MockRouter, make_router: Make, pool: asyncpg.Pool
) -> None:
    create = create_route(api, "trs_1", "trs_2")
    use_route(api, "trs_1")

    await make_router().session(fx.USER)
    before = await stored(pool)
    endpoint = await make_router(callback_url="https://ops.example/cb").session(fx.USER)

    after = await stored(pool)
    assert create.call_count == 2
    assert endpoint.session_id == "trs_2"
    assert before is not None
    assert after is not None
    assert before["config_hash"] != after["config_hash"]
    assert before["toolkits"] == after["toolkits"]


async def test_users_get_separate_sessions(api: respx.MockRouter, make_router: Make) -> None:
    create = create_route(api, "trs_a", "trs_b")
    router = make_router()

    a = await router.session("alice")
    b = await router.session("bob")

    assert (a.session_id, b.session_id) == ("trs_a", "trs_b")
    assert [json.loads(c.request.content)["user_id"] for c in create.calls] == ["alice", "bob"]


async def test_a_session_owned_by_another_user_is_never_handed_out(
    api: respx.MockRouter, make_router: Make, pool: asyncpg.Pool
) -> None:
    create_route(api, "trs_2")
    use_route(api, "trs_1", user_id="someone-else")
    await pool.execute(
        "INSERT INTO tool_router_sessions (user_id, session_id, toolkits, config_hash)"
        " VALUES ($1, $2, $3, $4)",
        fx.USER,
        "trs_1",
        ["jira", "pagerduty", "slack"],
        make_router()._hash,
    )

    endpoint = await make_router().session(fx.USER)

    assert endpoint.session_id == "trs_2"


async def test_concurrent_first_use_agrees_on_one_session(
    api: respx.MockRouter, make_router: Make, pool: asyncpg.Pool
) -> None:
    both_creating = threading.Barrier(2, timeout=10)
    ids = iter(["trs_x", "trs_y"])
    lock = threading.Lock()

    def create(request: httpx.Request) -> httpx.Response:
        with lock:
            sid = next(ids)
        both_creating.wait()  # both processes saw no stored session before either stores one
        return httpx.Response(201, json=fx.session_body(sid))

    def use(request: httpx.Request, sid: str) -> httpx.Response:
        return httpx.Response(200, json=fx.session_body(sid))

    creates = api.post(fx.SESSIONS).mock(side_effect=create)
    uses = api.get(path__regex=rf"{fx.SESSIONS}/(?P<sid>trs_\w+)$").mock(side_effect=use)

    first, second = await asyncio.gather(make_router().session(fx.USER), make_router().session(fx.USER))

    row = await stored(pool)
    assert row is not None
    assert first.session_id == second.session_id == row["session_id"]
    assert await pool.fetchval("SELECT count(*) FROM tool_router_sessions") == 1
    assert creates.call_count == 2  # both created one; the loser then looked up the winner's
    assert [c.request.url.path.rsplit("/", 1)[1] for c in uses.calls] == [row["session_id"]]


async def test_invalid_user_ids_are_refused_before_any_request(
    api: respx.MockRouter, make_router: Make
) -> None:
    router = make_router()
    for bad in ("", "  ", " padded"):
        with pytest.raises(ValueError, match="invalid user id"):
            await router.session(bad)
    assert not api.calls


async def test_a_database_outage_is_retryable(api: respx.MockRouter, database_url: str) -> None:
    closed = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    await closed.close()
    router = ComposioRouter(ComposioRouterConfig(api_key=fx.KEY, base_url=fx.API, max_retries=0), closed)

    with pytest.raises(RouterUnavailable, match="session store unavailable: InterfaceError") as info:
        await router.session(fx.USER)
    assert info.value.retryable
    assert not api.calls
