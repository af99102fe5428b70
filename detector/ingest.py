"""JSON lines in, columns of valid log events out; bad lines counted, never raised.

A line is one JSON object: ``ts`` (RFC 3339 with any offset, or epoch seconds / milliseconds as a
number), ``service``, optional ``level``, ``message``, ``project`` (default ``"default"``) and
``status`` (HTTP code). An event is an error when its level is one of :data:`ERROR_LEVELS` (any
case) or its status is from 500 to 599. Unknown fields are ignored.

Speed comes from decoding a whole buffer of lines at once (msgspec ``decode_lines`` into
``gc=False`` structs) and converting each field as a column (:mod:`detector.columns`), with no
Python code per line past taking the fields out of the structs: timestamps
(:mod:`detector.timestamps`) and service names are packed into fixed-width bytes
(:mod:`detector.packing`) and checked with numpy; levels are decoded as literals of the spellings
the stream uses (:meth:`JsonLinesDecoder._whole`) and looked up in a dict of them (in the pass
that takes them out); the optional project and status are not taken out at all when no line of
the buffer sets them (:meth:`JsonLinesDecoder._filled`).

When a buffer holds a bad line, it is split once into lines: lines that cannot be an object
(not "{" ... "}", empty, too long) are looked at one by one, and the others are decoded in blocks
of :data:`_BLOCK` lines. A bad line that only the decoder can tell is located from the decoder's
error; the good lines before it in its block are decoded again and decoding resumes after it. So
a bad line costs at most one block's decoding and loses nothing else.

The OTLP decoders (:mod:`detector.otlp`) produce the same :class:`Batch`.
"""

from __future__ import annotations

import bisect
import re
import sys
from collections.abc import Sequence
from itertools import compress
from typing import Any, Literal, NamedTuple, cast

import msgspec
import numpy as np
import numpy.typing as npt

from detector.columns import DEFAULT_PROJECT, Batch, EventColumns
from detector.config import DetectorConfig
from detector.counters import Reason, Rejections

NO_STATUS = -(2**31)
"""A line's status when it has none (not an HTTP status code)."""
_EXACT_REFCOUNTS = bool(getattr(sys, "_is_gil_enabled", lambda: True)())
"""Reference counts are exact (not under a free-threaded build): see :meth:`JsonLinesDecoder._filled`."""

_NON_FINITE_TOKEN = re.compile(rb"(?<![\w\"])-?(?:NaN|Infinity|inf)(?![\w\"])")
_RECORD_INDEX = re.compile(r"at `\$\[(\d+)\]")
_BYTE_OFFSET = re.compile(r"\(byte (\d+)\)")
_COMMON_LEVELS = (
    "trace", "debug", "info", "notice", "warn", "warning", "error", "err", "fatal", "critical", "crit",
    "alert", "emergency", "emerg",
)  # fmt: skip
_SEED_SPELLINGS = tuple(
    dict.fromkeys(f(w) for w in _COMMON_LEVELS for f in (str.lower, str.upper, str.title))
)
"""Level spellings the fast decoder knows from the start (see :meth:`JsonLinesDecoder._whole`)."""
_MAX_SPELLINGS = 256
_MAX_SPELLING_CHARS = 32
_PIECE = 1 << 16
"""Bytes of lines decoded at once on the fast path (see :meth:`JsonLinesDecoder._in_pieces`)."""
_BLOCK = 256
"""Lines decoded at once in a buffer with bad lines: a bad line that only the decoder can tell
(a wrong type, NaN, a bad byte inside a string) costs decoding the lines before it in its block
again; a smaller block costs more decoder calls."""


class LogLine(msgspec.Struct, gc=False):
    """One decoded JSON line (fields as sent; validated further by :class:`JsonLinesDecoder`)."""

    ts: str | int | float
    service: str
    level: str | None = ""
    """null means no level, as if absent."""
    message: str | None = ""
    project: str = DEFAULT_PROJECT
    status: int | None = NO_STATUS
    """Absent is :data:`NO_STATUS`; null is None, as if absent."""


class _Part(NamedTuple):
    """Columns of consecutive decoded lines (see :meth:`JsonLinesDecoder._columns`)."""

    ts: list[str | int | float]
    services: list[str]
    projects: list[str] | None
    errors: npt.NDArray[np.bool_]
    messages: list[str]
    """Of the error lines, in order."""


class _Where(Sequence[str]):
    """Lazy "line N" labels (built only for the few rejected rows)."""

    __slots__ = ("_base", "_count", "_numbers")

    def __init__(self, base: int, numbers: list[int] | None, count: int) -> None:
        self._base = base
        self._numbers = numbers
        self._count = count

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i: Any) -> Any:
        number = self._numbers[i] if self._numbers is not None else i
        return f"line {self._base + number}"


class JsonLinesDecoder:
    """Decodes buffers of complete JSON lines into :class:`Batch` es."""

    def __init__(self, config: DetectorConfig, rejections: Rejections) -> None:
        self.config = config
        self.rejections = rejections
        self.columns = EventColumns(config, rejections)
        # the defaults of the optional project and status: objects of this decoder's own, equal
        # to LogLine's (see _filled)
        self._no_project = "".join(["def", "ault"])
        self._no_status = int(str(NO_STATUS))
        line = cast(
            "type[LogLine]",
            msgspec.defstruct(
                "LogLine",
                [("project", str, self._no_project), ("status", int | None, self._no_status)],
                bases=(LogLine,),
                gc=False,
            ),
        )
        self._line_type = line
        self._decoder = msgspec.json.Decoder(line)
        self._spellings: tuple[str, ...] = ()
        self._fast: msgspec.json.Decoder[LogLine] | None = self._literal_decoder(_SEED_SPELLINGS)
        self._lines: tuple[bytes, list[int], list[int]] = (b"", [], [])
        self._first_line = 0

    def _literal_decoder(self, spellings: tuple[str, ...]) -> msgspec.json.Decoder[LogLine]:
        """A decoder whose lines take their level from ``spellings`` (or null, or none)."""
        self._spellings = spellings
        literal = cast(
            "type[LogLine]",
            msgspec.defstruct(
                "LogLine", [("level", Literal[spellings] | None, "")], bases=(self._line_type,), gc=False
            ),
        )
        return msgspec.json.Decoder(literal)

    def _whole(self, view: memoryview) -> list[LogLine] | None:
        """Decode a range of lines at once; None if some line is bad (the careful path then
        finds it).

        A stream spells its levels a few ways. The fast decoder matches them as literals, so each
        line's level is one shared string (nothing to allocate and free, its hash known): about
        a fifth off the decoding and a quarter off the error flags. A range with a spelling it
        does not know is decoded again as plain strings, and its spellings are learnt; a stream
        with more spellings than :data:`_MAX_SPELLINGS` (or very long ones) stops using it."""
        fast = self._fast
        if fast is not None:
            try:
                return fast.decode_lines(view)
            except msgspec.ValidationError as exc:
                if not str(exc).endswith(".level`"):
                    return None  # a bad line, not an unknown spelling
            except (msgspec.DecodeError, UnicodeDecodeError):
                return None
        try:
            decoded = self._decoder.decode_lines(view)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            return None
        if fast is not None:
            known = set(self._spellings)
            new = {r.level for r in decoded if r.level not in known and r.level is not None}
            if len(known) + len(new) > _MAX_SPELLINGS or any(len(w) > _MAX_SPELLING_CHARS for w in new):
                self._fast = None
            else:
                self._fast = self._literal_decoder(self._spellings + tuple(sorted(new)))
        return decoded

    def _defaults(self) -> tuple[int, int]:
        """Reference counts of this decoder's defaults for project and status."""
        return sys.getrefcount(self._no_project), sys.getrefcount(self._no_status)

    def _filled(self, before: tuple[int, int], rows: int) -> tuple[bool, bool]:
        """Whether every one of ``rows`` lines decoded since :meth:`_defaults` returned ``before``
        has no project, and no status.

        A decoded struct holds a reference to the default of each field its line does not set.
        These two default objects belong to this decoder (its own LogLine subclass): only its
        structs and itself hold them, and a detector is used by one thread at a time, so each
        count grows by the number of lines without that field: by ``rows`` exactly when none has
        it. Taking the fields out of every struct to count their defaults costs a pass over the
        structs per field, more than the rest of a column's work. A garbage collection during
        the decode can only drop references (old structs freed): the counts then fall short and
        the caller counts the long way, as it does where counts are not exact.
        """
        if not _EXACT_REFCOUNTS:
            return False, False
        after = self._defaults()
        return after[0] - before[0] == rows, after[1] - before[1] == rows

    def decode(
        self,
        buf: bytes,
        first_line: int,
        start: int = 0,
        end: int | None = None,
        shape: tuple[int, int] | None = None,
    ) -> Batch:
        """Decode the complete lines in ``buf[start:end]`` (the last may lack its newline)
        without copying them. Line numbers in rejection samples start at ``first_line``;
        ``shape`` (:func:`line_shape` of the range, when the caller has it) saves a pass.

        The range is decoded a piece at a time (:meth:`_in_pieces`) only when every line starts
        with ``{``: each line then yields at least one value or fails, so as many values as
        lines means one per line. (``decode_lines`` skips blank lines and accepts several values
        on one line, so an empty line and a line holding two values would otherwise cancel
        out.) Otherwise, or when a piece holds a bad line, the careful path decodes the range."""
        end = len(buf) if end is None else end
        if end <= start:
            return Batch.empty()
        newlines, braces = line_shape(buf, start, end) if shape is None else shape
        n_lines = newlines + (0 if buf[end - 1] == 10 else 1)
        if braces == n_lines and not _has_long_line(buf, self.config.max_line_bytes, start, end):
            parts = self._in_pieces(buf, start, end, n_lines)
            if parts is not None:
                return self._build(parts, _Where(first_line, None, n_lines))
        rows, numbers = self._careful(buf, start, end, first_line)
        if not rows:
            return Batch.empty()
        part = self._columns(rows, False, False)
        return self._build([part], _Where(first_line, numbers, len(rows)))

    def _in_pieces(self, buf: bytes, start: int, end: int, n_lines: int) -> list[_Part] | None:
        """The columns of every line in ``buf[start:end]``, decoded :data:`_PIECE` bytes at a
        time; None if some line is bad (the careful path then finds it).

        The objects decoded from a piece (a struct and three strings a line, about three times
        the piece's bytes) are taken apart while they are still in the core's cache, and the
        structs are freed before the next piece is decoded. Decoded a 1 MiB chunk at once, they
        would not fit: each later pass over them (taking out each field, freeing them) would
        miss the cache, which costs most where the rest of the detector (a large key index,
        the state of many keys) competes for the cache too."""
        view = memoryview(buf)
        parts: list[_Part] = []
        decoded = 0
        pos = start
        while pos < end:
            cut = buf.find(b"\n", pos + _PIECE, end) + 1 if end - pos > _PIECE else 0
            stop = cut if cut > 0 else end
            part = self._piece(view[pos:stop])
            if part is None:
                return None
            decoded += len(part.ts)
            parts.append(part)
            pos = stop
        return parts if decoded == n_lines else None

    def _piece(self, view: memoryview) -> _Part | None:
        """The columns of one piece's lines (their structs are freed on return)."""
        before = self._defaults()
        rows = self._whole(view)
        if rows is None:
            return None
        return self._columns(rows, *self._filled(before, len(rows)))

    def _columns(self, rows: list[LogLine], no_project: bool, no_status: bool) -> _Part:
        """The fields of decoded lines as columns: timestamps, services, projects (None when no
        line has one), error flags (level or 5xx status) and the messages of error lines.

        ``no_project``, ``no_status``: known already that no line sets that field (see
        :meth:`_filled`); otherwise it is counted (a pointer comparison per row where a row
        holds this decoder's default; an equal value set explicitly counts as well)."""
        n = len(rows)
        projects: list[str] | None = None
        if not no_project:
            projects = [r.project for r in rows]
            if projects.count(self._no_project) == n:
                projects = None
        errors = self.columns.line_flags(rows)
        if not no_status:
            statuses = [r.status for r in rows]
            if statuses.count(self._no_status) != n:
                errors = self.columns.with_server_errors(errors, statuses)
        messages = [r.message or "" for r in compress(rows, errors.tolist())] if errors.any() else []
        return _Part([r.ts for r in rows], [r.service for r in rows], projects, errors, messages)

    def _build(self, parts: list[_Part], where: _Where) -> Batch:
        """One :class:`Batch` of the columns of consecutive pieces."""
        if len(parts) == 1:
            ts, services, projects, errors, messages = parts[0]
        else:
            ts, services, messages = [], [], []
            for part in parts:
                ts += part.ts
                services += part.services
                messages += part.messages
            errors = np.concatenate([part.errors for part in parts])
            projects = None
            if any(part.projects is not None for part in parts):
                projects = []
                for part in parts:
                    projects += part.projects or [self._no_project] * len(part.ts)
        by_row = dict(zip(np.flatnonzero(errors).tolist(), messages, strict=True)) if messages else {}
        return self.columns.build(ts, services, projects, errors, None, by_row.__getitem__, where)

    # -- the careful path: some line in the buffer is bad -----------------------------------

    def _careful(self, buf: bytes, start: int, end: int, first_line: int) -> tuple[list[LogLine], list[int]]:
        """Every line on its own where it looks wrong, the rest in blocks (see :data:`_BLOCK`)."""
        data = np.frombuffer(buf, dtype=np.uint8, count=end - start, offset=start)
        newlines = np.flatnonzero(data == 10) + start
        starts = np.concatenate(([start], newlines + 1))
        ends = np.concatenate((newlines, [end]))
        if starts[-1] == end:  # ends with a newline: no trailing line
            starts, ends = starts[:-1], ends[:-1]
        lengths = ends - starts
        whole = np.frombuffer(buf, dtype=np.uint8)
        head = whole[np.minimum(starts, len(buf) - 1)]
        tail = whole[np.maximum(ends - 1, 0)]
        crlf = (tail == 13) & (lengths > 1)
        tail = np.where(crlf, whole[np.maximum(ends - 2, 0)], tail)
        too_long = lengths > self.config.max_line_bytes
        empty = (lengths == 0) | ((lengths == 1) & (head == 13))
        # A line of this format is an object: one that does not start with "{" and end with "}"
        # is bad, or at least odd (whitespace around it), and is looked at on its own.
        odd = (head != 123) | (tail != 125) | (lengths < 2)
        self._lines = (buf, starts.tolist(), ends.tolist())
        self._first_line = first_line
        rows: list[LogLine] = []
        numbers: list[int] = []
        # in line order: rejected and odd lines one by one, runs of the others in blocks
        alone = np.flatnonzero(too_long | empty | odd)
        edges = np.concatenate(([0], alone + 1))
        for gap_start, i in zip(edges.tolist(), [*alone.tolist(), len(starts)], strict=True):
            for a in range(gap_start, i, _BLOCK):
                self._decode_block(a, min(a + _BLOCK, i), rows, numbers)
            if i == len(starts):
                break
            if too_long[i]:
                self._reject(Reason.TOO_LONG, i)
            elif empty[i]:
                self._reject(Reason.EMPTY_LINE, i)
            else:
                self._single(i, rows, numbers)
        self._lines = (b"", [], [])
        return rows, numbers

    def _line(self, i: int) -> bytes:
        buf, starts, ends = self._lines
        return buf[starts[i] : ends[i]]

    def _reject(self, reason: Reason, i: int) -> None:
        self.rejections.add(reason, f"line {self._first_line + i}", self._line(i))

    def _decode_block(self, a: int, b: int, rows: list[LogLine], numbers: list[int]) -> None:
        """Decode lines [a, b) into ``rows``. A bad line is located from the decoder's error:
        the lines before it are decoded again (at most a block), then decoding goes on after it."""
        buf, starts, ends = self._lines
        while a < b:
            segment = memoryview(buf)[starts[a] : ends[b - 1]]
            try:
                decoded = self._decoder.decode_lines(segment)
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
                k = self._locate(exc, segment, a, b)
                if k is None or self._classify(self._line(k)) is None:
                    break  # the error does not point at a bad line: line by line
                if k > a:
                    self._decode_block(a, k, rows, numbers)
                self._single(k, rows, numbers)
                a = k + 1
                continue
            if len(decoded) != b - a:
                break  # several values on one line: line by line
            rows.extend(decoded)
            numbers.extend(range(a, b))
            return
        for i in range(a, b):
            self._single(i, rows, numbers)

    def _single(self, i: int, rows: list[LogLine], numbers: list[int]) -> None:
        line = self._line(i)
        reason = self._classify(line)
        if reason is None:
            rows.append(self._decoder.decode(line))
            numbers.append(i)
        else:
            self._reject(reason, i)

    def _locate(self, exc: Exception, segment: memoryview, a: int, b: int) -> int | None:
        """The line index the decoder's error points at, when it says."""
        _, starts, _ = self._lines
        if isinstance(exc, msgspec.ValidationError):
            m = _RECORD_INDEX.search(str(exc))
            return a + int(m.group(1)) if m and a + int(m.group(1)) < b else None
        if isinstance(exc, UnicodeDecodeError):
            try:
                bytes(segment).decode("utf-8")
            except UnicodeDecodeError as utf:
                offset = utf.start
            else:
                return None
        else:
            m = _BYTE_OFFSET.search(str(exc))
            if m is None:
                return None
            offset = int(m.group(1))
        k = bisect.bisect_right(starts, starts[a] + offset, a, b) - 1
        return k if a <= k < b else None

    def _classify(self, line: bytes) -> Reason | None:
        """Why one line is rejected, or None when it decodes cleanly."""
        if len(line) > self.config.max_line_bytes:
            return Reason.TOO_LONG
        if not line.strip():
            return Reason.EMPTY_LINE
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return Reason.NON_UTF8
        try:
            self._decoder.decode(line)
        except msgspec.ValidationError as exc:
            return validation_reason(str(exc))
        except (msgspec.DecodeError, UnicodeDecodeError):
            return Reason.NON_FINITE if _NON_FINITE_TOKEN.search(line) else Reason.MALFORMED_JSON
        return None


def validation_reason(message: str) -> Reason:
    """Map a msgspec validation message for a :class:`LogLine` to a rejection reason."""
    if "Number out of range" in message:
        return Reason.NON_FINITE
    if "missing required field `service`" in message:
        return Reason.MISSING_SERVICE
    if "missing required field `ts`" in message:
        return Reason.MISSING_TIMESTAMP
    if message.endswith(".ts`"):
        return Reason.BAD_TIMESTAMP
    return Reason.WRONG_TYPE


def line_shape(buf: bytes, start: int = 0, end: int | None = None) -> tuple[int, int]:
    """(newlines, lines starting with ``{``) in ``buf[start:end]``: numpy passes, ~10 ns a line.

    A line after a newline starts with ``{`` where the two bytes read as one little-endian
    16-bit word give ``0x7B0A``: counted over the words at even offsets and at odd ones (half as
    many items as a byte-wise pair test, and no temporaries to combine)."""
    end = len(buf) if end is None else end
    if end <= start:
        return 0, 0
    size = end - start
    if size < 4096:
        return buf.count(b"\n", start, end), buf.count(b"\n{", start, end) + (buf[start] == 0x7B)
    data = np.frombuffer(buf, dtype=np.uint8, count=size, offset=start)
    even = np.frombuffer(buf, dtype="<u2", count=size // 2, offset=start)
    odd = np.frombuffer(buf, dtype="<u2", count=(size - 1) // 2, offset=start + 1)
    braces = int(np.count_nonzero(even == 0x7B0A)) + int(np.count_nonzero(odd == 0x7B0A))
    return int(np.count_nonzero(data == 10)), braces + int(data[0] == 0x7B)


def _has_long_line(buf: bytes, limit: int, start: int, end: int) -> bool:
    """Whether a line of ``buf[start:end]`` exceeds ``limit`` bytes, in (end - start) / limit steps."""
    pos = start
    while end - pos > limit:
        j = buf.rfind(b"\n", pos, pos + limit + 1)
        if j < 0:
            return True
        pos = j + 1
    return False
