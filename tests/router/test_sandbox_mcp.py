"""The sandbox over real MCP (Streamable HTTP on 127.0.0.1): tools/list and each meta-tool."""

from __future__ import annotations

import anyio
import httpx2
import pytest

from router.sandbox import SandboxServer
from tests.router.conftest import execute, payload, user_session

pytestmark = pytest.mark.anyio

META_TOOLS = {
    "COMPOSIO_SEARCH_TOOLS",
    "COMPOSIO_GET_TOOL_SCHEMAS",
    "COMPOSIO_MULTI_EXECUTE_TOOL",
    "COMPOSIO_MANAGE_CONNECTIONS",
}


async def test_tools_list_offers_exactly_the_meta_tools_with_documented_shapes(
    sandbox: SandboxServer,
) -> None:
    endpoint = await sandbox.router().session("alice")
    with anyio.fail_after(10):
        async with user_session(endpoint) as session:
            tools = {t.name: t for t in (await session.list_tools()).tools}
    assert set(tools) == META_TOOLS
    search = tools["COMPOSIO_SEARCH_TOOLS"].input_schema
    assert search["required"] == ["queries"]
    assert search["properties"]["queries"]["items"]["required"] == ["use_case"]
    assert set(search["properties"]["queries"]["items"]["properties"]) == {"use_case", "known_fields"}
    assert set(search["properties"]) == {"queries", "session", "model"}
    multi = tools["COMPOSIO_MULTI_EXECUTE_TOOL"].input_schema
    assert multi["required"] == ["tools", "sync_response_to_workbench"]
    assert multi["properties"]["tools"]["maxItems"] == 50
    assert set(multi["properties"]) == {
        "tools", "sync_response_to_workbench", "thought", "session_id", "current_step", "current_step_metric",
    }  # fmt: skip
    assert tools["COMPOSIO_MANAGE_CONNECTIONS"].input_schema["required"] == ["toolkits"]
    assert tools["COMPOSIO_GET_TOOL_SCHEMAS"].input_schema["required"] == ["tool_slugs"]


async def test_search_returns_ranked_slugs_schemas_statuses_and_the_session(sandbox: SandboxServer) -> None:
    endpoint = await sandbox.router().session("alice")
    await sandbox.store.grant("alice", ["pagerduty"])
    queries = [
        {"use_case": "page the on-call engineer", "known_fields": "service: PSVC1"},
        {"use_case": "post to a slack channel"},
    ]
    with anyio.fail_after(10):
        async with user_session(endpoint) as session:
            result = await session.call_tool("COMPOSIO_SEARCH_TOOLS", {"queries": queries, "model": "gpt-x"})
    body = payload(result)
    assert not result.is_error
    assert body["successful"]
    assert body["error"] is None
    data = body["data"]
    first, second = data["results"]
    assert first["primary_tool_slugs"][0] == "PAGERDUTY_CREATE_INCIDENT_RECORD"
    assert first["toolkits"][0] == "pagerduty"
    assert second["primary_tool_slugs"][0] == "SLACK_SEND_MESSAGE"
    assert not set(first["primary_tool_slugs"]) & set(first["related_tool_slugs"])
    schema = data["tool_schemas"]["PAGERDUTY_CREATE_INCIDENT_RECORD"]["input_schema"]
    assert "incident__incident_key" in schema["properties"]
    statuses = {s["toolkit"]: s for s in data["toolkit_connection_statuses"]}
    assert statuses["pagerduty"]["has_active_connection"] is True
    assert statuses["slack"]["has_active_connection"] is False
    assert statuses["slack"]["status"] == "missing"
    assert data["session"]["id"] == endpoint.session_id


async def test_get_tool_schemas_returns_requested_schemas_and_names_unknown_slugs(
    sandbox: SandboxServer,
) -> None:
    endpoint = await sandbox.router().session("alice")
    args = {"tool_slugs": ["jira_create_issue", "NOPE_TOOL"], "include": ["input_schema", "output_schema"]}
    with anyio.fail_after(10):
        async with user_session(endpoint) as session:
            body = payload(await session.call_tool("COMPOSIO_GET_TOOL_SCHEMAS", args))
            only_unknown = payload(
                await session.call_tool("COMPOSIO_GET_TOOL_SCHEMAS", {"tool_slugs": ["NOPE"]})
            )
    entry = body["data"]["tool_schemas"]["JIRA_CREATE_ISSUE"]
    assert set(entry["input_schema"]["required"]) == {"project", "summary"}
    assert "output_schema" in entry
    assert body["data"]["not_found"] == ["NOPE_TOOL"]
    assert body["successful"]
    assert not only_unknown["successful"]
    assert "NOPE" in only_unknown["error"]


async def test_manage_connections_reports_active_and_links_the_rest(sandbox: SandboxServer) -> None:
    endpoint = await sandbox.router().session("alice")
    await sandbox.store.grant("alice", ["slack"])
    with anyio.fail_after(10):
        async with user_session(endpoint) as session:
            body = payload(
                await session.call_tool(
                    "COMPOSIO_MANAGE_CONNECTIONS", {"toolkits": ["slack", "jira", "github"]}
                )
            )
            again = payload(await session.call_tool("COMPOSIO_MANAGE_CONNECTIONS", {"toolkits": ["jira"]}))
            renewed = payload(
                await session.call_tool(
                    "COMPOSIO_MANAGE_CONNECTIONS", {"toolkits": ["slack"], "reinitiate_all": True}
                )
            )
    results = body["data"]["results"]
    assert results["slack"]["status"] == "active"
    assert results["jira"]["status"] == "initiated"
    assert results["jira"]["redirect_url"].startswith(sandbox.origin + "/connect/")
    assert results["github"]["status"] == "error"
    assert body["data"]["summary"] == {"total": 3, "active": 1, "initiated": 1, "error": 1}
    # A pending link is reused rather than multiplied.
    assert again["data"]["results"]["jira"]["redirect_url"] == results["jira"]["redirect_url"]
    assert renewed["data"]["results"]["slack"]["status"] == "initiated"


@pytest.mark.parametrize(
    ("tool", "arguments", "problem"),
    [
        ("COMPOSIO_SEARCH_TOOLS", {}, "'queries' is a required property"),
        ("COMPOSIO_SEARCH_TOOLS", {"queries": [{"known_fields": "x"}]}, "queries/0"),
        ("COMPOSIO_MULTI_EXECUTE_TOOL", {"tools": [{"tool_slug": "X", "arguments": {}}]}, "sync_response_to"),
        ("COMPOSIO_MULTI_EXECUTE_TOOL", {"tools": [], "sync_response_to_workbench": False}, "tools"),
        ("COMPOSIO_MULTI_EXECUTE_TOOL",
         {"tools": [{"tool_slug": "X", "arguments": {}}] * 51, "sync_response_to_workbench": False},
         "too long"),
        ("COMPOSIO_MANAGE_CONNECTIONS", {"toolkits": "slack"}, "is not of type 'array'"),
        ("COMPOSIO_GET_TOOL_SCHEMAS", {"tool_slugs": ["X"], "include": ["everything"]}, "include/0"),
        ("COMPOSIO_NOPE", {}, "Unknown tool"),
    ],
)  # fmt: skip
async def test_bad_arguments_give_an_error_result_and_the_server_keeps_serving(
    sandbox: SandboxServer, tool: str, arguments: dict[str, object], problem: str
) -> None:
    endpoint = await sandbox.router().session("alice")
    await sandbox.store.grant("alice", ["slack"])
    with anyio.fail_after(10):
        async with user_session(endpoint) as session:
            result = await session.call_tool(tool, arguments)
            assert result.is_error
            body = payload(result)
            assert not body["successful"]
            assert problem in body["error"]
            # Same session, next call: served normally.
            ok = await execute(session, ("SLACK_SEND_MESSAGE", {"channel": "#alerts", "text": "still here"}))
    assert ok["successful"]
    assert [d.tool_slug for d in await sandbox.store.deliveries("alice")] == ["SLACK_SEND_MESSAGE"]


async def test_health_and_unknown_paths(sandbox: SandboxServer) -> None:
    async with httpx2.AsyncClient(base_url=sandbox.origin, timeout=5) as http:
        assert (await http.get("/healthz")).json() == {"ok": True, "mcp": True}
        assert (await http.get("/nope")).status_code == 404
        assert (await http.get("/connect/unknown-token")).status_code == 404
