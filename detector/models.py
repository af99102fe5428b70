"""Values that cross stage boundaries: anomaly events, incidents, notification jobs.

These are the contract between the detector, the dedup/outbox layer, the agents and the service.
Frozen, slotted dataclasses; conversion to and from JSON-safe dicts lives here, in one place.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any


class Severity(IntEnum):
    """Ordered: a higher value is more severe, so ``max()`` picks the worse one."""

    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int) -> Severity:
        if isinstance(value, int):
            return cls(value)
        return cls[value.upper()]


class Signal(StrEnum):
    """What kind of anomaly. Part of the fingerprint: one incident per (project, service, signal)."""

    ERROR_RATE = "error_rate"
    """Errors rose against the baseline (z-score / EWMA / rate of change; includes bursts on a
    zero-error baseline)."""
    VOLUME_COLLAPSE = "volume_collapse"
    """A busy service went (nearly) silent."""


class EventKind(StrEnum):
    ONSET = "onset"
    ESCALATION = "escalation"
    RECOVERY = "recovery"


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class JobKind(StrEnum):
    """Why a notification job exists (the outbox row's ``kind``)."""

    OPEN = "open"
    ESCALATE = "escalate"
    REPEAT = "repeat"
    RESOLVE = "resolve"


class JobStatus(StrEnum):
    PENDING = "pending"
    LEASED = "leased"
    DONE = "done"
    DEAD = "dead"
    """Dead-lettered after too many attempts or a permanent failure; kept, never deleted."""
    CANCELLED = "cancelled"
    """Never sent: a resolve held for the dedup window, superseded because the incident reopened."""


_SEP = "\x1f"  # ASCII unit separator: cannot appear in a sane project or service name


def fingerprint(project: str, service: str, signal: Signal | str) -> str:
    """Stable identity of an incident subject: sha256 over the sorted, labelled fields.

    Never includes time and never uses Python's ``hash()`` (salted per process), so every
    processor computes the same fingerprint for the same subject.
    """
    # the labelled fields in sorted label order (project < service < signal), written out: this
    # runs for every new subject a claim sees
    text = f"project={project}{_SEP}service={service}{_SEP}signal={signal!s}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class AnomalyEvent:
    """One detector verdict about one (project, service, signal) for one closed window.

    All numbers are finite. Times are event time in epoch seconds (never the processor clock).
    """

    kind: EventKind
    project: str
    service: str
    signal: Signal
    severity: Severity
    fingerprint: str
    window_start: float
    window_end: float
    error_count: int
    total_count: int
    observed_rate: float
    """Errors per event in the window (for volume collapse: events per second)."""
    baseline_mean: float
    baseline_std: float
    z: float
    ewma: float
    rate_of_change: float
    """Relative change against the previous window, with a floor on the base: finite always."""
    score: float
    """Anomaly score in [0, 1], higher is more anomalous."""
    messages: tuple[str, ...] = ()
    """Up to 5 representative error messages, most frequent first, digits and ids masked."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (enums as their string values)."""
        return {
            "kind": self.kind.value,
            "project": self.project,
            "service": self.service,
            "signal": self.signal.value,
            "severity": self.severity.label,
            "fingerprint": self.fingerprint,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "error_count": self.error_count,
            "total_count": self.total_count,
            "observed_rate": self.observed_rate,
            "baseline_mean": self.baseline_mean,
            "baseline_std": self.baseline_std,
            "z": self.z,
            "ewma": self.ewma,
            "rate_of_change": self.rate_of_change,
            "score": self.score,
            "messages": list(self.messages),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnomalyEvent:
        def num(key: str) -> float:
            value = float(data[key])
            if not math.isfinite(value):
                raise ValueError(f"{key} must be finite")
            return value

        return cls(
            kind=EventKind(data["kind"]),
            project=str(data["project"]),
            service=str(data["service"]),
            signal=Signal(data["signal"]),
            severity=Severity.parse(data["severity"]),
            fingerprint=str(data["fingerprint"]),
            window_start=num("window_start"),
            window_end=num("window_end"),
            error_count=int(data["error_count"]),
            total_count=int(data["total_count"]),
            observed_rate=num("observed_rate"),
            baseline_mean=num("baseline_mean"),
            baseline_std=num("baseline_std"),
            z=num("z"),
            ewma=num("ewma"),
            rate_of_change=num("rate_of_change"),
            score=num("score"),
            messages=tuple(str(m) for m in data.get("messages", ())),
        )


@dataclass(frozen=True, slots=True)
class Incident:
    """An incident row as the rest of the system sees it. Times come from the database clock."""

    id: int
    fingerprint: str
    project: str
    service: str
    signal: Signal
    status: IncidentStatus
    severity: Severity
    first_seen: datetime
    last_seen: datetime
    occurrences: int
    resolved_at: datetime | None
    latest: AnomalyEvent | None
    """The most recent anomaly attached (stats and representative messages)."""
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_by: str | None = None
    """``"detector"`` for a recovery, else the operator who resolved it."""


@dataclass(frozen=True, slots=True)
class NotificationJob:
    """An outbox row: one notification to decide and send for one incident."""

    id: int
    incident_id: int
    kind: JobKind
    status: JobStatus
    attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    lease_token: int = 0
    """Incremented by every lease: with ``lease_owner`` it fences complete/fail/release, so a
    worker whose expired lease was taken over cannot overwrite the new owner's outcome."""
    result: Mapping[str, Any] | None = None
    """What the worker reported on completion (JSON object)."""
    finished_at: datetime | None = None
