"""A column of (project, service) names to key ids at once: an open-addressing hash table in numpy.

Each key is one row of :data:`WORDS` 64-bit words: its service name packed into words
(:mod:`detector.packing`), then one word with its project's code and the name's length in bytes.
The table maps a hash of the row to a key id, and a lookup only answers an id whose stored row
equals the query row word for word, so an answer is always exact; a key the table cannot answer
for (a new key, a name too long to pack, an unknown project) comes back as -1 and the caller asks
:class:`~detector.keys.KeyRegistry`'s dicts. The point is memory traffic more than hashing: at
100,000 keys a dict lookup of a freshly decoded string misses the cache several times one after
the other, while a numpy gather overlaps its misses.

Removing a key clears its row, so table slots that still point at its id never match again
(until the id is reused, when they match the new key, which is still exact). Such stale slots are
dropped when the table is rebuilt, which happens whenever it gets half full.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from detector.packing import Packed

SERVICE_WORDS = 3
"""Service names of up to 24 UTF-8 bytes are packed; longer ones go through the dicts."""
WORDS = SERVICE_WORDS + 1
"""Row layout: service words, then project code << 8 | service length."""
UNUSED = np.uint64(2**64 - 1)
"""Last word of a row that holds no key."""
UNMATCHABLE = np.uint64(2**64 - 2)
"""Last word of a query that must match nothing (a name too long to pack, an unknown project)."""
_MIN_SLOTS = 1024
_PROBES = 4
"""Slots a lookup tries before it leaves the row to the dicts (each try is a numpy pass over the
rows still looking; the few rows in long clusters are cheaper in a dict)."""
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
        meta = (np.asarray(code, dtype=np.int64) << 8) | services.lengths
        bad = ~services.fits() | (np.asarray(code) < 0)
        self.meta: U64 = np.where(bad, UNMATCHABLE, meta.astype(np.uint64))

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
    """Packed key rows by key id, and hash slots pointing at key ids."""

    __slots__ = ("_filled", "_live", "_shift", "rows", "slots")

    def __init__(self) -> None:
        self.rows: U64 = np.full((64, WORDS), UNUSED, dtype=np.uint64)
        """Row of each key id (last word UNUSED: no key)."""
        self.slots = np.full(_MIN_SLOTS, -1, dtype=np.int32)
        self._shift = np.uint64(64 - _MIN_SLOTS.bit_length() + 1)
        self._filled = 0
        """Slots in use, stale ones included."""
        self._live = 0

    def __len__(self) -> int:
        return self._live

    def insert(self, ids: I64, query: Query) -> None:
        """Add keys (ids not in the index; rows that cannot match are skipped)."""
        keep = query.meta != UNMATCHABLE
        ids, rows = ids[keep], query.rows()[keep]
        if not len(ids):
            return
        top = int(ids.max()) + 1
        if top > len(self.rows):
            size = len(self.rows)
            while size < top:
                size *= 2
            grown = np.full((size, WORDS), UNUSED, dtype=np.uint64)
            grown[: len(self.rows)] = self.rows
            self.rows = grown
        self.rows[ids] = rows
        self._live += len(ids)
        if 2 * (self._filled + len(ids)) > len(self.slots):
            self._rebuild()
        else:
            self._place(ids.astype(np.int32), rows)

    def remove(self, ids: I64) -> None:
        """Forget keys (their slots go stale)."""
        ids = np.unique(ids[ids < len(self.rows)])
        held = ids[self.rows[ids, SERVICE_WORDS] != UNUSED]
        self.rows[held] = UNUSED
        self._live -= len(held)

    def find(self, query: Query, probes: int = _PROBES) -> I64:
        """Key id of each query row, -1 where the index holds no equal row within ``probes``
        slots of the row's own."""
        n = len(query)
        found = np.full(n, -1, dtype=np.int64)
        if not n or not self._live:
            return found
        words, meta = query.words, query.meta
        mask = len(self.slots) - 1
        pos = (_hash(words, meta) >> self._shift).astype(np.int64)
        todo: I64 | None = None  # None: every row
        for _ in range(probes):
            cand = np.take(self.slots, pos)
            held = cand >= 0
            stored = np.take(self.rows, cand, axis=0)  # cand -1 reads the last row: masked by held
            diff = stored[:, SERVICE_WORDS] ^ meta
            for j in range(SERVICE_WORDS):
                diff |= stored[:, j] ^ words[:, j]
            match = held & (diff == 0)
            if todo is None:
                found[match] = cand[match]
            else:
                found[todo[match]] = cand[match]
            more = held & ~match
            if not more.any():
                break
            todo = np.flatnonzero(more) if todo is None else todo[more]
            pos = (pos[more] + 1) & mask
            words, meta = words[more], meta[more]
        return found

    def _place(self, ids: npt.NDArray[np.int32], rows: U64) -> None:
        mask = len(self.slots) - 1
        pos = (_hash(rows[:, :SERVICE_WORDS], rows[:, SERVICE_WORDS]) >> self._shift).astype(np.int64)
        while len(ids):
            free = self.slots[pos] < 0
            # of the keys that reach the same free slot, the first takes it
            _, first = np.unique(pos[free], return_index=True)
            taken = np.flatnonzero(free)[first]
            self.slots[pos[taken]] = ids[taken]
            self._filled += len(taken)
            rest = np.ones(len(ids), dtype=np.bool_)
            rest[taken] = False
            ids, pos = ids[rest], (pos[rest] + 1) & mask

    def _rebuild(self) -> None:
        size = _MIN_SLOTS
        while size < 4 * self._live:
            size *= 2
        self.slots = np.full(size, -1, dtype=np.int32)
        self._shift = np.uint64(64 - size.bit_length() + 1)
        self._filled = 0
        ids = np.flatnonzero(self.rows[:, SERVICE_WORDS] != UNUSED)
        self._place(ids.astype(np.int32), self.rows[ids])
