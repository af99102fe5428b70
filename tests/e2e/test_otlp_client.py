"""A real OpenTelemetry client: the Python SDK's OTLP/HTTP log exporter (protobuf, optionally
gzip) exports an application's logs to a running logwarden, which opens and pages the incident."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from logwarden.config import Settings
from tests.e2e import streams, support
from tests.e2e.streams import BURST_SERVICE

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def export(endpoint: str, records: Sequence[streams.Record], compression: Compression) -> None:
    """What an instrumented application does: log through the SDK, flush at the end (blocking:
    the SDK's exporter is synchronous, so this runs in a worker thread)."""
    provider = LoggerProvider(resource=Resource.create({"service.name": BURST_SERVICE}))
    exporter = OTLPLogExporter(endpoint=endpoint, compression=compression, timeout=30)
    # A queue that holds every record: the SDK drops records when its queue is full, and this
    # test is about what logwarden does with what it is sent.
    processor = BatchLogRecordProcessor(exporter, max_queue_size=len(records) + 1, max_export_batch_size=2048)
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("shop.checkout")
    try:
        for r in records:
            logger.emit(
                LogRecord(
                    timestamp=r.ts_ns,
                    observed_timestamp=r.ts_ns,
                    severity_number=SeverityNumber.ERROR if r.error else SeverityNumber.INFO,
                    severity_text="ERROR" if r.error else "INFO",
                    body=r.message,
                    attributes={"http.route": "/api/checkout"},
                )
            )
        assert provider.force_flush(30_000)
    finally:
        provider.shutdown()


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
async def test_sdk_exporter_burst_opens_and_pages_the_incident(
    settings: Settings, compression: Compression
) -> None:
    stream = streams.incident(others=(), baseline_s=300)
    with anyio.fail_after(60):
        async with support.running(support.e2e_settings(settings)) as service:
            endpoint = f"{service.http_url}/v1/logs"
            await anyio.to_thread.run_sync(export, endpoint, stream.baseline + stream.burst, compression)
            await service.drain()

            stats = await service.pipeline.refresh_stats()
            assert stats.otlp_records == len(stream.baseline) + len(stream.burst)
            assert stats.events_accepted == stats.otlp_records
            [incident] = await support.incidents(service.pool)
            assert (incident["service"], incident["status"], incident["severity"]) == (
                BURST_SERVICE,
                "open",
                2,
            )
            assert await support.deliveries(service.pool) == support.OPENED
            assert await support.app_writes(service.pool) == support.OPENED_CALLS
