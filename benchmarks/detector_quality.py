"""Detection quality on the workload generator's default mix, against the detector issue's targets.

    python -m benchmarks.detector_quality [--preset default] [--seed 0] [--compare-naive]

Streams the generated workload through ``detector.Detector`` chunk by chunk, groups its events
into incidents, scores them against the injected labels (logwarden.evaluation) and prints the
per-type table and each target with PASS/FAIL. With ``--compare-naive`` the same bytes also go
through a fixed-threshold rule (benchmarks/naive_threshold.py) and the two are printed side by
side with their ratios. Exit status: 0 when every target passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from benchmarks.naive_threshold import NaiveThresholdDetector
from detector import AnomalyEvent, Detector, DetectorConfig
from logwarden.commands.generate import add_workload_options, workload_config
from logwarden.evaluation import Evaluation, check_targets, evaluate, group_incidents
from logwarden.evaluation_report import format_evaluation, format_targets
from logwarden.labels import write_labels
from logwarden.workload import Totals, Workload

END_OF_INPUT_S = 10
"""False incidents opened this close to the end of the stream are reported apart: they come from
closing the last buckets at end of input, which only a finite replay has."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_workload_options(p, default_preset="default")
    p.add_argument("--tolerance", type=float, default=10.0, help="match tolerance, seconds")
    p.add_argument("--compare-naive", action="store_true", help="also run a fixed-threshold rule")
    p.add_argument("--naive-threshold", type=int, default=10, help="errors per bucket for the naive rule")
    p.add_argument("--show-false", type=int, default=10, help="list this many false incidents")
    p.add_argument("--events-out", type=Path, help="write the detector's events here (JSON lines)")
    p.add_argument("--labels-out", type=Path, help="write the labels here (JSON lines)")
    p.add_argument("--json", action="store_true", help="print the evaluation as JSON as well")
    return p.parse_args(argv)


def describe(workload: Workload, totals: Totals) -> str:
    cfg = workload.config
    kinds = Counter(label.type.value for label in workload.labels)
    unplaced = Counter(kind.value for kind in workload.unplaced)
    lines = max(totals.lines, 1)
    return (
        f"workload: seed {cfg.seed}, {len(workload.fleet)} services "
        f"({workload.service_days:.2f} service-days), "
        f"{cfg.duration_s} s, {totals.lines:,} lines / {totals.bytes / 1e6:,.0f} MB\n"
        f"  noise: bad {totals.bad / lines:.2%}, duplicated {totals.duplicates / lines:.2%}, "
        f"late {totals.delayed / lines:.2%}, skewed host {totals.skewed / lines:.2%}\n"
        f"  labels: {dict(sorted(kinds.items()))}" + (f", unplaced: {dict(unplaced)}" if unplaced else "")
    )


def run(
    workload: Workload, naive: NaiveThresholdDetector | None
) -> tuple[list[AnomalyEvent], Totals, dict[str, float]]:
    detector = Detector(DetectorConfig())
    events: list[AnomalyEvent] = []
    totals = Totals()
    spent = {"generate": 0.0, "detect": 0.0, "naive": 0.0}
    chunks = workload.chunks()
    while True:
        t0 = time.perf_counter()
        chunk = next(chunks, None)
        t1 = time.perf_counter()
        spent["generate"] += t1 - t0
        if chunk is None:
            break
        totals = totals.add(chunk)
        events.extend(detector.feed(chunk.data))
        t2 = time.perf_counter()
        spent["detect"] += t2 - t1
        if naive is not None:
            naive.feed(chunk.data)
            spent["naive"] += time.perf_counter() - t2
    t3 = time.perf_counter()
    events.extend(detector.flush())
    spent["detect"] += time.perf_counter() - t3
    return events, totals, spent


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "-"
    if b == 0:
        return "inf" if a else "1.00"
    return f"{a / b:.2f}"


def compare(ours: Evaluation, naive: Evaluation) -> str:
    rows = [
        ("recall (all)", ours.overall.recall, naive.overall.recall),
        ("recall spikes >= 3x", ours.spikes_3x_up.recall, naive.spikes_3x_up.recall),
        ("precision", ours.precision, naive.precision),
        ("false per service-day", ours.false_per_service_day, naive.false_per_service_day),
        ("median delay (buckets)", ours.overall.median_delay, naive.overall.median_delay),
    ]
    out = [f"{'figure':<24} {'detector':>9} {'naive':>9} {'detector/naive':>15}"]
    for name, a, b in rows:
        fa = "-" if a is None else f"{a:.3f}"
        fb = "-" if b is None else f"{b:.3f}"
        out.append(f"{name:<24} {fa:>9} {fb:>9} {ratio(a, b):>15}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workload = Workload(workload_config(args))
    if args.labels_out:
        write_labels(workload.labels, args.labels_out)
    naive = NaiveThresholdDetector(threshold=args.naive_threshold) if args.compare_naive else None
    events, totals, spent = run(workload, naive)
    if args.events_out:
        args.events_out.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in events))
    print(describe(workload, totals))
    print(
        f"time: generate {spent['generate']:.1f} s ({totals.lines / spent['generate'] / 1e6:.2f} M lines/s), "
        f"detect {spent['detect']:.1f} s ({totals.lines / spent['detect'] / 1e6:.2f} M lines/s); "
        f"{len(events)} events"
    )
    incidents = group_incidents(events)
    ev = evaluate(workload.labels, incidents, service_days=workload.service_days, tolerance_s=args.tolerance)
    print()
    print(format_evaluation(ev))
    end = workload.config.start_ts + workload.config.duration_s
    by_signal = Counter(d.signal.value for d in ev.false_incidents)
    at_end = sum(1 for d in ev.false_incidents if d.start >= end - END_OF_INPUT_S)
    print(f"false incidents by signal {dict(by_signal)}; opened in the last {END_OF_INPUT_S} s: {at_end}")
    for d in ev.false_incidents[: args.show_false]:
        offset = d.start - workload.config.start_ts
        print(f"  false: {d.project}/{d.service} {d.signal.value} at +{offset:.0f} s ({d.severity.label})")
    print()
    targets = check_targets(ev)
    print(format_targets(targets))
    if naive is not None:
        naive_ev = evaluate(
            workload.labels, naive.incidents(), service_days=workload.service_days, tolerance_s=args.tolerance
        )
        print(f"\nnaive rule: >= {args.naive_threshold} errors in a bucket ({spent['naive']:.1f} s)")
        print(format_evaluation(naive_ev))
        print()
        print(compare(ev, naive_ev))
    if args.json:
        print(json.dumps(ev.to_dict(), indent=2))
    return 0 if all(t.passed for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
