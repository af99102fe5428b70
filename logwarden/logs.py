"""Structured logging: JSON lines when stderr is not a terminal, readable lines when it is.

Secrets never reach a log line: a filter masks every configured secret value (API keys, database
passwords) and anything that looks like a credential in a URL or an ``Authorization`` header,
wherever it appears in the message or the extra fields.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

_URL_PASSWORD = re.compile(r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<post>@)")
_BEARER = re.compile(
    r"(?i)(?P<pre>(?:bearer|x-api-key[\"']?\s*[:=]\s*[\"']?)\s*)(?P<pw>[A-Za-z0-9._~+/=-]{6,})"
)
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}

MASK = "***"


class Redactor:
    """Masks known secret values and credential-looking substrings."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        text = _URL_PASSWORD.sub(lambda m: f"{m['pre']}{MASK}{m['post']}", text)
        return _BEARER.sub(lambda m: f"{m['pre']}{MASK}", text)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extras(record).items():
            entry[key] = value if isinstance(value, int | float | bool) or value is None else str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self._redact(json.dumps(entry, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = _extras(record)
        if extras:
            text += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return self._redact(text)


def configure(
    level: int | str = logging.INFO,
    *,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
    json_lines: bool | None = None,
) -> None:
    """Install one handler on the root logger (replacing earlier ones)."""
    out = stream if stream is not None else sys.stderr
    as_json = (not out.isatty()) if json_lines is None else json_lines
    redact = Redactor(secrets)
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter(redact) if as_json else TextFormatter(redact))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries that log request URLs or headers at INFO stay quiet unless we debug.
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "uvicorn.access", "mcp", "composio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
