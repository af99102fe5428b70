"""Agent settings: LOGWARDEN_AGENT_* and LOGWARDEN_POLICY_FILE, wiring, and the policy/agents commands."""

import re
from decimal import Decimal
from pathlib import Path

import pytest

from agents.models import Tier
from agents.policy import BUILTIN_POLICY
from logwarden.agent_setup import load_agent_policy, model_config, model_router
from logwarden.cli import main
from logwarden.config import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "policy.example.toml"


def test_agent_defaults_configure_no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FAST_MODEL", "STRONG_MODEL", "FALLBACK_MODELS"):
        monkeypatch.delenv(f"LOGWARDEN_AGENT_{name}", raising=False)
    monkeypatch.delenv("LOGWARDEN_POLICY_FILE", raising=False)
    settings = load_settings()
    assert settings.policy_file is None
    assert not model_config(settings).configured
    assert load_agent_policy(settings) is BUILTIN_POLICY
    assert model_router(settings, None).model(Tier.FAST) is None


def test_agent_variables_are_read_and_mapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGWARDEN_AGENT_FAST_MODEL", "test")
    monkeypatch.setenv("LOGWARDEN_AGENT_STRONG_MODEL", " openai:gpt-4o ")
    monkeypatch.setenv("LOGWARDEN_AGENT_FALLBACK_MODELS", "anthropic:claude-haiku-4-5, test")
    monkeypatch.setenv("LOGWARDEN_AGENT_DAILY_BUDGET_USD", "2.5")
    monkeypatch.setenv("LOGWARDEN_AGENT_RUN_RESERVE_USD", "0.10")
    monkeypatch.setenv("LOGWARDEN_AGENT_TOOL_CALLS_LIMIT", "3")
    monkeypatch.setenv("LOGWARDEN_POLICY_FILE", str(EXAMPLE))
    settings = load_settings()
    config = model_config(settings)
    assert config.fast == "test"
    assert config.strong == "openai:gpt-4o"
    assert config.fallbacks == ("anthropic:claude-haiku-4-5", "test")
    assert settings.agent_daily_budget_usd == Decimal("2.5")
    assert config.run_reserve_usd == Decimal("0.10")
    assert config.limits.tool_calls == 3
    assert load_agent_policy(settings).source == str(EXAMPLE)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("LOGWARDEN_AGENT_FAST_MODEL", "gpt-4o", "LOGWARDEN_AGENT_FAST_MODEL: must be 'provider:model'"),
        ("LOGWARDEN_AGENT_FALLBACK_MODELS", "openai:gpt-4o,,oops", "'oops' is not 'provider:model'"),
        (
            "LOGWARDEN_AGENT_DAILY_BUDGET_USD",
            "-1",
            "LOGWARDEN_AGENT_DAILY_BUDGET_USD: Input should be greater",
        ),
        ("LOGWARDEN_AGENT_RUN_RESERVE_USD", "6", "must not exceed LOGWARDEN_AGENT_DAILY_BUDGET_USD (5)"),
        (
            "LOGWARDEN_AGENT_TRIAGE_TIMEOUT",
            "0",
            "LOGWARDEN_AGENT_TRIAGE_TIMEOUT: Input should be greater than 0",
        ),
    ],
)
def test_bad_agent_variables_are_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert expected in str(info.value)


def test_a_bad_policy_file_stops_start_up_with_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text('[defaults]\nowner = "a b"\n[defaults.jira]\nproject = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_agent_policy(Settings(policy_file=bad))
    message = str(info.value)
    assert message.startswith("LOGWARDEN_POLICY_FILE: invalid notification policy")
    assert f"{bad}:2: defaults.owner:" in message
    assert f"{bad}:4: defaults.jira.project:" in message


def test_a_model_without_its_provider_key_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="LOGWARDEN_AGENT_FAST_MODEL='openai:gpt-4o-mini'"):
        model_router(Settings(agent_fast_model="openai:gpt-4o-mini"), None)


def test_policy_commands(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["policy", "check", str(EXAMPLE)]) == 0
    assert "valid (11 policy entries)" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('[defaults.slack]\nchannel = "alerts"\n')
    assert main(["policy", "check", str(bad)]) == 2
    assert f"{bad}:2: defaults.slack.channel:" in capsys.readouterr().out
    monkeypatch.setenv("LOGWARDEN_POLICY_FILE", str(EXAMPLE))
    assert main(["policy", "show", "shop", "checkout"]) == 0
    shown = capsys.readouterr().out
    assert "shop/checkout: owner alice (Europe/Berlin)" in shown
    assert "#checkout-oncall" in shown


def test_agents_eval_command_scores_the_rules(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOGWARDEN_AGENT_FAST_MODEL", raising=False)
    monkeypatch.delenv("LOGWARDEN_AGENT_STRONG_MODEL", raising=False)
    assert main(["agents", "eval", str(ROOT / "tests" / "agents" / "scenarios")]) == 0
    assert re.search(r"rules: (\d+)/\1 scenarios passed \(100.0%\)", capsys.readouterr().out)


def test_worker_options_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from logwarden.agent_setup import worker_options

    monkeypatch.setenv("LOGWARDEN_AGENT_ACT_WITH_MODEL", "false")
    monkeypatch.setenv("LOGWARDEN_ROUTER_CALL_TIMEOUT", "12")
    monkeypatch.setenv("LOGWARDEN_AGENT_MAX_TOOL_CALLS", "9")
    monkeypatch.setenv("LOGWARDEN_DELIVERY_IN_FLIGHT_GRACE", "5")
    options = worker_options(load_settings())
    assert (options.act_with_model, options.call_timeout, options.max_calls, options.in_flight_grace) == (
        False,
        12.0,
        9,
        5.0,
    )
    monkeypatch.setenv("LOGWARDEN_WORKER_LEASE_SECONDS", "70")
    with pytest.raises(ConfigError, match=r"LOGWARDEN_WORKER_LEASE_SECONDS \(70\) must exceed .* \(84\)"):
        worker_options(load_settings())
