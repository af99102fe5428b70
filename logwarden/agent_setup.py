"""Wiring for the agents: settings → notification policy, model configuration, model router.

The composition root calls these at start-up so a bad policy file or an unusable model is
reported before any work is taken (as :class:`logwarden.config.ConfigError`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from logwarden.config import ConfigError, Settings

if TYPE_CHECKING:
    import asyncpg

    from agents.job_handler import HandlerOptions
    from agents.models import ModelConfig, ModelRouter
    from agents.policy import Policy


def load_agent_policy(settings: Settings) -> Policy:
    """``LOGWARDEN_POLICY_FILE`` validated, or the built-in policy when it is unset."""
    from agents.errors import PolicyError
    from agents.policy import BUILTIN_POLICY
    from agents.policy_file import load_policy

    if settings.policy_file is None:
        return BUILTIN_POLICY
    try:
        return load_policy(settings.policy_file)
    except PolicyError as exc:
        raise ConfigError(f"LOGWARDEN_POLICY_FILE: {exc}") from None


def model_config(settings: Settings) -> ModelConfig:
    """The ``LOGWARDEN_AGENT_*`` settings as the agents' model configuration."""
    from agents.models import ModelConfig, RunLimits

    return ModelConfig(
        fast=settings.agent_fast_model,
        strong=settings.agent_strong_model,
        fallbacks=tuple(settings.agent_fallback_models),
        run_reserve_usd=settings.agent_run_reserve_usd,
        limits=RunLimits(
            requests=settings.agent_request_limit,
            tool_calls=settings.agent_tool_calls_limit,
            total_tokens=settings.agent_total_tokens_limit,
        ),
        triage_timeout=settings.agent_triage_timeout,
        run_timeout=settings.agent_run_timeout,
        request_timeout=settings.agent_model_request_timeout,
    )


def model_router(settings: Settings, pool: asyncpg.Pool | None) -> ModelRouter:
    """A checked model router, budgeted by the ledger on ``pool`` (None: no budget accounting)."""
    from agents.budget import BudgetLedger
    from agents.errors import AgentConfigError
    from agents.models import ModelRouter

    ledger = None if pool is None else BudgetLedger(pool, settings.agent_daily_budget_usd)
    router = ModelRouter(model_config(settings), ledger)
    try:
        router.check()
    except AgentConfigError as exc:
        raise ConfigError(str(exc)) from None
    return router


def worker_options(settings: Settings) -> HandlerOptions:
    """The worker's per-job options from ``LOGWARDEN_AGENT_*``, ``_ROUTER_*`` and ``_DELIVERY_*``.

    The lease must outlive a job's longest work (an agent run, then the rules' calls), or a
    second worker could take over a job that is still running.
    """
    from agents.job_handler import HandlerOptions

    needed = settings.agent_run_timeout + 2 * settings.router_call_timeout
    if settings.worker_lease_seconds <= needed:
        raise ConfigError(
            f"LOGWARDEN_WORKER_LEASE_SECONDS ({settings.worker_lease_seconds:g}) must exceed "
            f"LOGWARDEN_AGENT_RUN_TIMEOUT + 2 x LOGWARDEN_ROUTER_CALL_TIMEOUT ({needed:g})"
        )
    return HandlerOptions(
        act_with_model=settings.agent_act_with_model,
        connect_timeout=settings.router_connect_timeout,
        call_timeout=settings.router_call_timeout,
        max_calls=settings.agent_max_tool_calls,
        in_flight_grace=settings.delivery_in_flight_grace,
    )
