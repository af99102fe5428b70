"""The notification worker: leases outbox jobs and handles each (:mod:`agents.job_handler`).

Constructed once by the service::

    worker = Worker(pool, outbox, router, policy, models, clock=clock, concurrency=4)
    task = asyncio.create_task(worker.run(stop))   # leases until ``stop`` is set
    ...
    stop.set(); await worker.shutdown(grace=10)    # or just: await worker.shutdown(grace=10)

- ``pool``: asyncpg pool (deliveries, decisions, incident history); ``outbox``: the
  ``detector.outbox.Outbox`` whose ``owner`` names this worker; ``router``: the ``ToolRouter``
  serving owners' sessions; ``policy``: the notification :class:`~agents.policy.Policy`;
  ``models``: a :class:`~agents.models.ModelRouter`, or None for the rules only (the default
  install); ``clock``: the time policies are judged at (quiet hours).
- Bounded concurrency: at most ``concurrency`` jobs in flight; leasing asks only for free slots.
- Outcomes: done → ``complete`` (with a summary); retryable → ``fail(retryable=True)`` (the
  outbox backs off, then dead-letters after its max attempts); permanent → ``fail(retryable=False)``
  (dead-lettered); held by quiet hours → ``defer`` until they end; lost lease → dropped (the new
  owner's outcome stands).
- Graceful shutdown: stop leasing; give in-flight jobs ``grace`` seconds to finish; cancel the
  rest and ``release`` their leases (the attempt is not counted; any action they had reserved
  is settled by the next attempt, see :mod:`agents.guard`).
- :meth:`drain` handles every due job now and returns what happened, without sleeping: for tests,
  the demo and one-shot runs.
- :class:`WorkerEvents` receives counters the service turns into metrics (deliveries by channel
  and outcome, jobs by outcome, tokens, cost, latencies); :class:`WorkerCounters` keeps them in
  memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

import asyncpg

from agents.audit import AuditLog, Decision
from agents.deliveries import DeliveryStore
from agents.job_handler import HandlerOptions, JobHandler
from agents.job_run import Disposition, JobResult
from agents.models import ModelRouter
from agents.policy import Policy
from detector.dedup_errors import DedupError, LeaseLost
from detector.incidents import Incidents
from detector.models import NotificationJob
from detector.outbox import Outbox
from router.base import ToolRouter

log = logging.getLogger(__name__)


class WorkerEvents(Protocol):
    """Callbacks for metrics. Called on the worker's event loop; must not block."""

    def job_finished(self, kind: str, outcome: str, seconds: float) -> None: ...

    def job_done(self, job_id: int, outcome: str) -> None:
        """The job's outcome by id (lets the service time anomaly → delivery per job)."""
        ...

    def delivery(self, channel: str, outcome: str) -> None: ...

    def decision(self, path: str, input_tokens: int, output_tokens: int, cost_usd: Decimal) -> None: ...

    def fallback(self, reason: str) -> None: ...


@dataclass(slots=True)
class WorkerCounters:
    """In-memory :class:`WorkerEvents`: totals for tests, the demo and a metrics endpoint."""

    jobs: Counter[tuple[str, str]] = field(default_factory=Counter)
    deliveries: Counter[tuple[str, str]] = field(default_factory=Counter)
    paths: Counter[str] = field(default_factory=Counter)
    fallbacks: Counter[str] = field(default_factory=Counter)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    job_seconds: list[float] = field(default_factory=list)
    outcomes: dict[int, str] = field(default_factory=dict)

    def job_finished(self, kind: str, outcome: str, seconds: float) -> None:
        self.jobs[(kind, outcome)] += 1
        self.job_seconds.append(seconds)

    def job_done(self, job_id: int, outcome: str) -> None:
        self.outcomes[job_id] = outcome

    def delivery(self, channel: str, outcome: str) -> None:
        self.deliveries[(channel, outcome)] += 1

    def decision(self, path: str, input_tokens: int, output_tokens: int, cost_usd: Decimal) -> None:
        self.paths[path] += 1
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cost_usd += cost_usd

    def fallback(self, reason: str) -> None:
        self.fallbacks[reason.split(":")[0] if ":" in reason else reason] += 1


@dataclass(frozen=True, slots=True)
class Handled:
    """One job the worker finished (in :meth:`Worker.drain`'s report)."""

    job_id: int
    disposition: Disposition
    error: str | None
    decision: Decision | None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Worker:
    """Leases and handles notification jobs (see the module docstring)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        outbox: Outbox,
        router: ToolRouter,
        policy: Policy,
        models: ModelRouter | None = None,
        *,
        clock: Callable[[], datetime] = _utc_now,
        concurrency: int = 4,
        lease_for: float = 300.0,
        poll_interval: float = 1.0,
        events: WorkerEvents | None = None,
        options: HandlerOptions | None = None,
        deliveries: DeliveryStore | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        opts = options or HandlerOptions()
        if lease_for <= opts.call_timeout * 2:
            raise ValueError("lease_for must exceed twice the call timeout (a job outlives its calls)")
        self.outbox = outbox
        self.concurrency = concurrency
        self.lease_for = lease_for
        self.poll_interval = poll_interval
        self.events: WorkerEvents = events if events is not None else WorkerCounters()
        self.handler = JobHandler(
            incident_of=outbox.incident,
            router=router,
            policy=policy,
            deliveries=deliveries if deliveries is not None else DeliveryStore(pool),
            audit=AuditLog(pool),
            clock=clock,
            worker_id=outbox.owner,
            models=models,
            history=Incidents(pool, outbox.config),
            options=opts,
        )
        self._tasks: set[asyncio.Task[Handled | None]] = set()
        self._slots = asyncio.Semaphore(concurrency)
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New jobs may be due: lease now instead of at the end of the poll interval. The
        processor's claimer calls this when its claims create jobs, so a page does not wait for
        the poll; jobs made by other processors are found by polling."""
        self._wake.set()

    @property
    def worker_id(self) -> str:
        return self.outbox.owner

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Lease and handle jobs until ``stop`` is set or :meth:`shutdown` is called."""

        def stopped() -> bool:
            return self._stopping.is_set() or (stop is not None and stop.is_set())

        while not stopped():
            await self._slots.acquire()
            free = 1
            while free < self.concurrency and not self._slots.locked():
                await self._slots.acquire()
                free += 1
            if stopped():  # shutdown began while every slot was busy
                for _ in range(free):
                    self._slots.release()
                break
            try:
                jobs = await self.outbox.lease(free, self.lease_for)
            except DedupError as exc:
                log.warning("worker %s could not lease jobs: %s", self.worker_id, exc)
                jobs = []
            for _ in range(free - len(jobs)):
                self._slots.release()
            for job in jobs:
                self._spawn(job)
            if not jobs:
                await self._pause(stop)

    async def _pause(self, stop: asyncio.Event | None) -> None:
        waits = [asyncio.ensure_future(self._stopping.wait()), asyncio.ensure_future(self._wake.wait())]
        if stop is not None:
            waits.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waits, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            # cleared after the wait, never before it: a wake that came while leasing is not lost
            self._wake.clear()

    def _spawn(self, job: NotificationJob) -> asyncio.Task[Handled | None]:
        task = asyncio.create_task(self._process(job), name=f"notify-job-{job.id}")
        self._tasks.add(task)

        def done(t: asyncio.Task[Handled | None]) -> None:
            self._tasks.discard(t)
            self._slots.release()

        task.add_done_callback(done)
        return task

    async def drain(self, max_rounds: int = 1000) -> list[Handled]:
        """Handle every due job now (leasing in rounds of ``concurrency``) until none is due."""
        handled: list[Handled] = []
        for _ in range(max_rounds):
            jobs = await self.outbox.lease(self.concurrency, self.lease_for)
            if not jobs:
                break
            results = await asyncio.gather(*(self._process(job) for job in jobs))
            handled.extend(r for r in results if r is not None)
        return handled

    async def shutdown(self, grace: float = 10.0) -> None:
        """Stop leasing; wait up to ``grace`` seconds for in-flight jobs; cancel and release the rest."""
        self._stopping.set()
        pending = set(self._tasks)
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)

    async def _process(self, job: NotificationJob) -> Handled | None:
        started = time.perf_counter()
        try:
            result = await self.handler.handle(job)
        except asyncio.CancelledError:
            with contextlib.suppress(DedupError, asyncpg.PostgresError, OSError):
                await asyncio.shield(self.outbox.release(job))
            log.info("worker %s released job %s on shutdown", self.worker_id, job.id)
            raise
        except Exception as exc:  # a defect: retry with backoff; dead-lettered after max attempts
            log.exception("job %s failed unexpectedly", job.id)
            result = JobResult(Disposition.RETRY, error=f"unexpected {type(exc).__name__}: {exc}"[:2000])
        try:
            await self._apply(job, result)
        except LeaseLost:
            log.info("job %s: lease lost; the new owner's outcome stands", job.id)
            result = JobResult(Disposition.LOST, error="lease lost", decision=result.decision)
        except DedupError as exc:  # the outbox is unreachable: the lease expires and the job comes back
            log.warning("job %s: could not record its outcome: %s", job.id, exc)
        self._report(job, result, time.perf_counter() - started)
        return Handled(job.id, result.disposition, result.error, result.decision)

    async def _apply(self, job: NotificationJob, result: JobResult) -> None:
        outbox = self.outbox
        if result.disposition is Disposition.COMPLETE:
            await outbox.complete(job, dict(result.summary))
        elif result.disposition is Disposition.RETRY:
            await outbox.fail(job, True, result.error or "retryable failure")
        elif result.disposition is Disposition.DEAD:
            await outbox.fail(job, False, result.error or "permanent failure")
        elif result.disposition is Disposition.DEFER:
            assert result.defer_until is not None
            await outbox.defer(job, result.defer_until, result.error or "held")
        else:
            log.info("job %s: %s", job.id, result.error)

    def _report(self, job: NotificationJob, result: JobResult, seconds: float) -> None:
        events = self.events
        try:
            events.job_finished(job.kind.value, result.disposition.value, seconds)
            events.job_done(job.id, result.disposition.value)
            d = result.decision
            if d is None:
                return
            events.decision(d.path.value, d.input_tokens, d.output_tokens, d.cost_usd)
            for reason in d.fallbacks:
                events.fallback(reason)
            for call in d.tool_calls:
                if call.get("action") and call.get("channel"):
                    events.delivery(str(call["channel"]), str(call.get("status")))
        except Exception:  # a metrics callback must never break the worker
            log.exception("worker events callback failed")
