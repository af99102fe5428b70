"""Deterministic log streams for the end-to-end tests: a calm baseline, a burst of errors on one
service, and its recovery, as JSON lines or as (timestamp, service, error) records for OTLP.

Nothing is random: line ``n`` of a segment is an error exactly when ``floor((n + 1) * share)``
passes an integer, so a share of 0.02 is one error every 50 lines, evenly spread. Timestamps
are synthetic event time from :data:`T0`, so the service must run with event-time buckets
(``advance_with_clock=False`` / ``--event-clock``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

T0 = 1_735_689_600
"""2025-01-01T00:00:00Z: event time zero of every stream here."""

BURST_SERVICE = "checkout"
QUIET_SERVICE = "search"


@dataclass(frozen=True, slots=True)
class Segment:
    """``per_second`` lines a second for one service from ``start`` to ``stop`` (seconds after T0)."""

    service: str
    start: int
    stop: int
    per_second: int = 10
    error_share: float = 0.02


@dataclass(frozen=True, slots=True)
class Record:
    ts: float
    """Epoch seconds."""
    service: str
    error: bool
    message: str

    @property
    def ts_ns(self) -> int:
        return round(self.ts * 1e9)


def records(segments: Iterable[Segment]) -> list[Record]:
    """Every line of the segments, in event-time order (ties: the order segments were given)."""
    out: list[tuple[float, int, Record]] = []
    for order, seg in enumerate(segments):
        n = 0
        for second in range(seg.start, seg.stop):
            for i in range(seg.per_second):
                error = math.floor((n + 1) * seg.error_share) > math.floor(n * seg.error_share)
                ts = T0 + second + i / seg.per_second
                message = (
                    f"payment gateway timeout after {1000 + n % 900}ms (order {n})"
                    if error
                    else f"GET /api/{seg.service}/{n % 17} 200"
                )
                out.append((ts, order, Record(ts, seg.service, error, message)))
                n += 1
    out.sort(key=lambda item: (item[0], item[1]))
    return [r for _, _, r in out]


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_lines(recs: Iterable[Record]) -> bytes:
    """The records as JSON lines, the way a log shipper sends them."""
    return b"".join(
        json.dumps(
            {
                "ts": rfc3339(r.ts),
                "service": r.service,
                "level": "ERROR" if r.error else "INFO",
                "message": r.message,
            }
        ).encode()
        + b"\n"
        for r in recs
    )


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident's stream in three parts: calm, burst (one service), calm again."""

    baseline: list[Record]
    burst: list[Record]
    recovery: list[Record]

    @property
    def until_burst_ends(self) -> bytes:
        return json_lines(self.baseline + self.burst)

    @property
    def whole(self) -> bytes:
        return json_lines(self.baseline + self.burst + self.recovery)


def incident(
    *,
    service: str = BURST_SERVICE,
    others: Sequence[str] = (QUIET_SERVICE,),
    baseline_s: int = 600,
    burst_s: int = 30,
    recovery_s: int = 60,
    burst_share: float = 0.9,
) -> Incident:
    """``baseline_s`` seconds of calm on every service (enough to warm the detector up), then
    ``burst_s`` seconds in which ``burst_share`` of ``service``'s lines are errors (a critical
    anomaly), then ``recovery_s`` seconds of calm again (enough for a recovery)."""
    names = (service, *others)
    b0, b1, b2 = baseline_s, baseline_s + burst_s, baseline_s + burst_s + recovery_s

    def part(start: int, stop: int, burst: bool) -> list[Record]:
        segs = [
            Segment(name, start, stop, error_share=burst_share if burst and name == service else 0.02)
            for name in names
        ]
        return records(segs)

    return Incident(baseline=part(0, b0, False), burst=part(b0, b1, True), recovery=part(b1, b2, False))


def split_lines(data: bytes, parts: int) -> Iterator[bytes]:
    """``data`` cut into about ``parts`` pieces on line boundaries."""
    lines = data.splitlines(keepends=True)
    size = max(1, math.ceil(len(lines) / parts))
    for i in range(0, len(lines), size):
        yield b"".join(lines[i : i + size])
