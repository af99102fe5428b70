"""Composio SDK failures translated into the router error tree, with the API key kept out.

Every Composio failure is classified here, once (see ``router.base`` for the tree)::

    HTTP 401, 403                          RouterAuthError    permanent: fix the key or project
    MCP URL on another origin than the API RouterAuthError    permanent: the key would leave the API host
    HTTP 408, 409, 425, 429, 5xx           RouterUnavailable  retryable
    timeouts, connection failures          RouterUnavailable  retryable
    any other HTTP 4xx (400, 404, 422…)    RouterError        permanent: the request itself is wrong
    any other SDK error                    RouterError        permanent

Messages name the operation, the HTTP status, Composio's error slug and message (truncated, with
the API key redacted wherever it might appear) and the request id. The SDK exception is never
chained: it holds the HTTP request, whose headers carry the key.

``composio_client`` (≈6 s to import) is imported inside the functions: it is only ever needed
once an SDK call has run, and by then it is loaded.
"""

from __future__ import annotations

from router.base import RouterAuthError, RouterError, RouterUnavailable

_MAX_DETAIL = 240
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
_GONE_STATUS = frozenset({404, 410})


def redact(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``."""
    return text.replace(secret, "***") if secret else text


def error_class_for_status(status: int) -> type[RouterError]:
    """The router error an HTTP status means."""
    if status in (401, 403):
        return RouterAuthError
    if status in _RETRYABLE_STATUS or status >= 500:
        return RouterUnavailable
    return RouterError


def is_gone(exc: BaseException) -> bool:
    """True when the SDK says the addressed resource does not exist (HTTP 404 or 410)."""
    import composio_client

    return isinstance(exc, composio_client.APIStatusError) and exc.status_code in _GONE_STATUS


def _detail(text: str, secret: str) -> str:
    flat = " ".join(redact(text, secret).split())
    return flat if len(flat) <= _MAX_DETAIL else flat[: _MAX_DETAIL - 1] + "…"


def translate(exc: BaseException, operation: str, secret: str) -> RouterError | None:
    """The router error for an exception raised by a Composio SDK call, or None when it is not
    a Composio or HTTP failure (a bug of ours, which should propagate unchanged)."""
    import composio_client
    import httpx
    from composio.exceptions import ComposioError as SdkError
    from composio.exceptions import MCPDestinationError

    prefix = f"Composio {operation} failed"
    if isinstance(exc, composio_client.APIStatusError):
        details = exc.details or {}
        slug = details.get("slug")
        message = details.get("message") or exc.message
        parts = [f"{prefix}: HTTP {exc.status_code}"]
        if slug:
            parts.append(f"[{_detail(str(slug), secret)}]")
        if message:
            parts.append(_detail(str(message), secret))
        if exc.request_id:
            parts.append(f"(request id {_detail(exc.request_id, secret)})")
        if exc.status_code in (401, 403):
            parts.append("- check LOGWARDEN_COMPOSIO_API_KEY")
        return error_class_for_status(exc.status_code)(" ".join(parts))
    if isinstance(exc, composio_client.APITimeoutError | httpx.TimeoutException):
        return RouterUnavailable(f"{prefix}: request timed out")
    if isinstance(exc, composio_client.APIConnectionError | httpx.TransportError):
        return RouterUnavailable(f"{prefix}: cannot reach the Composio API ({type(exc).__name__})")
    if isinstance(exc, MCPDestinationError):
        return RouterAuthError(
            f"{prefix}: the session's MCP endpoint is not on the API origin, so the API key "
            f"will not be sent to it ({_detail(str(exc), secret)})"
        )
    if isinstance(exc, SdkError | composio_client.ComposioError):
        return RouterError(f"{prefix}: {type(exc).__name__}: {_detail(str(exc), secret)}")
    return None
