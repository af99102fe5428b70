"""The shared uvicorn wrapper: serves on loopback in the caller's loop, refuses what it cannot
serve with ServeError, stops when asked."""

from __future__ import annotations

import socket

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from router.http_server import HttpServer, ServeError

pytestmark = pytest.mark.anyio


async def _hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


APP = Starlette(routes=[Route("/", _hello)])


async def test_serves_on_a_free_port_until_stopped() -> None:
    server = HttpServer(APP, "127.0.0.1", 0, name="test app")
    assert not server.started
    assert not server.serving
    await server.start()
    try:
        assert server.serving
        assert server.port != 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(server.url + "/")
        assert (response.status_code, response.text) == (200, "hello")
        assert "date" in response.headers
    finally:
        await server.stop()
    assert not server.started
    assert not server.serving
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(timeout=5) as client:
            await client.get(server.url + "/")
    await server.stop()  # a second stop is a no-op
    port = server.port
    await server.start()  # a restart serves the same address
    try:
        assert server.port == port
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(server.url + "/")).text == "hello"
    finally:
        await server.stop()


async def test_a_taken_port_is_a_serve_error_naming_the_server_and_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = HttpServer(APP, "127.0.0.1", port, name="test app")
        with pytest.raises(ServeError, match=f"cannot serve test app on 127.0.0.1:{port}: .*in use"):
            await server.start()  # not the SystemExit uvicorn raises, which would end the host
        assert not server.started


async def test_starting_twice_is_refused() -> None:
    server = HttpServer(APP, "127.0.0.1", 0)
    await server.start()
    try:
        with pytest.raises(ServeError, match="already being served"):
            await server.start()
        assert server.serving
    finally:
        await server.stop()
