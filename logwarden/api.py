"""The HTTP API (Starlette): ingest, health, metrics and incident operations.

Endpoints
- ``POST /v1/logs``   OTLP/HTTP logs, protobuf or JSON, optionally gzip: what an OpenTelemetry
  Collector or SDK exports with default settings. The response is an ExportLogsServiceResponse
  (partial success lists rejected records and why).
- ``POST /ingest``    JSON lines (optionally gzip).
- ``GET /healthz``    liveness; ``GET /readyz`` database and router reachable; ``GET /metrics``.
- ``GET /incidents``  (``status``, ``project``, ``service``, ``limit`` filters);
  ``POST /incidents/{id}/ack`` and ``/resolve``.

Errors are answered, never raised: 400 malformed (with reasons), 401 missing or wrong bearer
token, 404 unknown incident, 409 incident already resolved, 413 body too large (compressed or
decompressed), 415 unsupported content type, 503 overloaded (with Retry-After; clients retry).
"""

from __future__ import annotations

import hmac
import json
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from detector.models import Incident, IncidentStatus

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class Overloaded(Exception):
    """The pipeline is shedding load; the client should retry after ``retry_after`` seconds."""

    retryable = True

    def __init__(self, reason: str, retry_after: float = 1.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class MalformedBody(Exception):
    """The body as a whole cannot be decoded (not one record could be read). Permanent."""

    retryable = False


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    rejected: int
    reasons: Mapping[str, int] = field(default_factory=dict)
    samples: Sequence[str] = ()


class Ingestor(Protocol):
    async def ingest_lines(self, body: bytes) -> IngestResult: ...

    async def ingest_otlp(self, body: bytes, content_type: str) -> IngestResult: ...


class IncidentDesk(Protocol):
    """Operator-facing incident operations."""

    async def list(
        self, status: IncidentStatus | None, project: str | None, service: str | None, limit: int
    ) -> Sequence[Incident]: ...

    async def acknowledge(self, incident_id: int) -> Incident | None: ...

    async def resolve(self, incident_id: int) -> Incident | None: ...


class ClosedIncident(Exception):
    """Acknowledging or resolving an incident that is already resolved."""


@dataclass(frozen=True, slots=True)
class ApiConfig:
    max_body_bytes: int = 16 << 20
    """Largest accepted body, compressed and decompressed alike."""
    token: str | None = field(default=None, repr=False)
    """Bearer token required on ingest and incident endpoints (None: no authentication)."""


Readiness = Callable[[], Awaitable[Mapping[str, bool]]]


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise _TooLarge
    data = bytes(body)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding != "gzip":
        raise MalformedBody(f"unsupported content-encoding {encoding!r} (use gzip or none)")
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise MalformedBody(f"body is not valid gzip: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise _TooLarge
    return out


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _incident_json(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "fingerprint": incident.fingerprint,
        "project": incident.project,
        "service": incident.service,
        "signal": incident.signal.value,
        "status": incident.status.value,
        "severity": incident.severity.label,
        "first_seen": incident.first_seen.isoformat(),
        "last_seen": incident.last_seen.isoformat(),
        "occurrences": incident.occurrences,
        "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
        "latest": incident.latest.to_dict() if incident.latest else None,
    }


def _otlp_response(content_type: str, result: IngestResult) -> Response:
    message = ", ".join(f"{reason}: {n}" for reason, n in sorted(result.reasons.items()))
    if content_type == PROTOBUF:
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

        reply = logs_service_pb2.ExportLogsServiceResponse()
        if result.rejected:
            reply.partial_success.rejected_log_records = result.rejected
            reply.partial_success.error_message = message
        return Response(reply.SerializeToString(), media_type=PROTOBUF)
    body: dict[str, Any] = {}
    if result.rejected:
        body["partialSuccess"] = {"rejectedLogRecords": str(result.rejected), "errorMessage": message}
    return JSONResponse(body)


def build_app(
    *,
    ingestor: Ingestor,
    incidents: IncidentDesk,
    readiness: Readiness,
    render_metrics: Callable[[], str],
    config: ApiConfig,
    on_rejected_request: Callable[[str, int], None] = lambda _endpoint, _status: None,
) -> Starlette:
    """The Starlette application over the given pipeline parts."""

    def authorised(request: Request) -> bool:
        if config.token is None:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip(), config.token)

    def refuse(endpoint: str, response: Response) -> Response:
        on_rejected_request(endpoint, response.status_code)
        return response

    async def otlp_logs(request: Request) -> Response:
        if not authorised(request):
            return refuse("otlp", _error(401, "missing or wrong bearer token"))
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in (PROTOBUF, JSON):
            return refuse("otlp", _error(415, f"content-type must be {PROTOBUF} or {JSON}"))
        try:
            body = await _read_body(request, config.max_body_bytes)
            result = await ingestor.ingest_otlp(body, content_type)
        except _TooLarge:
            return refuse("otlp", _error(413, f"body larger than {config.max_body_bytes} bytes"))
        except MalformedBody as exc:
            return refuse("otlp", _error(400, str(exc)))
        except Overloaded as exc:
            return refuse("otlp", _overloaded(exc))
        if result.accepted == 0 and result.rejected > 0:
            return refuse("otlp", _error(400, "no valid log record", reasons=dict(result.reasons)))
        return _otlp_response(content_type, result)

    async def ingest_lines(request: Request) -> Response:
        if not authorised(request):
            return refuse("ingest", _error(401, "missing or wrong bearer token"))
        try:
            body = await _read_body(request, config.max_body_bytes)
            result = await ingestor.ingest_lines(body)
        except _TooLarge:
            return refuse("ingest", _error(413, f"body larger than {config.max_body_bytes} bytes"))
        except MalformedBody as exc:
            return refuse("ingest", _error(400, str(exc)))
        except Overloaded as exc:
            return refuse("ingest", _overloaded(exc))
        payload = {
            "accepted": result.accepted,
            "rejected": result.rejected,
            "reasons": dict(result.reasons),
            "samples": list(result.samples),
        }
        if result.accepted == 0 and result.rejected > 0:
            return refuse("ingest", JSONResponse({"error": "no valid line", **payload}, status_code=400))
        return JSONResponse(payload)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        checks = dict(await readiness())
        ok = all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    async def metrics(_request: Request) -> Response:
        return PlainTextResponse(render_metrics(), media_type="text/plain; version=0.0.4")

    async def list_incidents(request: Request) -> Response:
        if not authorised(request):
            return refuse("incidents", _error(401, "missing or wrong bearer token"))
        query = request.query_params
        status: IncidentStatus | None = None
        if query.get("status"):
            try:
                status = IncidentStatus(query["status"])
            except ValueError:
                allowed = ", ".join(s.value for s in IncidentStatus)
                return refuse("incidents", _error(400, f"status must be one of: {allowed}"))
        limit_text = query.get("limit", "100")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
            return refuse("incidents", _error(400, "limit must be an integer from 1 to 1000"))
        found = await incidents.list(status, query.get("project"), query.get("service"), int(limit_text))
        return JSONResponse({"incidents": [_incident_json(i) for i in found]})

    def incident_action(action: str) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            if not authorised(request):
                return refuse("incidents", _error(401, "missing or wrong bearer token"))
            raw = request.path_params["incident_id"]
            if not raw.isdigit():
                return refuse("incidents", _error(400, "incident id must be an integer"))
            try:
                act = incidents.acknowledge if action == "ack" else incidents.resolve
                incident = await act(int(raw))
            except ClosedIncident as exc:
                return refuse("incidents", _error(409, str(exc)))
            if incident is None:
                return refuse("incidents", _error(404, f"no incident {raw}"))
            return JSONResponse(_incident_json(incident))

        return handler

    routes = [
        Route("/v1/logs", otlp_logs, methods=["POST"]),
        Route("/ingest", ingest_lines, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/incidents", list_incidents, methods=["GET"]),
        Route("/incidents/{incident_id}/ack", incident_action("ack"), methods=["POST"]),
        Route("/incidents/{incident_id}/resolve", incident_action("resolve"), methods=["POST"]),
    ]
    return Starlette(routes=routes)


def _overloaded(exc: Overloaded) -> Response:
    seconds = max(1, round(exc.retry_after))
    return Response(
        json.dumps({"error": f"overloaded: {exc.reason}; retry later"}),
        status_code=503,
        media_type=JSON,
        headers={"Retry-After": str(seconds)},
    )
