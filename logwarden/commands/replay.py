"""``logwarden replay FILE [--labels LABELS] [--json]``: offline detection + dedup, no notifications."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def register(sub: Any) -> None:
    p = sub.add_parser(
        "replay",
        help="run a log file through detection and dedup offline and print the incidents",
        description="Runs JSON-lines logs through the detector and the dedup rules with no database "
        "and no notifications. With --labels (a labels file from `logwarden generate`), also prints "
        "precision, recall and detection delay.",
    )
    p.add_argument("file", type=Path, help="JSON-lines log file ('-' for standard input)")
    p.add_argument("--labels", type=Path, help="labels file (JSON lines) to score against")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    p.set_defaults(handler=_run)


def _chunks(path: Path) -> Iterator[bytes]:
    if str(path) == "-":
        while chunk := sys.stdin.buffer.read(CHUNK):
            yield chunk
        return
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _time(seconds: float | None) -> str:
    return "-" if seconds is None else datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _run(args: argparse.Namespace) -> int:
    from logwarden.config import load_settings
    from logwarden.labels import LabelsFileError, read_labels
    from logwarden.replay import replay
    from logwarden.settings_map import dedup_config

    settings = load_settings()
    labels = None
    if args.labels is not None:
        try:
            labels = read_labels(args.labels)
        except (OSError, LabelsFileError) as exc:
            print(f"logwarden: cannot read labels: {exc}", file=sys.stderr)
            return 2
    try:
        result = replay(_chunks(args.file), settings.detector, dedup_config(settings))
    except OSError as exc:
        print(f"logwarden: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2

    evaluation = None
    if labels is not None:
        from logwarden.evaluation import evaluate, group_incidents

        grouped = group_incidents(result.events)
        keys = {(e.project, e.service) for e in result.events} | {(lb.project, lb.service) for lb in labels}
        start = min((lb.start for lb in labels), default=0.0)
        end = max((lb.end for lb in labels), default=0.0)
        span_days = max((result.stats.watermark or end) - start, 1.0) / 86400.0
        evaluation = evaluate(
            labels,
            grouped,
            service_days=max(len(keys), 1) * span_days,
            bucket_s=settings.detector.bucket_seconds,
        )

    if args.json:
        doc: dict[str, Any] = {
            "incidents": [
                {
                    "id": i.id,
                    "project": i.project,
                    "service": i.service,
                    "signal": i.signal.value,
                    "severity": i.severity.label,
                    "opened": i.opened,
                    "resolved": i.resolved,
                    "occurrences": i.occurrences,
                    "jobs": [j.value for j in i.jobs],
                    "messages": list(i.messages),
                }
                for i in result.incidents
            ],
            "claims": dict(result.claims),
            "anomaly_events": len(result.events),
            "ingest": result.stats.to_dict(),
        }
        if evaluation is not None:
            doc["evaluation"] = evaluation.to_dict()
        print(json.dumps(doc, indent=2, default=str))
        return 0

    stats = result.stats
    print(
        f"{stats.lines_received} lines, {stats.events_accepted} accepted, {stats.rejected_total} rejected, "
        f"{stats.late_events} late; {len(result.events)} anomaly events; {len(result.incidents)} incidents"
    )
    if stats.rejected:
        print("rejected: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.rejected.items())))
    if result.incidents:
        print()
        head = f"{'id':>4}  {'project/service':<32} {'signal':<16} {'severity':<9} {'opened':<19}  "
        print(head + f"{'resolved':<19}  jobs")
        for i in result.incidents:
            name = f"{i.project}/{i.service}"
            print(
                f"{i.id:>4}  {name:<32} {i.signal.value:<16} {i.severity.label:<9} {_time(i.opened):<19}  "
                f"{_time(i.resolved):<19}  {','.join(j.value for j in i.jobs)}"
            )
    if evaluation is not None:
        from logwarden.evaluation import check_targets
        from logwarden.evaluation_report import format_evaluation, format_targets

        print()
        print(format_evaluation(evaluation))
        print(format_targets(check_targets(evaluation)))
    return 0
