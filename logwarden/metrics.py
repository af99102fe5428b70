"""Prometheus metrics: counters, gauges and histograms with labels, rendered as text format 0.0.4.

A tiny in-process registry (no dependency): the service is one asyncio process, so updates are
plain dict operations on the event loop (and under a lock for the few that come from threads).
Label values are escaped on output; metric and label names are fixed in code.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

LabelValues = tuple[str, ...]

DEFAULT_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _labels(names: Sequence[str], values: LabelValues, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


@dataclass
class _Metric:
    name: str
    help: str
    labelnames: tuple[str, ...]
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _key(self, labels: Sequence[str]) -> LabelValues:
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(labels)}")
        return tuple(str(v) for v in labels)


@dataclass
class Counter(_Metric):
    values: dict[LabelValues, float] = field(default_factory=dict)
    collector: Callable[[], Iterable[tuple[LabelValues, float]]] | None = None
    """When set, called at render time for totals kept elsewhere (e.g. the detector's counters)."""

    def inc(self, *labels: str, by: float = 1.0) -> None:
        if by < 0:
            raise ValueError("counters only go up")
        key = self._key(labels)
        with self._lock:
            self.values[key] = self.values.get(key, 0.0) + by

    def get(self, *labels: str) -> float:
        return self.values.get(self._key(labels), 0.0)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        values = dict(self.collector()) if self.collector is not None else self.values
        for key, value in sorted(values.items()):
            yield f"{self.name}{_labels(self.labelnames, key)} {_fmt(value)}"


@dataclass
class Gauge(_Metric):
    values: dict[LabelValues, float] = field(default_factory=dict)
    collector: Callable[[], Iterable[tuple[LabelValues, float]]] | None = None
    """When set, called at render time to produce the current values (replacing stored ones)."""

    def set(self, value: float, *labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self.values[key] = value

    def get(self, *labels: str) -> float:
        return self.values.get(self._key(labels), 0.0)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        values = dict(self.collector()) if self.collector is not None else self.values
        for key, value in sorted(values.items()):
            yield f"{self.name}{_labels(self.labelnames, key)} {_fmt(value)}"


@dataclass
class Histogram(_Metric):
    buckets: tuple[float, ...] = DEFAULT_LATENCY_BUCKETS
    counts: dict[LabelValues, list[int]] = field(default_factory=dict)
    sums: dict[LabelValues, float] = field(default_factory=dict)

    def observe(self, value: float, *labels: str) -> None:
        if not math.isfinite(value):
            return
        key = self._key(labels)
        with self._lock:
            counts = self.counts.get(key)
            if counts is None:
                counts = self.counts[key] = [0] * (len(self.buckets) + 1)
            counts[bisect.bisect_left(self.buckets, value)] += 1
            self.sums[key] = self.sums.get(key, 0.0) + value

    def count(self, *labels: str) -> int:
        return sum(self.counts.get(self._key(labels), ()))

    def quantile(self, q: float, *labels: str) -> float:
        """Upper bucket bound containing quantile ``q`` (coarse; for summaries, not alerting)."""
        counts = self.counts.get(self._key(labels))
        if not counts:
            return math.nan
        target = q * sum(counts)
        seen = 0
        for bound, c in zip((*self.buckets, math.inf), counts, strict=True):
            seen += c
            if seen >= target:
                return bound
        return math.inf

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for key in sorted(self.counts):
            cumulative = 0
            for bound, c in zip((*self.buckets, math.inf), self.counts[key], strict=True):
                cumulative += c
                le = f'le="{_fmt(bound)}"'
                yield f"{self.name}_bucket{_labels(self.labelnames, key, le)} {cumulative}"
            yield f"{self.name}_sum{_labels(self.labelnames, key)} {_fmt(self.sums[key])}"
            yield f"{self.name}_count{_labels(self.labelnames, key)} {cumulative}"


class Registry:
    """Holds metrics by name and renders them all."""

    def __init__(self) -> None:
        self._metrics: dict[str, Counter | Gauge | Histogram] = {}

    def _add(self, metric: Counter | Gauge | Histogram) -> None:
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name} registered twice")
        self._metrics[metric.name] = metric

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
        metric = Counter(name, help, tuple(labels))
        self._add(metric)
        return metric

    def gauge(self, name: str, help: str, labels: Sequence[str] = ()) -> Gauge:
        metric = Gauge(name, help, tuple(labels))
        self._add(metric)
        return metric

    def histogram(
        self,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_LATENCY_BUCKETS,
    ) -> Histogram:
        metric = Histogram(name, help, tuple(labels), buckets=tuple(sorted(buckets)))
        self._add(metric)
        return metric

    def render(self) -> str:
        lines: list[str] = []
        for name in sorted(self._metrics):
            lines.extend(self._metrics[name].render())
        return "\n".join(lines) + "\n"
