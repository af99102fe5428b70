"""Detector: log ingestion, streaming anomaly detection, and PostgreSQL dedup of anomalies.

Public API (stable)::

    from detector import Detector, DetectorConfig, SeriesScorer, AnomalyEvent

Names are imported lazily (PEP 562) so that light tools such as ``logwarden score`` do not pay
for numpy and msgspec unless they use the log detector.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from detector.config import DetectorConfig
    from detector.core import Detector
    from detector.counters import DetectorStats
    from detector.models import AnomalyEvent
    from detector.series import SeriesScore, SeriesScorer

__all__ = ["AnomalyEvent", "Detector", "DetectorConfig", "DetectorStats", "SeriesScore", "SeriesScorer"]

_WHERE = {
    "AnomalyEvent": "detector.models",
    "Detector": "detector.core",
    "DetectorConfig": "detector.config",
    "DetectorStats": "detector.counters",
    "SeriesScore": "detector.series",
    "SeriesScorer": "detector.series",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'detector' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
