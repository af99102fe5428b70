"""Open buckets' counts: int32, with a bound per bucket that says when a close must clip."""

from __future__ import annotations

import numpy as np

from detector import Detector
from detector.buckets import INT32_MAX, PendingBuckets
from detector.state import N
from tests.detector.streams import T0


def test_counts_are_int32_and_bounded_by_the_rows_added() -> None:
    pending = PendingBuckets(64)
    buckets = np.array([10, 10, 10, 11], dtype=np.int64)
    keys = np.array([3, 3, 5, 3], dtype=np.int64)
    pending.add(buckets, keys, np.array([True, False, False, True]))
    pending.add(np.array([10], dtype=np.int64), np.array([5], dtype=np.int64), np.array([True]))
    popped = pending.pop(10)
    assert popped is not None
    counts, most = popped
    assert counts.dtype == np.int32
    assert counts[:, [3, 5]].tolist() == [[2, 2], [1, 1]]
    assert most >= int(counts.max())  # a bound, never below a count
    assert most <= 5  # and no looser than the rows of the batches that touched it
    assert pending.pop(10) is None


def test_a_bucket_that_could_pass_int32_is_widened_and_keeps_its_counts() -> None:
    pending = PendingBuckets(64)
    big = np.zeros(4, dtype=np.int64)
    big[2] = INT32_MAX + 10  # only a snapshot can bring this many rows in a test
    pending.load_state([[7, big.tobytes(), np.zeros(4, dtype=np.int64).tobytes()]], 4)
    pending.add(np.array([7], dtype=np.int64), np.array([2], dtype=np.int64), np.array([False]))
    counts, most = pending.buckets[7], pending.rows[7]
    assert counts.dtype == np.int64
    assert int(counts[N, 2]) == INT32_MAX + 11
    assert most >= INT32_MAX + 11
    # snapshots keep int64 bytes whatever the running type
    assert pending.to_state(4)[0][1] == counts[N, :4].tobytes()
    popped = pending.pop(7)
    assert popped is not None
    pending.recycle(popped[0], 4)  # a widened array is not reused
    pending.add(np.array([8], dtype=np.int64), np.array([1], dtype=np.int64), np.array([True]))
    assert pending.buckets[8].dtype == np.int32


def test_a_close_clips_counts_that_window_sums_cannot_hold() -> None:
    det = Detector()
    det.feed(b'{"ts":%d,"service":"a","level":"INFO"}\n{"ts":%d,"service":"b","level":"INFO"}\n' % (T0, T0))
    det.flush()
    st = det._state
    events = np.array([INT32_MAX + 5, 3], dtype=np.int64)
    errors = np.array([INT32_MAX + 1, 1], dtype=np.int64)
    det._pending.load_state([[T0 + 1, events.tobytes(), errors.tobytes()]], 2)
    det.advance(T0 + 2 + det.config.allowed_lateness_seconds)  # closes bucket T0 + 1 only
    assert det.stats().watermark == T0 + 2
    width = det.config.windows[-1]
    at = (T0 + 1) % width
    assert st.win_n[at, :2].tolist() == [st.bucket_max, 3]
    assert st.win_e[at, :2].tolist() == [st.bucket_max, 1]
    assert (st.wsum[..., :2] >= 0).all()  # no sum wrapped around
