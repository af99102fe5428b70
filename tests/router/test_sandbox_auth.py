"""Credentials and isolation: every request carries its user's credentials; users never mix."""

from __future__ import annotations

import json
from typing import Any

import anyio
import asyncpg
import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from router.base import ConnectionState
from router.sandbox import ProjectKeyResolver, SandboxServer, UnknownConnection
from tests.router.conftest import execute, mcp_session, payload, user_session

pytestmark = pytest.mark.anyio

MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}
SEND = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {
        "name": "COMPOSIO_MULTI_EXECUTE_TOOL",
        "arguments": {
            "tools": [{"tool_slug": "SLACK_SEND_MESSAGE", "arguments": {"channel": "#x", "text": "pwned"}}],
            "sync_response_to_workbench": False,
        },
    },
}


def leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def raw_post(
    url: str, body: dict[str, Any], headers: dict[str, str], http: httpx2.AsyncClient | None = None
) -> httpx2.Response:
    """One JSON-RPC POST, the way an MCP client sends it (no MCP client involved)."""
    if http is None:
        async with httpx2.AsyncClient(timeout=10) as own:
            return await raw_post(url, body, headers, own)
    return await http.post(url, content=json.dumps(body), headers={**MCP_HEADERS, **headers})


async def nothing_sent(pool: asyncpg.Pool) -> bool:
    deliveries = await pool.fetchval("SELECT count(*) FROM sandbox_deliveries")
    messages = await pool.fetchval("SELECT count(*) FROM sandbox_slack_messages")
    return bool(deliveries == 0 and messages == 0)


async def test_missing_or_wrong_credentials_get_401_and_nothing_runs(
    sandbox: SandboxServer, pool: asyncpg.Pool
) -> None:
    alice = await sandbox.router().session("alice")
    bob = await sandbox.router().session("bob")
    await sandbox.store.grant("alice", ["slack"])
    cases = {
        "no key": (alice.url, {}),
        "wrong key": (alice.url, {"x-api-key": "lwsk_not-a-key"}),
        "empty key": (alice.url, {"x-api-key": ""}),
        "bob's key on alice's session": (alice.url, dict(bob.headers)),
        "alice's key on an unknown session": (sandbox.links.mcp_url("trs_sbx_nope"), dict(alice.headers)),
    }
    with anyio.fail_after(15):
        async with httpx2.AsyncClient(timeout=10) as http:
            replies = [
                (name, await raw_post(url, body, headers, http))
                for name, (url, headers) in cases.items()
                for body in (INITIALIZE, SEND)
            ]
        for name, reply in replies:
            assert reply.status_code == 401, name
            assert reply.json()["error"]["code"] == "unauthorized"
            assert "lwsk_" not in reply.text
    assert await nothing_sent(pool)


async def test_the_mcp_client_fails_cleanly_on_a_bad_key(sandbox: SandboxServer) -> None:
    alice = await sandbox.router().session("alice")
    with anyio.fail_after(10), pytest.raises(BaseException) as info:  # noqa: PT011 - checked below
        async with mcp_session(alice.url, {"x-api-key": "wrong"}):
            pass
    assert isinstance(leaf(info.value), MCPError)


async def test_an_mcp_session_is_bound_to_the_user_who_opened_it(
    sandbox: SandboxServer, pool: asyncpg.Pool
) -> None:
    alice = await sandbox.router().session("alice")
    bob = await sandbox.router().session("bob")
    await sandbox.store.grant("alice", ["slack"])
    with anyio.fail_after(10):
        opened = await raw_post(alice.url, INITIALIZE, dict(alice.headers))
        assert opened.status_code == 200
        session_id = opened.headers["mcp-session-id"]
        hijack = await raw_post(bob.url, SEND, {**bob.headers, "mcp-session-id": session_id})
    assert hijack.status_code == 404
    assert await nothing_sent(pool)


async def test_users_neither_see_nor_act_through_each_others_connections(sandbox: SandboxServer) -> None:
    router = sandbox.router()
    alice, bob = await router.session("alice"), await router.session("bob")
    assert alice.url != bob.url
    assert alice.headers != bob.headers
    await sandbox.store.grant("bob", sandbox.toolkits)
    with anyio.fail_after(20):
        async with user_session(bob) as b:
            sent = await execute(b, ("SLACK_SEND_MESSAGE", {"channel": "#ops", "text": "bob's"}))
            ts = sent["data"]["results"][0]["response"]["data"]["ts"]
            await execute(b, ("JIRA_CREATE_ISSUE", {"project": "OPS", "summary": "bob's", "labels": ["b"]}))
            pd = await execute(
                b,
                ("PAGERDUTY_CREATE_INCIDENT_RECORD", {"incident__title": "t", "incident__service__id": "P"}),
            )
            incident = pd["data"]["results"][0]["response"]["data"]["incident"]["id"]
        async with user_session(alice) as a:
            search = payload(
                await a.call_tool("COMPOSIO_SEARCH_TOOLS", {"queries": [{"use_case": "slack message"}]})
            )
            blocked = await execute(
                a, ("SLACK_UPDATE_MESSAGE", {"channel": "#ops", "ts": ts, "text": "alice's"})
            )
            links = payload(await a.call_tool("COMPOSIO_MANAGE_CONNECTIONS", {"toolkits": ["slack"]}))
        await sandbox.store.grant("alice", sandbox.toolkits)
        async with user_session(alice) as a:
            update = await execute(
                a, ("SLACK_UPDATE_MESSAGE", {"channel": "#ops", "ts": ts, "text": "alice's"})
            )
            issues = await execute(a, ("JIRA_SEARCH_ISSUES", {"labels": ["b"]}))
            get_pd = await execute(a, ("PAGERDUTY_GET_INCIDENT", {"id": incident}))
            own = await execute(a, ("JIRA_CREATE_ISSUE", {"project": "OPS", "summary": "alice's"}))
    slack_status = search["data"]["toolkit_connection_statuses"][0]
    assert slack_status == {**slack_status, "toolkit": "slack", "has_active_connection": False}
    assert blocked["data"]["results"][0]["error_code"] == "connection_required"
    bob_ids = {c.account_id for c in (await router.connections("bob")).values()}
    assert links["data"]["results"]["slack"]["connected_account_id"] not in bob_ids
    assert update["data"]["results"][0]["response"]["error"] == "message_not_found"
    assert issues["data"]["results"][0]["response"]["data"]["issues"] == []
    assert get_pd["data"]["results"][0]["response"]["error"] == "Incident Not Found"
    assert own["data"]["results"][0]["response"]["data"]["key"] == "OPS-1"  # her own project counter
    assert {d.user_id for d in await sandbox.store.deliveries("bob")} == {"bob"}
    alice_deliveries = await sandbox.store.deliveries("alice")
    alice_ids = {c.account_id for c in (await router.connections("alice")).values()}
    assert {d.connection_id for d in alice_deliveries} <= alice_ids
    bob_slack = (await router.connections("bob"))["slack"].account_id
    assert bob_slack is not None
    with pytest.raises(UnknownConnection):
        await router.wait_connected("alice", bob_slack, timeout=1)


async def test_project_key_resolver_serves_composio_shaped_sessions(pool: asyncpg.Pool) -> None:
    sessions = {"trs_TEST1": "operator-42"}
    async with SandboxServer(pool, resolver=ProjectKeyResolver("ak_project", sessions)) as server:
        await server.store.grant("operator-42", ["slack"])
        url = f"{server.origin}/tool_router/trs_TEST1/mcp"
        with anyio.fail_after(15):
            async with mcp_session(url, {"x-api-key": "ak_project"}) as s:
                sent = await execute(s, ("SLACK_SEND_MESSAGE", {"channel": "#a", "text": "hi"}))
            assert (await raw_post(url, INITIALIZE, {"x-api-key": "ak_other"})).status_code == 401
            other = f"{server.origin}/tool_router/trs_LATER/mcp"
            assert (await raw_post(other, INITIALIZE, {"x-api-key": "ak_project"})).status_code == 401
            sessions["trs_LATER"] = "operator-7"
            assert (await raw_post(other, INITIALIZE, {"x-api-key": "ak_project"})).status_code == 200
    assert sent["successful"]
    assert [d.user_id for d in await server.store.deliveries()] == ["operator-42"]
    assert "ak_project" not in repr(server.resolver)
    state = (await server.router().connections("operator-42"))["slack"].state
    assert state is ConnectionState.ACTIVE
