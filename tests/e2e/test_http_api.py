"""The HTTP API over the real stack: bad requests get the documented 4xx and cost nothing else,
health and readiness, the metrics an operator graphs, and the incident endpoints."""

from __future__ import annotations

import gzip
import socket

import anyio
import httpx
import pytest
from pydantic import SecretStr

from logwarden.cli import build_parser
from logwarden.commands import run as run_command
from logwarden.config import Settings
from tests.e2e import streams, support
from tests.e2e.streams import BURST_SERVICE, QUIET_SERVICE

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

TOKEN = "e2e-ingest-token-1234"
AUTH = {"authorization": f"Bearer {TOKEN}"}
LIMIT = 256 * 1024


def api_settings(settings: Settings) -> Settings:
    return support.e2e_settings(settings, ingest_token=SecretStr(TOKEN), max_body_bytes=LIMIT)


async def test_bad_requests_get_4xx_and_the_service_keeps_serving(settings: Settings) -> None:
    good = streams.json_lines(streams.records([streams.Segment(QUIET_SERVICE, 0, 10)]))
    with anyio.fail_after(60):
        async with (
            support.running(api_settings(settings)) as service,
            httpx.AsyncClient(base_url=service.http_url or "", timeout=30) as client,
        ):
            # 401: no token, a wrong token, another scheme; on every protected endpoint.
            assert (await client.post("/ingest", content=good)).status_code == 401
            wrong = {"authorization": "Bearer not-the-token"}
            assert (await client.post("/ingest", content=good, headers=wrong)).status_code == 401
            basic = {"authorization": f"Basic {TOKEN}"}
            assert (await client.post("/v1/logs", content=b"", headers=basic)).status_code == 401
            assert (await client.get("/incidents")).status_code == 401
            refused = await client.post("/ingest", content=good, headers=wrong)
            assert TOKEN not in refused.text
            assert "not-the-token" not in refused.text

            # 400 with the reasons: nothing readable at all.
            garbage = b'{"ts": 1, "service":\nnot json\n[1, 2]\n{"ts": "2025-01-01T00:00:00Z"}\n'
            response = await client.post("/ingest", content=garbage, headers=AUTH)
            assert response.status_code == 400
            answer = response.json()
            assert answer["accepted"] == 0
            assert answer["rejected"] == 4
            assert answer["reasons"] == {"malformed_json": 2, "wrong_type": 1, "missing_service": 1}
            assert answer["samples"]

            # A partly bad body: the good lines are kept, the response says what was rejected.
            mixed = good[: good.index(b"\n") + 1] + b"not json\n" + good[good.index(b"\n") + 1 :]
            response = await client.post("/ingest", content=mixed, headers=AUTH)
            assert response.status_code == 200
            assert response.json()["accepted"] == good.count(b"\n")
            assert response.json()["reasons"] == {"malformed_json": 1}

            # Bodies that cannot be read at all.
            bad_gzip = {**AUTH, "content-encoding": "gzip"}
            response = await client.post("/ingest", content=b"\x1f\x8bnot gzip", headers=bad_gzip)
            assert response.status_code == 400
            assert "gzip" in response.json()["error"]
            brotli = {**AUTH, "content-encoding": "br"}
            assert (await client.post("/ingest", content=good, headers=brotli)).status_code == 400
            protobuf = {**AUTH, "content-type": "application/x-protobuf"}
            response = await client.post("/v1/logs", content=b"\xff\xff\xff\xff", headers=protobuf)
            assert response.status_code == 400
            text = {**AUTH, "content-type": "text/plain"}
            assert (await client.post("/v1/logs", content=b"{}", headers=text)).status_code == 415

            # 413: too large as sent, and too large once decompressed (a gzip bomb).
            big = b"x" * (LIMIT + 1)
            assert (await client.post("/ingest", content=big, headers=AUTH)).status_code == 413
            bomb = gzip.compress(good * (2 * LIMIT // len(good) + 1))
            assert len(bomb) < LIMIT
            response = await client.post("/ingest", content=bomb, headers=bad_gzip)
            assert response.status_code == 413

            # Still serving: a good request afterwards is accepted and counted.
            later = streams.json_lines(streams.records([streams.Segment(QUIET_SERVICE, 20, 30)]))
            response = await client.post("/ingest", content=gzip.compress(later), headers=bad_gzip)
            assert response.status_code == 200
            assert response.json()["accepted"] == later.count(b"\n")
            assert (await client.get("/healthz")).json() == {"status": "ok"}

            metrics = (await client.get("/metrics")).text
            lines = good.count(b"\n")
            assert support.metric(metrics, "logwarden_log_records_accepted_total") == 2 * lines
            assert (
                support.metric(metrics, "logwarden_log_records_rejected_total", reason="malformed_json") == 3
            )
            assert support.metric(metrics, "logwarden_log_records_rejected_total", reason="wrong_type") == 1
            rejected = "logwarden_http_requests_rejected_total"
            assert support.metric(metrics, rejected, endpoint="ingest", status="401") == 3
            assert support.metric(metrics, rejected, endpoint="otlp", status="401") == 1
            assert support.metric(metrics, rejected, endpoint="incidents", status="401") == 1
            assert support.metric(metrics, rejected, endpoint="ingest", status="413") == 2
            assert support.metric(metrics, rejected, endpoint="ingest", status="400") == 3
            assert support.metric(metrics, rejected, endpoint="otlp", status="415") == 1


async def test_health_metrics_and_incident_operations(settings: Settings) -> None:
    stream = streams.incident()
    with anyio.fail_after(60):
        async with (
            support.running(api_settings(settings)) as service,
            httpx.AsyncClient(base_url=service.http_url or "", headers=AUTH, timeout=30) as client,
        ):
            assert (await client.get("/healthz")).status_code == 200
            ready = await client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {"ready": True, "checks": {"database": True, "router": True}}

            for body in streams.split_lines(stream.until_burst_ends, 8):
                response = await client.post(
                    "/ingest", content=gzip.compress(body), headers={"content-encoding": "gzip"}
                )
                assert response.status_code == 200, response.text
            await service.drain()

            listed = (await client.get("/incidents")).json()["incidents"]
            assert [(i["service"], i["status"], i["severity"]) for i in listed] == [
                (BURST_SERVICE, "open", "critical")
            ]
            incident_id = listed[0]["id"]
            assert (await client.get("/incidents", params={"service": QUIET_SERVICE})).json() == {
                "incidents": []
            }
            assert (await client.get("/incidents", params={"status": "resolved"})).json() == {"incidents": []}
            assert (await client.get("/incidents", params={"status": "sleeping"})).status_code == 400
            assert (await client.get("/incidents", params={"limit": "0"})).status_code == 400

            acked = await client.post(f"/incidents/{incident_id}/ack")
            assert acked.status_code == 200
            assert acked.json()["status"] == "acknowledged"
            assert (await client.post("/incidents/999999/ack")).status_code == 404
            assert (await client.post("/incidents/abc/ack")).status_code == 400
            resolved = await client.post(f"/incidents/{incident_id}/resolve")
            assert resolved.status_code == 200
            assert resolved.json()["status"] == "resolved"
            assert (await client.post(f"/incidents/{incident_id}/resolve")).status_code == 409
            assert (await client.post(f"/incidents/{incident_id}/ack")).status_code == 409
            await service.drain()  # the operator's resolve closes the loop on both channels
            assert await support.deliveries(service.pool) == support.OPENED + support.RESOLVED

            await service.telemetry.refresh_from_db(service.pool)  # the service does this every 5 s
            metrics = (await client.get("/metrics")).text
            lines = stream.until_burst_ends.count(b"\n")
            assert support.metric(metrics, "logwarden_log_records_received_total") == lines
            assert support.metric(metrics, "logwarden_log_records_accepted_total") == lines
            assert support.metric(metrics, "logwarden_log_records_rejected_total") == 0
            assert (
                support.metric(
                    metrics,
                    "logwarden_anomalies_total",
                    signal="error_rate",
                    kind="onset",
                    severity="critical",
                )
                == 1
            )
            assert support.metric(metrics, "logwarden_claims_total", reason="new_incident") == 1
            assert support.metric(metrics, "logwarden_incidents", status="resolved") == 1
            assert support.metric(metrics, "logwarden_incidents", status="open") == 0
            assert support.metric(metrics, "logwarden_notification_jobs", status="done") == 2
            assert (
                support.metric(metrics, "logwarden_deliveries_total", channel="pagerduty", outcome="sent")
                == 2
            )
            assert support.metric(metrics, "logwarden_deliveries_total", channel="slack", outcome="sent") == 2
            assert (
                support.metric(metrics, "logwarden_jobs_finished_total", kind="open", outcome="complete") == 1
            )
            assert support.metric(metrics, "logwarden_anomaly_to_claim_seconds_count") == 1


async def test_a_taken_http_port_stops_start_up_naming_the_address(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """uvicorn exits the process when it cannot bind (a SystemExit out of the event loop); the
    service reports the address instead, and exits 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = build_parser().parse_args(["run"])
        with anyio.fail_after(60):
            code = await run_command._serve(
                support.e2e_settings(settings, http_host="127.0.0.1", http_port=port, sandbox_port=0), args
            )
    assert code == 2
    err = capsys.readouterr().err
    assert f"cannot serve HTTP on 127.0.0.1:{port}" in err
    assert "in use" in err
