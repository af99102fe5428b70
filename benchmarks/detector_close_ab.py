"""Bucket-close time of two versions of the detector, closing the same buckets in one process.

    python -m benchmarks.detector_close_ab REV [--keys 10000] [--buckets 900] [--churn 100000]

This machine's speed moves by more than most changes between runs minutes apart, so comparing
two runs of ``benchmarks.detector_speed`` cannot tell a 10% change. Here the detector package at
git revision ``REV`` (exported with ``git archive`` into a temporary directory, its imports
renamed) and the working tree's run side by side: for every bucket, the same counts are put into
both detectors' open buckets, a burst of Python work (sorting ``--churn`` numbers by a key
function) stands in for the decoding that runs between closes in a stream and leaves the caches
cold, and each detector closes the bucket; the two go in alternating order. It prints each
version's close time (p50, p90, p99 in thread CPU time, after ``--warmup`` buckets in which the
baselines fill) and the median over buckets of the ratio new / old.
"""

from __future__ import annotations

import argparse
import importlib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.detector_speed import T0

ROOT = Path(__file__).resolve().parent.parent


def export(rev: str, into: Path, name: str) -> None:
    """The ``detector`` package at ``rev`` as package ``name`` under ``into``."""
    archive = subprocess.run(
        ["git", "archive", rev, "detector"], cwd=ROOT, check=True, capture_output=True, timeout=60
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "detector").rename(into / name)
    for path in (into / name).rglob("*.py"):
        text = path.read_text()
        text = re.sub(r"\bfrom detector([. ])", rf"from {name}\1", text)
        text = re.sub(r"\bimport detector\b", f"import {name}", text)
        text = text.replace('"detector.', f'"{name}.')
        path.write_text(text)


def detector_of(package: str, keys: int) -> tuple[Any, np.ndarray]:
    """A detector of ``package`` that knows ``keys`` services, and their key ids."""
    det = importlib.import_module(f"{package}.core").Detector()
    det.feed(b"".join(b'{"ts":%d,"service":"svc-%d","level":"INFO"}\n' % (T0, k) for k in range(keys)))
    det.flush()
    names = [f"svc-{k}" for k in range(keys)]
    registry = det._keys
    if hasattr(registry, "by_pair"):  # a revision before the registry kept no dicts of names
        return det, np.array([registry.by_pair[("default", n)] for n in names], dtype=np.int64)
    return det, registry.lookup(None, "default", names)


def timed(det: Any, times: list[int]) -> None:
    close = det._close

    def wrapper(t: int, complete: bool = True) -> Any:
        t0 = time.thread_time_ns()
        out = close(t, complete)
        times.append(time.thread_time_ns() - t0)
        return out

    det._close = wrapper


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rev", help="git revision of the old version (e.g. HEAD~1)")
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--buckets", type=int, default=900)
    p.add_argument("--warmup", type=int, default=660, help="buckets not counted (the baseline fills)")
    p.add_argument("--churn", type=int, default=100_000, help="numbers sorted before each close")
    p.add_argument("--volume", type=float, nargs=2, default=(1.0, 20.0), help="events per key and bucket")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        export(args.rev, Path(tmp), "detector_old")
        sys.path.insert(0, tmp)
        versions = {"old": detector_of("detector_old", args.keys), "new": detector_of("detector", args.keys)}
        times: dict[str, list[int]] = {name: [] for name in versions}
        for name, (det, _) in versions.items():
            timed(det, times[name])
        rng = np.random.default_rng(3)
        low, high = (float(v) for v in args.volume)
        mean_volume = rng.uniform(low, high, args.keys)
        churn = list(range(args.churn))
        for b in range(args.buckets):
            counts = rng.poisson(mean_volume)
            errors = rng.random(int(counts.sum())) < 0.01
            for name in ("old", "new") if b % 2 else ("new", "old"):
                det, ids = versions[name]
                rows = np.repeat(ids, counts)
                det._pending.add(np.full(len(rows), T0 + 10 + b, dtype=np.int64), rows, errors)
                sorted(churn, key=lambda v: -v)
                det._raise_horizon(T0 + 11 + b)
                det._close_ready()
    measured = {name: np.array(t[args.warmup :]) / 1e6 for name, t in times.items()}
    for name, ms in measured.items():
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        label = args.rev if name == "old" else "working tree"
        print(f"{name} ({label}): close at {args.keys:,} keys p50 {p50:.3f}, p90 {p90:.3f}, p99 {p99:.3f} ms")
    ratio = np.median(measured["new"] / measured["old"])
    print(f"new / old, median over {len(measured['new'])} buckets: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
