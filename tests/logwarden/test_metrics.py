import math

import pytest

from logwarden.metrics import Registry


def test_counter_gauge_histogram_render_in_prometheus_text_format() -> None:
    reg = Registry()
    lines = reg.counter("lw_lines_total", "Lines ingested.", ["source"])
    rejected = reg.counter("lw_rejected_total", "Lines rejected.", ["reason"])
    jobs = reg.gauge("lw_jobs", "Jobs by status.", ["status"])
    lat = reg.histogram("lw_latency_seconds", "Latency.", buckets=[0.1, 1.0])
    lines.inc("http", by=3)
    lines.inc("stdin")
    rejected.inc('bad "quote"\nnewline')
    jobs.set(2, "pending")
    lat.observe(0.05)
    lat.observe(0.5)
    lat.observe(5.0)
    lat.observe(math.nan)  # ignored, never poisons the sum
    text = reg.render()
    assert 'lw_lines_total{source="http"} 3\n' in text
    assert 'lw_lines_total{source="stdin"} 1\n' in text
    assert 'lw_rejected_total{reason="bad \\"quote\\"\\nnewline"} 1\n' in text
    assert 'lw_jobs{status="pending"} 2\n' in text
    assert 'lw_latency_seconds_bucket{le="0.1"} 1\n' in text
    assert 'lw_latency_seconds_bucket{le="1"} 2\n' in text
    assert 'lw_latency_seconds_bucket{le="+Inf"} 3\n' in text
    assert "lw_latency_seconds_sum 5.55\n" in text
    assert "lw_latency_seconds_count 3\n" in text
    assert "# TYPE lw_latency_seconds histogram" in text
    assert lat.quantile(0.5) == 1.0


def test_wrong_labels_and_negative_increments_are_refused() -> None:
    reg = Registry()
    c = reg.counter("c_total", "c", ["a"])
    with pytest.raises(ValueError, match="takes labels"):
        c.inc()
    with pytest.raises(ValueError, match="only go up"):
        c.inc("x", by=-1)
    with pytest.raises(ValueError, match="registered twice"):
        reg.counter("c_total", "again")


def test_gauge_collector_is_read_at_render_time() -> None:
    reg = Registry()
    state = {"open": 1.0}
    g = reg.gauge("lw_incidents", "Incidents.", ["status"])
    g.collector = lambda: [((k,), v) for k, v in state.items()]
    assert 'lw_incidents{status="open"} 1' in reg.render()
    state["open"] = 4.0
    assert 'lw_incidents{status="open"} 4' in reg.render()


def test_anomaly_to_delivery_latency_is_timed_per_job_across_retries() -> None:
    from detector.models import AnomalyEvent, EventKind, Severity, Signal, fingerprint
    from logwarden.telemetry import Telemetry

    now = [100.0]
    t = Telemetry(clock=lambda: now[0])
    event = AnomalyEvent(
        EventKind.ONSET,
        "shop",
        "api",
        Signal.ERROR_RATE,
        Severity.CRITICAL,
        fingerprint("shop", "api", Signal.ERROR_RATE),
        0.0,
        1.0,
        9,
        10,
        0.9,
        0.01,
        0.01,
        12.0,
        0.5,
        8.0,
        1.0,
    )
    t.claimed(event, "new_incident", emitted_at=100.0, now=100.1, job_id=7)
    t.claimed(event, "duplicate_in_window", emitted_at=100.0, now=100.1, job_id=None)
    now[0] = 101.0
    t.job_done(7, "retry")  # not delivered yet: still timed from the anomaly
    assert t.delivery_latency.count() == 0
    now[0] = 102.5
    t.job_done(7, "complete")
    t.job_done(8, "complete")  # a job another processor claimed: not timed here
    assert t.delivery_latency.count() == 1
    assert t.delivery_latency.sums[()] == 2.5
    assert 'logwarden_claims_total{reason="new_incident"} 1' in t.render()
