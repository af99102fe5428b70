"""Short strings as fixed-width integer words, a whole column at a time.

A column of strings is joined once with a separator of one newline and ``8 * words - 1`` NUL
characters, and encoded as UTF-8. Each string's words are then read straight out of that buffer:
whatever follows a string inside its words is always the same separator bytes, so for a string of
at most ``8 * words`` bytes, its words and its length in bytes identify it exactly. No Python code
runs per string (a dict lookup per string costs a hash of a fresh string, and at 100,000 keys a
few cache misses; a column of words costs a few numpy passes).

A column cannot be packed when a value is not a string, cannot be encoded (lone surrogates), or
holds a newline itself (the separators would no longer mark the strings); :func:`pack` then
returns None and callers take their per-string path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

NEWLINE = 10


@dataclass(frozen=True, slots=True)
class Packed:
    """A packed column: ``words[i]`` and ``lengths[i]`` for string i."""

    words: npt.NDArray[np.uint64]
    """(n, words): bytes 8j to 8j + 7 of each string and the separator after it, little endian."""
    lengths: npt.NDArray[np.int64]
    """Length of each string in UTF-8 bytes; strings longer than 8 * words are not identified."""
    raw: npt.NDArray[np.uint8]
    """The joined, encoded column (strings and separators)."""
    starts: npt.NDArray[np.int64]
    """Offset of each string in ``raw``."""

    @property
    def width(self) -> int:
        """Bytes of each string that the words hold."""
        return 8 * int(self.words.shape[1])

    def fits(self) -> npt.NDArray[np.bool_]:
        """The strings that their words identify exactly."""
        fits: npt.NDArray[np.bool_] = self.lengths <= self.width
        return fits


def pack(strings: list[str], words: int) -> Packed | None:
    """Pack a column of strings into ``words`` 64-bit words each (see the module docstring)."""
    pad = 8 * words
    if not strings:
        empty = np.zeros(0, dtype=np.int64)
        return Packed(np.zeros((0, words), dtype=np.uint64), empty, np.zeros(0, dtype=np.uint8), empty)
    separator = "\n" + "\0" * (pad - 1)
    try:
        buf = separator.join([*strings, ""]).encode("utf-8")
    except (TypeError, UnicodeEncodeError):
        return None
    raw = np.frombuffer(buf, dtype=np.uint8)
    ends = np.flatnonzero(raw == NEWLINE)
    if len(ends) != len(strings):  # a string holds a newline
        return None
    starts = np.empty_like(ends)
    starts[0] = 0
    np.add(ends[:-1], pad, out=starts[1:])
    # every position of the buffer as the start of one pad-byte item (a 1-D gather is fastest)
    items = np.ndarray(shape=(len(buf) - pad + 1,), dtype=f"V{pad}", buffer=buf, strides=(1,))
    words_of = items[starts].view("<u8").reshape(len(strings), words)
    return Packed(words_of, ends - starts, raw, starts)
