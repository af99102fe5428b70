"""Model routing: tiers, fallback chains, start-up checks, and the budget deciding rules vs model."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from pydantic_ai import ModelResponse
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import Model
from pydantic_ai.models.fallback import FallbackModel
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RunUsage

from agents.budget import BudgetLedger, Reservation
from agents.errors import AgentConfigError
from agents.models import (
    ModelConfig,
    ModelLease,
    ModelRouter,
    Tier,
    UseRules,
    run_cost,
    tier_for,
)
from agents.policy import BUILTIN_POLICY
from agents.scenarios import incident_from_facts
from agents.triage import TriageModel, triage
from agents.triage_rules import Action, DecisionPath, RulesReason, TriageInput
from detector.models import JobKind, Severity
from tests.agents.scripted import answering, failing

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
BRIEF_CRITICAL = {
    "project": "shop",
    "service": "checkout",
    "severity": "critical",
    "errors": 400,
    "score": 0.97,
}


PAGE = {"action": "page", "channels": ["pagerduty", "slack"], "urgency": "high", "rationale": "real spike"}
_answer = answering(PAGE, tokens=300)
_fail = failing(500)


def _brief_critical() -> TriageInput:
    incident = incident_from_facts(BRIEF_CRITICAL, NOW)
    return TriageInput(JobKind.OPEN, incident, BUILTIN_POLICY.for_service("shop", "checkout"))


@pytest.mark.parametrize(
    ("kind", "severity", "tier"),
    [
        (JobKind.OPEN, Severity.WARNING, Tier.FAST),
        (JobKind.REPEAT, Severity.WARNING, Tier.FAST),
        (JobKind.OPEN, Severity.CRITICAL, Tier.STRONG),
        (JobKind.ESCALATE, Severity.WARNING, Tier.STRONG),
        (JobKind.RESOLVE, Severity.CRITICAL, Tier.STRONG),
    ],
)
def test_critical_incidents_and_escalations_use_the_strong_model(
    kind: JobKind, severity: Severity, tier: Tier
) -> None:
    assert tier_for(kind, severity) is tier


def test_chains_fill_in_missing_tiers_and_skip_duplicates() -> None:
    config = ModelConfig(fast="a:fast", fallbacks=("a:fast", "b:backup"))
    assert config.chain(Tier.FAST) == ("a:fast", "b:backup")
    assert config.chain(Tier.STRONG) == ("a:fast", "b:backup")
    strong_only = ModelConfig(strong="a:strong")
    assert strong_only.chain(Tier.FAST) == ("a:strong",)
    assert ModelConfig().chain(Tier.FAST) == ()


def test_models_are_built_lazily_once_and_chained() -> None:
    built: list[str] = []

    def resolve(name: str) -> Model:
        built.append(name)
        return FunctionModel(_answer, model_name=name)

    router = ModelRouter(
        ModelConfig(fast="x:fast", strong="x:strong", fallbacks=("x:backup",)), resolve=resolve
    )
    assert built == []
    strong = router.model(Tier.STRONG)
    assert isinstance(strong, FallbackModel)
    assert [m.model_name for m in strong.models] == ["x:strong", "x:backup"]
    assert router.model(Tier.STRONG) is strong
    router.model(Tier.FAST)
    assert built == ["x:strong", "x:backup", "x:fast"]


async def test_no_model_configured_means_rules_and_needs_no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    router = ModelRouter(ModelConfig())
    router.check()  # nothing configured: nothing to check
    assert not router.configured
    assert router.model(Tier.FAST) is None
    assert await router.acquire(Tier.FAST) == UseRules(RulesReason.NO_MODEL)


def test_a_configured_model_without_its_key_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    router = ModelRouter(ModelConfig(fast="openai:gpt-4o-mini", fallbacks=("nosuch:model",)))
    with pytest.raises(AgentConfigError) as info:
        router.check()
    message = str(info.value)
    assert "LOGWARDEN_AGENT_FAST_MODEL='openai:gpt-4o-mini'" in message
    assert "OPENAI_API_KEY" in message
    assert "LOGWARDEN_AGENT_FALLBACK_MODELS='nosuch:model': Unknown model" in message
    assert not info.value.retryable


@pytest.mark.postgres
async def test_an_exhausted_budget_sends_triage_to_the_rules(pool: asyncpg.Pool) -> None:
    calls: list[int] = []

    def counted(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls.append(1)
        return _answer(messages, info)

    ledger = BudgetLedger(pool, Decimal("0.10"))
    router = ModelRouter(
        ModelConfig(fast="f:m", run_reserve_usd=Decimal("0.06")),
        ledger,
        resolve=lambda name: FunctionModel(counted),
    )
    first = await triage(_brief_critical(), TriageModel(router))
    assert first.path is DecisionPath.MODEL
    # FunctionModel has no price: the run is charged its whole reservation
    assert (await ledger.status()).spent == Decimal("0.06")
    second = await triage(_brief_critical(), TriageModel(router))
    assert second.path is DecisionPath.FALLBACK
    assert second.fallback == "budget_exhausted"
    assert second.action is Action.PAGE  # the page is not lost
    assert calls == [1]


@pytest.mark.postgres
async def test_a_failed_run_releases_its_reservation(pool: asyncpg.Pool) -> None:
    ledger = BudgetLedger(pool, Decimal("1"))
    router = ModelRouter(ModelConfig(fast="f:m"), ledger, resolve=lambda name: FunctionModel(_fail))
    verdict = await triage(_brief_critical(), TriageModel(router))
    assert verdict.fallback == "model_failed:ModelHTTPError"
    status = await ledger.status()
    assert status.reserved == Decimal("0")


@pytest.mark.postgres
async def test_an_unreachable_ledger_means_rules(database_url: str) -> None:
    closed = await asyncpg.create_pool(database_url, min_size=0, max_size=1)
    await closed.close()
    router = ModelRouter(
        ModelConfig(fast="f:m"), BudgetLedger(closed, Decimal("1")), resolve=lambda n: FunctionModel(_answer)
    )
    lease = await router.acquire(Tier.FAST)
    assert isinstance(lease, UseRules)
    assert lease.reason is RulesReason.BUDGET_UNAVAILABLE


async def test_a_lease_carries_limits_and_timeouts() -> None:
    router = ModelRouter(ModelConfig(fast="f:m", run_timeout=42.0), resolve=lambda n: FunctionModel(_answer))
    lease = await router.acquire(Tier.FAST)
    assert isinstance(lease, ModelLease)
    assert lease.timeout == 42.0
    assert lease.usage_limits.request_limit == 6
    assert lease.model_settings.get("timeout") == 20.0
    assert lease.reservation is None  # no ledger: no budget accounting


@pytest.mark.parametrize(
    ("usage", "reservation", "cost"),
    [
        ({}, Decimal("0.05"), Decimal("0")),  # never reached the model: free
        ({"requests": 1}, Decimal("0.05"), Decimal("0.05")),  # unknown price: the reservation
        ({"requests": 1}, None, Decimal("0")),
    ],
)
def test_run_cost(usage: dict[str, Any], reservation: Decimal | None, cost: Decimal) -> None:
    run = RunUsage(**usage)
    held = None if reservation is None else Reservation(day=NOW.date(), amount=reservation)
    assert run_cost(run, held) == cost
