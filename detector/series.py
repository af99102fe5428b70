"""Score any numeric series with the detector's statistics, one point at a time.

``SeriesScorer(config).update(key, ts_seconds, value)`` returns a :class:`SeriesScore`. Each point
is one bucket, whatever the series' spacing (a per-minute metric has one-minute buckets), so
every bucket-count setting of :class:`DetectorConfig` applies in points: the rolling baseline of
``baseline_seconds / bucket_seconds`` points in ``baseline_slots`` steps, the scored windows, the
warm-up, EWMA, hysteresis and relearning.

Values are not counts, so the z of a window is the Gaussian one: the window mean against the
baseline mean, over the baseline standard deviation (floored at ``series_std_floor`` of the
mean's magnitude, the variance floor) scaled by the window length and by the baseline's
dispersion between slots (which captures autocorrelation). Deviations in both directions count.
Windows longer than one point count only while the newest point itself deviates the same way
by at least two standard deviations, so a spike that has passed does not keep flagging the points
after it. The score is the detector's: ``z² / (z² + z_threshold²)``.

Pure Python (no numpy): ``logwarden score`` starts in a fraction of a second. Snapshots:
:meth:`SeriesScorer.snapshot` / :meth:`SeriesScorer.restore`; derived statistics are recomputed
from the stored slots, so a restored scorer continues bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from detector.config import DetectorConfig
from detector.models import EventKind
from detector.scoring import ewma_step, rate_of_change, score

SERIES_FORMAT = 1
MAX_VALUE = 1e100
"""Larger magnitudes are ignored: their squares would overflow a double."""


@dataclass(frozen=True, slots=True)
class SeriesScore:
    """The verdict on one point."""

    score: float
    """In [0, 1): 0.5 exactly at the alert threshold."""
    anomalous: bool
    """This point (or a window ending at it) is beyond the threshold, after warm-up."""
    z: float
    """Signed z of the most anomalous window (positive: above the baseline)."""
    baseline_mean: float
    baseline_std: float
    ewma: float
    rate_of_change: float
    window: int
    """Length in points of the window that decided."""
    kind: EventKind | None = None
    """ONSET when an anomaly starts, RECOVERY when it ends (hysteresis), else None."""


def _merge(a: tuple[float, float, float], b: tuple[float, float, float]) -> tuple[float, float, float]:
    """Combine (count, mean, sum of squared deviations) of two groups (Chan et al.)."""
    ka, ma, qa = a
    kb, mb, qb = b
    k = ka + kb
    if k <= 0:
        return 0.0, 0.0, 0.0
    delta = mb - ma
    return k, ma + delta * kb / k, qa + qb + delta * delta * ka * kb / k


class _Key:
    """One series' raw state. Derived: ``done`` and ``phi`` (rebuilt from the slots)."""

    __slots__ = ("active", "cur", "done", "ewma", "phi", "points", "quarantine", "recent", "run", "slots")

    def __init__(self, slots: int) -> None:
        self.slots: list[tuple[float, float, float]] = [(0.0, 0.0, 0.0)] * slots
        """Per completed slot: admitted points, their mean, their sum of squared deviations."""
        self.cur: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.recent: list[float] = []
        """The last ``windows[-1]`` values, oldest first."""
        self.points = 0
        self.ewma = 0.0
        self.active = False
        self.run = 0
        self.quarantine = 0
        self.done: tuple[float, float, float] = (0.0, 0.0, 0.0)
        """All completed slots merged."""
        self.phi = 1.0


class SeriesScorer:
    """Streaming anomaly scores for any number of keyed numeric series."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self._keys: dict[str, _Key] = {}

    def update(self, key: str, ts_seconds: float, value: float) -> SeriesScore:
        """Score ``value`` (the point at ``ts_seconds``) against ``key``'s baseline, then let it
        join the baseline if it looked normal. Values that are not finite, or beyond
        ±:data:`MAX_VALUE` (where squares overflow), score 0 and change nothing."""
        cfg = self.config
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _Key(cfg.baseline_slots)
        if not (math.isfinite(value) and math.isfinite(ts_seconds) and abs(value) <= MAX_VALUE):
            return SeriesScore(0.0, False, 0.0, state.done[1], 0.0, state.ewma, 0.0, 1)
        value = float(value)
        slot_points = cfg.slot_buckets
        if state.points and state.points % slot_points == 0:
            self._roll(state)
        previous = state.recent[-1] if state.recent else value
        state.recent.append(value)
        if len(state.recent) > cfg.windows[-1]:
            del state.recent[0]
        state.ewma = value if state.points == 0 else ewma_step(state.ewma, value, cfg.ewma_alpha)
        state.points += 1

        k, mean, m2 = _merge(state.done, state.cur)
        var = m2 / k if k else 0.0
        std = math.sqrt(max(var, (cfg.series_std_floor * abs(mean)) ** 2, 1e-18))
        warm = k >= cfg.warmup_buckets
        best_z, best_w = 0.0, 1
        if warm:
            point_z = 0.0
            for w in cfg.windows:
                if w > len(state.recent):
                    break
                window_mean = math.fsum(state.recent[-w:]) / w
                scale = std * math.sqrt(min(max(state.phi, 1.0), w) / w)
                z = max(-1e6, min(1e6, (window_mean - mean) / scale))
                if w == 1:
                    point_z = z
                # a longer window counts only while this point itself leans the same way, so a
                # short spike that has passed does not keep flagging the points after it
                elif abs(point_z) < 2.0 or (z > 0) != (point_z > 0):
                    continue
                if abs(z) > abs(best_z):
                    best_z, best_w = z, w
        magnitude = abs(best_z)
        anomalous = warm and magnitude >= cfg.z_threshold
        suspicious = warm and magnitude >= cfg.z_clear
        kind: EventKind | None = None
        if anomalous:
            state.run = 0
            if not state.active:
                state.active, kind = True, EventKind.ONSET
        elif state.active:
            state.run = 0 if suspicious else state.run + 1
            if state.run >= cfg.recovery_buckets:
                state.active, state.run, kind = False, 0, EventKind.RECOVERY
        if suspicious:
            state.quarantine += 1
            if state.quarantine >= cfg.relearn_buckets:
                self._relearn(state)
                if state.active:
                    state.active, state.run, kind = False, 0, EventKind.RECOVERY
        else:
            state.quarantine = 0
            state.cur = _merge(state.cur, (1.0, value, 0.0))
        roc = rate_of_change(value, previous, cfg.rate_floor)
        return SeriesScore(
            score(magnitude, cfg.z_threshold), anomalous, best_z, mean, std, state.ewma, roc, best_w, kind
        )

    def _roll(self, state: _Key) -> None:
        """The current slot completes and replaces the oldest one."""
        state.slots.pop(0)
        state.slots.append(state.cur)
        state.cur = (0.0, 0.0, 0.0)
        self._derive(state)

    def _derive(self, state: _Key) -> None:
        """Merge the completed slots; dispersion of slot means against the points' variance
        (1 when neighbouring points are independent, larger when they move together)."""
        done: tuple[float, float, float] = (0.0, 0.0, 0.0)
        for slot in state.slots:
            done = _merge(done, slot)
        state.done = done
        k, _, m2 = done
        used = [slot for slot in state.slots if slot[0] > 0]
        within = math.fsum(slot[2] for slot in used)
        between = m2 - within
        phi = 1.0
        if len(used) > 1 and k > len(used) and within > 0:
            phi = (between / (len(used) - 1)) / (within / (k - len(used)))
        state.phi = min(max(phi, 1.0), self.config.max_dispersion)

    @staticmethod
    def _relearn(state: _Key) -> None:
        state.slots = [(0.0, 0.0, 0.0)] * len(state.slots)
        state.cur = (0.0, 0.0, 0.0)
        state.quarantine = 0
        state.done, state.phi = (0.0, 0.0, 0.0), 1.0

    # -- state ------------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Raw state as bytes (msgpack); derived statistics are not stored."""
        import msgspec

        keys = {
            name: [s.slots, s.cur, s.recent, s.points, s.ewma, s.active, s.run, s.quarantine]
            for name, s in self._keys.items()
        }
        return msgspec.msgpack.encode(
            {"format": SERIES_FORMAT, "config": self.config.to_dict(), "keys": keys}
        )

    @classmethod
    def restore(cls, data: bytes) -> SeriesScorer:
        """A scorer that continues exactly where the snapshotted one stopped."""
        import msgspec

        doc: dict[str, Any] = msgspec.msgpack.decode(data)
        if doc.get("format") != SERIES_FORMAT:
            raise ValueError(f"unsupported series snapshot format {doc.get('format')!r}")
        scorer = cls(DetectorConfig.from_dict(doc["config"]))
        for name, (slots, cur, recent, points, ewma, active, run, quarantine) in doc["keys"].items():
            state = _Key(scorer.config.baseline_slots)
            state.slots = [(float(a), float(b), float(c)) for a, b, c in slots]
            state.cur = (float(cur[0]), float(cur[1]), float(cur[2]))
            state.recent = [float(x) for x in recent]
            state.points, state.ewma, state.active = int(points), float(ewma), bool(active)
            state.run, state.quarantine = int(run), int(quarantine)
            scorer._derive(state)
            scorer._keys[name] = state
        return scorer
