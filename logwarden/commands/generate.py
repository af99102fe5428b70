"""``logwarden generate``: write a labelled synthetic workload (JSON lines) and its labels."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from logwarden.workload import WorkloadConfig

PRESET_NAMES = ("default", "demo", "large", "small")


def add_workload_options(p: argparse.ArgumentParser, *, default_preset: str) -> None:
    """The options that pick a workload (shared with the quality benchmark)."""
    p.add_argument("--preset", choices=PRESET_NAMES, default=default_preset, help="scale and incident mix")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--services", type=int, help="override the preset's service count")
    p.add_argument("--duration", type=int, help="override the preset's duration, in seconds of event time")
    p.add_argument("--incidents", type=int, help="override the preset's number of incidents")
    p.add_argument(
        "--error-clump", type=float, help="mean error lines per failure (default 1: Poisson noise)"
    )


def workload_config(args: argparse.Namespace) -> WorkloadConfig:
    """The config the options of :func:`add_workload_options` ask for; ``ValueError`` if invalid."""
    from logwarden.workload import preset_config

    return preset_config(
        args.preset,
        args.seed,
        services=args.services,
        duration_s=args.duration,
        incidents=args.incidents,
        error_clump=args.error_clump,
    )


def register(sub: Any) -> None:
    p = sub.add_parser(
        "generate",
        help="write a synthetic labelled log stream (JSON lines) and its labels",
        description="Write a deterministic synthetic log stream with injected incidents. Same "
        "preset and seed give the same bytes. Feed it to `logwarden replay FILE --labels LABELS`.",
    )
    add_workload_options(p, default_preset="demo")
    p.add_argument("-o", "--output", type=Path, help="log file to write (default: standard output)")
    p.add_argument("--labels", type=Path, help="write the ground-truth labels here (JSON lines)")
    p.set_defaults(handler=_generate)


def _generate(args: argparse.Namespace) -> int:
    from logwarden.labels import write_labels
    from logwarden.workload import Workload

    try:
        cfg = workload_config(args)
    except ValueError as exc:
        print(f"logwarden generate: {exc}", file=sys.stderr)
        return 2
    workload = Workload(cfg)
    try:
        if args.output is None:
            totals = workload.write(sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            with args.output.open("wb") as out:
                totals = workload.write(out)
        if args.labels is not None:
            write_labels(workload.labels, args.labels)
    except OSError as exc:
        print(f"logwarden generate: {exc}", file=sys.stderr)
        return 1
    unplaced = f", {len(workload.unplaced)} could not be placed" if workload.unplaced else ""
    print(
        f"{totals.lines} lines ({totals.bad} bad), {len(workload.fleet)} services, "
        f"{len(workload.labels)} labels{unplaced}",
        file=sys.stderr,
    )
    return 0
