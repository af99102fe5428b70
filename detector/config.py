"""Every detector threshold, as one frozen dataclass with documented defaults.

The defaults are tuned for the quality targets on the workload generator's default mix (recall
>= 0.95 on error spikes >= 3x, <= 1 false incident per service-day, median delay <= 3 buckets);
``README.md`` explains the statistics. The service maps its ``LOGWARDEN_DETECTOR_*`` settings onto
these fields; this module reads no environment.

Errors: :class:`ValueError` from the constructor when a field is out of range (not retryable:
the configuration is wrong).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

STRUCTURAL_FIELDS = ("bucket_seconds", "baseline_seconds", "baseline_slots", "windows")
"""Fields that shape the stored state: a snapshot only restores into the same values."""


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Detector thresholds. All times are event time; "bucket" means one ``bucket_seconds`` slice."""

    # --- ingestion -------------------------------------------------------------------------
    max_line_bytes: int = 65536
    """Lines longer than this (bytes, without the newline) are rejected as ``too_long``."""
    max_name_chars: int = 256
    """Longer project or service names are rejected as ``name_too_long`` (keys stay bounded)."""
    rejection_samples: int = 5
    """Samples kept per rejection reason (the first ones seen), for operators."""
    min_timestamp: float = 946684800.0
    """Event times before this (epoch seconds; default 2000-01-01) are ``absurd_timestamp``."""
    max_timestamp: float = 4102444800.0
    """Event times after this (epoch seconds; default 2100-01-01) are ``absurd_timestamp``."""
    max_future_seconds: float = 300.0
    """Once :meth:`Detector.advance` has given a clock, events further than this ahead of it are
    ``absurd_timestamp`` (one host with a wrong date must not close everyone's buckets)."""

    # --- buckets and baseline ---------------------------------------------------------------
    bucket_seconds: int = 1
    """Width of an event-time bucket, whole seconds."""
    allowed_lateness_seconds: float = 5.0
    """A bucket closes once the watermark (newest event time seen, or the clock given to
    ``advance``) is this far past its end; events for closed buckets are counted as late."""
    baseline_seconds: int = 600
    """Length of the rolling baseline. Old data leaves it: it never remembers further back."""
    baseline_slots: int = 60
    """The baseline rolls in ``baseline_seconds / baseline_slots`` steps (memory per key is
    proportional to this)."""
    warmup_buckets: int = 60
    """A key cannot alert until its baseline holds this many buckets (for volume collapse: its
    completed slots, see ``collapse_min_volume``)."""
    windows: tuple[int, ...] = (1, 4, 16)
    """Scored windows, in buckets, ending at the bucket that just closed. Short windows catch big
    spikes at once, long ones catch smaller sustained rises; each is an exact Poisson test."""
    ewma_alpha: float = 0.3
    """Smoothing of the reported EWMA error rate; recovery also waits for it to settle."""

    # --- error-rate signal ------------------------------------------------------------------
    z_threshold: float = 5.0
    """A window whose z-score reaches this (and passes the gates below) is anomalous."""
    z_clear: float = 3.0
    """A bucket whose every window scores below this is normal: it joins the baseline and counts
    toward recovery. Buckets between the two thresholds do neither (hysteresis)."""
    min_errors: int = 5
    """A window needs at least this many errors to alert."""
    min_volume: int = 5
    """A window needs at least this many events to alert."""
    min_ratio: float = 1.5
    """A window's error rate must be at least this multiple of the baseline rate to alert."""
    expected_floor: float = 0.5
    """Variance floor: the expected error count of a window is never taken below this, so a
    zero-error baseline does not make one stray error infinitely surprising."""
    rate_floor: float = 0.001
    """Floor on the base rate of the reported rate of change (never divides by zero)."""
    max_dispersion: float = 20.0
    """Cap on the overdispersion factor estimated from the baseline (>= 1)."""
    dispersion_prior: float = 3.0
    """Overdispersion assumed for errors until the baseline shows otherwise: real failures often
    log several lines at once, and a quiet baseline cannot tell."""
    dispersion_prior_errors: float = 30.0
    """Weight of that assumption, in errors: a baseline with many more errors than this speaks
    for itself."""
    critical_z: float = 10.0
    """Severity is critical when z reaches this and the rate is ``critical_ratio`` times the
    baseline, or when ``critical_error_rate`` of a window's events are errors."""
    critical_ratio: float = 5.0
    critical_error_rate: float = 0.5
    recovery_buckets: int = 10
    """Recovery is announced after this many consecutive normal buckets (hysteresis)."""
    relearn_seconds: int = 300
    """After this long without a normal bucket the shifted level is accepted as the new normal:
    the key's baseline restarts (a recovery is announced) and warms up again."""

    # --- series scorer ---------------------------------------------------------------------
    series_std_floor: float = 0.01
    """Variance floor of :class:`~detector.series.SeriesScorer`: the baseline standard deviation
    is never taken below this fraction of the baseline mean's magnitude."""

    # --- volume-collapse signal -------------------------------------------------------------
    collapse_min_volume: float = 5.0
    """Only keys whose baseline averages at least this many events per bucket can collapse. Volume
    is judged against the completed baseline slots (not the current one), from which the
    thresholds are derived when a key's slot rolls."""
    collapse_ratio: float = 0.1
    """A window collapses when its volume is at most this fraction of the expected volume."""

    # --- memory -----------------------------------------------------------------------------
    idle_ttl_seconds: int = 1800
    """A key with no events for this long is evicted (its state is freed)."""
    max_keys: int = 200_000
    """Events for new keys beyond this many live keys are rejected as ``key_limit``."""
    message_samples: int = 20
    """Raw error messages kept per key per bucket for representative messages."""
    message_buckets: int = 5
    """Representative messages come from this many most recent buckets."""
    max_message_chars: int = 512
    """Messages are truncated to this many characters before they are kept."""

    def __post_init__(self) -> None:
        def positive(name: str, value: float) -> None:
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"DetectorConfig.{name} must be a finite number > 0, got {value!r}")

        for name in (
            "max_line_bytes",
            "max_name_chars",
            "bucket_seconds",
            "baseline_seconds",
            "baseline_slots",
            "warmup_buckets",
            "z_threshold",
            "z_clear",
            "min_ratio",
            "expected_floor",
            "rate_floor",
            "max_dispersion",
            "dispersion_prior",
            "critical_z",
            "critical_ratio",
            "critical_error_rate",
            "recovery_buckets",
            "relearn_seconds",
            "collapse_min_volume",
            "collapse_ratio",
            "idle_ttl_seconds",
            "max_keys",
            "message_buckets",
            "max_message_chars",
            "max_timestamp",
            "series_std_floor",
        ):
            positive(name, getattr(self, name))
        for name in (
            "rejection_samples",
            "message_samples",
            "min_errors",
            "min_volume",
            "dispersion_prior_errors",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"DetectorConfig.{name} must be >= 0")
        for name in ("allowed_lateness_seconds", "max_future_seconds", "min_timestamp"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"DetectorConfig.{name} must be a finite number >= 0, got {value!r}")
        for name in ("bucket_seconds", "baseline_seconds", "baseline_slots", "relearn_seconds"):
            if not isinstance(getattr(self, name), int):
                raise ValueError(f"DetectorConfig.{name} must be a whole number")
        if self.baseline_seconds % (self.bucket_seconds * self.baseline_slots):
            raise ValueError(
                "DetectorConfig.baseline_seconds must be a multiple of bucket_seconds * baseline_slots"
            )
        if self.slot_buckets > 32767:
            raise ValueError("DetectorConfig: a baseline slot may hold at most 32767 buckets")
        if not self.windows or any(not isinstance(w, int) or w < 1 for w in self.windows):
            raise ValueError("DetectorConfig.windows must be whole numbers of buckets >= 1")
        if tuple(sorted(set(self.windows))) != self.windows:
            raise ValueError("DetectorConfig.windows must be strictly increasing")
        if self.windows[-1] > self.baseline_buckets:
            raise ValueError("DetectorConfig.windows must not exceed the baseline length")
        if not 0 < self.ewma_alpha <= 1:
            raise ValueError("DetectorConfig.ewma_alpha must be in (0, 1]")
        if self.z_clear > self.z_threshold or self.z_threshold > self.critical_z:
            raise ValueError("DetectorConfig needs z_clear <= z_threshold <= critical_z")
        if not self.collapse_ratio < 1 or not self.critical_error_rate <= 1:
            raise ValueError("DetectorConfig.collapse_ratio must be < 1 and critical_error_rate <= 1")
        if self.min_timestamp >= self.max_timestamp:
            raise ValueError("DetectorConfig.min_timestamp must be before max_timestamp")

    @property
    def baseline_buckets(self) -> int:
        return self.baseline_seconds // self.bucket_seconds

    @property
    def slot_buckets(self) -> int:
        """Buckets per baseline slot."""
        return self.baseline_buckets // self.baseline_slots

    @property
    def relearn_buckets(self) -> int:
        return max(1, math.ceil(self.relearn_seconds / self.bucket_seconds))

    @property
    def idle_ttl_buckets(self) -> int:
        return max(1, math.ceil(self.idle_ttl_seconds / self.bucket_seconds))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["windows"] = list(self.windows)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "windows" in values:
            values["windows"] = tuple(values["windows"])
        return cls(**values)
