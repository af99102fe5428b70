"""(project, service) names to small integer key ids, the row numbers of the state columns.

Ids are dense; an evicted key's id is reused, always the smallest free one first, so allocation
depends only on which ids are live (a restored detector allocates exactly as the original).

A whole column of names is looked up at once through :class:`~detector.key_index.KeyIndex`
(:meth:`KeyRegistry.lookup`); the dicts answer for whatever the index cannot (new keys, names
too long to pack) and are the source of truth. Projects get small codes for the index; a code is
freed with the project's last key.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from itertools import repeat

import numpy as np
import numpy.typing as npt

from detector.key_index import SERVICE_WORDS, KeyIndex, Query
from detector.packing import Packed, pack

I64 = npt.NDArray[np.int64]


class KeyRegistry:
    """Two lookups for speed: per project a service dict, and a (project, service) dict; and
    the packed index over both for whole columns."""

    __slots__ = (
        "_free",
        "_free_codes",
        "_index",
        "_unindexed",
        "by_pair",
        "by_project",
        "max_keys",
        "names",
        "project_codes",
        "used",
    )

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self.by_project: dict[str, dict[str, int]] = {}
        self.by_pair: dict[tuple[str, str], int] = {}
        self.names: list[tuple[str, str] | None] = []
        """Id to (project, service); None for a free id."""
        self.project_codes: dict[str, int] = {}
        """Project to its code in the packed index (projects with live keys)."""
        self._free: list[int] = []
        self._free_codes: list[int] = []
        self._index = KeyIndex()
        self._unindexed: list[int] = []
        """Ids allocated since the index last caught up."""
        self.used = 0
        """One past the highest id ever handed out (the state columns in use)."""

    def __len__(self) -> int:
        return len(self.by_pair)

    def allocate(self, project: str, service: str) -> int | None:
        """A new id for an unknown key, or None when ``max_keys`` keys are live."""
        if len(self.by_pair) >= self.max_keys:
            return None
        # A copy of the name: the caller's string sits among the short-lived objects of a decoded
        # batch, and kept for the key's lifetime it would hold their memory pools, scattering
        # the objects of every later batch over them (slower to allocate, fill and free).
        name = (project, "".join(("", service)))
        if self._free:
            key = heapq.heappop(self._free)
            self.names[key] = name
        else:
            key = self.used
            self.used += 1
            self.names.append(name)
        self._add(key, name)
        return key

    def _add(self, key: int, name: tuple[str, str]) -> None:
        project, service = name
        self.by_pair[name] = key
        services = self.by_project.get(project)
        if services is None:
            services = self.by_project[project] = {}
            code = heapq.heappop(self._free_codes) if self._free_codes else len(self.project_codes)
            self.project_codes[project] = code
        services[service] = key
        self._unindexed.append(key)

    def evict(self, keys: Iterable[int]) -> None:
        gone = []
        for key in keys:
            name = self.names[key]
            if name is None:
                continue
            project, service = name
            del self.by_pair[name]
            services = self.by_project[project]
            del services[service]
            if not services:
                del self.by_project[project]
                heapq.heappush(self._free_codes, self.project_codes.pop(project))
            self.names[key] = None
            heapq.heappush(self._free, key)
            gone.append(key)
        if gone:
            self._index.remove(np.array(gone, dtype=np.int64))

    def live(self) -> list[int]:
        return [k for k, name in enumerate(self.names) if name is not None]

    # -- whole columns ----------------------------------------------------------------------

    def lookup(
        self, projects: list[str] | None, project: str, services: list[str], packed: Packed | None = None
    ) -> I64 | None:
        """Key id of each row as far as the packed index knows it (-1: ask the dicts), or None
        when the column cannot be packed (see :mod:`detector.packing`). ``projects`` None
        means every row is in ``project``; ``packed``: ``services`` already packed into
        :data:`~detector.key_index.SERVICE_WORDS` words."""
        self.catch_up()
        n = len(services)
        if packed is None:
            packed = pack(services, SERVICE_WORDS)
        if packed is None:
            return None
        if projects is None:
            code = self.project_codes.get(project)
            if code is None:
                return np.full(n, -1, dtype=np.int64)
            return self._index.find(Query(code, packed))
        codes = np.fromiter(map(self.project_codes.get, projects, repeat(-1)), np.int64, n)
        return self._index.find(Query(codes, packed))

    def catch_up(self) -> None:
        """Put the keys allocated since the last call into the packed index (a batch of new keys
        at once; :meth:`lookup` calls it too)."""
        if not self._unindexed:
            return
        ids = [k for k in sorted(set(self._unindexed)) if self.names[k] is not None]
        self._unindexed.clear()
        names = [name for k in ids if (name := self.names[k]) is not None]
        services = [service for _, service in names]
        packed = pack(services, SERVICE_WORDS)
        if packed is None:  # a name with a newline or a lone surrogate: such names never pack
            keep = [i for i, s in enumerate(services) if pack([s], SERVICE_WORDS) is not None]
            ids = [ids[i] for i in keep]
            names = [names[i] for i in keep]
            packed = pack([services[i] for i in keep], SERVICE_WORDS)
            assert packed is not None
        codes = np.array([self.project_codes[p] for p, _ in names], dtype=np.int64)
        self._index.insert(np.array(ids, dtype=np.int64), Query(codes, packed))

    # -- snapshots --------------------------------------------------------------------------

    def to_state(self) -> list[list[str] | None]:
        return [list(name) if name is not None else None for name in self.names]

    @classmethod
    def from_state(cls, max_keys: int, names: list[list[str] | None]) -> KeyRegistry:
        registry = cls(max_keys)
        registry.used = len(names)
        for key, name in enumerate(names):
            if name is None:
                registry.names.append(None)
                heapq.heappush(registry._free, key)
                continue
            project, service = str(name[0]), str(name[1])
            pair = (project, service)
            registry.names.append(pair)
            registry._add(key, pair)
        return registry
