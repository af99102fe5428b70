"""The worker with the rules (no model): real claims, the outbox, the sandbox router over MCP."""

from __future__ import annotations

import anyio
import asyncpg
import pytest

from agents.audit import AuditLog, DecisionPath, Outcome
from agents.deliveries import DeliveryStore
from agents.job_run import Disposition
from detector.models import EventKind, JobKind, JobStatus
from router.sandbox import SandboxServer
from tests.agents.support import actions_sent, claim, make_worker
from tests.detector.support import age_last_page, expire_window

pytestmark = pytest.mark.anyio


async def test_a_critical_incident_pages_pagerduty_and_posts_to_slack(
    pool: asyncpg.Pool, sandbox: SandboxServer
) -> None:
    made = await claim(pool, "critical")
    worker = make_worker(pool, sandbox)
    with anyio.fail_after(30):
        [handled] = await worker.drain()
    assert handled.disposition is Disposition.COMPLETE, handled.error
    assert await actions_sent(sandbox) == ["PAGERDUTY_CREATE_INCIDENT_RECORD", "SLACK_SEND_MESSAGE"]
    assert made.incident_id is not None
    record = await DeliveryStore(pool).for_incident(made.incident_id)
    assert [(r.action.value, r.status, r.path) for r in record] == [
        ("pagerduty.trigger", "sent", "rules"),
        ("slack.post", "sent", "rules"),
    ]
    assert record[0].key == f"logwarden-{made.incident_id}/open/pagerduty.trigger"
    assert record[0].external_ref is not None
    assert record[0].external_ref.startswith("Q")
    [row] = await AuditLog(pool).for_job(handled.job_id)
    decision = row.decision
    assert decision.path is DecisionPath.RULES
    assert decision.outcome is Outcome.DELIVERED
    assert decision.verdict["action"] == "page"
    assert [c["verdict"] for c in decision.tool_calls] == ["allowed", "allowed"]
    assert decision.models == ()
    [job] = await worker.outbox.jobs(incident_id=made.incident_id)
    assert job.status is JobStatus.DONE


async def test_a_warning_posts_to_slack_only(pool: asyncpg.Pool, sandbox: SandboxServer) -> None:
    await claim(pool, "warning")
    with anyio.fail_after(30):
        [handled] = await make_worker(pool, sandbox).drain()
    assert handled.disposition is Disposition.COMPLETE
    assert await actions_sent(sandbox) == ["SLACK_SEND_MESSAGE"]
    assert handled.decision is not None
    assert handled.decision.verdict["channels"] == ["slack"]


async def test_resolve_closes_the_loop_on_everything_open_and_repeat_created(
    pool: asyncpg.Pool, sandbox: SandboxServer
) -> None:
    opened = await claim(pool, "critical")
    worker = make_worker(pool, sandbox)
    with anyio.fail_after(60):
        await worker.drain()
        await expire_window(pool, opened.fingerprint)
        await age_last_page(pool, opened.fingerprint, 5 * 3600)
        repeat = await claim(pool, "critical")
        assert repeat.job_kind is JobKind.REPEAT
        [again] = await worker.drain()
        assert again.disposition is Disposition.COMPLETE, again.error
        await expire_window(pool, opened.fingerprint)
        recovered = await claim(pool, "warning", EventKind.RECOVERY)
        assert recovered.job_kind is JobKind.RESOLVE
        await expire_window(pool, opened.fingerprint)
        [closed] = await worker.drain()
    assert closed.disposition is Disposition.COMPLETE, closed.error
    assert await actions_sent(sandbox) == [
        "PAGERDUTY_CREATE_INCIDENT_RECORD",  # open: page
        "SLACK_SEND_MESSAGE",  # open: post
        "SLACK_SEND_MESSAGE",  # repeat: reply in the thread
        "JIRA_CREATE_ISSUE",  # repeat: ticket
        "PAGERDUTY_UPDATE_INCIDENT",  # resolve: resolve the page
        "SLACK_UPDATE_MESSAGE",  # resolve: edit the original post
        "JIRA_ADD_COMMENT",  # resolve: comment on the ticket
    ]
    [pd] = await pool.fetch("SELECT status, incident_key FROM sandbox_pd_incidents")
    assert (pd["status"], pd["incident_key"]) == ("resolved", f"logwarden-{opened.incident_id}")
    posts = await pool.fetch("SELECT ts, thread_ts, text, edited_at FROM sandbox_slack_messages ORDER BY ts")
    assert posts[0]["edited_at"] is not None
    assert "resolved" in posts[0]["text"]
    assert posts[1]["thread_ts"] == posts[0]["ts"]
    [issue] = await pool.fetch("SELECT issue_key, labels FROM sandbox_jira_issues")
    assert list(issue["labels"]) == [f"logwarden-{opened.incident_id}"]
    [comment] = await pool.fetch("SELECT issue_key, body FROM sandbox_jira_comments")
    assert comment["issue_key"] == issue["issue_key"]
    assert "resolved" in comment["body"]


async def test_an_escalation_pages_and_updates_the_warning_post(
    pool: asyncpg.Pool, sandbox: SandboxServer
) -> None:
    opened = await claim(pool, "warning")
    worker = make_worker(pool, sandbox)
    with anyio.fail_after(60):
        await worker.drain()
        await expire_window(pool, opened.fingerprint)
        escalated = await claim(pool, "critical", EventKind.ESCALATION)
        assert escalated.job_kind is JobKind.ESCALATE
        [handled] = await worker.drain()
    assert handled.disposition is Disposition.COMPLETE, handled.error
    assert await actions_sent(sandbox) == [
        "SLACK_SEND_MESSAGE",  # open (warning): post
        "PAGERDUTY_CREATE_INCIDENT_RECORD",  # escalate: page
        "SLACK_UPDATE_MESSAGE",  # escalate: the warning post now says critical
    ]
    [post] = await pool.fetch("SELECT text, edited_at FROM sandbox_slack_messages")
    assert post["edited_at"] is not None
    assert "[CRITICAL] escalated" in post["text"]
