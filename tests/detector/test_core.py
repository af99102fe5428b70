"""Detector behaviour: event time, lateness, signals, hysteresis, messages, keys and memory."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detector import AnomalyEvent, Detector, DetectorConfig
from detector.models import EventKind, Severity, Signal, fingerprint
from tests.detector.streams import T0, Service, line, of, run, seconds

SMALL = DetectorConfig(baseline_seconds=120, baseline_slots=12, warmup_buckets=30, relearn_seconds=60)
"""A short baseline so that scenarios take seconds of event time, not hours."""


def burst(sec: int, service: str, errors: int, total: int, message: str = "boom") -> bytes:
    return b"".join(
        line(T0 + sec, service, "ERROR" if i < errors else "INFO", message) + b"\n" for i in range(total)
    )


def kinds(events: list[AnomalyEvent]) -> list[tuple[str, str, str]]:
    return [(e.kind.value, e.signal.value, e.severity.label) for e in events]


def test_late_events_are_counted_not_merged() -> None:
    det = Detector(DetectorConfig(allowed_lateness_seconds=5))
    det.feed(line(T0 + 100, "a") + b"\n" + line(T0 + 96, "a") + b"\n")  # 4 s late: accepted
    det.feed(line(T0 + 120, "a") + b"\n")  # the watermark moves to +115: buckets before it close
    det.feed(line(T0 + 110, "a") + b"\n" + line(T0 + 116, "a") + b"\n")
    stats = det.stats()
    assert stats.late_events == 1
    assert stats.events_accepted == 4
    assert stats.watermark == T0 + 115


def test_lines_behind_a_newer_line_in_the_same_chunk_are_judged_in_order() -> None:
    det = Detector(DetectorConfig(allowed_lateness_seconds=2))
    det.feed(line(T0 + 10, "a") + b"\n" + line(T0 + 20, "a") + b"\n" + line(T0 + 15, "a") + b"\n")
    assert det.stats().late_events == 1


def test_advance_closes_buckets_while_input_is_idle() -> None:
    det = Detector(SMALL)
    events = run(det, seconds([Service("busy", 40, 0.01)], 0, 200, seed=1))
    assert events == []
    silence: list[AnomalyEvent] = []
    for now in range(200, 215):  # the service's clock ticks; no more lines arrive
        silence += det.advance(T0 + now + 0.5)
    assert kinds(silence) == [("onset", "volume_collapse", "critical")]
    assert silence[0].observed_rate == 0.0
    assert silence[0].baseline_mean > 30


def test_events_far_ahead_of_the_clock_are_absurd() -> None:
    det = Detector(DetectorConfig(max_future_seconds=60))
    det.advance(T0)
    det.feed(line(T0 + 30, "a") + b"\n" + line(T0 + 4000, "a") + b"\n")
    stats = det.stats()
    assert stats.rejected == {"absurd_timestamp": 1}
    assert stats.events_accepted == 1
    assert stats.watermark is not None
    assert stats.watermark < T0 + 100


def test_volume_collapse_onset_and_recovery() -> None:
    def shape(_name: str, sec: int) -> tuple[float, float]:
        return (0.0, 1.0) if 150 <= sec < 180 else (1.0, 1.0)

    det = Detector(SMALL)
    events = run(det, seconds([Service("busy", 30, 0.0)], 0, 260, shape, seed=2)) + det.flush()
    assert kinds(events) == [
        ("onset", "volume_collapse", "critical"),
        ("recovery", "volume_collapse", "critical"),
    ]
    onset, recovery = events
    assert onset.window_end - T0 <= 152
    assert onset.fingerprint == fingerprint("default", "busy", Signal.VOLUME_COLLAPSE)
    assert recovery.window_end - T0 >= 180 + SMALL.recovery_buckets


def test_hysteresis_waits_for_a_run_of_normal_buckets() -> None:
    # errors come back every 5 s for a while: no recovery until 10 normal buckets in a row
    def shape(name: str, sec: int) -> tuple[float, float]:
        if 100 <= sec < 110 or (110 <= sec < 160 and sec % 5 == 0):
            return 1.0, -0.5
        return 1.0, 1.0

    det = Detector(
        DetectorConfig(baseline_seconds=120, baseline_slots=12, warmup_buckets=30, relearn_seconds=120)
    )
    events = run(det, seconds([Service("api", 40, 0.01)], 0, 240, shape, seed=4)) + det.flush()
    assert [e.kind for e in events] == [EventKind.ONSET, EventKind.RECOVERY]
    assert events[1].window_end - T0 >= 155 + SMALL.recovery_buckets


def test_escalation_when_severity_rises() -> None:
    def shape(_name: str, sec: int) -> tuple[float, float]:
        if 100 <= sec < 106:
            return 1.0, 3.0  # 6% errors: a warning
        if 106 <= sec < 130:
            return 1.0, -0.6  # most requests fail: critical
        return 1.0, 1.0

    det = Detector(SMALL)
    events = run(det, seconds([Service("api", 200, 0.02)], 0, 200, shape, seed=6)) + det.flush()
    assert kinds(events)[:2] == [("onset", "error_rate", "warning"), ("escalation", "error_rate", "critical")]
    assert events[-1].kind is EventKind.RECOVERY
    assert events[-1].severity is Severity.CRITICAL


def test_bursts_on_a_zero_error_service_are_caught() -> None:
    det = Detector(SMALL)
    chunks = list(seconds([Service("quiet", 5, 0.0)], 0, 100, seed=7))
    chunks += [burst(100, "quiet", 8, 10), burst(101, "quiet", 8, 10)]
    events = run(det, chunks) + det.flush()
    assert kinds(events)[:1] == [("onset", "error_rate", "critical")]
    assert events[0].window_end - T0 <= 102
    # one clump of errors on a quiet service may be noise (failures log several lines), two are not
    assert events[0].baseline_mean < 0.02


def test_a_single_stray_error_is_not_an_incident() -> None:
    det = Detector(SMALL)
    chunks = list(seconds([Service("quiet", 5, 0.0)], 0, 100, seed=8))
    chunks.append(burst(100, "quiet", 1, 5))
    assert run(det, chunks) + det.flush() == []


def test_warm_up_keeps_a_new_service_quiet() -> None:
    det = Detector(SMALL)
    # errors from the very first second: that is the service's normal
    chunks = [burst(sec, "new", 10, 20) for sec in range(SMALL.warmup_buckets + 40)]
    assert run(det, chunks) + det.flush() == []


def test_representative_messages_are_masked_and_ranked() -> None:
    det = Detector(
        DetectorConfig(
            baseline_seconds=120,
            baseline_slots=12,
            warmup_buckets=30,
            relearn_seconds=60,
            message_samples=100,
        )
    )
    chunks = list(seconds([Service("api", 40, 0.0)], 0, 100, seed=9))
    spike = b""
    for i in range(30):
        spike += line(T0 + 100, "api", "ERROR", f"timeout after {100 + i * 37}ms") + b"\n"
    for i in range(10):
        spike += (
            line(T0 + 100, "api", "ERROR", f"user 4f1c2a9b-8d7e-4c3b-9a1f-0e2d3c4b5a69 denied {i}") + b"\n"
        )
    spike += line(T0 + 100, "api", "ERROR", "disk 0xdeadbeef full") + b"\n"
    events = run(det, [*chunks, spike]) + det.flush()
    assert events[0].kind is EventKind.ONSET
    assert events[0].messages[:3] == ("timeout after <n>ms", "user <uuid> denied <n>", "disk <hex> full")


def test_message_samples_stay_bounded_and_representative() -> None:
    from detector.messages import MessageSamples

    samples = MessageSamples(per_bucket=20, buckets=2)
    messages = [f"a {i}" for i in range(900)] + [f"b {i}" for i in range(100)]
    samples.add(5, [7] * len(messages), messages)
    samples.close(5)
    kept = samples._closed[-1][7].kept
    assert len(kept) == 20
    assert 0 < sum(m.startswith("b") for m in kept) < 8  # about a tenth, and not just the first ones
    assert samples.recent(7) == ("a <n>", "b <n>")


def test_idle_keys_are_evicted_after_the_ttl() -> None:
    cfg = DetectorConfig(
        baseline_seconds=120, baseline_slots=12, warmup_buckets=30, relearn_seconds=60, idle_ttl_seconds=60
    )
    det = Detector(cfg)
    run(det, seconds([Service("a", 3, 0.0), Service("b", 3, 0.0)], 0, 30, seed=1))
    assert det.stats().keys == 2
    run(det, seconds([Service("a", 3, 0.0)], 30, 200, seed=2))
    stats = det.stats()
    assert stats.keys == 1
    assert stats.keys_evicted == 1
    # its id is reused, with a fresh state
    run(det, seconds([Service("c", 3, 0.0)], 200, 210, seed=3))
    assert det._keys.key_of("default", "c") == 1


def test_key_limit_rejects_new_keys_only() -> None:
    det = Detector(DetectorConfig(max_keys=2))
    det.feed(b"".join(line(T0, s) + b"\n" for s in ("a", "b", "c", "a", "d")))
    stats = det.stats()
    assert stats.keys == 2
    assert stats.events_accepted == 3
    assert stats.rejected == {"key_limit": 2}


def test_flush_does_not_judge_incomplete_buckets_for_collapse() -> None:
    det = Detector(SMALL)
    chunks = list(seconds([Service("busy", 30, 0.0)], 0, 200, seed=5))
    chunks.append(line(T0 + 203, "busy") + b"\n")  # a skewed host's line from the future
    assert run(det, chunks) + det.flush() == []


def test_a_long_silence_evicts_instead_of_stepping_through_it() -> None:
    det = Detector(DetectorConfig(idle_ttl_seconds=600))
    run(det, seconds([Service("a", 3, 0.0), Service("b", 3, 0.0)], 0, 50, seed=1))
    det.feed(line(T0 + 86400, "a") + b"\n")
    stats = det.stats()
    assert stats.keys_evicted == 1
    assert stats.keys == 1
    assert det._state.sum_k[det._keys.key_of("default", "a")] == 0
    assert stats.buckets_closed < 2000
    det.flush()
    assert det.stats().events_accepted == stats.events_accepted


def test_every_event_number_is_finite_and_the_score_is_in_range() -> None:
    def shape(name: str, sec: int) -> tuple[float, float]:
        if name == "api" and 100 <= sec < 130:
            return 1.0, -1.0
        if name == "db" and 150 <= sec < 170:
            return 0.0, 1.0
        return 1.0, 1.0

    det = Detector(SMALL)
    services = [Service("api", 30, 0.0), Service("db", 30, 0.01)]
    events = run(det, seconds(services, 0, 260, shape, seed=10)) + det.flush()
    assert {e.service for e in events} == {"api", "db"}
    for e in events:
        for name, value in e.to_dict().items():
            if isinstance(value, float):
                assert math.isfinite(value), name
        assert 0.0 <= e.score < 1.0
        assert e.window_start < e.window_end
        assert AnomalyEvent.from_dict(e.to_dict()) == e


def test_stats_report_memory_per_key() -> None:
    det = Detector()
    det.feed(b"".join(line(T0, f"s{i}") + b"\n" for i in range(100)))
    stats = det.stats()
    assert stats.keys == 100
    assert 500 < det._state.nbytes_per_key() < 2000
    assert stats.state_bytes == det._state.nbytes_per_key() * det._state.capacity


@pytest.mark.parametrize("service", ["svc", "ünïcode-ßervice"])
def test_projects_separate_keys_and_fingerprints(service: str) -> None:
    det = Detector(SMALL)
    chunks = []
    for sec in range(100):
        chunks.append(
            line(T0 + sec, service, project="p1") + b"\n" + line(T0 + sec, service, project="p2") + b"\n"
        )
    spike = b"".join(line(T0 + 100, service, "ERROR", project="p2") + b"\n" for _ in range(20))
    events = run(det, [*chunks, spike]) + det.flush()
    assert {(e.project, e.kind) for e in events} >= {("p2", EventKind.ONSET)}
    assert all(e.project == "p2" for e in events)
    assert events[0].fingerprint == fingerprint("p2", service, Signal.ERROR_RATE)


def test_of_helper_filters_by_service() -> None:
    assert of([], "x") == []
    assert np.isfinite(T0)
