"""Per-key detector state as numpy columns (one row per key id), raw and derived.

Raw state is what a snapshot stores; derived state (rolling sums, window sums, dispersion) is
rebuilt from it by :meth:`KeyState.rebuild`, with integer arithmetic wherever a value is
maintained incrementally, so a restored detector computes bit for bit what the original would.

Memory per key (defaults: 60 baseline slots, windows up to 16 buckets) is about 880 bytes:

* baseline ring, one entry per slot: events and errors (int32) and admitted buckets (int16);
* the current slot's events, errors and admitted buckets (int64);
* the last ``windows[-1]`` buckets' events and errors (int32), and their window sums (float64,
  exact: whole numbers far below 2**53);
* signal severities (int8); hysteresis and quarantine runs (int32); last bucket with an event
  (int64, kept per slot when the window ring covers a slot);
* rolling sums over the ring (int64) and two dispersion factors (float64).

Slot totals are clipped at :data:`SLOT_MAX` events (about 6.7 million events per second per key
at the default slot width), which keeps every sum of squares inside int64.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from detector.config import DetectorConfig
from detector.vectorised import dispersion

SLOT_MAX = 2**26
GROUP_KEYS = 64
"""Consecutive key ids that complete their baseline slots at the same bucket (see
:meth:`KeyState.group`); capacities are multiples of it."""
BUCKET_MAX = 2**31 - 1

RAW_FIELDS = (
    "ring_n",
    "ring_e",
    "ring_k",
    "cur_n",
    "cur_e",
    "cur_k",
    "win_n",
    "win_e",
    "sev_err",
    "sev_col",
    "run_err",
    "run_col",
    "quarantine",
    "last_seen",
)
"""Columns a snapshot stores; everything else is derived."""

_SPEC: dict[str, tuple[str, Any]] = {
    # name: (shape kind, dtype); "slots" and "window" columns are 2-D (rows first)
    "ring_n": ("slots", np.int32),
    "ring_e": ("slots", np.int32),
    "ring_k": ("slots", np.int16),
    "cur_n": ("key", np.int64),
    "cur_e": ("key", np.int64),
    "cur_k": ("key", np.int64),
    "win_n": ("window", np.int32),
    "win_e": ("window", np.int32),
    "sev_err": ("key", np.int8),
    "sev_col": ("key", np.int8),
    "run_err": ("key", np.int32),
    "run_col": ("key", np.int32),
    "quarantine": ("key", np.int32),
    "last_seen": ("key", np.int64),
    # derived
    "sum_n": ("key", np.int64),
    "sum_e": ("key", np.int64),
    "sum_k": ("key", np.int64),
    "sum_slots": ("key", np.int64),
    "sum_e2": ("key", np.int64),
    "sum_ne": ("key", np.int64),
    "sum_n2": ("key", np.int64),
    # window sums are whole numbers far below 2**53: exact in float64, which the scoring uses
    "wsum_n": ("windows", np.float64),
    "wsum_e": ("windows", np.float64),
    "phi": ("key", np.float64),
    "phi_n": ("key", np.float64),
}

I64 = npt.NDArray[np.int64]


class KeyState:
    """Columns of per-key state, ``capacity`` rows each; rows past ``used`` are all zero."""

    ring_n: npt.NDArray[np.int32]
    ring_e: npt.NDArray[np.int32]
    ring_k: npt.NDArray[np.int16]
    cur_n: I64
    cur_e: I64
    cur_k: I64
    win_n: npt.NDArray[np.int32]
    win_e: npt.NDArray[np.int32]
    sev_err: npt.NDArray[np.int8]
    sev_col: npt.NDArray[np.int8]
    run_err: npt.NDArray[np.int32]
    run_col: npt.NDArray[np.int32]
    quarantine: npt.NDArray[np.int32]
    last_seen: I64
    sum_n: I64
    sum_e: I64
    sum_k: I64
    sum_slots: I64
    sum_e2: I64
    sum_ne: I64
    sum_n2: I64
    wsum_n: npt.NDArray[np.float64]
    wsum_e: npt.NDArray[np.float64]
    phi: npt.NDArray[np.float64]
    phi_n: npt.NDArray[np.float64]

    def __init__(self, config: DetectorConfig, capacity: int = 64) -> None:
        self.config = config
        self.capacity = 0
        self.quarantined: npt.NDArray[np.intp] = np.zeros(0, dtype=np.intp)
        """Keys whose quarantine run is not zero (derived)."""
        self._scratch: dict[str, npt.NDArray[Any]] = {}
        zero = np.zeros(1)
        phi, phi_n = dispersion(
            zero, zero, zero, zero, zero, zero,
            config.max_dispersion, config.dispersion_prior, config.dispersion_prior_errors,
        )  # fmt: skip
        self._empty = {"phi": float(phi[0]), "phi_n": float(phi_n[0])}
        """Derived values of a key with no baseline yet (new, evicted or relearning): what
        :meth:`rebuild` computes from its zero sums, so that a restore reproduces them."""
        self._alloc(capacity)

    def _shape(self, kind: str, capacity: int) -> tuple[int, ...]:
        cfg = self.config
        extra = {
            "key": (),
            "slots": (cfg.baseline_slots,),
            "window": (cfg.windows[-1],),
            "windows": (len(cfg.windows),),
        }[kind]
        return (*extra, capacity)

    def _alloc(self, capacity: int) -> None:
        capacity = -(-capacity // GROUP_KEYS) * GROUP_KEYS
        for name, (kind, dtype) in _SPEC.items():
            arr = np.full(self._shape(kind, capacity), self._empty.get(name, 0), dtype=dtype)
            old = getattr(self, name, None)
            if old is not None:
                arr[..., : self.capacity] = old
            setattr(self, name, arr)
        self.capacity = capacity

    def scratch(self, name: str, dtype: Any, windows: bool = False) -> npt.NDArray[Any]:
        """A reusable work array of ``capacity`` columns (one row per window when ``windows``).

        Closing a bucket reuses these instead of allocating temporaries: arrays of this size
        come straight from the operating system and cost page faults on every allocation.
        Contents are undefined; callers slice ``[..., :used]`` and overwrite.
        """
        arr = self._scratch.get(name)
        if arr is None or arr.shape[-1] != self.capacity:
            shape = (len(self.config.windows), self.capacity) if windows else (self.capacity,)
            arr = self._scratch[name] = np.empty(shape, dtype=dtype)
        return arr

    def ensure(self, rows: int) -> None:
        """Room for at least ``rows`` keys (capacity doubles)."""
        if rows > self.capacity:
            capacity = max(self.capacity, 64)
            while capacity < rows:
                capacity *= 2
            self._alloc(capacity)

    def clear(self, rows: npt.NDArray[np.intp] | list[int]) -> None:
        """Zero every column of these key ids (a new or evicted key)."""
        for name in _SPEC:
            arr = getattr(self, name)
            arr[..., rows] = self._empty.get(name, 0)

    def clear_baseline(self, rows: npt.NDArray[np.intp]) -> None:
        """Forget the baseline of these keys (relearn): they warm up again from now."""
        for name in ("ring_n", "ring_e", "ring_k", "cur_n", "cur_e", "cur_k", "quarantine"):
            getattr(self, name)[..., rows] = 0
        for name in ("sum_n", "sum_e", "sum_k", "sum_slots", "sum_e2", "sum_ne", "sum_n2"):
            getattr(self, name)[rows] = 0
        self.phi[rows] = self._empty["phi"]
        self.phi_n[rows] = self._empty["phi_n"]

    def group(self, t: int, used: int) -> npt.NDArray[np.intp]:
        """The ids below ``used`` of the keys whose baseline slot ends before bucket ``t``.

        Keys are staggered over the ``slot_buckets`` buckets of a slot in blocks of
        :data:`GROUP_KEYS` consecutive ids: block ``b`` rolls at the buckets congruent to ``b``
        modulo ``slot_buckets``. That spreads the slot work evenly over the buckets, and a
        group is a few runs of adjacent memory in every column (a group of single keys with
        ``slot_buckets`` between them would touch a cache line per key and column)."""
        blocks = np.arange(*self._block_range(t, used))
        ids = (blocks[:, None] * GROUP_KEYS + np.arange(GROUP_KEYS)).ravel()
        return ids[ids < used] if len(ids) and ids[-1] >= used else ids

    def _blocks(self, column: npt.NDArray[Any], t: int, used: int) -> npt.NDArray[Any]:
        """A view of the group's keys in a per-key ``column`` (see :meth:`group`): one row per
        block. The last block may run past ``used``; its rows there are all zero (or the empty
        derived values), which a roll leaves as they are."""
        start, blocks, step = self._block_range(t, used)
        return column[: blocks * GROUP_KEYS].reshape(blocks, GROUP_KEYS)[start::step]

    def _block_range(self, t: int, used: int) -> tuple[int, int, int]:
        """(first block, blocks in use, step) of the group of bucket ``t``."""
        return t % self.config.slot_buckets, -(-used // GROUP_KEYS), self.config.slot_buckets

    def roll(self, t: int, used: int) -> None:
        """Before bucket ``t``: the keys of :meth:`group` complete their current slot, which
        replaces their oldest one."""
        cfg = self.config
        pos = (t // cfg.slot_buckets) % cfg.baseline_slots

        def g(column: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return self._blocks(column, t, used)

        if cfg.windows[-1] >= cfg.slot_buckets:  # the window ring covers the whole slot
            # any event in the ring is an event in the widest window (one row, not the ring)
            np.putmask(g(self.last_seen), g(self.wsum_n[-1]) > 0, t - 1)
        ring_n, ring_e, ring_k = g(self.ring_n[pos]), g(self.ring_e[pos]), g(self.ring_k[pos])
        cur_n, cur_e, cur_k = g(self.cur_n), g(self.cur_e), g(self.cur_k)
        old_n = ring_n.astype(np.int64)
        old_e = ring_e.astype(np.int64)
        old_k = ring_k.astype(np.int64)
        new_n = np.minimum(cur_n, SLOT_MAX)
        new_e = np.minimum(cur_e, SLOT_MAX)
        new_k = cur_k.copy()
        sum_n, sum_e, sum_k, sum_slots = g(self.sum_n), g(self.sum_e), g(self.sum_k), g(self.sum_slots)
        sum_e2, sum_ne, sum_n2 = g(self.sum_e2), g(self.sum_ne), g(self.sum_n2)
        sum_n += new_n - old_n
        sum_e += new_e - old_e
        sum_k += new_k - old_k
        sum_slots += (new_k > 0).view(np.int8) - (old_k > 0).view(np.int8)
        sum_e2 += new_e * new_e - old_e * old_e
        sum_ne += new_n * new_e - old_n * old_e
        sum_n2 += new_n * new_n - old_n * old_n
        ring_n[...] = new_n
        ring_e[...] = new_e
        ring_k[...] = new_k
        cur_n[...] = 0
        cur_e[...] = 0
        cur_k[...] = 0
        phi, phi_n = self._dispersion_of(g)
        g(self.phi)[...] = phi
        g(self.phi_n)[...] = phi_n

    def _dispersion_of(
        self, select: Callable[[npt.NDArray[Any]], npt.NDArray[Any]]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """phi, phi_n of the keys ``select(column)`` picks, from their (exact) rolling sums."""
        return dispersion(
            select(self.sum_slots).astype(np.float64),
            select(self.sum_e).astype(np.float64),
            select(self.sum_n).astype(np.float64),
            select(self.sum_e2).astype(np.float64),
            select(self.sum_ne).astype(np.float64),
            select(self.sum_n2).astype(np.float64),
            self.config.max_dispersion,
            self.config.dispersion_prior,
            self.config.dispersion_prior_errors,
        )

    def rebuild(self, last_bucket: int | None, used: int) -> None:
        """Recompute every derived column from the raw ones (after a restore)."""
        u = slice(0, used)
        n = self.ring_n[:, u].astype(np.int64)
        e = self.ring_e[:, u].astype(np.int64)
        k = self.ring_k[:, u].astype(np.int64)
        self.sum_n[u] = n.sum(axis=0)
        self.sum_e[u] = e.sum(axis=0)
        self.sum_k[u] = k.sum(axis=0)
        self.sum_slots[u] = (k > 0).sum(axis=0)
        self.sum_e2[u] = (e * e).sum(axis=0)
        self.sum_ne[u] = (n * e).sum(axis=0)
        self.sum_n2[u] = (n * n).sum(axis=0)
        self.phi[u], self.phi_n[u] = self._dispersion_of(lambda column: column[u])
        self.quarantined = np.flatnonzero(self.quarantine[u] > 0)
        width = self.config.windows[-1]
        for i, w in enumerate(self.config.windows):
            if last_bucket is None:
                self.wsum_n[i, u] = 0
                self.wsum_e[i, u] = 0
                continue
            positions = [(last_bucket - j) % width for j in range(w)]
            self.wsum_n[i, u] = self.win_n[positions][:, u].astype(np.int64).sum(axis=0)
            self.wsum_e[i, u] = self.win_e[positions][:, u].astype(np.int64).sum(axis=0)

    def raw(self, used: int) -> dict[str, npt.NDArray[Any]]:
        """The raw columns of the first ``used`` keys (for a snapshot)."""
        return {name: np.ascontiguousarray(getattr(self, name)[..., :used]) for name in RAW_FIELDS}

    def load_raw(self, columns: dict[str, npt.NDArray[Any]], used: int) -> None:
        self.ensure(max(used, 1))
        for name in RAW_FIELDS:
            kind, dtype = _SPEC[name]
            arr = columns[name]
            if arr.dtype != dtype or arr.shape != self._shape(kind, used):
                raise ValueError(f"snapshot column {name} has shape {arr.shape} {arr.dtype}")
            getattr(self, name)[..., :used] = arr

    def nbytes_per_key(self) -> int:
        total: int = sum(int(getattr(self, name).nbytes) for name in _SPEC)
        return total // max(self.capacity, 1)
