"""One test per bug seen in the reference implementations the issue measured."""

from __future__ import annotations

import math

import numpy as np

from detector import Detector, DetectorConfig
from detector.models import EventKind, Severity, Signal
from detector.scoring import rate_of_change
from detector.state import DERIVED_COLUMNS, KeyState
from detector.step import close_bucket
from detector.vectorised import deviance_z
from tests.detector.streams import T0, Service, of, run, seconds


def test_rate_of_change_against_a_zero_previous_window_is_finite() -> None:
    # the reference divided by the previous window's error rate: 0 -> Infinity / NaN
    assert rate_of_change(0.5, 0.0, 0.001) == 500.0
    assert rate_of_change(0.0, 0.0, 0.001) == 0.0
    det = Detector()
    # a zero-error service that is silent every other second, then a burst of errors
    chunks = []
    for sec in range(300):
        if sec % 2 == 0:
            chunks.append(
                b"".join(b'{"ts":%d,"service":"quiet","level":"info"}\n' % (T0 + sec) for _ in range(20))
            )
    burst = b"".join(
        b'{"ts":%d,"service":"quiet","level":"error","message":"boom"}\n' % (T0 + 301) for _ in range(30)
    )
    events = run(det, [*chunks, burst]) + det.flush()
    onsets = [e for e in events if e.kind is EventKind.ONSET and e.signal is Signal.ERROR_RATE]
    assert len(onsets) == 1
    assert math.isfinite(onsets[0].rate_of_change)
    assert onsets[0].rate_of_change > 0
    assert all(math.isfinite(v) for e in events for v in (e.rate_of_change, e.z, e.score, e.ewma))


def test_a_level_shift_is_absorbed_within_the_baseline_length() -> None:
    # the reference baseline never forgot: after a permanent shift it alerted forever. A short
    # baseline keeps the test fast; the default one behaves the same at ten times the length.
    cfg = DetectorConfig(baseline_seconds=120, baseline_slots=12, warmup_buckets=30, relearn_seconds=60)
    shift = 200

    def shape(_service: str, sec: int) -> tuple[float, float]:
        return 1.0, (5.0 if sec >= shift else 1.0)

    det = Detector(cfg)
    events = run(det, seconds([Service("api", 50, 0.02)], 0, shift + 5 * cfg.baseline_seconds, shape, seed=3))
    onset = [e for e in events if e.kind is EventKind.ONSET]
    recovery = [e for e in events if e.kind is EventKind.RECOVERY]
    assert len(onset) == 1
    assert len(recovery) == 1
    assert onset[0].window_end - T0 <= shift + 5
    assert recovery[0].window_end - T0 < shift + cfg.baseline_seconds
    # the new level is now normal: nothing more for the remaining four baseline lengths
    assert events[-1] is recovery[0]


def test_the_window_is_scored_before_it_joins_the_baseline() -> None:
    # the reference added the window to the baseline first, which drags the mean toward it and
    # the z-score toward 0; here the event's baseline is exactly the data before the spike
    cfg = DetectorConfig(baseline_seconds=60, baseline_slots=6, warmup_buckets=30)
    det = Detector(cfg)
    chunks = []
    errors = total = 0
    for sec in range(60):
        n, e = 40, 1 if sec % 5 == 0 else 0
        errors, total = errors + e, total + n
        chunks.append(
            b"".join(
                b'{"ts":%d,"service":"a","level":"%s"}\n' % (T0 + sec, b"error" if i < e else b"info")
                for i in range(n)
            )
        )
    spike = b"".join(
        b'{"ts":%d,"service":"a","level":"%s"}\n' % (T0 + 60, b"error" if i < 30 else b"info")
        for i in range(40)
    )
    events = run(det, [*chunks, spike]) + det.flush()
    onset = next(e for e in events if e.kind is EventKind.ONSET)
    assert onset.window_end == T0 + 61
    assert onset.error_count == 30
    # the baseline that scored the spike: every earlier bucket, none of the spike
    assert onset.baseline_mean == (errors + 0.5) / (total + 1.0)
    assert onset.z > 5
    assert onset.severity is Severity.CRITICAL


def test_restore_recomputes_every_derived_statistic() -> None:
    # the reference restored the raw ring but kept derived sums at zero: a restarted processor
    # scored against an empty baseline. Here a restore mid-stream emits the same events, bit for bit
    # (see also test_snapshot.py for the process boundary).
    def shape(name: str, sec: int) -> tuple[float, float]:
        return (1.0, 8.0) if name == "api" and 700 <= sec < 760 else (1.0, 1.0)

    chunks = list(seconds([Service("api", 30, 0.04), Service("db", 10, 0.01)], 0, 800, shape, seed=5))
    whole = Detector()
    expected = run(whole, chunks) + whole.flush()
    assert any(e.kind is EventKind.ONSET for e in expected)
    first = Detector()
    got = run(first, chunks[:650])
    restored = Detector.restore(first.snapshot())
    for name in DERIVED_COLUMNS:
        used = first._keys.used
        assert np.array_equal(
            getattr(restored._state, name)[..., :used], getattr(first._state, name)[..., :used]
        ), name
    got += run(restored, chunks[650:]) + restored.flush()
    assert [e.to_dict() for e in got] == [e.to_dict() for e in expected]


def test_steady_noise_for_hours_does_not_flood() -> None:
    # the reference raised ~930 alerts a minute on steady noise. 500 services of very different
    # volume and error rate (zero-error and tiny ones included), an hour of Poisson noise each:
    # 500 service-hours through the detector's scoring step.
    rng = np.random.default_rng(11)
    cfg = DetectorConfig()
    keys = 500
    volume = np.concatenate([rng.uniform(0.2, 3, 170), rng.uniform(3, 80, 170), rng.uniform(80, 800, 160)])
    rate = np.concatenate([np.zeros(100), rng.uniform(0.0005, 0.08, keys - 100)])
    rng.shuffle(rate)
    st = KeyState(cfg, keys)
    verdicts = []
    for block in range(6):
        n_block = rng.poisson(volume, (600, keys)).astype(np.int64)
        e_block = rng.binomial(n_block, rate).astype(np.int64)
        for i in range(600):
            t = block * 600 + i
            if t:
                st.roll(t, keys)
            verdicts += close_bucket(st, t, np.stack([n_block[i], e_block[i]]), keys)
    onsets = [v for v in verdicts if v.kind is EventKind.ONSET]
    assert len(onsets) <= 3, onsets  # 20.8 service-days: far under one false incident per day


def test_a_clear_10x_spike_is_detected_within_three_buckets() -> None:
    # the reference missed a 10x error spike outright
    def shape(name: str, sec: int) -> tuple[float, float]:
        return (1.0, 10.0) if name == "api" and 600 <= sec < 630 else (1.0, 1.0)

    det = Detector()
    services = [Service("api", 50, 0.02), Service("web", 50, 0.02)]
    events = run(det, seconds(services, 0, 700, shape, seed=9)) + det.flush()
    onset = [e for e in of(events, "api") if e.kind is EventKind.ONSET]
    assert len(onset) == 1
    assert onset[0].signal is Signal.ERROR_RATE
    assert onset[0].window_end - (T0 + 600) <= 3
    assert of(events, "web") == []


def test_volume_collapse_thresholds_in_whole_numbers_pick_the_keys_the_ratio_does() -> None:
    """The close compares window volumes with whole-number thresholds derived from the completed
    slots: they pick exactly the warm, busy keys whose volume in some window is at most
    ``collapse_ratio`` of their baseline's (keys on the line included), and no other."""
    from detector.step import _score_collapse

    cfg = DetectorConfig()
    rng = np.random.default_rng(12)
    keys = 4000
    st = KeyState(cfg, keys)
    k = rng.integers(0, 400, keys)
    k[:300] = cfg.warmup_buckets  # just warm
    k[300:400] = cfg.warmup_buckets - 1  # not yet
    mean = rng.uniform(0, 60, keys)
    n = np.floor(mean * k)
    st.ring_n[0, :keys] = n  # one completed slot holds the whole baseline
    st.ring_k[0, :keys] = k
    st.rebuild(None, keys)
    kf, nf = k.astype(np.float64), n.astype(np.float64)
    volume = rng.poisson(mean * rng.choice([0.0, 0.05, 0.1, 0.5, 1.0], keys) * st.window_sizes).astype(
        np.int32
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = cfg.collapse_ratio * (nf / kf) * st.window_sizes
        volume[:, :200] = np.floor(ratio[:, :200])  # on the line
        volume[:, 300:400] = 0  # as low as it gets, but not warm
        low = (volume <= ratio).any(axis=0)
    st.wsum_n[:, :keys] = volume
    able = (k >= cfg.warmup_buckets) & (n >= k * cfg.collapse_min_volume)
    assert 0 < (able & low).sum() < able.sum()
    assert (low & ~able).sum() > 100  # low but not warm or not busy: never picked
    scored = _score_collapse(cfg, st, keys)
    assert scored.keys.tolist() == np.flatnonzero(able & low).tolist()
    z = -deviance_z(
        volume[:, scored.keys].astype(np.float64),
        nf[scored.keys] / kf[scored.keys] * st.window_sizes,
        st.phi_n[scored.keys],
    )
    assert np.array_equal(
        scored.z, np.where(volume[:, scored.keys] <= ratio[:, scored.keys], z, -np.inf).max(axis=0)
    )


def test_the_close_leaves_its_key_marks_clear() -> None:
    rng = np.random.default_rng(2)
    cfg = DetectorConfig()
    keys = 300
    st = KeyState(cfg, keys)
    volume = rng.uniform(5, 50, keys)
    marked = 0
    for t in range(400):
        if t:
            st.roll(t, keys)
        n = rng.poisson(volume)
        e = rng.binomial(n, 0.4 if t > 300 and t % 7 == 0 else 0.01)
        close_bucket(st, t, np.stack([n, e]), keys)
        marked += len(st.quarantined)
        assert not st.marks("suspicious").any()
        assert not st.marks("hot").any()
    assert marked > 0  # keys were marked suspicious along the way
