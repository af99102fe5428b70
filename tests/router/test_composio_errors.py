"""Failure classification (permanent vs retryable), timeouts, telemetry, and the API key kept
out of every error, repr and log record."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import httpx
import pytest
import respx

from router.base import McpEndpoint, RouterAuthError, RouterError, RouterUnavailable
from router.composio import ComposioRouter, ComposioRouterConfig, build_client
from router.composio_errors import error_class_for_status, redact
from tests.router import composio_fixtures as fx

pytestmark = pytest.mark.anyio

Make = Callable[..., ComposioRouter]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, RouterError),
        (401, RouterAuthError),
        (403, RouterAuthError),
        (404, RouterError),
        (408, RouterUnavailable),
        (409, RouterUnavailable),
        (422, RouterError),
        (429, RouterUnavailable),
        (500, RouterUnavailable),
        (502, RouterUnavailable),
        (503, RouterUnavailable),
        (504, RouterUnavailable),
    ],
)
def test_http_status_classification(status: int, expected: type[RouterError]) -> None:
    assert error_class_for_status(status) is expected


def test_redact_replaces_every_occurrence() -> None:
    assert redact(f"a {fx.KEY} b {fx.KEY}", fx.KEY) == "a *** b ***"
    assert redact("nothing here", "") == "nothing here"


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_key_is_a_permanent_auth_error(
    api: respx.MockRouter, make_router: Make, status: int
) -> None:
    # A server that echoes the key back must not get it into our message.
    api.post(fx.SESSIONS).respond(
        status, json=fx.error_body(status, f"Invalid API key {fx.KEY}", slug="Auth_InvalidApiKey")
    )

    with pytest.raises(RouterAuthError) as info:
        await make_router().session(fx.USER)

    error = info.value
    assert not error.retryable
    assert f"Composio session creation failed: HTTP {status} [Auth_InvalidApiKey]" in str(error)
    assert "Invalid API key ***" in str(error)
    assert "request id req_123" in str(error)
    assert "LOGWARDEN_COMPOSIO_API_KEY" in str(error)
    assert fx.KEY not in str(error)
    assert fx.KEY not in repr(error)
    assert error.__cause__ is None
    assert error.__context__ is None


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_server_trouble_is_retryable(api: respx.MockRouter, make_router: Make, status: int) -> None:
    api.get(fx.ACCOUNTS).respond(status, json=fx.error_body(status, "try later"))

    with pytest.raises(RouterUnavailable, match=f"HTTP {status}") as info:
        await make_router().connections(fx.USER)
    assert info.value.retryable


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (httpx.ReadTimeout("read timed out"), "request timed out"),
        (httpx.ConnectTimeout("connect timed out"), "request timed out"),
        (httpx.ConnectError("connection refused"), "cannot reach the Composio API"),
    ],
)
async def test_timeouts_and_connection_failures_are_retryable(
    api: respx.MockRouter, make_router: Make, failure: Exception, message: str
) -> None:
    api.post(fx.SESSIONS).mock(side_effect=failure)

    with pytest.raises(RouterUnavailable, match=message) as info:
        await make_router().session(fx.USER)
    assert info.value.retryable


async def test_a_bad_request_is_permanent_but_not_an_auth_error(
    api: respx.MockRouter, make_router: Make
) -> None:
    api.post(fx.SESSIONS).respond(400, json=fx.error_body(400, "toolkit 'slack' unknown", slug="BadRequest"))

    with pytest.raises(RouterError) as info:
        await make_router().session(fx.USER)
    assert type(info.value) is RouterError
    assert not info.value.retryable
    assert "HTTP 400 [BadRequest] toolkit 'slack' unknown" in str(info.value)


async def test_mcp_endpoint_on_another_origin_is_refused(api: respx.MockRouter, make_router: Make) -> None:
    api.post(fx.SESSIONS).respond(201, json=fx.session_body("trs_1", origin="https://elsewhere.test"))

    with pytest.raises(RouterAuthError, match="not on the API origin"):
        await make_router().session(fx.USER)


async def test_every_request_carries_the_configured_timeout(api: respx.MockRouter, make_router: Make) -> None:
    route = api.get(fx.ACCOUNTS).respond(200, json=fx.account_page([]))

    await make_router(timeout=7.5).connections(fx.USER)

    assert route.calls.last.request.extensions["timeout"] == {
        "connect": 7.5,
        "read": 7.5,
        "write": 7.5,
        "pool": 7.5,
    }


async def test_reads_are_retried_as_configured(
    api: respx.MockRouter, make_router: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    import composio_client._base_client

    monkeypatch.setattr(composio_client._base_client, "_sleep", lambda seconds: None)
    route = api.get(fx.ACCOUNTS).mock(
        side_effect=[
            httpx.Response(503, json=fx.error_body(503, "busy")),
            httpx.Response(502, json=fx.error_body(502, "busy")),
            httpx.Response(200, json=fx.account_page([fx.account("ca_1", "slack")])),
        ]
    )

    connections = await make_router(max_retries=2).connections(fx.USER)

    assert route.call_count == 3
    assert connections["slack"].account_id == "ca_1"


async def test_no_telemetry_is_sent(
    api: respx.MockRouter, make_router: Make, monkeypatch: pytest.MonkeyPatch, composio_sdk: ModuleType
) -> None:
    import composio.core.models.base as sdk_base

    events: list[Any] = []
    monkeypatch.setattr(sdk_base, "push_event", lambda event: events.append(event))
    api.post(fx.SESSIONS).respond(201, json=fx.session_body("trs_1"))
    api.get(f"{fx.SESSIONS}/trs_1").respond(200, json=fx.session_body("trs_1"))
    api.post(f"{fx.SESSIONS}/trs_1/link").respond(201, json=fx.link_body("ca_1"))
    router = make_router()

    await router.session(fx.USER)
    await router.connect(fx.USER, "slack")  # traced SDK methods: sessions.use, session.authorize
    assert events == []

    # The check can fail: the same traced call from a thread whose context never turned
    # tracking off (the SDK's switch is a context variable) does emit an event.
    client = build_client(ComposioRouterConfig(api_key=fx.KEY, base_url=fx.API, max_retries=0))
    thread = threading.Thread(target=lambda: client.use("trs_1", mcp=True))
    thread.start()
    thread.join(10)
    assert len(events) == 1


async def test_the_key_never_reaches_logs_errors_or_reprs(
    api: respx.MockRouter, make_router: Make, caplog: pytest.LogCaptureFixture, clock: Any
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, SDK and HTTP client included
    api.post(fx.SESSIONS).mock(
        side_effect=[
            httpx.Response(401, json=fx.error_body(401, f"bad key {fx.KEY}")),
            httpx.Response(201, json=fx.session_body("trs_1")),
            httpx.ReadTimeout("slow"),
        ]
    )
    api.get(f"{fx.SESSIONS}/trs_1").respond(404, json=fx.error_body(404, "gone"))
    api.get(fx.ACCOUNTS).respond(503, json=fx.error_body(503, f"upstream said {fx.KEY}"))
    api.get(f"{fx.ACCOUNTS}/ca_1").respond(200, json=fx.account("ca_1", "slack", "FAILED"))
    router = make_router()
    errors: list[BaseException] = []

    async def attempt(call: Callable[[], Any]) -> Any:
        try:
            return await call()
        except (RouterError, ValueError) as exc:
            errors.append(exc)
            return None

    await attempt(lambda: router.session(fx.USER))  # 401
    endpoint = await attempt(lambda: router.session(fx.USER))  # created
    await attempt(lambda: router.connect(fx.USER, "slack"))  # stored one is gone (404): recreate → timeout
    await attempt(lambda: router.connections(fx.USER))  # 503
    await attempt(lambda: router.wait_connected(fx.USER, "ca_1", 10))  # FAILED

    assert len(errors) == 4
    assert isinstance(endpoint, McpEndpoint)
    assert endpoint.headers["x-api-key"] == fx.KEY
    shown = [str(e) for e in errors] + [repr(e) for e in errors]
    shown += [repr(endpoint), repr(router), repr(router._config)]
    shown += [record.getMessage() for record in caplog.records]
    shown += [record.exc_text or "" for record in caplog.records]
    assert caplog.records, "the scenario logs something, so the check below means something"
    assert not [text for text in shown if fx.KEY in text]


async def test_aclose_closes_the_http_connections(api: respx.MockRouter, make_router: Make) -> None:
    api.get(fx.ACCOUNTS).respond(200, json=fx.account_page([]))
    router = make_router()
    await router.connections(fx.USER)
    client = router._client
    assert client is not None

    await router.aclose()
    await router.connections(fx.USER)  # a new client

    assert client.client.is_closed()
    assert router._client is not client
