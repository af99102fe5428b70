"""The statistics shared by the log detector and the series scorer, vectorised and scalar.

* **z for counts** — the signed root of the Poisson deviance of an observed count against its
  expectation, divided by the overdispersion: ``sign(x - λ) * sqrt(2 (x ln(x/λ) - (x - λ)) / φ)``.
  For large counts it equals ``(x - λ) / sqrt(φ λ)``; for small ones it keeps the right tail
  honest (a plain z-score calls 6 errors against an expected 1 a "5 sigma" event, which happens
  once an hour per service; the deviance z of 10 against 1 really is about 1 in 10 million).
  The expectation is floored (``expected_floor``): that is the variance floor.
* **rate of change** — relative change of a rate against the previous window, over a floored
  base: finite for every input, including a zero previous window.
* **score** — ``z² / (z² + threshold²)`` for positive z: 0 when normal, 0.5 exactly at the
  alert threshold, approaching 1 as z grows. In [0, 1) for every finite z.

Every function maps finite inputs to finite outputs (never NaN, never infinity). Pure Python
(the numpy forms over many keys are in :mod:`detector.vectorised`).
"""

from __future__ import annotations

import math

Z_CAP = 1e6
"""|z| is capped here so that scores and downstream arithmetic stay finite."""


def deviance_z1(x: float, lam: float, phi: float) -> float:
    """Signed-root Poisson deviance of a count ``x`` against its expectation ``lam`` (> 0)."""
    d = 2.0 * ((x * math.log(x / lam) if x > 0 else 0.0) - (x - lam))
    z = math.sqrt(max(d, 0.0) / phi)
    z = z if x > lam else -z if x < lam else 0.0
    return max(-Z_CAP, min(Z_CAP, z))


def rate_of_change(now: float, before: float, floor: float) -> float:
    """``(now - before) / max(|before|, floor)``; finite for finite inputs."""
    base = max(abs(before), floor)
    return max(-Z_CAP, min(Z_CAP, (now - before) / base))


def score(z: float, threshold: float) -> float:
    """Anomaly score in [0, 1): 0.5 exactly at ``threshold``."""
    if not z > 0:
        return 0.0
    z = min(z, Z_CAP)
    return (z * z) / (z * z + threshold * threshold)


def ewma_step(previous: float, value: float, alpha: float) -> float:
    return alpha * value + (1.0 - alpha) * previous
