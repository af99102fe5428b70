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

Every function maps finite inputs to finite outputs (never NaN, never infinity).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Z_CAP = 1e6
"""|z| is capped here so that scores and downstream arithmetic stay finite."""


def deviance_z(x: FloatArray, lam: FloatArray, phi: FloatArray | float) -> FloatArray:
    """Signed-root Poisson deviance of counts ``x`` against expectations ``lam`` (> 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(x > 0, x / lam, 1.0)
        d = 2.0 * (np.where(x > 0, x * np.log(ratio), 0.0) - (x - lam))
    d = np.maximum(d, 0.0) / phi
    z = np.sqrt(d) * np.sign(x - lam)
    return np.clip(z, -Z_CAP, Z_CAP)


def deviance_z1(x: float, lam: float, phi: float) -> float:
    """Scalar :func:`deviance_z`."""
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


def dispersion(
    n_slots: FloatArray,
    sum_e: FloatArray,
    sum_n: FloatArray,
    sum_e2: FloatArray,
    sum_ne: FloatArray,
    sum_n2: FloatArray,
    cap: float,
) -> tuple[FloatArray, FloatArray]:
    """Overdispersion of errors and of volume between completed baseline slots, in [1, cap].

    Errors: the residual ``Σ (e_j - p n_j)²`` over slots against its Poisson expectation
    ``Σ p n_j``. Volume: the between-slot variance of volume against its mean. Inputs are exact
    integer sums, so the result is a pure function of the stored slots (restores bit for bit).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(sum_n > 0, sum_e / sum_n, 0.0)
        resid = sum_e2 - 2.0 * p * sum_ne + p * p * sum_n2
        phi = np.where(sum_e > 0, resid / (p * sum_n), 1.0)
        mean = np.where(n_slots > 0, sum_n / n_slots, 0.0)
        var = np.where(n_slots > 1, (sum_n2 - n_slots * mean * mean) / np.maximum(n_slots - 1, 1), 0.0)
        phi_n = np.where(mean > 0, var / mean, 1.0)
    phi = np.clip(np.nan_to_num(phi, nan=1.0, posinf=cap, neginf=1.0), 1.0, cap)
    phi_n = np.clip(np.nan_to_num(phi_n, nan=1.0, posinf=cap, neginf=1.0), 1.0, cap)
    return phi, phi_n
