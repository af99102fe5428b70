"""Injected failures for reliability tests: rate limits, timeouts and server errors.

A :class:`Failure` matches calls by user, toolkit and/or tool slug (unset = any) and affects the
next ``count`` matching calls, then disappears. Kinds:

- ``rate_limited``: the app answers 429; the call's result is an error with ``retry_after``.
- ``server_error``: the app answers a 5xx; the call's result is an error (retryable).
- ``timeout``: the app answers only after ``delay`` seconds (longer than any sane client
  timeout), and then with an error; nothing is executed.
- ``http_error``: the MCP endpoint itself answers the ``tools/call`` HTTP request with
  ``status_code`` (default 503) before any tool runs.

The injector is in memory (per server process) and thread-safe, so a test may drive a server that
runs in another thread. The HTTP admin endpoint accepts the same fields (:class:`FailureSpec`).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class FailureKind(StrEnum):
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    HTTP_ERROR = "http_error"


_DEFAULT_STATUS = {
    FailureKind.RATE_LIMITED: 429,
    FailureKind.SERVER_ERROR: 503,
    FailureKind.TIMEOUT: 504,
    FailureKind.HTTP_ERROR: 503,
}


@dataclass(frozen=True, slots=True)
class Failure:
    """What to break, for whom, and how many times."""

    kind: FailureKind
    tool_slug: str | None = None
    toolkit: str | None = None
    user_id: str | None = None
    count: int = 1
    delay: float = 30.0
    """Seconds a ``timeout`` failure holds the call before answering."""
    status_code: int | None = None
    """HTTP status reported (default 429 for rate limits, 503 for server and HTTP errors)."""
    retry_after: float = 1.0
    """Seconds a rate-limited caller is told to wait."""

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if self.delay < 0:
            raise ValueError("delay must not be negative")

    @property
    def status(self) -> int:
        return self.status_code if self.status_code is not None else _DEFAULT_STATUS[self.kind]

    def matches(self, user_id: str, tool_slugs: Collection[str], toolkits: Collection[str]) -> bool:
        return (
            (self.user_id is None or self.user_id == user_id)
            and (self.tool_slug is None or self.tool_slug.upper() in tool_slugs)
            and (self.toolkit is None or self.toolkit.lower() in toolkits)
        )


class FailureSpec(BaseModel):
    """A failure as JSON (the admin endpoint's request body)."""

    model_config = ConfigDict(extra="forbid")

    kind: FailureKind
    tool_slug: str | None = None
    toolkit: str | None = None
    user_id: str | None = None
    count: int = Field(default=1, ge=1, le=10_000)
    delay: float = Field(default=30.0, ge=0, le=3600)
    status_code: int | None = Field(default=None, ge=400, le=599)
    retry_after: float = Field(default=1.0, ge=0, le=3600)

    def to_failure(self) -> Failure:
        return Failure(**self.model_dump())


@dataclass(frozen=True, slots=True)
class PendingFailure:
    """An injected failure and how many more calls it will affect."""

    id: int
    failure: Failure
    remaining: int


class FailureInjector:
    """Pending failures, consumed by matching calls in injection order."""

    __slots__ = ("_ids", "_lock", "_pending")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[int, PendingFailure] = {}
        self._ids = itertools.count(1)

    def inject(self, failure: Failure) -> int:
        """Add a failure; returns its id."""
        with self._lock:
            failure_id = next(self._ids)
            self._pending[failure_id] = PendingFailure(failure_id, failure, failure.count)
            return failure_id

    def clear(self) -> None:
        """Forget every pending failure."""
        with self._lock:
            self._pending.clear()

    def pending(self) -> list[PendingFailure]:
        """Failures that still have calls left to affect, in injection order."""
        with self._lock:
            return list(self._pending.values())

    def has(self, kind: FailureKind) -> bool:
        """Whether any failure of this kind is pending (a cheap check before parsing a request)."""
        with self._lock:
            return any(p.failure.kind is kind for p in self._pending.values())

    def take(
        self,
        kinds: Collection[FailureKind],
        user_id: str,
        tool_slugs: Collection[str],
        toolkits: Collection[str],
    ) -> Failure | None:
        """Consume one use of the oldest matching failure of these kinds, if any."""
        with self._lock:
            for failure_id, entry in self._pending.items():
                if entry.failure.kind in kinds and entry.failure.matches(user_id, tool_slugs, toolkits):
                    if entry.remaining <= 1:
                        del self._pending[failure_id]
                    else:
                        self._pending[failure_id] = PendingFailure(
                            failure_id, entry.failure, entry.remaining - 1
                        )
                    return entry.failure
            return None
