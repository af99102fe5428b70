"""Counts of buckets that have not closed yet: per bucket, events and errors per key id.

A batch is aggregated with ``numpy.bincount`` over ``bucket * capacity + key`` when that range is
small, with ``numpy.add.at`` when there are many more keys than events, else by sorting; no
Python code runs per event. Only the few buckets inside the
lateness horizon are open at a time, so memory is a handful of arrays of ``capacity`` counts.

Counts are int32, which is what a bucket close works in (see :attr:`KeyState.bucket_max
<detector.state.KeyState.bucket_max>`), so that a close reads them as they are. No count can
exceed the number of rows ever added to its bucket, which is tracked: a bucket that could pass
the int32 range is widened to int64 first, and :meth:`PendingBuckets.pop` returns the bound with
the counts, so that a close clips only a bucket that may hold a count past its clip.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
Counts = npt.NDArray[np.int32] | I64
INT32_MAX = int(np.iinfo(np.int32).max)


class PendingBuckets:
    """bucket index -> events and errors per key: a (2, ``capacity``) int32 array (int64 once a
    bucket has had more rows than int32 holds), rows :data:`~detector.state.N` and
    :data:`~detector.state.E` (unpacks as ``n, e``)."""

    __slots__ = ("_spare", "buckets", "capacity", "rows")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.buckets: dict[int, Counts] = {}
        self.rows: dict[int, int] = {}
        """Per bucket, at least the rows added to it: a bound on every count in it."""
        self._spare: list[Counts] = []
        """Zeroed int32 arrays of closed buckets, for reuse."""

    def __bool__(self) -> bool:
        return bool(self.buckets)

    def first(self) -> int | None:
        return min(self.buckets) if self.buckets else None

    def grow(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return
        for b, counts in list(self.buckets.items()):
            grown = np.zeros((2, capacity), counts.dtype)
            grown[:, : self.capacity] = counts
            self.buckets[b] = grown
        self._spare.clear()
        self.capacity = capacity

    def _arrays(self, bucket: int, rows: int) -> Counts:
        """The counts of ``bucket``, about to take up to ``rows`` more rows."""
        counts = self.buckets.get(bucket)
        if counts is None:
            counts = self._spare.pop() if self._spare else np.zeros((2, self.capacity), np.int32)
            self.buckets[bucket] = counts
        held = self.rows.get(bucket, 0) + rows
        self.rows[bucket] = held
        if held > INT32_MAX and counts.dtype != np.int64:
            counts = self.buckets[bucket] = counts.astype(np.int64)
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
                n, e = self._arrays(b, len(buckets))
                one = n.dtype.type(1)  # a Python 1 takes add.at off its fast path for int32
                np.add.at(n, keys if here is None else keys[here], one)
                np.add.at(e, keys[errors] if here is None else keys[here & errors], one)
            return
        if span * cap <= 32 * len(buckets) + (1 << 17):
            idx = (buckets - low) * cap + keys
            counts = np.bincount(idx, minlength=span * cap).reshape(span, cap)
            errs = np.bincount(idx[errors], minlength=span * cap).reshape(span, cap)
            for j in range(span) if span > 1 else (0,):
                row = counts[j]
                if span > 1 and not row.any():
                    continue
                n, e = self._arrays(low + j, len(buckets))
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
            n, e = self._arrays(low + int(which[part[0]]), len(buckets))
            k = uniq[part] % cap
            n[k] += counts[part]
            e[k] += errs[part]

    def holding(self, used: int) -> npt.NDArray[np.bool_]:
        """Keys with counts in some open bucket (they must not be evicted)."""
        mask = np.zeros(used, dtype=np.bool_)
        for n, _ in self.buckets.values():
            mask |= n[:used] > 0
        return mask

    def pop(self, bucket: int) -> tuple[Counts, int] | None:
        """The counts of ``bucket`` and a bound on each of them (the rows added to it)."""
        counts = self.buckets.pop(bucket, None)
        if counts is None:
            return None
        return counts, self.rows.pop(bucket, 0)

    def recycle(self, counts: Counts, used: int) -> None:
        """Keep a popped bucket's array for reuse; ids from ``used`` on never had counts."""
        if counts.shape[1] == self.capacity and counts.dtype == np.int32 and len(self._spare) < 4:
            counts[:, :used] = 0
            self._spare.append(counts)

    def to_state(self, used: int) -> list[list[Any]]:
        """Per bucket: [bucket, events, errors] (int64 bytes of the first ``used`` keys)."""
        return [
            [b, n[:used].astype(np.int64).tobytes(), e[:used].astype(np.int64).tobytes()]
            for b, (n, e) in sorted(self.buckets.items())
        ]

    def load_state(self, state: list[list[Any]], used: int) -> None:
        self.buckets.clear()
        self.rows.clear()
        for b, n_bytes, e_bytes in state:
            n64 = np.frombuffer(n_bytes, dtype=np.int64)
            e64 = np.frombuffer(e_bytes, dtype=np.int64)
            n, e = self._arrays(int(b), int(n64.sum()))  # a bucket's rows are its events
            n[:used] = n64
            e[:used] = e64
