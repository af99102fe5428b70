"""Instructions per bucket close, counted by valgrind's callgrind: a figure this noisy machine does
not move.

    python -m benchmarks.detector_close_instructions [REV] [--keys 10000] [--closes 100]

Timing two versions of the close needs them side by side in one process (see
``benchmarks.detector_close_ab``), and even then a few percent is hard to tell. Instruction counts
repeat to about 0.03% here. For the working tree's detector (and for the detector at git revision
``REV``, exported as ``detector_close_ab`` does), a child process under ``valgrind --tool=callgrind``
registers ``--keys`` services, puts counts for every bucket into the open buckets (the same
``numpy`` seed for both), closes ``--warmup`` buckets so that baselines fill, then closes
``--closes`` more between two markers: callgrind zeroes its counters when the child calls
``zlib.crc32`` and writes them out when it calls ``zlib.adler32``, so only those closes count. Hash
randomisation is off and OpenBLAS runs one thread (its idle threads spin, and their instructions
would count at random). The two children run at once; each takes a minute or two.

Instruction counts are not time: memory stalls do not count, so a change that saves instructions
may save no time, and the reverse. Use it beside ``detector_close_ab``, not instead of it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

from benchmarks.detector_close_ab import ROOT, detector_of, export
from benchmarks.detector_speed import T0

_TIMEOUT = 1800
"""Seconds a child may run under valgrind."""


def child(package: str, keys: int, warmup: int, closes: int) -> None:
    """The closes to count (runs under valgrind)."""
    det, ids = detector_of(package, keys)
    rng = np.random.default_rng(3)
    mean_volume = rng.uniform(1.0, 20.0, keys)
    start = T0 + 10
    for b in range(warmup + closes):
        rows = np.repeat(ids, rng.poisson(mean_volume))
        det._pending.add(np.full(len(rows), start + b, dtype=np.int64), rows, rng.random(len(rows)) < 0.01)
    for b in range(warmup):
        det._raise_horizon(start + b + 1)
        det._close_ready()
    zlib.crc32(b"start")  # callgrind zeroes its counters here
    for b in range(warmup, warmup + closes):
        det._raise_horizon(start + b + 1)
        det._close_ready()
    zlib.adler32(b"stop")  # and writes them out here


def launch(package: str, path: Path, out: Path, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(path), str(ROOT)])
    command = [
        "valgrind",
        "--tool=callgrind",
        "--zero-before=zlib_crc32",
        "--dump-before=zlib_adler32",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "benchmarks.detector_close_instructions",
        "--child",
        package,
        "--keys",
        str(args.keys),
        "--warmup",
        str(args.warmup),
        "--closes",
        str(args.closes),
    ]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)


def counted(process: subprocess.Popen[bytes], out: Path) -> int:
    """Instructions between the markers, from the dump the second marker wrote."""
    try:
        _, err = process.communicate(timeout=_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise SystemExit(f"callgrind run took more than {_TIMEOUT} s") from None
    dump = Path(f"{out}.1")
    if process.returncode != 0 or not dump.exists():
        tail = err.decode(errors="replace")[-2000:]
        raise SystemExit(f"callgrind run failed or wrote no dump at the markers ({dump}):\n{tail}")
    match = re.search(r"^summary: (\d+)$", dump.read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit(f"no summary line in {dump}")
    return int(match.group(1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rev", nargs="?", help="git revision to compare with (e.g. HEAD~1)")
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--warmup", type=int, default=620, help="closes before the counted ones")
    p.add_argument("--closes", type=int, default=100, help="closes counted")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.keys, args.warmup, args.closes)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: this benchmark counts instructions with callgrind", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp)
        versions = {"working tree": ("detector", ROOT)}
        if args.rev:
            export(args.rev, here, "detector_old")
            versions[args.rev] = ("detector_old", here)
        running = {
            label: (launch(package, path, here / f"cg-{i}.out", args), here / f"cg-{i}.out")
            for i, (label, (package, path)) in enumerate(versions.items())
        }
        totals = {label: counted(process, out) for label, (process, out) in running.items()}
    for label, total in totals.items():
        print(f"{label}: {total / args.closes:,.0f} instructions per close at {args.keys:,} keys")
    if args.rev:
        ratio = totals["working tree"] / totals[args.rev]
        print(f"working tree / {args.rev}: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
