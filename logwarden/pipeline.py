"""The detection pipeline of one processor: ingest → detector → claims (incidents + outbox).

Stages, each bounded:

1. Ingest (HTTP bodies, stdin, files) feeds the detector on one dedicated thread, so the
   detector is never touched concurrently and big bodies never block the event loop. At most
   ``max_inflight_bodies`` bodies wait for it; the HTTP layer gets :class:`Overloaded` (503 with
   Retry-After) when it would wait longer than ``ingest_wait``; internal sources simply wait.
2. Anomaly events queue for claiming. When the backlog reaches ``max_backlog`` (PostgreSQL slow
   or down), ingestion is refused *before* the detector sees the data, so nothing the detector
   emitted is ever dropped and memory stays bounded: the backlog can exceed ``max_backlog`` by
   at most what one body produces.
3. The claimer sends the backlog to PostgreSQL in batches (``Dedup.claim_many``); a retryable
   failure keeps the batch and retries with capped backoff; an invalid anomaly is counted and
   dropped, the rest of its batch goes on.

A timer advances the detector with the processor clock so buckets close while input is idle,
and snapshots the detector state to ``detector_state`` (also at shutdown) so a restarted
processor resumes exactly where it stopped: with the snapshot go the anomaly events it emitted
that were not claimed yet (claimed again on restore, so a crash loses none) and the ongoing
anomalies (re-claimed periodically, so repeat pages continue across restarts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

import asyncpg

from detector import snapshot
from detector.core import Detector
from detector.counters import DetectorStats
from detector.dedup import ClaimResult, Dedup
from detector.dedup_errors import DedupUnavailable, InvalidAnomaly
from detector.dedup_rules import ClaimReason
from detector.models import AnomalyEvent, EventKind
from logwarden.api import IngestResult, MalformedBody, Overloaded
from logwarden.telemetry import Telemetry

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    processor_id: str
    max_backlog: int = 10_000
    """Anomaly events waiting to be claimed before ingestion is refused."""
    max_inflight_bodies: int = 8
    """Bodies waiting for the detector thread at once."""
    ingest_wait: float = 5.0
    """Seconds an HTTP body may wait for the detector before the request gets 503."""
    claim_batch: int = 500
    """Most anomalies sent in one claim statement."""
    tick_seconds: float = 0.5
    """How often the processor clock advances the detector (closing idle buckets)."""
    snapshot_seconds: float = 30.0
    """How often the detector state is saved (and always at shutdown)."""
    retry_cap: float = 5.0
    """Longest wait between claim retries while PostgreSQL is unavailable."""
    advance_with_clock: bool = True
    """Close buckets on the processor clock too (False: event time only, for old logs)."""
    reclaim_seconds: float = 60.0
    """How often anomalies that are still ongoing (onset seen, no recovery yet) are claimed again,
    so their incident's last-seen time stays current and the repeat interval can page again."""


class Pipeline:
    """Ingest, detection and claiming for one processor. Implements ``api.Ingestor``."""

    def __init__(
        self,
        detector: Detector,
        dedup: Dedup,
        pool: asyncpg.Pool,
        telemetry: Telemetry,
        config: PipelineConfig,
        clock: Clock = time.time,
    ) -> None:
        self.detector = detector
        self.dedup = dedup
        self.pool = pool
        self.telemetry = telemetry
        self.config = config
        self.clock = clock
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detector")
        self._slots = asyncio.Semaphore(config.max_inflight_bodies)
        self._backlog: deque[tuple[AnomalyEvent, float]] = deque()
        self._backlog_changed = asyncio.Event()
        self._claiming = asyncio.Lock()
        self._idle = asyncio.Event()
        self._idle.set()
        self._last_stats: DetectorStats | None = None
        self.listeners: list[Callable[[AnomalyEvent], None]] = []
        """Called with every anomaly event as it is emitted (the demo records them)."""
        self.job_listeners: list[Callable[[], None]] = []
        """Called after a claim batch that created outbox jobs (the local worker's wake)."""
        self._ongoing: dict[str, AnomalyEvent] = {}
        """The latest onset/escalation per fingerprint whose recovery has not been seen."""
        self._cut = asyncio.Lock()
        """Held from a detector call until its events are in the backlog, and while a snapshot is
        taken: a snapshot then always goes with exactly the events it has emitted."""

    def restore(self, unclaimed: list[AnomalyEvent], ongoing: list[AnomalyEvent]) -> None:
        """Take back the anomaly events saved with the detector's snapshot (see
        ``snapshot.Checkpoint``): the unclaimed ones are queued for claiming again (claims are
        idempotent: one claimed just before the crash comes back a duplicate), the ongoing ones
        are re-claimed like any other."""
        self._enqueue(unclaimed)
        for event in ongoing:
            self._ongoing[event.fingerprint] = event

    def _enqueue(self, events: Iterable[AnomalyEvent], now: float | None = None) -> None:
        """Queue events for the claimer, stamped ``now`` (default: the processor clock)."""
        now = self.clock() if now is None else now
        size = len(self._backlog)
        self._backlog.extend((event, now) for event in events)
        if len(self._backlog) > size:
            self._idle.clear()
            self._backlog_changed.set()

    # -- ingest -----------------------------------------------------------------------------

    async def _on_detector(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    def _check_backlog(self) -> None:
        if len(self._backlog) >= self.config.max_backlog:
            self.telemetry.shed("claim_backlog_full")
            raise Overloaded("anomaly backlog full (PostgreSQL slow or unavailable)", retry_after=2.0)

    async def _ingest(self, run: Callable[[Detector], list[AnomalyEvent]], *, wait: bool) -> IngestResult:
        if wait:
            while len(self._backlog) >= self.config.max_backlog:
                self._backlog_changed.clear()
                await self._backlog_changed.wait()
        else:
            self._check_backlog()
        try:
            async with asyncio.timeout(None if wait else self.config.ingest_wait):
                await self._slots.acquire()
        except TimeoutError:
            self.telemetry.shed("detector_busy")
            raise Overloaded("detector busy", retry_after=1.0) from None
        try:

            def work() -> tuple[list[AnomalyEvent], DetectorStats, DetectorStats]:
                before = self.detector.stats()
                events = run(self.detector)
                return events, before, self.detector.stats()

            async with self._cut:
                events, before, after = await self._on_detector(work)
                self._emitted(events)
        finally:
            self._slots.release()
        self._last_stats = after
        return _delta(before, after)

    async def ingest_lines(self, body: bytes, *, wait: bool = False) -> IngestResult:
        """Feed JSON lines (a partial last line waits for the next call)."""
        return await self._ingest(lambda d: d.feed(body), wait=wait)

    async def ingest_otlp(self, body: bytes, content_type: str) -> IngestResult:
        result = await self._ingest(lambda d: d.feed_otlp(body, content_type), wait=False)
        if result.accepted == 0 and result.rejected == 0 and body:
            raise MalformedBody("not an OTLP logs request: no log record could be read")
        return result

    def _emitted(self, events: list[AnomalyEvent]) -> None:
        now = self.clock()
        for event in events:
            self.telemetry.anomaly(event, now)
            for listener in self.listeners:
                listener(event)
            if event.kind is EventKind.RECOVERY:
                self._ongoing.pop(event.fingerprint, None)
            else:
                self._ongoing[event.fingerprint] = event
        self._enqueue(events, now)

    async def advance(self) -> None:
        """Close buckets that the processor clock says are complete."""
        now = self.clock()
        async with self._cut:
            events = await self._on_detector(lambda: self.detector.advance(now))
            self._emitted(events)

    def reclaim_ongoing(self) -> int:
        """Queue a fresh claim for every ongoing anomaly (as an onset of its current severity:
        the claim layer attaches it, or pages again once the repeat interval has passed)."""
        self._enqueue(replace(event, kind=EventKind.ONSET) for event in self._ongoing.values())
        return len(self._ongoing)

    async def flush(self) -> None:
        """End of input: close every open bucket."""
        async with self._cut:
            events = await self._on_detector(self.detector.flush)
            self._emitted(events)

    def stats(self) -> DetectorStats | None:
        """The detector's counters as of the last ingest (cheap; for metrics)."""
        return self._last_stats

    async def refresh_stats(self) -> DetectorStats:
        self._last_stats = await self._on_detector(self.detector.stats)
        return self._last_stats

    # -- claims -----------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    async def claim_pending(self) -> int:
        """Claim everything queued now (retrying while PostgreSQL is unavailable); returns how
        many anomalies were claimed."""
        async with self._claiming:  # the claimer loop and drain/shutdown may both call this
            return await self._claim_backlog()

    async def _claim_backlog(self) -> int:
        done = 0
        delay = 0.05
        while self._backlog:
            batch = [self._backlog[i] for i in range(min(len(self._backlog), self.config.claim_batch))]
            try:
                results = await self.dedup.claim_many([event for event, _ in batch])
            except InvalidAnomaly as exc:
                bad, _ = self._backlog[exc.index]
                del self._backlog[exc.index]
                self.telemetry.invalid_anomaly(bad)
                log.error(
                    "dropped an invalid anomaly", extra={"fingerprint": bad.fingerprint, "error": str(exc)}
                )
                continue
            except DedupUnavailable as exc:
                self.telemetry.claim_retry()
                log.warning(
                    "claims waiting for PostgreSQL", extra={"error": str(exc), "backlog": self.backlog}
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.retry_cap)
                continue
            delay = 0.05
            for (event, emitted_at), result in zip(batch, results, strict=True):
                self.telemetry.claimed(event, result.reason.value, emitted_at, self.clock(), result.job_id)
                if result.reason in _LOGGED_CLAIMS:
                    _log_claim(event, result)
            for _ in batch:
                self._backlog.popleft()
            done += len(batch)
            if any(result.job_id is not None for result in results):
                for wake in self.job_listeners:
                    wake()
            self._backlog_changed.set()
        self._idle.set()
        return done

    async def wait_claimed(self) -> None:
        """Until everything emitted so far has been claimed."""
        await self._idle.wait()

    # -- background loops -------------------------------------------------------------------

    async def run_claimer(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not self._backlog:
                self._backlog_changed.clear()
                waiter = asyncio.ensure_future(self._backlog_changed.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                continue
            await self.claim_pending()

    async def run_ticker(self, stop: asyncio.Event) -> None:
        next_snapshot = self.clock() + self.config.snapshot_seconds
        next_reclaim = self.clock() + self.config.reclaim_seconds
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.config.tick_seconds)
            if self.config.advance_with_clock:
                await self.advance()
            if self.clock() >= next_reclaim:
                next_reclaim = self.clock() + self.config.reclaim_seconds
                self.reclaim_ongoing()
            if self.clock() >= next_snapshot:
                next_snapshot = self.clock() + self.config.snapshot_seconds
                await self.save_snapshot()

    async def save_snapshot(self) -> None:
        """Save the detector's snapshot with the events it emitted that are not claimed yet (the
        batch being claimed included) and the ongoing anomalies, all taken at one moment."""
        try:
            async with self._cut:
                data = await self._on_detector(self.detector.snapshot)
                unclaimed = [event for event, _ in self._backlog]
                ongoing = list(self._ongoing.values())
            await snapshot.save_bytes(
                self.pool, self.config.processor_id, data, unclaimed=unclaimed, ongoing=ongoing
            )
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("detector snapshot not saved", extra={"error": str(exc)})
            return
        self.telemetry.snapshot_saved(len(data))

    def close(self) -> None:
        self._thread.shutdown(wait=True)


_LOGGED_CLAIMS = frozenset(
    {
        ClaimReason.NEW_INCIDENT,
        ClaimReason.ESCALATED,
        ClaimReason.REPEAT_DUE,
        ClaimReason.RESOLVED,
        ClaimReason.REOPENED,
    }
)
"""Claims that change an incident's status or page someone: operators see these in the log."""


def _log_claim(event: AnomalyEvent, result: ClaimResult) -> None:
    log.info(
        "incident %s: %s",
        result.incident_id,
        result.reason.value,
        extra={
            "incident_id": result.incident_id,
            "claim": result.reason.value,
            "project": event.project,
            "service": event.service,
            "signal": event.signal.value,
            "severity": event.severity.label,
            "job_id": result.job_id,
        },
    )


def _delta(before: DetectorStats, after: DetectorStats) -> IngestResult:
    accepted = after.events_accepted - before.events_accepted
    reasons: dict[str, int] = {}
    for reason, count in after.rejected.items():
        diff = count - before.rejected.get(reason, 0)
        if diff:
            reasons[reason] = diff
    late = after.late_events - before.late_events
    if late:
        reasons["late"] = late
    samples = _new_samples(before.rejected_samples, after.rejected_samples)
    return IngestResult(accepted=accepted, rejected=sum(reasons.values()), reasons=reasons, samples=samples)


def _new_samples(
    before: Mapping[str, tuple[str, ...]], after: Mapping[str, tuple[str, ...]]
) -> tuple[str, ...]:
    out: list[str] = []
    for reason, samples in after.items():
        old = set(before.get(reason, ()))
        out.extend(f"{reason}: {s}" for s in samples if s not in old)
    return tuple(out[:5])
