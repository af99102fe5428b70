"""Secrets out of what the agents record and log: tool arguments, errors, model output.

:func:`redact` walks any JSON-like value: a mapping key that names a credential (``token``,
``api_key``, ``password``, ``authorization``, ...) has its value replaced by ``***`` whatever it
is, and every string is passed through :func:`redact_text`, which masks credential-looking
substrings (``Bearer …``, ``x-api-key: …``, a password in a URL, Slack/OpenAI/Anthropic/GitHub
token shapes, the sandbox's user keys). Deliveries, decisions and log lines store only redacted
values; the tool call itself is sent unredacted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

_SECRET_KEY = re.compile(
    r"(?i)(^|[_\-.])(token|secret|password|passwd|pwd|api[_\-]?key|apikey|authorization|auth|"
    r"credentials?|cookie|private[_\-]?key|session[_\-]?key|x[_\-]api[_\-]key)($|[_\-.])"
)
_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?i)(?<=bearer )[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(r"(?i)(?<=x-api-key: )[^\s\"',]{6,}"),
    re.compile(r"(?i)(?<=x-api-key=)[^\s\"',&]{6,}"),
    re.compile(r"(?<=://)([^:/@\s]+):[^@\s]+(?=@)"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{8,}"),
    re.compile(r"\bsk-(?:ant-)?[A-Za-z0-9_-]{16,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"\blwsk_[A-Za-z0-9_-]{8,}"),
    re.compile(r"\bak_[A-Za-z0-9]{16,}"),
)


def is_secret_key(name: str) -> bool:
    """Whether a mapping key names a credential (its value is never recorded)."""
    return bool(_SECRET_KEY.search(name))


def redact_text(text: str) -> str:
    """``text`` with credential-looking substrings masked."""
    for pattern in _PATTERNS:
        if pattern.pattern.startswith("(?<=://)"):
            text = pattern.sub(lambda m: f"{m.group(1)}:{MASK}", text)
        else:
            text = pattern.sub(MASK, text)
    return text


def redact(value: Any) -> Any:
    """A copy of a JSON-like ``value`` with secrets masked (see the module docstring)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            str(k): (MASK if is_secret_key(str(k)) and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value
