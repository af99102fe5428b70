"""numpy forms of :mod:`detector.scoring` for many keys at once, and baseline dispersion."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from detector.scoring import Z_CAP

FloatArray = npt.NDArray[np.float64]


def deviance_z(x: FloatArray, lam: FloatArray, phi: FloatArray | float) -> FloatArray:
    """Signed-root Poisson deviance of counts ``x`` (>= 0) against expectations ``lam`` (> 0,
    finite), divided by the dispersion ``phi`` (see :func:`detector.scoring.deviance_z1`: the
    same operations in the same order; numpy's log may differ from libm's in the last bit).
    Within those bounds no step divides by zero or makes a NaN, so no error state is set."""
    diff = x - lam
    # x ln(x / lam), 0 at x = 0 (0 times the log of a tiny ratio, finite for any finite lam)
    d = np.maximum(x, _TINY)
    d /= lam
    np.log(d, out=d)
    d *= x
    d -= diff
    d *= 2.0
    np.maximum(d, 0.0, out=d)
    d /= phi
    np.sqrt(d, out=d)
    np.copysign(d, diff, out=d)  # sign(x - lam); 0 when x == lam, as then d is 0
    np.minimum(d, Z_CAP, out=d)
    np.maximum(d, -Z_CAP, out=d)
    return d


_TINY = 1e-100
"""Below every positive count, and far enough above 0 that its ratio to any expectation is too."""


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
    out: FloatArray | None = None,
) -> FloatArray:
    """Overdispersion of errors and of volume between completed baseline slots, in [1, cap]:
    ``out[0]`` for errors, ``out[1]`` for volume (``out`` has a leading axis of 2 and the inputs'
    shape after it; allocated when not given).

    Errors: the residual ``Σ (e_j - p n_j)²`` over slots against its Poisson expectation
    ``Σ p n_j`` (= the errors), shrunk toward ``prior`` as if ``prior_errors`` more errors had
    been seen at that dispersion: a baseline with few errors cannot show that its errors come in
    clumps, so it is not assumed that they do not. Volume: the between-slot variance of volume
    against its mean.

    Inputs are exact integer sums of whole slots (a slot with events has admitted buckets, so
    ``sum_n == 0`` implies every other sum is 0, and ``n_slots <= 1`` implies no spread): the
    zero cases need no masks, they come out as 0 and are clipped to 1. Every step is elementwise,
    so the result is a pure function of the stored slots whatever the array's shape (a restore
    reproduces it bit for bit).
    """
    if out is None:
        out = np.empty((2, *np.shape(sum_e)))
    n_most = np.maximum(sum_n, 1.0)
    p = sum_e / n_most
    # residual: e2 - 2 p ne + p^2 n2
    resid = p * sum_n2
    resid -= sum_ne
    resid -= sum_ne
    resid *= p
    resid += sum_e2
    resid += prior * prior_errors
    errors = sum_e + prior_errors
    if prior_errors <= 0:  # no errors and no prior: 0 / 1, clipped to 1 below
        np.maximum(errors, 1.0, out=errors)
    np.divide(resid, errors, out=out[0])
    # volume: between-slot variance over the mean, (n2 - n^2 / s) / (s - 1) / (n / s), that is
    # (n2 s - n^2) / ((s - 1) n)
    spread = np.maximum(n_slots, 1.0)
    spread *= sum_n2
    spread -= sum_n * sum_n
    np.maximum(spread, 0.0, out=spread)
    dof = n_slots - 1.0
    np.maximum(dof, 1.0, out=dof)
    dof *= n_most
    np.divide(spread, dof, out=out[1])
    np.maximum(out, 1.0, out=out)
    np.minimum(out, cap, out=out)
    return out
