"""Ingest accounting: why input was rejected, with a few samples, and the detector's counters.

Bad input never raises out of the detector: each rejected line or record is counted under one
:class:`Reason`, and the first few of each reason are kept as short samples for operators.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    """Why a line or record was rejected (the first that applies, in this order)."""

    TOO_LONG = "too_long"
    """The line is longer than ``max_line_bytes``."""
    EMPTY_LINE = "empty_line"
    """The line is empty or only whitespace."""
    NON_UTF8 = "non_utf8"
    """The bytes are not valid UTF-8."""
    NON_FINITE = "non_finite"
    """NaN, Infinity or a number too large for a double."""
    MALFORMED_JSON = "malformed_json"
    """Not one JSON value (syntax error, truncated, or several values on one line)."""
    WRONG_TYPE = "wrong_type"
    """Valid JSON of the wrong shape: not an object, or a field of the wrong type."""
    MISSING_SERVICE = "missing_service"
    """No service (absent or empty; for OTLP no ``service.name`` resource attribute)."""
    NAME_TOO_LONG = "name_too_long"
    """The project or service name is longer than ``max_name_chars``."""
    MISSING_TIMESTAMP = "missing_timestamp"
    """No event time (JSON ``ts`` absent; OTLP time and observed time both unset)."""
    BAD_TIMESTAMP = "bad_timestamp"
    """The event time cannot be parsed."""
    ABSURD_TIMESTAMP = "absurd_timestamp"
    """The event time is outside the plausible range or too far ahead of the clock."""
    KEY_LIMIT = "key_limit"
    """A new (project, service) beyond ``max_keys`` live keys."""
    MALFORMED_OTLP = "malformed_otlp"
    """An OTLP request body that cannot be decoded at all (every record in it is lost)."""
    UNSUPPORTED_CONTENT_TYPE = "unsupported_content_type"
    """An OTLP request whose content type is neither protobuf nor JSON."""


SAMPLE_CHARS = 160


class Rejections:
    """Counts by reason plus the first ``samples`` examples of each (bounded memory)."""

    __slots__ = ("_counts", "_samples", "samples")

    def __init__(self, samples: int) -> None:
        self.samples = samples
        self._counts: dict[Reason, int] = {}
        self._samples: dict[Reason, list[str]] = {}

    def add(self, reason: Reason, where: str, excerpt: object, count: int = 1) -> None:
        self._counts[reason] = self._counts.get(reason, 0) + count
        kept = self._samples.setdefault(reason, [])
        if len(kept) < self.samples:
            kept.append(sample_text(where, excerpt))

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def counts(self) -> dict[str, int]:
        return {r.value: c for r, c in sorted(self._counts.items())}

    def sample_map(self) -> dict[str, tuple[str, ...]]:
        return {r.value: tuple(s) for r, s in sorted(self._samples.items())}

    def to_state(self) -> dict[str, Any]:
        return {"counts": self.counts(), "samples": {k: list(v) for k, v in self.sample_map().items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        self._counts = {Reason(k): int(v) for k, v in state["counts"].items()}
        self._samples = {Reason(k): [str(s) for s in v] for k, v in state["samples"].items()}


def sample_text(where: str, excerpt: object) -> str:
    """A short, printable sample: where it was, and the start of the offending input."""
    if isinstance(excerpt, bytes | bytearray | memoryview):
        text = bytes(excerpt[: SAMPLE_CHARS * 4]).decode("utf-8", errors="replace")
    else:
        text = excerpt if isinstance(excerpt, str) else repr(excerpt)
    if len(text) > SAMPLE_CHARS:
        text = text[:SAMPLE_CHARS] + "…"
    return f"{where}: {text!r}"


@dataclass(frozen=True, slots=True)
class DetectorStats:
    """A point-in-time view of the detector's counters (see :meth:`Detector.stats`)."""

    lines_received: int
    """JSON lines seen (complete lines, including rejected ones)."""
    otlp_requests: int
    otlp_records: int
    """OTLP log records seen (including rejected ones)."""
    events_accepted: int
    """Log events that were counted into a bucket."""
    rejected: dict[str, int]
    """Rejected lines or records by :class:`Reason` value."""
    rejected_samples: dict[str, tuple[str, ...]]
    late_events: int
    """Events whose bucket had already closed (counted, not merged)."""
    keys: int
    """Live (project, service) keys."""
    keys_evicted: int
    buckets_closed: int
    watermark: float | None
    """Event time up to which buckets are closed (epoch seconds), None before any input."""
    anomaly_events: dict[str, int] = field(default_factory=dict)
    """Emitted anomaly events by kind."""
    state_bytes: int = 0
    """Approximate bytes held by per-key state arrays."""

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines_received": self.lines_received,
            "otlp_requests": self.otlp_requests,
            "otlp_records": self.otlp_records,
            "events_accepted": self.events_accepted,
            "rejected": dict(self.rejected),
            "rejected_samples": {k: list(v) for k, v in self.rejected_samples.items()},
            "late_events": self.late_events,
            "keys": self.keys,
            "keys_evicted": self.keys_evicted,
            "buckets_closed": self.buckets_closed,
            "watermark": self.watermark,
            "anomaly_events": dict(self.anomaly_events),
            "state_bytes": self.state_bytes,
        }
