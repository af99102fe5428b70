"""Counts of buckets that have not closed yet: per bucket, events and errors per key id.

A batch is aggregated with ``numpy.bincount`` over ``bucket * capacity + key`` when that range is
small, with ``numpy.add.at`` when there are many more keys than events, else by sorting; no
Python code runs per event. Only the few buckets inside the
lateness horizon are open at a time, so memory is a handful of arrays of ``capacity`` counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]


class PendingBuckets:
    """bucket index -> events and errors per key: a (2, ``capacity``) int64 array, rows
    :data:`~detector.state.N` and :data:`~detector.state.E` (unpacks as ``n, e``)."""

    __slots__ = ("_spare", "buckets", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.buckets: dict[int, I64] = {}
        self._spare: list[I64] = []

    def __bool__(self) -> bool:
        return bool(self.buckets)

    def first(self) -> int | None:
        return min(self.buckets) if self.buckets else None

    def grow(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return
        for b, counts in list(self.buckets.items()):
            grown = np.zeros((2, capacity), np.int64)
            grown[:, : self.capacity] = counts
            self.buckets[b] = grown
        self._spare.clear()
        self.capacity = capacity

    def _arrays(self, bucket: int) -> I64:
        counts = self.buckets.get(bucket)
        if counts is None:
            counts = self._spare.pop() if self._spare else np.zeros((2, self.capacity), np.int64)
            self.buckets[bucket] = counts
        return counts

    def add(self, buckets: I64, keys: I64, errors: npt.NDArray[np.bool_]) -> None:
        """Count events (one per row) into their bucket and key."""
        if not len(buckets):
            return
        cap = self.capacity
        low = int(buckets.min())
        span = int(buckets.max()) - low + 1
        if cap > 4 * len(buckets) and span <= 16:
            # many keys, few events: touch only the counters of the keys seen (cost O(events))
            for b in range(low, low + span):
                here = buckets == b if span > 1 else None
                if here is not None and not here.any():
                    continue
                n, e = self._arrays(b)
                np.add.at(n, keys if here is None else keys[here], 1)
                np.add.at(e, keys[errors] if here is None else keys[here & errors], 1)
            return
        if span * cap <= 32 * len(buckets) + (1 << 17):
            idx = (buckets - low) * cap + keys
            counts = np.bincount(idx, minlength=span * cap).reshape(span, cap)
            errs = np.bincount(idx[errors], minlength=span * cap).reshape(span, cap)
            for j in range(span) if span > 1 else (0,):
                row = counts[j]
                if span > 1 and not row.any():
                    continue
                n, e = self._arrays(low + j)
                n += row
                e += errs[j]
            return
        idx = (buckets - low) * cap + keys
        uniq, inverse = np.unique(idx, return_inverse=True)
        counts = np.bincount(inverse, minlength=len(uniq))
        errs = np.bincount(inverse[errors], minlength=len(uniq))
        which = uniq // cap
        cuts = np.flatnonzero(np.diff(which)) + 1
        for part in np.split(np.arange(len(uniq)), cuts):
            n, e = self._arrays(low + int(which[part[0]]))
            k = uniq[part] % cap
            n[k] += counts[part]
            e[k] += errs[part]

    def holding(self, used: int) -> npt.NDArray[np.bool_]:
        """Keys with counts in some open bucket (they must not be evicted)."""
        mask = np.zeros(used, dtype=np.bool_)
        for n, _ in self.buckets.values():
            mask |= n[:used] > 0
        return mask

    def pop(self, bucket: int) -> I64 | None:
        return self.buckets.pop(bucket, None)

    def recycle(self, counts: I64, used: int) -> None:
        """Keep a popped bucket's array for reuse; ids from ``used`` on never had counts."""
        if counts.shape[1] == self.capacity and len(self._spare) < 4:
            counts[:, :used] = 0
            self._spare.append(counts)

    def to_state(self, used: int) -> list[list[Any]]:
        return [[b, n[:used].tobytes(), e[:used].tobytes()] for b, (n, e) in sorted(self.buckets.items())]

    def load_state(self, state: list[list[Any]], used: int) -> None:
        self.buckets.clear()
        for b, n_bytes, e_bytes in state:
            n, e = self._arrays(int(b))
            n[:used] = np.frombuffer(n_bytes, dtype=np.int64)
            e[:used] = np.frombuffer(e_bytes, dtype=np.int64)
