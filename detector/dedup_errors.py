"""Errors of the PostgreSQL-backed dedup, incident and outbox layer.

Raised by ``detector/dedup.py``, ``detector/incidents.py`` and ``detector/outbox.py``; nothing else
escapes them (asyncpg errors are translated here, in one place)::

    DedupError                 base class; ``retryable`` says whether trying again can succeed
    ├── DedupUnavailable       retryable: PostgreSQL unreachable, the connection dropped mid-statement,
    │                          the server is shutting down or cancelled the statement (timeout),
    │                          too many connections, a serialization failure or a deadlock
    ├── InvalidAnomaly         permanent: an anomaly in the call is malformed; nothing was written
    ├── IncidentNotFound       permanent: no incident has that id
    ├── LeaseLost              permanent for this lease: the job is no longer leased to this worker
    │                          under this lease token (it expired and was taken over, or was
    │                          already completed); the new owner's outcome stands
    └── DedupStorageError      permanent: any other database error (schema not migrated, a
                               constraint violated); fix the cause, do not retry blindly

Every claim, operator action and outbox call is one statement in its own transaction, so a
retryable failure leaves either nothing or the whole effect committed. Retrying a claim whose
commit happened just before the connection dropped is safe: the retry is answered as a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg


class DedupError(Exception):
    """Base class. ``retryable``: whether the same call may succeed if tried again."""

    retryable = False


class DedupUnavailable(DedupError):
    """The database could not complete the statement now. Retryable."""

    retryable = True


class InvalidAnomaly(DedupError):
    """An anomaly cannot be claimed as given. Permanent. ``index`` is its position in the call."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


class IncidentNotFound(DedupError):
    """No incident with this id. Permanent."""


class LeaseLost(DedupError):
    """This worker no longer holds the job's lease. Permanent for that lease."""


class DedupStorageError(DedupError):
    """Any other database failure (e.g. the schema is not migrated). Permanent."""


_RETRYABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # includes "connection was closed in the middle of operation"
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, terminated backend, query cancelled
    asyncpg.exceptions.TransactionRollbackError,  # serialization failure, deadlock detected
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    OSError,
    TimeoutError,
)


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Re-raise database failures inside the block as :class:`DedupError` subclasses."""
    try:
        yield
    except DedupError:
        raise
    except _RETRYABLE as exc:
        raise DedupUnavailable(f"{action}: {type(exc).__name__}: {exc}") from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DedupStorageError(f"{action}: {type(exc).__name__}: {exc}") from exc
