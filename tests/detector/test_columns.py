"""Whole-column fast paths agree with the one-value-at-a-time rules they replace.

Packed strings, the packed key index, error levels and timestamp columns are each checked against
the plain Python answer on arbitrary input (hypothesis, derandomised).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector import DetectorConfig, key_index
from detector.columns import EventColumns
from detector.counters import Rejections
from detector.key_index import SERVICE_WORDS, KeyIndex, Query
from detector.keys import KeyRegistry
from detector.packing import pack
from detector.timestamps import OK, text_to_seconds, to_epoch_seconds

SETTINGS = settings(max_examples=150, derandomize=True, deadline=None, database=None)

# short names that differ in one byte, long ones, non-ASCII, NULs, newlines, surrogates
names = st.one_of(
    st.sampled_from(["a", "b", "api", "api\x00", "api ", "svc-1", "svc-10", "x" * 24, "x" * 25, "é" * 12]),
    st.text(max_size=30),
    st.text(alphabet="ab\x00\n", max_size=9),
)


@SETTINGS
@given(strings=st.lists(names, max_size=40), words=st.integers(1, 4))
def test_packed_words_hold_the_string_and_the_separator(strings: list[str], words: int) -> None:
    packed = pack(strings, words)
    try:
        encoded = [s.encode() for s in strings]
    except UnicodeEncodeError:
        assert packed is None
        return
    if any("\n" in s for s in strings):
        assert packed is None
        return
    assert packed is not None
    pad = 8 * words
    assert packed.lengths.tolist() == [len(e) for e in encoded]
    for raw, row in zip(encoded, packed.words, strict=True):
        expected = (raw + b"\n" + b"\0" * pad)[:pad]
        assert row.tobytes() == expected


@SETTINGS
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.sampled_from(["default", "p", "é"]), names),
            st.tuples(st.just("evict"), st.integers(0, 40), st.just("")),
        ),
        max_size=80,
    ),
    probe=st.lists(st.tuples(st.sampled_from(["default", "p", "q"]), names), max_size=30),
)
def test_registry_answers_as_a_dict_of_names_would(
    steps: list[tuple[str, object, str]], probe: list[tuple[str, str]]
) -> None:
    registry = KeyRegistry(max_keys=30)
    model: dict[tuple[str, str], int] = {}
    for op, a, b in steps:
        if op == "add":
            if (a, b) not in model:
                key = registry.allocate(str(a), b)
                if key is None:
                    assert len(model) == 30
                else:
                    assert key == min(set(range(len(model) + 1)) - set(model.values()))  # smallest free
                    model[(str(a), b)] = key
        else:
            live = registry.live()
            assert live == sorted(model.values())
            if live:
                victim = live[int(str(a)) % len(live)]
                registry.evict([victim])
                del model[next(name for name, k in model.items() if k == victim)]
        # after each step, every live key is found (packable or not) and nothing else is
        assert len(registry) == len(model)
        by_id = registry.names()
        assert {name: k for k, name in enumerate(by_id) if name is not None} == model
        assert all(registry.name(k) == name for name, k in model.items())
        projects = [p for p, _ in probe] + [p for p, _ in model]
        services = [s for _, s in probe] + [s for _, s in model]
        for rows in (projects, None):
            project = "p" if rows is None else "default"
            ids = registry.lookup(rows, project, services)
            owners = rows if rows is not None else [project] * len(services)
            assert ids.tolist() == [model.get(pair, -1) for pair in zip(owners, services, strict=True)]
    restored = KeyRegistry.from_state(30, registry.to_state())
    assert restored.names() == registry.names()
    assert restored.live() == registry.live()
    assert restored.allocate("new", "key") == registry.allocate("new", "key")  # project codes may differ


def test_key_index_probes_past_collisions_and_stale_slots() -> None:
    index = KeyIndex()
    strings = [f"k{i}" for i in range(2000)]  # well over half the minimum table: rebuilds too
    packed = pack(strings, SERVICE_WORDS)
    assert packed is not None
    ids = np.arange(2000, dtype=np.int64)
    index.insert(ids, Query(0, packed))
    assert index.find(Query(0, packed)).tolist() == ids.tolist()
    assert (index.find(Query(1, packed)) == -1).all()  # another project
    index.remove(ids[::2])
    found = index.find(Query(0, packed))
    assert (found[::2] == -1).all()
    assert found[1::2].tolist() == ids[1::2].tolist()
    # an evicted id reused by another key: stale slots of the old key must not answer for it
    other = pack(["reused"], SERVICE_WORDS)
    assert other is not None
    index.insert(np.array([0]), Query(0, other))
    assert index.find(Query(0, other)).tolist() == [0]
    assert index.find(Query(0, packed))[:2].tolist() == [-1, 1]


def test_key_index_finds_rows_far_from_their_own_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every row hashed to one slot, the rows form one cluster far longer than the first
    windows a lookup reads: each is still found, and an absent row is -1 (at the cluster's end)."""
    zero = np.zeros(1, dtype=np.uint64)
    monkeypatch.setattr(key_index, "_hash", lambda words, meta: np.broadcast_to(zero, len(meta)).copy())
    index = KeyIndex()
    strings = [f"k{i}" for i in range(300)]
    packed = pack(strings, SERVICE_WORDS)
    assert packed is not None
    ids = np.arange(300, dtype=np.int64)
    index.insert(ids, Query(0, packed))
    assert index.slot_of[:300].tolist() == list(range(300))  # one cluster, in order
    assert index.find(Query(0, packed)).tolist() == ids.tolist()
    absent = pack(["absent", "k1"], SERVICE_WORDS)
    assert absent is not None
    assert index.find(Query(0, absent)).tolist() == [-1, 1]
    index.remove(ids[:150])  # tombstones do not end a search
    assert index.find(Query(0, packed)).tolist() == [-1] * 150 + ids[150:].tolist()


LEVELS = [
    "error", "ERROR", "Error", "err", "fatal", "CRITICAL", "crit", "alert", "emergency", "EMERG",
    "warn", "info", " error ", "error\t", "errors", "emergencyy", "critica", "\u00a0Error", "ERRor\x1f",
]  # fmt: skip


@SETTINGS
@given(levels=st.lists(st.one_of(st.none(), names, st.sampled_from(LEVELS)), max_size=40))
def test_error_flags_match_the_per_level_rule(levels: list[str | None]) -> None:
    columns = EventColumns(DetectorConfig(), Rejections(1))
    reference = EventColumns(DetectorConfig(), Rejections(1))
    expected = [bool(reference.is_error_level(level)) for level in levels]
    assert columns.error_flags(levels).tolist() == expected
    # again, now that the column's spellings are known (answered from the cache)
    assert columns.error_flags(levels).tolist() == expected
    assert columns.error_flags(levels[::-1]).tolist() == expected[::-1]


@SETTINGS
@given(
    start=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2090, 1, 1)),
    steps=st.lists(st.integers(0, 100_000), min_size=1, max_size=30),
    offset_minutes=st.integers(-14 * 60, 14 * 60),
    digits=st.sampled_from([0, 3, 6]),
)
def test_a_column_spanning_many_seconds_agrees_with_datetime(
    start: datetime, steps: list[int], offset_minutes: int, digits: int
) -> None:
    tz = timezone(timedelta(minutes=offset_minutes))
    moments = [
        start.replace(tzinfo=tz) + timedelta(milliseconds=sum(steps[: i + 1])) for i in range(len(steps))
    ]
    spec = {0: "seconds", 3: "milliseconds", 6: "microseconds"}[digits]
    texts = [m.isoformat(timespec=spec) for m in moments]
    seconds, codes = to_epoch_seconds(texts, 0, 5e9)
    assert codes.tolist() == [OK] * len(texts)
    assert seconds.tolist() == [math.floor(m.timestamp()) for m in moments]
    assert seconds.tolist() == [text_to_seconds(t)[0] for t in texts]
    utc = [m.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z") for m in moments]
    assert to_epoch_seconds(utc, 0, 5e9)[0].tolist() == seconds.tolist()
    # several widths and number forms in one column, interleaved
    mixed = [v for pair in zip(texts, utc, strict=True) for v in pair] + [utc[0][:19], texts[-1][:-1]]
    got, codes = to_epoch_seconds(mixed, 0, 5e9)
    expected = [text_to_seconds(t) for t in mixed]
    assert got[codes == OK].tolist() == [sec for sec, code in expected if code == OK]
    assert codes.tolist() == [code for _, code in expected]
    numbers: list[object] = [*mixed, float(seconds[0]), int(seconds[0]) * 1000]
    got, codes = to_epoch_seconds(numbers, 0, 5e9)
    assert got[-2:].tolist() == [seconds[0], seconds[0]]
    assert codes.tolist() == [code for _, code in expected] + [OK, OK]


def test_a_column_with_a_name_that_cannot_be_packed_is_looked_up_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One name with a newline (or a lone surrogate) stops the column packing as a whole; the
    other names are still looked up in one pass over the index, not one by one."""
    registry = KeyRegistry(max_keys=1000)
    services = [f"svc-{i}" for i in range(200)] + ["two\nlines", "lone \ud800", "x" * 40]
    ids = [registry.allocate("default", s) for s in services]
    registry.catch_up()
    finds: list[int] = []
    real_find = KeyIndex.find

    def counted(index: KeyIndex, query: Query) -> np.ndarray:
        finds.append(len(query))
        return real_find(index, query)

    monkeypatch.setattr(KeyIndex, "find", counted)
    column = [*services, "unknown\n", "unknown"]
    assert registry.lookup(None, "default", column).tolist() == [*ids, -1, -1]
    assert finds == [len(column) - 3]  # the packable names, at once
    owners = ["default", "other"]
    assert registry.lookup(owners, "default", ["two\nlines"] * 2).tolist() == [ids[200], -1]


def test_keys_of_projects_past_the_index_codes_are_kept_aside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(key_index, "MAX_CODE", 2)  # projects from the third on cannot be indexed
    registry = KeyRegistry(max_keys=100)
    ids = {(p, s): registry.allocate(p, s) for p in ("a", "b", "c", "d") for s in ("x", "y")}
    names = [s for _, s in ids]
    assert registry.lookup([p for p, _ in ids], "a", names).tolist() == list(ids.values())
    assert registry.lookup(None, "d", names).tolist() == [ids[("d", "x")], ids[("d", "y")]] * 4
    registry.evict([ids[("c", "x")]])
    assert registry.key_of("c", "x") == -1
    assert registry.key_of("c", "y") == ids[("c", "y")]
    assert registry.names()[ids[("d", "y")]] == ("d", "y")


def test_free_project_codes_are_reused_smallest_first() -> None:
    registry = KeyRegistry(max_keys=10)
    for project in ("a", "b", "c"):
        registry.allocate(project, "s")
    registry.evict([registry.key_of("a", "s"), registry.key_of("b", "s")])
    registry.allocate("d", "s")
    assert registry.project_codes == {"c": 2, "d": 0}
    assert registry.lookup(None, "d", ["s"]).tolist() == [registry.key_of("d", "s")] == [0]  # smallest free
    assert registry.lookup(None, "a", ["s"]).tolist() == [-1]
