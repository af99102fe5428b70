"""Plain-text tables of an :class:`~logwarden.evaluation.Evaluation` (benchmarks, ``replay``)."""

from __future__ import annotations

from logwarden.evaluation import Evaluation, Score, Target


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _row(name: str, s: Score) -> str:
    return (
        f"{name:<16} {s.labels:>6} {s.detected:>8} {_num(s.recall):>7} "
        f"{_num(s.median_delay, 1):>7} {_num(s.p90_delay, 1):>7} {s.false_incidents:>6}"
    )


def format_evaluation(ev: Evaluation) -> str:
    """Per-type table, spike split, then the overall figures."""
    lines = [
        f"{'type':<16} {'labels':>6} {'detected':>8} {'recall':>7} "
        f"{'delay50':>7} {'delay90':>7} {'false':>6}",
        *(_row(kind.value, s) for kind, s in ev.per_type.items()),
        _row("spike >= 3x", ev.spikes_3x_up),
        _row("spike < 3x", ev.spikes_below_3x),
        _row("all positive", ev.overall),
        "",
        f"detected incidents {ev.detected_incidents}, false {len(ev.false_incidents)}, "
        f"precision {_num(ev.precision, 3)}, false per service-day {ev.false_per_service_day:.2f} "
        f"over {ev.service_days:.2f} service-days, signal mismatches {ev.signal_mismatches}",
    ]
    missed = [o.label for o in ev.outcomes if o.label.positive and not o.detected]
    if missed:
        lines.append(
            "missed: " + ", ".join(f"{m.incident_id} {m.type.value} x{m.magnitude:g}" for m in missed)
        )
    return "\n".join(lines)


def format_targets(targets: list[Target]) -> str:
    out = []
    for t in targets:
        sign = ">=" if t.higher_is_better else "<="
        out.append(
            f"{'PASS' if t.passed else 'FAIL'}  {t.name}: {_num(t.value, 3)} (target {sign} {t.threshold:g})"
        )
    return "\n".join(out)
