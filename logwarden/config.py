"""Settings: the one place that reads the environment.

Every variable is ``LOGWARDEN_<FIELD>`` (case-insensitive). ``load_settings()`` validates them
all at start-up and raises :class:`ConfigError`, whose message names each bad variable, what it
was given (never for secrets) and what is allowed. Everything else in logwarden takes typed
values from a :class:`Settings` instance and never looks at ``os.environ`` itself.
"""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from detector.config import DetectorConfig
from router.base import DEFAULT_TOOLKITS

ENV_PREFIX = "LOGWARDEN_"


class ConfigError(Exception):
    """Invalid configuration. Permanent: fix the named variables and start again."""


_MODEL_NAME = re.compile(r"^(test|[a-z][a-z0-9-]*:[A-Za-z0-9._:/@-]+)$")
_TOOLKIT_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _toolkit(raw: str) -> str:
    slug = raw.strip().lower()
    if not _TOOLKIT_SLUG.match(slug):
        raise ValueError(f"{raw.strip()!r} is not a toolkit slug (letters, digits, _ and -)")
    return slug


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("logwarden", appauthor=False))


class Settings(BaseSettings):
    """All logwarden settings. Field docstrings are the configuration reference."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="ignore",
        validate_default=True,
        env_nested_delimiter="__",
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

    composio_api_key: SecretStr | None = None
    """Composio project API key. Set: tool-router sessions go through the Composio Tool Router;
    unset (or empty): the local sandbox router is used."""

    composio_base_url: str = "https://backend.composio.dev"
    """Composio API origin. Must be ``https://`` (``http://`` only for a loopback host)."""

    composio_timeout: float = Field(default=15.0, gt=0, le=300)
    """Seconds any one Composio API request may take (the SDK's default is no timeout at all)."""

    composio_max_retries: int = Field(default=2, ge=0, le=10)
    """How often the Composio SDK retries a failed read (timeouts, connection errors, 429, 5xx)."""

    router_toolkits: Annotated[tuple[str, ...], NoDecode] = DEFAULT_TOOLKITS
    """Toolkits every user's tool-router session enables, comma-separated
    (default ``slack,jira,pagerduty``). Changing the set gives every user a new session."""

    composio_auth_configs: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    """Optional Composio auth config per toolkit, ``toolkit=ac_id`` pairs, comma-separated (e.g.
    ``slack=ac_123,jira=ac_456``): sessions and connect links use these OAuth apps instead of
    Composio-managed ones. Each toolkit must be in ``LOGWARDEN_ROUTER_TOOLKITS``."""

    composio_manage_connections: bool = True
    """Expose the router's COMPOSIO_MANAGE_CONNECTIONS meta-tool in sessions, so an agent can
    hand a user the connect link of a toolkit they have not connected."""

    connect_callback_url: str | None = None
    """Where OAuth sends the user after connecting a toolkit (``http(s)://``). Unset: the
    provider's own confirmation page."""

    connect_timeout: float = Field(default=300.0, gt=0, le=86400)
    """Default seconds ``logwarden connect`` waits for the user to finish OAuth."""

    connect_poll_interval: float = Field(default=2.0, gt=0, le=60)
    """Seconds between connection-status checks while waiting for OAuth to finish."""
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

    dedup_precheck: bool = True
    """Answer claims (single and batched) with a read-only statement first: duplicates cost one
    small round trip, claims that write take two (see the README's dedup benchmark)."""

    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    """Detector thresholds, one variable per field: ``LOGWARDEN_DETECTOR__<FIELD>`` (e.g.
    ``LOGWARDEN_DETECTOR__Z_THRESHOLD=6``); the fields and defaults are in ``detector/config.py``
    and the README. ``windows`` is structural and not set from the environment."""

    processor_id: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")
    """This processor's id (detector snapshots, job leases). Default: the host name. Give every
    ``logwarden run`` sharing one database its own id."""

    http_host: str = "127.0.0.1"
    """Address the HTTP API listens on (``0.0.0.0`` to accept collectors from other hosts)."""

    http_port: int = Field(default=4318, ge=0, le=65535)
    """HTTP API port; 4318 is the OTLP/HTTP default, so collectors and SDKs export here as is."""

    ingest_token: SecretStr | None = None
    """Bearer token required on ``/v1/logs``, ``/ingest`` and ``/incidents`` (unset: none)."""

    max_body_bytes: int = Field(default=16 << 20, ge=1024, le=1 << 30)
    """Largest request body, compressed or decompressed; larger bodies get 413."""

    max_backlog: int = Field(default=10_000, ge=1, le=10_000_000)
    """Anomaly events waiting to be claimed before ingestion answers 503 (PostgreSQL slow)."""

    snapshot_interval: float = Field(default=30.0, gt=0, le=86400)
    """Seconds between detector state snapshots (one is always taken at shutdown)."""

    reclaim_interval: float = Field(default=60.0, gt=0, le=86400)
    """Seconds between re-claims of anomalies that are still ongoing, which keep their incident's
    last-seen time current and let the repeat interval page again."""

    worker_concurrency: int = Field(default=4, ge=1, le=256)
    """Notification jobs one processor handles at once."""

    log_level: str = Field(default="info", pattern=r"^(?i:debug|info|warning|error)$")
    """debug, info, warning or error."""

    log_format: str = Field(default="auto", pattern=r"^(auto|json|text)$")
    """auto (JSON when stderr is not a terminal), json or text."""

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
    """Seconds an unfinished delivery attempt is presumed still running: a Jira ticket, Slack post
    or Jira comment whose earlier attempt reserved more recently is not settled or re-sent yet."""

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

    @field_validator("composio_api_key")
    @classmethod
    def _blank_key_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return SecretStr(value.get_secret_value().strip())

    @field_validator("composio_base_url")
    @classmethod
    def _api_origin(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an https:// URL")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError("must use https:// (http:// is allowed only for a loopback host)")
        return value.strip().rstrip("/")

    @field_validator("connect_callback_url")
    @classmethod
    def _callback_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        return value.strip()

    @field_validator("router_toolkits", mode="before")
    @classmethod
    def _toolkit_list(cls, value: Any) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)
        slugs = tuple(dict.fromkeys(_toolkit(str(item)) for item in items if str(item).strip()))
        if not slugs:
            raise ValueError("must name at least one toolkit")
        return slugs

    @field_validator("composio_auth_configs", mode="before")
    @classmethod
    def _auth_config_pairs(cls, value: Any, info: Any) -> dict[str, str]:
        if isinstance(value, str):
            pairs: dict[str, str] = {}
            for item in filter(None, (part.strip() for part in value.split(","))):
                toolkit, sep, config_id = item.partition("=")
                if not sep or not config_id.strip():
                    raise ValueError(f"{item!r} is not toolkit=auth_config_id")
                pairs[_toolkit(toolkit)] = config_id.strip()
        else:
            pairs = {_toolkit(str(k)): str(v).strip() for k, v in dict(value).items()}
        toolkits = info.data.get("router_toolkits")
        unknown = sorted(set(pairs) - set(toolkits)) if isinstance(toolkits, tuple) else []
        if unknown:
            raise ValueError(f"{', '.join(unknown)} not in LOGWARDEN_ROUTER_TOOLKITS")
        return pairs

    @field_validator("db_pool_max_size")
    @classmethod
    def _max_at_least_min(cls, value: int, info: Any) -> int:
        low = info.data.get("db_pool_min_size")
        if isinstance(low, int) and value < low:
            raise ValueError(f"must be >= LOGWARDEN_DB_POOL_MIN_SIZE ({low})")
        return value


def secret_values(settings: Settings) -> list[str]:
    """The configured secrets' plain values, for log redaction (never to be printed)."""
    values = (getattr(settings, name) for name in sorted(_SECRET_FIELDS))
    return [v.get_secret_value() for v in values if isinstance(v, SecretStr) and v.get_secret_value()]


def _secret_fields() -> frozenset[str]:
    """Fields whose values are never echoed back in errors: every field typed with SecretStr."""
    fields = Settings.model_fields.items()
    return frozenset(name for name, info in fields if "SecretStr" in repr(info.annotation))


_SECRET_FIELDS = _secret_fields()


_NESTED_FIELD = re.compile(r"^(?:DetectorConfig)\.([a-z_]+) ")


def _describe(error: dict[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ())] or ["?"]
    field = ".".join(loc)
    message = str(error.get("msg", "invalid value"))
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    nested = _NESTED_FIELD.match(message)
    if len(loc) == 1 and nested is not None:
        loc.append(nested.group(1))
    name = ENV_PREFIX + "__".join(loc).upper()
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
