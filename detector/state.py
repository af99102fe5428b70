"""Per-key detector state as numpy columns (one column per key id), raw and derived.

Raw state is what a snapshot stores; derived state (rolling sums, the baseline including the
current slot, window sums, dispersion) is rebuilt from it by :meth:`KeyState.rebuild`, with
whole-number arithmetic wherever a value is maintained incrementally, so a restored detector
computes bit for bit what the original would.

Columns that are read and written together are rows of one array (a *stack*, see
:data:`_STACKS`), and each column is also an attribute that is a view of its row: closing a
bucket then updates the events and errors of every key in one numpy call instead of two, and
most of a close at 10,000 keys is the fixed cost of numpy calls, not the work on the keys. The
stacks share one allocation (numpy asks the kernel for huge pages for one of 4 MiB or more).

Memory per key (defaults: 60 baseline slots, windows up to 16 buckets) is 1,002 bytes:

* baseline ring, one entry per slot: events, errors and admitted buckets (int32);
* the baseline's events, errors and admitted buckets including the current slot's (float64,
  whole numbers: a bucket close reads them as they are; the current slot's counts, which a
  snapshot stores, are these less the rolling sums);
* the last ``windows[-1]`` buckets' events and errors (int32), and their window sums (int32);
* signal severities (int8); hysteresis and quarantine runs (int32); last bucket with an event
  (int64, kept per slot when the window ring covers a slot);
* rolling sums over the ring (int64), two dispersion factors (float64) and, per window, the
  largest volume that is a collapse (int32; see :meth:`KeyState._collapse_at`).

Slot totals are clipped at :data:`SLOT_MAX` events (about 6.7 million events per second per key
at the default slot width), which keeps every sum of squares inside int64. A bucket's counts are
clipped at :attr:`KeyState.bucket_max` (``(2**31 - 1) // windows[-1]``, 134 million events per
key and bucket by default), which keeps every window sum inside int32.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from detector.config import DetectorConfig
from detector.vectorised import dispersion

SLOT_MAX = 2**26
GROUP_KEYS = 64
"""Consecutive key ids that complete their baseline slots at the same bucket (see
:meth:`KeyState.group`); capacities are multiples of it."""

NEVER_IDLE = np.iinfo(np.int64).max
"""``last_seen`` of an id not in use: it is never idle."""
_INT32_MAX = int(np.iinfo(np.int32).max)
NO_COLLAPSE = -1
"""``collapse_at`` of a key that cannot collapse: no window volume is at or below it."""

N, E, K = 0, 1, 2
"""Rows of the ``ring``, ``base``, ``win`` and ``wsum`` stacks (the last two have no K)."""
SUM_N, SUM_E, SUM_K, SUM_SLOTS, SUM_N2, SUM_NE, SUM_E2 = range(7)
"""Rows of the ``sums`` stack: the first four are sums over slots of a slot's events, errors,
admitted buckets and whether it admitted any; the last three of its products n*n, n*e, e*e."""

_STACKS: dict[str, tuple[str, Any, tuple[str, ...]]] = {
    # stack: (shape kind, dtype, its columns in row order). A "key" stack is (rows, capacity); a
    # "slots", "window" or "windows" stack is (slots or buckets or windows, rows, capacity).
    "ring": ("slots", np.int32, ("ring_n", "ring_e", "ring_k")),
    "win": ("window", np.int32, ("win_n", "win_e")),
    "sev": ("key", np.int8, ("sev_err", "sev_col")),
    "runs": ("key", np.int32, ("run_err", "run_col", "quarantine")),
    "seen": ("key", np.int64, ("last_seen",)),
    # derived
    "base": ("key", np.float64, ("base_n", "base_e", "base_k")),
    "sums": ("key", np.int64, ("sum_n", "sum_e", "sum_k", "sum_slots", "sum_n2", "sum_ne", "sum_e2")),
    "wsum": ("windows", np.int32, ("wsum_n", "wsum_e")),
    "disp": ("key", np.float64, ("phi", "phi_n")),
    "drop": ("windows", np.int32, ("collapse_at",)),
}
ROLLED_COLUMNS = tuple(column for stack in ("sums", "disp", "drop") for column in _STACKS[stack][2])
"""Derived columns that a slot roll keeps up to date for its group (as a rebuild computes them)."""
DERIVED_COLUMNS = tuple(
    column for stack in ("base", "sums", "wsum", "disp", "drop") for column in _STACKS[stack][2]
)
"""Every derived column (see :meth:`KeyState.rebuild`)."""
_COLUMNS: dict[str, tuple[str, int]] = {
    column: (stack, row) for stack, (_, _, columns) in _STACKS.items() for row, column in enumerate(columns)
}

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
_CURRENT = ("cur_n", "cur_e", "cur_k")
"""The current slot's counts (rows ``N``, ``E``, ``K``): raw, but held inside ``base`` (see
:meth:`KeyState.current`)."""
_SNAPSHOT_DTYPES: dict[str, Any] = {"ring_k": np.int16}
"""Columns a snapshot stores in a narrower type than the running state (admitted buckets per
slot never exceed ``slot_buckets`` <= 32767)."""

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]


class _GroupViews(NamedTuple):
    """Block views (see :meth:`KeyState._blocks`) of one group's keys in the columns a roll reads."""

    last_seen: I64
    events: I32
    """Events in the widest window."""
    base: F64
    ring: I32
    """Every slot of the ring (the slot is the leading axis)."""
    sums: I64
    disp: F64
    drop: I32


class KeyState:
    """Columns of per-key state, ``capacity`` columns each; columns past ``used`` are all zero
    (or, for the dispersion factors, the values of a key with no baseline)."""

    ring: I32
    base: F64
    win: I32
    sev: npt.NDArray[np.int8]
    runs: I32
    seen: I64
    sums: I64
    wsum: I32
    disp: F64
    drop: I32

    ring_n: I32
    ring_e: I32
    ring_k: I32
    base_n: F64
    base_e: F64
    base_k: F64
    win_n: I32
    win_e: I32
    sev_err: npt.NDArray[np.int8]
    sev_col: npt.NDArray[np.int8]
    run_err: I32
    run_col: I32
    quarantine: I32
    last_seen: I64
    sum_n: I64
    sum_e: I64
    sum_k: I64
    sum_slots: I64
    sum_e2: I64
    sum_ne: I64
    sum_n2: I64
    wsum_n: I32
    wsum_e: I32
    phi: F64
    phi_n: F64
    collapse_at: I32

    def __init__(self, config: DetectorConfig, capacity: int = 64) -> None:
        self.config = config
        self.capacity = 0
        self.bucket_max = (2**31 - 1) // config.windows[-1]
        """A bucket's events (and errors) per key are clipped here: window sums fit int32."""
        self.quarantined: npt.NDArray[np.intp] = np.zeros(0, dtype=np.intp)
        """Keys whose quarantine run is not zero (derived)."""
        self.window_sizes = np.array(config.windows, dtype=np.float64)[:, None]
        """Window lengths in buckets, a column (broadcasts over keys)."""
        self.collapse_factors = self.window_sizes * config.collapse_ratio
        """Volume-collapse thresholds per bucket of baseline volume, per window (a column)."""
        self._scratch: dict[tuple[str, int], npt.NDArray[Any]] = {}
        self._marks: dict[str, npt.NDArray[np.bool_]] = {}
        self._views: dict[tuple[int, int], _GroupViews] = {}
        self._loaded_current: I64 | None = None
        self._empty_disp = self._dispersion(np.zeros((len(_STACKS["sums"][2]), 1)))
        """Dispersion factors of a key with no baseline yet (new, evicted or relearning): what
        :meth:`rebuild` computes from its zero sums, so that a restore reproduces them."""
        self._alloc(capacity)

    def _shape(self, kind: str, rows: int, capacity: int) -> tuple[int, ...]:
        cfg = self.config
        lead = {
            "key": (),
            "slots": (cfg.baseline_slots,),
            "window": (cfg.windows[-1],),
            "windows": (len(cfg.windows),),
        }[kind]
        return (*lead, rows, capacity)

    def _fill(self, stack: str) -> int | npt.NDArray[np.float64]:
        """What a column holds for an id not in use: zeros, but the dispersion factors and the
        collapse thresholds of no baseline, and as last bucket seen the largest int64 (an unused
        id is never idle)."""
        if stack == "disp":
            return self._empty_disp
        if stack == "drop":
            return NO_COLLAPSE
        return NEVER_IDLE if stack == "seen" else 0

    def _alloc(self, capacity: int) -> None:
        capacity = -(-capacity // GROUP_KEYS) * GROUP_KEYS
        shapes = {
            stack: self._shape(kind, len(columns), capacity) for stack, (kind, _, columns) in _STACKS.items()
        }
        nbytes = {
            stack: int(np.prod(shapes[stack])) * np.dtype(_STACKS[stack][1]).itemsize for stack in _STACKS
        }
        arena = np.empty(sum(-(-size // 64) * 64 for size in nbytes.values()), dtype=np.uint8)
        offset = 0
        for stack, (kind, dtype, columns) in _STACKS.items():
            arr = arena[offset : offset + nbytes[stack]].view(dtype).reshape(shapes[stack])
            offset += -(-nbytes[stack] // 64) * 64  # each stack starts on a cache line
            arr[...] = self._fill(stack)
            old = getattr(self, stack, None)
            if old is not None:
                arr[..., : self.capacity] = old
            setattr(self, stack, arr)
            for row, column in enumerate(columns):
                setattr(self, column, arr[row] if kind == "key" else arr[:, row])
        self.capacity = capacity
        self._views = {}  # views of the old arrays

    def scratch(self, name: str, dtype: Any, rows: int = 0) -> npt.NDArray[Any]:
        """A reusable work array of ``capacity`` columns (``rows`` rows when not 0).

        Closing a bucket reuses these instead of allocating temporaries: arrays of this size
        come straight from the operating system and cost page faults on every allocation.
        Contents are undefined; callers slice ``[..., :used]`` and overwrite.
        """
        arr = self._scratch.get((name, rows))
        if arr is None or arr.shape[-1] != self.capacity:
            shape = (rows, self.capacity) if rows else (self.capacity,)
            arr = self._scratch[(name, rows)] = np.empty(shape, dtype=dtype)
        return arr

    def marks(self, name: str) -> npt.NDArray[np.bool_]:
        """A reusable mask of ``capacity`` keys, all False: a caller sets the keys it marks and
        must clear them again before it returns."""
        arr = self._marks.get(name)
        if arr is None or len(arr) != self.capacity:
            arr = self._marks[name] = np.zeros(self.capacity, dtype=np.bool_)
        return arr

    def ensure(self, rows: int) -> None:
        """Room for at least ``rows`` keys (capacity doubles)."""
        if rows > self.capacity:
            capacity = max(self.capacity, 64)
            while capacity < rows:
                capacity *= 2
            self._alloc(capacity)

    def clear(self, rows: npt.NDArray[np.intp] | list[int]) -> None:
        """Every column of these key ids as for an id not in use (an evicted key)."""
        for stack in _STACKS:
            getattr(self, stack)[..., rows] = self._fill(stack)

    def clear_baseline(self, rows: npt.NDArray[np.intp]) -> None:
        """Forget the baseline of these keys (relearn): they warm up again from now."""
        self.ring[..., rows] = 0
        self.base[:, rows] = 0
        self.quarantine[rows] = 0
        self.sums[:, rows] = 0
        self.disp[:, rows] = self._empty_disp
        self.drop[..., rows] = NO_COLLAPSE

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

    def stale(self, t: int, used: int, before: int) -> npt.NDArray[np.bool_]:
        """Of the keys of :meth:`group` (one row per block), those last seen before ``before``;
        ids past ``used`` are never stale, so that ``stale(...).ravel()`` lines up with
        :meth:`group`'s ids."""
        stale: npt.NDArray[np.bool_] = self._group_views(t, used).last_seen < before
        return stale

    def _blocks(self, column: npt.NDArray[Any], t: int, used: int) -> npt.NDArray[Any]:
        """A view of the group's keys in ``column`` (see :meth:`group`): its last axis (keys)
        becomes one row per block of the group, :data:`GROUP_KEYS` wide. The last block may run
        past ``used``; its ids there hold what an unused id holds (see :meth:`_fill`), which a roll
        leaves as it is."""
        start, blocks, step = self._block_range(t, used)
        lead = column.shape[:-1]
        return column[..., : blocks * GROUP_KEYS].reshape(*lead, blocks, GROUP_KEYS)[..., start::step, :]

    def _block_range(self, t: int, used: int) -> tuple[int, int, int]:
        """(first block, blocks in use, step) of the group of bucket ``t``."""
        return t % self.config.slot_buckets, -(-used // GROUP_KEYS), self.config.slot_buckets

    def _group_views(self, t: int, used: int) -> _GroupViews:
        """The views of :meth:`_blocks` that a roll and an idle check use, made once per group
        (and again when the keys in use or the capacity change): making them costs more than
        most of the numpy calls of a roll."""
        phase = t % self.config.slot_buckets
        key = (phase, used)
        views = self._views.get(key)
        if views is None:
            if any(k[1] != used for k in self._views):
                self._views.clear()
            columns = (self.last_seen, self.wsum_n[-1], self.base, self.ring, self.sums, self.disp, self.drop)
            views = self._views[key] = _GroupViews(*(self._blocks(column, t, used) for column in columns))
        return views

    def roll(self, t: int, used: int) -> None:
        """Before bucket ``t``: the keys of :meth:`group` complete their current slot, which
        replaces their oldest one."""
        cfg = self.config
        pos = (t // cfg.slot_buckets) % cfg.baseline_slots

        views = self._group_views(t, used)
        if cfg.windows[-1] >= cfg.slot_buckets:  # the window ring covers the whole slot
            # any event in the ring is an event in the widest window (one row, not the ring)
            np.putmask(views.last_seen, views.events > 0, t - 1)
        base, ring, sums = views.base, views.ring[pos], views.sums
        # [new, old] slot of each key (the completed one, the one it replaces): n, e, k, k > 0
        both = np.empty((2, 4, *base.shape[1:]), dtype=np.int64)
        np.subtract(base, sums[: SUM_K + 1], out=both[0, :3], casting="unsafe")  # whole numbers
        np.minimum(both[0, :3], SLOT_MAX, out=both[0, :3])  # k never exceeds slot_buckets
        both[1, :3] = ring
        np.greater(both[:, K], 0, out=both[:, 3])
        products = both[:, :2, None] * both[:, None, :2]  # [new, old][n, e][n, e]
        sums[: SUM_SLOTS + 1] += both[0] - both[1]
        products = products[0] - products[1]
        sums[SUM_N2 : SUM_NE + 1] += products[N]  # n*n, n*e
        sums[SUM_E2] += products[E, E]
        ring[...] = both[0, :3]
        base[...] = sums[: SUM_K + 1]  # a new slot starts empty
        self._derive(sums, views.disp, views.drop[:, 0])

    def _derive(self, sums: I64, disp: F64, collapse_at: I32) -> None:
        """The columns derived from the completed slots' sums (rows as in :data:`_STACKS`):
        dispersion factors and volume-collapse thresholds."""
        exact = sums.astype(np.float64)
        self._dispersion(exact, out=disp)
        self._collapse_at(exact, out=collapse_at)

    def _collapse_at(self, sums: F64, out: I32) -> None:
        """Per window (rows of ``out``), the largest volume that is a collapse: ``collapse_ratio``
        of the completed slots' events per admitted bucket times the window's length, as a whole
        number (volume <= x iff volume <= floor(x)); :data:`NO_COLLAPSE` for keys whose completed
        slots hold fewer than ``warmup_buckets`` buckets or fewer than ``collapse_min_volume``
        events per bucket."""
        cfg = self.config
        n, k = sums[SUM_N], sums[SUM_K]
        mean = n / np.maximum(k, 1.0)
        able = (k >= cfg.warmup_buckets) & (mean >= cfg.collapse_min_volume)
        # keys that cannot collapse get -inf, clipped to NO_COLLAPSE (no masked writes: the
        # output is a strided view in a roll); a volume (int32) is always below the int32 cap
        most = self.collapse_factors.reshape(-1, *[1] * mean.ndim) * np.where(able, mean, -np.inf)
        most.clip(NO_COLLAPSE, _INT32_MAX, out=most)
        np.copyto(out, most, casting="unsafe")  # floor, as most is -1 or >= 0

    def _dispersion(self, sums: F64, out: F64 | None = None) -> F64:
        """phi and phi_n from the (exact) rolling sums, rows as in :data:`_STACKS`."""
        cfg = self.config
        return dispersion(
            sums[SUM_SLOTS],
            sums[SUM_E],
            sums[SUM_N],
            sums[SUM_E2],
            sums[SUM_NE],
            sums[SUM_N2],
            cfg.max_dispersion,
            cfg.dispersion_prior,
            cfg.dispersion_prior_errors,
            out=out,
        )

    def current(self, used: int) -> I64:
        """The current slot's events, errors and admitted buckets of the first ``used`` keys
        (rows ``N``, ``E``, ``K``): raw state, kept as the baseline including them
        (:attr:`base`, which a bucket close reads) less the completed slots' sums."""
        current: I64 = (self.base[:, :used] - self.sums[: SUM_K + 1, :used]).astype(np.int64)
        return current

    def set_current(self, current: I64, used: int) -> None:
        """Set the current slot's counts of the first ``used`` keys (see :meth:`current`)."""
        np.add(self.sums[: SUM_K + 1, :used], current, out=self.base[:, :used], casting="unsafe")

    def rebuild(self, last_bucket: int | None, used: int) -> None:
        """Recompute every derived column from the raw ones (after a restore)."""
        u = slice(0, used)
        current = self._loaded_current if self._loaded_current is not None else self.current(used)
        self._loaded_current = None
        ring = self.ring[..., u].astype(np.int64)
        n, e, k = ring[:, N], ring[:, E], ring[:, K]
        sums = self.sums[:, u]
        sums[SUM_N : SUM_K + 1] = ring.sum(axis=0)
        sums[SUM_SLOTS] = (k > 0).sum(axis=0)
        sums[SUM_E2] = (e * e).sum(axis=0)
        sums[SUM_NE] = (n * e).sum(axis=0)
        sums[SUM_N2] = (n * n).sum(axis=0)
        self._derive(sums, self.disp[:, u], self.collapse_at[:, u])
        self.set_current(current, used)
        self.quarantined = np.flatnonzero(self.quarantine[u] > 0)
        width = self.config.windows[-1]
        for i, w in enumerate(self.config.windows):
            if last_bucket is None:
                self.wsum[i, :, u] = 0
                continue
            positions = [(last_bucket - j) % width for j in range(w)]
            self.wsum[i, :, u] = self.win[positions][..., u].astype(np.int64).sum(axis=0)

    def raw(self, used: int) -> dict[str, npt.NDArray[Any]]:
        """The raw columns of the first ``used`` keys (for a snapshot)."""
        current = dict(zip(_CURRENT, self.current(used), strict=True))
        return {
            name: np.ascontiguousarray(
                current[name] if name in current else getattr(self, name)[..., :used],
                dtype=_SNAPSHOT_DTYPES.get(name),
            )
            for name in RAW_FIELDS
        }

    def load_raw(self, columns: dict[str, npt.NDArray[Any]], used: int) -> None:
        """Raw columns from a snapshot; :meth:`rebuild` must follow."""
        self.ensure(max(used, 1))
        current = np.zeros((len(_CURRENT), used), dtype=np.int64)
        for name in RAW_FIELDS:
            arr = columns[name]
            if name in _CURRENT:
                kind, dtype = "key", np.int64
            else:
                stack, _ = _COLUMNS[name]
                kind, dtype, _ = _STACKS[stack]
            want = np.dtype(_SNAPSHOT_DTYPES.get(name, dtype))
            if arr.dtype != want or arr.shape != (*self._shape(kind, 1, used)[:-2], used):
                raise ValueError(f"snapshot column {name} has shape {arr.shape} {arr.dtype}")
            if name in _CURRENT:
                current[_CURRENT.index(name)] = arr
            else:
                getattr(self, name)[..., :used] = arr
        self._loaded_current = current

    def nbytes_per_key(self) -> int:
        total: int = sum(int(getattr(self, stack).nbytes) for stack in _STACKS)
        return total // max(self.capacity, 1)
