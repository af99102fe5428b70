"""``logwarden demo``: the whole pipeline on a generated, labelled stream, with nothing configured."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on a generated stream (embedded PostgreSQL, sandbox router)",
        description="Generates a labelled stream of a dozen services with a few incidents, runs it "
        "through HTTP ingest, detection, claims, the outbox and real MCP calls to the sandbox tool "
        "router, and prints the incidents, the deliveries and how detection compared with the truth.",
    )
    p.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    p.add_argument(
        "--speed",
        type=float,
        default=50.0,
        help="how many times faster than real time to replay (default 50)",
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from logwarden import logs
    from logwarden.config import load_settings
    from logwarden.demo import print_report, run_demo

    settings = load_settings()
    logs.configure(logging.WARNING, json_lines=False)
    report = asyncio.run(run_demo(settings, seed=args.seed, speed=args.speed))
    print_report(report)
    return 0
