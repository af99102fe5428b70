"""Detector snapshots: bytes, and a row per processor in PostgreSQL's ``detector_state``.

A snapshot holds raw state only (per-key columns, pending buckets, message samples, the
watermark, the partial line, counters) in msgpack with a format number. Every derived statistic
(rolling sums, window sums, dispersion, key lookups, the free-id heap) is rebuilt on restore with
the same integer arithmetic the running detector uses, so a restored detector emits bit for bit
the events the original would have emitted.

Errors: :class:`SnapshotError` (not retryable: the bytes are corrupt, of another format, or from
an incompatible configuration). Database errors from asyncpg propagate unchanged (a connection
failure is retryable; the caller decides).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
import numpy as np

from detector.config import STRUCTURAL_FIELDS, DetectorConfig
from detector.keys import KeyRegistry
from detector.models import AnomalyEvent
from detector.state import RAW_FIELDS

if TYPE_CHECKING:
    from detector.core import Detector

FORMAT = 1
"""Version of the snapshot layout; bump on any incompatible change."""

SAVE_STATE = """
INSERT INTO detector_state (processor_id, format, state, unclaimed, ongoing, saved_at)
VALUES ($1, $2, $3, $4::json, $5::json, now())
ON CONFLICT (processor_id) DO UPDATE
SET format = EXCLUDED.format, state = EXCLUDED.state, unclaimed = EXCLUDED.unclaimed,
    ongoing = EXCLUDED.ongoing, saved_at = EXCLUDED.saved_at
"""
LOAD_STATE = "SELECT format, state, unclaimed, ongoing FROM detector_state WHERE processor_id = $1"


class SnapshotError(Exception):
    """A snapshot that cannot be restored. Not retryable."""

    retryable = False


class Executor(Protocol):
    """What save/load need from an asyncpg connection or pool."""

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str: ...

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any: ...


def dump(det: Detector) -> bytes:
    used = det._keys.used
    columns = {
        name: [arr.dtype.str, list(arr.shape), arr.tobytes()] for name, arr in det._state.raw(used).items()
    }
    doc = {
        "format": FORMAT,
        "config": det.config.to_dict(),
        "keys": det._keys.to_state(),
        "columns": columns,
        "pending": det._pending.to_state(used),
        "messages": det._messages.to_state(),
        "next": det._next,
        "horizon": det._horizon,
        "clock": det._clock,
        "carry": det._carry,
        "discarding": det._discarding,
        "counts": dict(det._counts),
        "emitted": dict(det._emitted),
        "rejections": det._rejections.to_state(),
        "otlp_records": det._otlp.records_seen,
    }
    return msgspec.msgpack.encode(doc)


def load(data: bytes, config: DetectorConfig | None = None) -> Detector:
    from detector.core import Detector

    try:
        doc = msgspec.msgpack.decode(data)
    except (msgspec.DecodeError, ValueError) as exc:
        raise SnapshotError(f"not a detector snapshot: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise SnapshotError(f"snapshot format {found!r} is not {FORMAT}")
    try:
        stored = DetectorConfig.from_dict(doc["config"])
        if config is None:
            config = stored
        changed = [f for f in STRUCTURAL_FIELDS if getattr(config, f) != getattr(stored, f)]
        if changed:
            raise SnapshotError(f"snapshot taken with different {', '.join(changed)}")
        det = Detector(config)
        det._keys = KeyRegistry.from_state(config.max_keys, doc["keys"])
        used = det._keys.used
        columns = {
            name: np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()
            for name, (dtype, shape, raw) in doc["columns"].items()
        }
        if set(columns) != set(RAW_FIELDS):
            raise SnapshotError("snapshot columns do not match this detector")
        det._state.load_raw(columns, used)
        det._pending.grow(det._state.capacity)
        det._pending.load_state(doc["pending"], used)
        det._messages.load_state(doc["messages"])
        det._next, det._horizon, det._clock = doc["next"], doc["horizon"], doc["clock"]
        det._carry, det._discarding = bytes(doc["carry"]), bool(doc["discarding"])
        det._counts.update({k: int(v) for k, v in doc["counts"].items()})
        det._emitted.update({k: int(v) for k, v in doc["emitted"].items()})
        det._rejections.load_state(doc["rejections"])
        det._otlp.records_seen = int(doc["otlp_records"])
        last = None if det._next is None else det._next - 1
        det._state.rebuild(last, used)
    except SnapshotError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"corrupt detector snapshot: {exc!r}") from exc
    return det


async def save_state(db: Executor, processor_id: str, detector: Detector, *, timeout: float = 30.0) -> int:
    """Store ``detector``'s snapshot as ``processor_id``'s row; returns its size in bytes."""
    data = detector.snapshot()
    await save_bytes(db, processor_id, data, timeout=timeout)
    return len(data)


async def save_bytes(
    db: Executor,
    processor_id: str,
    data: bytes,
    *,
    unclaimed: Sequence[AnomalyEvent] = (),
    ongoing: Sequence[AnomalyEvent] = (),
    timeout: float = 30.0,
) -> None:
    """Store snapshot bytes taken earlier (e.g. on the detector's own thread) as ``processor_id``'s
    row, with the anomaly events taken at the same moment: those the detector had emitted but
    nobody had claimed yet, and those still ongoing (see :class:`Checkpoint`)."""
    await db.execute(
        SAVE_STATE, processor_id, FORMAT, data, _events(unclaimed), _events(ongoing), timeout=timeout
    )


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A processor's saved detector and the anomaly events saved with it."""

    detector: Detector
    unclaimed: list[AnomalyEvent]
    """Emitted before the snapshot but not yet claimed: the restored detector will not emit them
    again, so they must be claimed from here."""
    ongoing: list[AnomalyEvent]
    """The latest onset or escalation of each anomaly not yet recovered."""


async def load_checkpoint(
    db: Executor, processor_id: str, config: DetectorConfig | None = None, *, timeout: float = 30.0
) -> Checkpoint | None:
    """What was saved for ``processor_id``, or None when there is no row."""
    row = await db.fetchrow(LOAD_STATE, processor_id, timeout=timeout)
    if row is None:
        return None
    if row["format"] != FORMAT:
        raise SnapshotError(f"stored snapshot format {row['format']} is not {FORMAT}")
    detector = load(bytes(row["state"]), config)
    try:
        unclaimed = [AnomalyEvent.from_dict(d) for d in msgspec.json.decode(row["unclaimed"])]
        ongoing = [AnomalyEvent.from_dict(d) for d in msgspec.json.decode(row["ongoing"])]
    except (msgspec.DecodeError, KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"corrupt anomaly events saved with the snapshot: {exc!r}") from exc
    return Checkpoint(detector, unclaimed, ongoing)


async def load_state(
    db: Executor, processor_id: str, config: DetectorConfig | None = None, *, timeout: float = 30.0
) -> Detector | None:
    """The detector saved for ``processor_id``, or None when there is no row."""
    checkpoint = await load_checkpoint(db, processor_id, config, timeout=timeout)
    return None if checkpoint is None else checkpoint.detector


def _events(events: Sequence[AnomalyEvent]) -> str:
    return msgspec.json.encode([e.to_dict() for e in events]).decode()
