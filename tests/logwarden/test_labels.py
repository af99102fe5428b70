"""The labels file: round trip and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detector.models import Signal
from logwarden.labels import IncidentType, Label, LabelsFileError, parse_labels, read_labels, write_labels

LABELS = [
    Label("inc-0001", "shop", "cart-api", IncidentType.SPIKE, 12.5, 1000.0, 1060.0, Signal.ERROR_RATE, 2.25),
    Label("inc-0002", "default", "cron", IncidentType.NEW_SERVICE, 8.0, 2000.0, 2600.0, None, 0.1),
    Label("inc-0003", "data", "db", IncidentType.OUTAGE, 0.0, 3000.0, 3100.0, Signal.VOLUME_COLLAPSE, 40.0),
]


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    write_labels(LABELS, path)
    assert read_labels(path) == LABELS
    assert path.read_bytes().count(b"\n") == 3
    assert not LABELS[1].positive


def test_blank_lines_are_skipped() -> None:
    data = b"\n" + json.dumps(LABELS[1].to_dict()).encode() + b"\n  \n"
    assert parse_labels(data) == [LABELS[1]]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{not json", "labels line 2: "),
        (b"[1, 2]", "labels line 2: not a JSON object"),
        (b'{"project": "p"}', "labels line 2: missing field incident_id"),
        (b'{"incident_id":"i","project":"p","service":"s","type":"meteor","magnitude":1,"start":1,"end":2}',
         "labels line 2: 'meteor' is not a valid IncidentType"),
        (b'{"incident_id":"i","project":"p","service":"s","type":"spike","magnitude":"big","start":1,"end":2}',
         "labels line 2: magnitude must be a number"),
        (b'{"incident_id":"i","project":"p","service":"s","type":"spike","magnitude":1,"start":5,"end":2}',
         "labels line 2: end is before start"),
        (b'{"incident_id":"i","project":"","service":"s","type":"spike","magnitude":1,"start":1,"end":2}',
         "labels line 2: project must be a non-empty string"),
        (b'{"incident_id":"i","project":"p","service":"s","type":"spike","magnitude":1,"start":1,"end":2,'
         b'"signal":"smell"}', "labels line 2: 'smell' is not a valid Signal"),
        (b'{"incident_id":"i","project":"p","service":"s","type":"spike","magnitude":1e999,"start":1,"end":2}',
         "labels line 2: magnitude must be finite"),
    ],
)  # fmt: skip
def test_bad_lines_name_the_line_and_the_problem(line: bytes, message: str) -> None:
    good = b'{"incident_id":"i","project":"p","service":"s","type":"spike","magnitude":1,"start":1,"end":2}'
    with pytest.raises(LabelsFileError) as info:
        parse_labels(good + b"\n" + line + b"\n")
    assert str(info.value).startswith(message)
