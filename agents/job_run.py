"""One job attempt's state, and the pure decisions made from it: how the attempt ends
(:func:`classify`), what the page floor still has to send (:func:`page_floor`), and the decision
record (:func:`decision_of`). :mod:`agents.job_handler` does the I/O around them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from agents.audit import Decision, DecisionPath, Outcome
from agents.executor import Execution
from agents.guard import Guard
from agents.guard_calls import CallOutcome, CallStatus
from agents.log_anomaly_alert import AlertReport
from agents.planner import ActionKind, Plan, PlannedAction, SkipReason
from agents.policy import Channel
from agents.triage_rules import TriageVerdict
from detector.models import Incident, NotificationJob, Severity


class Disposition(StrEnum):
    COMPLETE = "complete"
    RETRY = "retry"
    DEAD = "dead"
    DEFER = "defer"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class JobResult:
    disposition: Disposition
    summary: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    defer_until: datetime | None = None
    decision: Decision | None = None


@dataclass(slots=True)
class JobRun:
    """Scratch state of one job attempt, turned into its Decision at the end."""

    job: NotificationJob
    started: float
    path: DecisionPath = DecisionPath.RULES
    owner: str | None = None
    verdict: TriageVerdict | None = None
    plan: Plan | None = None
    models: list[str] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    guards: list[Guard] = field(default_factory=list)
    execution: Execution = field(default_factory=Execution)
    report: AlertReport | None = None
    offered: tuple[int, int] = (0, 0)
    tokens: tuple[int, int, int] = (0, 0, 0)
    cost: Decimal = Decimal(0)
    links: dict[str, str] = field(default_factory=dict)


def classify(run: JobRun, first: Plan) -> JobResult:
    """What the attempt amounts to (see the module docstring of :mod:`agents.job_handler`). Pure."""
    summary = summarize(run)
    final = run.plan or first
    last = last_by_key(run.guards)
    pending = [
        str(o.error or o.error_code) for o in last.values() if o.status is CallStatus.FAILED and o.retryable
    ]
    pending += [str(r.error or r.error_code) for r in run.execution.retryable_failures]
    if pending:
        return JobResult(Disposition.RETRY, summary, error="retryable failures: " + "; ".join(pending)[:800])
    delivered = bool(run.execution.delivered) or any(o.done for o in last.values())
    if not delivered:
        failures = run.execution.permanent_failures
        if failures:
            errors = "; ".join(str(r.error) for r in failures)[:800]
            return JobResult(Disposition.DEAD, summary, error=f"permanent failures: {errors}")
        unconnected = any(s.reason is SkipReason.NOT_CONNECTED for s in final.skipped)
        if final.undelivered and final.resume_at is None and unconnected:
            error = "nothing deliverable: no allowed channel is connected (connect links recorded)"
            return JobResult(Disposition.RETRY, summary, error=error)
    if final.resume_at is not None:
        return JobResult(Disposition.DEFER, summary, "held by quiet hours", defer_until=final.resume_at)
    return JobResult(Disposition.COMPLETE, summary)


def decision_of(
    run: JobRun, incident: Incident, result: JobResult, worker: str, latency_ms: float
) -> Decision:
    """The attempt as the audit records it."""
    outcome = {
        Disposition.COMPLETE: Outcome.DELIVERED,
        Disposition.RETRY: Outcome.RETRY,
        Disposition.DEAD: Outcome.FAILED,
        Disposition.DEFER: Outcome.HELD,
        Disposition.LOST: Outcome.LOST,
    }[result.disposition]
    if result.summary.get("outcome") == Outcome.NOTHING_TO_DO.value:
        outcome = Outcome.NOTHING_TO_DO
    verdict = run.verdict
    requests, inp, out = run.tokens
    return Decision(
        job_id=run.job.id,
        incident_id=incident.id,
        job_kind=run.job.kind,
        attempt=run.job.attempts,
        worker=worker,
        path=run.path,
        outcome=outcome,
        latency_ms=latency_ms,
        owner=run.owner,
        verdict={} if verdict is None else verdict_json(verdict),
        models=tuple(run.models),
        tools_offered=run.offered[0],
        tool_schema_tokens=run.offered[1],
        tool_calls=tuple(r.to_json() for g in run.guards for r in g.records),
        output=summarize(run),
        fallbacks=tuple(run.fallbacks),
        connect_links=dict(run.links),
        error=result.error,
        requests=requests,
        input_tokens=inp,
        output_tokens=out,
        cost_usd=run.cost,
    )


def last_by_key(guards: list[Guard]) -> dict[str, CallOutcome]:
    """Each action's latest outcome in this attempt (a later call of the same key supersedes)."""
    last: dict[str, CallOutcome] = {}
    for guard in guards:
        for outcome in guard.outcomes:
            if outcome.verdict.key is not None:
                last[outcome.verdict.key] = outcome
    return last


def page_floor(first: Plan, incident: Incident, agent_delivered: bool) -> tuple[PlannedAction, ...]:
    """What the rules still execute after a successful agent run: on a critical incident the
    plan's page (the PagerDuty trigger, or the notification standing in for it); and the whole
    plan when the agent delivered nothing although triage wanted someone told."""
    if not agent_delivered:
        return first.actions
    if incident.severity is not Severity.CRITICAL:
        return ()
    return tuple(
        a
        for a in first.actions
        if a.kind is ActionKind.PAGERDUTY_TRIGGER or a.fallback_for is Channel.PAGERDUTY
    )


def verdict_json(v: TriageVerdict) -> dict[str, Any]:
    return {
        "action": v.action.value,
        "channels": [c.value for c in v.channels],
        "urgency": v.urgency.value,
        "rationale": v.rationale,
        "path": v.path.value,
        "reason": v.reason,
        "fallback": v.fallback,
    }


def summarize(run: JobRun) -> dict[str, Any]:
    final = run.plan
    summary: dict[str, Any] = {
        "path": run.path.value,
        "deliveries": [r.to_json() for r in run.execution.results],
        "agent_calls": [
            {"tool": o.slug, "status": o.status.value, "ref": o.external_ref}
            for g in run.guards
            if g.path == "agent"
            for o in g.outcomes
        ],
    }
    if final is not None:
        summary["skipped"] = [{"channel": s.channel.value, "reason": s.reason.value} for s in final.skipped]
        if final.resume_at is not None:
            summary["resume_at"] = final.resume_at.isoformat()
    if run.report is not None:
        summary["agent_report"] = run.report.model_dump()
    if run.links:
        summary["connect_links"] = dict(run.links)
    return summary
