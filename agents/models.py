"""Model routing: which model decides, within which limits, and when the rules decide instead.

Tiers: the *fast* model (cheap; triage and routine decisions) and the *strong* model (critical
incidents and escalations; the fast model when unset). Each tier is a FallbackModel chain: the
tier's model, then ``fallbacks`` in order, each tried when the previous raises a model API error.
Models are built lazily from their strings and cached; :meth:`ModelRouter.check` builds them at
start-up so a missing provider key is a clear :class:`~agents.errors.AgentConfigError` then, and
only when a model is configured.

:meth:`ModelRouter.acquire` answers "use this model" (a :class:`ModelLease` holding a budget
reservation, usage limits and timeouts) or "use the rules" (:class:`UseRules` with a named
reason): no model configured (the default), the daily budget is spent, or the budget ledger is
unreachable. A run that fails (:data:`MODEL_FAILURES`: provider errors, every fallback failing,
timeouts, usage limits, malformed output) is settled with what it used and the caller falls back
to the rules too. A page never waits on a model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

import asyncpg
from pydantic_ai import UsageLimits
from pydantic_ai.exceptions import AgentRunError, FallbackExceptionGroup, UserError
from pydantic_ai.models import Model, infer_model
from pydantic_ai.models.fallback import FallbackModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import RunUsage

from agents.budget import BudgetLedger, Reservation
from agents.errors import AgentConfigError
from agents.triage_rules import RulesReason
from detector.models import JobKind, Severity

log = logging.getLogger(__name__)

MODEL_FAILURES: tuple[type[BaseException], ...] = (
    AgentRunError,  # provider errors, UnexpectedModelBehavior, UsageLimitExceeded, RunTimedOut
    FallbackExceptionGroup,  # every model in the chain failed
    UserError,  # a model that cannot be built after all (e.g. its key vanished)
    TimeoutError,
    OSError,
)
"""Exceptions from a model run that mean "let the rules decide"."""


_LEDGER_FAILURES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)


class Tier(StrEnum):
    FAST = "fast"
    STRONG = "strong"


@dataclass(frozen=True, slots=True)
class RunLimits:
    """Per-run caps (pydantic-ai UsageLimits)."""

    requests: int = 6
    tool_calls: int = 8
    total_tokens: int = 40_000

    def usage_limits(self) -> UsageLimits:
        return UsageLimits(
            request_limit=self.requests,
            tool_calls_limit=self.tool_calls,
            total_tokens_limit=self.total_tokens,
        )


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Model settings, built by the composition root from ``LOGWARDEN_AGENT_*``."""

    fast: str | None = None
    strong: str | None = None
    fallbacks: tuple[str, ...] = ()
    run_reserve_usd: Decimal = Decimal("0.05")
    limits: RunLimits = field(default_factory=RunLimits)
    triage_timeout: float = 10.0
    run_timeout: float = 60.0
    request_timeout: float = 20.0

    @property
    def configured(self) -> bool:
        return self.fast is not None or self.strong is not None

    def chain(self, tier: Tier) -> tuple[str, ...]:
        """Model strings tried in order for ``tier`` (empty when no model is configured)."""
        primary = (self.strong or self.fast) if tier is Tier.STRONG else (self.fast or self.strong)
        if primary is None:
            return ()
        return (primary, *(m for m in self.fallbacks if m != primary))


def tier_for(kind: JobKind, severity: Severity) -> Tier:
    """Critical incidents and escalations get the strong model; everything else the fast one."""
    return Tier.STRONG if severity is Severity.CRITICAL or kind is JobKind.ESCALATE else Tier.FAST


@dataclass(frozen=True, slots=True)
class UseRules:
    """The rules decide; ``reason`` says why (for the decision record)."""

    reason: RulesReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ModelLease:
    """Permission to run one model call: the model, its limits, and the budget it holds."""

    tier: Tier
    model: Model
    model_name: str
    """The tier's primary model string (the answering model is in the run's messages)."""
    usage_limits: UsageLimits
    model_settings: ModelSettings
    timeout: float
    reservation: Reservation | None
    ledger: BudgetLedger | None

    async def settle(self, usage: RunUsage) -> Decimal:
        """Record the run's cost (its reservation when the price is unknown); returns it."""
        cost = run_cost(usage, self.reservation)
        if self.ledger is not None and self.reservation is not None:
            try:
                await self.ledger.record(self.reservation, cost)
            except _LEDGER_FAILURES as exc:
                log.warning("could not record model spend of %s USD: %s", cost, type(exc).__name__)
        return cost


def run_cost(usage: RunUsage, reservation: Reservation | None) -> Decimal:
    """The run's price when known; else the whole reservation if the model was used at all."""
    if usage.cost is not None:
        return Decimal(usage.cost)
    used = usage.requests > 0 or usage.input_tokens > 0 or usage.output_tokens > 0
    return reservation.amount if used and reservation is not None else Decimal(0)


ModelResolver = Callable[[str], Model]


class ModelRouter:
    """Builds tier models lazily and hands out model leases within the budget."""

    def __init__(
        self,
        config: ModelConfig,
        ledger: BudgetLedger | None = None,
        *,
        resolve: ModelResolver = infer_model,
    ) -> None:
        self.config = config
        self._ledger = ledger
        self._resolve = resolve
        self._built: dict[str, Model] = {}
        self._chains: dict[Tier, Model] = {}

    @property
    def configured(self) -> bool:
        return self.config.configured

    def check(self) -> None:
        """Build every configured model now (start-up), or raise AgentConfigError naming it."""
        labelled = [
            ("LOGWARDEN_AGENT_FAST_MODEL", self.config.fast),
            ("LOGWARDEN_AGENT_STRONG_MODEL", self.config.strong),
            *(("LOGWARDEN_AGENT_FALLBACK_MODELS", m) for m in self.config.fallbacks),
        ]
        problems = []
        for variable, name in labelled:
            if name is None:
                continue
            try:
                self._build(name)
            except UserError as exc:
                problems.append(f"{variable}={name!r}: {str(exc).splitlines()[0]}")
        if problems:
            raise AgentConfigError("unusable model configuration:\n  " + "\n  ".join(problems))

    def _build(self, name: str) -> Model:
        model = self._built.get(name)
        if model is None:
            model = self._resolve(name)
            self._built[name] = model
        return model

    def model(self, tier: Tier) -> Model | None:
        """The tier's model (a FallbackModel when fallbacks are configured), or None."""
        cached = self._chains.get(tier)
        if cached is not None:
            return cached
        names = self.config.chain(tier)
        if not names:
            return None
        models = [self._build(n) for n in names]
        chain = models[0] if len(models) == 1 else FallbackModel(models[0], *models[1:])
        self._chains[tier] = chain
        return chain

    async def acquire(self, tier: Tier, *, timeout: float | None = None) -> ModelLease | UseRules:
        """A lease to run the tier's model once, or the reason the rules must decide."""
        names = self.config.chain(tier)
        if not names:
            return UseRules(RulesReason.NO_MODEL)
        try:
            model = self.model(tier)
        except UserError as exc:
            return UseRules(RulesReason.MODEL_FAILED, str(exc).splitlines()[0])
        assert model is not None  # names is non-empty
        reservation = None
        if self._ledger is not None:
            try:
                reservation = await self._ledger.reserve(self.config.run_reserve_usd)
            except _LEDGER_FAILURES as exc:
                return UseRules(RulesReason.BUDGET_UNAVAILABLE, type(exc).__name__)
            if reservation is None:
                return UseRules(RulesReason.BUDGET_EXHAUSTED)
        return ModelLease(
            tier=tier,
            model=model,
            model_name=names[0],
            usage_limits=self.config.limits.usage_limits(),
            model_settings=ModelSettings(timeout=self.config.request_timeout),
            timeout=self.config.run_timeout if timeout is None else timeout,
            reservation=reservation,
            ledger=self._ledger,
        )
