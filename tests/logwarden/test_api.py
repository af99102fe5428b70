"""HTTP layer behaviour with in-memory implementations of its protocols.

The end-to-end tests drive the same app over real components; these pin the HTTP contract
(status codes, bodies, limits, authentication) cheaply.
"""

import gzip
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import httpx
import pytest

from detector.models import Incident, IncidentStatus, Severity, Signal
from logwarden.api import (
    ApiConfig,
    ClosedIncident,
    IngestResult,
    MalformedBody,
    Overloaded,
    build_app,
)

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class LineCounter:
    """Accepts lines that parse as JSON objects, rejects the rest (reason 'malformed_json')."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.overloaded = False

    def _count(self, body: bytes) -> IngestResult:
        good = bad = 0
        for line in body.splitlines():
            try:
                ok = isinstance(json.loads(line), dict)
            except ValueError:
                ok = False
            good, bad = (good + 1, bad) if ok else (good, bad + 1)
        return IngestResult(good, bad, {"malformed_json": bad} if bad else {})

    async def ingest_lines(self, body: bytes) -> IngestResult:
        if self.overloaded:
            raise Overloaded("claim queue full", retry_after=2)
        self.bodies.append(body)
        return self._count(body)

    async def ingest_otlp(self, body: bytes, content_type: str) -> IngestResult:
        if body == b"garbage":
            raise MalformedBody("not an OTLP ExportLogsServiceRequest")
        self.bodies.append(body)
        return IngestResult(3, 1, {"missing_service": 1})


class Desk:
    def __init__(self) -> None:
        self.items = {
            1: Incident(
                1,
                "f" * 32,
                "shop",
                "checkout",
                Signal.ERROR_RATE,
                IncidentStatus.OPEN,
                Severity.CRITICAL,
                T0,
                T0,
                3,
                None,
                None,
            ),
        }

    async def list(
        self, status: IncidentStatus | None, project: str | None, service: str | None, limit: int
    ) -> Sequence[Incident]:
        return [i for i in self.items.values() if status in (None, i.status)][:limit]

    async def acknowledge(self, incident_id: int) -> Incident | None:
        return self._set(incident_id, IncidentStatus.ACKNOWLEDGED)

    async def resolve(self, incident_id: int) -> Incident | None:
        return self._set(incident_id, IncidentStatus.RESOLVED)

    def _set(self, incident_id: int, status: IncidentStatus) -> Incident | None:
        old = self.items.get(incident_id)
        if old is None:
            return None
        if old.status is IncidentStatus.RESOLVED:
            raise ClosedIncident(f"incident {incident_id} is already resolved")
        new = Incident(
            old.id,
            old.fingerprint,
            old.project,
            old.service,
            old.signal,
            status,
            old.severity,
            old.first_seen,
            old.last_seen,
            old.occurrences,
            old.resolved_at,
            old.latest,
        )
        self.items[incident_id] = new
        return new


async def ready() -> Mapping[str, bool]:
    return {"database": True, "router": False}


def client(ingestor: LineCounter, *, token: str | None = None, limit: int = 1 << 16) -> httpx.AsyncClient:
    rejected: list[tuple[str, int]] = []
    app = build_app(
        ingestor=ingestor,
        incidents=Desk(),
        readiness=ready,
        render_metrics=lambda: "lw_up 1\n",
        config=ApiConfig(max_body_bytes=limit, token=token),
        on_rejected_request=lambda e, s: rejected.append((e, s)),
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lw", timeout=5)


async def test_ingest_keeps_good_lines_and_reports_bad_ones() -> None:
    sink = LineCounter()
    async with client(sink) as c:
        r = await c.post("/ingest", content=b'{"a":1}\nnot json\n{"b":2}\n')
    assert r.status_code == 200
    assert r.json() == {"accepted": 2, "rejected": 1, "reasons": {"malformed_json": 1}, "samples": []}


async def test_ingest_all_bad_is_400_with_reasons() -> None:
    async with client(LineCounter()) as c:
        r = await c.post("/ingest", content=b"nope\n")
    assert r.status_code == 400
    assert r.json()["reasons"] == {"malformed_json": 1}


async def test_gzip_bodies_are_inflated_and_bombs_refused() -> None:
    sink = LineCounter()
    async with client(sink, limit=1000) as c:
        r = await c.post("/ingest", content=gzip.compress(b'{"a":1}\n'), headers={"content-encoding": "gzip"})
        assert r.status_code == 200
        assert sink.bodies[-1] == b'{"a":1}\n'
        bomb = gzip.compress(b"x" * 100_000)
        assert len(bomb) < 1000
        r = await c.post("/ingest", content=bomb, headers={"content-encoding": "gzip"})
        assert r.status_code == 413
        r = await c.post("/ingest", content=b"not gzip", headers={"content-encoding": "gzip"})
        assert r.status_code == 400
        assert "gzip" in r.json()["error"]
        r = await c.post("/ingest", content=b"{}", headers={"content-encoding": "br"})
        assert r.status_code == 400


async def test_oversized_body_is_413_and_service_keeps_serving() -> None:
    async with client(LineCounter(), limit=100) as c:
        r = await c.post("/ingest", content=b"x" * 101)
        assert r.status_code == 413
        r = await c.post("/ingest", content=b'{"ok":true}\n')
        assert r.status_code == 200


async def test_bearer_token_is_required_when_configured() -> None:
    async with client(LineCounter(), token="s3cret-token") as c:
        assert (await c.post("/ingest", content=b"{}\n")).status_code == 401
        wrong = {"authorization": "Bearer nope"}
        assert (await c.post("/v1/logs", content=b"", headers=wrong)).status_code == 401
        right = {"authorization": "Bearer s3cret-token"}
        assert (await c.post("/ingest", content=b"{}\n", headers=right)).status_code == 200
        assert (await c.get("/incidents")).status_code == 401
        assert (await c.get("/healthz")).status_code == 200


async def test_otlp_content_types_partial_success_and_malformed() -> None:
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

    async with client(LineCounter()) as c:
        r = await c.post("/v1/logs", content=b"x", headers={"content-type": "text/plain"})
        assert r.status_code == 415
        r = await c.post("/v1/logs", content=b"{}", headers={"content-type": "application/json"})
        assert r.status_code == 200
        assert r.json() == {
            "partialSuccess": {"rejectedLogRecords": "1", "errorMessage": "missing_service: 1"}
        }
        r = await c.post("/v1/logs", content=b"\x00", headers={"content-type": "application/x-protobuf"})
        reply = logs_service_pb2.ExportLogsServiceResponse.FromString(r.content)
        assert r.status_code == 200
        assert reply.partial_success.rejected_log_records == 1
        r = await c.post("/v1/logs", content=b"garbage", headers={"content-type": "application/x-protobuf"})
        assert r.status_code == 400


async def test_overload_is_503_with_retry_after() -> None:
    sink = LineCounter()
    sink.overloaded = True
    async with client(sink) as c:
        r = await c.post("/ingest", content=b"{}\n")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "2"


async def test_health_ready_metrics() -> None:
    async with client(LineCounter()) as c:
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        r = await c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"] == {"database": True, "router": False}
        r = await c.get("/metrics")
        assert r.text == "lw_up 1\n"
        assert r.headers["content-type"].startswith("text/plain")


async def test_incident_list_ack_resolve_and_errors() -> None:
    async with client(LineCounter()) as c:
        r = await c.get("/incidents", params={"status": "open"})
        assert [i["id"] for i in r.json()["incidents"]] == [1]
        assert r.json()["incidents"][0]["severity"] == "critical"
        assert (await c.get("/incidents", params={"status": "weird"})).status_code == 400
        assert (await c.get("/incidents", params={"limit": "0"})).status_code == 400
        assert (await c.post("/incidents/1/ack")).json()["status"] == "acknowledged"
        assert (await c.post("/incidents/1/resolve")).json()["status"] == "resolved"
        assert (await c.post("/incidents/1/ack")).status_code == 409
        assert (await c.post("/incidents/99/ack")).status_code == 404
        assert (await c.post("/incidents/abc/ack")).status_code == 400
