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

Most keys are quiet: cheap integer gates over all keys pick the few candidates, and the
deviance statistics are computed for those only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detector.config import DetectorConfig
from detector.models import EventKind, Severity, Signal
from detector.scoring import deviance_z1, rate_of_change, score
from detector.vectorised import deviance_z
from detector.state import BUCKET_MAX, KeyState

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


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
    keys: npt.NDArray[np.intp]
    z: F64
    window: npt.NDArray[np.intp]
    anomalous: npt.NDArray[np.bool_]
    suspicious: npt.NDArray[np.bool_]
    critical: npt.NDArray[np.bool_]


def close_bucket(st: KeyState, t: int, n: I64, e: I64, used: int) -> list[Verdict]:
    """Close bucket ``t`` with per-key ``n`` events and ``e`` errors (arrays of length ``used``)."""
    cfg = st.config
    u = slice(0, used)
    np.minimum(n, BUCKET_MAX, out=n)
    np.minimum(e, n, out=e)
    width = cfg.windows[-1]
    prev = (t - 1) % width
    prev_n = st.win_n[prev, u].copy() if width == 1 else st.win_n[prev, u]
    prev_e = st.win_e[prev, u].copy() if width == 1 else st.win_e[prev, u]
    for i, w in enumerate(cfg.windows):
        leave = (t - w) % width
        st.wsum_n[i, u] += n - st.win_n[leave, u]
        st.wsum_e[i, u] += e - st.win_e[leave, u]
    st.win_n[t % width, u] = n
    st.win_e[t % width, u] = e

    nb = st.sum_n[u] + st.cur_n[u]
    eb = st.sum_e[u] + st.cur_e[u]
    kb = st.sum_k[u] + st.cur_k[u]
    warm = kb >= cfg.warmup_buckets
    err = _score_errors(cfg, st, warm, nb, eb, used)
    col = _score_collapse(cfg, st, warm, nb, kb, used)

    alpha = cfg.ewma_alpha
    st.ewe[u] *= 1.0 - alpha
    st.ewe[u] += alpha * e
    st.ewn[u] *= 1.0 - alpha
    st.ewn[u] += alpha * n

    suspicious = np.concatenate((err.keys[err.suspicious], col.keys[col.suspicious]))
    suspicious = np.unique(suspicious)
    quarantine = st.quarantine[suspicious] + 1
    relearn = suspicious[quarantine >= cfg.relearn_buckets]

    stats = _Stats(cfg, st, t, nb, eb, kb, prev_n, prev_e)
    verdicts: list[Verdict] = []
    _hysteresis(cfg, st, Signal.ERROR_RATE, err, suspicious, relearn, stats, verdicts)
    _hysteresis(cfg, st, Signal.VOLUME_COLLAPSE, col, suspicious, relearn, stats, verdicts)

    # admission: every bucket joins the current slot except the suspicious ones
    st.cur_n[u] += n
    st.cur_e[u] += e
    st.cur_k[u] += 1
    st.cur_n[suspicious] -= n[suspicious]
    st.cur_e[suspicious] -= e[suspicious]
    st.cur_k[suspicious] -= 1
    st.quarantine[u] = 0
    st.quarantine[suspicious] = quarantine
    if len(relearn):
        st.clear_baseline(relearn)
    np.putmask(st.last_seen[u], n > 0, t)
    return verdicts


def _score_errors(
    cfg: DetectorConfig, st: KeyState, warm: npt.NDArray[np.bool_], nb: I64, eb: I64, used: int
) -> _Scored:
    keys = np.flatnonzero(warm & (st.wsum_e[-1, :used] >= max(cfg.min_errors, 1)))
    p = (eb[keys] + 0.5) / (nb[keys] + 1.0)
    best = np.full(len(keys), -np.inf)
    window = np.zeros(len(keys), dtype=np.intp)
    critical = np.zeros(len(keys), dtype=np.bool_)
    for i in range(len(cfg.windows)):
        x = st.wsum_e[i, keys].astype(np.float64)
        v = st.wsum_n[i, keys].astype(np.float64)
        lam = np.maximum(p * v, cfg.expected_floor)
        gate = (x >= cfg.min_errors) & (v >= cfg.min_volume) & (x >= cfg.min_ratio * p * v) & (x > lam)
        phi = st.phi[keys] * (1.0 + lam / (eb[keys] + 1.0))
        z = np.where(gate, deviance_z(x, lam, phi), -np.inf)
        better = z > best
        best = np.where(better, z, best)
        window = np.where(better, i, window)
        crit = ((z >= cfg.critical_z) & (x >= cfg.critical_ratio * p * v)) | (
            gate & (x >= cfg.critical_error_rate * v)
        )
        critical |= crit & (z >= cfg.z_threshold)
    return _Scored(keys, best, window, best >= cfg.z_threshold, best >= cfg.z_clear, critical)


def _score_collapse(
    cfg: DetectorConfig, st: KeyState, warm: npt.NDArray[np.bool_], nb: I64, kb: I64, used: int
) -> _Scored:
    busy = warm & (nb >= cfg.collapse_min_volume * kb)
    low = np.zeros(used, dtype=np.bool_)
    for i, w in enumerate(cfg.windows):
        low |= st.wsum_n[i, :used] * kb <= cfg.collapse_ratio * w * nb
    keys = np.flatnonzero(busy & low)
    mu = nb[keys] / np.maximum(kb[keys], 1)
    best = np.full(len(keys), -np.inf)
    window = np.zeros(len(keys), dtype=np.intp)
    silent = np.zeros(len(keys), dtype=np.bool_)
    for i, w in enumerate(cfg.windows):
        v = st.wsum_n[i, keys].astype(np.float64)
        lam = mu * w
        gate = v <= cfg.collapse_ratio * lam
        z = np.where(gate, -deviance_z(v, lam, st.phi_n[keys]), -np.inf)
        better = z > best
        best = np.where(better, z, best)
        window = np.where(better, i, window)
        silent |= gate & (v == 0) & (z >= cfg.z_threshold)
    return _Scored(keys, best, window, best >= cfg.z_threshold, best >= cfg.z_clear, silent)


class _Stats:
    """Event statistics for one key, as they were when the bucket was scored."""

    def __init__(
        self,
        cfg: DetectorConfig,
        st: KeyState,
        t: int,
        nb: I64,
        eb: I64,
        kb: I64,
        prev_n: npt.NDArray[np.int32],
        prev_e: npt.NDArray[np.int32],
    ) -> None:
        self.cfg, self.st, self.t = cfg, st, t
        self.nb, self.eb, self.kb, self.prev_n, self.prev_e = nb, eb, kb, prev_n, prev_e

    def verdict(self, kind: EventKind, signal: Signal, key: int, severity: Severity, wi: int) -> Verdict:
        cfg, st = self.cfg, self.st
        w = cfg.windows[wi]
        x = int(st.wsum_e[wi, key])
        v = int(st.wsum_n[wi, key])
        nb, eb, kb = int(self.nb[key]), int(self.eb[key]), int(self.kb[key])
        n_now, e_now = (
            int(st.win_n[self.t % cfg.windows[-1], key]),
            int(st.win_e[self.t % cfg.windows[-1], key]),
        )
        n_prev, e_prev = int(self.prev_n[key]), int(self.prev_e[key])
        ewn = float(st.ewn[key])
        seconds = w * cfg.bucket_seconds
        if signal is Signal.ERROR_RATE:
            p = (eb + 0.5) / (nb + 1.0)
            lam = max(p * v, cfg.expected_floor)
            phi = float(st.phi[key]) * (1.0 + lam / (eb + 1.0))
            z = deviance_z1(float(x), lam, phi)
            observed = x / v if v else 0.0
            mean, std = p, math.sqrt(phi * lam) / max(v, 1)
            ewma = float(st.ewe[key]) / ewn if ewn > 0 else 0.0
            roc = rate_of_change(
                e_now / n_now if n_now else 0.0, e_prev / n_prev if n_prev else 0.0, cfg.rate_floor
            )
        else:
            mu = nb / max(kb, 1)
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


def _hysteresis(
    cfg: DetectorConfig,
    st: KeyState,
    signal: Signal,
    scored: _Scored,
    suspicious: npt.NDArray[np.intp],
    relearn: npt.NDArray[np.intp],
    stats: _Stats,
    out: list[Verdict],
) -> None:
    sev = st.sev_err if signal is Signal.ERROR_RATE else st.sev_col
    run = st.run_err if signal is Signal.ERROR_RATE else st.run_col
    hot = scored.anomalous & ~np.isin(scored.keys, relearn)
    for key, wi, critical in zip(
        scored.keys[hot].tolist(), scored.window[hot].tolist(), scored.critical[hot].tolist(), strict=True
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
    active = np.flatnonzero(sev[: len(stats.nb)] > 0)
    if not len(active):
        return
    hot_keys = scored.keys[hot]
    quiet = active[~np.isin(active, hot_keys)]
    still = np.isin(quiet, suspicious)
    run[quiet[still]] = 0
    calm = quiet[~still]
    run[calm] += 1
    done = calm[run[calm] >= cfg.recovery_buckets]
    last = len(cfg.windows) - 1
    for key in done.tolist():
        if signal is Signal.ERROR_RATE and not _settled(cfg, st, stats, key):
            continue
        level = Severity(int(sev[key]))
        sev[key] = 0
        run[key] = 0
        out.append(stats.verdict(EventKind.RECOVERY, signal, key, level, last))
    for key in relearn.tolist():
        if sev[key] > 0:
            level = Severity(int(sev[key]))
            sev[key] = 0
            run[key] = 0
            out.append(stats.verdict(EventKind.RECOVERY, signal, key, level, last))


def eviction_verdicts(st: KeyState, keys: npt.NDArray[np.intp], t: int, used: int) -> list[Verdict]:
    """Recoveries for the active signals of keys about to be evicted (t: the last closed bucket)."""
    cfg = st.config
    u = slice(0, used)
    prev = (t - 1) % cfg.windows[-1]
    stats = _Stats(
        cfg,
        st,
        t,
        st.sum_n[u] + st.cur_n[u],
        st.sum_e[u] + st.cur_e[u],
        st.sum_k[u] + st.cur_k[u],
        st.win_n[prev, u],
        st.win_e[prev, u],
    )
    out: list[Verdict] = []
    last = len(cfg.windows) - 1
    for signal, sev in ((Signal.ERROR_RATE, st.sev_err), (Signal.VOLUME_COLLAPSE, st.sev_col)):
        for key in keys[sev[keys] > 0].tolist():
            out.append(stats.verdict(EventKind.RECOVERY, signal, key, Severity(int(sev[key])), last))
    return out


def _settled(cfg: DetectorConfig, st: KeyState, stats: _Stats, key: int) -> bool:
    """The EWMA error rate is back under the alert ratio, or there are too few errors to matter."""
    ewn = float(st.ewn[key])
    ewe = float(st.ewe[key])
    if ewn <= 0:
        return True
    span = (2.0 - cfg.ewma_alpha) / cfg.ewma_alpha
    p = (int(stats.eb[key]) + 0.5) / (int(stats.nb[key]) + 1.0)
    return ewe * span < cfg.min_errors or ewe / ewn <= cfg.min_ratio * p
