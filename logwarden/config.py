"""Settings: the one place that reads the environment.

Every variable is ``LOGWARDEN_<FIELD>`` (case-insensitive). ``load_settings()`` validates them
all at start-up and raises :class:`ConfigError`, whose message names each bad variable, what it
was given (never for secrets) and what is allowed. Everything else in logwarden takes typed
values from a :class:`Settings` instance and never looks at ``os.environ`` itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "LOGWARDEN_"


class ConfigError(Exception):
    """Invalid configuration. Permanent: fix the named variables and start again."""


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


_SECRET_FIELDS = frozenset({"database_url", "test_database_url"})


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
