"""The rules planner: from a triage verdict to an ordered plan of channel actions. Pure.

Given the job kind, the incident, the service's policy slice, the owner's connection states, the
verdict, earlier deliveries for the incident and the owner's recent send counts, :func:`plan`
returns the actions to take (each a ready tool call from :mod:`agents.tool_catalog`) and every
channel it skipped with a named reason. No I/O and no clock of its own: ``now`` is an input.

Per wanted channel, in :data:`~agents.policy.CHANNEL_ORDER` (the page first):

1. choose the action: PagerDuty ``trigger`` / ``resolve``; Slack ``post`` (a repeat replies in the
   thread) or ``update`` of the stored message (escalate, resolve); Jira ``create`` (searching by
   the incident label first, so a retry finds the ticket an earlier attempt made) or ``comment``.
   Something this job kind already did (e.g. PagerDuty already triggered) → ``already_done``;
2. gates, in order: the policy allows the channel for the severity (``not_allowed``); quiet hours
   (``quiet_hours``, with ``resume_at``); the owner's connection is active (``not_connected``);
   the channel's rate limit (``rate_limited``). Closing actions pass every gate but the connection;
   quiet hours and rate limits never hold back anything for a critical incident's page (see
   :mod:`agents.policy`);
3. a channel that is not connected falls back to the next allowed, connected channel
   (PagerDuty → Slack → Jira; Slack → Jira; Jira → Slack), which also tells the owner the channel
   needs connecting (with the connect link when the caller has one). ``connect_needed`` lists the
   toolkits to record links for.

Each action carries an idempotency key, ``logwarden-<incident>/<job kind>/<action>`` (plus
``/<job id>`` for repeats, which may legitimately happen more than once), for the guard's
one-action-per-key reservation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from agents.notification_text import connect_notice, slack_text, ticket_text, title
from agents.policy import CHANNEL_ORDER, Channel, JiraTarget, PagerDutyTarget, ServicePolicy
from agents.tool_catalog import JsonValue, Tool, ToolCall, build_call, incident_key
from agents.triage_rules import Action, TriageVerdict
from detector.models import Incident, JobKind, Severity
from router.base import Connection, ConnectionState


class ActionKind(StrEnum):
    SLACK_POST = "slack.post"
    SLACK_UPDATE = "slack.update"
    JIRA_CREATE = "jira.create"
    JIRA_COMMENT = "jira.comment"
    PAGERDUTY_TRIGGER = "pagerduty.trigger"
    PAGERDUTY_RESOLVE = "pagerduty.resolve"


NEW_NOTIFICATIONS: frozenset[ActionKind] = frozenset(
    {ActionKind.SLACK_POST, ActionKind.JIRA_CREATE, ActionKind.PAGERDUTY_TRIGGER}
)
"""Actions that tell someone something new: subject to quiet hours and rate limits."""

_ORIGINAL = {
    Channel.SLACK: ActionKind.SLACK_POST,
    Channel.JIRA: ActionKind.JIRA_CREATE,
    Channel.PAGERDUTY: ActionKind.PAGERDUTY_TRIGGER,
}
"""The action that creates the item later actions refer to (message, ticket, incident)."""

FALLBACKS: Mapping[Channel, tuple[Channel, ...]] = {
    Channel.PAGERDUTY: (Channel.SLACK, Channel.JIRA),
    Channel.SLACK: (Channel.JIRA,),
    Channel.JIRA: (Channel.SLACK,),
}


class SkipReason(StrEnum):
    NOT_ALLOWED = "not_allowed"
    QUIET_HOURS = "quiet_hours"
    NOT_CONNECTED = "not_connected"
    RATE_LIMITED = "rate_limited"
    ALREADY_DONE = "already_done"


@dataclass(frozen=True, slots=True)
class PriorDelivery:
    """Something already sent for this incident (from the deliveries record)."""

    channel: Channel
    action: ActionKind
    target: str
    external_ref: str | None
    """Slack message ts, Jira issue key, PagerDuty incident id; None if unknown."""
    job_kind: JobKind = JobKind.OPEN


@dataclass(frozen=True, slots=True)
class PlanInput:
    job_id: int
    kind: JobKind
    incident: Incident
    policy: ServicePolicy
    connections: Mapping[str, Connection]
    """The owner's connection per toolkit (``router.ToolRouter.connections``)."""
    verdict: TriageVerdict
    now: datetime
    prior: tuple[PriorDelivery, ...] = ()
    sent_in_window: Mapping[Channel, int] = field(default_factory=dict)
    """New notifications the owner got per channel within that channel's rate-limit window."""
    connect_links: Mapping[str, str] = field(default_factory=dict)
    """Connect URLs per toolkit, when the caller already has them (shown to the owner)."""


@dataclass(frozen=True, slots=True)
class PlannedAction:
    channel: Channel
    kind: ActionKind
    target: str
    call: ToolCall
    idempotency_key: str
    lookup: ToolCall | None = None
    """Run first. With ``lookup_fills``: its result reference fills that argument of ``call``
    (nothing found → nothing to update: skip). Without: found → the item already exists (record
    its reference, do not call)."""
    lookup_fills: str | None = None
    fallback_for: Channel | None = None
    """Set when this action stands in for a channel that is not connected."""


@dataclass(frozen=True, slots=True)
class Skip:
    channel: Channel
    reason: SkipReason
    detail: str


@dataclass(frozen=True, slots=True)
class Plan:
    owner: str
    verdict: TriageVerdict
    actions: tuple[PlannedAction, ...]
    skipped: tuple[Skip, ...]
    connect_needed: tuple[str, ...]
    """Toolkits the owner must connect (record their connect links)."""
    resume_at: datetime | None
    """When quiet hours end, if they held something back (the caller may retry then)."""

    @property
    def undelivered(self) -> bool:
        """The verdict wanted someone told, but nothing can be sent."""
        return self.verdict.action is not Action.IGNORE and not self.actions


@dataclass(slots=True)
class _Work:
    """Mutable scratch state of one planning pass."""

    inp: PlanInput
    acting: dict[Channel, tuple[ActionKind, Channel | None]] = field(default_factory=dict)
    skipped: list[Skip] = field(default_factory=list)
    connect: list[Channel] = field(default_factory=list)
    fallback_needed: list[Channel] = field(default_factory=list)
    notices: dict[Channel, list[str]] = field(default_factory=dict)
    resume_at: datetime | None = None


def idempotency_key(incident: Incident, job: JobKind, action: ActionKind, job_id: int) -> str:
    """The one-action key: ``logwarden-<incident>/<job kind>/<action>``, plus ``/<job id>`` for
    repeats (each repeat is a new reminder). The guard reserves it before the call."""
    suffix = f"/{job_id}" if job is JobKind.REPEAT else ""
    return f"{incident_key(incident)}/{job.value}/{action.value}{suffix}"


def _refs(prior: tuple[PriorDelivery, ...]) -> dict[Channel, PriorDelivery]:
    """The original item per channel (first post / ticket / incident) from earlier deliveries."""
    found: dict[Channel, PriorDelivery] = {}
    for delivery in prior:
        if delivery.action is _ORIGINAL[delivery.channel] and delivery.channel not in found:
            found[delivery.channel] = delivery
    return found


def _choose(
    channel: Channel, inp: PlanInput, closing: bool, refs: Mapping[Channel, PriorDelivery]
) -> ActionKind:
    original = refs.get(channel)
    if channel is Channel.PAGERDUTY:
        return ActionKind.PAGERDUTY_RESOLVE if closing else ActionKind.PAGERDUTY_TRIGGER
    if channel is Channel.SLACK:
        if (closing or inp.kind is JobKind.ESCALATE) and original is not None and original.external_ref:
            return ActionKind.SLACK_UPDATE
        return ActionKind.SLACK_POST
    if closing or original is not None:
        return ActionKind.JIRA_COMMENT
    return ActionKind.JIRA_CREATE


def _done_before(channel: Channel, kind: ActionKind, inp: PlanInput) -> bool:
    if inp.kind is JobKind.REPEAT and kind is not ActionKind.PAGERDUTY_TRIGGER:
        return False  # a repeat is a new reminder; only the page itself is never repeated
    if kind is ActionKind.PAGERDUTY_TRIGGER:
        return any(d.channel is channel and d.action is kind for d in inp.prior)
    return any(d.channel is channel and d.action is kind and d.job_kind is inp.kind for d in inp.prior)


def _connected(inp: PlanInput, channel: Channel) -> bool:
    conn = inp.connections.get(channel.value)
    return conn is not None and conn.state is ConnectionState.ACTIVE


def _rate_limited(inp: PlanInput, channel: Channel) -> bool:
    limit = inp.policy.channel(channel).rate_limit
    return limit is not None and inp.sent_in_window.get(channel, 0) >= limit.max


def _gate(work: _Work, channel: Channel, kind: ActionKind, closing: bool) -> SkipReason | None:
    inp, policy = work.inp, work.inp.policy
    severity = inp.incident.severity
    critical = severity is Severity.CRITICAL
    new = kind in NEW_NOTIFICATIONS
    if not closing and not policy.allows(channel, severity):
        return SkipReason.NOT_ALLOWED
    quiet = policy.quiet_hours
    if new and not critical and quiet is not None and channel in quiet.channels and policy.quiet(inp.now):
        work.resume_at = quiet.ends_at(inp.now, policy.timezone)
        return SkipReason.QUIET_HOURS
    if not _connected(inp, channel):
        return SkipReason.NOT_CONNECTED
    exempt = critical and channel is Channel.PAGERDUTY
    if new and not exempt and _rate_limited(inp, channel):
        return SkipReason.RATE_LIMITED
    return None


def _detail(reason: SkipReason, channel: Channel, inp: PlanInput) -> str:
    policy = inp.policy.channel(channel)
    if reason is SkipReason.NOT_ALLOWED:
        if not policy.enabled:
            return f"{channel} is disabled for {inp.policy.project}/{inp.policy.service}"
        allowed = ", ".join(sorted(s.label for s in policy.severities)) or "no severity"
        return f"{channel} is allowed for {allowed}, not {inp.incident.severity.label}"
    if reason is SkipReason.QUIET_HOURS:
        return f"quiet hours for {inp.policy.owner}"
    if reason is SkipReason.NOT_CONNECTED:
        conn = inp.connections.get(channel.value)
        state = conn.state.value if conn is not None else ConnectionState.MISSING.value
        return f"{channel} connection for {inp.policy.owner} is {state}"
    if reason is SkipReason.RATE_LIMITED:
        limit = policy.rate_limit
        assert limit is not None
        sent = inp.sent_in_window.get(channel, 0)
        return f"{sent} sent to {inp.policy.owner} within {limit.window}; max {limit.max}"
    return f"this incident already has a {channel} {_ORIGINAL[channel].value.split('.')[1]}"


def _fallback(work: _Work, missing: Channel) -> Channel | None:
    inp = work.inp
    critical = inp.incident.severity is Severity.CRITICAL
    for candidate in FALLBACKS[missing]:
        if candidate in work.acting:
            return candidate
        if not inp.policy.allows(candidate, inp.incident.severity) or not _connected(inp, candidate):
            continue
        quiet = inp.policy.quiet_hours
        held = quiet is not None and candidate in quiet.channels and inp.policy.quiet(inp.now)
        if not critical and (held or _rate_limited(inp, candidate)):
            continue
        return candidate
    return None


def _target(channel: Channel, policy: ServicePolicy, original: PriorDelivery | None) -> str:
    if original is not None and channel is Channel.SLACK:
        return original.target  # update the message where it is, even if the policy moved on
    return policy.channel(channel).target.describe()


def _build(
    work: _Work,
    channel: Channel,
    kind: ActionKind,
    refs: Mapping[Channel, PriorDelivery],
    stand_in: Channel | None,
) -> PlannedAction:
    inp = work.inp
    incident, job = inp.incident, inp.kind
    key = incident_key(incident)
    original = refs.get(channel)
    ref = original.external_ref if original is not None else None
    target = _target(channel, inp.policy, original)
    notices = work.notices.get(channel, [])
    idem = idempotency_key(incident, job, kind, inp.job_id)
    lookup: ToolCall | None = None
    fills: str | None = None
    search = build_call(Tool.JIRA_SEARCH, {"query": f'labels = "{key}"', "limit": 1})
    if kind is ActionKind.SLACK_POST:
        thread = ref if job is JobKind.REPEAT else None
        call = build_call(
            Tool.SLACK_SEND, {"target": target, "text": slack_text(incident, job, notices), "thread": thread}
        )
    elif kind is ActionKind.SLACK_UPDATE:
        call = build_call(
            Tool.SLACK_UPDATE, {"target": target, "ref": ref, "text": slack_text(incident, job, notices)}
        )
    elif kind is ActionKind.JIRA_CREATE:
        jira = inp.policy.channel(Channel.JIRA).target
        assert isinstance(jira, JiraTarget)
        values: dict[str, JsonValue] = {
            "target": jira.project,
            "issue_type": jira.issue_type,
            "title": title(incident, job),
            "text": ticket_text(incident, job, notices),
            "labels": [key],
        }
        call, lookup = build_call(Tool.JIRA_CREATE, values), search
    elif kind is ActionKind.JIRA_COMMENT:
        call = build_call(Tool.JIRA_COMMENT, {"ref": ref, "text": ticket_text(incident, job, notices)})
        if ref is None:
            lookup, fills = search, "issue_key"
    elif kind is ActionKind.PAGERDUTY_TRIGGER:
        pd = inp.policy.channel(Channel.PAGERDUTY).target
        assert isinstance(pd, PagerDutyTarget)
        urgency = "high" if incident.severity is Severity.CRITICAL else "low"
        values = {
            "target": pd.service_id,
            "title": title(incident, job),
            "urgency": urgency,
            "dedup_key": key,
            "text": ticket_text(incident, job, notices),
        }
        call = build_call(Tool.PAGERDUTY_TRIGGER, values)
    else:
        call = build_call(Tool.PAGERDUTY_RESOLVE, {"ref": ref, "text": ticket_text(incident, job, notices)})
        if ref is None:
            lookup, fills = build_call(Tool.PAGERDUTY_FIND, {"dedup_key": key, "limit": 1}), "id"
    return PlannedAction(
        channel=channel,
        kind=kind,
        target=target,
        call=call,
        idempotency_key=idem,
        lookup=lookup,
        lookup_fills=fills,
        fallback_for=stand_in,
    )


def _stand_in(work: _Work, missing: Channel, channel: Channel, refs: Mapping[Channel, PriorDelivery]) -> None:
    """Make ``channel`` carry ``missing``'s notification; a page needs a new post, not an edit."""
    current = work.acting.get(channel)
    if current is None:
        kind = ActionKind.SLACK_POST if channel is Channel.SLACK else _choose(channel, work.inp, False, refs)
        work.acting[channel] = (kind, missing)
    elif current[1] is None:
        paged = missing is Channel.PAGERDUTY and current[0] is ActionKind.SLACK_UPDATE
        work.acting[channel] = (ActionKind.SLACK_POST if paged else current[0], missing)


def plan(inp: PlanInput) -> Plan:
    """The ordered channel actions for one job (see the module docstring)."""
    verdict, policy = inp.verdict, inp.policy
    if verdict.action is Action.IGNORE:
        return Plan(policy.owner, verdict, (), (), (), None)
    closing = verdict.action is Action.CLOSE
    refs = _refs(inp.prior)
    work = _Work(inp)
    for channel in (c for c in CHANNEL_ORDER if c in verdict.channels):
        kind = _choose(channel, inp, closing, refs)
        reason = (
            SkipReason.ALREADY_DONE
            if _done_before(channel, kind, inp)
            else _gate(work, channel, kind, closing)
        )
        if reason is None:
            work.acting[channel] = (kind, None)
            continue
        work.skipped.append(Skip(channel, reason, _detail(reason, channel, inp)))
        if reason is SkipReason.NOT_CONNECTED:
            work.connect.append(channel)
            if not closing:
                work.fallback_needed.append(channel)
    for missing in work.fallback_needed:
        stand_in = _fallback(work, missing)
        if stand_in is not None:
            _stand_in(work, missing, stand_in, refs)
        told = stand_in or next((c for c in (Channel.SLACK, Channel.JIRA) if c in work.acting), None)
        if told is not None:
            instead = policy.channel(stand_in).target.describe() if stand_in is not None else None
            link = inp.connect_links.get(missing.value)
            work.notices.setdefault(told, []).append(
                connect_notice(missing.value, policy.owner, link, instead)
            )
    for missing in work.connect:
        if missing in work.fallback_needed:
            continue
        told = next((c for c in (Channel.SLACK, Channel.JIRA) if c in work.acting), None)
        if told is not None:
            link = inp.connect_links.get(missing.value)
            work.notices.setdefault(told, []).append(connect_notice(missing.value, policy.owner, link, None))
    actions = tuple(
        _build(work, channel, work.acting[channel][0], refs, work.acting[channel][1])
        for channel in CHANNEL_ORDER
        if channel in work.acting
    )
    return Plan(
        owner=policy.owner,
        verdict=verdict,
        actions=actions,
        skipped=tuple(s for s in work.skipped if s.channel not in work.acting),
        connect_needed=tuple(c.value for c in work.connect),
        resume_at=work.resume_at,
    )
