"""Every tool the agents use exists in the sandbox router's catalogue with a compatible schema,
and every result path points where the sandbox apps put the reference."""

from typing import Any

import pytest

from agents.guard_rules import ACTION_TOOLS, META_TOOLS
from agents.tool_catalog import READ_ONLY, TOOLS, Tool, build_call
from router.sandbox.catalog import CATALOGUE
from router.sandbox.executor import HANDLERS
from router.sandbox.meta_schemas import SCHEMAS
from router.sandbox.spec import schema_problem

SAMPLES: dict[Tool, dict[str, Any]] = {
    Tool.SLACK_SEND: {"target": "#alerts", "text": "hello", "thread": "1700000000.000100"},
    Tool.SLACK_UPDATE: {"target": "#alerts", "ref": "1700000000.000100", "text": "resolved"},
    Tool.SLACK_HISTORY: {"target": "#alerts", "since": "1700000000.000000", "limit": 200},
    Tool.JIRA_SEARCH: {"query": 'labels = "logwarden-1"', "limit": 1},
    Tool.JIRA_CREATE: {
        "target": "OPS",
        "issue_type": "Bug",
        "title": "t",
        "text": "d",
        "labels": ["logwarden-1"],
    },
    Tool.JIRA_COMMENT: {"ref": "OPS-1", "text": "c"},
    Tool.JIRA_COMMENTS: {"ref": "OPS-1", "limit": 100},
    Tool.PAGERDUTY_TRIGGER: {
        "target": "PDEFAULT",
        "title": "t",
        "urgency": "high",
        "dedup_key": "logwarden-1",
        "text": "d",
    },
    Tool.PAGERDUTY_FIND: {"dedup_key": "logwarden-1", "limit": 1},
    Tool.PAGERDUTY_RESOLVE: {"ref": "Q123", "text": "r"},
}


def test_every_tool_has_a_sample_and_is_either_an_action_or_read_only() -> None:
    assert set(SAMPLES) == set(TOOLS)
    assert set(ACTION_TOOLS).isdisjoint(READ_ONLY)
    assert set(ACTION_TOOLS) | READ_ONLY == set(TOOLS)


@pytest.mark.parametrize("tool", list(Tool), ids=lambda t: t.value)
def test_the_slug_exists_runs_in_the_sandbox_and_takes_these_arguments(tool: Tool) -> None:
    spec = TOOLS[tool]
    sandbox = CATALOGUE.get(spec.slug)
    assert sandbox is not None, f"{spec.slug} is not in the sandbox catalogue"
    assert sandbox.toolkit == spec.channel.value
    assert spec.slug in HANDLERS, f"{spec.slug} cannot run in the sandbox"
    properties = sandbox.input_schema["properties"]
    for logical, name in spec.arguments.items():
        assert name in properties, f"{spec.slug} has no argument {name} (for {logical})"
    for name in spec.fixed:
        assert name in properties, f"{spec.slug} has no argument {name} (fixed)"
    call = build_call(tool, SAMPLES[tool])
    assert schema_problem(sandbox.input_schema, dict(call.arguments)) is None


def test_the_meta_tools_the_guard_knows_are_the_routers() -> None:
    assert set(SCHEMAS) == META_TOOLS
