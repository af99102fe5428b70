"""JSON lines ingestion: every rejection reason, and good lines around bad ones never lost."""

from __future__ import annotations

import pytest

from detector import Detector, DetectorConfig
from detector.counters import Reason
from tests.detector.streams import T0, line

GOOD = line(T0, "api")

BAD_LINES = [
    (Reason.MALFORMED_JSON, b'{"ts":1735689600,"service":"api"'),
    (Reason.MALFORMED_JSON, b'{"ts":1735689600,"service":"api"} {"ts":1735689600,"service":"api"}'),
    (Reason.MALFORMED_JSON, b"not json at all"),
    (Reason.WRONG_TYPE, b"[1, 2, 3]"),
    (Reason.WRONG_TYPE, b'"just a string"'),
    (Reason.WRONG_TYPE, b'{"ts":1735689600,"service":42}'),
    (Reason.WRONG_TYPE, b'{"ts":1735689600,"service":"api","level":5}'),
    (Reason.WRONG_TYPE, b'{"ts":1735689600,"service":"api","status":"500"}'),
    (Reason.WRONG_TYPE, b'{"ts":1735689600,"service":"api","message":{"nested":true}}'),
    (Reason.MISSING_SERVICE, b'{"ts":1735689600,"level":"error"}'),
    (Reason.MISSING_SERVICE, b'{"ts":1735689600,"service":""}'),
    (Reason.NAME_TOO_LONG, b'{"ts":1735689600,"service":"' + b"s" * 300 + b'"}'),
    (Reason.NAME_TOO_LONG, b'{"ts":1735689600,"service":"api","project":"' + b"p" * 300 + b'"}'),
    (Reason.MISSING_TIMESTAMP, b'{"service":"api","level":"error"}'),
    (Reason.BAD_TIMESTAMP, b'{"ts":"yesterday","service":"api"}'),
    (Reason.BAD_TIMESTAMP, b'{"ts":"2025-02-30T00:00:00Z","service":"api"}'),
    (Reason.BAD_TIMESTAMP, b'{"ts":true,"service":"api"}'),
    (Reason.BAD_TIMESTAMP, b'{"ts":null,"service":"api"}'),
    (Reason.ABSURD_TIMESTAMP, b'{"ts":"1970-01-01T00:00:01Z","service":"api"}'),
    (Reason.ABSURD_TIMESTAMP, b'{"ts":99999999999999999,"service":"api"}'),
    (Reason.ABSURD_TIMESTAMP, b'{"ts":-5,"service":"api"}'),
    (Reason.NON_FINITE, b'{"ts":NaN,"service":"api"}'),
    (Reason.NON_FINITE, b'{"ts":Infinity,"service":"api"}'),
    (Reason.NON_FINITE, b'{"ts":1e999,"service":"api"}'),
    (Reason.NON_UTF8, b'{"ts":1735689600,"service":"api\xff\xfe"}'),
    (Reason.NON_UTF8, b'\xc3\x28{"ts":1735689600,"service":"api"}'),
    (Reason.TOO_LONG, b'{"ts":1735689600,"service":"api","message":"' + b"x" * 70000 + b'"}'),
    (Reason.EMPTY_LINE, b""),
    (Reason.EMPTY_LINE, b"   \t "),
    (Reason.EMPTY_LINE, b"\r"),
]


@pytest.mark.parametrize(
    ("reason", "bad"), BAD_LINES, ids=[f"{r.value}-{i}" for i, (r, _) in enumerate(BAD_LINES)]
)
def test_each_bad_line_is_counted_under_its_reason_and_loses_nothing_else(reason: Reason, bad: bytes) -> None:
    det = Detector()
    chunk = b"\n".join([GOOD, GOOD, bad, GOOD, GOOD]) + b"\n"
    assert det.feed(chunk) == []
    stats = det.stats()
    assert stats.rejected == {reason.value: 1}
    assert stats.events_accepted == 4
    assert stats.lines_received == 5
    (sample,) = stats.rejected_samples[reason.value]
    assert sample.startswith("line 3: ")


def test_every_reason_in_one_buffer_keeps_every_good_line() -> None:
    det = Detector()
    lines = []
    for _, bad in BAD_LINES:
        lines += [GOOD, bad]
    lines.append(GOOD)
    det.feed(b"\n".join(lines) + b"\n")
    stats = det.stats()
    assert stats.events_accepted == len(BAD_LINES) + 1
    expected: dict[str, int] = {}
    for reason, _ in BAD_LINES:
        expected[reason.value] = expected.get(reason.value, 0) + 1
    assert stats.rejected == expected
    assert stats.lines_received == len(lines)


@pytest.mark.parametrize("blank", [b"", b"   ", b"\r"], ids=["empty", "spaces", "cr"])
def test_a_blank_line_and_a_line_of_two_values_do_not_cancel_out(blank: bytes) -> None:
    """Decoding a whole buffer at once skips blank lines and accepts two values on one line;
    one of each must still be two rejections, not two accepted events."""
    det = Detector()
    det.feed(b"\n".join([GOOD, blank, GOOD + b" " + GOOD, GOOD]) + b"\n")
    stats = det.stats()
    assert stats.rejected == {Reason.EMPTY_LINE.value: 1, Reason.MALFORMED_JSON.value: 1}
    assert stats.events_accepted == 2
    assert stats.lines_received == 4


def test_an_indented_line_is_still_a_good_line() -> None:
    det = Detector()
    det.feed(b"\n".join([GOOD, b"  " + GOOD, b"\t" + GOOD]) + b"\n")
    stats = det.stats()
    assert (stats.events_accepted, stats.rejected) == (3, {})


def test_samples_are_bounded_per_reason() -> None:
    det = Detector(DetectorConfig(rejection_samples=2))
    det.feed(b"garbage\n" * 50)
    stats = det.stats()
    assert stats.rejected == {"malformed_json": 50}
    assert stats.rejected_samples["malformed_json"] == ("line 1: 'garbage'", "line 2: 'garbage'")


def test_a_too_long_line_split_across_chunks_is_dropped_alone() -> None:
    det = Detector(DetectorConfig(max_line_bytes=100))
    det.feed(GOOD + b"\n" + b'{"ts":1735689600,"service":"api","message":"' + b"x" * 80)
    det.feed(b"y" * 80)  # the partial line is now over the limit: dropped without buffering more
    det.feed(b"z" * 500)
    det.feed(b'"}\n' + GOOD + b"\n")
    stats = det.stats()
    assert stats.rejected == {"too_long": 1}
    assert stats.events_accepted == 2
    assert det._carry == b""


def test_any_chunking_gives_the_same_result() -> None:
    body = b"".join(
        line(T0 + i // 3, f"svc{i % 4}", "ERROR" if i % 7 == 0 else "info", f"m{i}") + b"\n"
        for i in range(400)
    )
    body += b"garbage\n" + line(T0 + 140, "svc1")  # the last line has no newline
    whole = Detector()
    whole.feed(body)
    expected = whole.flush()
    for step in (1, 7, 64, 333):
        det = Detector()
        events = []
        for i in range(0, len(body), step):
            events += det.feed(body[i : i + step])
        events += det.flush()
        assert events == expected
        assert det.stats() == whole.stats()


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"level": "ERROR"}, True),
        ({"level": "error"}, True),
        ({"level": "Fatal"}, True),
        ({"level": "CRITICAL"}, True),
        ({"level": "alert"}, True),
        ({"level": "emergency"}, True),
        ({"level": "warning"}, False),
        ({"level": "info", "status": 500}, True),
        ({"level": "info", "status": 503}, True),
        ({"level": "info", "status": 499}, False),
        ({"level": "info", "status": 599}, True),
        ({"level": "info", "status": 600}, False),
        ({"level": "info", "status": 10**30}, False),
        ({"level": "info", "status": None}, False),
        ({"level": None, "status": 502}, True),
        ({"level": None, "message": None}, False),
        ({}, False),
    ],
)
def test_what_counts_as_an_error(fields: dict[str, object], error: bool) -> None:
    det = Detector()
    import json

    record = {"ts": T0, "service": "api", **fields}
    batch = det._json.decode(json.dumps(record).encode() + b"\n", 1)
    assert batch.errors.tolist() == [error]


@pytest.mark.parametrize(
    "ts",
    [
        '"2025-01-01T00:00:07Z"',
        '"2025-01-01T00:00:07.999Z"',
        '"2025-01-01T05:30:07+05:30"',
        '"2024-12-31T19:00:07-05:00"',
        '"2025-01-01 00:00:07"',
        '"2025-01-01T00:00:07.123456789Z"',
        "1735689607",
        "1735689607.5",
        "1735689607250",
    ],
)
def test_timestamp_forms_land_in_the_same_second(ts: str) -> None:
    det = Detector()
    batch = det._json.decode(b'{"ts":%s,"service":"api"}\n' % ts.encode(), 1)
    assert batch.seconds.tolist() == [T0 + 7]


def test_project_is_optional_and_empty_means_default() -> None:
    det = Detector()
    det.feed(
        line(T0, "api")
        + b"\n"
        + line(T0, "api", project="")
        + b"\n"
        + line(T0, "api", project="shop")
        + b"\n"
        + line(T0, "web", project="shop")
        + b"\n"
    )
    names = sorted(n for n in det._keys.names() if n is not None)
    assert names == [("default", "api"), ("shop", "api"), ("shop", "web")]


def test_bad_lines_anywhere_in_a_long_buffer_cost_only_themselves() -> None:
    """Bad lines at block edges, next to each other and at both ends: every good line is kept,
    in order, with its own line number; every bad one is counted once under its reason."""
    import numpy as np

    rng = np.random.default_rng(7)
    n = 1300
    bad_at = sorted({0, 255, 256, 257, 511, 512, 700, 701, 702, n - 1, *rng.integers(0, n, 40).tolist()})
    lines: list[bytes] = []
    expected: dict[str, int] = {}
    good: list[tuple[int, str]] = []
    for i in range(n):
        if i in bad_at:
            reason, bad = BAD_LINES[int(rng.integers(len(BAD_LINES)))]
            if reason in (Reason.NAME_TOO_LONG, Reason.TOO_LONG):  # judged after decoding or too big
                reason, bad = Reason.MALFORMED_JSON, b"not json at all"
            lines.append(bad)
            expected[reason.value] = expected.get(reason.value, 0) + 1
        else:
            service = f"s{i % 7}"
            lines.append(line(T0 + i // 100, service))
            good.append((i + 1, service))
    det = Detector()
    batch = det._json.decode(b"\n".join(lines) + b"\n", 1)
    assert batch.services == [service for _, service in good]
    assert [batch.label(i) for i in range(len(batch))] == [f"line {number}" for number, _ in good]
    assert det.stats().rejected == expected


@pytest.mark.parametrize("spelling", [b'"project"', b'"\\u0070roject"'])
def test_one_line_with_a_project_or_status_among_many_without(spelling: bytes) -> None:
    """The optional columns are skipped only when no line sets them, whichever line does (and
    however its field name is spelt)."""
    plain = [line(T0, f"s{i}") for i in range(600)]
    for at in (0, 299, 599):
        lines = list(plain)
        lines[at] = b'{"ts":%d,"service":"s%d",%s:"shop","status":503}' % (T0, at, spelling)
        batch = Detector()._json.decode(b"\n".join(lines) + b"\n", 1)
        assert batch.projects == ["shop" if i == at else "default" for i in range(600)]
        assert batch.errors.tolist() == [i == at for i in range(600)]
    batch = Detector()._json.decode(b"\n".join(plain) + b"\n", 1)
    assert batch.projects is None
    assert batch.project == "default"
    assert not batch.errors.any()


def test_another_detectors_lines_do_not_count_as_this_ones() -> None:
    """The defaults whose reference counts tell that no line set the optional columns belong to
    each decoder: lines another detector decodes meanwhile (in another thread, say) cannot make
    a line of ours that sets a project look as if it did not."""
    ours, theirs = Detector()._json, Detector()._json
    plain = b"".join(line(T0, f"s{i}") + b"\n" for i in range(50))
    before = ours._defaults()
    kept = theirs.decode(plain, 1)  # 50 lines without project or status, elsewhere
    assert ours._defaults() == before
    mixed = line(T0, "s", project="shop") + b"\n" + plain
    batch = ours.decode(mixed, 1)
    assert batch.projects == ["shop"] + ["default"] * 50
    assert kept.projects is None


def test_line_shape_counts_like_bytes_count() -> None:
    import numpy as np

    from detector.ingest import line_shape

    rng = np.random.default_rng(3)
    data = rng.choice(np.frombuffer(b'{}\n{"a"\n\n', dtype=np.uint8), 20_000).tobytes()
    for start, end in ((0, len(data)), (1, len(data)), (3, 9_000), (0, 4_095), (7, 4_107), (5, 5)):
        part = data[start:end]
        expected = (part.count(b"\n"), part.count(b"\n{") + (part[:1] == b"{")) if part else (0, 0)
        assert line_shape(data, start, end) == expected


def test_levels_give_the_same_errors_once_their_spellings_are_known() -> None:
    levels = ["INFO", "ERROR", "error", " Fatal", "warn", "CRIT", "emergency", "info"]
    expected = [False, True, True, True, False, True, True, False]
    chunk = b"\n".join(line(T0, "api", level=level) for level in levels) + b"\n"
    det = Detector()
    assert det._json.decode(chunk, 1).errors.tolist() == expected  # spellings learnt here
    assert det._json.decode(chunk, 1).errors.tolist() == expected  # answered from the cache
    null_level = b'{"ts":%d,"service":"api","level":null}\n' % T0
    assert det._json.decode(chunk + null_level, 1).errors.tolist() == [*expected, False]


def test_level_spellings_not_known_yet_are_learnt_and_give_the_same_errors() -> None:
    """The fast decoder matches known level spellings as literals; a buffer with another
    spelling is decoded as plain strings (same answers) and teaches it the new ones."""
    dec = Detector()._json
    spellings = ["eRRoR", "Severe", "INFO", " error", "ALERT", "info "]
    lines = [line(T0, f"s{i}", level=level) for i, level in enumerate(spellings)]
    lines.append(b'{"ts":%d,"service":"null-level","level":null}' % T0)
    data = b"\n".join(lines) + b"\n"
    assert "eRRoR" not in dec._spellings
    first = dec.decode(data, 1)
    assert {"eRRoR", "Severe", " error", "info "} <= set(dec._spellings)
    assert dec._fast is not None
    again = dec.decode(data, 1)
    expected = [True, False, False, True, True, False, False]
    assert first.errors.tolist() == again.errors.tolist() == expected
    assert first.services == again.services
    assert dec.decode(data, 1).errors.tolist() == expected  # now all literals: the fast decoder


def test_a_stream_of_endless_level_spellings_stops_using_literals() -> None:
    dec = Detector()._json
    for chunk in range(3):
        data = b"".join(line(T0, "api", level=f"lvl-{chunk}-{i}") + b"\n" for i in range(120))
        batch = dec.decode(data, 1)
        assert len(batch) == 120
        assert not batch.errors.any()
    assert dec._fast is None  # 3 x 120 spellings: more than it keeps
    data = line(T0, "api", level="Error") + b"\n" + line(T0, "api", level="odd") + b"\n"
    assert dec.decode(data, 1).errors.tolist() == [True, False]


def test_a_long_buffer_is_decoded_in_pieces_each_knowing_its_optional_columns_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Several pieces; in each, no line sets project or status, and the reference counts tell
    so (the previous piece's structs are freed before the next is decoded, or its count would
    be off)."""
    from detector import ingest

    monkeypatch.setattr(ingest, "_PIECE", 4096)
    dec = Detector()._json
    seen: list[tuple[int, bool, bool]] = []
    columns = dec._columns

    def spy(rows: list[ingest.LogLine], no_project: bool, no_status: bool) -> ingest._Part:
        seen.append((len(rows), no_project, no_status))
        return columns(rows, no_project, no_status)

    monkeypatch.setattr(dec, "_columns", spy)
    lines = [line(T0 + i // 100, f"s{i % 7}", level="error" if i % 10 == 3 else "info") for i in range(1000)]
    data = b"\n".join(lines) + b"\n"
    batch = dec.decode(data, 1)
    assert len(seen) > 5
    assert all(no_project and no_status for _, no_project, no_status in seen)
    assert sum(n for n, _, _ in seen) == 1000
    assert batch.services == [f"s{i % 7}" for i in range(1000)]
    assert batch.seconds.tolist() == [T0 + i // 100 for i in range(1000)]
    assert batch.errors.tolist() == [i % 10 == 3 for i in range(1000)]
    assert len(batch.messages) == 100
    # a line with a project in a later piece: counted there, the other pieces' rows default
    lines[777] = line(T0, "s0", project="shop")
    batch = dec.decode(b"\n".join(lines) + b"\n", 1)
    assert batch.projects == ["shop" if i == 777 else "default" for i in range(1000)]
    # a bad line in some piece: the careful path, nothing else lost
    lines[500] = b'{"ts":"yesterday","service":"s1"}'
    batch = dec.decode(b"\n".join(lines) + b"\n", 1)
    assert len(batch) == 999
    assert batch.label(500) == "line 502"
