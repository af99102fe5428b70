"""The fleet and the incidents of a workload, decided up front from the seed (no lines yet).

The fleet is ``config.services`` services with log-normal volumes and error shares (some with no
errors at all), a daily cycle each, a timestamp format each, and a few with a clock-skewed host.
Incidents are then placed one by one: a start time, a service that can carry that type (see
``WorkloadConfig.visibility_sigma``), a magnitude, and ground-truth labels in event time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from detector.models import Signal
from logwarden.labels import IncidentType, Label
from logwarden.workload.config import WorkloadConfig

TS_FORMATS = ("rfc3339_z", "rfc3339_+02:00", "rfc3339_-05:00", "rfc3339_+05:30", "epoch_s", "epoch_ms")
_TS_FORMAT_WEIGHTS = (0.55, 0.1, 0.05, 0.05, 0.15, 0.1)
_PROJECTS = ("default", "shop", "payments", "platform", "data")
_PROJECT_WEIGHTS = (0.4, 0.2, 0.15, 0.15, 0.1)
_NAME_HEADS = (
    "checkout", "payments", "orders", "search", "auth", "inventory", "billing", "shipping",
    "catalog", "cart", "profile", "notify", "ledger", "gateway", "media", "reports", "pricing",
    "reviews", "sessions", "recommend", "fraud", "geo", "email", "export",
)  # fmt: skip
_NAME_TAILS = ("api", "worker", "db-proxy", "cron", "web", "consumer", "scheduler", "indexer")
HTTP_SHARE = 0.3
"""Share of services that write access-log style lines with an HTTP status."""
NEW_SERVICE_QUIET_S = 600
"""How long after a new service appears a detection on it counts against the detector."""

_PLACEMENT_ATTEMPTS = 60
_SIGNAL = {
    IncidentType.SPIKE: Signal.ERROR_RATE,
    IncidentType.STEP: Signal.ERROR_RATE,
    IncidentType.RAMP: Signal.ERROR_RATE,
    IncidentType.BURST: Signal.ERROR_RATE,
    IncidentType.OUTAGE: Signal.VOLUME_COLLAPSE,
}
# Magnitude ranges (error-rate multipliers; errors per second for bursts), sampled log-uniformly.
MAGNITUDES = {
    IncidentType.SPIKE: (2.0, 50.0),
    IncidentType.STEP: (3.0, 10.0),
    IncidentType.RAMP: (5.0, 20.0),
    IncidentType.BURST: (5.0, 50.0),
}
# Durations in seconds, sampled uniformly (a ramp is its rise plus a hold at the peak).
DURATIONS = {
    IncidentType.SPIKE: (20, 120),
    IncidentType.STEP: (900, 1800),
    IncidentType.RAMP: (180, 600),
    IncidentType.BURST: (10, 60),
    IncidentType.OUTAGE: (60, 300),
}
RAMP_HOLD_S = (60, 180)


@dataclass(frozen=True, slots=True)
class Fleet:
    """Per-service properties as arrays (index = service number)."""

    names: tuple[str, ...]
    projects: tuple[str, ...]
    emit_project: NDArray[np.bool_]
    """False: lines omit the project field (the detector reads it as "default")."""
    rate: NDArray[np.float64]
    """Lines per second at the daily mean."""
    error_share: NDArray[np.float64]
    amplitude: NDArray[np.float64]
    phase: NDArray[np.float64]
    ts_format: NDArray[np.int64]
    http: NDArray[np.bool_]
    skew_ms: NDArray[np.int64]
    """Clock skew of the service's skewed host (0: none); that host writes a third of its lines."""
    start_s: NDArray[np.int64]
    """Offset at which the service first logs (0 for all but new services)."""

    def __len__(self) -> int:
        return len(self.names)

    def diurnal(self, t_abs: NDArray[np.float64] | float, period_s: float) -> NDArray[np.float64]:
        """Volume factor per service (rows) at event times ``t_abs`` (columns)."""
        t = np.atleast_1d(np.asarray(t_abs, dtype=np.float64))
        angle = 2.0 * math.pi * t[None, :] / period_s + self.phase[:, None]
        return np.asarray(1.0 + self.amplitude[:, None] * np.sin(angle), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Injection:
    """One incident in generator terms (offsets in seconds from the stream start)."""

    service: int
    type: IncidentType
    start_s: int
    end_s: int
    magnitude: float
    ramp_s: int = 0


@dataclass(frozen=True, slots=True)
class Plan:
    fleet: Fleet
    injections: tuple[Injection, ...]
    labels: tuple[Label, ...]
    unplaced: tuple[IncidentType, ...]
    """Incidents the mix asked for that found no eligible service and time."""


def _names(rng: np.random.Generator, n: int) -> list[str]:
    combos = [f"{h}-{t}" for h in _NAME_HEADS for t in _NAME_TAILS]
    order = rng.permutation(len(combos))
    return [
        combos[order[i % len(combos)]] + ("" if i < len(combos) else f"-{i // len(combos)}") for i in range(n)
    ]


def _draw_services(cfg: WorkloadConfig, rng: np.random.Generator, n: int) -> dict[str, NDArray[np.generic]]:
    core = rng.permutation(n) < round(cfg.core_share * n)
    volumes = rng.lognormal(math.log(cfg.volume_median_per_s), cfg.volume_sigma, n)
    core_volumes = np.exp(
        rng.uniform(math.log(cfg.core_volume_per_s[0]), math.log(cfg.core_volume_per_s[1]), n)
    )
    errors = np.clip(rng.lognormal(math.log(cfg.error_median), cfg.error_sigma, n), 1e-4, 0.3)
    core_errors = np.exp(rng.uniform(math.log(cfg.core_error_share[0]), math.log(cfg.core_error_share[1]), n))
    # Zero-error services are drawn among the non-core ones.
    zero = np.zeros(n, dtype=np.bool_)
    others = np.flatnonzero(~core)
    zero[rng.permutation(others)[: round(cfg.zero_error_share * n)]] = True
    skewed = rng.permutation(n) < round(cfg.skewed_service_share * n)
    skew_s = rng.uniform(1.0, cfg.max_skew_s, n) * rng.choice((-1.0, 1.0), n)
    return {
        "project": rng.choice(len(_PROJECTS), n, p=_PROJECT_WEIGHTS),
        "emit_project": rng.random(n) < 0.5,
        "rate": np.clip(np.where(core, core_volumes, volumes), 0.01, 5000.0),
        "error_share": np.where(zero, 0.0, np.where(core, core_errors, errors)),
        "amplitude": rng.uniform(0.1, 0.5, n),
        "phase": rng.uniform(0.0, 2.0 * math.pi, n),
        "ts_format": rng.choice(len(TS_FORMATS), n, p=_TS_FORMAT_WEIGHTS),
        "http": rng.random(n) < HTTP_SHARE,
        "skew_ms": np.where(skewed, np.round(skew_s * 1000.0), 0).astype(np.int64),
    }


def make_fleet(cfg: WorkloadConfig, rng: np.random.Generator, new_starts: list[int]) -> Fleet:
    """``cfg.services`` services from the start, then one more per entry of ``new_starts``."""
    base = _draw_services(cfg, rng, cfg.services)
    extra = _draw_services(cfg, rng, len(new_starts))
    extra["rate"] = np.maximum(extra["rate"], 5.0)  # a new service worth watching, not a trickle
    cols = {k: np.concatenate([base[k], extra[k]]) for k in base}
    n = cfg.services + len(new_starts)
    names = _names(rng, n)
    projects = tuple(_PROJECTS[int(i)] for i in cols["project"])
    # A "default" project is written explicitly by half of its services, omitted by the rest.
    emit = np.array([p != "default" or bool(e) for p, e in zip(projects, cols["emit_project"], strict=True)])
    return Fleet(
        names=tuple(names),
        projects=projects,
        emit_project=emit,
        rate=cols["rate"].astype(np.float64),
        error_share=cols["error_share"].astype(np.float64),
        amplitude=cols["amplitude"].astype(np.float64),
        phase=cols["phase"].astype(np.float64),
        ts_format=cols["ts_format"].astype(np.int64),
        http=cols["http"].astype(np.bool_),
        skew_ms=cols["skew_ms"].astype(np.int64),
        start_s=np.array([0] * cfg.services + new_starts, dtype=np.int64),
    )


def min_visible_multiplier(errors_per_s: NDArray[np.float64], cfg: WorkloadConfig) -> NDArray[np.float64]:
    """Smallest error multiplier whose extra errors stand out of the baseline's noise by
    ``visibility_sigma`` and reach ``min_peak_errors`` per second (inf for no errors)."""
    lam = np.asarray(errors_per_s, dtype=np.float64)
    dispersion = 2.0 * cfg.error_clump - 1.0
    with np.errstate(divide="ignore"):
        by_sigma = 1.0 + cfg.visibility_sigma * np.sqrt(dispersion / lam)
        by_floor = cfg.min_peak_errors / lam
    return np.where(lam > 0, np.maximum(by_sigma, by_floor), np.inf)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _magnitude(cfg: WorkloadConfig, kind: IncidentType, rng: np.random.Generator) -> float:
    if kind is IncidentType.OUTAGE:
        return 0.0
    lo, hi = MAGNITUDES[kind]
    if kind is IncidentType.BURST:
        lo = min(max(lo, cfg.min_peak_errors), hi)
    return round(_log_uniform(rng, lo, hi), 3)


class _Placer:
    def __init__(self, cfg: WorkloadConfig, fleet: Fleet, rng: np.random.Generator) -> None:
        self.cfg, self.fleet, self.rng = cfg, fleet, rng
        self.spans: list[tuple[int, int, int]] = []
        """(service, start, end) of every incident placed so far."""

    def _free(self, start: int, end: int) -> NDArray[np.bool_]:
        """Services with no incident within ``min_gap_s`` of [start, end) (and not new ones)."""
        free: NDArray[np.bool_] = np.asarray(self.fleet.start_s == 0)
        if self.spans:
            spans = np.array(self.spans, dtype=np.int64)
            gap = self.cfg.min_gap_s
            clash = (spans[:, 1] < end + gap) & (spans[:, 2] + gap > start)
            free[spans[clash, 0]] = False
        return free

    def eligible(
        self, kind: IncidentType, magnitude: float, factor: NDArray[np.float64]
    ) -> NDArray[np.bool_]:
        """Services that can carry this incident when their volume is scaled by ``factor``."""
        fleet = self.fleet
        if kind is IncidentType.BURST:
            return np.asarray(fleet.error_share == 0)
        if kind is IncidentType.OUTAGE:
            return np.asarray(fleet.rate * factor >= self.cfg.min_outage_rate)
        lam = fleet.rate * fleet.error_share * factor
        return np.asarray(min_visible_multiplier(lam, self.cfg) <= magnitude)

    def place(self, kind: IncidentType, magnitude: float) -> Injection | None:
        cfg, fleet, rng = self.cfg, self.fleet, self.rng
        for _ in range(_PLACEMENT_ATTEMPTS):
            lo, hi = DURATIONS[kind]
            length = int(rng.integers(lo, hi + 1))
            ramp = length if kind is IncidentType.RAMP else 0
            if kind is IncidentType.RAMP:
                length += int(rng.integers(RAMP_HOLD_S[0], RAMP_HOLD_S[1] + 1))
            latest = cfg.duration_s - cfg.tail_s - length
            if latest < cfg.warmup_s:
                continue
            start = int(rng.integers(cfg.warmup_s, latest + 1))
            factor = fleet.diurnal(float(cfg.start_ts + start), cfg.diurnal_period_s)[:, 0]
            candidates = np.flatnonzero(
                self.eligible(kind, magnitude, factor) & self._free(start, start + length)
            )
            if candidates.size == 0:
                continue
            service = int(candidates[rng.integers(candidates.size)])
            self.spans.append((service, start, start + length))
            return Injection(service, kind, start, start + length, magnitude, ramp)
        return None


def _label(cfg: WorkloadConfig, fleet: Fleet, inj: Injection, number: int) -> Label:
    factor = float(fleet.diurnal(float(cfg.start_ts + inj.start_s), cfg.diurnal_period_s)[inj.service, 0])
    rate = float(fleet.rate[inj.service]) * factor
    errors = rate * float(fleet.error_share[inj.service])
    magnitude, baseline = inj.magnitude, errors
    if inj.type is IncidentType.OUTAGE:
        baseline = rate
    elif inj.type is IncidentType.NEW_SERVICE:
        magnitude = rate
    return Label(
        incident_id=f"inc-{number:04d}",
        project=fleet.projects[inj.service],
        service=fleet.names[inj.service],
        type=inj.type,
        magnitude=round(magnitude, 4),
        start=float(cfg.start_ts + inj.start_s),
        end=float(cfg.start_ts + inj.end_s),
        signal=_SIGNAL.get(inj.type),
        baseline=round(baseline, 4),
    )


def make_plan(cfg: WorkloadConfig) -> Plan:
    """Decide the fleet, the incidents and their labels. Deterministic in ``cfg``."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 1]))
    counts = cfg.mix.counts(cfg.incidents)
    n_new = counts[IncidentType.NEW_SERVICE]
    first = cfg.duration_s // 4
    new_starts = sorted(int(s) for s in rng.integers(first, max(cfg.duration_s * 3 // 4, first + 1), n_new))
    fleet = make_fleet(cfg, rng, new_starts)
    kinds = [k for k in IncidentType if k is not IncidentType.NEW_SERVICE for _ in range(counts[k])]
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    magnitudes = [_magnitude(cfg, kind, rng) for kind in kinds]
    placer = _Placer(cfg, fleet, rng)
    # The scarcest first (a 2x spike fits only the busiest services), so that the magnitudes
    # keep the mix's distribution instead of the leftovers'.
    scarcity = [
        int(placer.eligible(k, m, np.ones(len(fleet))).sum()) for k, m in zip(kinds, magnitudes, strict=True)
    ]
    injections: list[Injection] = []
    unplaced: list[IncidentType] = []
    for i in sorted(range(len(kinds)), key=lambda i: scarcity[i]):
        placed = placer.place(kinds[i], magnitudes[i])
        if placed is None:
            unplaced.append(kinds[i])
        else:
            injections.append(placed)
    for k, start in enumerate(new_starts):
        end = min(start + NEW_SERVICE_QUIET_S, cfg.duration_s)
        injections.append(Injection(cfg.services + k, IncidentType.NEW_SERVICE, start, end, 0.0))
    injections.sort(key=lambda j: (j.start_s, j.service))
    labels = tuple(_label(cfg, fleet, inj, number) for number, inj in enumerate(injections, start=1))
    return Plan(fleet, tuple(injections), labels, tuple(unplaced))
