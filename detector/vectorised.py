"""numpy forms of :mod:`detector.scoring` for many keys at once, and baseline dispersion."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from detector.scoring import Z_CAP

FloatArray = npt.NDArray[np.float64]


def deviance_z(x: FloatArray, lam: FloatArray, phi: FloatArray | float) -> FloatArray:
    """Signed-root Poisson deviance of counts ``x`` against expectations ``lam`` (> 0), divided by
    the dispersion ``phi`` (see :func:`detector.scoring.deviance_z1`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(x > 0, x / lam, 1.0)
        d = 2.0 * (np.where(x > 0, x * np.log(ratio), 0.0) - (x - lam))
    d = np.maximum(d, 0.0) / phi
    z: FloatArray = np.clip(np.sqrt(d) * np.sign(x - lam), -Z_CAP, Z_CAP)
    return z


def dispersion(
    n_slots: FloatArray,
    sum_e: FloatArray,
    sum_n: FloatArray,
    sum_e2: FloatArray,
    sum_ne: FloatArray,
    sum_n2: FloatArray,
    cap: float,
    prior: float = 1.0,
    prior_errors: float = 0.0,
) -> tuple[FloatArray, FloatArray]:
    """Overdispersion of errors and of volume between completed baseline slots, in [1, cap].

    Errors: the residual ``Σ (e_j - p n_j)²`` over slots against its Poisson expectation
    ``Σ p n_j`` (= the errors), shrunk toward ``prior`` as if ``prior_errors`` more errors had
    been seen at that dispersion: a baseline with few errors cannot show that its errors come in
    clumps, so it is not assumed that they do not. Volume: the between-slot variance of volume
    against its mean.
    Inputs are exact integer sums, so the result is a pure function of the stored slots (a
    restore reproduces it bit for bit).
    """
    p = np.divide(sum_e, sum_n, out=np.zeros_like(sum_e), where=sum_n > 0)
    resid = sum_e2 - p * (2.0 * sum_ne - p * sum_n2)
    phi = np.divide(
        resid + prior * prior_errors,
        sum_e + prior_errors,
        out=np.ones_like(sum_e),
        where=sum_e + prior_errors > 0,
    )
    mean = np.divide(sum_n, n_slots, out=np.zeros_like(sum_n), where=n_slots > 0)
    spread = np.maximum(sum_n2 - n_slots * mean * mean, 0.0)
    var = np.divide(spread, n_slots - 1.0, out=np.zeros_like(sum_n), where=n_slots > 1)
    phi_n = np.divide(var, mean, out=np.ones_like(sum_n), where=mean > 0)
    np.clip(phi, 1.0, cap, out=phi)
    np.clip(phi_n, 1.0, cap, out=phi_n)
    return phi, phi_n
