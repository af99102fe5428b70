"""Scripted models for the log-anomaly-alert agent (FunctionModel): they read the facts the agent
is given, search, execute through COMPOSIO_MULTI_EXECUTE_TOOL and report, like a model would.

Each script also answers the triage model's question (the ambiguous middle goes to the fast model
before the agent acts), so one model function can stand for "the configured model"."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic_ai import ModelResponse, ToolCallPart, ToolReturnPart
from pydantic_ai.messages import ModelMessage, ModelRequest, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from agents.log_anomaly_alert import FACTS_HEADER

Facts = dict[str, Any]
Calls = Callable[[Facts], list[tuple[str, dict[str, Any]]]]
USAGE = RequestUsage(input_tokens=900, output_tokens=60)


def facts_of(info: AgentInfo) -> Facts | None:
    text = info.instructions or ""
    if FACTS_HEADER not in text:
        return None
    found: Facts = json.loads(text.split(FACTS_HEADER, 1)[1].strip().splitlines()[0])
    return found


def _returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    return [p for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]


def _triage_answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    request = messages[0]
    assert isinstance(request, ModelRequest)
    prompt = next(p for p in request.parts if isinstance(p, UserPromptPart))
    asked = json.loads(str(prompt.content))
    if asked["severity"] == "critical":
        answer = {
            "action": "page",
            "channels": ["pagerduty", "slack"],
            "urgency": "high",
            "rationale": "spike",
        }
    else:
        answer = {"action": "notify", "channels": ["slack"], "urgency": "normal", "rationale": "look"}
    return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, answer)], usage=USAGE)


def pd_trigger(f: Facts) -> tuple[str, dict[str, Any]]:
    return (
        "PAGERDUTY_CREATE_INCIDENT_RECORD",
        {
            **f["allowed"].get("pagerduty", {"incident__service__id": "PDEFAULT"}),
            "incident__incident_key": f"logwarden-{f['incident']['id']}",
            "incident__title": f["incident"]["title"],
            "incident__urgency": "high",
            "incident__body__details": f["suggested_text"]["ticket"],
        },
    )


def slack_post(f: Facts, channel: str | None = None) -> tuple[str, dict[str, Any]]:
    where = channel or f["allowed"]["slack"]["channel"]
    return ("SLACK_SEND_MESSAGE", {"channel": where, "markdown_text": f["suggested_text"]["slack"]})


def jira_create(f: Facts) -> tuple[str, dict[str, Any]]:
    return (
        "JIRA_CREATE_ISSUE",
        {
            **f["allowed"]["jira"],
            "summary": f["incident"]["title"],
            "description": f["suggested_text"]["ticket"],
        },
    )


def closing(f: Facts) -> list[tuple[str, dict[str, Any]]]:
    """Close the loop on every earlier delivery (the resolve job)."""
    calls: list[tuple[str, dict[str, Any]]] = []
    for d in f["earlier_deliveries"]:
        if d["action"] == "pagerduty.trigger":
            calls.append(("PAGERDUTY_UPDATE_INCIDENT", {"id": d["ref"], "incident__status": "resolved"}))
        elif d["action"] == "slack.post":
            text = f["suggested_text"]["slack"]
            calls.append(
                ("SLACK_UPDATE_MESSAGE", {"channel": d["target"], "ts": d["ref"], "markdown_text": text})
            )
        elif d["action"] == "jira.create":
            calls.append(
                ("JIRA_ADD_COMMENT", {"issue_key": d["ref"], "comment": f["suggested_text"]["ticket"]})
            )
    return calls


def as_triage_says(f: Facts) -> list[tuple[str, dict[str, Any]]]:
    """What a sensible model does: the triage channels, or closing the loop on a resolve job."""
    if f["job"]["kind"] == "resolve":
        return closing(f)
    makers = {"pagerduty": pd_trigger, "slack": slack_post, "jira": jira_create}
    return [makers[c](f) for c in f["triage"]["channels"] if c in f["allowed"]]


def agent_script(
    calls: Calls, *, search_first: bool = True
) -> Callable[[list[ModelMessage], AgentInfo], ModelResponse]:
    """Search (optionally), execute ``calls(facts)`` in one multi-execute, then report from the results."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        f = facts_of(info)
        if f is None:
            return _triage_answer(messages, info)
        done = _returns(messages)
        if search_first and not done:
            query = {"queries": [{"use_case": "notify the on-call owner about an incident"}]}
            return ModelResponse(parts=[ToolCallPart("COMPOSIO_SEARCH_TOOLS", query)], usage=USAGE)
        executed = [p for p in done if p.tool_name == "COMPOSIO_MULTI_EXECUTE_TOOL"]
        planned = calls(f)
        if not planned:
            nothing = {"deliveries": [], "skipped": [], "summary": "nothing worth telling anyone"}
            return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, nothing)], usage=USAGE)
        if not executed:
            tools = [{"tool_slug": s, "arguments": a} for s, a in planned]
            body = {"tools": tools, "sync_response_to_workbench": False, "thought": "notify"}
            return ModelResponse(parts=[ToolCallPart("COMPOSIO_MULTI_EXECUTE_TOOL", body)], usage=USAGE)
        report = _report(executed[-1].content)
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, report)], usage=USAGE)

    return respond


_CHANNEL = {"PAGERDUTY": "pagerduty", "SLACK": "slack", "JIRA": "jira"}


def _report(content: Any) -> dict[str, Any]:
    deliveries, skipped = [], []
    for entry in content["data"]["results"]:
        channel = _CHANNEL.get(entry["tool_slug"].split("_")[0], "slack")
        response = entry.get("response")
        if response and response.get("successful"):
            data = response["data"] or {}
            ref = (
                data.get("ts")
                or data.get("key")
                or (data.get("incident") or {}).get("id")
                or data.get("external_ref")
            )
            deliveries.append({"channel": channel, "tool": entry["tool_slug"], "external_ref": ref})
        else:
            skipped.append({"channel": channel, "reason": str(entry.get("error"))[:200]})
    return {"deliveries": deliveries, "skipped": skipped, "summary": "done"}


def model(respond: Callable[..., Any], name: str) -> FunctionModel:
    return FunctionModel(respond, model_name=name)


def searching_forever(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """A model that never stops looking for tools (trips the tool-call limit)."""
    if facts_of(info) is None:
        return _triage_answer(messages, info)
    query = {"queries": [{"use_case": f"attempt {len(messages)}"}]}
    return ModelResponse(parts=[ToolCallPart("COMPOSIO_SEARCH_TOOLS", query)], usage=USAGE)


def hanging() -> Callable[[list[ModelMessage], AgentInfo], Any]:
    """A model that never answers the agent (trips the run timeout); triage still answers."""

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if facts_of(info) is None:
            return _triage_answer(messages, info)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return respond


def tool_calls(decision_calls: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    return [(c["tool"], c["verdict"], c["status"]) for c in decision_calls]
