"""Settings: the one place that reads the environment.

Every variable is ``LOGWARDEN_<FIELD>`` (case-insensitive). ``load_settings()`` validates them
all at start-up and raises :class:`ConfigError`, whose message names each bad variable, what it
was given (never for secrets) and what is allowed. Everything else in logwarden takes typed
values from a :class:`Settings` instance and never looks at ``os.environ`` itself.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "LOGWARDEN_"


class ConfigError(Exception):
    """Invalid configuration. Permanent: fix the named variables and start again."""


_MODEL_NAME = re.compile(r"^(test|[a-z][a-z0-9-]*:[A-Za-z0-9._:/@-]+)$")


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("logwarden", appauthor=False))


class Settings(BaseSettings):
    """All logwarden settings. Field docstrings are the configuration reference."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="ignore",
        validate_default=True,
    )

    database_url: SecretStr | None = None
    """PostgreSQL URL (``postgresql://user:pass@host:5432/db``). Unset: an embedded PostgreSQL
    is started in ``LOGWARDEN_DATA_DIR``."""

    data_dir: Path = Field(default_factory=_default_data_dir)
    """Where local state lives (the embedded PostgreSQL cluster). Default: the user's data dir."""

    db_pool_min_size: int = Field(default=1, ge=0, le=1000)
    """Connections the pool keeps open."""

    db_pool_max_size: int = Field(default=10, ge=1, le=1000)
    """Most connections the pool opens."""

    db_connect_timeout: float = Field(default=10.0, gt=0, le=300)
    """Seconds to wait for a PostgreSQL connection before failing."""

    db_command_timeout: float = Field(default=30.0, gt=0, le=3600)
    """Seconds any single SQL statement may take before it is cancelled."""

    dedup_window: float = Field(default=5.0, ge=0, le=3600)
    """Seconds after a change to an incident during which another claim for the same
    fingerprint is a duplicate; a recovery's resolve page is held this long so a flap can cancel
    it. Must exceed the worst lag between processors reading the same logs."""

    dedup_repeat_interval: float = Field(default=4 * 3600.0, gt=0, le=30 * 86400)
    """Seconds before an open, unacknowledged incident that keeps reporting anomalies pages
    again (a ``repeat`` job)."""

    dedup_max_attempts: int = Field(default=8, ge=1, le=1000)
    """Times a notification job is leased before it is dead-lettered (kept, never deleted)."""

    dedup_backoff_base: float = Field(default=2.0, ge=0, le=3600)
    """Seconds before retrying a job after its first retryable failure; doubles per attempt."""

    dedup_backoff_cap: float = Field(default=900.0, ge=0, le=86400)
    """Longest delay, in seconds, between retries of a notification job."""

    dedup_precheck: bool = False
    """Answer single claims with a read-only statement first: cheaper duplicates, but claims that
    write take two round trips (see the README's dedup benchmark before turning it on)."""

    test_database_url: SecretStr | None = None
    """Tests only: a PostgreSQL server (admin URL) the test suite creates its databases on.
    Unset: the suite starts an embedded PostgreSQL once per session."""

    policy_file: Path | None = None
    """Notification policy (TOML; documented example: ``docs/policy.example.toml``). Validated at
    start-up. Unset: the built-in policy (owner ``operator``, Slack ``#alerts``, Jira ``OPS``/``Bug``,
    PagerDuty for critical incidents)."""

    agent_fast_model: str | None = None
    """Model for triage and routine decisions, as ``provider:model`` (e.g.
    ``openai:gpt-4o-mini``). Unset (the default): no model; the deterministic rules decide. The
    provider's own key variable (e.g. ``OPENAI_API_KEY``) must be set when a model is."""

    agent_strong_model: str | None = None
    """Model for critical incidents and escalations. Unset: the fast model is used."""

    agent_fallback_models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Comma-separated models tried in order when the chosen one fails (FallbackModel)."""

    agent_daily_budget_usd: Decimal = Field(default=Decimal("5"), ge=0, le=1_000_000)
    """Most the models may cost per UTC day (database clock). 75 % and 90 % log a warning; at
    100 % the rules decide until the next day. 0 disables model runs."""

    agent_run_reserve_usd: Decimal = Field(default=Decimal("0.05"), gt=0, le=1000)
    """Reserved from the daily budget before each model run (what one run may cost at most);
    a run whose price is unknown is charged this much."""

    agent_request_limit: int = Field(default=6, ge=1, le=100)
    """Most model requests per run (UsageLimits.request_limit)."""

    agent_tool_calls_limit: int = Field(default=8, ge=0, le=100)
    """Most tool calls per agent run (UsageLimits.tool_calls_limit)."""

    agent_total_tokens_limit: int = Field(default=40_000, ge=100, le=10_000_000)
    """Most input + output tokens per run (UsageLimits.total_tokens_limit)."""

    agent_triage_timeout: float = Field(default=10.0, gt=0, le=600)
    """Seconds a triage model run may take before the rules answer instead."""

    agent_run_timeout: float = Field(default=60.0, gt=0, le=3600)
    """Seconds an acting-agent run may take before the rules planner takes over."""

    agent_model_request_timeout: float = Field(default=20.0, gt=0, le=600)
    """Seconds one HTTP request to a model provider may take."""

    agent_act_with_model: bool = True
    """With a model configured: the log-anomaly-alert agent acts through the owner's session
    (true), or the model only triages the ambiguous cases and the rules act (false)."""

    agent_max_tool_calls: int = Field(default=16, ge=1, le=200)
    """The guard's cap on tool calls per run (each app call inside a multi-execute counts)."""

    worker_concurrency: int = Field(default=4, ge=1, le=256)
    """Notification jobs one worker handles at once."""

    worker_lease_seconds: float = Field(default=300.0, gt=0, le=86400)
    """How long a worker holds a job before another worker may take it over. Must exceed
    LOGWARDEN_AGENT_RUN_TIMEOUT plus two LOGWARDEN_ROUTER_CALL_TIMEOUT."""

    worker_poll_interval: float = Field(default=1.0, gt=0, le=60)
    """Seconds an idle worker waits before looking for due jobs again."""

    router_connect_timeout: float = Field(default=10.0, gt=0, le=300)
    """Seconds to connect to (and initialize) an owner's tool-router MCP session."""

    router_call_timeout: float = Field(default=30.0, gt=0, le=600)
    """Seconds one tool-router call may take before it counts as failed (outcome unknown)."""

    delivery_in_flight_grace: float = Field(default=60.0, ge=0, le=3600)
    """Seconds an unfinished delivery attempt is presumed still running: a Slack post or Jira
    comment whose earlier attempt reserved more recently is not settled or re-sent yet."""

    @field_validator("agent_fast_model", "agent_strong_model", mode="before")
    @classmethod
    def _model_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip() or None
            if value is not None and not _MODEL_NAME.match(value):
                raise ValueError("must be 'provider:model', e.g. 'openai:gpt-4o-mini'")
        return value

    @field_validator("agent_fallback_models", mode="before")
    @classmethod
    def _model_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for item in value:
                if not isinstance(item, str) or not _MODEL_NAME.match(item):
                    raise ValueError(f"{item!r} is not 'provider:model', e.g. 'anthropic:claude-haiku-4-5'")
        return value

    @field_validator("agent_run_reserve_usd")
    @classmethod
    def _reserve_within_budget(cls, value: Decimal, info: Any) -> Decimal:
        budget = info.data.get("agent_daily_budget_usd")
        if isinstance(budget, Decimal) and budget > 0 and value > budget:
            raise ValueError(f"must not exceed LOGWARDEN_AGENT_DAILY_BUDGET_USD ({budget})")
        return value

    sandbox_port: int = Field(default=8790, ge=0, le=65535)
    """Port of the local sandbox tool router on 127.0.0.1 (``logwarden sandbox-router``; 0 = any
    free port). Processes that share the database find a sandbox served elsewhere at this port."""

    sandbox_admin_token: SecretStr | None = None
    """Bearer token for the sandbox router's admin endpoints (failure injection, credentials).
    Unset: ``logwarden sandbox-router`` generates one per run and prints it."""

    @field_validator("database_url", "test_database_url")
    @classmethod
    def _postgres_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value().strip()
        if not raw:
            return None
        if not raw.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// or postgres:// URL")
        return SecretStr(raw)

    @field_validator("db_pool_max_size")
    @classmethod
    def _max_at_least_min(cls, value: int, info: Any) -> int:
        low = info.data.get("db_pool_min_size")
        if isinstance(low, int) and value < low:
            raise ValueError(f"must be >= LOGWARDEN_DB_POOL_MIN_SIZE ({low})")
        return value


def _secret_fields() -> frozenset[str]:
    """Fields whose values are never echoed back in errors: every field typed with SecretStr."""
    fields = Settings.model_fields.items()
    return frozenset(name for name, info in fields if "SecretStr" in repr(info.annotation))


_SECRET_FIELDS = _secret_fields()


def _describe(error: dict[str, Any]) -> str:
    field = ".".join(str(part) for part in error.get("loc", ())) or "?"
    name = ENV_PREFIX + field.split(".")[0].upper()
    message = str(error.get("msg", "invalid value"))
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    shown = ""
    if field.split(".")[0] not in _SECRET_FIELDS and "input" in error:
        shown = f" (got {error['input']!r})"
    return f"{name}: {message}{shown}"


def load_settings() -> Settings:
    """Read and validate settings from the environment.

    Raises ConfigError naming every invalid variable and what is allowed.
    """
    try:
        return Settings()
    except ValidationError as exc:
        lines = [_describe(dict(err)) for err in exc.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
