"""Tool-router settings and the factory that picks Composio or the sandbox from them."""

from __future__ import annotations

import asyncpg
import pytest
from pydantic import SecretStr

from logwarden.config import ConfigError, Settings, load_settings
from logwarden.routers import composio_config, open_router, router_kind, sandbox_origin
from router.base import ToolRouter
from router.composio import ComposioRouter
from router.sandbox import SandboxRouter


def test_defaults_choose_the_sandbox_and_the_three_toolkits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOGWARDEN_COMPOSIO_API_KEY", raising=False)
    s = load_settings()
    assert router_kind(s) == "sandbox"
    assert s.router_toolkits == ("slack", "jira", "pagerduty")
    assert s.composio_base_url == "https://backend.composio.dev"
    assert s.composio_timeout == 15.0
    assert s.composio_auth_configs == {}


def test_a_composio_key_chooses_composio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGWARDEN_COMPOSIO_API_KEY", "ak_live_123")
    monkeypatch.setenv("LOGWARDEN_ROUTER_TOOLKITS", " Slack ,pagerduty,slack")
    monkeypatch.setenv("LOGWARDEN_COMPOSIO_AUTH_CONFIGS", "slack=ac_s, pagerduty = ac_p")
    monkeypatch.setenv("LOGWARDEN_CONNECT_CALLBACK_URL", "https://ops.example/done")
    monkeypatch.setenv("LOGWARDEN_COMPOSIO_TIMEOUT", "7.5")
    s = load_settings()

    config = composio_config(s)

    assert router_kind(s) == "composio"
    assert config.api_key == "ak_live_123"
    assert config.toolkits == ("slack", "pagerduty")
    assert dict(config.auth_configs) == {"slack": "ac_s", "pagerduty": "ac_p"}
    assert config.callback_url == "https://ops.example/done"
    assert config.timeout == 7.5
    assert "ak_live_123" not in repr(s)
    assert "ak_live_123" not in repr(config)


def test_a_blank_key_means_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGWARDEN_COMPOSIO_API_KEY", "  ")
    assert router_kind(load_settings()) == "sandbox"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "LOGWARDEN_COMPOSIO_BASE_URL",
            "http://composio.example",
            "http:// is allowed only for a loopback host",
        ),
        ("LOGWARDEN_COMPOSIO_BASE_URL", "backend.composio.dev", "must be an https:// URL"),
        ("LOGWARDEN_COMPOSIO_TIMEOUT", "0", "LOGWARDEN_COMPOSIO_TIMEOUT: Input should be greater than 0"),
        ("LOGWARDEN_ROUTER_TOOLKITS", " , ", "must name at least one toolkit"),
        ("LOGWARDEN_ROUTER_TOOLKITS", "slack,jira!", "'jira!' is not a toolkit slug"),
        ("LOGWARDEN_COMPOSIO_AUTH_CONFIGS", "slack", "'slack' is not toolkit=auth_config_id"),
        ("LOGWARDEN_COMPOSIO_AUTH_CONFIGS", "github=ac_1", "github not in LOGWARDEN_ROUTER_TOOLKITS"),
        ("LOGWARDEN_CONNECT_CALLBACK_URL", "ftp://x", "must be an http:// or https:// URL"),
        (
            "LOGWARDEN_CONNECT_POLL_INTERVAL",
            "-1",
            "LOGWARDEN_CONNECT_POLL_INTERVAL: Input should be greater than 0",
        ),
    ],
)
def test_bad_router_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable) as info:
        load_settings()
    assert expected in str(info.value)


def test_loopback_http_origin_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGWARDEN_COMPOSIO_BASE_URL", "http://127.0.0.1:9900/")
    assert load_settings().composio_base_url == "http://127.0.0.1:9900"


def test_the_key_is_never_shown_in_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGWARDEN_COMPOSIO_API_KEY", "ak_live_secret")
    monkeypatch.setenv("LOGWARDEN_COMPOSIO_TIMEOUT", "soon")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "ak_live_secret" not in str(info.value)


def test_sandbox_origin_needs_a_fixed_port() -> None:
    assert sandbox_origin(Settings(sandbox_port=8791)) == "http://127.0.0.1:8791"
    with pytest.raises(ConfigError, match="LOGWARDEN_SANDBOX_PORT is 0"):
        sandbox_origin(Settings(sandbox_port=0))


@pytest.mark.anyio
@pytest.mark.parametrize(("key", "kind"), [("ak_x", ComposioRouter), (None, SandboxRouter)])
async def test_open_router_builds_the_chosen_router(
    pool: asyncpg.Pool, key: str | None, kind: type[object]
) -> None:
    settings = Settings(composio_api_key=SecretStr(key) if key else None, router_toolkits=("slack", "jira"))
    async with open_router(settings, pool) as router:
        assert isinstance(router, kind)
        assert isinstance(router, ToolRouter)
        assert router.toolkits == ("slack", "jira")  # type: ignore[attr-defined]
