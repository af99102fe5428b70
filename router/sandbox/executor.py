"""Run one app tool call for one user: the checks, the injected failures, the app, the record.

In order: the tool exists and its toolkit is enabled in the session; the user has an active
connection for the toolkit (else a *connection-required* error carrying a connect link); the
arguments match the tool's JSON schema; an injected failure may strike; then the app handler
runs and the delivery is recorded in the same transaction. Calls stopped before the app (unknown
tool, no connection, bad arguments) execute nothing and record nothing.

Each call yields one entry of ``COMPOSIO_MULTI_EXECUTE_TOOL``'s ``data.results``: either
``{"index", "tool_slug", "response": {"successful", "data", "error"}}`` (the app answered, maybe
with an app-level error) or ``{"index", "tool_slug", "error", "error_code", "retryable", ...}``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from router.base import ConnectionState
from router.sandbox.app import AppResult, DbConn, Handler
from router.sandbox.catalog import Catalogue
from router.sandbox.failures import Failure, FailureInjector, FailureKind
from router.sandbox.jira_app import JIRA_HANDLERS
from router.sandbox.pagerduty_app import PAGERDUTY_HANDLERS
from router.sandbox.slack_app import SLACK_HANDLERS
from router.sandbox.spec import ToolSpec, schema_problem
from router.sandbox.store import DATABASE_ERRORS, ConnectionRecord, SandboxStore

log = logging.getLogger(__name__)

HANDLERS: Mapping[str, Handler] = {**SLACK_HANDLERS, **JIRA_HANDLERS, **PAGERDUTY_HANDLERS}
"""Tools with behaviour in the sandbox; the rest of the catalogue is search-and-schema only."""

_APP_FAILURES = (FailureKind.RATE_LIMITED, FailureKind.SERVER_ERROR, FailureKind.TIMEOUT)
_OUTCOMES = {
    FailureKind.RATE_LIMITED: "rate_limited",
    FailureKind.SERVER_ERROR: "upstream_error",
    FailureKind.TIMEOUT: "timeout",
}

ConnectionView = Callable[[ConnectionRecord], dict[str, Any]]
"""Renders a pending connection for the agent (status, connection id, redirect_url)."""


def error_entry(
    index: int, slug: str, code: str, message: str, *, retryable: bool, **extra: Any
) -> dict[str, Any]:
    """A results entry for a call that did not reach the app, or that the app failed to answer."""
    return {
        "index": index,
        "tool_slug": slug,
        "error": message,
        "error_code": code,
        "retryable": retryable,
        **extra,
    }


@dataclass(frozen=True, slots=True)
class _Call:
    """One call that passed the checks and is about to reach the app."""

    user_id: str
    spec: ToolSpec
    connection_id: str
    arguments: Mapping[str, Any]


class Executor:
    """Executes app tool calls for users (see the module docstring)."""

    __slots__ = ("_catalogue", "_connection_view", "_failures", "_handlers", "_link_ttl", "_sleep", "_store")

    def __init__(
        self,
        store: SandboxStore,
        catalogue: Catalogue,
        failures: FailureInjector,
        connection_view: ConnectionView,
        *,
        link_ttl: float,
        sleep: Callable[[float], Awaitable[None]],
        handlers: Mapping[str, Handler] = HANDLERS,
    ) -> None:
        self._store = store
        self._catalogue = catalogue
        self._failures = failures
        self._connection_view = connection_view
        self._link_ttl = link_ttl
        self._sleep = sleep
        self._handlers = handlers

    async def execute(
        self, user_id: str, toolkits: Collection[str], index: int, slug: str, arguments: Mapping[str, Any]
    ) -> dict[str, Any]:
        """One results entry for calling ``slug`` with ``arguments`` as ``user_id``."""
        spec = self._catalogue.get(slug)
        if spec is None:
            return error_entry(index, slug, "tool_not_found", f"Tool {slug} not found", retryable=False)
        if spec.toolkit not in toolkits:
            message = f"Toolkit {spec.toolkit} is not enabled in this session"
            return error_entry(index, spec.slug, "toolkit_not_enabled", message, retryable=False)
        connection = (await self._store.best_connections(user_id, [spec.toolkit])).get(spec.toolkit)
        if connection is None or connection.state is not ConnectionState.ACTIVE:
            pending = await self._store.start_connection(user_id, spec.toolkit, None, self._link_ttl)
            view = self._connection_view(pending)
            message = (
                f"No active connection for {spec.toolkit}. Ask the user to open {view['redirect_url']} "
                "to connect it, then call the tool again."
            )
            return error_entry(
                index, spec.slug, "connection_required", message, retryable=False, connection=view
            )
        problem = schema_problem(spec.input_schema, arguments)
        if problem is not None:
            message = f"Invalid arguments for {spec.slug}: {problem}"
            return error_entry(index, spec.slug, "invalid_arguments", message, retryable=False)
        handler = self._handlers.get(spec.slug)
        if handler is None:
            message = (
                f"{spec.slug} is in the sandbox catalogue for search and schemas only; it cannot run here"
            )
            return error_entry(index, spec.slug, "not_supported_in_sandbox", message, retryable=False)
        call = _Call(user_id, spec, connection.id, arguments)
        failure = self._failures.take(_APP_FAILURES, user_id, {spec.slug}, {spec.toolkit})
        try:
            if failure is not None:
                return await self._fail(index, call, failure)
            async with self._store.pool.acquire() as conn, conn.transaction():
                result: AppResult = await handler(conn, user_id, arguments)
                outcome = "ok" if result.successful else "failed"
                await self._record(conn, call, outcome, result.external_ref, result.error)
        except DATABASE_ERRORS as exc:
            log.warning("sandbox: %s failed on the database: %s", spec.slug, type(exc).__name__)
            message = f"The sandbox could not run {spec.slug} (database: {type(exc).__name__}); try again"
            return error_entry(index, spec.slug, "sandbox_unavailable", message, retryable=True)
        response = {"successful": result.successful, "data": dict(result.data), "error": result.error}
        return {"index": index, "tool_slug": spec.slug, "response": response}

    async def _record(
        self, conn: DbConn, call: _Call, outcome: str, external_ref: str | None, error: str | None
    ) -> None:
        await self._store.record_delivery(
            conn,
            user_id=call.user_id,
            tool_slug=call.spec.slug,
            toolkit=call.spec.toolkit,
            connection_id=call.connection_id,
            arguments=call.arguments,
            external_ref=external_ref,
            outcome=outcome,
            error=error,
        )

    async def _fail(self, index: int, call: _Call, failure: Failure) -> dict[str, Any]:
        toolkit = call.spec.toolkit
        extra: dict[str, Any] = {"status_code": failure.status}
        if failure.kind is FailureKind.RATE_LIMITED:
            message = f"{toolkit} rate limited (HTTP {failure.status}); retry after {failure.retry_after:g} s"
            extra["retry_after"] = failure.retry_after
        elif failure.kind is FailureKind.TIMEOUT:
            await self._sleep(failure.delay)
            message = f"{toolkit} did not answer within {failure.delay:g} s (HTTP {failure.status})"
        else:
            message = f"{toolkit} answered HTTP {failure.status} (server error)"
        outcome = _OUTCOMES[failure.kind]
        async with self._store.pool.acquire() as conn:
            await self._record(conn, call, outcome, None, message)
        return error_entry(index, call.spec.slug, outcome, message, retryable=True, **extra)
