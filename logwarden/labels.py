"""Ground-truth incident labels: what a workload injected, and the JSON-lines labels file.

A :class:`Label` says that one (project, service) misbehaved in a known way between ``start``
and ``end`` (event time, epoch seconds) and which detector signal should notice it. A label
whose ``signal`` is ``None`` is a *negative* label: nothing should be detected there (a new
service warming up), so any detection overlapping it is a false incident.

The labels file holds one JSON object per line (``Label.to_dict``). Reading it raises
:class:`LabelsFileError` (permanent: fix the file) naming the line and what is wrong with it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from detector.models import Signal


class LabelsFileError(ValueError):
    """A labels file line is not a valid label. Permanent: the file must be fixed."""


class IncidentType(StrEnum):
    """What the generator injected."""

    SPIKE = "spike"
    """Error rate multiplied by the magnitude (2x to 50x) for tens of seconds to two minutes."""
    STEP = "step"
    """Error rate multiplied by the magnitude and kept there for 15 to 30 minutes."""
    RAMP = "ramp"
    """Error rate rising linearly to the magnitude over minutes, held, then dropping back."""
    BURST = "burst"
    """Errors (magnitude = errors per second) on a service whose baseline has none."""
    OUTAGE = "outage"
    """A busy service goes silent (magnitude = share of volume left: 0)."""
    NEW_SERVICE = "new_service"
    """A service appears mid-stream; nothing should fire while it warms up (negative label)."""


@dataclass(frozen=True, slots=True)
class Label:
    """One injected incident (or, with ``signal=None``, a stretch where no alert is expected)."""

    incident_id: str
    project: str
    service: str
    type: IncidentType
    magnitude: float
    """Spike/step/ramp: error-rate multiplier at the peak; burst: errors per second;
    outage: share of volume left; new service: lines per second."""
    start: float
    """Event time (epoch seconds) the incident begins."""
    end: float
    """Event time (epoch seconds) it ends (exclusive)."""
    signal: Signal | None
    """The detector signal expected to fire; ``None``: no detection expected."""
    baseline: float = 0.0
    """Expected errors per second just before ``start`` (lines per second for an outage)."""

    @property
    def positive(self) -> bool:
        """True when a detection is expected."""
        return self.signal is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "project": self.project,
            "service": self.service,
            "type": self.type.value,
            "magnitude": self.magnitude,
            "start": self.start,
            "end": self.end,
            "signal": None if self.signal is None else self.signal.value,
            "baseline": self.baseline,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Label:
        """Validate and build; raises ``ValueError`` (or ``KeyError``) naming the bad field."""

        def text(key: str) -> str:
            value = data[key]
            if not isinstance(value, str) or not value:
                raise ValueError(f"{key} must be a non-empty string")
            return value

        def num(key: str, default: float | None = None) -> float:
            value = data.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key} must be a number")
            if not math.isfinite(value):
                raise ValueError(f"{key} must be finite")
            return float(value)

        signal = data.get("signal")
        label = cls(
            incident_id=text("incident_id"),
            project=text("project"),
            service=text("service"),
            type=IncidentType(data["type"]),
            magnitude=num("magnitude"),
            start=num("start"),
            end=num("end"),
            signal=None if signal is None else Signal(signal),
            baseline=num("baseline", 0.0),
        )
        if label.end < label.start:
            raise ValueError("end is before start")
        return label


def dumps_labels(labels: Iterable[Label]) -> bytes:
    """The labels file content: one JSON object per line."""
    return b"".join(json.dumps(label.to_dict(), sort_keys=True).encode() + b"\n" for label in labels)


def parse_labels(data: bytes) -> list[Label]:
    """Parse a labels file; blank lines are skipped, anything else wrong raises LabelsFileError."""
    labels: list[Label] = []
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            labels.append(Label.from_dict(obj))
        except KeyError as exc:
            raise LabelsFileError(f"labels line {number}: missing field {exc.args[0]}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise LabelsFileError(f"labels line {number}: {exc}") from None
    return labels


def write_labels(labels: Iterable[Label], path: Path) -> None:
    path.write_bytes(dumps_labels(labels))


def read_labels(path: Path) -> list[Label]:
    """Read a labels file; raises LabelsFileError for bad content, OSError if unreadable."""
    return parse_labels(path.read_bytes())
