"""The service's metrics, by name, and the hooks the stages call to update them.

Counters from the detector's own totals (lines, rejections by reason, late events) are read at
scrape time; incident and job gauges are refreshed from PostgreSQL by :meth:`refresh_from_db`
(every processor sees the same shared state); everything else is counted where it happens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from decimal import Decimal

import asyncpg

from detector.counters import DetectorStats
from detector.models import AnomalyEvent, IncidentStatus, JobStatus
from logwarden.metrics import LabelValues, Registry

log = logging.getLogger(__name__)

INCIDENTS_BY_STATUS = "SELECT status, count(*) AS n FROM incidents GROUP BY status"
JOBS_BY_STATUS = "SELECT status, count(*) AS n FROM notification_jobs GROUP BY status"

StatsSource = Callable[[], DetectorStats | None]
_MAX_AWAITING = 10_000


class Telemetry:
    """All metrics of one processor."""

    def __init__(self, stats: StatsSource | None = None, clock: Callable[[], float] = time.time) -> None:
        self.registry = r = Registry()
        self._clock = clock
        self._awaiting: dict[int, float] = {}
        """Job id → when its anomaly was emitted, for jobs this processor's claims created."""
        self._stats: StatsSource = stats if stats is not None else (lambda: None)
        r.counter(
            "logwarden_log_records_received_total", "JSON lines and OTLP log records received."
        ).collector = self._collect(lambda s: [((), float(s.lines_received + s.otlp_records))])
        r.counter(
            "logwarden_log_records_accepted_total", "Log records counted into a bucket."
        ).collector = self._collect(lambda s: [((), float(s.events_accepted))])
        r.counter(
            "logwarden_log_records_rejected_total", "Log records rejected, by reason.", ["reason"]
        ).collector = self._collect(lambda s: [((k,), float(v)) for k, v in s.rejected.items()])
        r.counter(
            "logwarden_late_events_total", "Events whose bucket had already closed."
        ).collector = self._collect(lambda s: [((), float(s.late_events))])
        r.gauge(
            "logwarden_detector_keys", "Live (project, service) keys in the detector."
        ).collector = self._collect(lambda s: [((), float(s.keys))])
        self.shed_total = r.counter(
            "logwarden_ingest_shed_total", "Ingest requests refused to protect memory, by reason.", ["reason"]
        )
        self.http_rejected = r.counter(
            "logwarden_http_requests_rejected_total",
            "HTTP requests answered 4xx/5xx.",
            ["endpoint", "status"],
        )
        self.anomalies = r.counter(
            "logwarden_anomalies_total", "Anomaly events emitted.", ["signal", "kind", "severity"]
        )
        self.claims = r.counter("logwarden_claims_total", "Claims by reason.", ["reason"])
        self.claim_retries = r.counter(
            "logwarden_claim_retries_total", "Claim batches retried (DB unavailable)."
        )
        self.invalid = r.counter("logwarden_invalid_anomalies_total", "Anomalies refused by the claim layer.")
        self.incidents = r.gauge("logwarden_incidents", "Incidents by status (shared database).", ["status"])
        self.jobs = r.gauge(
            "logwarden_notification_jobs", "Outbox jobs by status (shared database).", ["status"]
        )
        self.deliveries = r.counter(
            "logwarden_deliveries_total",
            "Tool-router actions by channel and outcome.",
            ["channel", "outcome"],
        )
        self.jobs_finished = r.counter(
            "logwarden_jobs_finished_total", "Outbox jobs this processor handled.", ["kind", "outcome"]
        )
        self.tokens = r.counter("logwarden_agent_tokens_total", "Model tokens used.", ["direction"])
        self.cost = r.counter("logwarden_agent_cost_usd_total", "Model cost in US dollars.")
        self.decisions = r.counter("logwarden_decisions_total", "Notification decisions by path.", ["path"])
        self.fallbacks = r.counter(
            "logwarden_agent_fallbacks_total",
            "Times a model path fell back (to another model or rules).",
            ["reason"],
        )
        self.detection_latency = r.histogram(
            "logwarden_ingest_to_anomaly_seconds",
            "Processor time at emission minus the event-time end of the anomalous window.",
        )
        self.claim_latency = r.histogram(
            "logwarden_anomaly_to_claim_seconds", "Anomaly emitted to claim committed."
        )
        self.job_latency = r.histogram(
            "logwarden_job_seconds", "Outbox job leased to handled (decide + deliver).", ["kind"]
        )
        self.delivery_latency = r.histogram(
            "logwarden_anomaly_to_delivery_seconds",
            "Anomaly emitted to its job completed, for jobs claimed and handled by this processor.",
        )
        self.snapshot_bytes = r.gauge("logwarden_detector_snapshot_bytes", "Size of the last saved snapshot.")

    def _collect(
        self, fn: Callable[[DetectorStats], Iterable[tuple[LabelValues, float]]]
    ) -> Callable[[], Iterable[tuple[LabelValues, float]]]:
        def collect() -> Iterable[tuple[LabelValues, float]]:
            stats = self._stats()
            return [] if stats is None else fn(stats)

        return collect

    def bind_stats(self, stats: StatsSource) -> None:
        self._stats = stats

    # -- hooks ------------------------------------------------------------------------------

    def shed(self, reason: str) -> None:
        self.shed_total.inc(reason)

    def http_refused(self, endpoint: str, status: int) -> None:
        self.http_rejected.inc(endpoint, str(status))

    def anomaly(self, event: AnomalyEvent, now: float) -> None:
        self.anomalies.inc(event.signal.value, event.kind.value, event.severity.label)
        self.detection_latency.observe(max(0.0, now - event.window_end))

    def claimed(
        self, event: AnomalyEvent, reason: str, emitted_at: float, now: float, job_id: int | None = None
    ) -> None:
        self.claims.inc(reason)
        self.claim_latency.observe(max(0.0, now - emitted_at))
        if job_id is not None:
            self._awaiting[job_id] = emitted_at
            if len(self._awaiting) > _MAX_AWAITING:  # jobs another processor delivered
                del self._awaiting[next(iter(self._awaiting))]

    def claim_retry(self) -> None:
        self.claim_retries.inc()

    def invalid_anomaly(self, _event: AnomalyEvent) -> None:
        self.invalid.inc()

    def snapshot_saved(self, size: int) -> None:
        self.snapshot_bytes.set(size)

    # -- agents.worker.WorkerEvents -----------------------------------------------------------

    def job_finished(self, kind: str, outcome: str, seconds: float) -> None:
        self.jobs_finished.inc(kind, outcome)
        self.job_latency.observe(seconds, kind)

    def job_done(self, job_id: int, outcome: str) -> None:
        if outcome in ("retry", "defer"):  # it will be handled again: keep waiting for it
            return
        emitted_at = self._awaiting.pop(job_id, None)
        if emitted_at is not None and outcome == "complete":
            self.delivery_latency.observe(max(0.0, self._clock() - emitted_at))

    def delivery(self, channel: str, outcome: str) -> None:
        self.deliveries.inc(channel, outcome)

    def decision(self, path: str, input_tokens: int, output_tokens: int, cost_usd: Decimal) -> None:
        self.decisions.inc(path)
        self.tokens.inc("input", by=input_tokens)
        self.tokens.inc("output", by=output_tokens)
        self.cost.inc(by=float(cost_usd))

    def fallback(self, reason: str) -> None:
        self.fallbacks.inc(reason)

    async def refresh_from_db(self, pool: asyncpg.Pool) -> None:
        """Incidents and jobs by status, from the shared database."""
        try:
            incidents = {r["status"]: r["n"] for r in await pool.fetch(INCIDENTS_BY_STATUS, timeout=5)}
            jobs = {r["status"]: r["n"] for r in await pool.fetch(JOBS_BY_STATUS, timeout=5)}
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.debug("metrics refresh skipped", extra={"error": str(exc)})
            return
        for status in IncidentStatus:
            self.incidents.set(float(incidents.get(status.value, 0)), status.value)
        for job_status in JobStatus:
            self.jobs.set(float(jobs.get(job_status.value, 0)), job_status.value)

    def render(self) -> str:
        return self.registry.render()
