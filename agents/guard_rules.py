"""The guard's decision for one tool call, as a pure function: :func:`verdict`.

Every tool call an agent (or the rules executor) makes passes here first, with the run's
:class:`GuardScope` (the incident, the job, the service's policy slice, what was sent before, the
owner's recent sends, the clock) and the run's :class:`GuardState` (calls so far, sends this run,
references learned from lookups). The answer is a :class:`Verdict` with a named
:class:`GuardReason`; checks run in this order and the first that fails decides:

====================  ==========================================================================
reason                refused when
====================  ==========================================================================
``tool_call_cap``     the run already made ``max_calls`` calls
``unknown_tool``      the slug is not in :data:`agents.tool_catalog.TOOLS` (the allow-list), or
                      the meta-tool is not one the agents use
``bad_arguments``     arguments are not an object; connection management asked to re-initiate
                      connections or for an unknown toolkit; a PagerDuty update that does not resolve
``channel_not_allowed``  the policy does not allow the channel for the incident's severity (a
                      closing action or lookup on a channel this incident already used is allowed)
``action_not_for_job``  a resolve job may only close the loop (post/update Slack, comment on Jira,
                      resolve PagerDuty); other jobs may not resolve PagerDuty
``already_done``      the incident already has its PagerDuty incident or Jira ticket (trigger or
                      create again) — comment or update instead
``wrong_target``      not the policy's Slack channel / Jira project / PagerDuty service, or an
                      update/comment/resolve/thread reply on something this incident did not make
``missing_idempotency_key``  a PagerDuty trigger without ``dedup_key = logwarden-<incident>`` or a
                      Jira ticket without that label (what makes retries find earlier attempts)
``quiet_hours``       a new warning notification on a quiet channel while quiet
``rate_limited``      a new warning notification past the channel's per-owner rate limit
====================  ==========================================================================

Allowed answers: ``allowed`` (an action: the verdict carries its idempotency key, which the
guard reserves before the call), ``read_only`` (lookups, tool search, schemas) and
``connect_link`` (connection checks and connect links). Critical incidents are exempt from quiet
hours and rate limits (a critical page is never held back), as in the planner.

Log text cannot widen any of this: the scope comes from the policy and the database, never from
the model's input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from agents.planner import NEW_NOTIFICATIONS, ActionKind, PriorDelivery, idempotency_key
from agents.policy import Channel, JiraTarget, PagerDutyTarget, ServicePolicy, SlackTarget
from agents.tool_catalog import READ_ONLY, TOOLS, TOOLS_BY_SLUG, Tool, incident_key
from detector.models import Incident, JobKind, Severity

SEARCH_TOOLS = "COMPOSIO_SEARCH_TOOLS"
GET_TOOL_SCHEMAS = "COMPOSIO_GET_TOOL_SCHEMAS"
MULTI_EXECUTE_TOOL = "COMPOSIO_MULTI_EXECUTE_TOOL"
MANAGE_CONNECTIONS = "COMPOSIO_MANAGE_CONNECTIONS"
META_TOOLS: frozenset[str] = frozenset(
    {SEARCH_TOOLS, GET_TOOL_SCHEMAS, MULTI_EXECUTE_TOOL, MANAGE_CONNECTIONS}
)
"""The tool router's meta-tools the agents use (Composio's names); no others are offered."""

ACTION_TOOLS: Mapping[Tool, ActionKind] = {
    Tool.SLACK_SEND: ActionKind.SLACK_POST,
    Tool.SLACK_UPDATE: ActionKind.SLACK_UPDATE,
    Tool.JIRA_CREATE: ActionKind.JIRA_CREATE,
    Tool.JIRA_COMMENT: ActionKind.JIRA_COMMENT,
    Tool.PAGERDUTY_TRIGGER: ActionKind.PAGERDUTY_TRIGGER,
    Tool.PAGERDUTY_RESOLVE: ActionKind.PAGERDUTY_RESOLVE,
}
"""Tools that act (each reserved under an idempotency key); every other catalogue tool only reads."""

CLOSING: frozenset[ActionKind] = frozenset(
    {ActionKind.SLACK_POST, ActionKind.SLACK_UPDATE, ActionKind.JIRA_COMMENT, ActionKind.PAGERDUTY_RESOLVE}
)
"""What a resolve job may do: tell the channels already used that it is over."""


class GuardReason(StrEnum):
    ALLOWED = "allowed"
    READ_ONLY = "read_only"
    CONNECT_LINK = "connect_link"
    TOOL_CALL_CAP = "tool_call_cap"
    UNKNOWN_TOOL = "unknown_tool"
    BAD_ARGUMENTS = "bad_arguments"
    CHANNEL_NOT_ALLOWED = "channel_not_allowed"
    ACTION_NOT_FOR_JOB = "action_not_for_job"
    ALREADY_DONE = "already_done"
    WRONG_TARGET = "wrong_target"
    MISSING_KEY = "missing_idempotency_key"
    QUIET_HOURS = "quiet_hours"
    RATE_LIMITED = "rate_limited"


ALLOWING: frozenset[GuardReason] = frozenset(
    {GuardReason.ALLOWED, GuardReason.READ_ONLY, GuardReason.CONNECT_LINK}
)


@dataclass(frozen=True, slots=True)
class GuardScope:
    """What one run may do: fixed for the run, from the policy and the database."""

    job_id: int
    job_kind: JobKind
    incident: Incident
    policy: ServicePolicy
    now: datetime
    prior: tuple[PriorDelivery, ...] = ()
    sent_in_window: Mapping[Channel, int] = field(default_factory=dict)
    max_calls: int = 16

    @property
    def owner(self) -> str:
        return self.policy.owner

    @property
    def incident_key(self) -> str:
        return incident_key(self.incident)


@dataclass(frozen=True, slots=True)
class GuardState:
    """What the run has done so far."""

    calls: int = 0
    sent: Mapping[Channel, int] = field(default_factory=dict)
    """New notifications reserved this run, per channel."""
    learned: Mapping[Channel, frozenset[str]] = field(default_factory=dict)
    """References found by this run's lookups (a PagerDuty incident id, a Jira issue key)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: GuardReason
    detail: str
    tool: Tool | None = None
    channel: Channel | None = None
    action: ActionKind | None = None
    key: str | None = None
    """The idempotency key to reserve (actions only)."""
    target: str | None = None

    @property
    def allowed(self) -> bool:
        return self.reason in ALLOWING


def _refuse(reason: GuardReason, detail: str, **extra: Any) -> Verdict:
    return Verdict(reason, detail, **extra)


def meta_verdict(scope: GuardScope, state: GuardState, name: str, arguments: Any) -> Verdict:
    """The verdict on a meta-tool call (``COMPOSIO_MULTI_EXECUTE_TOOL`` is judged per inner call)."""
    if state.calls >= scope.max_calls:
        return _refuse(GuardReason.TOOL_CALL_CAP, f"this run may make at most {scope.max_calls} tool calls")
    if name not in META_TOOLS:
        allowed = ", ".join(sorted(META_TOOLS))
        return _refuse(GuardReason.UNKNOWN_TOOL, f"{name} is not available to this agent (use: {allowed})")
    if not isinstance(arguments, Mapping):
        return _refuse(GuardReason.BAD_ARGUMENTS, "arguments must be a JSON object")
    if name == MANAGE_CONNECTIONS:
        if arguments.get("reinitiate_all"):
            return _refuse(GuardReason.BAD_ARGUMENTS, "re-initiating existing connections is not allowed")
        toolkits = arguments.get("toolkits")
        known = {c.value for c in Channel}
        if (
            not isinstance(toolkits, list)
            or not toolkits
            or any(str(t).lower() not in known for t in toolkits)
        ):
            return _refuse(GuardReason.BAD_ARGUMENTS, f"toolkits must be among {sorted(known)}")
        return Verdict(GuardReason.CONNECT_LINK, "connection check / connect link")
    return Verdict(GuardReason.READ_ONLY, "tool discovery" if name != MULTI_EXECUTE_TOOL else "execute")


def _known_refs(scope: GuardScope, state: GuardState, channel: Channel) -> frozenset[str]:
    refs = {d.external_ref for d in scope.prior if d.channel is channel and d.external_ref}
    return frozenset(refs) | state.learned.get(channel, frozenset())


def _arg(tool: Tool, logical: str, arguments: Mapping[str, Any]) -> Any:
    name = TOOLS[tool].arguments.get(logical)
    return None if name is None else arguments.get(name)


def _policy_target(scope: GuardScope, channel: Channel) -> str:
    target = scope.policy.channel(channel).target
    if isinstance(target, SlackTarget):
        return target.channel
    if isinstance(target, JiraTarget):
        return target.project
    assert isinstance(target, PagerDutyTarget)
    return target.service_id


def _same_slack_channel(a: str, b: str) -> bool:
    return a.strip().lstrip("#").lower() == b.strip().lstrip("#").lower()


def _target_problem(
    scope: GuardScope, state: GuardState, tool: Tool, arguments: Mapping[str, Any]
) -> str | None:
    """Why the call aims somewhere this incident may not reach (None: it may)."""
    channel = TOOLS[tool].channel
    refs = _known_refs(scope, state, channel)
    if channel is Channel.SLACK:
        where = str(_arg(tool, "target", arguments) or "")
        allowed = [_policy_target(scope, channel), *(d.target for d in scope.prior if d.channel is channel)]
        if not any(_same_slack_channel(where, a) for a in allowed):
            return f"Slack messages for this incident go to {allowed[0]}, not {where or '(none)'}"
        if tool is Tool.SLACK_UPDATE and str(_arg(tool, "ref", arguments)) not in refs:
            return "only this incident's own Slack message may be updated"
        thread = _arg(tool, "thread", arguments) if tool is Tool.SLACK_SEND else None
        if thread is not None and str(thread) not in refs:
            return "replies go only to this incident's own Slack thread"
        return None
    if tool is Tool.JIRA_CREATE:
        project = str(_arg(tool, "target", arguments) or "")
        expected = _policy_target(scope, channel)
        return None if project.upper() == expected.upper() else f"tickets go to Jira project {expected}"
    if tool is Tool.JIRA_COMMENT:
        issue = str(_arg(tool, "ref", arguments) or "").upper()
        return None if issue in {r.upper() for r in refs} else "comment only on this incident's own ticket"
    if tool is Tool.PAGERDUTY_TRIGGER:
        service = str(_arg(tool, "target", arguments) or "")
        expected = _policy_target(scope, channel)
        return None if service == expected else f"pages go to PagerDuty service {expected}"
    if tool is Tool.PAGERDUTY_RESOLVE:
        return None if str(_arg(tool, "ref", arguments)) in refs else "resolve only this incident's own page"
    return None


def _key_problem(scope: GuardScope, tool: Tool, arguments: Mapping[str, Any]) -> str | None:
    key = scope.incident_key
    if tool is Tool.PAGERDUTY_TRIGGER and _arg(tool, "dedup_key", arguments) != key:
        name = TOOLS[tool].arguments["dedup_key"]
        return f"a PagerDuty trigger needs {name}={key!r} (the incident's dedup key)"
    if tool is Tool.JIRA_CREATE:
        labels = _arg(tool, "labels", arguments)
        if not isinstance(labels, list) or key not in labels:
            return f"a Jira ticket needs the label {key!r} (found again by it on retries)"
    return None


def _channel_open(scope: GuardScope, channel: Channel, action: ActionKind | None) -> bool:
    """Allowed by policy; or a lookup, or a resolve job closing the loop, on a channel used before."""
    if scope.policy.allows(channel, scope.incident.severity):
        return True
    used = any(d.channel is channel for d in scope.prior)
    return used and (action is None or (scope.job_kind is JobKind.RESOLVE and action in CLOSING))


def _held(scope: GuardScope, state: GuardState, channel: Channel, action: ActionKind) -> Verdict | None:
    """Quiet hours and rate limits, for new warning notifications only."""
    if action not in NEW_NOTIFICATIONS or scope.incident.severity is Severity.CRITICAL:
        return None
    policy = scope.policy
    quiet = policy.quiet_hours
    if quiet is not None and channel in quiet.channels and policy.quiet(scope.now):
        ends = quiet.ends_at(scope.now, policy.timezone)
        return _refuse(GuardReason.QUIET_HOURS, f"quiet hours for {policy.owner} until {ends:%H:%M} UTC")
    limit = policy.channel(channel).rate_limit
    sent = scope.sent_in_window.get(channel, 0) + state.sent.get(channel, 0)
    if limit is not None and sent >= limit.max:
        return _refuse(
            GuardReason.RATE_LIMITED, f"{sent} {channel} notifications within {limit.window}; max {limit.max}"
        )
    return None


def verdict(scope: GuardScope, state: GuardState, slug: str, arguments: Any) -> Verdict:
    """The verdict on one app tool call (see the module docstring for the order of checks)."""
    if state.calls >= scope.max_calls:
        return _refuse(GuardReason.TOOL_CALL_CAP, f"this run may make at most {scope.max_calls} tool calls")
    tool = TOOLS_BY_SLUG.get(str(slug).strip().upper())
    if tool is None:
        return _refuse(
            GuardReason.UNKNOWN_TOOL,
            f"{slug} is not a tool logwarden may use ({', '.join(sorted(TOOLS_BY_SLUG))})",
        )
    spec = TOOLS[tool]
    channel = spec.channel
    if not isinstance(arguments, Mapping):
        return _refuse(
            GuardReason.BAD_ARGUMENTS, "arguments must be a JSON object", tool=tool, channel=channel
        )
    action = ACTION_TOOLS.get(tool)
    severity = scope.incident.severity.label
    if not _channel_open(scope, channel, action):
        where = f"{scope.policy.project}/{scope.policy.service}"
        detail = f"{channel} is not allowed for {severity} incidents on {where}"
        return _refuse(GuardReason.CHANNEL_NOT_ALLOWED, detail, tool=tool, channel=channel, action=action)
    if action is None:
        assert tool in READ_ONLY
        return Verdict(GuardReason.READ_ONLY, "lookup", tool=tool, channel=channel)
    closing = scope.job_kind is JobKind.RESOLVE
    if (closing and action not in CLOSING) or (not closing and action is ActionKind.PAGERDUTY_RESOLVE):
        detail = f"a {scope.job_kind.value} job may not {action.value.replace('.', ' ')}"
        return _refuse(GuardReason.ACTION_NOT_FOR_JOB, detail, tool=tool, channel=channel, action=action)
    if action is ActionKind.PAGERDUTY_RESOLVE and arguments.get("incident__status") != "resolved":
        return _refuse(
            GuardReason.BAD_ARGUMENTS,
            "PagerDuty updates may only resolve",
            tool=tool,
            channel=channel,
            action=action,
        )
    if action in (ActionKind.PAGERDUTY_TRIGGER, ActionKind.JIRA_CREATE) and any(
        d.channel is channel and d.action is action for d in scope.prior
    ):
        made = "PagerDuty incident" if channel is Channel.PAGERDUTY else "Jira ticket"
        return _refuse(
            GuardReason.ALREADY_DONE,
            f"this incident already has its {made}",
            tool=tool,
            channel=channel,
            action=action,
        )
    problem = _target_problem(scope, state, tool, arguments)
    if problem is not None:
        return _refuse(GuardReason.WRONG_TARGET, problem, tool=tool, channel=channel, action=action)
    problem = _key_problem(scope, tool, arguments)
    if problem is not None:
        return _refuse(GuardReason.MISSING_KEY, problem, tool=tool, channel=channel, action=action)
    held = _held(scope, state, channel, action)
    if held is not None:
        return Verdict(held.reason, held.detail, tool=tool, channel=channel, action=action)
    key = idempotency_key(scope.incident, scope.job_kind, action, scope.job_id)
    target = str(_arg(tool, "target", arguments) or _arg(tool, "ref", arguments) or "") or None
    return Verdict(
        GuardReason.ALLOWED, "allowed", tool=tool, channel=channel, action=action, key=key, target=target
    )
