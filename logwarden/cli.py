"""The ``logwarden`` command line.

Each command lives in ``logwarden/commands/<name>.py`` and exposes ``register(subparsers)``;
command modules import heavy libraries inside their handlers so that ``logwarden --help`` and
light commands start fast. Exit codes: 0 success, 1 the command failed, 2 bad usage or config.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

COMMAND_MODULES = (
    "logwarden.commands.db",
    "logwarden.commands.agents",
    "logwarden.commands.sandbox_router",
    "logwarden.commands.connect",
    "logwarden.commands.connections",
    "logwarden.commands.generate",
    "logwarden.commands.score",
    "logwarden.commands.replay",
    "logwarden.commands.run",
    "logwarden.commands.demo",
    "logwarden.commands.config",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logwarden", description="Log-anomaly alert router.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(message)s")
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # logwarden.config (pydantic) is imported only by commands that need settings, so that
        # light commands start fast; a ConfigError can only come from a command that did.
        config = sys.modules.get("logwarden.config")
        if config is not None and isinstance(exc, config.ConfigError):
            print(f"logwarden: {exc}", file=sys.stderr)
            return 2
        raise
    return code
