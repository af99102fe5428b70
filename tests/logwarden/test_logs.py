import io
import json
import logging

import pytest

from logwarden import logs


@pytest.fixture
def restore_root_logging() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_json_lines_with_extras_and_no_secrets(restore_root_logging: object) -> None:
    out = io.StringIO()
    logs.configure(logging.INFO, secrets=["ak_live_supersecret"], stream=out, json_lines=True)
    log = logging.getLogger("logwarden.test")
    log.info("calling router with key ak_live_supersecret", extra={"user": "op-1", "attempt": 2})
    log.warning(
        "db at postgresql://app:pa55word@db:5432/x failed; header Authorization: Bearer tok_abcdef123"
    )
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["msg"] == "calling router with key ***"
    assert first["user"] == "op-1"
    assert first["attempt"] == 2
    assert first["level"] == "info"
    assert "pa55word" not in second["msg"]
    assert "tok_abcdef123" not in second["msg"]
    assert "postgresql://app:***@db:5432/x" in second["msg"]


def test_text_format_when_asked(restore_root_logging: object) -> None:
    out = io.StringIO()
    logs.configure(logging.INFO, stream=out, json_lines=False)
    logging.getLogger("x").info("hello", extra={"k": "v"})
    line = out.getvalue().strip()
    assert line.endswith("x: hello k=v")


def test_redactor_masks_x_api_key_values() -> None:
    r = logs.Redactor()
    assert "sekret-value-1" not in r('headers={"x-api-key": "sekret-value-1"}')
