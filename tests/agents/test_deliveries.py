"""The deliveries record on PostgreSQL: reservations, take-overs, fencing, rate-limit counts."""

from __future__ import annotations

import asyncpg
import pytest

from agents.deliveries import ActionRequest, Claim, DeliveryLost, DeliveryStore
from agents.planner import ActionKind
from agents.policy import BUILTIN_POLICY, Channel
from detector.models import JobKind
from tests.agents.support import claim

pytestmark = pytest.mark.anyio


async def _request(
    pool: asyncpg.Pool, action: ActionKind = ActionKind.SLACK_POST, service: str = "checkout", **extra: object
) -> ActionRequest:
    made = await claim(pool, "critical", service=service)
    assert made.incident_id is not None
    assert made.job_id is not None
    channel = Channel(action.value.split(".")[0])
    fields: dict[str, object] = {
        "key": f"logwarden-{made.incident_id}/open/{action.value}",
        "incident_id": made.incident_id,
        "job_id": made.job_id,
        "job_kind": JobKind.OPEN,
        "owner": "operator",
        "channel": channel,
        "action": action,
        "tool_slug": "SLACK_SEND_MESSAGE",
        "target": "#alerts",
        "arguments": {"channel": "#alerts", "markdown_text": "hi", "token": "xoxb-12345678901234"},
        "path": "rules",
        **extra,
    }
    return ActionRequest(**fields)  # type: ignore[arg-type]


async def test_a_key_is_reserved_once_then_answered_from_the_record(pool: asyncpg.Pool) -> None:
    store = DeliveryStore(pool)
    req = await _request(pool)
    first = await store.reserve(req)
    assert (first.claim, first.attempts) == (Claim.NEW, 1)
    assert (await store.reserve(req, in_flight_grace=3600)).claim is Claim.IN_FLIGHT
    await store.complete(first, "1700000000.000001")
    done = await store.reserve(req)
    assert (done.claim, done.external_ref) == (Claim.DONE, "1700000000.000001")
    [row] = await store.for_incident(req.incident_id)
    assert (row.status, row.attempts, row.external_ref) == ("sent", 1, "1700000000.000001")
    assert row.arguments == {"channel": "#alerts", "markdown_text": "hi", "token": "***"}
    prior = await store.prior(req.incident_id)
    assert [(p.channel, p.action, p.target, p.external_ref) for p in prior] == [
        (Channel.SLACK, ActionKind.SLACK_POST, "#alerts", "1700000000.000001")
    ]


async def test_a_failed_attempt_is_retried_and_an_unfinished_one_is_taken_over(pool: asyncpg.Pool) -> None:
    store = DeliveryStore(pool)
    req = await _request(pool)
    first = await store.reserve(req)
    await store.fail(first, "rate_limited: try later", retryable=True)
    second = await store.reserve(req)
    assert (second.claim, second.attempts) == (Claim.RETRY, 2)
    third = await store.reserve(req, in_flight_grace=0)  # the second never finished
    assert (third.claim, third.attempts) == (Claim.UNKNOWN, 3)
    assert third.previous_reserved_at is not None
    with pytest.raises(DeliveryLost):  # the taken-over attempt cannot write its outcome any more
        await store.complete(second, "late")
    with pytest.raises(DeliveryLost):
        await store.fail(second, "late", retryable=False)
    await store.complete(third, "ts-3", recovered="found by SLACK_FETCH_CONVERSATION_HISTORY")
    [row] = await store.for_incident(req.incident_id)
    assert (row.status, row.attempts, row.recovered) == (
        "sent",
        3,
        "found by SLACK_FETCH_CONVERSATION_HISTORY",
    )


async def test_new_notifications_count_against_the_owners_rate_limits(pool: asyncpg.Pool) -> None:
    store = DeliveryStore(pool)
    policy = BUILTIN_POLICY.for_service("shop", "checkout")
    post = await _request(pool)
    page = await _request(pool, ActionKind.PAGERDUTY_TRIGGER, "cart")
    update = await _request(pool, ActionKind.SLACK_UPDATE, "search")
    failed = await _request(pool, service="login")
    for req in (post, page, update):
        await store.complete(await store.reserve(req), "ref")
    await store.fail(await store.reserve(failed), "boom", retryable=False)
    # PagerDuty has no limit in the built-in policy; updates and failures are not new notifications
    assert await store.sent_in_window("operator", policy) == {Channel.SLACK: 1, Channel.JIRA: 0}
    assert await store.sent_in_window("someone-else", policy) == {Channel.SLACK: 0, Channel.JIRA: 0}
