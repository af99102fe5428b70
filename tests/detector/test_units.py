"""Small pieces: configuration checks, message masking, timestamp columns, scoring helpers."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector import DetectorConfig
from detector.messages import mask, top_messages
from detector.models import Signal, fingerprint
from detector.scoring import deviance_z1, score
from detector.timestamps import ABSURD, BAD, NON_FINITE, OK, to_epoch_seconds
from detector.vectorised import deviance_z


@pytest.mark.parametrize(
    "changes",
    [
        {"bucket_seconds": 0},
        {"z_threshold": float("nan")},
        {"z_clear": 6.0},
        {"windows": (4, 1)},
        {"windows": ()},
        {"windows": (1, 10_000)},
        {"ewma_alpha": 0.0},
        {"baseline_seconds": 601},
        {"collapse_ratio": 1.5},
        {"min_errors": -1},
        {"allowed_lateness_seconds": -1.0},
        {"min_timestamp": 5e9},
    ],
)
def test_bad_configuration_is_refused_with_the_field_named(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="DetectorConfig"):
        DetectorConfig(**changes)  # type: ignore[arg-type]


def test_configuration_round_trips() -> None:
    cfg = DetectorConfig(windows=(1, 8), z_threshold=6.0)
    assert DetectorConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.baseline_buckets == 600
    assert cfg.slot_buckets == 10


@pytest.mark.parametrize(
    ("message", "masked"),
    [
        ("timeout after 1503ms", "timeout after <n>ms"),
        ("timeout after 98ms", "timeout after <n>ms"),
        ("user 4f1c2a9b-8d7e-4c3b-9a1f-0e2d3c4b5a69 not found", "user <uuid> not found"),
        ("object deadbeef12 at 0x7ffe", "object <hex> at <hex>"),
        ("took 1.5s  of   3,000", "took <n>s of <n>"),
        ("plain words stay", "plain words stay"),
    ],
)
def test_masking(message: str, masked: str) -> None:
    assert mask(message) == masked


def test_top_messages_rank_by_frequency() -> None:
    samples = ["a 1", "b 2", "a 3", "c", "a 9", "b 1", "", "d", "e", "f"]
    assert top_messages(samples) == ("a <n>", "b <n>", "c", "d", "e")


def test_the_vectorised_deviance_z_is_the_scalar_one() -> None:
    rng = np.random.default_rng(4)
    lam = np.concatenate([rng.uniform(0.5, 50, 300), rng.uniform(1e3, 1e9, 100), [3.0, 7.0, 1e-3]])
    x = np.concatenate(
        [rng.poisson(lam[:300] * rng.uniform(0, 4, 300)), rng.poisson(lam[300:400]), [0, 7, 0]]
    )
    x = x.astype(np.float64)
    x[:20] = 0.0
    x[20:40] = lam[20:40]  # exactly the expectation
    phi = rng.uniform(1, 6, len(x))
    got = deviance_z(x, lam, phi)
    want = [deviance_z1(float(a), float(b), float(c)) for a, b, c in zip(x, lam, phi, strict=True)]
    # numpy's vectorised log may differ from libm's in the last bit; the zero cases are exact
    assert np.allclose(got, want, rtol=1e-12, atol=0)
    assert (got[20:40] == 0).all()
    assert got[:20].tolist() == want[:20]


def test_deviance_z_matches_the_gaussian_for_large_counts_and_is_honest_for_small() -> None:
    assert deviance_z1(10_100.0, 10_000.0, 1.0) == pytest.approx(1.0, rel=0.01)
    assert deviance_z1(6.0, 1.0, 1.0) < 3.5  # a plain z-score would say 5
    assert deviance_z1(0.0, 20.0, 1.0) == pytest.approx(-math.sqrt(40))
    assert score(5.0, 5.0) == 0.5
    assert score(-3.0, 5.0) == 0.0
    assert score(1e300, 5.0) < 1.0


@settings(max_examples=200, derandomize=True, database=None)
@given(
    moment=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1)),
    offset_minutes=st.integers(min_value=-23 * 60, max_value=23 * 60),
    digits=st.sampled_from([0, 3, 6]),
    zulu=st.booleans(),
)
def test_timestamp_columns_agree_with_datetime(
    moment: datetime, offset_minutes: int, digits: int, zulu: bool
) -> None:
    tz = UTC if zulu else timezone(timedelta(minutes=offset_minutes))
    aware = moment.replace(tzinfo=tz)
    text = aware.isoformat(timespec={0: "seconds", 3: "milliseconds", 6: "microseconds"}[digits])
    if zulu:
        text = text.replace("+00:00", "Z")
    expected = math.floor(aware.timestamp())
    seconds, codes = to_epoch_seconds([text, text, text], 0, 5e9)
    assert codes.tolist() == [OK] * 3
    assert seconds.tolist() == [expected] * 3
    mixed, codes = to_epoch_seconds([text, expected, expected * 1000, "nope"], 0, 5e9)
    assert mixed.tolist()[:3] == [expected] * 3
    assert codes.tolist() == [OK, OK, OK, BAD]


def test_timestamp_codes() -> None:
    values = ["2025-01-01T00:00:00Z", "1999-12-31T23:59:59Z", float("nan"), True, "2025-02-29T00:00:00Z"]
    _, codes = to_epoch_seconds(values, 946684800, 4102444800)
    assert codes.tolist() == [OK, ABSURD, NON_FINITE, BAD, BAD]


def test_fingerprints_never_change() -> None:
    """Claim rows and incidents are keyed by fingerprint: a new value for an old subject would
    open a second incident for it. These are the values the first release computed."""
    assert fingerprint("shop", "checkout", Signal.ERROR_RATE) == "bb7bc165caa82267329c9c65ef4c87bd"
    assert fingerprint("default", "api", Signal.VOLUME_COLLAPSE) == "bd93033057c67c5108c99dc7ad989be4"
    assert fingerprint("shop", "checkout", "error_rate") == fingerprint("shop", "checkout", Signal.ERROR_RATE)
