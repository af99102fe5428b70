"""Property tests: no input sequence makes the detector raise or emit a non-finite number."""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector import AnomalyEvent, Detector, DetectorConfig, SeriesScorer
from detector.state import KeyState
from detector.step import close_bucket
from tests.detector.streams import T0

SETTINGS = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
TINY = DetectorConfig(
    baseline_seconds=12,
    baseline_slots=3,
    warmup_buckets=2,
    windows=(1, 2, 4),
    relearn_seconds=6,
    recovery_buckets=2,
    idle_ttl_seconds=20,
    min_errors=1,
    min_volume=1,
    max_keys=5,
    max_line_bytes=300,
    allowed_lateness_seconds=2,
)
"""Everything small so that short random inputs reach every code path (alerts, relearning,
eviction, key limits, too-long lines)."""

scalar = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.booleans(),
    st.none(),
)
timestamps = st.one_of(
    st.integers(min_value=T0 - 5, max_value=T0 + 60),
    st.integers(min_value=(T0 - 5) * 1000, max_value=(T0 + 60) * 1000),
    st.floats(min_value=T0 - 5, max_value=T0 + 60),
    st.sampled_from(["2025-01-01T00:00:01Z", "2025-01-01T00:00:30.5+00:00", "2025-01-01 00:00:09", "x"]),
    scalar,
)
records = st.fixed_dictionaries(
    {},
    optional={
        "ts": timestamps,
        "service": st.one_of(st.sampled_from(["a", "b", "c", "d", "e", "f", "", "s" * 300]), scalar),
        "level": st.one_of(st.sampled_from(["ERROR", "info", "Fatal", "warn"]), scalar),
        "message": st.one_of(st.sampled_from(["timeout after 12ms", "x"]), scalar),
        "project": st.one_of(st.sampled_from(["p", "q", ""]), scalar),
        "status": st.one_of(st.sampled_from([200, 500, 503]), scalar),
    },
)
raw_line = st.one_of(
    records.map(lambda r: json.dumps(r).encode()),
    st.binary(max_size=40),
    st.sampled_from([b"", b"NaN", b'{"ts":NaN,"service":"a"}', b"\xff\xfe", b"{} {}", b"x" * 400]),
)


def _finite(events: list[AnomalyEvent]) -> None:
    for event in events:
        for name, value in event.to_dict().items():
            if isinstance(value, float):
                assert math.isfinite(value), (name, event)
        assert 0.0 <= event.score < 1.0


@SETTINGS
@given(
    lines=st.lists(raw_line, max_size=60), cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=6)
)
def test_any_bytes_in_any_chunking_never_raise(lines: list[bytes], cuts: list[int]) -> None:
    body = b"\n".join(lines)
    det = Detector(TINY)
    events: list[AnomalyEvent] = []
    start = 0
    for cut in sorted(cuts):
        events += det.feed(body[start:cut])
        start = max(start, cut)
    events += det.feed(body[start:])
    events += det.advance(T0 + 200)
    events += det.flush()
    _finite(events)
    stats = det.stats()
    assert stats.events_accepted + stats.late_events <= stats.lines_received


@SETTINGS
@given(
    counts=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 10**6), st.integers(0, 10**6)), min_size=1, max_size=80
    )
)
def test_any_count_sequence_scores_finite(counts: list[tuple[int, int, int]]) -> None:
    st_ = KeyState(TINY, 4)
    verdicts = []
    for t, (key, n, e) in enumerate(counts):
        if t:
            st_.roll(t, 4)
        counts = np.zeros((2, 4), np.int64)
        counts[:, key] = n, min(e, n)
        verdicts += close_bucket(st_, t, counts, 4)
    for v in verdicts:
        for value in (
            v.observed_rate,
            v.baseline_mean,
            v.baseline_std,
            v.z,
            v.ewma,
            v.rate_of_change,
            v.score,
        ):
            assert math.isfinite(value)


@SETTINGS
@given(
    bodies=st.lists(
        st.one_of(
            st.binary(max_size=60),
            st.recursive(
                scalar | st.just({"stringValue": "service.name"}),
                lambda inner: (
                    st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
                ),
                max_leaves=12,
            ).map(
                lambda doc: json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [doc]}]}]}).encode()
            ),
        ),
        max_size=5,
    ),
    content_type=st.sampled_from(["application/json", "application/x-protobuf", "text/plain"]),
)
def test_any_otlp_body_never_raises(bodies: list[bytes], content_type: str) -> None:
    det = Detector(TINY)
    events: list[AnomalyEvent] = []
    for body in bodies:
        events += det.feed_otlp(body, content_type)
    _finite(events + det.flush())


@SETTINGS
@given(values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=120))
def test_series_scorer_handles_any_float(values: list[float]) -> None:
    scorer = SeriesScorer(TINY)
    for i, value in enumerate(values):
        result = scorer.update("k", float(i), value)
        assert 0.0 <= result.score < 1.0
        for number in (
            result.z,
            result.baseline_mean,
            result.baseline_std,
            result.rate_of_change,
            result.ewma,
        ):
            assert math.isfinite(number)
