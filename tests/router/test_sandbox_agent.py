"""A pydantic-ai agent (MCPToolset + FunctionModel) uses the sandbox like Composio's router."""

from __future__ import annotations

from typing import Any, Literal

import anyio
import pytest
from pydantic import BaseModel
from pydantic_ai import Agent, ModelMessage, ModelResponse, ToolCallPart, ToolReturnPart, UsageLimits, models
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.models.function import AgentInfo, FunctionModel

from router.context_cost import definitions_cost
from router.sandbox import SandboxServer

pytestmark = pytest.mark.anyio
models.ALLOW_MODEL_REQUESTS = False


class Decision(BaseModel):
    channel: Literal["slack", "jira", "pagerduty", "none"]
    tool_slug: str | None
    external_ref: str | None = None


OFFERED: list[list[str]] = []


def scripted(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Search, then build the arguments from the returned schema, then answer."""
    OFFERED.append(sorted(t.name for t in info.function_tools))
    returns = [p for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]
    if not returns:
        query = {"queries": [{"use_case": "page the on-call engineer about a checkout outage"}]}
        return ModelResponse(parts=[ToolCallPart("COMPOSIO_SEARCH_TOOLS", query)])
    if len(returns) == 1:
        data: dict[str, Any] = returns[0].content["data"]  # type: ignore[index]
        slug = data["results"][0]["primary_tool_slugs"][0]
        schema = data["tool_schemas"][slug]["input_schema"]
        known = {
            "incident__title": "checkout error rate 12%",
            "incident__service__id": "PSVC1",
            "incident__incident_key": "inc-7",
            "incident__urgency": "high",
        }
        arguments = {k: v for k, v in known.items() if k in schema["properties"]}
        call = {"tools": [{"tool_slug": slug, "arguments": arguments}], "sync_response_to_workbench": False}
        return ModelResponse(parts=[ToolCallPart("COMPOSIO_MULTI_EXECUTE_TOOL", call)])
    result = returns[-1].content["data"]["results"][0]  # type: ignore[index]
    incident = result["response"]["data"]["incident"]["id"]
    output = {"channel": "pagerduty", "tool_slug": result["tool_slug"], "external_ref": incident}
    return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, output)])


async def test_an_agent_finds_and_executes_a_tool_through_the_users_session(sandbox: SandboxServer) -> None:
    await sandbox.store.grant("alice", ["pagerduty"])
    endpoint = await sandbox.router().session("alice")
    agent = Agent(
        FunctionModel(scripted, model_name="scripted"), output_type=Decision, name="log-anomaly-alert"
    )
    toolset = MCPToolset(
        endpoint.url, id="router", headers=dict(endpoint.headers), init_timeout=10, read_timeout=30
    )
    OFFERED.clear()
    with anyio.fail_after(30):
        result = await agent.run(
            "sev1: checkout 5xx",
            toolsets=[toolset],
            usage_limits=UsageLimits(request_limit=5, tool_calls_limit=3),
        )
    assert OFFERED[0] == sorted(
        [
            "COMPOSIO_SEARCH_TOOLS",
            "COMPOSIO_GET_TOOL_SCHEMAS",
            "COMPOSIO_MULTI_EXECUTE_TOOL",
            "COMPOSIO_MANAGE_CONNECTIONS",
        ]
    )
    [delivery] = await sandbox.store.deliveries("alice")
    assert result.output == Decision(
        channel="pagerduty", tool_slug="PAGERDUTY_CREATE_INCIDENT_RECORD", external_ref=delivery.external_ref
    )
    assert delivery.arguments["incident__incident_key"] == "inc-7"
    assert result.usage.tool_calls == 2


async def test_tools_offered_to_an_agent_can_be_costed(sandbox: SandboxServer) -> None:
    endpoint = await sandbox.router().session("alice")
    seen: list[Any] = []

    def capture(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.extend(info.function_tools)
        return ModelResponse(
            parts=[ToolCallPart(info.output_tools[0].name, {"channel": "none", "tool_slug": None})]
        )

    agent = Agent(FunctionModel(capture), output_type=Decision)
    toolset = MCPToolset(endpoint.url, headers=dict(endpoint.headers), init_timeout=10)
    with anyio.fail_after(30):
        await agent.run("nothing to do", toolsets=[toolset])
    cost = definitions_cost((t.name, t.description, t.parameters_json_schema) for t in seen)
    assert cost.tools == 4
    assert 0 < cost.schema_tokens < 2000
