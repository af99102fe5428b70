"""Evaluation metrics on hand-built events and labels."""

from __future__ import annotations

import pytest

from detector.models import AnomalyEvent, EventKind, Severity, Signal, fingerprint
from logwarden.evaluation import (
    DetectedIncident,
    Evaluation,
    check_targets,
    evaluate,
    first_matching_alert,
    group_incidents,
)
from logwarden.evaluation_report import format_evaluation, format_targets
from logwarden.labels import IncidentType, Label

T0 = 1_714_550_400.0
ER, VC = Signal.ERROR_RATE, Signal.VOLUME_COLLAPSE


def event(
    kind: EventKind,
    service: str,
    start: float,
    *,
    signal: Signal = ER,
    severity: Severity = Severity.WARNING,
    project: str = "default",
    bucket: float = 1.0,
) -> AnomalyEvent:
    return AnomalyEvent(
        kind=kind,
        project=project,
        service=service,
        signal=signal,
        severity=severity,
        fingerprint=fingerprint(project, service, signal),
        window_start=T0 + start,
        window_end=T0 + start + bucket,
        error_count=10,
        total_count=100,
        observed_rate=0.1,
        baseline_mean=0.01,
        baseline_std=0.01,
        z=9.0,
        ewma=0.05,
        rate_of_change=4.0,
        score=0.99,
    )


def label(
    n: int,
    service: str,
    kind: IncidentType,
    start: float,
    end: float,
    *,
    magnitude: float = 10.0,
    signal: Signal | None = ER,
    project: str = "default",
) -> Label:
    return Label(f"inc-{n:04d}", project, service, kind, magnitude, T0 + start, T0 + end, signal, 1.0)


def incident(
    service: str, alerts: list[float], *, signal: Signal = ER, project: str = "default"
) -> DetectedIncident:
    return DetectedIncident(
        project,
        service,
        signal,
        fingerprint(project, service, signal),
        T0 + alerts[0] - 1,
        tuple(T0 + a for a in alerts),
        None,
        Severity.WARNING,
    )


ONSET, ESC, REC = EventKind.ONSET, EventKind.ESCALATION, EventKind.RECOVERY


def test_group_incidents_follows_each_fingerprint_from_onset_to_recovery() -> None:
    events = [
        event(ONSET, "a", 100),
        event(ONSET, "b", 101),
        event(ESC, "a", 103, severity=Severity.CRITICAL),
        event(REC, "a", 110),
        event(ONSET, "a", 200),  # a second incident on the same fingerprint
        event(ONSET, "a", 100, signal=VC),  # another signal: another fingerprint
    ]
    got = group_incidents(reversed(events))  # input order does not matter, window order does
    assert [(d.service, d.signal, d.start - T0, d.end) for d in got] == [
        ("a", ER, 100.0, T0 + 111),
        ("a", VC, 100.0, None),
        ("b", ER, 101.0, None),
        ("a", ER, 200.0, None),
    ]
    assert got[0].alerts == (T0 + 101, T0 + 104)
    assert got[0].severity is Severity.CRITICAL
    assert got[1].severity is Severity.WARNING


def test_group_incidents_tolerates_odd_sequences() -> None:
    got = group_incidents(
        [
            event(REC, "a", 50),  # recovery with nothing open: ignored
            event(ESC, "a", 60),  # escalation with nothing open: opens
            event(ONSET, "a", 61),  # onset while open: one more alert
            event(REC, "a", 70),
        ]
    )
    assert len(got) == 1
    assert got[0].alerts == (T0 + 61, T0 + 62)
    assert got[0].end == T0 + 71


@pytest.mark.parametrize(
    ("alerts", "expected"),
    [
        ([990.0], 990.0),  # exactly start - tolerance
        ([989.9], None),  # just before the widened span
        ([989.9, 1005.0], 1005.0),  # the first alert inside counts
        ([1070.0], 1070.0),  # exactly end + tolerance
        ([1070.1], None),
    ],
)
def test_first_matching_alert_uses_the_widened_span(alerts: list[float], expected: float | None) -> None:
    lab = label(1, "a", IncidentType.SPIKE, 1000, 1060)
    got = first_matching_alert(lab, incident("a", alerts), tolerance_s=10.0)
    assert got == (None if expected is None else T0 + expected)


def test_first_matching_alert_needs_the_same_project_and_service() -> None:
    lab = label(1, "a", IncidentType.SPIKE, 1000, 1060)
    assert first_matching_alert(lab, incident("b", [1001]), 10.0) is None
    assert first_matching_alert(lab, incident("a", [1001], project="shop"), 10.0) is None


def _table() -> Evaluation:
    labels = [
        label(1, "a", IncidentType.SPIKE, 1000, 1060, magnitude=10),
        label(2, "b", IncidentType.SPIKE, 2000, 2030, magnitude=2.5),
        label(3, "c", IncidentType.OUTAGE, 3000, 3120, magnitude=0, signal=VC),
        label(4, "d", IncidentType.NEW_SERVICE, 4000, 4600, signal=None),
        label(5, "e", IncidentType.BURST, 5000, 5020, magnitude=20),
        label(6, "f", IncidentType.SPIKE, 6000, 6030, magnitude=4),
        label(7, "g", IncidentType.SPIKE, 7000, 7030, magnitude=3),
    ]
    incidents = [
        incident("a", [1003]),  # delay 3
        incident("a", [1500]),  # long after the spike: false
        incident("c", [3001], signal=VC),  # delay 1
        incident("d", [4100]),  # a new service alerting while warming up: false
        incident("e", [4997]),  # skew: 3 s before the start, delay clamped to 0
        incident("f", [6002], signal=VC),  # detected, but with the wrong signal
        incident("g", [7001]),
        incident("g", [7010]),  # a second incident inside the same label: not false
        incident("z", [100]),  # nothing happened to z: false
    ]
    return evaluate(labels, incidents, service_days=2.0)


def test_evaluate_counts_recall_precision_delay_and_false_incidents() -> None:
    ev = _table()
    assert (ev.overall.labels, ev.overall.detected) == (6, 5)
    assert ev.overall.recall == pytest.approx(5 / 6)
    assert ev.overall.delays == (0.0, 1.0, 1.0, 2.0, 3.0)
    assert ev.overall.median_delay == 1.0
    assert ev.overall.p90_delay == 3.0
    assert ev.detected_incidents == 9
    assert sorted(d.service for d in ev.false_incidents) == ["a", "d", "z"]
    assert ev.precision == pytest.approx(6 / 9)
    assert ev.false_per_service_day == pytest.approx(1.5)
    assert ev.signal_mismatches == 1
    assert [o.label.incident_id for o in ev.outcomes if o.label.positive and not o.detected] == ["inc-0002"]


def test_evaluate_per_type_and_spike_split() -> None:
    ev = _table()
    spike = ev.per_type[IncidentType.SPIKE]
    assert (spike.labels, spike.detected, spike.delays) == (4, 3, (1.0, 2.0, 3.0))
    assert ev.per_type[IncidentType.OUTAGE].delays == (1.0,)
    assert ev.per_type[IncidentType.BURST].delays == (0.0,)
    new = ev.per_type[IncidentType.NEW_SERVICE]
    assert (new.labels, new.recall, new.false_incidents) == (0, None, 1)
    assert ev.overall.false_incidents == 1  # only the one attributed to a negative label
    assert (ev.spikes_3x_up.labels, ev.spikes_3x_up.detected) == (3, 3)
    assert (ev.spikes_below_3x.labels, ev.spikes_below_3x.detected) == (1, 0)
    assert set(ev.per_type) == {
        IncidentType.SPIKE,
        IncidentType.OUTAGE,
        IncidentType.NEW_SERVICE,
        IncidentType.BURST,
    }


def test_delay_is_in_buckets() -> None:
    labels = [label(1, "a", IncidentType.SPIKE, 1000, 1060)]
    ev = evaluate(labels, [incident("a", [1010])], service_days=1.0, bucket_s=5.0)
    assert ev.overall.delays == (2.0,)


def test_nothing_detected_and_nothing_labelled() -> None:
    ev = evaluate([], [], service_days=1.0)
    assert ev.precision is None
    assert ev.overall.recall is None
    assert ev.overall.median_delay is None
    assert ev.false_per_service_day == 0.0
    assert [t.passed for t in check_targets(ev)] == [False, True, False]


def test_targets_pass_and_fail() -> None:
    ev = _table()
    targets = {t.name: t for t in check_targets(ev)}
    assert targets["recall on spikes >= 3x"].value == 1.0
    assert targets["recall on spikes >= 3x"].passed
    assert targets["false incidents per service-day"].value == pytest.approx(1.5)
    assert not targets["false incidents per service-day"].passed
    assert targets["median detection delay (buckets)"].passed
    text = format_targets(check_targets(ev))
    assert "FAIL  false incidents per service-day: 1.500 (target <= 1)" in text
    assert "PASS  recall on spikes >= 3x: 1.000 (target >= 0.95)" in text


def test_report_and_json_shape() -> None:
    ev = _table()
    text = format_evaluation(ev)
    assert "spike >= 3x" in text
    assert "missed: inc-0002 spike x2.5" in text
    data = ev.to_dict()
    assert data["per_type"]["spike"]["recall"] == pytest.approx(0.75)
    assert data["missed"] == ["inc-0002"]
    assert data["false_incidents"] == 3


@pytest.mark.parametrize(
    "kwargs",
    [{"service_days": 0.0}, {"service_days": 1.0, "bucket_s": 0.0}, {"service_days": 1.0, "tolerance_s": -1}],
)
def test_evaluate_rejects_nonsense_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        evaluate([], [], **kwargs)
