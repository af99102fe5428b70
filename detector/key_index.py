"""A column of (project, service) names to key ids at once: an open-addressing hash table in numpy.

Each key is one row of :data:`WORDS` 64-bit words: its service name packed into words
(:mod:`detector.packing`), then one word with its project's code and the name's length in bytes
(low half) and its key id (high half). The rows live in the slots of the table themselves, at the
hash of the row or after it (linear probing), so one lookup reads one cache line; a lookup only
answers a slot whose row equals the query word for word, so an answer is always exact, and it
probes until it finds the row or an empty slot, so it is complete: -1 means the index holds no
such key. A query row the index cannot hold (a name too long to pack, a project with no code or
one past :data:`MAX_CODE`) comes back as -1 too; :class:`~detector.keys.KeyRegistry` keeps the few
keys the index cannot hold in a dict. The point is memory
traffic more than hashing: at 100,000 keys a dict lookup of a freshly decoded string misses the
cache several times one after the other, while a numpy gather overlaps its misses. And the names
of indexed keys are their rows: no Python object per key (see :mod:`detector.keys`).

Removing a key leaves a tombstone in its slot (it never matches, and lookups probe past it);
tombstones are dropped when the table is rebuilt, which happens whenever it gets a quarter full;
a rebuilt table is at most an eighth full. At 100,000 keys that is 512 Ki slots (16 MiB, 168 bytes
per key): 90% of keys sit in their own slot, against 82% at half the size, which took 20-22 ms
per 400,000 lookups against 15-16 ms.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from detector.packing import Packed

SERVICE_WORDS = 3
"""Service names of up to 24 UTF-8 bytes are packed; longer ones go through the dicts."""
WORDS = SERVICE_WORDS + 1
"""Row layout: service words, then project code << 8 | service length."""
LOW = np.uint64(2**32 - 1)
EMPTY = np.uint64(2**64 - 1)
"""Last word of a slot that never held a key (it ends a probe)."""
TOMBSTONE = np.uint64(2**64 - 2)
"""Last word of a slot whose key was removed (a probe goes on past it)."""
UNMATCHABLE = np.uint64(2**32 - 3)
"""Last word of a query that must match nothing (a name too long to pack, an unknown project)."""
MAX_CODE = 2**23
"""Project codes stay below this, so that no real key's low half equals the markers' low halves."""
_MIN_SLOTS = 1024
_ROOMY = 32768
"""Up to this many slots (1 MiB), a table is at most 1/16 full rather than 1/8: fewer keys away
from their own slot, for little memory."""
_FULL = 4
"""A table is rebuilt when more than 1 / _FULL of its slots are used (tombstones included)."""
_ROOM = 8
"""A rebuilt table has at least _ROOM slots per live key."""
_WINDOW = 6
"""Slots a lookup reads at once for the rows found in neither of the first two slots tried."""
_MULTIPLIERS = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93], dtype=np.uint64
)

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]


class Query:
    """Packed names to look up: service words and the code-and-length word of each row."""

    __slots__ = ("meta", "words")

    def __init__(self, code: I64 | int, services: Packed) -> None:
        """``code``: the project code of every row, or of each row (negative: unknown)."""
        self.words = services.words
        lengths = services.lengths
        if (
            isinstance(code, int)
            and 0 <= code < MAX_CODE
            and len(lengths)
            and int(lengths.max()) <= 8 * SERVICE_WORDS
        ):
            self.meta: U64 = (lengths | (code << 8)).astype(np.uint64)  # the common case
            return
        codes = np.asarray(code, dtype=np.int64)
        meta = (codes << 8) | lengths
        bad = ~services.fits() | (codes < 0) | (codes >= MAX_CODE)
        self.meta = np.where(bad, UNMATCHABLE, meta.astype(np.uint64))

    def __len__(self) -> int:
        return len(self.meta)

    def rows(self) -> U64:
        out = np.empty((len(self.meta), WORDS), dtype=np.uint64)
        out[:, :SERVICE_WORDS] = self.words
        out[:, SERVICE_WORDS] = self.meta
        return out


def _hash(words: U64, meta: U64) -> U64:
    h: U64 = meta * _MULTIPLIERS[SERVICE_WORDS]
    for j in range(SERVICE_WORDS):
        h += words[:, j] * _MULTIPLIERS[j]
    h ^= h >> np.uint64(29)
    h *= _MULTIPLIERS[0]
    return h


class KeyIndex:
    """Slots of key rows (see the module docstring), and each key id's slot."""

    __slots__ = ("_filled", "_live", "_shift", "slot_of", "slots")

    def __init__(self) -> None:
        self.slots: U64 = np.full((_MIN_SLOTS, WORDS), EMPTY, dtype=np.uint64)
        self.slot_of = np.full(64, -1, dtype=np.int64)
        """Slot of each key id, -1: none."""
        self._shift = np.uint64(64 - _MIN_SLOTS.bit_length() + 1)
        self._filled = 0
        """Slots in use, tombstones included."""
        self._live = 0

    def __len__(self) -> int:
        return self._live

    def insert(self, ids: I64, query: Query) -> None:
        """Add keys (ids not in the index; rows that cannot match are skipped)."""
        keep = query.meta != UNMATCHABLE
        ids, rows = ids[keep], query.rows()[keep]
        if not len(ids):
            return
        rows[:, SERVICE_WORDS] |= ids.astype(np.uint64) << np.uint64(32)
        top = int(ids.max()) + 1
        if top > len(self.slot_of):
            size = len(self.slot_of)
            while size < top:
                size *= 2
            grown = np.full(size, -1, dtype=np.int64)
            grown[: len(self.slot_of)] = self.slot_of
            self.slot_of = grown
        self._live += len(ids)
        if _FULL * (self._filled + len(ids)) > len(self.slots):
            self._rebuild(rows)
        else:
            self._place(rows)

    def remove(self, ids: I64) -> None:
        """Forget keys (their slots become tombstones)."""
        ids = np.unique(ids[ids < len(self.slot_of)])
        slots = self.slot_of[ids]
        slots = slots[slots >= 0]
        self.slots[slots, SERVICE_WORDS] = TOMBSTONE
        self.slot_of[ids] = -1
        self._live -= len(slots)

    def find(self, query: Query) -> I64:
        """Key id of each query row, -1 where the index holds no equal row."""
        n = len(query)
        if not n or not self._live:
            return np.full(n, -1, dtype=np.int64)
        words, meta = query.words, query.meta
        mask = len(self.slots) - 1
        pos = (_hash(words, meta) >> self._shift).astype(np.int64)
        # Most rows sit in their own slot, most others in the next one; the rest are looked for
        # in windows of the slots after that. A key sits before the first empty slot after its
        # hash (slots never become empty again but in a rebuild), and in one slot only, so an
        # equal row anywhere in a window is the answer, and an empty slot ends the search.
        found, rest = self._probe(pos, words, meta)
        if len(rest):
            again, still = self._probe((pos[rest] + 1) & mask, words[rest], meta[rest])
            hit = again >= 0
            found[rest[hit]] = again[hit]
            rest = rest[still]
        step = 2
        while len(rest):
            window = (pos[rest, None] + np.arange(step, step + _WINDOW)) & mask
            stored = np.take(self.slots, window, axis=0)  # (rows, _WINDOW, WORDS)
            last = stored[:, :, SERVICE_WORDS]
            diff = (last & LOW) ^ meta[rest, None]
            for j in range(SERVICE_WORDS):
                diff |= stored[:, :, j] ^ words[rest, j, None]
            row, at = np.nonzero(diff == 0)
            found[rest[row]] = (last[row, at] >> np.uint64(32)).astype(np.int64)
            going = (last != EMPTY).all(axis=1)
            going[row] = False
            rest = rest[going]
            step += _WINDOW
        return found

    def _probe(self, pos: I64, words: U64, meta: U64) -> tuple[I64, I64]:
        """Key id found in slot ``pos`` of each row (-1: none), and the rows to look further for
        (neither found nor stopped by an empty slot)."""
        stored = np.take(self.slots, pos, axis=0)
        last = stored[:, SERVICE_WORDS]
        diff = (last & LOW) ^ meta
        for j in range(SERVICE_WORDS):
            diff |= stored[:, j] ^ words[:, j]
        match = diff == 0
        found = np.where(match, (last >> np.uint64(32)).astype(np.int64), -1)
        return found, np.flatnonzero(~match & (last != EMPTY))

    def _place(self, rows: U64) -> None:
        """Put rows (ids in their last word) into the first empty slot from their hash on."""
        mask = len(self.slots) - 1
        pos = (_hash(rows[:, :SERVICE_WORDS], rows[:, SERVICE_WORDS] & LOW) >> self._shift).astype(np.int64)
        while len(rows):
            free = self.slots[pos, SERVICE_WORDS] == EMPTY
            # of the rows that reach the same empty slot, the first takes it
            _, first = np.unique(pos[free], return_index=True)
            taken = np.flatnonzero(free)[first]
            self.slots[pos[taken]] = rows[taken]
            self.slot_of[(rows[taken, SERVICE_WORDS] >> np.uint64(32)).astype(np.int64)] = pos[taken]
            self._filled += len(taken)
            rest = np.ones(len(rows), dtype=np.bool_)
            rest[taken] = False
            rows, pos = rows[rest], (pos[rest] + 1) & mask

    def _rebuild(self, new: U64) -> None:
        """A table for the live rows and ``new`` ones, at most 1 / :data:`_ROOM` full."""
        held = self.slots[:, SERVICE_WORDS]
        rows = np.concatenate([self.slots[(held != EMPTY) & (held != TOMBSTONE)], new])
        size = _MIN_SLOTS
        while size < _ROOM * self._live or (size < _ROOMY and size < 16 * self._live):
            size *= 2
        self.slots = np.full((size, WORDS), EMPTY, dtype=np.uint64)
        self._shift = np.uint64(64 - size.bit_length() + 1)
        self._filled = 0
        self._place(rows)
