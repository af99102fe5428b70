"""The running service: every stage built from settings and wired together.

``Service.open(settings, ...)`` is an async context manager that starts, in order: the database
(migrated), the detector (restored from this processor's snapshot), the dedup/outbox layer, the
tool router (Composio, or the sandbox router served in-process), the notification worker, the
pipeline loops and the HTTP API. Leaving the context shuts down in reverse: stop accepting HTTP,
close due buckets and claim what they produced, snapshot the detector, let in-flight jobs finish
(or release their leases), close the pool. SIGTERM/SIGINT only set the stop event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg

from agents.policy import Policy
from agents.worker import Worker
from detector import snapshot
from detector.core import Detector
from detector.dedup import Dedup
from detector.incidents import Incidents
from detector.outbox import Outbox
from logwarden import db, migrator
from logwarden.agent_setup import load_agent_policy, model_router
from logwarden.api import ApiConfig, build_app
from logwarden.config import Settings
from logwarden.incident_desk import IncidentDeskAdapter
from logwarden.pipeline import Pipeline, PipelineConfig
from logwarden.settings_map import dedup_config, detector_config, handler_options
from logwarden.telemetry import Telemetry
from router.base import ToolRouter
from router.http_server import HttpServer

if TYPE_CHECKING:
    from router.sandbox import SandboxServer

log = logging.getLogger(__name__)


def default_processor_id() -> str:
    return socket.gethostname() or "logwarden"


@dataclass
class Service:
    """The parts of one running processor (see the module docstring)."""

    settings: Settings
    processor_id: str
    pool: asyncpg.Pool
    pipeline: Pipeline
    telemetry: Telemetry
    incidents: Incidents
    outbox: Outbox
    router: ToolRouter
    policy: Policy
    worker: Worker
    http: HttpServer | None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    sandbox: SandboxServer | None = None

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings,
        *,
        processor_id: str | None = None,
        serve_http: bool = True,
        run_worker: bool = True,
        sandbox_port: int | None = None,
        advance_with_clock: bool = True,
    ) -> AsyncIterator[Service]:
        pid = processor_id or settings.processor_id or default_processor_id()
        async with AsyncExitStack() as stack:
            database = db.resolve_database(settings)  # held for the service's life (embedded server)
            conn = await db.connect(database, settings)
            try:
                await migrator.migrate(conn)
            finally:
                await conn.close()
            pool = await db.create_pool(database, settings)
            stack.push_async_callback(pool.close)

            det_config = detector_config(settings)
            checkpoint = await snapshot.load_checkpoint(pool, pid, det_config)
            detector = Detector(det_config) if checkpoint is None else checkpoint.detector
            dedup_cfg = dedup_config(settings)
            dedup = Dedup(pool, dedup_cfg)
            incidents = Incidents(pool, dedup_cfg)
            outbox = Outbox(pool, pid, dedup_cfg)
            telemetry = Telemetry()
            pipeline = Pipeline(
                detector,
                dedup,
                pool,
                telemetry,
                PipelineConfig(
                    processor_id=pid,
                    max_backlog=settings.max_backlog,
                    snapshot_seconds=settings.snapshot_interval,
                    reclaim_seconds=settings.reclaim_interval,
                    advance_with_clock=advance_with_clock,
                ),
            )
            stack.callback(pipeline.close)
            if checkpoint is not None:
                pipeline.restore(checkpoint.unclaimed, checkpoint.ongoing)
            telemetry.bind_stats(pipeline.stats)

            router, sandbox = await _open_router(stack, settings, pool, sandbox_port)
            policy = load_agent_policy(settings)
            models = model_router(settings, pool) if settings.agent_fast_model else None
            worker = Worker(
                pool,
                outbox,
                router,
                policy,
                models,
                concurrency=settings.worker_concurrency,
                lease_for=settings.worker_lease_seconds,
                poll_interval=settings.worker_poll_interval,
                events=telemetry,
                options=handler_options(settings),
            )
            pipeline.job_listeners.append(worker.wake)

            service = cls(
                settings=settings,
                processor_id=pid,
                pool=pool,
                pipeline=pipeline,
                telemetry=telemetry,
                incidents=incidents,
                outbox=outbox,
                router=router,
                policy=policy,
                worker=worker,
                http=None,
                sandbox=sandbox,
            )
            if serve_http:
                app = build_app(
                    ingestor=pipeline,
                    incidents=IncidentDeskAdapter(incidents),
                    readiness=service.readiness,
                    render_metrics=telemetry.render,
                    config=ApiConfig(
                        max_body_bytes=settings.max_body_bytes,
                        token=settings.ingest_token.get_secret_value() if settings.ingest_token else None,
                    ),
                    on_rejected_request=telemetry.http_refused,
                )
                service.http = HttpServer(app, settings.http_host, settings.http_port, limit_concurrency=256)
            service._start(run_worker=run_worker)
            stack.push_async_callback(service._shutdown)
            if service.http is not None:
                await service.http.start()
            log.info(
                "logwarden processor started",
                extra={"processor_id": pid, "database": database.display, "http": service.http_url or "off"},
            )
            yield service

    @property
    def http_url(self) -> str | None:
        return self.http.url if self.http is not None else None

    def _start(self, *, run_worker: bool) -> None:
        loops = [
            self.pipeline.run_claimer(self.stop),
            self.pipeline.run_ticker(self.stop),
            self._refresh_metrics(),
        ]
        if run_worker:
            loops.append(self.worker.run(self.stop))
        self.tasks = [asyncio.create_task(loop) for loop in loops]

    async def _refresh_metrics(self) -> None:
        while not self.stop.is_set():
            await self.telemetry.refresh_from_db(self.pool)
            await self.pipeline.refresh_stats()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=5.0)

    async def readiness(self) -> Mapping[str, bool]:
        checks = {"database": False, "router": False}
        with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
            checks["database"] = await self.pool.fetchval("SELECT 1", timeout=2) == 1
        try:
            async with asyncio.timeout(3):
                await self.router.connections(self.policy.for_service("default", "*").owner)
            # the built-in router answers connections from its store; its MCP endpoint must be up too
            checks["router"] = self.sandbox is None or self.sandbox.serving
        except Exception:  # any failure means "not ready"; the reason is in the router's logs
            log.debug("router readiness check failed", exc_info=True)
        return checks

    async def drain(self, *, timeout: float = 60.0) -> None:
        """Close every bucket, claim everything, deliver every due job (end of finite input)."""
        await self.pipeline.flush()
        await self.pipeline.claim_pending()
        deadline = time.monotonic() + timeout
        waiting = 0
        while time.monotonic() < deadline:
            await self.worker.drain()
            waiting = await self.outbox.unfinished()
            if waiting == 0:
                return
            await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        # Not lost (the jobs stay in the outbox for the next processor), but say so.
        log.warning(
            "drain gave up with notification jobs unfinished",
            extra={"unfinished_jobs": waiting, "timeout_seconds": timeout},
        )

    async def _shutdown(self) -> None:
        self.stop.set()
        if self.http is not None:
            await self.http.stop()
        with contextlib.suppress(Exception):
            # Close the buckets: up to the processor clock, or (event-time mode, e.g. old logs)
            # all of them. Advancing an event-time detector to the wall clock would close
            # every empty bucket in between and announce every ongoing anomaly as recovered.
            if self.pipeline.config.advance_with_clock:
                await self.pipeline.advance()
            else:
                await self.pipeline.flush()
            await asyncio.wait_for(self.pipeline.claim_pending(), timeout=10)
        await self.pipeline.save_snapshot()
        await self.worker.shutdown(grace=10.0)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        log.info("logwarden processor stopped", extra={"processor_id": self.processor_id})


async def _open_router(
    stack: AsyncExitStack, settings: Settings, pool: asyncpg.Pool, sandbox_port: int | None
) -> tuple[ToolRouter, SandboxServer | None]:
    """Composio when configured; else the sandbox router served in this process (or, when its
    port is taken by another logwarden process on this machine, that one through the database)."""
    from logwarden.routers import open_router, router_kind

    if router_kind(settings) == "composio":
        return await stack.enter_async_context(open_router(settings, pool)), None
    from router.sandbox import SandboxServer
    from router.sandbox.errors import SandboxStartError

    port = settings.sandbox_port if sandbox_port is None else sandbox_port
    admin = settings.sandbox_admin_token.get_secret_value() if settings.sandbox_admin_token else None
    server = SandboxServer(pool, port=port, toolkits=settings.router_toolkits, admin_token=admin)
    try:
        await server.start()
    except SandboxStartError:
        log.info("sandbox router port %s in use: using the sandbox served there", port)
        return await stack.enter_async_context(open_router(settings, pool)), None
    stack.push_async_callback(server.stop)
    return server.router(), server
