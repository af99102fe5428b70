"""Workload settings: the incident mix, the fleet shape, the noise, and the named presets.

``DEFAULT_MIX`` and ``default_config()`` are what the quality benchmark measures; ``demo_config()``
is what ``logwarden demo`` streams. Every field is documented where it is declared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from logwarden.labels import IncidentType


@dataclass(frozen=True, slots=True)
class IncidentMix:
    """Share of each incident type among the injected incidents (shares are normalised)."""

    spike: float = 0.0
    step: float = 0.0
    ramp: float = 0.0
    burst: float = 0.0
    outage: float = 0.0
    new_service: float = 0.0

    def __post_init__(self) -> None:
        values = self._values().values()
        if any(not math.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
            raise ValueError("incident mix shares must be finite, >= 0, and not all zero")

    def _values(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}

    def share(self, kind: IncidentType) -> float:
        values = self._values()
        return values[kind.value] / sum(values.values())

    def counts(self, total: int) -> dict[IncidentType, int]:
        """Split ``total`` incidents by share (largest remainder, ties in declaration order), so
        a given mix and total always give the same number of each type."""
        exact = {kind: self.share(kind) * total for kind in IncidentType}
        counts = {kind: math.floor(value) for kind, value in exact.items()}
        left = total - sum(counts.values())
        by_remainder = sorted(
            IncidentType, key=lambda k: (-(exact[k] - counts[k]), list(IncidentType).index(k))
        )
        for kind in by_remainder[:left]:
            counts[kind] += 1
        return counts


DEFAULT_MIX = IncidentMix(spike=0.40, step=0.12, ramp=0.12, burst=0.16, outage=0.12, new_service=0.08)
"""The quality benchmark's mix. Spikes dominate (most real pages are sudden error spikes); the rest
covers slow onsets (ramps, steps), errors from nothing (bursts), silence (outages), and one case
where nothing must fire (a new service warming up)."""

DEMO_MIX = IncidentMix(spike=0.4, burst=0.2, outage=0.2, new_service=0.2)
"""The demo's mix: only incidents that show up within a short run (no 15-minute steps)."""


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    """Everything that shapes a generated workload. Same config (seed included) → same bytes."""

    seed: int = 0
    services: int = 200
    """Services present from the start (new services from the mix come on top)."""
    duration_s: int = 3600
    """Event-time length of the stream in seconds."""
    start_ts: int = 1_714_550_400
    """Event time of the first second (epoch seconds; 2024-05-01T08:00:00Z)."""
    incidents: int = 60
    """Incidents to inject, split by ``mix``; ones that cannot be placed are reported as unplaced."""
    mix: IncidentMix = DEFAULT_MIX
    warmup_s: int = 900
    """No incident starts before this offset: detectors need a baseline first."""
    min_gap_s: int = 600
    """Quiet time kept between two incidents on the same service (one baseline length)."""
    tail_s: int = 60
    """Quiet time kept between an incident's end and the end of the stream."""

    core_share: float = 0.05
    """Share of "core" services (front APIs, gateways): busy, and never error-free."""
    core_volume_per_s: tuple[float, float] = (50.0, 1000.0)
    """Range of core services' volume (lines per second, log-uniform)."""
    core_error_share: tuple[float, float] = (0.005, 0.05)
    """Range of core services' share of error lines (log-uniform)."""
    volume_median_per_s: float = 2.0
    """Median base volume of the other services (lines per second); log-normal."""
    volume_sigma: float = 1.5
    """Log-normal sigma of their volumes: many tiny services, some at tens of lines per second."""
    zero_error_share: float = 0.2
    """Share of services that never log an error (burst targets)."""
    error_median: float = 0.01
    """Median share of error lines among the others (log-normal, clipped to [0.0001, 0.3])."""
    error_sigma: float = 1.0
    diurnal_period_s: float = 86_400.0
    """Period of the daily cycle; each service has its own phase and an amplitude of 10-50%."""

    skewed_service_share: float = 0.1
    """Share of services with one host whose clock is off by 1-3 s (either way)."""
    max_skew_s: float = 3.0
    duplicate_share: float = 0.005
    """Share of lines sent twice (at-least-once shippers), up to ``max_delay_s`` apart."""
    delayed_share: float = 0.01
    """Share of lines emitted 1..``max_delay_s`` seconds after lines stamped later (out of order)."""
    max_delay_s: int = 2
    bad_line_share: float = 0.002
    """Share of output lines that are bad (malformed JSON, missing service, bad timestamps, ...)."""

    visibility_sigma: float = 4.0
    """Error incidents are only put where the extra errors per second reach this many standard
    deviations of the baseline count (Poisson): a 3x spike on a service with one error a minute
    is not an incident anyone could see, so it is never labelled as one."""
    min_peak_errors: float = 5.0
    """...and where the incident produces at least this many errors per second."""
    min_outage_rate: float = 20.0
    """Outages only hit services logging at least this many lines per second."""
    error_clump: float = 1.0
    """Mean error lines per failure. 1: errors are independent (Poisson noise, the default mix).
    Above 1: each failure logs a geometric number of lines (a stack trace, retries), so error
    counts are overdispersed, with variance about ``2 * error_clump - 1`` times the mean."""
    chunk_s: int = 0
    """Seconds of event time per chunk; 0 picks about 200,000 lines per chunk."""

    def __post_init__(self) -> None:
        positive = ("services", "duration_s", "volume_median_per_s", "diurnal_period_s")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        shares = (
            "core_share",
            "zero_error_share",
            "skewed_service_share",
            "duplicate_share",
            "delayed_share",
        )
        for name in (*shares, "bad_line_share"):
            if not 0.0 <= getattr(self, name) <= (0.5 if name == "bad_line_share" else 1.0):
                raise ValueError(f"{name} is out of range")
        for name in ("incidents", "warmup_s", "min_gap_s", "tail_s", "chunk_s", "max_delay_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not (math.isfinite(self.error_clump) and 1.0 <= self.error_clump <= 100.0):
            raise ValueError("error_clump must be in [1, 100]")
        if not 0 < self.error_median < 1:
            raise ValueError("error_median must be in (0, 1)")
        for lo, hi in (self.core_volume_per_s, self.core_error_share):
            if not 0 < lo <= hi:
                raise ValueError("core ranges must be positive (low, high) pairs")
        if self.core_error_share[1] >= 1 or self.core_share + self.zero_error_share > 1:
            raise ValueError("core_error_share must be < 1 and core + zero-error shares <= 1")
        if self.max_skew_s < 1.0:
            raise ValueError("max_skew_s must be >= 1")


def default_config(seed: int = 0) -> WorkloadConfig:
    """The quality benchmark's workload: 200 services for an hour, 60 incidents of DEFAULT_MIX."""
    return WorkloadConfig(seed=seed)


def demo_config(seed: int = 0) -> WorkloadConfig:
    """A dozen busier services for 15 minutes with 5 incidents (spikes, a burst, an outage, a
    new service), short enough to stream through the whole pipeline in well under a minute."""
    return WorkloadConfig(
        seed=seed,
        services=12,
        duration_s=900,
        incidents=5,
        mix=DEMO_MIX,
        warmup_s=360,
        min_gap_s=120,
        volume_median_per_s=25.0,
        volume_sigma=1.0,
        zero_error_share=0.25,
        error_median=0.03,
        error_sigma=0.6,
        skewed_service_share=0.25,
    )


def small_config(seed: int = 0) -> WorkloadConfig:
    """Tests: 20 services for 20 minutes with 8 incidents, a few hundred thousand lines."""
    return WorkloadConfig(
        seed=seed,
        services=20,
        duration_s=1200,
        incidents=8,
        warmup_s=300,
        min_gap_s=120,
        core_volume_per_s=(30.0, 120.0),
        volume_median_per_s=8.0,
        volume_sigma=1.2,
        error_median=0.02,
        mix=DEMO_MIX,
    )


def large_config(seed: int = 0) -> WorkloadConfig:
    """A longer, wider run for tighter statistics: 1,000 services for two hours."""
    return replace(default_config(seed), services=1000, duration_s=7200, incidents=400)


PRESETS = {"demo": demo_config, "small": small_config, "default": default_config, "large": large_config}
"""Named presets, as the CLI and the benchmarks offer them."""


def preset_config(
    name: str,
    seed: int = 0,
    *,
    services: int | None = None,
    duration_s: int | None = None,
    incidents: int | None = None,
    error_clump: float | None = None,
) -> WorkloadConfig:
    """A named preset with the given seed and optional overrides (``None`` keeps the preset's).
    Raises ``ValueError`` for an unknown name or an invalid override."""
    if name not in PRESETS:
        raise ValueError(f"unknown workload preset {name!r} (choose from {', '.join(sorted(PRESETS))})")
    cfg = PRESETS[name](seed)
    return replace(
        cfg,
        services=cfg.services if services is None else services,
        duration_s=cfg.duration_s if duration_s is None else duration_s,
        incidents=cfg.incidents if incidents is None else incidents,
        error_clump=cfg.error_clump if error_clump is None else error_clump,
    )
