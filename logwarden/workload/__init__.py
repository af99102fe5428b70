"""Deterministic labelled log workloads: JSON-lines bytes plus the truth about them.

``Workload(config)`` decides a fleet of services and the incidents injected into it (see
``logwarden.workload.config`` for every knob, ``DEFAULT_MIX`` for the benchmark's incident mix and
``demo_config()`` for the demo), then streams the lines in chunks: memory stays bounded by one
chunk however long or wide the stream is. The same config (seed included) gives byte-identical
chunks and identical labels, in any process.

Per service and second, the expected OK and error line counts come from the service's base
volume, error share, daily cycle and any incident active then; Poisson draws turn them into
counts, which are rendered into lines with their noise: clock-skewed hosts, duplicates, lines
emitted late, and bad lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray

from logwarden.labels import IncidentType, Label
from logwarden.workload.config import (
    DEFAULT_MIX,
    DEMO_MIX,
    PRESETS,
    IncidentMix,
    WorkloadConfig,
    default_config,
    demo_config,
    preset_config,
    small_config,
)
from logwarden.workload.plan import Fleet, Injection, make_plan
from logwarden.workload.render import Renderer

__all__ = [
    "DEFAULT_MIX",
    "DEMO_MIX",
    "PRESETS",
    "Chunk",
    "IncidentMix",
    "Totals",
    "Workload",
    "WorkloadConfig",
    "default_config",
    "demo_config",
    "preset_config",
    "small_config",
]

_TARGET_LINES_PER_CHUNK = 200000
_MAX_CHUNK_S = 30


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of the stream: whole lines, in emission order."""

    start: float
    """Event time (epoch seconds) of the first second this chunk generated."""
    end: float
    data: bytes
    lines: int
    """Lines in ``data`` (bad lines and duplicates included)."""
    errors: int
    """Distinct good error lines generated for these seconds (duplicates not counted)."""
    bad: int
    duplicates: int
    delayed: int
    skewed: int


@dataclass(frozen=True, slots=True)
class Totals:
    """Sums over every chunk of a stream."""

    chunks: int = 0
    lines: int = 0
    bytes: int = 0
    errors: int = 0
    bad: int = 0
    duplicates: int = 0
    delayed: int = 0
    skewed: int = 0

    def add(self, chunk: Chunk) -> Totals:
        return Totals(
            self.chunks + 1,
            self.lines + chunk.lines,
            self.bytes + len(chunk.data),
            self.errors + chunk.errors,
            self.bad + chunk.bad,
            self.duplicates + chunk.duplicates,
            self.delayed + chunk.delayed,
            self.skewed + chunk.skewed,
        )


class Workload:
    """A planned workload: fleet, incidents and labels now; lines on demand via :meth:`chunks`."""

    def __init__(self, config: WorkloadConfig) -> None:
        self.config = config
        plan = make_plan(config)
        self.fleet: Fleet = plan.fleet
        self.injections: tuple[Injection, ...] = plan.injections
        self.labels: tuple[Label, ...] = plan.labels
        self.unplaced: tuple[IncidentType, ...] = plan.unplaced
        self._inj_start = np.array([j.start_s for j in plan.injections], dtype=np.int64)
        self._inj_end = np.array([j.end_s for j in plan.injections], dtype=np.int64)

    @property
    def service_days(self) -> float:
        """Service time observed, in days (a new service counts from when it appears)."""
        return float(np.sum(self.config.duration_s - self.fleet.start_s)) / 86_400.0

    @property
    def chunk_seconds(self) -> int:
        if self.config.chunk_s:
            return self.config.chunk_s
        per_s = float(np.sum(self.fleet.rate))
        return int(min(_MAX_CHUNK_S, max(1, _TARGET_LINES_PER_CHUNK // max(per_s, 1.0))))

    def expected_counts(self, t0_s: int, seconds: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Expected OK and error lines per service (rows) and second (columns) from offset ``t0_s``."""
        cfg, fleet = self.config, self.fleet
        offsets = t0_s + np.arange(seconds)
        volume = fleet.diurnal(cfg.start_ts + offsets.astype(np.float64), cfg.diurnal_period_s)
        volume *= fleet.start_s[:, None] <= offsets[None, :]
        err_mult = np.ones_like(volume)
        err_add = np.zeros_like(volume)
        for k in np.flatnonzero((self._inj_start < t0_s + seconds) & (self._inj_end > t0_s)):
            inj = self.injections[int(k)]
            a, b = max(inj.start_s, t0_s) - t0_s, min(inj.end_s, t0_s + seconds) - t0_s
            if inj.type in (IncidentType.SPIKE, IncidentType.STEP):
                err_mult[inj.service, a:b] = inj.magnitude
            elif inj.type is IncidentType.RAMP:
                progress = (offsets[a:b] - inj.start_s + 1) / max(inj.ramp_s, 1)
                err_mult[inj.service, a:b] = 1.0 + (inj.magnitude - 1.0) * np.minimum(progress, 1.0)
            elif inj.type is IncidentType.BURST:
                err_add[inj.service, a:b] = inj.magnitude
            elif inj.type is IncidentType.OUTAGE:
                volume[inj.service, a:b] = 0.0
        ok = (fleet.rate * (1.0 - fleet.error_share))[:, None] * volume
        errors = (fleet.rate * fleet.error_share)[:, None] * volume * err_mult + err_add * (volume > 0)
        return ok, errors

    def error_counts(self, lam: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.int64]:
        """Error lines drawn for expected counts ``lam`` (see ``WorkloadConfig.error_clump``)."""
        clump = self.config.error_clump
        if clump == 1.0:
            return rng.poisson(lam).astype(np.int64)
        # Failures are Poisson; each logs 1 + Geometric lines (mean ``clump``): the sum of n
        # such is n + NegativeBinomial(n, 1 / clump).
        failures = rng.poisson(lam / clump).astype(np.int64)
        extra = rng.negative_binomial(np.maximum(failures, 1), 1.0 / clump)
        return failures + np.where(failures > 0, extra, 0)

    def chunks(self) -> Iterator[Chunk]:
        """The stream, chunk by chunk. Restartable: each call starts again from the beginning."""
        cfg = self.config
        renderer = Renderer(cfg, self.fleet, np.random.default_rng(np.random.SeedSequence([cfg.seed, 2])))
        step = self.chunk_seconds
        carry, carry_lines = b"", 0
        for index, t0 in enumerate(range(0, cfg.duration_s, step)):
            seconds = min(step, cfg.duration_s - t0)
            rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 3, index]))
            lam_ok, lam_err = self.expected_counts(t0, seconds)
            ok = rng.poisson(lam_ok).astype(np.int64)
            err = self.error_counts(lam_err, rng)
            out = renderer.render(cfg.start_ts + t0, ok, err, rng, carry)
            last = t0 + seconds >= cfg.duration_s
            data = out.data + out.carry if last else out.data
            lines = carry_lines + out.lines + (out.carry_lines if last else 0)
            carry, carry_lines = (b"", 0) if last else (out.carry, out.carry_lines)
            yield Chunk(
                start=float(cfg.start_ts + t0),
                end=float(cfg.start_ts + t0 + seconds),
                data=data,
                lines=lines,
                errors=out.errors,
                bad=out.bad,
                duplicates=out.duplicates,
                delayed=out.delayed,
                skewed=out.skewed,
            )

    def write(self, out: BinaryIO) -> Totals:
        """Write the whole stream to ``out``; returns what was written."""
        totals = Totals()
        for chunk in self.chunks():
            out.write(chunk.data)
            totals = totals.add(chunk)
        return totals
