"""Injected failures: rate limits, server errors, timeouts and HTTP errors; the admin endpoint."""

from __future__ import annotations

import anyio
import asyncpg
import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from router.base import RouterUnavailable
from router.sandbox import Failure, FailureInjector, FailureKind, ProjectKeyResolver, SandboxServer
from tests.router.conftest import ADMIN_TOKEN, execute, mcp_session, payload, user_session
from tests.router.test_sandbox_auth import leaf

pytestmark = pytest.mark.anyio

SEND = ("SLACK_SEND_MESSAGE", {"channel": "#alerts", "text": "hi"})
CREATE = ("JIRA_CREATE_ISSUE", {"project": "OPS", "summary": "s"})


def test_injector_matches_by_user_tool_and_toolkit_and_counts_down() -> None:
    injector = FailureInjector()
    first = injector.inject(Failure(FailureKind.RATE_LIMITED, toolkit="slack", count=2))
    injector.inject(Failure(FailureKind.SERVER_ERROR, tool_slug="jira_create_issue", user_id="bob"))
    kinds = list(FailureKind)
    assert injector.take(kinds, "alice", {"JIRA_CREATE_ISSUE"}, {"jira"}) is None  # not alice's
    taken = injector.take(kinds, "bob", {"JIRA_CREATE_ISSUE"}, {"jira"})
    assert taken is not None
    assert taken.kind is FailureKind.SERVER_ERROR
    assert taken.status == 503
    assert injector.take(kinds, "bob", {"JIRA_CREATE_ISSUE"}, {"jira"}) is None  # count was 1
    assert [(p.id, p.remaining) for p in injector.pending()] == [(first, 2)]
    assert injector.take([FailureKind.TIMEOUT], "x", {"SLACK_SEND_MESSAGE"}, {"slack"}) is None  # other kind
    assert injector.take(kinds, "x", {"SLACK_SEND_MESSAGE"}, {"slack"}) is not None
    assert injector.has(FailureKind.RATE_LIMITED)
    assert not injector.has(FailureKind.HTTP_ERROR)
    assert injector.take(kinds, "y", {"SLACK_X"}, {"slack"}) is not None
    assert injector.pending() == []
    with pytest.raises(ValueError, match="count"):
        Failure(FailureKind.TIMEOUT, count=0)


async def test_rate_limit_and_server_error_are_retryable_error_results(sandbox: SandboxServer) -> None:
    await sandbox.store.grant("alice", sandbox.toolkits)
    endpoint = await sandbox.router().session("alice")
    sandbox.failures.inject(Failure(FailureKind.RATE_LIMITED, tool_slug="SLACK_SEND_MESSAGE", retry_after=7))
    sandbox.failures.inject(Failure(FailureKind.SERVER_ERROR, toolkit="jira", count=2, status_code=502))
    with anyio.fail_after(15):
        async with user_session(endpoint) as s:
            failed = await execute(s, SEND, CREATE, CREATE)
            retried = await execute(s, SEND, CREATE)
    limited, broken, broken_again = failed["data"]["results"]
    assert limited["error_code"] == "rate_limited"
    assert limited["status_code"] == 429
    assert limited["retry_after"] == 7
    assert limited["retryable"]
    assert broken["error_code"] == broken_again["error_code"] == "upstream_error"
    assert broken["status_code"] == 502
    assert broken["retryable"]
    assert failed["data"]["error_count"] == 3
    assert retried["successful"]
    outcomes = [(d.tool_slug, d.outcome) for d in await sandbox.store.deliveries("alice")]
    assert outcomes == [
        ("SLACK_SEND_MESSAGE", "rate_limited"),
        ("JIRA_CREATE_ISSUE", "upstream_error"),
        ("JIRA_CREATE_ISSUE", "upstream_error"),
        ("SLACK_SEND_MESSAGE", "ok"),
        ("JIRA_CREATE_ISSUE", "ok"),
    ]
    assert retried["data"]["results"][1]["response"]["data"]["key"] == "OPS-1"  # the failures created nothing


async def test_a_timeout_holds_the_call_for_its_delay_then_fails_without_executing(
    pool: asyncpg.Pool,
) -> None:
    delays: list[float] = []

    async def instant(seconds: float) -> None:
        delays.append(seconds)

    async with SandboxServer(pool, delay_sleep=instant) as server:
        await server.store.grant("alice", ["slack"])
        server.failures.inject(Failure(FailureKind.TIMEOUT, toolkit="slack", delay=42))
        with anyio.fail_after(15):
            async with user_session(await server.router().session("alice")) as s:
                envelope = await execute(s, SEND)
        entry = envelope["data"]["results"][0]
        assert entry["error_code"] == "timeout"
        assert entry["retryable"]
        assert entry["status_code"] == 504
        assert delays == [42]
        assert [d.outcome for d in await server.store.deliveries("alice")] == ["timeout"]
        assert await pool.fetchval("SELECT count(*) FROM sandbox_slack_messages") == 0


async def test_a_timeout_outlasts_the_client_and_the_server_keeps_serving(sandbox: SandboxServer) -> None:
    await sandbox.store.grant("alice", ["slack", "jira"])
    sandbox.failures.inject(Failure(FailureKind.TIMEOUT, toolkit="slack", delay=600))
    endpoint = await sandbox.router().session("alice")
    arguments = {"tools": [{"tool_slug": SEND[0], "arguments": SEND[1]}], "sync_response_to_workbench": False}
    with anyio.fail_after(15):
        async with user_session(endpoint) as s:
            with pytest.raises(MCPError, match=r"[Tt]imed out"):
                await s.call_tool("COMPOSIO_MULTI_EXECUTE_TOOL", arguments, read_timeout_seconds=0.3)
            after = await execute(s, CREATE)
    assert after["successful"]
    assert [d.tool_slug for d in await sandbox.store.deliveries("alice")] == ["JIRA_CREATE_ISSUE"]


async def test_an_http_error_answers_the_mcp_request_with_5xx(sandbox: SandboxServer) -> None:
    await sandbox.store.grant("alice", sandbox.toolkits)
    endpoint = await sandbox.router().session("alice")
    sandbox.failures.inject(Failure(FailureKind.HTTP_ERROR, tool_slug="SLACK_SEND_MESSAGE"))
    with anyio.fail_after(15):
        async with user_session(endpoint) as s:
            listed = await s.list_tools()  # not a tools/call: untouched
            jira = await execute(s, CREATE)  # another tool: untouched
        with pytest.raises(BaseException) as info:  # noqa: PT011 - checked below
            async with user_session(endpoint) as s:
                await execute(s, SEND)
        assert isinstance(leaf(info.value), MCPError)
        async with user_session(endpoint) as s:
            again = await execute(s, SEND)
    assert len(listed.tools) == 4
    assert jira["successful"]
    assert again["successful"]
    assert [d.tool_slug for d in await sandbox.store.deliveries("alice")] == [
        "JIRA_CREATE_ISSUE",
        "SLACK_SEND_MESSAGE",
    ]
    assert sandbox.failures.pending() == []


async def test_admin_endpoint_injects_lists_and_clears_failures(sandbox: SandboxServer) -> None:
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx2.AsyncClient(base_url=sandbox.origin, timeout=10) as http:
        assert (await http.post("/admin/failures", json={"kind": "timeout"})).status_code == 401
        wrong = await http.post(
            "/admin/failures", json={"kind": "timeout"}, headers={"authorization": "Bearer x"}
        )
        assert wrong.status_code == 401
        bad = await http.post("/admin/failures", json={"kind": "explode", "count": 0}, headers=auth)
        assert bad.status_code == 422
        assert len(bad.json()["error"]["details"]) == 2
        made = await http.post(
            "/admin/failures", json={"kind": "rate_limited", "toolkit": "jira", "count": 3}, headers=auth
        )
        assert made.status_code == 201
        listed = (await http.get("/admin/failures", headers=auth)).json()["failures"]
        assert listed == [
            {**listed[0], "id": made.json()["id"], "kind": "rate_limited", "toolkit": "jira", "remaining": 3}
        ]
        assert (await http.delete("/admin/failures", headers=auth)).status_code == 204
        assert sandbox.failures.pending() == []
        user = (await http.post("/admin/users/carol", headers=auth)).json()
        assert user["url"] == (await sandbox.router().session("carol")).url
        link = (await http.post("/admin/users/carol/connect/slack", headers=auth)).json()
        assert link["toolkit"] == "slack"
        assert link["url"].startswith(sandbox.origin)
        assert (await http.post("/admin/users/carol/connect/github", headers=auth)).status_code == 400


async def test_admin_endpoints_are_off_without_a_token(pool: asyncpg.Pool) -> None:
    async with SandboxServer(pool) as server, httpx2.AsyncClient(base_url=server.origin, timeout=10) as http:
        reply = await http.post(
            "/admin/failures", json={"kind": "timeout"}, headers={"authorization": "Bearer guess"}
        )
        assert reply.status_code == 404
        assert server.failures.pending() == []


async def test_a_database_outage_is_a_retryable_answer_not_a_crash(database_url: str) -> None:
    own = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    async with SandboxServer(own) as server:
        endpoint = await server.router().session("alice")
        await own.close()
        with anyio.fail_after(15):
            async with httpx2.AsyncClient(timeout=10) as http:
                denied = await http.post(endpoint.url, headers=dict(endpoint.headers), json={})
            with pytest.raises(RouterUnavailable):
                await server.router().session("alice")
        assert denied.status_code == 503
        assert endpoint.headers["x-api-key"] not in denied.text


async def test_a_database_outage_inside_a_tool_call_is_an_error_result(database_url: str) -> None:
    own = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    resolver = ProjectKeyResolver("ak", {"trs_1": "alice"})
    async with SandboxServer(own, resolver=resolver) as server:
        url = f"{server.origin}/tool_router/trs_1/mcp"
        with anyio.fail_after(15):
            async with mcp_session(url, {"x-api-key": "ak"}) as s:
                await own.close()
                result = await s.call_tool("COMPOSIO_MANAGE_CONNECTIONS", {"toolkits": ["slack"]})
                listed = await s.list_tools()
    assert result.is_error
    assert "database is unavailable" in payload(result)["error"]
    assert len(listed.tools) == 4
