"""One outbox job, start to finish: decide, act, classify, record. The worker calls
:meth:`JobHandler.handle` for each job it leased and applies the :class:`JobResult` to the outbox.

1. Load: the incident, the service's policy slice, the owner's connection states (and connect
   links for channels that are not connected), what was sent before, the owner's recent sends.
2. Triage (:func:`agents.triage.triage`): rules, or the triage model for the ambiguous middle.
   Nothing to do → done, recorded.
3. Plan (:func:`agents.planner.plan`, pure): always computed; it is what the rules executor runs,
   the page floor below, and the quiet-hours hold.
4. Act, through the owner's session, behind a :class:`~agents.guard.Guard`:

   - the agent (when a model is configured and acting with it is on): a lease from the model
     router (the strong tier for critical incidents and escalations). No lease (budget spent, no
     model), or any failure of the run → the rules executor runs the plan (same idempotency keys:
     nothing the agent already sent is sent again). After a run that succeeded, the **page floor**:
     on a critical incident, the plan's page (the PagerDuty trigger, or the notification standing
     in for it) is executed by the rules too — a no-op when the agent paged, a page when it did
     not. A model may choose words and extra channels; it cannot lose a page;
   - otherwise the rules executor runs the plan.

   A channel whose call reports it is not connected (revoked since planning) is re-planned once
   with that channel marked missing: the fallback channel carries the alert and the connect link.
5. Classify: a retryable failure (router unavailable, rate limited, upstream error, an action in
   flight elsewhere) → retry with backoff; quiet hours holding something back → deferred to when
   they end; nothing deliverable because nothing is connected → retry (the owner may connect; the
   link is recorded); a permanent failure (credentials refused, the app refused the call) →
   dead-lettered; otherwise done.
6. Record the decision (:mod:`agents.audit`), whatever happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import asyncpg

from agents.audit import AuditLog, Decision, DecisionPath, Outcome
from agents.deliveries import DeliveryLost, DeliveryStore
from agents.errors import MetaToolError
from agents.executor import ActionStatus, Execution, execute_plan
from agents.guard import Guard
from agents.guard_calls import CallOutcome, CallStatus
from agents.guard_rules import GuardScope
from agents.log_anomaly_alert import AgentFailed, AlertDeps, AlertReport, IncidentHistory, run_alert_agent
from agents.models import ModelRouter, UseRules, tier_for
from agents.planner import ActionKind, Plan, PlanInput, PlannedAction, SkipReason, plan
from agents.policy import Channel, Policy
from agents.router_session import open_router_session
from agents.triage import TriageModel, triage
from agents.triage_rules import Action, TriageInput, TriageVerdict
from detector.dedup_errors import DedupError
from detector.models import Incident, NotificationJob, Severity
from router.base import (
    Connection,
    ConnectionRequired,
    ConnectionState,
    RouterAuthError,
    RouterError,
    RouterUnavailable,
    ToolRouter,
)

log = logging.getLogger(__name__)

RETRYABLE: tuple[type[BaseException], ...] = (
    RouterUnavailable,
    MetaToolError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)


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


@dataclass(frozen=True, slots=True)
class HandlerOptions:
    """Timeouts and caps for one job's work."""

    act_with_model: bool = True
    """With a model configured: the agent acts (True) or the model only triages (False)."""
    connect_timeout: float = 10.0
    call_timeout: float = 30.0
    max_calls: int = 16
    in_flight_grace: float = 60.0


@dataclass(slots=True)
class _Run:
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


class JobHandler:
    """Handles one job at a time (stateless between jobs; safe to share between tasks)."""

    def __init__(
        self,
        *,
        incident_of: Callable[[NotificationJob], Any],
        router: ToolRouter,
        policy: Policy,
        deliveries: DeliveryStore,
        audit: AuditLog,
        clock: Callable[[], datetime],
        worker_id: str,
        models: ModelRouter | None = None,
        history: IncidentHistory | None = None,
        options: HandlerOptions | None = None,
    ) -> None:
        from agents.log_anomaly_alert import build_alert_agent

        self._incident_of = incident_of
        self._router = router
        self._policy = policy
        self._deliveries = deliveries
        self._audit = audit
        self._clock = clock
        self._worker = worker_id
        self._models = models if models is not None and models.configured else None
        self._history = history
        self.options = options or HandlerOptions()
        self._triage_model = TriageModel(self._models) if self._models is not None else None
        self._agent = (
            build_alert_agent() if self._models is not None and self.options.act_with_model else None
        )

    async def handle(self, job: NotificationJob) -> JobResult:
        run = _Run(job, time.perf_counter())
        incident: Incident | None = None
        try:
            incident = await self._incident_of(job)
            result = await self._decide_and_act(run, incident)
        except DeliveryLost as exc:
            result = JobResult(Disposition.LOST, error=str(exc))
        except RouterAuthError as exc:
            result = JobResult(Disposition.DEAD, error=f"router refused credentials: {exc}")
        except ConnectionRequired as exc:
            if exc.link is not None:
                run.links[exc.toolkit] = exc.link.url
            result = JobResult(Disposition.RETRY, error=str(exc))
        except DedupError as exc:
            result = JobResult(Disposition.RETRY if exc.retryable else Disposition.DEAD, error=str(exc))
        except RETRYABLE as exc:
            result = JobResult(Disposition.RETRY, error=f"{type(exc).__name__}: {exc}")
        except RouterError as exc:
            result = JobResult(Disposition.RETRY if exc.retryable else Disposition.DEAD, error=str(exc))
        if incident is None:
            return result
        decision = self._decision(run, incident, result)
        try:
            await self._audit.record(decision)
        except RETRYABLE as exc:
            log.warning("could not record the decision for job %s: %s", job.id, type(exc).__name__)
        return replace(result, decision=decision)

    # --- deciding --------------------------------------------------------------------------------

    async def _decide_and_act(self, run: _Run, incident: Incident) -> JobResult:
        job = run.job
        policy = self._policy.for_service(incident.project, incident.service)
        run.owner = owner = policy.owner
        connections = dict(await self._router.connections(owner))
        prior = await self._deliveries.prior(incident.id)
        sent = await self._deliveries.sent_in_window(owner, policy)
        inp = TriageInput(job.kind, incident, policy, frozenset(d.channel for d in prior))
        verdict = run.verdict = await triage(inp, self._triage_model)
        if verdict.usage is not None:
            run.path = DecisionPath.TRIAGE_MODEL
            run.models.append(verdict.usage.model)
            run.tokens = (verdict.usage.requests, verdict.usage.input_tokens, verdict.usage.output_tokens)
            run.cost += verdict.usage.cost_usd
        if verdict.fallback is not None and verdict.fallback != "no_model_configured":
            run.fallbacks.append(f"triage:{verdict.fallback}")
        if verdict.action is Action.IGNORE:
            return JobResult(Disposition.COMPLETE, {"outcome": Outcome.NOTHING_TO_DO.value})
        now = self._clock()
        await self._links(owner, verdict.channels, connections, run)
        plan_input = PlanInput(
            job.id, job.kind, incident, policy, connections, verdict, now, prior, sent, dict(run.links)
        )
        run.plan = first = plan(plan_input)
        scope = GuardScope(job.id, job.kind, incident, policy, now, prior, sent, self.options.max_calls)
        endpoint = await self._router.session(owner)
        if self._agent is not None and self._models is not None:
            await self._act_with_agent(run, scope, endpoint, first, plan_input, connections)
        else:
            await self._act_with_rules(run, scope, endpoint, first, plan_input, connections)
        return self._classify(run, first)

    async def _links(
        self, owner: str, wanted: tuple[Channel, ...], connections: Mapping[str, Connection], run: _Run
    ) -> None:
        """Connect links for wanted channels that are not connected (best effort)."""
        for channel in wanted:
            conn = connections.get(channel.value)
            if (conn is None or conn.state is not ConnectionState.ACTIVE) and channel.value not in run.links:
                try:
                    run.links[channel.value] = (await self._router.connect(owner, channel.value)).url
                except RouterError as exc:
                    log.warning("no connect link for %s/%s: %s", owner, channel.value, type(exc).__name__)

    def _guard(self, run: _Run, scope: GuardScope, path: str) -> Guard:
        guard = Guard(scope, self._deliveries, path=path, in_flight_grace=self.options.in_flight_grace)
        run.guards.append(guard)
        return guard

    async def _act_with_rules(
        self,
        run: _Run,
        scope: GuardScope,
        endpoint: Any,
        first: Plan,
        plan_input: PlanInput,
        connections: dict[str, Connection],
        only: tuple[PlannedAction, ...] | None = None,
    ) -> None:
        if not first.actions:
            return
        opts = self.options
        async with open_router_session(
            endpoint, connect_timeout=opts.connect_timeout, call_timeout=opts.call_timeout
        ) as session:
            guard = self._guard(run, scope, "rules")
            execution = await execute_plan(
                first, guard, session.call, only, stop_when_not_connected=only is None
            )
            missing = execution.not_connected
            if missing and only is None:
                for channel in missing:
                    connections[channel.value] = Connection(channel.value, ConnectionState.MISSING)
                links = {**plan_input.connect_links, **execution.connect_links}
                again = plan(replace(plan_input, connections=dict(connections), connect_links=links))
                run.plan = again
                run.fallbacks.append("replanned:not_connected:" + ",".join(c.value for c in missing))
                execution = execution.merged(await execute_plan(again, guard, session.call))
            run.execution = run.execution.merged(execution)
            run.links.update(execution.connect_links)

    async def _act_with_agent(
        self,
        run: _Run,
        scope: GuardScope,
        endpoint: Any,
        first: Plan,
        plan_input: PlanInput,
        connections: dict[str, Connection],
    ) -> None:
        assert self._models is not None
        assert self._agent is not None
        incident = scope.incident
        lease = await self._models.acquire(tier_for(run.job.kind, incident.severity))
        if isinstance(lease, UseRules):
            run.fallbacks.append(f"agent:{lease.reason.value}")
            await self._act_with_rules(run, scope, endpoint, first, plan_input, connections)
            return
        deps = AlertDeps(
            run.job.id,
            run.job.kind,
            incident,
            plan_input.policy,
            connections,
            plan_input.verdict,
            plan_input.now,
            plan_input.prior,
            dict(run.links),
            self._history,
            self._deliveries,
        )
        guard = self._guard(run, scope, "agent")
        try:
            done = await run_alert_agent(
                self._agent,
                deps,
                endpoint=endpoint,
                guard=guard,
                lease=lease,
                init_timeout=self.options.connect_timeout,
                read_timeout=self.options.call_timeout,
            )
        except AgentFailed as failed:
            self._account(run, failed.models, failed.usage, failed.cost, failed.offered)
            run.path = DecisionPath.RULES
            run.fallbacks.append(f"agent:{failed.reason}")
            log.warning("agent failed on job %s (%s); the rules deliver", run.job.id, failed.reason)
            await self._act_with_rules(run, scope, endpoint, first, plan_input, connections)
            return
        run.path = DecisionPath.AGENT_MODEL
        run.report = done.report
        self._account(run, done.models, done.usage, done.cost, done.offered)
        run.links.update(guard.connect_links)
        floor = page_floor(first, incident, any(o.done for o in guard.outcomes))
        if floor:
            floor_scope = replace(scope, max_calls=scope.max_calls + 2 * len(floor))
            await self._act_with_rules(run, floor_scope, endpoint, first, plan_input, connections, only=floor)
            sent = [r for r in run.execution.results if r.status is ActionStatus.SENT]
            run.fallbacks.extend(f"floor:{r.action.kind.value}" for r in sent)

    def _account(self, run: _Run, models: tuple[str, ...], usage: Any, cost: Decimal, offered: Any) -> None:
        run.models.extend(m for m in models if m not in run.models)
        requests, inp, out = run.tokens
        run.tokens = (requests + usage.requests, inp + usage.input_tokens, out + usage.output_tokens)
        run.cost += cost
        run.offered = (offered.tools, offered.schema_tokens)

    # --- classifying and recording ------------------------------------------------------------

    def _classify(self, run: _Run, first: Plan) -> JobResult:
        summary = _summary(run)
        final = run.plan or first
        last = _last_by_key(run.guards)
        pending = [
            str(o.error or o.error_code)
            for o in last.values()
            if o.status is CallStatus.FAILED and o.retryable
        ]
        pending += [str(r.error or r.error_code) for r in run.execution.retryable_failures]
        if pending:
            return JobResult(
                Disposition.RETRY, summary, error="retryable failures: " + "; ".join(pending)[:800]
            )
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

    def _decision(self, run: _Run, incident: Incident, result: JobResult) -> Decision:
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
            worker=self._worker,
            path=run.path,
            outcome=outcome,
            latency_ms=(time.perf_counter() - run.started) * 1000.0,
            owner=run.owner,
            verdict={} if verdict is None else _verdict_json(verdict),
            models=tuple(run.models),
            tools_offered=run.offered[0],
            tool_schema_tokens=run.offered[1],
            tool_calls=tuple(r.to_json() for g in run.guards for r in g.records),
            output=_summary(run),
            fallbacks=tuple(run.fallbacks),
            connect_links=dict(run.links),
            error=result.error,
            requests=requests,
            input_tokens=inp,
            output_tokens=out,
            cost_usd=run.cost,
        )


def _last_by_key(guards: list[Guard]) -> dict[str, CallOutcome]:
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


def _verdict_json(v: TriageVerdict) -> dict[str, Any]:
    return {
        "action": v.action.value,
        "channels": [c.value for c in v.channels],
        "urgency": v.urgency.value,
        "rationale": v.rationale,
        "path": v.path.value,
        "reason": v.reason,
        "fallback": v.fallback,
    }


def _summary(run: _Run) -> dict[str, Any]:
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
