"""OTLP/HTTP logs: protobuf built with opentelemetry-proto, OTLP JSON, and every bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from detector import Detector
from detector.counters import Reason
from tests.detector.streams import T0

NS = 1_000_000_000


def request(
    resources: list[tuple[dict[str, Any], list[dict[str, Any]]]],
) -> ExportLogsServiceRequest:
    """resources: (resource attributes, log records as field dicts)."""
    req = ExportLogsServiceRequest()
    for attrs, records in resources:
        rl = req.resource_logs.add()
        for key, value in attrs.items():
            kv = rl.resource.attributes.add()
            kv.key = key
            if isinstance(value, int):
                kv.value.int_value = value
            else:
                kv.value.string_value = value
        sl = rl.scope_logs.add()
        for fields in records:
            rec = sl.log_records.add()
            for name, value in fields.items():
                if name == "body":
                    rec.body.string_value = value
                elif name == "attributes":
                    for key, val in value.items():
                        kv = rec.attributes.add()
                        kv.key = key
                        kv.value.int_value = val
                else:
                    setattr(rec, name, value)
    return req


SAMPLE = request(
    [
        (
            {"service.name": "checkout", "logwarden.project": "shop"},
            [
                {
                    "time_unix_nano": (T0 + 1) * NS + 5,
                    "severity_number": 17,
                    "body": "db timeout after 1503ms",
                },
                {"time_unix_nano": (T0 + 1) * NS, "severity_number": 9, "body": "ok"},
                {"observed_time_unix_nano": (T0 + 2) * NS, "severity_text": "FATAL", "body": "crash"},
                {
                    "time_unix_nano": (T0 + 2) * NS,
                    "severity_number": 9,
                    "attributes": {"http.response.status_code": 502},
                },
                {"time_unix_nano": (T0 + 2) * NS, "severity_text": "warn"},
            ],
        ),
        ({"service.name": "search"}, [{"time_unix_nano": (T0 + 3) * NS, "severity_number": 21}]),
    ]
)


def _batch(body: bytes, content_type: str) -> Any:
    det = Detector()
    return det._otlp.decode(body, content_type, "request 1"), det


@pytest.mark.parametrize(
    "content_type", ["application/x-protobuf", "application/protobuf", "Application/X-Protobuf; charset=x"]
)
def test_protobuf_records_become_events(content_type: str) -> None:
    batch, _ = _batch(SAMPLE.SerializeToString(), content_type)
    assert batch.services == ["checkout"] * 5 + ["search"]
    assert batch.projects == ["shop"] * 5 + ["default"]
    assert batch.seconds.tolist() == [T0 + 1, T0 + 1, T0 + 2, T0 + 2, T0 + 2, T0 + 3]
    assert batch.errors.tolist() == [True, False, True, True, False, True]
    assert batch.messages == ["db timeout after 1503ms", "crash", "", ""]


def test_otlp_json_matches_protobuf() -> None:
    body = json_format.MessageToJson(SAMPLE).encode()  # enum names, int64 as strings
    assert b"SEVERITY_NUMBER_ERROR" in body
    assert b'"timeUnixNano": "' in body
    from_json, _ = _batch(body, "application/json")
    from_proto, _ = _batch(SAMPLE.SerializeToString(), "application/x-protobuf")
    assert from_json.services == from_proto.services
    assert from_json.projects == from_proto.projects
    assert from_json.seconds.tolist() == from_proto.seconds.tolist()
    assert from_json.errors.tolist() == from_proto.errors.tolist()
    assert from_json.messages == from_proto.messages


def test_otlp_json_with_plain_numbers() -> None:
    doc = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "timeUnixNano": (T0 + 4) * NS,
                                "severityNumber": 18,
                                "body": {"stringValue": "x"},
                            },
                            {
                                "timeUnixNano": str((T0 + 4) * NS),
                                "severityNumber": 9,
                                "attributes": [{"key": "http.status_code", "value": {"intValue": "503"}}],
                            },
                        ]
                    }
                ],
            }
        ]
    }
    batch, _ = _batch(json.dumps(doc).encode(), "application/json")
    assert batch.seconds.tolist() == [T0 + 4, T0 + 4]
    assert batch.errors.tolist() == [True, True]


def test_feed_otlp_detects_a_burst() -> None:
    det = Detector()
    events = []
    for sec in range(200):
        records = [{"time_unix_nano": (T0 + sec) * NS, "severity_number": 9} for _ in range(20)]
        if sec >= 150:
            records += [
                {"time_unix_nano": (T0 + sec) * NS, "severity_number": 17, "body": f"timeout after {sec}ms"}
                for _ in range(10)
            ]
        body = request([({"service.name": "pay"}, records)]).SerializeToString()
        events += det.feed_otlp(body, "application/x-protobuf")
    events += det.flush()
    assert [e.kind.value for e in events][:1] == ["onset"]
    assert events[0].messages == ("timeout after <n>ms",)
    stats = det.stats()
    assert stats.otlp_requests == 200
    assert stats.otlp_records == 200 * 20 + 50 * 10


def _json_body(record: Any, resource: Any = None) -> bytes:
    resource = (
        resource
        if resource is not None
        else {"attributes": [{"key": "service.name", "value": {"stringValue": "a"}}]}
    )
    return json.dumps(
        {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": [record]}]}]}
    ).encode()


GOOD_RECORD = {"timeUnixNano": str(T0 * NS), "severityNumber": 9}

BAD_OTLP = [
    (Reason.MALFORMED_OTLP, b"\xff\xff\xff\xff", "application/x-protobuf"),
    (Reason.MALFORMED_OTLP, b'{"resourceLogs": [', "application/json"),
    (Reason.MALFORMED_OTLP, b'{"somethingElse": 1}', "application/json"),
    (Reason.MALFORMED_OTLP, b"NaN", "application/json"),
    (Reason.NON_UTF8, b'{"resourceLogs": ["\xff"]}', "application/json"),
    (Reason.UNSUPPORTED_CONTENT_TYPE, b"{}", "text/plain"),
    (Reason.MISSING_SERVICE, _json_body(GOOD_RECORD, {"attributes": []}), "application/json"),
    (
        Reason.MISSING_SERVICE,
        request([({}, [{"time_unix_nano": T0 * NS}])]).SerializeToString(),
        "application/x-protobuf",
    ),
    (Reason.MISSING_TIMESTAMP, _json_body({"severityNumber": 9}), "application/json"),
    (
        Reason.MISSING_TIMESTAMP,
        request([({"service.name": "a"}, [{"severity_number": 9}])]).SerializeToString(),
        "application/x-protobuf",
    ),
    (Reason.BAD_TIMESTAMP, _json_body({"timeUnixNano": "soon"}), "application/json"),
    (Reason.BAD_TIMESTAMP, _json_body({"timeUnixNano": {"x": 1}}), "application/json"),
    (Reason.ABSURD_TIMESTAMP, _json_body({"timeUnixNano": "5"}), "application/json"),
    (
        Reason.ABSURD_TIMESTAMP,
        request([({"service.name": "a"}, [{"time_unix_nano": 5 * NS}])]).SerializeToString(),
        "application/x-protobuf",
    ),
    (
        Reason.WRONG_TYPE,
        _json_body({"timeUnixNano": str(T0 * NS), "severityNumber": "loud"}),
        "application/json",
    ),
    (Reason.WRONG_TYPE, _json_body({"timeUnixNano": str(T0 * NS), "severityText": 3}), "application/json"),
    (Reason.WRONG_TYPE, _json_body("a record that is a string"), "application/json"),
    (Reason.WRONG_TYPE, json.dumps({"resourceLogs": [{"scopeLogs": "nope"}]}).encode(), "application/json"),
    (
        Reason.NAME_TOO_LONG,
        _json_body(
            GOOD_RECORD, {"attributes": [{"key": "service.name", "value": {"stringValue": "s" * 300}}]}
        ),
        "application/json",
    ),
]


@pytest.mark.parametrize(
    ("reason", "body", "content_type"),
    BAD_OTLP,
    ids=[f"{r.value}-{i}" for i, (r, _, _) in enumerate(BAD_OTLP)],
)
def test_each_bad_otlp_input_is_counted_and_never_raises(
    reason: Reason, body: bytes, content_type: str
) -> None:
    det = Detector()
    assert det.feed_otlp(body, content_type) == []
    stats = det.stats()
    assert stats.rejected == {reason.value: 1}
    assert stats.events_accepted == 0
    assert stats.rejected_samples[reason.value][0].startswith("request 1")


def test_a_bad_record_does_not_lose_its_neighbours() -> None:
    doc = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "a"}}]},
                "scopeLogs": [{"logRecords": [GOOD_RECORD, {"timeUnixNano": "soon"}, 7, GOOD_RECORD]}],
            }
        ]
    }
    det = Detector()
    det.feed_otlp(json.dumps(doc).encode(), "application/json")
    stats = det.stats()
    assert stats.events_accepted == 2
    assert stats.rejected == {"bad_timestamp": 1, "wrong_type": 1}
    assert stats.otlp_records == 4
