"""Closing one bucket for every key at once: score, decide, then let normal data join the baseline.

Order matters and is the point of this module:

1. the bucket enters the short windows (the last ``windows[-1]`` buckets);
2. every window is scored against the baseline as it was *before* this bucket (completed slots
   plus the current slot's admitted buckets);
3. hysteresis decides onsets, escalations and recoveries;
4. only then does the bucket join the baseline, and only if no window looked suspicious (z at
   or above ``z_clear``): an anomaly never teaches the baseline that it is normal. A key that
   has gone ``relearn_buckets`` without a normal bucket forgets its baseline and warms up again,
   which is how a permanent level shift is accepted within the baseline length.

Most keys are quiet. Cheap necessary conditions over all keys pick the few candidates (for
errors: enough errors in the widest window; for volume collapse: a busy warm key), further gates
(and a Gaussian bound that the deviance z never exceeds) run on those, and the deviance
statistics, the EWMA and every event field are computed for the keys that pass. Keys that cannot
alert get no score at all, which changes nothing: only scores at or above ``z_clear`` are used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detector.config import DetectorConfig
from detector.models import EventKind, Severity, Signal
from detector.scoring import deviance_z1, rate_of_change, score
from detector.state import SUM_K, E, K, KeyState, N
from detector.vectorised import deviance_z

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
Keys = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class Verdict:
    """One transition of one key's signal, with the statistics of the window that decided it."""

    kind: EventKind
    signal: Signal
    key: int
    severity: Severity
    window: int
    """Window length in buckets."""
    errors: int
    total: int
    observed_rate: float
    baseline_mean: float
    baseline_std: float
    z: float
    ewma: float
    rate_of_change: float
    score: float


@dataclass(slots=True)
class _Scored:
    keys: Keys
    z: F64
    window: Keys
    critical: npt.NDArray[np.bool_]

    @classmethod
    def best(cls, keys: Keys, z: F64, severe: npt.NDArray[np.bool_]) -> _Scored:
        """Per key (column), the window (row) with the highest z; critical if any is severe."""
        window = z.argmax(axis=0)
        critical: npt.NDArray[np.bool_] = np.logical_or.reduce(severe, axis=0)
        return cls(keys, z[window, np.arange(len(keys))], window, critical)

    def anomalous(self, cfg: DetectorConfig) -> npt.NDArray[np.bool_]:
        return self.z >= cfg.z_threshold

    def suspicious(self, cfg: DetectorConfig) -> Keys:
        return self.keys[self.z >= cfg.z_clear]


_NONE = _Scored(np.zeros(0, np.intp), np.zeros(0), np.zeros(0, np.intp), np.zeros(0, np.bool_))
"""No key scored (shared: nothing writes to a _Scored's arrays)."""


@dataclass(slots=True)
class _Baseline:
    """Baseline sums of every key as they were before this bucket: events, errors and admitted
    buckets (rows ``N``, ``E``, ``K`` of ``counts``; whole numbers, exact in float64)."""

    counts: F64

    @property
    def n(self) -> F64:
        row: F64 = self.counts[N]
        return row

    @property
    def e(self) -> F64:
        row: F64 = self.counts[E]
        return row

    @property
    def k(self) -> F64:
        row: F64 = self.counts[K]
        return row


def close_bucket(
    st: KeyState, t: int, counts: I32 | I64, used: int, *, most: int | None = None, volume: bool = True
) -> list[Verdict]:
    """Close bucket ``t`` with per-key events and errors ``counts`` (rows ``N`` and ``E``, ``used``
    keys; only read), none of them above ``most`` when it is given. ``volume=False`` skips
    volume-collapse judgement (an incomplete bucket, see ``flush``)."""
    cfg = st.config
    width = cfg.windows[-1]
    # the bucket's counts, clipped so that window sums stay inside int32 (errors <= events stays)
    if counts.dtype == np.int32 and most is not None and most <= st.bucket_max:
        ne = counts  # nothing to clip
    else:
        ne = np.minimum(counts, st.bucket_max, out=st.scratch("ne", np.int32, 2)[:, :used], casting="unsafe")
    # window i sums ring positions t - 1 ... t - w_i (mod width): the oldest leaves, the bucket joins
    wsum, ring = st.wsum[..., :used], st.win[..., :used]
    for i, w in enumerate(cfg.windows):  # in place: no temporaries (see KeyState.scratch)
        if w == 1:
            wsum[i] = ne
        else:
            np.subtract(wsum[i], ring[(t - w) % width], out=wsum[i])
            wsum[i] += ne
    ring[t % width] = ne

    base = _Baseline(st.base[:, :used])
    warm = np.greater_equal(base.k, cfg.warmup_buckets, out=st.scratch("warm", np.bool_)[:used])
    err = _score_errors(cfg, st, warm, used)
    col = _score_collapse(cfg, st, used) if volume else _NONE

    # suspicious: some window of either signal at or above z_clear (marked, then listed in order)
    marks = st.marks("suspicious")
    marks[err.suspicious(cfg)] = True
    marks[col.suspicious(cfg)] = True
    suspicious = marks[:used].nonzero()[0]
    quarantine = st.quarantine[suspicious] + 1
    relearn = suspicious[quarantine >= cfg.relearn_buckets] if len(suspicious) else suspicious

    stats = _Stats(cfg, st, t, base)
    verdicts: list[Verdict] = []
    _hysteresis(cfg, st, Signal.ERROR_RATE, err, marks, relearn, stats, verdicts)
    _hysteresis(cfg, st, Signal.VOLUME_COLLAPSE, col, marks, relearn, stats, verdicts)
    marks[suspicious] = False

    # admission: every bucket joins the current slot except the suspicious ones
    admitted = st.base[:, :used]
    admitted[:K] += ne
    admitted[K] += 1
    if len(suspicious):
        admitted[:K, suspicious] -= ne[:, suspicious]
        admitted[K, suspicious] -= 1
    if len(st.quarantined):
        st.quarantine[st.quarantined] = 0
    if len(suspicious):
        st.quarantine[suspicious] = quarantine
    st.quarantined = suspicious
    if len(relearn):
        st.clear_baseline(relearn)
    if width < cfg.slot_buckets:  # else the slot roll reads activity from the window ring
        np.putmask(st.last_seen[:used], ne[N] > 0, t)
    return verdicts


def _score_errors(cfg: DetectorConfig, st: KeyState, warm: npt.NDArray[np.bool_], used: int) -> _Scored:
    least = max(cfg.min_errors, 1)
    # A window can only alert with at least `least` errors in it, and the widest window holds
    # the most (windows are nested): one pass over every key picks the candidates.
    enough = np.greater_equal(st.wsum[-1, E, :used], least, out=st.scratch("any", np.bool_)[:used])
    enough &= warm
    keys = enough.nonzero()[0]
    if not len(keys):
        return _NONE
    # takes from whole stacks: take copies a strided view (a slice of the keys) whole first
    window = st.wsum.take(keys, axis=2).astype(np.float64)  # [window][n, e][key]
    xs, vs = window[:, E], window[:, N]
    b = st.base.take(keys, axis=1)  # [n, e, k][key]
    es = b[E]
    ps = es + 0.5
    ps /= b[N] + 1.0
    expected = vs * ps
    lams = np.maximum(expected, cfg.expected_floor)
    # Selective and necessary for z >= z_clear: x >= lam + z_clear * sqrt(phi * lam), because the
    # deviance z of an excess never exceeds the Gaussian one; the other gates are floors on x too,
    # so one threshold per window and key holds them all.
    phi = st.phi.take(keys)
    need = lams * phi
    np.sqrt(need, out=need)
    need *= cfg.z_clear
    need += lams
    np.maximum(need, cfg.min_ratio * expected, out=need)
    np.maximum(need, least, out=need)
    gates = xs >= need
    if cfg.min_volume > least:  # else implied: a window's events are at least its errors
        gates &= vs >= cfg.min_volume
    cols = np.logical_or.reduce(gates, axis=0).nonzero()[0]
    if not len(cols):
        return _NONE
    if 2 * len(cols) < len(keys) and len(keys) > 64:  # else the gathers cost more than they save
        keys, es, phi = keys[cols], es[cols], phi[cols]
        xs, vs, expected, lams, gates = (
            xs[:, cols],
            vs[:, cols],
            expected[:, cols],
            lams[:, cols],
            gates[:, cols],
        )
    # the baseline rate is itself estimated: its variance adds (p v)^2 / errors, relative (p v) / errors
    spread = expected / (es + 1.0)
    spread += 1.0
    spread *= phi
    z = deviance_z(xs, lams, spread)
    np.putmask(z, ~gates, -np.inf)
    crit = z >= cfg.z_threshold
    if crit.any():  # else no window alerts, and none is critical
        severe = (z >= cfg.critical_z) & (xs >= cfg.critical_ratio * expected)
        severe |= xs >= cfg.critical_error_rate * vs
        crit &= severe
    return _Scored.best(keys, z, crit)


def _score_collapse(cfg: DetectorConfig, st: KeyState, used: int) -> _Scored:
    """Keys with some window's volume at or below its collapse threshold (derived from the
    completed slots at each roll: see :meth:`KeyState._collapse_at`), scored."""
    volume = st.wsum[:, N]
    low = np.less_equal(
        volume[:, :used],
        st.collapse_at[:, :used],
        out=st.scratch("low", np.bool_, len(cfg.windows))[:, :used],
    )
    any_low = np.logical_or.reduce(low, axis=0, out=st.scratch("any", np.bool_)[:used])
    keys = any_low.nonzero()[0]
    if not len(keys):
        return _NONE
    low = low[:, keys]
    n, _, k = st.sums[: SUM_K + 1].take(keys, axis=1).astype(np.float64)  # n, e, k
    lam = n / np.maximum(k, 1.0) * st.window_sizes  # as the thresholds were derived
    vs = st.wsum.take(keys, axis=2)[:, N].astype(np.float64)  # not volume.take: see _score_errors
    z = deviance_z(vs, lam, st.phi_n.take(keys))
    np.negative(z, out=z)
    np.putmask(z, ~low, -np.inf)
    return _Scored.best(keys, z, (vs == 0) & (z >= cfg.z_threshold))


class _Stats:
    """Event statistics of one key, as they were when the bucket was scored."""

    def __init__(self, cfg: DetectorConfig, st: KeyState, t: int, base: _Baseline) -> None:
        self.cfg, self.st, self.t, self.base = cfg, st, t, base

    @property
    def order(self) -> list[int]:
        """Window-ring positions, newest bucket first."""
        width = self.cfg.windows[-1]
        return [(self.t - j) % width for j in range(width)]

    @property
    def weights(self) -> list[float]:
        alpha = self.cfg.ewma_alpha
        return [alpha * (1.0 - alpha) ** j for j in range(self.cfg.windows[-1])]

    def ewma(self, key: int) -> tuple[float, float]:
        """EWMA of errors and of events per bucket over the window ring (newest weighs most)."""
        st, order, weights = self.st, self.order, self.weights
        e = [int(st.win_e[pos, key]) for pos in order]
        n = [int(st.win_n[pos, key]) for pos in order]
        total = math.fsum(weights)
        return (
            math.fsum(w * x for w, x in zip(weights, e, strict=True)) / total,
            math.fsum(w * x for w, x in zip(weights, n, strict=True)) / total,
        )

    def p(self, key: int) -> float:
        return (int(self.base.e[key]) + 0.5) / (int(self.base.n[key]) + 1.0)

    def verdict(self, kind: EventKind, signal: Signal, key: int, severity: Severity, wi: int) -> Verdict:
        cfg, st = self.cfg, self.st
        w = cfg.windows[wi]
        x = int(st.wsum_e[wi, key])
        v = int(st.wsum_n[wi, key])
        width = cfg.windows[-1]
        now, before = self.t % width, (self.t - 1) % width
        n_now, e_now = int(st.win_n[now, key]), int(st.win_e[now, key])
        n_prev, e_prev = int(st.win_n[before, key]), int(st.win_e[before, key])
        if width == 1:
            n_prev, e_prev = n_now, e_now
        ewe, ewn = self.ewma(key)
        seconds = w * cfg.bucket_seconds
        if signal is Signal.ERROR_RATE:
            p = self.p(key)
            lam = max(p * v, cfg.expected_floor)
            phi = float(st.phi[key]) * (1.0 + p * v / (int(self.base.e[key]) + 1.0))
            z = deviance_z1(float(x), lam, phi)
            observed = x / v if v else 0.0
            mean, std = p, math.sqrt(phi * lam) / max(v, 1)
            ewma = ewe / ewn if ewn > 0 else 0.0
            roc = rate_of_change(
                e_now / n_now if n_now else 0.0, e_prev / n_prev if n_prev else 0.0, cfg.rate_floor
            )
        else:
            # volume is judged against the completed slots (see KeyState._collapse_at)
            mu = int(st.sum_n[key]) / max(int(st.sum_k[key]), 1)
            lam = max(mu * w, 1e-9)
            z = -deviance_z1(float(v), lam, float(st.phi_n[key]))
            observed = v / seconds
            mean = mu / cfg.bucket_seconds
            std = math.sqrt(float(st.phi_n[key]) * lam) / seconds
            ewma = ewn / cfg.bucket_seconds
            roc = rate_of_change(float(n_now), float(n_prev), 1.0)
        return Verdict(
            kind, signal, key, severity, w, x, v, observed, mean, std, z, ewma, roc, score(z, cfg.z_threshold)
        )

    def settled(self, key: int) -> bool:
        """The EWMA error rate is back under the alert ratio, or too few errors remain to matter."""
        cfg = self.cfg
        ewe, ewn = self.ewma(key)
        if ewn <= 0:
            return True
        span = (2.0 - cfg.ewma_alpha) / cfg.ewma_alpha
        return ewe * span < cfg.min_errors or ewe / ewn <= cfg.min_ratio * self.p(key)


def _hysteresis(
    cfg: DetectorConfig,
    st: KeyState,
    signal: Signal,
    scored: _Scored,
    suspicious: npt.NDArray[np.bool_],
    relearn: Keys,
    stats: _Stats,
    out: list[Verdict],
) -> None:
    """Onsets and escalations of the keys scored anomalous; recoveries of active keys that have
    been calm (not ``suspicious``, a mark per key) for ``recovery_buckets``."""
    sev = st.sev_err if signal is Signal.ERROR_RATE else st.sev_col
    run = st.run_err if signal is Signal.ERROR_RATE else st.run_col
    hot = scored.anomalous(cfg)
    if len(relearn):
        hot &= ~np.isin(scored.keys, relearn)
    hot_keys = scored.keys[hot]
    for key, wi, critical in zip(
        hot_keys.tolist(), scored.window[hot].tolist(), scored.critical[hot].tolist(), strict=True
    ):
        level = Severity.CRITICAL if critical else Severity.WARNING
        current = int(sev[key])
        run[key] = 0
        if current == 0:
            sev[key] = level
            out.append(stats.verdict(EventKind.ONSET, signal, key, level, wi))
        elif level > current:
            sev[key] = level
            out.append(stats.verdict(EventKind.ESCALATION, signal, key, level, wi))
    active = sev[: len(stats.base.n)].nonzero()[0]
    if not len(active):
        return
    if len(hot_keys):  # hot keys were handled above
        marks = st.marks("hot")
        marks[hot_keys] = True
        quiet = active[~marks[active]]
        marks[hot_keys] = False
    else:
        quiet = active
    still = suspicious[quiet]
    run[quiet[still]] = 0
    calm = quiet[~still]
    run[calm] += 1
    last = len(cfg.windows) - 1
    for key in calm[run[calm] >= cfg.recovery_buckets].tolist():
        if signal is Signal.ERROR_RATE and not stats.settled(key):
            continue
        out.append(stats.verdict(EventKind.RECOVERY, signal, key, Severity(int(sev[key])), last))
        sev[key] = 0
        run[key] = 0
    for key in relearn.tolist():
        if sev[key] > 0:
            out.append(stats.verdict(EventKind.RECOVERY, signal, key, Severity(int(sev[key])), last))
            sev[key] = 0
            run[key] = 0


def eviction_verdicts(st: KeyState, keys: Keys, t: int, used: int) -> list[Verdict]:
    """Recoveries for the active signals of keys about to be evicted (t: the last closed bucket)."""
    base = _Baseline(st.base[:, :used])
    stats = _Stats(st.config, st, t, base)
    out: list[Verdict] = []
    last = len(st.config.windows) - 1
    for signal, sev in ((Signal.ERROR_RATE, st.sev_err), (Signal.VOLUME_COLLAPSE, st.sev_col)):
        for key in keys[sev[keys] > 0].tolist():
            out.append(stats.verdict(EventKind.RECOVERY, signal, key, Severity(int(sev[key])), last))
    return out
