"""``logwarden run``: the service (HTTP ingest, detection, incidents, notifications)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from logwarden.service import Service


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run the service: OTLP/HTTP and JSON-lines ingest, detection, incidents, notifications",
        description="Serves POST /v1/logs (OTLP/HTTP) and POST /ingest (JSON lines) on "
        "LOGWARDEN_HTTP_HOST:LOGWARDEN_HTTP_PORT, and reads JSON lines from files or standard input. "
        "Several processes may share one PostgreSQL: give each its own --processor-id.",
    )
    p.add_argument("files", nargs="*", type=Path, help="JSON-lines files to read")
    p.add_argument("--stdin", action="store_true", help="also read JSON lines from standard input")
    p.add_argument("-F", "--follow", action="store_true", help="follow the files like tail -F")
    p.add_argument("--no-http", action="store_true", help="do not serve HTTP")
    p.add_argument("--port", type=int, help="HTTP port (default LOGWARDEN_HTTP_PORT, 4318)")
    p.add_argument("--processor-id", help="this processor's id (default LOGWARDEN_PROCESSOR_ID or host name)")
    p.add_argument(
        "--exit-at-eof",
        action="store_true",
        help="when every input has ended: close all buckets, deliver due notifications, exit "
        "(the default when HTTP is off and inputs are not followed)",
    )
    p.add_argument(
        "--event-clock",
        action="store_true",
        help="close buckets on event time only, not the processor clock (for feeding old logs)",
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from logwarden import logs
    from logwarden.config import load_settings, secret_values

    settings = load_settings()
    overrides: dict[str, Any] = {}
    if args.port is not None:
        overrides["http_port"] = args.port
    if overrides:
        settings = settings.model_copy(update=overrides)
    logs.configure(
        settings.log_level.upper(),
        secrets=secret_values(settings),
        json_lines=None if settings.log_format == "auto" else settings.log_format == "json",
    )
    if args.follow and args.stdin and not args.files:
        print("logwarden: --follow needs files", file=sys.stderr)
        return 2
    return asyncio.run(_serve(settings, args))


async def _serve(settings: Any, args: argparse.Namespace) -> int:
    from logwarden.service import Service
    from router.http_server import ServeError

    serve_http = not args.no_http
    finite = bool(args.files or args.stdin) and not args.follow
    exit_at_eof = args.exit_at_eof or (finite and not serve_http)
    if not serve_http and not (args.files or args.stdin):
        print("logwarden: nothing to read: give files, --stdin, or leave HTTP on", file=sys.stderr)
        return 2

    try:
        async with Service.open(
            settings,
            processor_id=args.processor_id,
            serve_http=serve_http,
            advance_with_clock=not args.event_clock,
        ) as service:
            return await _work(service, args, exit_at_eof)
    except ServeError as exc:  # only the HTTP server's start raises it
        print(f"logwarden: {exc} (set LOGWARDEN_HTTP_PORT or --port)", file=sys.stderr)
        return 2


async def _work(service: Service, args: argparse.Namespace, exit_at_eof: bool) -> int:
    """Read the inputs into the running service until they end (and, if asked, until what they
    started is delivered) or it is told to stop."""
    from logwarden.sources import follow_file, prefetch, read_file, read_stream

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.stop.set)
    if service.http_url:
        print(f"logwarden: listening on {service.http_url} (POST /v1/logs, /ingest)", file=sys.stderr)

    async def pump(chunks: Any) -> None:
        async for chunk in prefetch(chunks):  # the next read overlaps this chunk's detection
            await service.pipeline.ingest_lines(chunk, wait=True)

    sources = [
        pump(follow_file(path, stop=service.stop) if args.follow else read_file(path)) for path in args.files
    ]
    if args.stdin:
        sources.append(pump(read_stream(sys.stdin.buffer)))
    readers: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*sources))
    stopped: asyncio.Future[Any] = asyncio.ensure_future(service.stop.wait())
    await asyncio.wait({readers, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if readers.done():
        if readers.exception() is not None:
            print(f"logwarden: input failed: {readers.exception()}", file=sys.stderr)
            service.stop.set()
            return 1
        if exit_at_eof and not service.stop.is_set():
            await service.drain()
            service.stop.set()
    await service.stop.wait()
    readers.cancel()
    stopped.cancel()
    return 0
