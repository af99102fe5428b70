"""Deterministic synthetic log streams for detector tests (seeded numpy, no wall clock)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from detector import AnomalyEvent, Detector

T0 = 1_735_689_600
"""2025-01-01T00:00:00Z: event time zero of every synthetic stream."""


@dataclass(frozen=True)
class Service:
    name: str
    volume: float
    """Mean events per second."""
    error_rate: float
    project: str = "default"


Shape = Callable[[str, int], tuple[float, float]]
"""(service, second) -> (volume multiplier, error-rate multiplier or absolute override < 0)."""


def steady(_service: str, _second: int) -> tuple[float, float]:
    return 1.0, 1.0


def line(
    ts: int | float | str, service: str, level: str = "INFO", message: str = "ok", **extra: object
) -> bytes:
    ts_json = f'"{ts}"' if isinstance(ts, str) else repr(ts)
    fields = [f'"ts":{ts_json}', f'"service":"{service}"', f'"level":"{level}"', f'"message":"{message}"']
    for key, value in extra.items():
        fields.append(f'"{key}":' + (f'"{value}"' if isinstance(value, str) else str(value)))
    return ("{" + ",".join(fields) + "}").encode()


def seconds(
    services: list[Service], start: int, stop: int, shape: Shape = steady, seed: int = 0
) -> Iterator[bytes]:
    """One chunk of JSON lines per second of event time, Poisson volumes and binomial errors."""
    rng = np.random.default_rng(seed)
    for sec in range(start, stop):
        out: list[bytes] = []
        for svc in services:
            vol_mult, err = shape(svc.name, sec)
            rate = -err if err < 0 else min(1.0, svc.error_rate * err)
            n = int(rng.poisson(svc.volume * vol_mult))
            e = int(rng.binomial(n, rate)) if n else 0
            project = f',"project":"{svc.project}"' if svc.project != "default" else ""
            for i in range(n):
                level = "ERROR" if i < e else "INFO"
                msg = f"request {i} failed after {rng.integers(1, 5000)}ms" if i < e else "request ok"
                record = (
                    f'"ts":{T0 + sec},"service":"{svc.name}","level":"{level}","message":"{msg}"{project}'
                )
                out.append(("{" + record + "}").encode())
        yield b"\n".join(out) + b"\n" if out else b""


def run(det: Detector, chunks: Iterator[bytes] | list[bytes]) -> list[AnomalyEvent]:
    events: list[AnomalyEvent] = []
    for chunk in chunks:
        events += det.feed(chunk)
    return events


def of(events: list[AnomalyEvent], service: str) -> list[AnomalyEvent]:
    return [e for e in events if e.service == service]
