"""``logwarden score``: CSV in, scores out; bad rows reported with their line and skipped."""

from __future__ import annotations

import csv
import random
import subprocess
import sys
from pathlib import Path

import pytest

from logwarden.cli import main

ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def series(n: int, spike_at: int) -> list[tuple[int, float]]:
    rng = random.Random(7)
    return [
        (1735689600 + 60 * i, rng.gauss(20, 1) + (15 if spike_at <= i < spike_at + 3 else 0))
        for i in range(n)
    ]


def test_scores_a_csv_with_header_and_reports_bad_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ["timestamp,value"] + [f"{ts},{v:.3f}" for ts, v in series(700, 650)]
    rows += ["not-a-time,1", "2025-01-01T00:00:00Z,abc", "1735689600,inf", "only-one-column"]
    out = tmp_path / "out.csv"
    assert main(["score", str(write(tmp_path / "in.csv", rows)), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "in.csv:702: bad timestamp 'not-a-time'; row skipped" in err
    assert "in.csv:703: bad value 'abc'" in err
    assert "in.csv:704: value is not finite" in err
    assert "in.csv:705: expected 2 columns" in err
    assert "700 rows scored, 4 skipped" in err
    with out.open(newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["timestamp", "value", "anomaly_score", "anomalous"]
    assert len(table) == 701
    assert table[1][:2] == rows[1].split(",")
    flagged = [i - 1 for i, row in enumerate(table[1:], start=1) if row[3] == "1"]
    assert flagged[:3] == [650, 651, 652]
    assert all(0.0 <= float(row[2]) < 1.0 for row in table[1:])


@pytest.mark.parametrize(
    "stamp",
    [
        lambda ts: str(ts),
        lambda ts: str(ts * 1000),
        lambda ts: f"{ts}.25",
        lambda ts: __import__("datetime").datetime.fromtimestamp(ts, __import__("datetime").UTC).isoformat(),
        lambda ts: __import__("time").strftime("%Y-%m-%d %H:%M:%S", __import__("time").gmtime(ts)),
    ],
    ids=["epoch", "epoch-ms", "epoch-float", "rfc3339", "space"],
)
def test_timestamp_forms_and_no_header(tmp_path: Path, stamp, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    rows = [f"{stamp(ts)},{v}" for ts, v in series(100, 1000)]
    out = tmp_path / "out.csv"
    assert main(["score", str(write(tmp_path / "in.csv", rows)), "-o", str(out)]) == 0
    assert "100 rows scored, 0 skipped" in capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 101


def test_missing_input_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", str(tmp_path / "nope.csv")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_score_starts_without_heavy_imports(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", [f"{ts},{v}" for ts, v in series(50, 1000)])
    script = (
        "import sys\n"
        "from logwarden.cli import main\n"
        f"code = main(['score', {str(path)!r}, '-o', {str(tmp_path / 'o.csv')!r}])\n"
        "heavy = ('numpy', 'msgspec', 'asyncpg', 'composio', 'pydantic_ai')\n"
        "heavy = sorted(m for m in heavy if m in sys.modules)\n"
        "print(code, heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "0 []"
