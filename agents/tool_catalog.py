"""The one table of app tools the agents use: slugs, argument names and where results keep ids.

Every tool call the rules planner builds (and every slug the guard will allow) comes from
:data:`TOOLS`, so aligning with a router's catalogue (Composio's, or the sandbox router's in
``router/sandbox``) is an edit here and nowhere else. Arguments are built from *logical* fields
(``text``, ``ref``, ``dedup_key``...) mapped to the tool's own argument names; ``fixed`` arguments
are always sent; ``result_ref`` is the path inside the tool's result data to the external
reference the call produced or found (a Slack message ``ts``, a Jira issue key, a PagerDuty
incident id).

Idempotency keys: :func:`incident_key` is the PagerDuty dedup key and the Jira label for an
incident (search by label before create), so a retried job finds what an earlier attempt made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeVar

from agents.policy import Channel
from detector.models import Incident

JsonValue = str | int | float | bool | None | list[str]
_K = TypeVar("_K")
_V = TypeVar("_V")


class Tool(StrEnum):
    """Logical tool names (what we do), mapped to router slugs by :data:`TOOLS`."""

    SLACK_SEND = "slack.send"
    SLACK_UPDATE = "slack.update"
    JIRA_SEARCH = "jira.search"
    JIRA_CREATE = "jira.create"
    JIRA_COMMENT = "jira.comment"
    PAGERDUTY_TRIGGER = "pagerduty.trigger"
    PAGERDUTY_FIND = "pagerduty.find"
    PAGERDUTY_RESOLVE = "pagerduty.resolve"
    SLACK_HISTORY = "slack.history"
    JIRA_COMMENTS = "jira.comments"


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One router tool: its slug, toolkit, argument names and result reference path."""

    slug: str
    channel: Channel
    arguments: Mapping[str, str]
    """Logical field → the tool's argument name."""
    result_ref: tuple[str | int, ...]
    """Path in the tool's result data to the external reference (for the probes: to the list of
    messages or comments searched for an action's marker)."""
    fixed: Mapping[str, JsonValue] = field(default_factory=lambda: MappingProxyType({}))
    """Arguments always sent with this tool."""


def _frozen(mapping: Mapping[_K, _V]) -> Mapping[_K, _V]:
    return MappingProxyType(dict(mapping))


TOOLS: Mapping[Tool, ToolSpec] = _frozen(
    {
        Tool.SLACK_SEND: ToolSpec(
            slug="SLACK_SEND_MESSAGE",
            channel=Channel.SLACK,
            arguments=_frozen({"target": "channel", "text": "markdown_text", "thread": "thread_ts"}),
            result_ref=("ts",),
        ),
        Tool.SLACK_UPDATE: ToolSpec(
            slug="SLACK_UPDATE_MESSAGE",
            channel=Channel.SLACK,
            arguments=_frozen({"target": "channel", "ref": "ts", "text": "markdown_text"}),
            result_ref=("ts",),
        ),
        Tool.JIRA_SEARCH: ToolSpec(
            slug="JIRA_SEARCH_ISSUES",
            channel=Channel.JIRA,
            arguments=_frozen({"query": "jql", "limit": "max_results"}),
            result_ref=("issues", 0, "key"),
        ),
        Tool.JIRA_CREATE: ToolSpec(
            slug="JIRA_CREATE_ISSUE",
            channel=Channel.JIRA,
            arguments=_frozen(
                {
                    "target": "project",
                    "issue_type": "issuetype",
                    "title": "summary",
                    "text": "description",
                    "labels": "labels",
                }
            ),
            result_ref=("key",),
        ),
        Tool.JIRA_COMMENT: ToolSpec(
            slug="JIRA_ADD_COMMENT",
            channel=Channel.JIRA,
            arguments=_frozen({"ref": "issue_key", "text": "comment"}),
            result_ref=("issue_key",),
        ),
        Tool.PAGERDUTY_TRIGGER: ToolSpec(
            slug="PAGERDUTY_CREATE_INCIDENT_RECORD",
            channel=Channel.PAGERDUTY,
            arguments=_frozen(
                {
                    "target": "incident__service__id",
                    "title": "incident__title",
                    "urgency": "incident__urgency",
                    "dedup_key": "incident__incident_key",
                    "text": "incident__body__details",
                }
            ),
            result_ref=("incident", "id"),
            fixed=_frozen(
                {
                    "incident__type": "incident",
                    "incident__service__type": "service_reference",
                    "incident__body__type": "incident_body",
                }
            ),
        ),
        Tool.PAGERDUTY_FIND: ToolSpec(
            slug="PAGERDUTY_LIST_INCIDENTS",
            channel=Channel.PAGERDUTY,
            arguments=_frozen({"dedup_key": "incident_key", "limit": "limit"}),
            result_ref=("incidents", 0, "id"),
            fixed=_frozen({"statuses": ["triggered", "acknowledged"]}),
        ),
        Tool.PAGERDUTY_RESOLVE: ToolSpec(
            slug="PAGERDUTY_UPDATE_INCIDENT",
            channel=Channel.PAGERDUTY,
            arguments=_frozen({"ref": "id", "text": "incident__resolution"}),
            result_ref=("incident", "id"),
            fixed=_frozen({"incident__type": "incident_reference", "incident__status": "resolved"}),
        ),
        Tool.SLACK_HISTORY: ToolSpec(
            slug="SLACK_FETCH_CONVERSATION_HISTORY",
            channel=Channel.SLACK,
            arguments=_frozen({"target": "channel", "since": "oldest", "limit": "limit"}),
            result_ref=("messages",),
        ),
        Tool.JIRA_COMMENTS: ToolSpec(
            slug="JIRA_LIST_ISSUE_COMMENTS",
            channel=Channel.JIRA,
            arguments=_frozen({"ref": "issue_key", "limit": "max_results"}),
            result_ref=("comments",),
        ),
    }
)

READ_ONLY: frozenset[Tool] = frozenset(
    {Tool.JIRA_SEARCH, Tool.PAGERDUTY_FIND, Tool.SLACK_HISTORY, Tool.JIRA_COMMENTS}
)
"""Tools that only read: lookups before an action, and the probes that settle an unknown outcome."""

TOOLS_BY_SLUG: Mapping[str, Tool] = _frozen({spec.slug: tool for tool, spec in TOOLS.items()})

SLUGS_BY_CHANNEL: Mapping[Channel, frozenset[str]] = _frozen(
    {
        channel: frozenset(spec.slug for spec in TOOLS.values() if spec.channel is channel)
        for channel in Channel
    }
)
"""Every slug the agents may use per channel (the guard's allow-list starts here)."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A concrete call through the tool router: slug and arguments (JSON-safe)."""

    tool: Tool
    slug: str
    arguments: Mapping[str, JsonValue]


def build_call(tool: Tool, values: Mapping[str, JsonValue]) -> ToolCall:
    """Map logical ``values`` onto ``tool``'s argument names (``None`` values are left out).

    Raises KeyError for a logical field the tool does not take, so a typo cannot silently drop
    an argument.
    """
    spec = TOOLS[tool]
    arguments: dict[str, JsonValue] = dict(spec.fixed)
    for name, value in values.items():
        if value is not None:
            arguments[spec.arguments[name]] = value
    return ToolCall(tool=tool, slug=spec.slug, arguments=MappingProxyType(arguments))


def result_node(tool: Tool, data: Any) -> Any:
    """The value at the tool's ``result_ref`` path in its result data (None when absent)."""
    node = data
    for step in TOOLS[tool].result_ref:
        if isinstance(step, int):
            if not isinstance(node, list) or len(node) <= step:
                return None
        elif not isinstance(node, Mapping) or step not in node:
            return None
        node = node[step]
    return node


def result_reference(tool: Tool, data: Any) -> str | None:
    """The external reference in a tool's result data (None when absent, e.g. nothing found)."""
    node = result_node(tool, data)
    return None if node is None else str(node)


def incident_key(incident: Incident) -> str:
    """The incident's idempotency key: PagerDuty dedup key and Jira label (no spaces)."""
    return f"logwarden-{incident.id}"
