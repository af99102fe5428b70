"""``logwarden score INPUT.csv [-o OUTPUT.csv]``: anomaly scores for any metric export.

Reads ``timestamp,value`` rows (a header row is optional; timestamps as RFC 3339, as
``YYYY-MM-DD HH:MM:SS`` (UTC), or as epoch seconds / milliseconds) and writes
``timestamp,value,anomaly_score,anomalous`` with the detector's statistics
(:class:`detector.series.SeriesScorer`, default :class:`detector.config.DetectorConfig`). A bad
row is reported on stderr with its line number and skipped; it never stops the run.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any

MILLIS_FROM = 1e11


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "score",
        help="score a timestamp,value CSV with the detector's statistics",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument("input", help="CSV file of timestamp,value rows ('-' reads stdin)")
    parser.add_argument("-o", "--output", help="CSV file to write (default: stdout)")
    parser.set_defaults(handler=_score)


def parse_timestamp(text: str) -> float:
    """Epoch seconds from RFC 3339, ``YYYY-MM-DD HH:MM:SS`` (naive means UTC) or an epoch number
    (seconds, or milliseconds from 1e11 up). Raises ValueError."""
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if not math.isfinite(number):
        raise ValueError("timestamp is not finite")
    return number / 1000.0 if abs(number) >= MILLIS_FROM else number


def _rows(stream: IO[str]) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(stream)
    for row in reader:
        yield reader.line_num, row


def _open(path: str, mode: str, standard: IO[str]) -> IO[str]:
    """The named file, or the standard stream for "-" (closed by the caller, not here)."""
    if path == "-":
        return standard
    return open(path, mode, newline="", encoding="utf-8")  # closed in _score


def _score(args: argparse.Namespace) -> int:
    from detector.series import SeriesScorer

    try:
        source = _open(args.input, "r", sys.stdin)
    except OSError as exc:
        print(f"logwarden score: cannot read {args.input}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        sink = _open(args.output or "-", "w", sys.stdout)
    except OSError as exc:
        print(f"logwarden score: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        if source is not sys.stdin:
            source.close()
        return 1
    scorer = SeriesScorer()
    writer = csv.writer(sink, lineterminator="\n")
    writer.writerow(["timestamp", "value", "anomaly_score", "anomalous"])
    scored = skipped = 0
    name = "<stdin>" if args.input == "-" else args.input
    try:
        for line, row in _rows(source):
            if not row or all(not cell.strip() for cell in row):
                continue
            problem = None
            if len(row) != 2:
                problem = f"expected 2 columns (timestamp,value), got {len(row)}"
            else:
                try:
                    ts = parse_timestamp(row[0])
                except ValueError:
                    problem = f"bad timestamp {row[0][:40]!r}"
                try:
                    value = float(row[1])
                    if not math.isfinite(value):
                        problem = problem or f"value is not finite: {row[1][:40]!r}"
                except ValueError:
                    problem = problem or f"bad value {row[1][:40]!r}"
            if problem is not None:
                if line == 1 and scored == 0 and len(row) == 2:
                    continue  # the header
                print(f"{name}:{line}: {problem}; row skipped", file=sys.stderr)
                skipped += 1
                continue
            result = scorer.update("series", ts, value)
            writer.writerow([row[0], row[1], f"{result.score:.6f}", int(result.anomalous)])
            scored += 1
    except UnicodeDecodeError as exc:
        print(f"logwarden score: {name} is not UTF-8 text ({exc.reason}); stopped", file=sys.stderr)
        return 1
    except csv.Error as exc:
        print(f"logwarden score: {name}: {exc}; stopped", file=sys.stderr)
        return 1
    finally:
        if source is not sys.stdin:
            source.close()
        if sink is not sys.stdout:
            sink.close()
    print(f"logwarden score: {scored} rows scored, {skipped} skipped", file=sys.stderr)
    return 0
