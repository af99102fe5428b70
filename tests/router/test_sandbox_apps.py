"""Every executable app tool, over MCP, and what it leaves in PostgreSQL."""

from __future__ import annotations

from typing import Any

import anyio
import asyncpg
import pytest
from mcp import ClientSession

from router.sandbox import SandboxServer
from tests.router.conftest import execute, user_session

pytestmark = pytest.mark.anyio


def response(envelope: dict[str, Any], index: int = 0) -> dict[str, Any]:
    entry = envelope["data"]["results"][index]
    assert entry["index"] == index
    assert "response" in entry, entry
    result: dict[str, Any] = entry["response"]
    return result


async def connected(sandbox: SandboxServer, user: str = "alice") -> Any:
    await sandbox.store.grant(user, sandbox.toolkits)
    return await sandbox.router().session(user)


async def run(session: ClientSession, slug: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return response(await execute(session, (slug, arguments)))


async def test_slack_send_update_history_thread_and_channels(
    sandbox: SandboxServer, pool: asyncpg.Pool
) -> None:
    endpoint = await connected(sandbox)
    with anyio.fail_after(15):
        async with user_session(endpoint) as s:
            sent = await run(
                s, "SLACK_SEND_MESSAGE", {"channel": "#alerts", "markdown_text": "*checkout* 5xx"}
            )
            channel, ts = sent["data"]["channel"], sent["data"]["ts"]
            reply = await run(
                s, "SLACK_SEND_MESSAGE", {"channel": channel, "text": "looking", "thread_ts": ts}
            )
            updated = await run(
                s, "SLACK_UPDATE_MESSAGE", {"channel": "alerts", "ts": ts, "text": "resolved"}
            )
            missing = await run(
                s, "SLACK_UPDATE_MESSAGE", {"channel": "alerts", "ts": "1.000001", "text": "x"}
            )
            empty = await run(s, "SLACK_SEND_MESSAGE", {"channel": "#alerts"})
            history = await run(s, "SLACK_FETCH_CONVERSATION_HISTORY", {"channel": "#alerts", "limit": 1})
            thread = await run(
                s, "SLACK_FETCH_MESSAGE_THREAD_FROM_A_CONVERSATION", {"channel": "#alerts", "ts": ts}
            )
            channels = await run(s, "SLACK_LIST_ALL_CHANNELS", {})
    assert sent["successful"]
    assert sent["data"]["ok"]
    assert channel.startswith("C")
    assert float(ts) > 1e9
    assert sent["data"]["message"]["text"] == "*checkout* 5xx"
    assert reply["data"]["message"]["thread_ts"] == ts
    assert updated["successful"]
    assert updated["data"] == {
        "ok": True,
        "channel": channel,
        "ts": ts,
        "text": "resolved",
    }
    assert not missing["successful"]
    assert missing["error"] == "message_not_found"
    assert not empty["successful"]
    assert empty["error"].startswith("no_text")
    assert history["data"]["has_more"] is True
    assert len(history["data"]["messages"]) == 1
    assert [m["text"] for m in thread["data"]["messages"]] == ["resolved", "looking"]
    assert thread["data"]["messages"][0]["edited"]
    assert channels["data"]["channels"] == [{"id": channel, "name": "alerts", "is_channel": True}]
    text = await pool.fetchval(
        "SELECT text FROM sandbox_slack_messages WHERE ts = $1 AND user_id = 'alice'", ts
    )
    assert text == "resolved"


async def test_jira_create_search_comment_get_transition(sandbox: SandboxServer, pool: asyncpg.Pool) -> None:
    endpoint = await connected(sandbox)
    issue = {
        "project": "ops",
        "summary": "Checkout error rate 12%",
        "issuetype": "Bug",
        "description": "fingerprint lw-abc",
        "labels": ["logwarden", "lw-abc"],
        "priority": "High",
    }
    with anyio.fail_after(15):
        async with user_session(endpoint) as s:
            first = await run(s, "JIRA_CREATE_ISSUE", issue)
            second = await run(s, "JIRA_CREATE_ISSUE", {"project": "OPS", "summary": "Another"})
            other = await run(s, "JIRA_CREATE_ISSUE", {"project": "WEB", "summary": "Web"})
            bad_label = await run(
                s, "JIRA_CREATE_ISSUE", {"project": "OPS", "summary": "x", "labels": ["a b"]}
            )
            by_label = await run(s, "JIRA_SEARCH_ISSUES", {"labels": ["lw-abc"]})
            by_jql = await run(s, "JIRA_SEARCH_ISSUES", {"jql": "project = OPS AND statusCategory != Done"})
            bad_jql = await run(s, "JIRA_SEARCH_ISSUES", {"jql": "project = OPS OR project = WEB"})
            comment = await run(s, "JIRA_ADD_COMMENT", {"issue_key": "OPS-1", "comment": "still firing"})
            no_issue = await run(s, "JIRA_ADD_COMMENT", {"issue_key": "OPS-99", "comment": "x"})
            done = await run(
                s, "JIRA_TRANSITION_ISSUE", {"issue_key": "OPS-1", "transition": "Done", "comment": "ok"}
            )
            fetched = await run(s, "JIRA_GET_ISSUE", {"issue_key": "ops-1"})
            comments = await run(s, "JIRA_LIST_ISSUE_COMMENTS", {"issue_key": "OPS-1"})
            open_now = await run(s, "JIRA_SEARCH_ISSUES", {"jql": "statusCategory != Done", "project": "OPS"})
    assert (first["data"]["key"], second["data"]["key"], other["data"]["key"]) == ("OPS-1", "OPS-2", "WEB-1")
    assert not bad_label["successful"]
    assert "spaces" in bad_label["error"]
    assert [i["key"] for i in by_label["data"]["issues"]] == ["OPS-1"]
    assert by_label["data"]["issues"][0]["fields"]["labels"] == ["logwarden", "lw-abc"]
    assert {i["key"] for i in by_jql["data"]["issues"]} == {"OPS-1", "OPS-2"}
    assert not bad_jql["successful"]
    assert "OR is not supported" in bad_jql["error"]
    assert comment["successful"]
    assert comment["data"]["issue_key"] == "OPS-1"
    assert not no_issue["successful"]
    assert done["data"] == {"key": "OPS-1", "status": "Done"}
    assert fetched["data"]["fields"]["status"]["name"] == "Done"
    assert fetched["data"]["fields"]["issuetype"]["name"] == "Bug"
    assert [c["body"] for c in comments["data"]["comments"]] == ["still firing", "ok"]
    assert [i["key"] for i in open_now["data"]["issues"]] == ["OPS-2"]
    assert await pool.fetchval("SELECT count(*) FROM sandbox_jira_issues WHERE user_id = 'alice'") == 3


async def test_pagerduty_dedup_key_returns_the_same_open_incident(sandbox: SandboxServer) -> None:
    endpoint = await connected(sandbox)
    trigger = {
        "incident__title": "checkout 5xx critical",
        "incident__service__id": "PSVC1",
        "incident__urgency": "high",
        "incident__incident_key": "incident-42",
    }
    with anyio.fail_after(15):
        async with user_session(endpoint) as s:
            first = await run(s, "PAGERDUTY_CREATE_INCIDENT_RECORD", trigger)
            again = await run(s, "PAGERDUTY_CREATE_INCIDENT_RECORD", {**trigger, "incident__title": "retry"})
            other_service = await run(
                s, "PAGERDUTY_CREATE_INCIDENT_RECORD", {**trigger, "incident__service__id": "PSVC2"}
            )
            incident_id = first["data"]["incident"]["id"]
            acked = await run(
                s, "PAGERDUTY_UPDATE_INCIDENT", {"id": incident_id, "incident__status": "acknowledged"}
            )
            resolved = await run(
                s,
                "PAGERDUTY_UPDATE_INCIDENT",
                {"id": incident_id, "incident__status": "resolved", "incident__resolution": "recovered"},
            )
            twice = await run(
                s, "PAGERDUTY_UPDATE_INCIDENT", {"id": incident_id, "incident__status": "resolved"}
            )
            after = await run(s, "PAGERDUTY_CREATE_INCIDENT_RECORD", trigger)
            fetched = await run(s, "PAGERDUTY_GET_INCIDENT", {"id": incident_id})
            listed = await run(
                s,
                "PAGERDUTY_LIST_INCIDENTS",
                {"incident_key": "incident-42", "statuses": ["triggered"], "service_ids": ["PSVC1"]},
            )
            unknown = await run(s, "PAGERDUTY_GET_INCIDENT", {"id": "QNOPE"})
    assert first["data"]["deduplicated"] is False
    assert incident_id.startswith("Q")
    assert first["data"]["incident"]["status"] == "triggered"
    assert again["data"]["deduplicated"] is True
    assert again["data"]["incident"]["id"] == incident_id
    assert again["data"]["incident"]["title"] == "checkout 5xx critical"
    assert other_service["data"]["incident"]["id"] != incident_id
    assert acked["data"]["incident"]["status"] == "acknowledged"
    assert resolved["data"]["incident"]["status"] == "resolved"
    assert resolved["data"]["incident"]["resolve_reason"] == "recovered"
    assert not twice["successful"]
    assert twice["error"] == "Incident Already Resolved"
    assert after["data"]["deduplicated"] is False
    assert after["data"]["incident"]["id"] != incident_id
    assert fetched["data"]["incident"]["status"] == "resolved"
    assert [i["id"] for i in listed["data"]["incidents"]] == [after["data"]["incident"]["id"]]
    assert not unknown["successful"]


async def test_concurrent_triggers_with_one_dedup_key_open_one_incident(sandbox: SandboxServer) -> None:
    endpoint = await connected(sandbox)
    trigger = {"incident__title": "t", "incident__service__id": "PSVC1", "incident__incident_key": "k-1"}
    ids: list[str] = []

    async def fire() -> None:
        async with user_session(endpoint) as s:
            ids.append((await run(s, "PAGERDUTY_CREATE_INCIDENT_RECORD", trigger))["data"]["incident"]["id"])

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(fire)
    assert len(ids) == 4
    assert len(set(ids)) == 1


async def test_deliveries_record_user_tool_arguments_reference_and_outcome(sandbox: SandboxServer) -> None:
    endpoint = await connected(sandbox)
    with anyio.fail_after(15):
        async with user_session(endpoint) as s:
            envelope = await execute(
                s,
                ("SLACK_SEND_MESSAGE", {"channel": "#alerts", "text": "hello"}),
                ("JIRA_CREATE_ISSUE", {"project": "OPS", "summary": "s", "labels": ["lw-1"]}),
                ("PAGERDUTY_CREATE_INCIDENT_RECORD", {"incident__title": "t", "incident__service__id": "P1"}),
                ("JIRA_ADD_COMMENT", {"issue_key": "OPS-404", "comment": "nope"}),
                ("SLACK_CREATE_CHANNEL", {"name": "war-room"}),
                ("JIRA_CREATE_ISSUE", {"summary": "no project"}),
            )
    assert envelope["data"]["error_count"] == 3
    assert not envelope["successful"]
    results = envelope["data"]["results"]
    assert results[4]["error_code"] == "not_supported_in_sandbox"
    assert results[5]["error_code"] == "invalid_arguments"
    assert "'project' is a required property" in results[5]["error"]
    deliveries = await sandbox.store.deliveries("alice")
    assert [(d.tool_slug, d.toolkit, d.outcome) for d in deliveries] == [
        ("SLACK_SEND_MESSAGE", "slack", "ok"),
        ("JIRA_CREATE_ISSUE", "jira", "ok"),
        ("PAGERDUTY_CREATE_INCIDENT_RECORD", "pagerduty", "ok"),
        ("JIRA_ADD_COMMENT", "jira", "failed"),
    ]
    slack, jira, pd, comment = deliveries
    assert slack.external_ref == results[0]["response"]["data"]["ts"]
    assert jira.external_ref == "OPS-1"
    assert pd.external_ref == results[2]["response"]["data"]["incident"]["id"]
    assert slack.arguments == {"channel": "#alerts", "text": "hello"}
    assert jira.arguments["labels"] == ["lw-1"]
    assert comment.error is not None
    assert comment.external_ref is None
    connections = await sandbox.router().connections("alice")
    assert slack.connection_id == connections["slack"].account_id
    assert all(d.user_id == "alice" and d.created_at is not None for d in deliveries)


async def test_state_survives_a_restart_and_is_shared_by_two_servers(pool: asyncpg.Pool) -> None:
    async with SandboxServer(pool) as one:
        endpoint = await connected(one)
        with anyio.fail_after(15):
            async with user_session(endpoint) as s:
                await run(s, "JIRA_CREATE_ISSUE", {"project": "OPS", "summary": "first"})
    async with SandboxServer(pool) as two, SandboxServer(pool) as three:
        assert two.origin != three.origin
        with anyio.fail_after(15):
            async with user_session(await two.router().session("alice")) as s2:
                created = await run(s2, "JIRA_CREATE_ISSUE", {"project": "OPS", "summary": "second"})
            async with user_session(await three.router().session("alice")) as s3:
                found = await run(s3, "JIRA_SEARCH_ISSUES", {"project": "OPS"})
    assert created["data"]["key"] == "OPS-2"
    assert {i["key"] for i in found["data"]["issues"]} == {"OPS-1", "OPS-2"}
