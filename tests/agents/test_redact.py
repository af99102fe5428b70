"""Secrets never reach the record: keys that name credentials, and credential-shaped text."""

import pytest

from agents.redact import MASK, is_secret_key, redact, redact_text


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("token", True),
        ("api_key", True),
        ("x-api-key", True),
        ("Authorization", True),
        ("client_secret", True),
        ("password", True),
        ("link_token", True),
        ("incident__incident_key", False),
        ("issue_key", False),
        ("author", False),
        ("thread_ts", False),
        ("markdown_text", False),
    ],
)
def test_secret_key_names(name: str, secret: bool) -> None:
    assert is_secret_key(name) is secret


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ("Authorization: Bearer abcdef123456", "Bearer ", "abcdef123456"),
        ("x-api-key: lwsk_abcdefgh12345678", "x-api-key: ", "lwsk_abcdefgh"),
        ("postgresql://app:hunter2@db:5432/x", "postgresql://app:", "hunter2"),
        ("slack token xoxb-1234567890-abcdef", "slack token ", "xoxb-1234567890"),
        ("key sk-ant-abcdefghijklmnopqrstu", "key ", "sk-ant-abcdefghij"),
    ],
)
def test_credential_shaped_text_is_masked(text: str, kept: str, gone: str) -> None:
    masked = redact_text(text)
    assert kept in masked
    assert gone not in masked
    assert MASK in masked


def test_nested_values_are_redacted_and_harmless_ones_kept() -> None:
    value = {
        "channel": "#alerts",
        "headers": {"x-api-key": "anything", "accept": "json"},
        "items": [{"password": "p"}, "Bearer 0123456789"],
        "empty_token": "",
    }
    assert redact(value) == {
        "channel": "#alerts",
        "headers": {"x-api-key": MASK, "accept": "json"},
        "items": [{"password": MASK}, f"Bearer {MASK}"],
        "empty_token": "",
    }
