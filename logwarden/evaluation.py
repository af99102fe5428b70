"""Score detector output against ground-truth labels: precision, recall, delay, false incidents.

Pure functions over values, no I/O.

1. ``group_incidents``: the detector's events, grouped per fingerprint into detected incidents
   (an onset opens one, escalations add alerts to it, a recovery closes it).
2. A detected incident *matches* a label of the same (project, service) when one of its alerts
   (the onset or an escalation; an alert's time is its window's end) falls inside the label's
   span widened by ``tolerance_s`` on both sides. The tolerance absorbs host clock skew before
   the start and detection lag after the end of short incidents.
3. A positive label is detected when something matches it; its delay is the earliest matching
   alert minus the label's start, in buckets, and never below 0 (a skewed host can put the first
   bad bucket a little before the true start). A detected incident that matches no positive label
   is false; if it matches a negative label (a new service warming up) it is also counted against
   that label's type.
4. Figures overall (positive labels) and per incident type, spikes split at 3x, and the quality
   targets of the detector issue (``check_targets``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from detector.models import AnomalyEvent, EventKind, Severity, Signal
from logwarden.labels import IncidentType, Label

DEFAULT_TOLERANCE_S = 10.0
SPIKE_SPLIT = 3.0
"""Spikes of at least this magnitude are the ones the recall target covers."""


@dataclass(frozen=True, slots=True)
class DetectedIncident:
    """Consecutive events of one fingerprint from an onset to its recovery."""

    project: str
    service: str
    signal: Signal
    fingerprint: str
    start: float
    """Window start of the opening event."""
    alerts: tuple[float, ...]
    """Window end of the opening event and of each escalation, in order."""
    end: float | None
    """Window end of the recovery; ``None`` when still open at the end of the input."""
    severity: Severity
    """The highest severity seen."""


def group_incidents(events: Iterable[AnomalyEvent]) -> list[DetectedIncident]:
    """Group events into incidents. Events are taken in window order (stable), so events from
    several sources may be concatenated. An escalation with nothing open opens an incident; a
    recovery with nothing open is ignored; an onset while open counts as another alert."""
    open_: dict[str, tuple[AnomalyEvent, list[float], Severity]] = {}
    done: list[DetectedIncident] = []

    def close(fp: str, end: float | None) -> None:
        first, alerts, severity = open_.pop(fp)
        done.append(
            DetectedIncident(
                first.project,
                first.service,
                first.signal,
                fp,
                first.window_start,
                tuple(alerts),
                end,
                severity,
            )
        )

    for event in sorted(events, key=lambda e: e.window_end):
        fp = event.fingerprint
        if event.kind is EventKind.RECOVERY:
            if fp in open_:
                close(fp, event.window_end)
        elif fp in open_:
            first, alerts, severity = open_[fp]
            alerts.append(event.window_end)
            open_[fp] = (first, alerts, max(severity, event.severity))
        else:
            open_[fp] = (event, [event.window_end], event.severity)
    for fp in list(open_):
        close(fp, None)
    return sorted(done, key=lambda d: (d.start, d.project, d.service, d.signal.value))


def first_matching_alert(label: Label, incident: DetectedIncident, tolerance_s: float) -> float | None:
    """The earliest alert of ``incident`` inside ``label``'s widened span, if any."""
    if (incident.project, incident.service) != (label.project, label.service):
        return None
    lo, hi = label.start - tolerance_s, label.end + tolerance_s
    return next((t for t in incident.alerts if lo <= t <= hi), None)


@dataclass(frozen=True, slots=True)
class LabelOutcome:
    label: Label
    delay_buckets: float | None
    """``None``: not detected (for a negative label: nothing fired, as expected)."""
    matched_incidents: int
    signal_matched: bool
    """Some matching incident carried the label's expected signal."""

    @property
    def detected(self) -> bool:
        return self.delay_buckets is not None


@dataclass(frozen=True, slots=True)
class Score:
    """Figures for one group of labels."""

    labels: int = 0
    detected: int = 0
    delays: tuple[float, ...] = ()
    """Delay in buckets of each detected label, ascending."""
    false_incidents: int = 0
    """Detections that matched only negative labels of this group."""

    @property
    def recall(self) -> float | None:
        return self.detected / self.labels if self.labels else None

    @property
    def median_delay(self) -> float | None:
        return float(statistics.median(self.delays)) if self.delays else None

    @property
    def p90_delay(self) -> float | None:
        """Nearest-rank 90th percentile."""
        return self.delays[math.ceil(0.9 * len(self.delays)) - 1] if self.delays else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "detected": self.detected,
            "recall": self.recall,
            "median_delay_buckets": self.median_delay,
            "p90_delay_buckets": self.p90_delay,
            "false_incidents": self.false_incidents,
        }


def score(outcomes: Iterable[LabelOutcome], false_by_label: Mapping[str, int] | None = None) -> Score:
    """Aggregate label outcomes: positive labels count towards recall and delay; negative labels
    contribute the false incidents ``false_by_label`` attributes to them (by incident id)."""
    labels = detected = false = 0
    delays: list[float] = []
    for outcome in outcomes:
        if not outcome.label.positive:
            false += (false_by_label or {}).get(outcome.label.incident_id, 0)
            continue
        labels += 1
        if outcome.delay_buckets is not None:
            detected += 1
            delays.append(outcome.delay_buckets)
    return Score(labels, detected, tuple(sorted(delays)), false)


@dataclass(frozen=True, slots=True)
class Evaluation:
    overall: Score
    per_type: Mapping[IncidentType, Score]
    """Every incident type that has labels."""
    spikes_3x_up: Score
    spikes_below_3x: Score
    detected_incidents: int
    false_incidents: tuple[DetectedIncident, ...]
    service_days: float
    outcomes: tuple[LabelOutcome, ...] = field(repr=False)
    signal_mismatches: int = 0
    """Detected positive labels where no matching incident had the expected signal."""

    @property
    def precision(self) -> float | None:
        if not self.detected_incidents:
            return None
        return (self.detected_incidents - len(self.false_incidents)) / self.detected_incidents

    @property
    def false_per_service_day(self) -> float:
        return len(self.false_incidents) / self.service_days

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.to_dict(),
            "precision": self.precision,
            "detected_incidents": self.detected_incidents,
            "false_incidents": len(self.false_incidents),
            "false_per_service_day": self.false_per_service_day,
            "service_days": self.service_days,
            "signal_mismatches": self.signal_mismatches,
            "per_type": {kind.value: s.to_dict() for kind, s in self.per_type.items()},
            "spikes_3x_up": self.spikes_3x_up.to_dict(),
            "spikes_below_3x": self.spikes_below_3x.to_dict(),
            "missed": [o.label.incident_id for o in self.outcomes if o.label.positive and not o.detected],
        }


def evaluate(
    labels: Sequence[Label],
    incidents: Sequence[DetectedIncident],
    *,
    service_days: float,
    bucket_s: float = 1.0,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> Evaluation:
    """Match ``incidents`` (see ``group_incidents``) to ``labels`` and compute every figure.
    ``service_days``: service time observed (false incidents are per service-day of it)."""
    if service_days <= 0 or bucket_s <= 0 or tolerance_s < 0:
        raise ValueError("service_days and bucket_s must be > 0 and tolerance_s >= 0")
    by_key: dict[tuple[str, str], list[int]] = {}
    for i, incident in enumerate(incidents):
        by_key.setdefault((incident.project, incident.service), []).append(i)
    true_incidents: set[int] = set()
    negative_hits: dict[int, str] = {}
    outcomes: list[LabelOutcome] = []
    mismatches = 0
    for label in labels:
        first: float | None = None
        matched = 0
        signal_ok = False
        for i in by_key.get((label.project, label.service), []):
            alert = first_matching_alert(label, incidents[i], tolerance_s)
            if alert is None:
                continue
            matched += 1
            signal_ok = signal_ok or incidents[i].signal == label.signal
            first = alert if first is None else min(first, alert)
            if label.positive:
                true_incidents.add(i)
            else:
                negative_hits.setdefault(i, label.incident_id)
        delay = None if first is None else max(0.0, (first - label.start) / bucket_s)
        if label.positive and delay is not None and not signal_ok:
            mismatches += 1
        outcomes.append(LabelOutcome(label, delay, matched, signal_ok))
    false = [i for i in range(len(incidents)) if i not in true_incidents]
    false_by_label: dict[str, int] = {}
    for i in false:
        if i in negative_hits:
            false_by_label[negative_hits[i]] = false_by_label.get(negative_hits[i], 0) + 1
    kinds = sorted({o.label.type for o in outcomes}, key=list(IncidentType).index)
    spikes = [o for o in outcomes if o.label.type is IncidentType.SPIKE]
    return Evaluation(
        overall=score(outcomes, false_by_label),
        per_type={k: score((o for o in outcomes if o.label.type is k), false_by_label) for k in kinds},
        spikes_3x_up=score(o for o in spikes if o.label.magnitude >= SPIKE_SPLIT),
        spikes_below_3x=score(o for o in spikes if o.label.magnitude < SPIKE_SPLIT),
        detected_incidents=len(incidents),
        false_incidents=tuple(incidents[i] for i in false),
        service_days=service_days,
        outcomes=tuple(outcomes),
        signal_mismatches=mismatches,
    )


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    value: float | None
    threshold: float
    higher_is_better: bool

    @property
    def passed(self) -> bool:
        """``False`` when there is nothing to measure (no labels of that kind)."""
        if self.value is None:
            return False
        return self.value >= self.threshold if self.higher_is_better else self.value <= self.threshold


def check_targets(ev: Evaluation) -> list[Target]:
    """The detector issue's quality targets on the generator's default mix."""
    return [
        Target("recall on spikes >= 3x", ev.spikes_3x_up.recall, 0.95, higher_is_better=True),
        Target("false incidents per service-day", ev.false_per_service_day, 1.0, higher_is_better=False),
        Target("median detection delay (buckets)", ev.overall.median_delay, 3.0, higher_is_better=False),
    ]
