from pathlib import Path

import pytest

from logwarden.config import ConfigError, Settings, load_settings


def test_defaults_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOGWARDEN_DATABASE_URL", raising=False)
    monkeypatch.delenv("LOGWARDEN_DATA_DIR", raising=False)
    s = load_settings()
    assert s.database_url is None
    assert s.data_dir.name == "logwarden"
    assert s.db_pool_max_size >= s.db_pool_min_size


def test_reads_prefixed_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LOGWARDEN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("logwarden_db_pool_max_size", "3")
    s = load_settings()
    assert s.data_dir == tmp_path
    assert s.db_pool_max_size == 3


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "LOGWARDEN_DB_POOL_MAX_SIZE",
            "0",
            "LOGWARDEN_DB_POOL_MAX_SIZE: Input should be greater than or equal to 1",
        ),
        ("LOGWARDEN_DB_POOL_MAX_SIZE", "lots", "LOGWARDEN_DB_POOL_MAX_SIZE: Input should be a valid integer"),
        (
            "LOGWARDEN_DB_CONNECT_TIMEOUT",
            "-1",
            "LOGWARDEN_DB_CONNECT_TIMEOUT: Input should be greater than 0",
        ),
        ("LOGWARDEN_DATABASE_URL", "mysql://u@h/db", "LOGWARDEN_DATABASE_URL: must be a postgresql://"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert expected in str(info.value)


def test_every_bad_variable_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGWARDEN_DB_POOL_MIN_SIZE", "-5")
    monkeypatch.setenv("LOGWARDEN_DB_COMMAND_TIMEOUT", "soon")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "LOGWARDEN_DB_POOL_MIN_SIZE" in str(info.value)
    assert "LOGWARDEN_DB_COMMAND_TIMEOUT" in str(info.value)


def test_pool_max_below_min_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGWARDEN_DB_POOL_MIN_SIZE", "5")
    monkeypatch.setenv("LOGWARDEN_DB_POOL_MAX_SIZE", "2")
    with pytest.raises(
        ConfigError, match=r"LOGWARDEN_DB_POOL_MAX_SIZE: must be >= LOGWARDEN_DB_POOL_MIN_SIZE \(5\)"
    ):
        load_settings()


def test_secrets_never_appear_in_errors_or_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGWARDEN_DATABASE_URL", "mysql://admin:hunter2@db/x")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "hunter2" not in str(info.value)
    s = Settings(database_url="postgresql://admin:hunter2@db/x")  # type: ignore[arg-type]
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s.model_dump())


def test_secret_values_lists_every_configured_secret_for_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOGWARDEN_TEST_DATABASE_URL", raising=False)  # set when the suite runs on a server
    s = Settings(
        database_url="postgresql://admin:hunter2@db/x",  # type: ignore[arg-type]
        composio_api_key="ak_live_123456",  # type: ignore[arg-type]
    )
    from logwarden.config import secret_values

    assert sorted(secret_values(s)) == ["ak_live_123456", "postgresql://admin:hunter2@db/x"]
