"""``logwarden agents audit INCIDENT``: deliveries and decisions of one incident, read back."""

import asyncio

import asyncpg
import pytest

from logwarden.cli import main
from router.sandbox import SandboxServer
from tests.agents.support import claim, make_worker


async def _page_once(dsn: str) -> int:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    try:
        async with SandboxServer(pool) as sandbox:
            await sandbox.store.grant("operator", ["slack"])
            made = await claim(pool, "critical")
            await make_worker(pool, sandbox).drain()
            assert made.incident_id is not None
            return made.incident_id
    finally:
        await pool.close()


def test_audit_prints_what_was_sent_and_why(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    incident = asyncio.run(_page_once(database_url))
    monkeypatch.setenv("LOGWARDEN_DATABASE_URL", database_url)
    assert main(["agents", "audit", str(incident)]) == 0
    out = capsys.readouterr().out
    assert f"incident {incident}: 1 deliveries, 1 decisions" in out
    assert f"logwarden-{incident}/open/slack.post" in out
    assert "SLACK_SEND_MESSAGE -> #alerts (for pagerduty)" in out
    assert "delivered by rules [no model]" in out
    assert "connect pagerduty: http://127.0.0.1:" in out
    assert main(["agents", "audit", "999"]) == 1
