"""The sandbox's HTTP surface (one Starlette app):

- ``/tool_router/{session_id}/mcp``: MCP over Streamable HTTP. The credential resolver decides
  the user first; no user → 401 and nothing runs. The MCP session is bound to that user, so a
  session opened with one user's credentials cannot be used with another's.
- ``GET /connect/{token}``: the connect link. Opening it connects the toolkit (``?outcome=deny``
  refuses, like declining an OAuth consent); redirects to the callback URL when one was given.
- ``/admin/...``: failure injection and credentials, only when an admin token is configured
  (``Authorization: Bearer <token>``); otherwise 404.
- ``GET /healthz``.

The app's lifespan runs the MCP session manager, so the app works under any ASGI server;
:meth:`SandboxApp.close_sessions` ends every MCP session early (a clean, quick shutdown).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import html
import json
import logging
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlencode, urlsplit, urlunsplit

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import DEFAULT_MAX_REQUEST_BODY_SIZE, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from router.sandbox.auth import CredentialRequest, CredentialResolver
from router.sandbox.catalog import Catalogue
from router.sandbox.errors import SandboxError
from router.sandbox.failures import FailureInjector, FailureKind, FailureSpec
from router.sandbox.mcp_server import CALLER_STATE_KEY, build_mcp_server
from router.sandbox.meta_schemas import MULTI_EXECUTE_TOOL
from router.sandbox.meta_tools import Caller, MetaTools
from router.sandbox.store import DATABASE_ERRORS, SandboxStore
from router.sandbox.tool_router import SandboxRouter

log = logging.getLogger(__name__)

_CHECK_ERRORS: tuple[type[BaseException], ...] = (*DATABASE_ERRORS, SandboxError)

LOOPBACK_SECURITY = TransportSecuritySettings(
    enable_dns_rebinding_protection=True,
    allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
    allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def call_targets(body: bytes, catalogue: Catalogue) -> tuple[set[str], set[str]] | None:
    """(tool slugs, toolkits) a JSON-RPC ``tools/call`` body would run, or None for other requests."""
    try:
        message = json.loads(body)
    except ValueError:
        return None
    messages = message if isinstance(message, list) else [message]
    slugs: set[str] = set()
    found = False
    for item in messages:
        if not isinstance(item, dict) or item.get("method") != "tools/call":
            continue
        found = True
        params = item.get("params") or {}
        name = str(params.get("name", ""))
        slugs.add(name)
        if name == MULTI_EXECUTE_TOOL:
            for tool in (params.get("arguments") or {}).get("tools") or []:
                if isinstance(tool, dict):
                    slugs.add(str(tool.get("tool_slug", "")).upper())
    if not found:
        return None
    toolkits = {spec.toolkit for spec in map(catalogue.get, slugs) if spec is not None}
    return slugs, toolkits


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    done = False

    async def replay() -> Message:
        nonlocal done
        if not done:
            done = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class _McpEndpoint:
    """ASGI endpoint for ``/tool_router/{session_id}/mcp``."""

    def __init__(self, owner: SandboxApp) -> None:
        self._owner = owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        owner = self._owner
        session_id = str(scope.get("path_params", {}).get("session_id", ""))
        try:
            user_id = await owner.resolver(CredentialRequest(session_id, Headers(scope=scope)))
        except _CHECK_ERRORS as exc:
            log.warning("sandbox: credential check failed: %s", type(exc).__name__)
            await _error(503, "unavailable", "credentials cannot be checked right now")(scope, receive, send)
            return
        if user_id is None:
            response = _error(401, "unauthorized", "missing or invalid x-api-key for this session")
            await response(scope, receive, send)
            return
        manager = owner.manager
        if manager is None:
            await _error(503, "unavailable", "the sandbox is not running")(scope, receive, send)
            return
        # Binds the MCP session to this user (the session manager compares it on every request).
        token = AccessToken(token="sandbox-session", client_id=user_id, scopes=[])  # noqa: S106 - a label
        scope["user"] = AuthenticatedUser(token)
        scope.setdefault("state", {})[CALLER_STATE_KEY] = Caller(user_id, session_id)
        if scope["method"] == "POST" and owner.failures.has(FailureKind.HTTP_ERROR):
            body = await _read_body(receive, DEFAULT_MAX_REQUEST_BODY_SIZE)
            if body is None:
                await _error(413, "too_large", "request body too large")(scope, receive, send)
                return
            targets = call_targets(body, owner.catalogue)
            if targets is not None:
                failure = owner.failures.take([FailureKind.HTTP_ERROR], user_id, *targets)
                if failure is not None:
                    message = f"injected HTTP {failure.status}"
                    await _error(failure.status, "injected_http_error", message)(scope, receive, send)
                    return
            receive = _replay(body, receive)
        await manager.handle_request(scope, receive, send)


class SandboxApp:
    """The Starlette app and the MCP session manager behind it."""

    def __init__(
        self,
        *,
        store: SandboxStore,
        meta: MetaTools,
        catalogue: Catalogue,
        resolver: CredentialResolver,
        failures: FailureInjector,
        router: Callable[[], SandboxRouter],
        admin_token: str | None,
        security: TransportSecuritySettings = LOOPBACK_SECURITY,
    ) -> None:
        self.store = store
        self.catalogue = catalogue
        self.resolver = resolver
        self.failures = failures
        self._router = router
        self._admin_token = admin_token
        self._mcp = build_mcp_server(meta)
        self._security = security
        self.manager: StreamableHTTPSessionManager | None = None
        self._close: anyio.Event | None = None
        routes = [
            Route("/tool_router/{session_id}/mcp", _McpEndpoint(self), methods=["GET", "POST", "DELETE"]),
            Route("/connect/{token}", self._connect, methods=["GET"]),
            Route("/admin/failures", self._admin_failures, methods=["GET", "POST", "DELETE"]),
            Route("/admin/users/{user_id}", self._admin_user, methods=["POST"]),
            Route("/admin/users/{user_id}/connect/{toolkit}", self._admin_connect, methods=["POST"]),
            Route("/healthz", self._health, methods=["GET"]),
        ]
        self.asgi = Starlette(routes=routes, lifespan=self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        manager = StreamableHTTPSessionManager(app=self._mcp, security_settings=self._security)
        close = self._close = anyio.Event()
        started = anyio.Event()

        async def run_manager() -> None:
            async with manager.run():
                self.manager = manager
                started.set()
                await close.wait()
            self.manager = None

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_manager)
            await started.wait()
            try:
                yield
            finally:
                close.set()

    def close_sessions(self) -> None:
        """End every MCP session now (open streams close, so the server can stop quickly)."""
        if self._close is not None:
            self._close.set()

    async def _health(self, _request: Request) -> Response:
        return JSONResponse({"ok": True, "mcp": self.manager is not None})

    async def _connect(self, request: Request) -> Response:
        approve = request.query_params.get("outcome", "approve") != "deny"
        record = await self.store.open_link(request.path_params["token"], approve=approve)
        if record is None:
            return HTMLResponse("<h1>Unknown or invalid connect link</h1>", status_code=404)
        state = record.state.value
        if record.callback_url:
            parts = urlsplit(record.callback_url)
            extra = urlencode(
                {
                    "status": "success" if state == "active" else state,
                    "connected_account_id": record.id,
                    "toolkit": record.toolkit,
                }
            )
            query = f"{parts.query}&{extra}" if parts.query else extra
            return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=303)
        toolkit = html.escape(record.toolkit)
        body = f"<h1>{toolkit}: {html.escape(state)}</h1><p>Connection {html.escape(record.id)}.</p>"
        return HTMLResponse(
            body, status_code=200 if state == "active" else 410 if state == "expired" else 200
        )

    def _admin_denied(self, request: Request) -> Response | None:
        if self._admin_token is None:
            return _error(404, "not_found", "admin endpoints are disabled (no admin token configured)")
        given = request.headers.get("authorization", "")
        expected = f"Bearer {self._admin_token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return _error(401, "unauthorized", "missing or invalid admin token")
        return None

    async def _admin_failures(self, request: Request) -> Response:
        denied = self._admin_denied(request)
        if denied is not None:
            return denied
        if request.method == "DELETE":
            self.failures.clear()
            return Response(status_code=204)
        if request.method == "POST":
            try:
                spec = FailureSpec.model_validate_json(await request.body())
            except ValidationError as exc:
                return JSONResponse(
                    {"error": {"code": "invalid", "details": exc.errors(include_url=False)}}, 422
                )
            return JSONResponse({"id": self.failures.inject(spec.to_failure())}, status_code=201)
        pending = [
            {"id": p.id, "remaining": p.remaining, **dataclasses.asdict(p.failure)}
            for p in self.failures.pending()
        ]
        return JSONResponse({"failures": pending})

    async def _admin_user(self, request: Request) -> Response:
        denied = self._admin_denied(request)
        if denied is not None:
            return denied
        try:
            endpoint = await self._router().session(request.path_params["user_id"])
        except SandboxError as exc:
            return _error(400, "invalid", str(exc))
        return JSONResponse(
            {"url": endpoint.url, "headers": dict(endpoint.headers), "session_id": endpoint.session_id}
        )

    async def _admin_connect(self, request: Request) -> Response:
        denied = self._admin_denied(request)
        if denied is not None:
            return denied
        try:
            link = await self._router().connect(
                request.path_params["user_id"], request.path_params["toolkit"]
            )
        except SandboxError as exc:
            return _error(400, "invalid", str(exc))
        return JSONResponse({"url": link.url, "connection_id": link.connection_id, "toolkit": link.toolkit})
