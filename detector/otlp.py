"""OTLP/HTTP logs request bodies (protobuf and JSON) to a :class:`~detector.columns.Batch`.

Both encodings carry ``resourceLogs → scopeLogs → logRecords``. Per record: the service is the
``service.name`` resource attribute; the project is the ``logwarden.project`` resource attribute
(default ``"default"``); the event time is ``timeUnixNano``, else ``observedTimeUnixNano``; the
record is an error when ``severityNumber >= 17`` (ERROR and worse), its ``severityText`` is an
error level, or an ``http.response.status_code`` / ``http.status_code`` attribute is >= 500.
The message is the body's string value.

A body that cannot be decoded counts once as ``malformed_otlp`` (or ``non_utf8``); a bad record
inside a good body is counted under its own reason and the other records are kept.
"""

from __future__ import annotations

from typing import Any

import msgspec

from detector.columns import DEFAULT_PROJECT, ERROR_LEVELS, Batch, EventColumns
from detector.counters import Reason, Rejections

PROTOBUF_TYPES = frozenset({"application/x-protobuf", "application/protobuf"})
JSON_TYPES = frozenset({"application/json"})
SERVICE_ATTRIBUTE = "service.name"
PROJECT_ATTRIBUTE = "logwarden.project"
STATUS_ATTRIBUTES = ("http.response.status_code", "http.status_code")
SEVERITY_ERROR = 17
_NANOS = 1_000_000_000
_TS_ERROR = "ts-error"  # a marker value that the timestamp column rejects as bad


class OtlpDecoder:
    """Decodes OTLP/HTTP logs bodies; counts what it rejects."""

    def __init__(self, columns: EventColumns, rejections: Rejections) -> None:
        self.columns = columns
        self.rejections = rejections
        self.records_seen = 0

    def decode(self, body: bytes, content_type: str, request_label: str) -> Batch:
        media = content_type.split(";", 1)[0].strip().lower()
        rows = _Rows()
        if media in PROTOBUF_TYPES:
            self._protobuf(body, request_label, rows)
        elif media in JSON_TYPES:
            self._json(body, request_label, rows)
        else:
            self.rejections.add(Reason.UNSUPPORTED_CONTENT_TYPE, request_label, content_type)
            return Batch.empty()
        self.records_seen += rows.seen
        if not rows.ts:
            return Batch.empty()
        levels: list[str | None] = ["error" if e else "" for e in rows.errors]
        return self.columns.build(
            rows.ts, rows.services, rows.projects, levels, None, rows.messages.__getitem__, rows.where
        )

    # -- protobuf ---------------------------------------------------------------------------

    def _protobuf(self, body: bytes, label: str, rows: _Rows) -> None:
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

        try:
            request = ExportLogsServiceRequest.FromString(body)
        except (DecodeError, ValueError, RuntimeError) as exc:
            self.rejections.add(Reason.MALFORMED_OTLP, label, f"protobuf: {exc}")
            return
        for i, resource_logs in enumerate(request.resource_logs):
            attrs = {kv.key: kv.value for kv in resource_logs.resource.attributes}
            service = _pb_string(attrs.get(SERVICE_ATTRIBUTE))
            project = _pb_string(attrs.get(PROJECT_ATTRIBUTE)) or DEFAULT_PROJECT
            for j, scope_logs in enumerate(resource_logs.scope_logs):
                for k, record in enumerate(scope_logs.log_records):
                    where = f"{label} resourceLogs[{i}].scopeLogs[{j}].logRecords[{k}]"
                    rows.seen += 1
                    if not service:
                        self.rejections.add(Reason.MISSING_SERVICE, where, "no service.name")
                        continue
                    nanos = record.time_unix_nano or record.observed_time_unix_nano
                    if not nanos:
                        self.rejections.add(Reason.MISSING_TIMESTAMP, where, "no timeUnixNano")
                        continue
                    error = record.severity_number >= SEVERITY_ERROR or _is_error_text(record.severity_text)
                    if not error:
                        for kv in record.attributes:
                            if kv.key in STATUS_ATTRIBUTES and _is_5xx(_pb_scalar(kv.value)):
                                error = True
                    rows.add(where, nanos // _NANOS, service, project, error, _pb_body(record.body))

    # -- JSON -------------------------------------------------------------------------------

    def _json(self, body: bytes, label: str, rows: _Rows) -> None:
        try:
            doc = msgspec.json.decode(body)
        except UnicodeDecodeError:
            self.rejections.add(Reason.NON_UTF8, label, body)
            return
        except msgspec.DecodeError as exc:
            self.rejections.add(Reason.MALFORMED_OTLP, label, f"JSON: {exc}")
            return
        resource_logs = doc.get("resourceLogs") if isinstance(doc, dict) else None
        if not isinstance(resource_logs, list):
            self.rejections.add(Reason.MALFORMED_OTLP, label, "no resourceLogs array")
            return
        for i, rl in enumerate(resource_logs):
            scope_logs = rl.get("scopeLogs") if isinstance(rl, dict) else None
            resource = rl.get("resource", {}) if isinstance(rl, dict) else None
            attrs = _json_attributes(resource.get("attributes") if isinstance(resource, dict) else None)
            if not isinstance(scope_logs, list) or attrs is None:
                rows.seen += 1
                self.rejections.add(Reason.WRONG_TYPE, f"{label} resourceLogs[{i}]", rl)
                continue
            service = attrs.get(SERVICE_ATTRIBUTE)
            project = attrs.get(PROJECT_ATTRIBUTE) or DEFAULT_PROJECT
            for j, sl in enumerate(scope_logs):
                records = sl.get("logRecords") if isinstance(sl, dict) else None
                if not isinstance(records, list):
                    rows.seen += 1
                    self.rejections.add(Reason.WRONG_TYPE, f"{label} resourceLogs[{i}].scopeLogs[{j}]", sl)
                    continue
                for k, record in enumerate(records):
                    where = f"{label} resourceLogs[{i}].scopeLogs[{j}].logRecords[{k}]"
                    rows.seen += 1
                    self._json_record(record, where, service, project, rows)

    def _json_record(self, record: Any, where: str, service: Any, project: Any, rows: _Rows) -> None:
        if not isinstance(record, dict):
            self.rejections.add(Reason.WRONG_TYPE, where, record)
            return
        if not isinstance(service, str) or not service:
            self.rejections.add(Reason.MISSING_SERVICE, where, "no service.name")
            return
        if not isinstance(project, str):
            self.rejections.add(Reason.WRONG_TYPE, where, f"logwarden.project={project!r}")
            return
        nanos = _json_nanos(record.get("timeUnixNano"))
        if nanos == 0:
            nanos = _json_nanos(record.get("observedTimeUnixNano"))
        if nanos == 0:
            self.rejections.add(Reason.MISSING_TIMESTAMP, where, "no timeUnixNano")
            return
        seconds: Any = nanos // _NANOS if isinstance(nanos, int) else nanos
        severity = record.get("severityNumber", 0)
        text = record.get("severityText", "")
        body = record.get("body")
        attributes = _json_attributes(record.get("attributes"))
        if not isinstance(text, str) or attributes is None or not (body is None or isinstance(body, dict)):
            self.rejections.add(Reason.WRONG_TYPE, where, record)
            return
        number = _severity_number(severity)
        if number is None:
            self.rejections.add(Reason.WRONG_TYPE, where, f"severityNumber={severity!r}")
            return
        error = number >= SEVERITY_ERROR or _is_error_text(text)
        error = error or any(_is_5xx(attributes.get(key)) for key in STATUS_ATTRIBUTES)
        rows.add(where, seconds, service, project, error, _json_body(body))


class _Rows:
    """Columns being collected for :meth:`EventColumns.build`."""

    __slots__ = ("errors", "messages", "projects", "seen", "services", "ts", "where")

    def __init__(self) -> None:
        self.seen = 0
        self.where: list[str] = []
        self.ts: list[Any] = []
        self.services: list[str] = []
        self.projects: list[str] = []
        self.errors: list[bool] = []
        self.messages: list[str] = []

    def add(self, where: str, ts: Any, service: str, project: str, error: bool, message: str) -> None:
        self.where.append(where)
        self.ts.append(ts)
        self.services.append(service)
        self.projects.append(project)
        self.errors.append(error)
        self.messages.append(message)


def _is_error_text(text: str) -> bool:
    return bool(text) and text.strip().lower().rstrip("0123456789") in ERROR_LEVELS


def _is_5xx(value: Any) -> bool:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return type(value) is int and 500 <= value < 600


def _severity_number(value: Any) -> int | None:
    if type(value) is int:
        return value
    if isinstance(value, str):
        name = value.upper()
        if name.startswith(("SEVERITY_NUMBER_ERROR", "SEVERITY_NUMBER_FATAL")):
            return SEVERITY_ERROR
        return 0 if name.startswith("SEVERITY_NUMBER_") else None
    return None


def _json_nanos(value: Any) -> int | str:
    """Nanoseconds as an int; 0 when absent; the raw text when it is not a number (rejected later)."""
    if value is None:
        return 0
    if type(value) is int:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if type(value) is float:
        return int(value) if value == value and abs(value) < 1e30 else str(value)
    return value if isinstance(value, str) else _TS_ERROR


def _json_value(value: Any) -> Any:
    """The scalar inside an OTLP JSON AnyValue (strings, numbers, booleans), else None."""
    if not isinstance(value, dict):
        return None
    for key in ("stringValue", "intValue", "boolValue", "doubleValue"):
        if key in value:
            inner = value[key]
            if key == "intValue" and isinstance(inner, str) and inner.lstrip("-").isdigit():
                return int(inner)
            return inner
    return None


def _json_attributes(attributes: Any) -> dict[str, Any] | None:
    if attributes is None:
        return {}
    if not isinstance(attributes, list):
        return None
    out: dict[str, Any] = {}
    for kv in attributes:
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = _json_value(kv.get("value"))
    return out


def _json_body(body: Any) -> str:
    if body is None:
        return ""
    inner = _json_value(body)
    if isinstance(inner, str):
        return inner
    if inner is not None:
        return str(inner)
    return msgspec.json.encode(body).decode("utf-8", errors="replace")


def _pb_scalar(value: Any) -> Any:
    if value is None:
        return None
    kind = value.WhichOneof("value")
    return (
        getattr(value, kind) if kind in ("string_value", "int_value", "bool_value", "double_value") else None
    )


def _pb_string(value: Any) -> str:
    scalar = _pb_scalar(value)
    return scalar if isinstance(scalar, str) else ""


def _pb_body(body: Any) -> str:
    kind = body.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "string_value":
        return str(body.string_value)
    if kind in ("int_value", "bool_value", "double_value"):
        return str(getattr(body, kind))
    return f"<{kind}>"
