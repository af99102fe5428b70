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
   link is recorded); credentials refused, or a permanent app failure with nothing delivered →
   dead-lettered; otherwise done (a permanent failure beside delivered actions stays in the
   summary and the decision; retrying would not help). Pure: :func:`agents.job_run.classify`.
6. Record the decision (:mod:`agents.audit`), whatever happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from agents.audit import AuditLog, DecisionPath, Outcome
from agents.deliveries import DeliveryLost, DeliveryStore
from agents.errors import MetaToolError
from agents.executor import ActionStatus, execute_plan
from agents.guard import Guard
from agents.guard_rules import GuardScope
from agents.job_run import Disposition, JobResult, JobRun, classify, decision_of, page_floor
from agents.log_anomaly_alert import AgentFailed, AlertDeps, IncidentHistory, run_alert_agent
from agents.models import ModelRouter, UseRules, tier_for
from agents.planner import Plan, PlanInput, PlannedAction, plan
from agents.policy import Channel, Policy
from agents.router_session import open_router_session
from agents.triage import TriageModel, triage
from agents.triage_rules import Action, TriageInput
from detector.dedup_errors import DedupError
from detector.models import Incident, NotificationJob
from router.base import (
    Connection,
    ConnectionRequired,
    ConnectionState,
    McpEndpoint,
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


@dataclass(frozen=True, slots=True)
class HandlerOptions:
    """Timeouts and caps for one job's work."""

    act_with_model: bool = True
    """With a model configured: the agent acts (True) or the model only triages (False)."""
    connect_timeout: float = 10.0
    call_timeout: float = 30.0
    max_calls: int = 16
    in_flight_grace: float = 60.0


@dataclass(frozen=True, slots=True)
class _Act:
    """What acting on one job needs: the guard's scope, the owner's session, the plan, its inputs."""

    scope: GuardScope
    endpoint: McpEndpoint
    plan: Plan
    inputs: PlanInput


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
        run = JobRun(job, time.perf_counter())
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
        decision = decision_of(
            run, incident, result, self._worker, (time.perf_counter() - run.started) * 1000.0
        )
        try:
            await self._audit.record(decision)
        except RETRYABLE as exc:
            log.warning("could not record the decision for job %s: %s", job.id, type(exc).__name__)
        return replace(result, decision=decision)

    # --- deciding --------------------------------------------------------------------------------

    async def _decide_and_act(self, run: JobRun, incident: Incident) -> JobResult:
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
        act = _Act(scope, await self._router.session(owner), first, plan_input)
        if self._agent is not None and self._models is not None:
            await self._act_with_agent(run, act)
        else:
            await self._act_with_rules(run, act)
        return classify(run, first)

    async def _links(
        self, owner: str, wanted: tuple[Channel, ...], connections: Mapping[str, Connection], run: JobRun
    ) -> None:
        """Connect links for wanted channels that are not connected (best effort)."""
        for channel in wanted:
            conn = connections.get(channel.value)
            if (conn is None or conn.state is not ConnectionState.ACTIVE) and channel.value not in run.links:
                try:
                    run.links[channel.value] = (await self._router.connect(owner, channel.value)).url
                except RouterError as exc:
                    log.warning("no connect link for %s/%s: %s", owner, channel.value, type(exc).__name__)

    def _guard(self, run: JobRun, scope: GuardScope, path: str) -> Guard:
        guard = Guard(scope, self._deliveries, path=path, in_flight_grace=self.options.in_flight_grace)
        run.guards.append(guard)
        return guard

    async def _act_with_rules(
        self, run: JobRun, act: _Act, only: tuple[PlannedAction, ...] | None = None
    ) -> None:
        if not act.plan.actions:
            return
        opts = self.options
        async with open_router_session(
            act.endpoint, connect_timeout=opts.connect_timeout, call_timeout=opts.call_timeout
        ) as session:
            guard = self._guard(run, act.scope, "rules")
            execution = await execute_plan(
                act.plan, guard, session.call, only, stop_when_not_connected=only is None
            )
            missing = execution.not_connected
            if missing and only is None:
                connections = dict(act.inputs.connections)
                for channel in missing:
                    connections[channel.value] = Connection(channel.value, ConnectionState.MISSING)
                links = {**act.inputs.connect_links, **execution.connect_links}
                again = plan(replace(act.inputs, connections=connections, connect_links=links))
                run.plan = again
                run.fallbacks.append("replanned:not_connected:" + ",".join(c.value for c in missing))
                execution = execution.merged(await execute_plan(again, guard, session.call))
            run.execution = run.execution.merged(execution)
            run.links.update(execution.connect_links)

    async def _act_with_agent(self, run: JobRun, act: _Act) -> None:
        assert self._models is not None
        assert self._agent is not None
        incident = act.scope.incident
        lease = await self._models.acquire(tier_for(run.job.kind, incident.severity))
        if isinstance(lease, UseRules):
            run.fallbacks.append(f"agent:{lease.reason.value}")
            await self._act_with_rules(run, act)
            return
        job_input = replace(act.inputs, connect_links=dict(run.links))
        deps = AlertDeps(job_input, self._history, self._deliveries)
        guard = self._guard(run, act.scope, "agent")
        try:
            done = await run_alert_agent(
                self._agent,
                deps,
                endpoint=act.endpoint,
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
            await self._act_with_rules(run, act)
            return
        run.path = DecisionPath.AGENT_MODEL
        run.report = done.report
        self._account(run, done.models, done.usage, done.cost, done.offered)
        run.links.update(guard.connect_links)
        sent_by_agent = {o.verdict.key for o in guard.outcomes if o.done}
        floor = page_floor(act.plan, incident, bool(sent_by_agent))
        floor = tuple(a for a in floor if a.idempotency_key not in sent_by_agent)
        if floor:
            await self._act_with_rules(run, act, only=floor)
            sent = [r for r in run.execution.results if r.status is ActionStatus.SENT]
            run.fallbacks.extend(f"floor:{r.action.kind.value}" for r in sent)

    def _account(self, run: JobRun, models: tuple[str, ...], usage: Any, cost: Decimal, offered: Any) -> None:
        run.models.extend(m for m in models if m not in run.models)
        requests, inp, out = run.tokens
        run.tokens = (requests + usage.requests, inp + usage.input_tokens, out + usage.output_tokens)
        run.cost += cost
        run.offered = (offered.tools, offered.schema_tokens)
