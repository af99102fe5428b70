"""(project, service) names to small integer key ids, the row numbers of the state columns.

Ids are dense; an evicted key's id is reused, always the smallest free one first, so allocation
depends only on which ids are live (a restored detector allocates exactly as the original).

A whole column of names is looked up at once through :class:`~detector.key_index.KeyIndex`
(:meth:`KeyRegistry.lookup`). A key whose service name packs into the index's words (up to
:data:`~detector.key_index.SERVICE_WORDS` * 8 UTF-8 bytes, no newline) lives only there: its row
is its name, and the registry keeps no Python object for it. The few others (longer names) are
kept in a dict. Projects get small codes for the index; a code is freed with the project's last key.

Why no object per key: a burst of new keys arrives inside a decoded batch, so objects made for
them then are scattered among the batch's short-lived ones, which are freed around them. Python's
small-object allocator fills such holes first, so every later batch's objects of the same size
(decoded structs, service names) would be spread over many times the memory, each on a cache line
and page of its own: at 100,000 keys, the decoded objects of a 1 MiB chunk touched 1,930 pages,
against 419 without objects per key (and each key cost 245 bytes more).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from itertools import repeat

import numpy as np
import numpy.typing as npt

from detector.key_index import SERVICE_WORDS, UNMATCHABLE, KeyIndex, Query
from detector.packing import Packed, pack

I64 = npt.NDArray[np.int64]
_FREE = -1
"""Project code of a free id."""


class KeyRegistry:
    """Live keys: the packed index for names that pack, a dict for the others."""

    __slots__ = (
        "_code_of",
        "_count",
        "_free",
        "_free_codes",
        "_index",
        "_other",
        "_other_names",
        "_projects",
        "_unindexed",
        "max_keys",
        "project_codes",
        "used",
    )

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self.project_codes: dict[str, int] = {}
        """Project to its code (projects with live keys)."""
        self._projects: list[tuple[str, int] | None] = []
        """Code to (project, its live keys); None for a free code."""
        self._code_of = np.full(64, _FREE, dtype=np.int32)
        """Project code of each id; :data:`_FREE` for a free id."""
        self._count = 0
        self._free: list[int] = []
        self._free_codes: list[int] = []
        self._index = KeyIndex()
        self._other: dict[tuple[str, str], int] = {}
        """Keys whose name the index cannot hold."""
        self._other_names: dict[int, tuple[str, str]] = {}
        self._unindexed: list[tuple[int, str]] = []
        """(id, service) of keys allocated since the index last caught up."""
        self.used = 0
        """One past the highest id ever handed out (the state columns in use)."""

    def __len__(self) -> int:
        return self._count

    def allocate(self, project: str, service: str) -> int | None:
        """A new id for an unknown key, or None when ``max_keys`` keys are live."""
        if self._count >= self.max_keys:
            return None
        if self._free:
            key = heapq.heappop(self._free)
        else:
            key = self.used
            self.used += 1
            if key >= len(self._code_of):
                grown = np.full(2 * len(self._code_of), _FREE, dtype=np.int32)
                grown[: len(self._code_of)] = self._code_of
                self._code_of = grown
        self._code_of[key] = self._take_code(project)
        self._count += 1
        self._unindexed.append((key, service))
        return key

    def _take_code(self, project: str) -> int:
        code = self.project_codes.get(project)
        if code is None:
            code = heapq.heappop(self._free_codes) if self._free_codes else len(self._projects)
            if code == len(self._projects):
                self._projects.append(None)
            self.project_codes[project] = code
            self._projects[code] = (project, 1)
            return code
        entry = self._projects[code]
        assert entry is not None
        self._projects[code] = (project, entry[1] + 1)
        return code

    def evict(self, keys: Iterable[int]) -> None:
        self.catch_up()
        gone = []
        for key in keys:
            code = int(self._code_of[key]) if key < self.used else _FREE
            if code == _FREE:
                continue
            entry = self._projects[code]
            assert entry is not None
            project, live = entry
            if live == 1:
                del self.project_codes[project]
                self._projects[code] = None
                heapq.heappush(self._free_codes, code)
            else:
                self._projects[code] = (project, live - 1)
            name = self._other_names.pop(key, None)
            if name is not None:
                del self._other[name]
            self._code_of[key] = _FREE
            self._count -= 1
            heapq.heappush(self._free, key)
            gone.append(key)
        if gone:
            self._index.remove(np.array(gone, dtype=np.int64))

    def live(self) -> list[int]:
        live: list[int] = np.flatnonzero(self._code_of[: self.used] != _FREE).tolist()
        return live

    def name(self, key: int) -> tuple[str, str] | None:
        """The (project, service) of a live id; None for a free one."""
        return self.names([key])[0]

    def names(self, keys: Iterable[int] | None = None) -> list[tuple[str, str] | None]:
        """:meth:`name` of each id (all ids in use when None), made from the index rows."""
        self.catch_up()
        ids = np.arange(self.used) if keys is None else np.fromiter(keys, np.int64)
        codes = np.where(ids < self.used, self._code_of[np.minimum(ids, len(self._code_of) - 1)], _FREE)
        slots = self._index.slot_of[np.minimum(ids, len(self._index.slot_of) - 1)]
        slots = np.where(ids < len(self._index.slot_of), slots, -1)
        rows = self._index.slots[np.maximum(slots, 0)]
        lengths = (rows[:, SERVICE_WORDS] & np.uint64(0xFF)).tolist()
        raw = rows[:, :SERVICE_WORDS].tobytes()
        width = 8 * SERVICE_WORDS
        out: list[tuple[str, str] | None] = []
        for i, (key, code, slot) in enumerate(zip(ids.tolist(), codes.tolist(), slots.tolist(), strict=True)):
            if code == _FREE:
                out.append(None)
            elif slot < 0:
                out.append(self._other_names[key])
            else:
                entry = self._projects[code]
                assert entry is not None
                at = i * width
                out.append((entry[0], raw[at : at + lengths[i]].decode()))
        return out

    def key_of(self, project: str, service: str) -> int:
        """The id of a key, -1 if it is not live."""
        return int(self.lookup(None, project, [service])[0])

    # -- whole columns ----------------------------------------------------------------------

    def lookup(
        self, projects: list[str] | None, project: str, services: list[str], packed: Packed | None = None
    ) -> I64:
        """Key id of each row, -1 for a key that is not live. ``projects`` None means every row is
        in ``project``; ``packed``: ``services`` already packed into
        :data:`~detector.key_index.SERVICE_WORDS` words."""
        self.catch_up()
        n = len(services)
        if packed is None:
            packed = pack(services, SERVICE_WORDS)
        if packed is None:  # some name cannot be packed (a newline, a lone surrogate)
            return self._split_lookup(projects, project, services)
        if projects is None:
            code = self.project_codes.get(project)
            if code is None:  # no live key in this project
                return np.full(n, -1, dtype=np.int64)
            query = Query(code, packed)
        else:
            query = Query(np.fromiter(map(self.project_codes.get, projects, repeat(-1)), np.int64, n), packed)
        ids = self._index.find(query)
        if self._other:  # rows the index cannot hold (names too long for it)
            aside = np.flatnonzero(query.meta == UNMATCHABLE).tolist()
            self._from_other(ids, aside, projects, project, services)
        return ids

    def _split_lookup(self, projects: list[str] | None, project: str, services: list[str]) -> I64:
        """:meth:`lookup` of a column that cannot be packed as a whole: the names that pack are
        looked up together, the others (never in the index) in the dict."""
        good = [_packable(s) for s in services]
        ids = np.full(len(services), -1, dtype=np.int64)
        rows = [i for i, ok in enumerate(good) if ok]
        if rows:
            part = None if projects is None else [projects[i] for i in rows]
            ids[rows] = self.lookup(part, project, [services[i] for i in rows])
        if self._other:
            self._from_other(ids, [i for i, ok in enumerate(good) if not ok], projects, project, services)
        return ids

    def _from_other(
        self, ids: I64, rows: list[int], projects: list[str] | None, project: str, services: list[str]
    ) -> None:
        """Set ``ids`` of ``rows`` (names the index cannot hold) from the dict."""
        for i in rows:
            owner = project if projects is None else projects[i]
            ids[i] = self._other.get((owner, services[i]), -1)

    def catch_up(self) -> None:
        """Put the keys allocated since the last call into the index (a batch of new keys at
        once; every lookup calls it first). Names the index cannot hold go to the dict."""
        if not self._unindexed:
            return
        pending, self._unindexed = self._unindexed, []
        pending = [(k, s) for k, s in pending if self._code_of[k] != _FREE]
        ids = np.array([k for k, _ in pending], dtype=np.int64)
        services = [s for _, s in pending]
        packed = pack(services, SERVICE_WORDS)
        if packed is None:  # a name with a newline or a lone surrogate
            packable = [_packable(s) for s in services]
            for (key, service), ok in zip(pending, packable, strict=True):
                if not ok:
                    self._keep_other(key, service)
            keep = np.flatnonzero(packable)
            ids = ids[keep]
            packed = pack([services[i] for i in keep.tolist()], SERVICE_WORDS)
            assert packed is not None
            services = [services[i] for i in keep.tolist()]
        query = Query(self._code_of[ids].astype(np.int64), packed)
        for i in np.flatnonzero(query.meta == UNMATCHABLE).tolist():  # the index skips these rows
            self._keep_other(int(ids[i]), services[i])
        self._index.insert(ids, query)

    def _keep_other(self, key: int, service: str) -> None:
        entry = self._projects[int(self._code_of[key])]
        assert entry is not None
        # a copy: the caller's string sits among a decoded batch's short-lived objects
        name = (entry[0], "".join(("", service)))
        self._other[name] = key
        self._other_names[key] = name

    # -- snapshots --------------------------------------------------------------------------

    def to_state(self) -> list[list[str] | None]:
        return [list(name) if name is not None else None for name in self.names()]

    @classmethod
    def from_state(cls, max_keys: int, names: list[list[str] | None]) -> KeyRegistry:
        registry = cls(max_keys)
        registry.used = len(names)
        registry._code_of = np.full(max(64, len(names)), _FREE, dtype=np.int32)
        for key, name in enumerate(names):
            if name is None:
                heapq.heappush(registry._free, key)
                continue
            registry._code_of[key] = registry._take_code(str(name[0]))
            registry._count += 1
            registry._unindexed.append((key, str(name[1])))
        registry.catch_up()
        return registry


def _packable(name: str) -> bool:
    """Whether :func:`~detector.packing.pack` can take this name (no newline, valid UTF-8)."""
    if "\n" in name:
        return False
    if name.isascii():
        return True
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True
