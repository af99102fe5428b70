"""Where each key of a TOML document is written: key path → 1-based line number.

``tomllib`` returns values without positions, so error messages about a *valid* TOML document
with *invalid* settings find the line here. Paths use the same shape as pydantic error
locations: table and key names as strings, arrays of tables as 0-based integers
(``("policy", 2, "slack", "channel")`` is ``channel`` in the third ``[[policy]]``). Keys of an
inline table are recorded on the inline table's line. Values inside arrays are not indexed: the
caller falls back to the longest recorded prefix (:func:`line_of`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

KeyPath = tuple[str | int, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _read_key(text: str, pos: int) -> tuple[tuple[str, ...], int]:
    """Parse a (dotted) key starting at ``pos``; return its parts and the position after it."""
    parts: list[str] = []
    n = len(text)
    while True:
        while pos < n and text[pos] in " \t":
            pos += 1
        if pos < n and text[pos] in "\"'":
            quote = text[pos]
            end = pos + 1
            chunk: list[str] = []
            while end < n and text[end] != quote:
                if quote == '"' and text[end] == "\\" and end + 1 < n:
                    chunk.append(text[end + 1])
                    end += 2
                    continue
                chunk.append(text[end])
                end += 1
            parts.append("".join(chunk))
            pos = end + 1
        else:
            match = _BARE.match(text, pos)
            if match is None:
                return tuple(parts), pos
            parts.append(match.group())
            pos = match.end()
        while pos < n and text[pos] in " \t":
            pos += 1
        if pos < n and text[pos] == ".":
            pos += 1
            continue
        return tuple(parts), pos


class _Scanner:
    """Tracks strings, comments and bracket depth across lines."""

    def __init__(self) -> None:
        self.depth = 0
        self.open_string: str | None = None  # the closing delimiter of a multi-line string

    @property
    def inside_value(self) -> bool:
        return self.depth > 0 or self.open_string is not None

    def feed(self, line: str, start: int = 0) -> None:
        pos, n = start, len(line)
        while pos < n:
            if self.open_string is not None:
                end = line.find(self.open_string, pos)
                if end < 0:
                    return
                pos = end + len(self.open_string)
                self.open_string = None
                continue
            ch = line[pos]
            if ch == "#":
                return
            if line.startswith('"""', pos) or line.startswith("'''", pos):
                self.open_string = line[pos : pos + 3]
                pos += 3
                continue
            if ch in "\"'":
                pos = _skip_string(line, pos)
                continue
            if ch in "[{":
                self.depth += 1
            elif ch in "]}":
                self.depth = max(0, self.depth - 1)
            pos += 1


def _skip_string(line: str, pos: int) -> int:
    quote = line[pos]
    pos += 1
    while pos < len(line) and line[pos] != quote:
        pos += 2 if quote == '"' and line[pos] == "\\" else 1
    return pos + 1


def _inline_keys(line: str, start: int) -> list[tuple[str, ...]]:
    """Top-level keys of an inline table that starts at ``line[start] == '{'`` (same line)."""
    keys: list[tuple[str, ...]] = []
    pos, depth, expect_key = start + 1, 1, True
    while pos < len(line) and depth > 0:
        ch = line[pos]
        if ch in "\"'" and not (expect_key and depth == 1):
            pos = _skip_string(line, pos)
            continue
        if expect_key and depth == 1 and ch not in " \t,":
            parts, end = _read_key(line, pos)
            if parts:
                keys.append(parts)
            expect_key = False
            pos = max(end, pos + 1)
            continue
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 1:
            expect_key = True
        pos += 1
    return keys


def key_lines(text: str) -> dict[KeyPath, int]:
    """Map every table header and key in ``text`` to the line it is written on."""
    found: dict[KeyPath, int] = {}
    arrays: dict[KeyPath, int] = {}
    table: KeyPath = ()
    scanner = _Scanner()

    def resolve(parts: tuple[str, ...]) -> KeyPath:
        path: KeyPath = ()
        for part in parts:
            path = (*path, part)
            if path in arrays:
                path = (*path, arrays[path])
        return path

    for lineno, line in enumerate(text.splitlines(), start=1):
        if scanner.inside_value:
            scanner.feed(line)
            continue
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("[["):
            parts, _ = _read_key(line, indent + 2)
            base = resolve(parts[:-1]) + parts[-1:] if parts else ()
            arrays[base] = arrays.get(base, -1) + 1
            table = (*base, arrays[base])
            found.setdefault(table, lineno)
            continue
        if stripped.startswith("["):
            parts, _ = _read_key(line, indent + 1)
            table = resolve(parts)
            found.setdefault(table, lineno)
            continue
        parts, pos = _read_key(line, indent)
        if not parts or pos >= len(line) or line[pos] != "=":
            continue
        path = table + parts
        found.setdefault(path, lineno)
        value_start = pos + 1
        while value_start < len(line) and line[value_start] in " \t":
            value_start += 1
        if value_start < len(line) and line[value_start] == "{":
            for inner in _inline_keys(line, value_start):
                found.setdefault(path + inner, lineno)
        scanner.feed(line, value_start)
    return found


def line_of(lines: Mapping[KeyPath, int], path: KeyPath) -> int | None:
    """The line of ``path``, or of its longest recorded prefix; None if nothing matches."""
    for end in range(len(path), 0, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None
