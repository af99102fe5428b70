"""Columns of valid log events (:class:`Batch`), and turning decoded fields into them.

:class:`EventColumns` converts the fields the decoders take out of their input (JSON lines in
:mod:`detector.ingest`, OTLP in :mod:`detector.otlp`) a whole column at a time: timestamps
(:mod:`detector.timestamps`), error flags from levels and HTTP statuses, service names packed for
the key index (:mod:`detector.packing`), and the messages of error rows.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from detector import timestamps
from detector.config import DetectorConfig
from detector.counters import Reason, Rejections
from detector.key_index import SERVICE_WORDS
from detector.packing import Packed, pack

ERROR_LEVELS = frozenset({"error", "err", "fatal", "critical", "crit", "alert", "emergency", "emerg"})
"""Levels (compared lower-cased) that make an event an error."""

DEFAULT_PROJECT = "default"

_TS_REASON = {
    timestamps.BAD: Reason.BAD_TIMESTAMP,
    timestamps.ABSURD: Reason.ABSURD_TIMESTAMP,
    timestamps.NON_FINITE: Reason.NON_FINITE,
}
_LEVEL_CACHE_LIMIT = 4096
_LEVEL_WORDS = 2
_LEVEL_PAD = 8 * _LEVEL_WORDS


def _packed_levels(levels: list[str]) -> npt.NDArray[np.uint64]:
    packed = pack(levels, _LEVEL_WORDS)
    assert packed is not None
    return packed.words


_ERROR_WORDS = sorted(map(tuple, _packed_levels(sorted(ERROR_LEVELS)).tolist()))
_ERROR_FIRST = np.array([w[0] for w in _ERROR_WORDS], dtype=np.uint64)
"""First word of each error level packed as :func:`pack` packs a column, sorted (all differ)."""
_ERROR_SECOND = np.array([w[1] for w in _ERROR_WORDS], dtype=np.uint64)
"""Second word of the same (each error level fits in two words)."""


class Leveled(Protocol):
    """A decoded line with a level (null: none)."""

    @property
    def level(self) -> str | None: ...


@dataclass(slots=True)
class Batch:
    """Valid events as columns, in arrival order. ``messages`` holds one entry per error row."""

    services: list[str]
    projects: list[str] | None
    """Per-row project, or None when every row belongs to ``project``."""
    project: str
    seconds: npt.NDArray[np.int64]
    errors: npt.NDArray[np.bool_]
    messages: list[str]
    where: Sequence[str] = ()
    """Labels ("line 12") of the rows as they arrived, for rejection samples."""
    origin: npt.NDArray[np.intp] | None = None
    """Arrived row of each batch row, when rows were dropped (None: the same)."""
    packed: Packed | None = None
    """``services`` packed for the key index (:data:`~detector.key_index.SERVICE_WORDS` words),
    when they could be (None: not packed, or not packable)."""

    def __len__(self) -> int:
        return len(self.services)

    def label(self, i: int) -> str:
        j = i if self.origin is None else int(self.origin[i])
        return self.where[j] if j < len(self.where) else f"row {j + 1}"

    @classmethod
    def empty(cls) -> Batch:
        return cls([], None, DEFAULT_PROJECT, np.zeros(0, np.int64), np.zeros(0, np.bool_), [])


class EventColumns:
    """Turns decoded fields into a :class:`Batch`: timestamps, names, error flags, messages."""

    def __init__(self, config: DetectorConfig, rejections: Rejections) -> None:
        self.config = config
        self.rejections = rejections
        self._levels: dict[str | None, int] = {}
        """Level spelling -> 1 (error) or 0, for the first few thousand spellings seen."""

    def is_error_level(self, level: str | None) -> int:
        hit = self._levels.get(level)
        if hit is None:
            hit = int(level is not None and level.strip().lower() in ERROR_LEVELS)
            if len(self._levels) < _LEVEL_CACHE_LIMIT:
                self._levels[level] = hit
        return hit

    def error_flags(self, levels: list[str | None]) -> npt.NDArray[np.bool_]:
        """Per row: is the level an error level (see :meth:`is_error_level`).

        A stream uses a few spellings: once each is known, a dict lookup per row (at C speed)
        answers. Its 0s and 1s become the array as the bytes of a bytearray: a few ns a row,
        where ``np.fromiter`` into a bool array converts each value (about 14 ns). A column
        with a spelling not seen before is checked with numpy (see :meth:`_packed_flags`), and
        its spellings are learnt while the cache has room."""
        known = self._levels
        try:
            return np.frombuffer(bytearray(map(known.__getitem__, levels)), np.bool_)
        except KeyError:
            pass
        flags = self._packed_flags(levels)
        if len(known) < _LEVEL_CACHE_LIMIT:
            for level in set(levels).difference(known):
                self.is_error_level(level)
        return flags

    def line_flags(self, rows: Sequence[Leveled]) -> npt.NDArray[np.bool_]:
        """:meth:`error_flags` of the levels of decoded lines, in the same pass that takes the
        levels out of the structs when every spelling is known."""
        known = self._levels
        try:
            return np.frombuffer(bytearray([known[r.level] for r in rows]), np.bool_)
        except KeyError:
            return self.error_flags([r.level for r in rows])

    @staticmethod
    def with_server_errors(
        errors: npt.NDArray[np.bool_], statuses: list[int | None]
    ) -> npt.NDArray[np.bool_]:
        """``errors`` (modified) or'ed with the rows whose HTTP status is 5xx (None: no status)."""
        if statuses.count(None) != len(statuses):
            errors |= _server_errors(statuses)
        return errors

    def _packed_flags(self, levels: list[str | None]) -> npt.NDArray[np.bool_]:
        """:meth:`error_flags` of a column of any levels, as packed words checked with numpy."""
        n = len(levels)
        packed = pack(cast(list[str], levels), _LEVEL_WORDS)
        if packed is None and levels.count(None):  # null levels: no level
            levels = ["" if level is None else level for level in levels]
            packed = pack(cast(list[str], levels), _LEVEL_WORDS)
        if packed is None:  # a level with a newline in it: one by one
            return np.fromiter(map(self.is_error_level, levels), np.bool_, n)
        # Levels of printable ASCII without spaces need no strip and lower-case bytewise; only
        # levels with other bytes (spaces, controls, non-ASCII) or too long to pack are looked at
        # one by one. Every separator byte is "odd", so a clean column has exactly that many.
        odd = (packed.raw - np.uint8(0x21)) > np.uint8(0x7E - 0x21)
        plain: npt.NDArray[np.bool_] | None = None
        if int(np.count_nonzero(odd)) != _LEVEL_PAD * n:
            inside = np.arange(_LEVEL_PAD) < packed.lengths[:, None]
            head = (packed.words.view(np.uint8).reshape(n, _LEVEL_PAD) - np.uint8(0x21)) > np.uint8(
                0x7E - 0x21
            )
            plain = ~(head & inside).any(axis=1) & packed.fits()
        letters = packed.words.view(np.uint8)
        upper = (letters - np.uint8(65)) < np.uint8(26)
        letters |= upper.view(np.uint8) << np.uint8(5)
        first, second = packed.words[:, 0], packed.words[:, 1]
        at = np.minimum(np.searchsorted(_ERROR_FIRST, first), len(_ERROR_FIRST) - 1)
        flags: npt.NDArray[np.bool_] = (_ERROR_FIRST[at] == first) & (_ERROR_SECOND[at] == second)
        if plain is not None:
            flags &= plain
            for i in np.flatnonzero(~plain).tolist():
                flags[i] = self.is_error_level(levels[i])
        return flags

    def build(
        self,
        ts: list[Any],
        services: list[str],
        projects: list[str] | None,
        levels: list[str | None] | npt.NDArray[np.bool_] | None,
        statuses: list[int | None] | None,
        message_of: Any,
        where: Sequence[str],
    ) -> Batch:
        """Convert columns and check timestamps; ``message_of(i)`` gives row i's message.

        ``projects`` None means every row is in the default project; ``levels`` None means no
        level information (error flags then come from ``statuses``), an array means their
        :meth:`error_flags` already (taken over, not copied). Project and service names
        are checked when the detector first meets them (:mod:`detector.core`).
        """
        cfg = self.config
        n = len(ts)
        seconds, codes = timestamps.to_epoch_seconds(ts, cfg.min_timestamp, cfg.max_timestamp)
        valid = codes == timestamps.OK
        if not valid.all():
            for i in np.flatnonzero(~valid).tolist():
                self.rejections.add(_TS_REASON[int(codes[i])], where[i], f"ts={ts[i]!r}")
        # packed once here, for this check and for the key lookup (detector.keys); other bad
        # names are caught when first seen
        packed = pack(services, SERVICE_WORDS)
        if "" in services if packed is None else np.count_nonzero(packed.lengths == 0):
            empty = np.fromiter(map(operator.not_, services), np.bool_, n)
            for i in np.flatnonzero(empty & valid).tolist():
                self.rejections.add(Reason.MISSING_SERVICE, where[i], "service is empty")
            valid &= ~empty
        project = DEFAULT_PROJECT
        if projects is not None:
            if "" in projects:
                projects = [p or DEFAULT_PROJECT for p in projects]
            if projects.count(projects[0]) == n:
                project, projects = projects[0], None
        # errors: level (see error_flags) or HTTP status 5xx
        if levels is None:
            errors = np.zeros(n, dtype=np.bool_)
        else:
            errors = levels if isinstance(levels, np.ndarray) else self.error_flags(levels)
        if statuses is not None:
            errors = self.with_server_errors(errors, statuses)
        if not valid.all():
            keep = valid.tolist()
            rows = np.flatnonzero(valid)
            services = list(compress(services, keep))
            if packed is not None:
                packed = Packed(packed.words[rows], packed.lengths[rows], packed.raw, packed.starts[rows])
            if projects is not None:
                projects = list(compress(projects, keep))
            seconds = seconds[rows]
            errors = errors[rows]
            messages = [_clip(message_of(i), cfg.max_message_chars) for i in rows[errors].tolist()]
            return Batch(services, projects, project, seconds, errors, messages, where, rows, packed)
        messages = [_clip(message_of(i), cfg.max_message_chars) for i in np.flatnonzero(errors).tolist()]
        return Batch(services, projects, project, seconds, errors, messages, where, None, packed)


def _server_errors(statuses: list[int | None]) -> npt.NDArray[np.bool_]:
    """Per row: an HTTP status from 500 to 599 (None: no status)."""
    try:
        codes = np.fromiter(statuses, dtype=np.int64, count=len(statuses))
    except (TypeError, OverflowError):  # a null status, or an integer beyond int64
        return np.array([s is not None and 500 <= s < 600 for s in statuses], dtype=np.bool_)
    flags: npt.NDArray[np.bool_] = (codes >= 500) & (codes < 600)
    return flags


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]
