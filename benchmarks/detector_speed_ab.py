"""End-to-end speed of two versions of the detector, in alternating processes.

    python -m benchmarks.detector_speed_ab REV [--keys 100000] [--pairs 5] [--lines 400000]

Two runs of ``benchmarks.detector_speed`` minutes apart differ here by more than most changes, and
two versions cannot share one process for this measure: the heap each leaves behind (its memory
pools, where its long-lived objects sit) changes the other's speed. So the whole tree at git
revision ``REV`` (exported with ``git archive`` into a temporary directory) and the working tree
each run ``detector_speed``'s end-to-end row at ``--keys`` keys (its own version of the
benchmark, best of ``--repeats``, with its parse-only decode of the same bytes) in a fresh
process, old and new one after the other, ``--pairs`` times. It prints each run's lines per second
and ratio to parse-only, and per version the median ratio and the median of the pairs' new / old
lines per second.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_TIMEOUT = 600
"""Seconds one run may take."""
_CHILD = """
import sys
from benchmarks.detector_speed import throughput
parse, full = throughput(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
print(full, full / parse)
"""


def export_tree(rev: str, into: Path) -> None:
    """The repository's files at ``rev`` under ``into``."""
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True, timeout=120)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")


def run(tree: Path, lines: int, keys: int, repeats: int) -> tuple[float, float]:
    """(lines/s end to end, ratio to parse-only) of ``tree``'s detector in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(tree)}  # before the installed (working) tree
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(lines), str(keys), str(repeats)],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
    ).stdout.split()
    return float(out[0]), float(out[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rev", help="git revision of the old version (e.g. HEAD~1)")
    p.add_argument("--keys", type=int, default=100_000)
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--lines", type=int, default=400_000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    ratios: dict[str, list[float]] = {"old": [], "new": []}
    speedups: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = Path(tmp)
        export_tree(args.rev, old_tree)
        sides = [("old", old_tree), ("new", ROOT)]
        for i in range(args.pairs):
            got = {}
            for name, tree in sides if i % 2 == 0 else sides[::-1]:  # alternating which goes first
                speed, ratio = got[name] = run(tree, args.lines, args.keys, args.repeats)
                ratios[name].append(ratio)
                print(f"pair {i + 1} {name}: {speed / 1e6:.2f} M lines/s, {ratio:.3f} of parse-only")
            speedups.append(got["new"][0] / got["old"][0])
    for name, label in (("old", args.rev), ("new", "working tree")):
        print(f"{name} ({label}): median ratio to parse-only {statistics.median(ratios[name]):.3f}")
    print(f"new / old lines per second, median over {args.pairs} pairs: {statistics.median(speedups):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
