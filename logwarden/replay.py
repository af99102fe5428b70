"""Offline replay: a log file through detection and the dedup rules, with no database and no
notifications, so operators can see which incidents a file would have opened (and, with labels,
how good detection was).

The claims run through ``detector.dedup_rules`` — the same pure rules the PostgreSQL claim
statement implements — with each anomaly's window end (event time) standing in for the database
clock, so a replay of the same bytes always gives the same incidents.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from detector.config import DetectorConfig
from detector.core import Detector
from detector.counters import DetectorStats
from detector.dedup import DedupConfig
from detector.dedup_rules import ClaimReason, ClaimState, advance, decide, job_for
from detector.models import AnomalyEvent, JobKind, Severity, Signal


@dataclass(slots=True)
class ReplayIncident:
    id: int
    project: str
    service: str
    signal: Signal
    severity: Severity
    opened: float
    """Event time (window end) of the anomaly that opened it."""
    resolved: float | None = None
    occurrences: int = 1
    jobs: list[JobKind] = field(default_factory=list)
    messages: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReplayResult:
    events: tuple[AnomalyEvent, ...]
    incidents: tuple[ReplayIncident, ...]
    claims: Counter[str]
    stats: DetectorStats


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def replay(chunks: Iterable[bytes], detector: DetectorConfig, dedup: DedupConfig) -> ReplayResult:
    """Detect over ``chunks`` (JSON lines in any cut), then claim every anomaly in order."""
    det = Detector(detector)
    events: list[AnomalyEvent] = []
    for chunk in chunks:
        events += det.feed(chunk)
    events += det.flush()

    window = timedelta(seconds=dedup.window)
    repeat = timedelta(seconds=dedup.repeat_interval)
    states: dict[str, ClaimState | None] = {}
    incidents: list[ReplayIncident] = []
    by_id: dict[int, ReplayIncident] = {}
    claims: Counter[str] = Counter()
    for event in events:
        now = _at(event.window_end)
        state = states.get(event.fingerprint)
        reason = decide(state, event.kind, event.severity, now, repeat)
        claims[reason.value] += 1
        job = job_for(reason, state, event.severity)
        next_id = len(incidents) + 1
        states[event.fingerprint] = advance(state, reason, event.severity, now, window, next_id)
        if reason is ClaimReason.NEW_INCIDENT:
            incident = ReplayIncident(
                next_id, event.project, event.service, event.signal, event.severity, event.window_end
            )
            incidents.append(incident)
            by_id[next_id] = incident
        elif not reason.writes or state is None:
            continue
        else:
            incident = by_id[state.incident_id]
            if reason is ClaimReason.RESOLVED:
                incident.resolved = event.window_end
            else:
                incident.occurrences += 1
                incident.resolved = None
                incident.severity = max(incident.severity, event.severity)
        if job is not None:
            incident.jobs.append(job)
        if event.messages:
            incident.messages = event.messages
    return ReplayResult(tuple(events), tuple(incidents), claims, det.stats())
