"""``logwarden generate`` writes exactly the workload the library generates."""

from __future__ import annotations

from pathlib import Path

import pytest

from logwarden.cli import main
from logwarden.commands.generate import PRESET_NAMES
from logwarden.labels import read_labels
from logwarden.workload import PRESETS, Workload, preset_config


def test_writes_the_stream_and_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, labels = tmp_path / "logs.jsonl", tmp_path / "labels.jsonl"
    args = [
        "generate",
        "--preset",
        "demo",
        "--seed",
        "2",
        "--duration",
        "420",
        "-o",
        str(out),
        "--labels",
        str(labels),
    ]
    assert main(args) == 0
    expected = Workload(preset_config("demo", 2, duration_s=420))
    assert out.read_bytes() == b"".join(c.data for c in expected.chunks())
    assert read_labels(labels) == list(expected.labels)
    assert "services" in capsys.readouterr().err


def test_bad_override_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--services", "0", "-o", str(tmp_path / "x")]) == 2
    assert "services must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cli_offers_every_preset() -> None:
    assert tuple(sorted(PRESETS)) == PRESET_NAMES
    with pytest.raises(ValueError, match="unknown workload preset"):
        preset_config("huge")
