"""Snapshots: a restored detector continues bit for bit, in this process, in another, via PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest

from detector import Detector, DetectorConfig, SeriesScorer
from detector.snapshot import FORMAT, SnapshotError, load_state, save_state
from tests.detector.streams import Service, run, seconds

CONFIG = DetectorConfig(baseline_seconds=120, baseline_slots=12, warmup_buckets=30, relearn_seconds=90)
ROOT = Path(__file__).resolve().parents[2]


def _shape(name: str, sec: int) -> tuple[float, float]:
    if name == "api" and 200 <= sec < 230:
        return 1.0, 8.0
    if name == "db" and 260 <= sec < 280:
        return 0.0, 1.0
    return 1.0, 1.0


def _chunks() -> list[bytes]:
    services = [Service("api", 20, 0.03), Service("db", 25, 0.0), Service("web", 3, 0.01, project="shop")]
    out = []
    for chunk in seconds(services, 0, 330, _shape, seed=21):
        out += [chunk[: len(chunk) // 3], chunk[len(chunk) // 3 :]]  # partial lines carried over
    return out


CHUNKS = _chunks()


def _events_json(events: list) -> list[dict]:  # type: ignore[type-arg]
    return [e.to_dict() for e in events]


def _uninterrupted() -> tuple[list[dict], Detector]:  # type: ignore[type-arg]
    det = Detector(CONFIG)
    events = run(det, CHUNKS) + det.flush()
    return _events_json(events), det


EXPECTED, WHOLE = _uninterrupted()


def test_the_scenario_has_events_to_lose() -> None:
    kinds = {(e["service"], e["signal"], e["kind"]) for e in EXPECTED}
    assert ("api", "error_rate", "onset") in kinds
    assert ("db", "volume_collapse", "onset") in kinds


@pytest.mark.parametrize("split", [1, 101, 399, 421, 460, 531, 600])
def test_restore_mid_stream_is_bit_for_bit(split: int) -> None:
    first = Detector(CONFIG)
    events = run(first, CHUNKS[:split])
    data = first.snapshot()
    second = Detector.restore(data)
    events += run(second, CHUNKS[split:]) + second.flush()
    assert _events_json(events) == EXPECTED
    assert second.stats() == WHOLE.stats()
    assert second.snapshot() == WHOLE.snapshot()


def test_restore_across_a_process_boundary(tmp_path: Path) -> None:
    split = 431
    first = Detector(CONFIG)
    events = run(first, CHUNKS[:split])
    (tmp_path / "state.bin").write_bytes(first.snapshot())
    (tmp_path / "rest.bin").write_bytes(msgspec.msgpack.encode(CHUNKS[split:]))
    script = (
        "import json, sys, msgspec\n"
        "from detector import Detector\n"
        "det = Detector.restore(open(sys.argv[1], 'rb').read())\n"
        "out = []\n"
        "for chunk in msgspec.msgpack.decode(open(sys.argv[2], 'rb').read()):\n"
        "    out += det.feed(chunk)\n"
        "out += det.flush()\n"
        "print(json.dumps([e.to_dict() for e in out]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "state.bin"), str(tmp_path / "rest.bin")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rest = json.loads(done.stdout)
    # JSON floats round-trip exactly (repr), so equality here is bit for bit
    assert _events_json(events) + rest == EXPECTED


def test_snapshot_holds_no_derived_statistics() -> None:
    doc = msgspec.msgpack.decode(WHOLE.snapshot())
    assert doc["format"] == FORMAT
    assert not {"sum_n", "sum_e", "wsum_n", "phi", "phi_n"} & set(doc["columns"])
    # the layout of format 1 is kept although the running state holds admitted buckets in int32
    assert doc["columns"]["ring_k"][0] == np.dtype(np.int16).str


def test_corrupt_or_foreign_snapshots_are_refused() -> None:
    with pytest.raises(SnapshotError):
        Detector.restore(b"\x00garbage")
    with pytest.raises(SnapshotError, match="format"):
        Detector.restore(msgspec.msgpack.encode({"format": 99}))
    doc = msgspec.msgpack.decode(WHOLE.snapshot())
    del doc["columns"]["ring_n"]
    with pytest.raises(SnapshotError):
        Detector.restore(msgspec.msgpack.encode(doc))
    assert SnapshotError("x").retryable is False


def test_restore_checks_the_state_shaping_config() -> None:
    data = WHOLE.snapshot()
    with pytest.raises(SnapshotError, match="baseline_slots"):
        Detector.restore(data, DetectorConfig(baseline_seconds=120, baseline_slots=6, warmup_buckets=30))
    tuned = DetectorConfig(
        baseline_seconds=120, baseline_slots=12, warmup_buckets=30, relearn_seconds=90, z_threshold=6.0
    )
    assert Detector.restore(data, tuned).config.z_threshold == 6.0


@pytest.mark.postgres
@pytest.mark.anyio
async def test_save_and_load_through_postgres(pool) -> None:  # type: ignore[no-untyped-def]
    assert await load_state(pool, "proc-a") is None
    first = Detector(CONFIG)
    events = run(first, CHUNKS[:300])
    size = await save_state(pool, "proc-a", first)
    assert size == len(first.snapshot())
    events += run(first, CHUNKS[300:350])
    await save_state(pool, "proc-a", first)  # a second save replaces the row
    await save_state(pool, "proc-b", Detector(CONFIG))
    second = await load_state(pool, "proc-a")
    assert second is not None
    events += run(second, CHUNKS[350:]) + second.flush()
    assert _events_json(events) == EXPECTED
    rows = await pool.fetch("SELECT processor_id, format FROM detector_state ORDER BY processor_id")
    assert [(r["processor_id"], r["format"]) for r in rows] == [("proc-a", FORMAT), ("proc-b", FORMAT)]


@pytest.mark.postgres
@pytest.mark.anyio
async def test_load_refuses_an_unknown_stored_format(pool) -> None:  # type: ignore[no-untyped-def]
    await pool.execute("INSERT INTO detector_state (processor_id, format, state) VALUES ('p', 42, '\\x00')")
    with pytest.raises(SnapshotError, match="42"):
        await load_state(pool, "p")


def test_series_scorer_restores_bit_for_bit() -> None:
    import math

    values = [100 + 10 * math.sin(i / 7) + (80 if 700 <= i < 705 else 0) for i in range(1000)]
    whole = SeriesScorer()
    expected = [whole.update("cpu", i * 60.0, v) for i, v in enumerate(values)]
    assert any(r.anomalous for r in expected)
    first = SeriesScorer()
    got = [first.update("cpu", i * 60.0, v) for i, v in enumerate(values[:653])]
    second = SeriesScorer.restore(first.snapshot())
    got += [second.update("cpu", (653 + i) * 60.0, v) for i, v in enumerate(values[653:])]
    assert got == expected
    with pytest.raises(ValueError, match="format"):
        SeriesScorer.restore(msgspec.msgpack.encode({"format": 0}))


@pytest.mark.parametrize("split", [1, 7, 101, 421])
def test_restore_rebuilds_every_derived_column_as_it_was(split: int) -> None:
    """Not only the events: every derived statistic of a restored detector equals the original's,
    including keys that have not completed a baseline slot yet (their dispersion too)."""
    from detector.state import _STACKS

    first = Detector(CONFIG)
    run(first, CHUNKS[:split])
    second = Detector.restore(first.snapshot())
    used = first._keys.used
    assert used > 0
    for stack in _STACKS:  # raw and derived columns alike
        mine, theirs = getattr(first._state, stack)[..., :used], getattr(second._state, stack)[..., :used]
        assert mine.tolist() == theirs.tolist(), stack
