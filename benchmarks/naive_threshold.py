"""A naive fixed-threshold detector: the baseline the quality benchmark compares against.

It is what a plain alert rule does: open an incident for a (project, service) when one bucket
holds at least ``threshold`` errors, close it after ``quiet_buckets`` buckets below it. No
baseline, no statistics, no volume-collapse signal. It reads the same bytes as the detector
(lines decoded one by one; bad lines skipped), and works offline: it counts the whole stream
first, so it has no lateness limit either.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime

import msgspec

from detector.models import Severity, Signal, fingerprint
from logwarden.evaluation import DetectedIncident

_ERROR_LEVELS = frozenset({"error", "fatal", "critical", "alert", "emergency"})


class _Line(msgspec.Struct, gc=False):
    ts: datetime | float
    service: str
    level: str = ""
    project: str = "default"
    status: int | None = None


class NaiveThresholdDetector:
    """Counts errors per (project, service, bucket); ``incidents()`` applies the rule."""

    def __init__(self, *, threshold: int = 10, quiet_buckets: int = 10, bucket_s: int = 1) -> None:
        self.threshold = threshold
        self.quiet_buckets = quiet_buckets
        self.bucket_s = bucket_s
        self.errors: dict[tuple[str, str], Counter[int]] = {}
        self._decoder = msgspec.json.Decoder(_Line)

    def feed(self, chunk: bytes) -> None:
        decode = self._decoder.decode
        for raw in chunk.splitlines():
            try:
                line = decode(raw)
            except (msgspec.DecodeError, UnicodeDecodeError):
                continue
            if not line.service or not (
                line.level.lower() in _ERROR_LEVELS or (line.status is not None and line.status >= 500)
            ):
                continue
            ts = line.ts.timestamp() if isinstance(line.ts, datetime) else line.ts
            if ts > 1e11:  # epoch milliseconds
                ts /= 1000.0
            bucket = int(ts // self.bucket_s)
            self.errors.setdefault((line.project, line.service), Counter())[bucket] += 1

    def incidents(self) -> list[DetectedIncident]:
        out: list[DetectedIncident] = []
        for (project, service), counts in self.errors.items():
            out.extend(self._key_incidents(project, service, counts))
        return sorted(out, key=lambda d: (d.start, d.project, d.service))

    def _key_incidents(self, project: str, service: str, counts: Counter[int]) -> Iterable[DetectedIncident]:
        fp = fingerprint(project, service, Signal.ERROR_RATE)
        hot = sorted(b for b, n in counts.items() if n >= self.threshold)
        start = last = None
        for bucket in hot:
            if start is not None and last is not None and bucket - last > self.quiet_buckets:
                yield self._incident(project, service, fp, start, last)
                start = None
            if start is None:
                start = bucket
            last = bucket
        if start is not None and last is not None:
            yield self._incident(project, service, fp, start, last)

    def _incident(self, project: str, service: str, fp: str, first: int, last: int) -> DetectedIncident:
        size = self.bucket_s
        return DetectedIncident(
            project=project,
            service=service,
            signal=Signal.ERROR_RATE,
            fingerprint=fp,
            start=float(first * size),
            alerts=(float((first + 1) * size),),
            end=float((last + 1 + self.quiet_buckets) * size),
            severity=Severity.WARNING,
        )
