"""Event timestamps to whole epoch seconds, a column at a time.

Accepted: RFC 3339 strings with any offset (``Z``, ``+05:30``; a ``T``, ``t`` or space between
date and time; a missing offset means UTC), and epoch numbers in seconds or, from 1e11 up,
milliseconds. Strings of the common shape are parsed with numpy over the whole column (no Python
datetime per event): the column is packed into fixed-width rows (:mod:`detector.packing`) and
each width present is parsed at fixed positions. Anything else goes through
:func:`datetime.fromisoformat`, row by row.

Sub-second precision is dropped: buckets are whole seconds wide.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from itertools import repeat
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from detector.packing import pack

OK = 0
BAD = 1
"""Not a timestamp (unparseable, wrong type)."""
ABSURD = 2
"""Parsed, but outside the configured plausible range."""
NON_FINITE = 3
"""A number that is NaN or infinite."""

MILLIS_FROM = 1e11
"""Epoch numbers at least this large are milliseconds (1e11 s is the year 5138)."""

_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
_DAYS_IN_MONTH = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
_ZERO = ord("0")

_MIN_WIDTH = 19
_MAX_WIDTH = 40
_WORDS = _MAX_WIDTH // 8
_PREFIX_LOW = np.uint64(2**24 - 1)
"""Bytes 16 to 18 of a row's third word: the end of the 19-byte date and time prefix."""

IntArray = npt.NDArray[np.int64]
CodeArray = npt.NDArray[np.uint8]


def to_epoch_seconds(values: list[Any], low: float, high: float) -> tuple[IntArray, CodeArray]:
    """Whole epoch seconds for each value, and a code per value (:data:`OK`, :data:`BAD`, ...).

    Values whose code is not OK have an unspecified second. Never raises.
    """
    n = len(values)
    seconds = np.zeros(n, dtype=np.int64)
    codes = np.zeros(n, dtype=np.uint8)
    if n == 0:
        return seconds, codes
    try:
        lined = "\n".join(values)
    except TypeError:  # numbers among the strings
        _mixed(values, seconds, codes)
    else:
        if not _uniform(values, lined, seconds, codes):
            _strings(values, seconds, codes)
    bad_range = (codes == OK) & ((seconds < low) | (seconds > high))
    codes[bad_range] = ABSURD
    return seconds, codes


def _mixed(values: list[Any], seconds: IntArray, codes: CodeArray) -> None:
    is_text = np.fromiter(map(isinstance, values, repeat(str)), dtype=np.bool_, count=len(values))
    text_rows = np.flatnonzero(is_text)
    number_rows = np.flatnonzero(~is_text)
    if len(text_rows):
        texts = [values[i] for i in text_rows.tolist()]
        sub_s, sub_c = np.zeros(len(texts), np.int64), np.zeros(len(texts), np.uint8)
        _strings(texts, sub_s, sub_c)
        seconds[text_rows], codes[text_rows] = sub_s, sub_c
    if len(number_rows):
        numbers = [values[i] for i in number_rows.tolist()]
        sub_s, sub_c = np.zeros(len(numbers), np.int64), np.zeros(len(numbers), np.uint8)
        _numbers(numbers, sub_s, sub_c)
        seconds[number_rows], codes[number_rows] = sub_s, sub_c


def _numbers(values: list[Any], seconds: IntArray, codes: CodeArray) -> None:
    try:
        if bool in set(map(type, values)):
            raise TypeError("booleans are not timestamps")
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        for i, v in enumerate(values):
            seconds[i], codes[i] = number_to_seconds(v)
        return
    finite = np.isfinite(arr)
    codes[~finite] = NON_FINITE
    arr = np.where(finite, arr, 0.0)
    arr = np.where(np.abs(arr) >= MILLIS_FROM, arr / 1000.0, arr)
    # Anything beyond ~1e15 s is absurd anyway; clipping keeps the int64 cast defined.
    np.clip(arr, -1e15, 1e15, out=arr)
    seconds[:] = np.floor(arr).astype(np.int64)


def number_to_seconds(value: Any) -> tuple[int, int]:
    """(whole epoch seconds, code) for one epoch number in seconds or milliseconds."""
    if type(value) is bool or not isinstance(value, int | float):
        return 0, BAD
    try:
        x = float(value)
    except OverflowError:
        return 0, ABSURD
    if not math.isfinite(x):
        return 0, NON_FINITE
    if abs(x) >= MILLIS_FROM:
        x /= 1000.0
    return math.floor(max(-1e15, min(1e15, x))), OK


def text_to_seconds(text: str) -> tuple[int, int]:
    """(whole epoch seconds, code) for one ISO 8601 / RFC 3339 string; naive means UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except (ValueError, TypeError):
        return 0, BAD
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return math.floor(parsed.timestamp()), OK
    except (OverflowError, ValueError, OSError):
        return 0, ABSURD


def _uniform(values: list[str], lined: str, seconds: IntArray, codes: CodeArray) -> bool:
    """The common case, cheapest: ASCII strings all of one width, joined by newlines in
    ``lined``. False when the column is not like that."""
    n = len(values)
    width = len(values[0])
    if not _MIN_WIDTH <= width <= _MAX_WIDTH or len(lined) != n * (width + 1) - 1:
        return False
    try:
        buf = lined.encode("ascii")
    except UnicodeEncodeError:
        return False
    stride = width + 1
    if int(np.count_nonzero(np.frombuffer(buf, dtype=np.uint8) == 10)) != n - 1:
        return False  # the length only adds up by chance
    m = np.ndarray((n, width), dtype=np.uint8, buffer=buf, strides=(stride, 1))
    # compare each row's 19-byte prefix with the previous row's as three overlapping words
    change = np.zeros(n, dtype=np.bool_)
    change[0] = True
    for at in (0, 8, 11):
        word = np.ndarray((n,), dtype="<u8", buffer=buf, offset=at, strides=(stride,))
        change[1:] |= word[1:] != word[:-1]
    bad = _fixed(m, width, change, seconds)
    if len(bad):
        _slow(values, bad, seconds, codes)
    return True


def _strings(values: list[str], seconds: IntArray, codes: CodeArray) -> None:
    """Strings of several widths: packed into rows of ``_WORDS`` words, each width parsed apart."""
    n = len(values)
    packed = pack(values, _WORDS)
    if packed is None:  # a newline or a lone surrogate in some string
        _slow(values, np.arange(n), seconds, codes)
        return
    lengths = packed.lengths
    present = np.bincount(np.minimum(lengths, _MAX_WIDTH + 1), minlength=_MAX_WIDTH + 2)
    for width in np.flatnonzero(present).tolist():
        rows = np.flatnonzero(lengths == width)
        if not _MIN_WIDTH <= width <= _MAX_WIDTH:
            _slow(values, rows, seconds, codes)
            continue
        words = packed.words[rows]
        change = np.ones(len(rows), dtype=np.bool_)
        change[1:] = words[1:, 0] != words[:-1, 0]
        change[1:] |= words[1:, 1] != words[:-1, 1]
        change[1:] |= ((words[1:, 2] ^ words[:-1, 2]) & _PREFIX_LOW) != 0
        sub_s = np.empty(len(rows), np.int64)
        bad = _fixed(words.view(np.uint8).reshape(len(rows), 8 * _WORDS), width, change, sub_s)
        seconds[rows] = sub_s
        if len(bad):
            _slow(values, rows[bad], seconds, codes)


def _fixed(
    m: npt.NDArray[np.uint8], width: int, change: npt.NDArray[np.bool_], seconds: IntArray
) -> npt.NDArray[np.intp]:
    """Seconds of rows all ``width`` bytes long (row i is ``m[i, :width]``; ``change[i]``: its
    first 19 bytes differ from row i - 1's). Returns the rows that do not fit the common shapes
    (for :func:`datetime.fromisoformat`).

    Rows of one second share their first 19 bytes, so the calendar arithmetic runs once per
    distinct second, not once per row.
    """
    n = len(m)
    firsts = np.flatnonzero(change)
    if len(firsts) == 1:  # one second for the whole column
        base, base_ok = _prefixes(m[:1, :19])
        ok = np.full(n, bool(base_ok[0]))
        seconds[:] = base[0]
    else:
        group = np.cumsum(change) - 1
        base, base_ok = _prefixes(m[firsts, :19])
        ok = base_ok[group]
        seconds[:] = base[group]

    last = m[:, width - 1]
    zulu = (last == 90) | (last == 122)
    offset = np.zeros(n, dtype=np.bool_)
    if width >= 25:
        sign = m[:, width - 6]
        od = (m[:, [width - 5, width - 4, width - 2, width - 1]] - _ZERO).astype(np.int64)
        offset = ~zulu & ((sign == 43) | (sign == 45)) & (m[:, width - 3] == 58) & (od < 10).all(axis=1)
        if offset.any():
            hours = od[:, 0] * 10 + od[:, 1]
            minutes = od[:, 2] * 10 + od[:, 3]
            ok &= ~offset | ((hours <= 23) & (minutes <= 59))
            east = np.where(sign == 45, -1, 1)
            seconds -= np.where(offset, (hours * 3600 + minutes * 60) * east, 0)
    for kind, end in ((zulu, width - 1), (offset, width - 6), (~zulu & ~offset, width)):
        if end <= 19 or not kind.any():
            continue  # no fraction, or nobody of this kind
        if end == 20:
            ok &= ~kind  # a lone "."
            continue
        fraction = m[:, 19] == 46
        for col in range(20, end):  # column by column: a 2-D reduction over a few columns is slow
            fraction &= (m[:, col] - _ZERO) < 10
        ok &= ~kind | fraction
    return np.flatnonzero(~ok)


_PREFIX_CACHE: dict[bytes, int] = {}
"""Known "YYYY-MM-DDTHH:MM:SS" prefixes -> UTC epoch seconds (_INVALID: not a date). Bounded."""
_INVALID = -(2**62)
_PREFIX_CACHE_LIMIT = 8192
_FEW = 64


def _prefixes(m: npt.NDArray[np.uint8]) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """Epoch seconds and validity of each row's first 19 bytes. A chunk usually spans a few
    seconds: few rows, each looked up in a small cache; many rows go through numpy."""
    out = np.zeros(len(m), np.int64)
    if len(m) > _FEW:
        return out, _prefix(m, out)
    rows = m[:, :19].tobytes()
    keys = [rows[i * 19 : i * 19 + 19] for i in range(len(m))]
    values = [_PREFIX_CACHE.get(key) for key in keys]
    missing = [i for i, value in enumerate(values) if value is None]
    if missing:
        fresh = np.zeros(len(missing), np.int64)
        good = _prefix(m[missing], fresh)
        if len(_PREFIX_CACHE) + len(missing) > _PREFIX_CACHE_LIMIT:
            _PREFIX_CACHE.clear()
        for i, second, valid in zip(missing, fresh.tolist(), good.tolist(), strict=True):
            values[i] = _PREFIX_CACHE[keys[i]] = second if valid else _INVALID
    out[:] = cast(list[int], values)  # every entry is filled by now
    return out, out != _INVALID


def _prefix(m: npt.NDArray[np.uint8], out: IntArray) -> npt.NDArray[np.bool_]:
    """Validate "YYYY-MM-DDTHH:MM:SS" in the first 19 columns; write UTC epoch seconds."""
    d = (m[:, _DIGITS] - _ZERO).astype(np.int64)  # uint8 wrap-around turns non-digits into >= 10
    ok = (d < 10).all(axis=1)
    ok &= (m[:, 4] == 45) & (m[:, 7] == 45) & (m[:, 13] == 58) & (m[:, 16] == 58)
    sep = m[:, 10]
    ok &= (sep == 84) | (sep == 116) | (sep == 32)  # "T", "t", " "
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    month = d[:, 4] * 10 + d[:, 5]
    day = d[:, 6] * 10 + d[:, 7]
    hour = d[:, 8] * 10 + d[:, 9]
    minute = d[:, 10] * 10 + d[:, 11]
    second = d[:, 12] * 10 + d[:, 13]
    month_ok = (month >= 1) & (month <= 12)
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    dim = _DAYS_IN_MONTH[np.where(month_ok, month, 0)] - ((month == 2) & ~leap)
    ok &= month_ok & (day >= 1) & (day <= dim) & (hour <= 23) & (minute <= 59) & (second <= 59)
    # days from the civil date (proleptic Gregorian)
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    out[:] = days * 86400 + hour * 3600 + minute * 60 + second
    valid: npt.NDArray[np.bool_] = ok
    return valid


def _slow(values: list[str], rows: npt.NDArray[np.intp], seconds: IntArray, codes: CodeArray) -> None:
    for i in rows.tolist():
        seconds[i], codes[i] = text_to_seconds(values[i])
