"""The workload generator: determinism, labels that match the lines, and the noise it promises."""

from __future__ import annotations

import hashlib
import math
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime

import msgspec
import numpy as np
import pytest

from detector.models import Signal
from logwarden.labels import IncidentType, parse_labels
from logwarden.labels import dumps_labels as dump
from logwarden.workload import (
    DEFAULT_MIX,
    IncidentMix,
    Totals,
    Workload,
    WorkloadConfig,
    demo_config,
    small_config,
)
from logwarden.workload.plan import TS_FORMATS
from logwarden.workload.render import Renderer

ERROR_LEVELS = {"error", "fatal", "critical", "alert", "emergency"}
MAX_LINE = 64 * 1024

# A workload small enough to parse line by line in a test, with every incident type in it.
MIXED = WorkloadConfig(
    seed=11,
    services=20,
    duration_s=1500,
    incidents=14,
    mix=DEFAULT_MIX,
    warmup_s=200,
    min_gap_s=60,
    core_share=0.1,
    core_volume_per_s=(30.0, 60.0),
    core_error_share=(0.05, 0.1),
    volume_median_per_s=1.0,
    error_median=0.05,
)


@dataclass(frozen=True, slots=True)
class Line:
    project: str
    service: str
    ts: float
    error: bool


def parse_ts(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        ts = value / 1000.0 if value > 1e11 else float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return None
        ts = parsed.timestamp()
    else:
        return None
    return ts if math.isfinite(ts) and 946_684_800 <= ts <= 4_102_444_800 else None  # years 2000-2100


def parse_line(raw: bytes) -> Line | None:
    """A strict reading of the JSON-lines format; None for a bad line."""
    if len(raw) > MAX_LINE:
        return None
    try:
        obj = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict):
        return None
    service, level, project, status = (
        obj.get("service"),
        obj.get("level"),
        obj.get("project", "default"),
        obj.get("status"),
    )
    ts = parse_ts(obj.get("ts"))
    if not (isinstance(service, str) and service and isinstance(level, str) and isinstance(project, str)):
        return None
    if ts is None or not isinstance(obj.get("message"), str):
        return None
    if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
        return None
    error = level.lower() in ERROR_LEVELS or (status is not None and status >= 500)
    return Line(project, service, ts, error)


def stream(workload: Workload) -> tuple[bytes, Totals]:
    totals = Totals()
    parts = []
    for chunk in workload.chunks():
        assert chunk.data == b"" or chunk.data.endswith(b"\n")  # whole lines only
        assert chunk.data.count(b"\n") == chunk.lines
        parts.append(chunk.data)
        totals = totals.add(chunk)
    return b"".join(parts), totals


class Parsed:
    """A parsed stream, indexed by (project, service) for counting lines in time ranges."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.lines = [parse_line(raw) for raw in data.split(b"\n")[:-1]]
        stamps: dict[tuple[str, str, bool], list[float]] = {}
        for x in self.lines:
            if x is not None:
                stamps.setdefault((x.project, x.service, False), []).append(x.ts)
                if x.error:
                    stamps.setdefault((x.project, x.service, True), []).append(x.ts)
        self.index = {k: np.sort(np.array(v)) for k, v in stamps.items()}

    def count(self, project: str, service: str, lo: float, hi: float, *, errors: bool) -> int:
        ts = self.index.get((project, service, errors), np.empty(0))
        return int(np.searchsorted(ts, hi) - np.searchsorted(ts, lo))


@pytest.fixture(scope="module")
def mixed() -> tuple[Workload, Parsed, Totals]:
    workload = Workload(MIXED)
    data, totals = stream(workload)
    return workload, Parsed(data), totals


def test_same_seed_same_bytes_and_labels_other_seed_differs() -> None:
    cfg = replace(MIXED, seed=3, duration_s=400, warmup_s=100, incidents=4, chunk_s=7)
    a, b = Workload(cfg), Workload(cfg)
    first = [c.data for c in a.chunks()]
    assert first == [c.data for c in b.chunks()]
    assert first == [c.data for c in a.chunks()]  # restartable
    assert dump(a.labels) == dump(b.labels)
    other = Workload(replace(cfg, seed=4))
    assert [c.data for c in other.chunks()] != first
    assert dump(other.labels) != dump(a.labels)


def test_mixed_workload_places_every_type(mixed: tuple[Workload, Parsed, Totals]) -> None:
    workload, _, _ = mixed
    kinds = Counter(label.type for label in workload.labels)
    assert set(kinds) == set(IncidentType), (kinds, workload.unplaced)
    assert [label.incident_id for label in workload.labels] == [
        f"inc-{i:04d}" for i in range(1, len(workload.labels) + 1)
    ]
    assert parse_labels(dump(workload.labels)) == list(workload.labels)
    for label in workload.labels:
        assert MIXED.start_ts + MIXED.warmup_s <= label.start or label.type is IncidentType.NEW_SERVICE
        assert label.end <= MIXED.start_ts + MIXED.duration_s


def test_error_incidents_raise_that_services_errors(mixed: tuple[Workload, Parsed, Totals]) -> None:
    workload, parsed, _ = mixed
    for label in workload.labels:
        if label.type not in (IncidentType.SPIKE, IncidentType.STEP, IncidentType.BURST):
            continue
        length = label.end - label.start
        during = parsed.count(label.project, label.service, label.start, label.end, errors=True)
        before = parsed.count(label.project, label.service, label.start - length, label.start, errors=True)
        # Expected extra errors: (magnitude - 1) x baseline for multipliers, magnitude for bursts.
        extra = (
            label.magnitude if label.type is IncidentType.BURST else (label.magnitude - 1) * label.baseline
        )
        assert label.signal is Signal.ERROR_RATE
        assert during - before > 0.5 * extra * length, label
        if label.type is IncidentType.BURST:
            assert before == 0, label  # a burst happens on a service that never errs otherwise


def test_ramp_rises_towards_its_peak(mixed: tuple[Workload, Parsed, Totals]) -> None:
    workload, parsed, _ = mixed
    ramps = [label for label in workload.labels if label.type is IncidentType.RAMP]
    assert ramps
    for label in ramps:
        third = (label.end - label.start) / 3
        early = parsed.count(label.project, label.service, label.start, label.start + third, errors=True)
        late = parsed.count(label.project, label.service, label.end - third, label.end, errors=True)
        assert late > early, label


def test_outage_silences_the_service_and_new_services_start_late(
    mixed: tuple[Workload, Parsed, Totals],
) -> None:
    workload, parsed, _ = mixed
    margin = MIXED.max_skew_s + 1  # a skewed host stamps lines up to 3 s off
    seen = {label.type for label in workload.labels}
    assert {IncidentType.OUTAGE, IncidentType.NEW_SERVICE} <= seen
    for label in workload.labels:
        key = (label.project, label.service)
        if label.type is IncidentType.OUTAGE:
            assert label.signal is Signal.VOLUME_COLLAPSE
            assert label.baseline >= MIXED.min_outage_rate
            assert parsed.count(*key, label.start + margin, label.end - margin, errors=False) == 0
            assert (
                parsed.count(*key, label.start - 60, label.start, errors=False)
                > 60 * MIXED.min_outage_rate / 2
            )
        if label.type is IncidentType.NEW_SERVICE:
            assert label.signal is None
            assert parsed.count(*key, MIXED.start_ts, label.start - margin, errors=False) == 0
            assert parsed.count(*key, label.start, label.end, errors=False) > 0


def test_bad_lines_are_counted_and_about_the_configured_share(
    mixed: tuple[Workload, Parsed, Totals],
) -> None:
    _, parsed, totals = mixed
    lines = parsed.lines
    bad = sum(1 for x in lines if x is None)
    assert bad == totals.bad
    assert totals.lines == len(lines)
    share = MIXED.bad_line_share
    sigma = math.sqrt(share * len(lines))
    assert abs(bad - share * len(lines)) < 5 * sigma


def test_every_bad_line_template_is_bad_by_the_format() -> None:
    workload = Workload(small_config(0))
    renderer = Renderer(workload.config, workload.fleet, np.random.default_rng(0))
    templates = renderer.tails[renderer.bad_base :]
    assert len(templates) == len(renderer.bad_kinds)
    for kind, raw in zip(renderer.bad_kinds, templates, strict=True):
        assert parse_line(raw.rstrip(b"\n")) is None, kind
    assert {"malformed_json", "missing_service", "bad_timestamp", "non_utf8", "oversized", "nan"} <= set(
        renderer.bad_kinds
    )


def test_every_good_line_variant_parses() -> None:
    workload = Workload(MIXED)
    renderer = Renderer(workload.config, workload.fleet, np.random.default_rng(0))
    width = 1 + 2 * renderer.margin
    heads = renderer._second_pieces(MIXED.start_ts, 1)[1:].reshape(-1, width)
    fractions = renderer.fraction[1:].reshape(-1, 1000)
    assert len(heads) == len(fractions) == len(TS_FORMATS)
    for tail in renderer.tails[: renderer.bad_base]:
        for fmt in range(len(TS_FORMATS)):
            for head in heads[fmt]:
                for frac in fractions[fmt, ::333]:
                    line = parse_line(head + frac + tail.rstrip(b"\n"))
                    assert line is not None, (head, frac, tail)


def test_lines_carry_every_timestamp_format_and_both_error_styles(
    mixed: tuple[Workload, Parsed, Totals],
) -> None:
    workload, parsed, _ = mixed
    data, lines = parsed.data, parsed.lines
    shapes = {
        "rfc3339_z": rb'"ts":"[0-9T:-]{19}\.[0-9]{3}Z"',
        "rfc3339_+02:00": rb'"ts":"[0-9T:-]{19}\.[0-9]{3}\+02:00"',
        "rfc3339_-05:00": rb'"ts":"[0-9T:-]{19}\.[0-9]{3}-05:00"',
        "rfc3339_+05:30": rb'"ts":"[0-9T:-]{19}\.[0-9]{3}\+05:30"',
        "epoch_s": rb'"ts":[0-9]{10}\.[0-9]{3},',
        "epoch_ms": rb'"ts":[0-9]{13},',
    }
    used = {TS_FORMATS[int(f)] for f in workload.fleet.ts_format}
    assert len(used) >= 3
    assert {name for name in used if re.search(shapes[name], data)} == used
    assert b'"level":"info","status":503' in data  # an error told by the status code alone
    assert any(x is not None and x.project == "default" for x in lines)
    assert b'"project":"default"' in data  # written explicitly by some, omitted by others


def single_service(**changes: object) -> WorkloadConfig:
    base = WorkloadConfig(
        seed=5,
        services=1,
        duration_s=120,
        incidents=0,
        core_share=0.0,
        zero_error_share=0.0,
        volume_median_per_s=50.0,
        volume_sigma=0.01,
        skewed_service_share=0.0,
        duplicate_share=0.0,
        delayed_share=0.0,
        bad_line_share=0.0,
        chunk_s=1,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_skewed_host_shifts_a_third_of_a_services_timestamps() -> None:
    workload = Workload(single_service(skewed_service_share=1.0))
    skew = int(workload.fleet.skew_ms[0]) / 1000
    assert 1.0 <= abs(skew) <= 3.0
    shifted = straight = 0
    for chunk in workload.chunks():
        for raw in chunk.data.splitlines():
            line = parse_line(raw)
            assert line is not None
            if chunk.start <= line.ts < chunk.end:
                straight += 1
            else:
                assert chunk.start + skew <= line.ts < chunk.end + skew
                shifted += 1
    assert 0.25 < shifted / (shifted + straight) < 0.42


def late_lines(workload: Workload) -> int:
    """Lines stamped at least a second before the latest stamp already seen."""
    latest, late = -math.inf, 0
    for chunk in workload.chunks():
        for raw in chunk.data.splitlines():
            line = parse_line(raw)
            assert line is not None
            late += line.ts <= latest - 1.0
            latest = max(latest, line.ts)
    return late


def test_out_of_order_lines_only_when_asked() -> None:
    assert late_lines(Workload(single_service(chunk_s=10))) == 0
    delayed = Workload(single_service(chunk_s=10, delayed_share=0.05))
    assert late_lines(delayed) > 0.02 * sum(c.lines for c in delayed.chunks())


def test_duplicates_repeat_lines() -> None:
    workload = Workload(single_service(duplicate_share=0.05))
    data, totals = stream(workload)
    repeats = sum(n - 1 for n in Counter(data.splitlines()).values())
    assert totals.duplicates > 0.03 * totals.lines
    assert repeats >= totals.duplicates


def test_expected_counts_follow_the_injections() -> None:
    workload = Workload(MIXED)
    for inj in workload.injections:
        ok, err = workload.expected_counts(inj.start_s - 2, 4)
        before, inside = 0, 3  # columns: two seconds before, two inside
        if inj.type is IncidentType.SPIKE or inj.type is IncidentType.STEP:
            assert err[inj.service, inside] == pytest.approx(
                err[inj.service, before] * inj.magnitude, rel=0.01
            )
        if inj.type is IncidentType.OUTAGE:
            assert ok[inj.service, before] > 0
            assert ok[inj.service, inside] == 0 == err[inj.service, inside]
        if inj.type is IncidentType.NEW_SERVICE:
            assert ok[inj.service, before] == 0
            assert ok[inj.service, inside] > 0
        if inj.type is IncidentType.RAMP:
            _, ramp = workload.expected_counts(inj.start_s, inj.ramp_s)
            assert np.all(np.diff(ramp[inj.service]) > 0)


def test_demo_preset_is_small_and_has_a_few_realistic_incidents() -> None:
    workload = Workload(demo_config())
    kinds = Counter(label.type for label in workload.labels)
    assert workload.unplaced == ()
    assert len(workload.fleet) == 13  # a dozen services plus the one that appears mid-stream
    assert kinds == {
        IncidentType.SPIKE: 2,
        IncidentType.BURST: 1,
        IncidentType.OUTAGE: 1,
        IncidentType.NEW_SERVICE: 1,
    }
    assert workload.config.duration_s <= 900


def test_mix_counts_are_exact_and_stable() -> None:
    counts = DEFAULT_MIX.counts(60)
    assert sum(counts.values()) == 60
    assert counts[IncidentType.SPIKE] == 24
    assert IncidentMix(spike=1, burst=1).counts(3) == {
        IncidentType.SPIKE: 2,
        IncidentType.STEP: 0,
        IncidentType.RAMP: 0,
        IncidentType.BURST: 1,
        IncidentType.OUTAGE: 0,
        IncidentType.NEW_SERVICE: 0,
    }
    with pytest.raises(ValueError, match="mix"):
        IncidentMix()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"services": 0}, "services must be > 0"),
        ({"bad_line_share": 0.9}, "bad_line_share is out of range"),
        ({"error_median": 1.5}, "error_median"),
        ({"core_volume_per_s": (10.0, 1.0)}, "core ranges"),
        ({"incidents": -1}, "incidents must be >= 0"),
        ({"error_clump": 0.5}, "error_clump"),
    ],
)
def test_config_rejects_nonsense(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(WorkloadConfig(), **change)  # type: ignore[arg-type]


def test_bytes_do_not_depend_on_the_process() -> None:
    """Another interpreter (another hash seed) produces the same bytes."""
    cfg = "replace(demo_config(9), duration_s=90, chunk_s=11)"
    code = (
        "import hashlib, sys\n"
        "from dataclasses import replace\n"
        "from logwarden.workload import Workload, demo_config\n"
        f"w = Workload({cfg})\n"
        "sys.stdout.write(hashlib.sha256(b''.join(c.data for c in w.chunks())).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, check=True, env=env, timeout=120
    )
    here = Workload(replace(demo_config(9), duration_s=90, chunk_s=11))
    assert other.stdout.decode() == hashlib.sha256(b"".join(c.data for c in here.chunks())).hexdigest()


@pytest.mark.parametrize("clump", [1.0, 4.0])
def test_error_clumps_overdisperse_the_counts_but_keep_the_mean(clump: float) -> None:
    workload = Workload(single_service(error_clump=clump))
    counts = workload.error_counts(np.full(200_000, 3.0), np.random.default_rng(1))
    assert counts.mean() == pytest.approx(3.0, rel=0.02)
    assert counts.var() / counts.mean() == pytest.approx(2 * clump - 1, rel=0.05)
