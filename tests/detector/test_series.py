"""SeriesScorer: the detector's statistics on any numeric series, one point per bucket."""

from __future__ import annotations

import math
import random

import pytest

from detector import DetectorConfig, SeriesScorer
from detector.models import EventKind


def noisy(n: int, seed: int, mean: float = 50.0, sd: float = 2.0) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(mean, sd) for _ in range(n)]


def test_a_spike_is_flagged_and_the_points_after_it_are_not() -> None:
    values = noisy(1500, 1)
    for i in range(1200, 1205):
        values[i] += 30
    scorer = SeriesScorer()
    results = [scorer.update("m", i * 60.0, v) for i, v in enumerate(values)]
    flagged = [i for i, r in enumerate(results) if r.anomalous]
    assert flagged[:5] == list(range(1200, 1205))
    assert len(flagged) <= 8
    assert results[1200].kind is EventKind.ONSET
    assert results[1200].score > 0.5 > results[1100].score
    assert [r.kind for r in results if r.kind] == [EventKind.ONSET, EventKind.RECOVERY]


def test_steady_noise_is_rarely_flagged() -> None:
    scorer = SeriesScorer()
    flagged = sum(scorer.update("m", float(i), v).anomalous for i, v in enumerate(noisy(20000, 2)))
    assert flagged <= 3


def test_the_point_is_scored_before_it_joins_the_baseline() -> None:
    # with the point inside its own baseline a huge outlier would score z <= sqrt(n)
    scorer = SeriesScorer(DetectorConfig(baseline_seconds=60, baseline_slots=6, warmup_buckets=30))
    for i, v in enumerate(noisy(60, 3, sd=1.0)):
        scorer.update("m", float(i), v)
    result = scorer.update("m", 60.0, 1e6)
    assert result.z > 1e4
    assert result.baseline_mean == pytest.approx(50, abs=1)


def test_a_level_shift_is_absorbed() -> None:
    cfg = DetectorConfig(baseline_seconds=120, baseline_slots=12, warmup_buckets=30, relearn_seconds=60)
    values = noisy(300, 4) + noisy(400, 5, mean=80.0)
    scorer = SeriesScorer(cfg)
    results = [scorer.update("m", float(i), v) for i, v in enumerate(values)]
    assert [r.kind for r in results if r.kind] == [EventKind.ONSET, EventKind.RECOVERY]
    assert not any(r.anomalous for r in results[300 + 2 * cfg.baseline_buckets :])


def test_keys_are_independent_and_bad_values_change_nothing() -> None:
    scorer = SeriesScorer()
    a = [scorer.update("a", float(i), v) for i, v in enumerate(noisy(200, 6))]
    for bad in (math.nan, math.inf, -math.inf, 1e200):
        result = scorer.update("a", 200.0, bad)
        assert (result.score, result.anomalous) == (0.0, False)
    fresh = SeriesScorer()
    b = [fresh.update("a", float(i), v) for i, v in enumerate(noisy(200, 6))]
    assert a == b
    assert scorer.update("a", 201.0, 50.0) == fresh.update("a", 201.0, 50.0)
    assert scorer.update("b", 0.0, 1.0).score == 0.0
