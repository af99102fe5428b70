"""(project, service) names to small integer key ids, the row numbers of the state columns.

Ids are dense; an evicted key's id is reused, always the smallest free one first, so allocation
depends only on which ids are live (a restored detector allocates exactly as the original).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable


class KeyRegistry:
    """Two lookups for speed: per project a service dict, and a (project, service) dict."""

    __slots__ = ("_free", "by_pair", "by_project", "max_keys", "names", "used")

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self.by_project: dict[str, dict[str, int]] = {}
        self.by_pair: dict[tuple[str, str], int] = {}
        self.names: list[tuple[str, str] | None] = []
        """Id to (project, service); None for a free id."""
        self._free: list[int] = []
        self.used = 0
        """One past the highest id ever handed out (the state columns in use)."""

    def __len__(self) -> int:
        return len(self.by_pair)

    def allocate(self, project: str, service: str) -> int | None:
        """A new id for an unknown key, or None when ``max_keys`` keys are live."""
        if len(self.by_pair) >= self.max_keys:
            return None
        if self._free:
            key = heapq.heappop(self._free)
            self.names[key] = (project, service)
        else:
            key = self.used
            self.used += 1
            self.names.append((project, service))
        self.by_pair[(project, service)] = key
        self.by_project.setdefault(project, {})[service] = key
        return key

    def evict(self, keys: Iterable[int]) -> None:
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
            self.names[key] = None
            heapq.heappush(self._free, key)

    def live(self) -> list[int]:
        return [k for k, name in enumerate(self.names) if name is not None]

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
            registry.names.append((project, service))
            registry.by_pair[(project, service)] = key
            registry.by_project.setdefault(project, {})[service] = key
        return registry
