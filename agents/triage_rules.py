"""Triage rules: the obvious cases, decided with zero tokens (pure), and the verdict types.

:func:`rule_verdict` settles the obvious cases, each with a named reason:

==========================  ===================================================================
reason                      when → verdict
==========================  ===================================================================
``recovery``                resolve job → close the loop on every channel already used
``recovery_nothing_sent``   resolve job, nothing was ever sent → no action
``incident_resolved``       a stale open/escalate/repeat job for a resolved incident → no action
``escalated_to_critical``   escalate job → page (PagerDuty + Slack), or Slack + Jira if the
                            service does not page
``critical_sustained``      critical and sustained (or a repeat) on a paging service → page now
                            (PagerDuty + Slack; a repeat also files a Jira ticket)
``critical_non_paging``     critical on a service that does not page → Slack + Jira
``tiny_blip``               a warning below the error-count or score floor → no action
``warning_persists``        a warning still firing after the repeat interval → Slack + Jira
``warning_clear``           a warning at or above ``notify_score``, or sustained → Slack
==========================  ===================================================================

Everything else is the ambiguous middle (:class:`Ambiguous`): a brief critical spike on a paging
service (``critical_brief``) or a borderline warning (``warning_borderline``). Only these may go
to a model (:mod:`agents.triage`). Each carries the rules' own answer, used when no model can
decide (:func:`fallback_verdict`: ``critical_brief`` → page; ``warning_borderline`` → Slack), so
a page is never lost. Every verdict records which path decided (:class:`DecisionPath`) and why.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from agents.policy import CHANNEL_ORDER, Channel, ServicePolicy, TriageThresholds
from detector.models import Incident, IncidentStatus, JobKind, Severity, Signal


class Action(StrEnum):
    IGNORE = "ignore"
    NOTIFY = "notify"
    PAGE = "page"
    CLOSE = "close"


class Urgency(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class DecisionPath(StrEnum):
    RULES = "rules"
    """An obvious case, decided by rule with zero tokens."""
    MODEL = "model"
    """The ambiguous middle, decided by the triage model."""
    FALLBACK = "fallback"
    """The ambiguous middle, decided by rule because no model could decide (see ``fallback``)."""


@dataclass(frozen=True, slots=True)
class TriageInput:
    """What triage looks at."""

    kind: JobKind
    incident: Incident
    policy: ServicePolicy
    used_channels: frozenset[Channel] = frozenset()
    """Channels that already carry something for this incident (earlier deliveries)."""


@dataclass(frozen=True, slots=True)
class ModelUsage:
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal


@dataclass(frozen=True, slots=True)
class TriageVerdict:
    """The triage decision and its provenance."""

    action: Action
    channels: tuple[Channel, ...]
    """Channels wanted, in :data:`CHANNEL_ORDER`; the planner applies the policy's gates."""
    urgency: Urgency
    rationale: str
    path: DecisionPath
    reason: str
    """The rule's named reason (for the model path: the ambiguous case it was asked about)."""
    fallback: str | None = None
    """Why no model decided, on the fallback path (e.g. ``no_model_configured``)."""
    usage: ModelUsage | None = None


@dataclass(frozen=True, slots=True)
class Ambiguous:
    """Not obvious: a model may decide; ``default`` is the rules' answer if none can."""

    reason: str
    default: TriageVerdict


def ordered_channels(channels: set[Channel] | frozenset[Channel]) -> tuple[Channel, ...]:
    return tuple(c for c in CHANNEL_ORDER if c in channels)


def is_sustained(incident: Incident, t: TriageThresholds) -> bool:
    """Seen often enough, for long enough, or in a long enough window."""
    if incident.occurrences >= t.sustained_occurrences:
        return True
    if (incident.last_seen - incident.first_seen).total_seconds() >= t.sustained_seconds:
        return True
    event = incident.latest
    return event is not None and event.window_end - event.window_start >= t.sustained_seconds


def is_blip(incident: Incident, t: TriageThresholds) -> bool:
    """A warning too small to mention: few errors (error-rate only) or a low score."""
    event = incident.latest
    if incident.severity is not Severity.WARNING or event is None:
        return False
    few = incident.signal is Signal.ERROR_RATE and event.error_count < t.ignore_below_errors
    return few or event.score < t.ignore_below_score


def _rule(action: Action, channels: set[Channel], urgency: Urgency, reason: str, why: str) -> TriageVerdict:
    return TriageVerdict(
        action=action,
        channels=ordered_channels(channels) if action is not Action.IGNORE else (),
        urgency=urgency,
        rationale=why,
        path=DecisionPath.RULES,
        reason=reason,
    )


_PAGE = {Channel.PAGERDUTY, Channel.SLACK}
_TICKET = {Channel.SLACK, Channel.JIRA}


def rule_verdict(inp: TriageInput) -> TriageVerdict | Ambiguous:
    """The rules' decision, or :class:`Ambiguous` for the middle (see the module table)."""
    incident, policy, kind = inp.incident, inp.policy, inp.kind
    t = policy.triage
    if kind is JobKind.RESOLVE:
        if not inp.used_channels:
            return _rule(
                Action.IGNORE, set(), Urgency.LOW, "recovery_nothing_sent", "recovered; nothing was sent"
            )
        return _rule(
            Action.CLOSE, set(inp.used_channels), Urgency.LOW, "recovery", "recovered; close the loop"
        )
    if incident.status is IncidentStatus.RESOLVED:
        return _rule(Action.IGNORE, set(), Urgency.LOW, "incident_resolved", "incident already resolved")
    if incident.severity is Severity.CRITICAL:
        if kind is JobKind.ESCALATE:
            if policy.pages:
                return _rule(
                    Action.PAGE, _PAGE, Urgency.HIGH, "escalated_to_critical", "escalated to critical"
                )
            return _rule(
                Action.NOTIFY, _TICKET, Urgency.HIGH, "escalated_to_critical", "escalated; no paging"
            )
        if not policy.pages:
            return _rule(
                Action.NOTIFY, _TICKET, Urgency.HIGH, "critical_non_paging", "critical; service does not page"
            )
        if kind is JobKind.REPEAT:
            return _rule(
                Action.PAGE,
                _PAGE | {Channel.JIRA},
                Urgency.HIGH,
                "critical_sustained",
                "critical and still firing",
            )
        if is_sustained(incident, t):
            return _rule(Action.PAGE, _PAGE, Urgency.HIGH, "critical_sustained", "critical and sustained")
        default = _rule(Action.PAGE, _PAGE, Urgency.HIGH, "critical_brief", "brief critical spike; paging")
        return Ambiguous("critical_brief", default)
    if kind is JobKind.REPEAT:
        return _rule(Action.NOTIFY, _TICKET, Urgency.NORMAL, "warning_persists", "warning still firing")
    if kind is JobKind.OPEN and is_blip(incident, t):
        return _rule(Action.IGNORE, set(), Urgency.LOW, "tiny_blip", "below the blip thresholds")
    event = incident.latest
    if is_sustained(incident, t) or (event is not None and event.score >= t.notify_score):
        return _rule(Action.NOTIFY, {Channel.SLACK}, Urgency.NORMAL, "warning_clear", "clear warning")
    default = _rule(
        Action.NOTIFY, {Channel.SLACK}, Urgency.NORMAL, "warning_borderline", "borderline warning"
    )
    return Ambiguous("warning_borderline", default)


def fallback_verdict(ambiguous: Ambiguous, why: str) -> TriageVerdict:
    """The rules' answer for an ambiguous case, marked as a fallback with the reason."""
    return replace(ambiguous.default, path=DecisionPath.FALLBACK, reason=ambiguous.reason, fallback=why)


class RulesReason(StrEnum):
    """Why the rules decide instead of a model (recorded with the decision)."""

    NO_MODEL = "no_model_configured"
    BUDGET_EXHAUSTED = "budget_exhausted"
    BUDGET_UNAVAILABLE = "budget_unavailable"
    MODEL_FAILED = "model_failed"


def rules_only(inp: TriageInput) -> TriageVerdict:
    """Triage with no model at all: the rules, and their fallback answer for the middle."""
    outcome = rule_verdict(inp)
    return (
        outcome
        if isinstance(outcome, TriageVerdict)
        else fallback_verdict(outcome, RulesReason.NO_MODEL.value)
    )
