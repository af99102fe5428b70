"""The rules planner's tool calls: slugs, arguments, idempotency keys, lookups and notices."""

from datetime import UTC, datetime
from typing import Any

import pytest

from agents.planner import ActionKind, Plan, PlanInput, PriorDelivery, SkipReason, plan
from agents.policy import BUILTIN_POLICY, Channel
from agents.policy_file import parse_policy
from agents.scenarios import incident_from_facts
from agents.tool_catalog import SLUGS_BY_CHANNEL, Tool, build_call, result_reference
from agents.triage_rules import Action, DecisionPath, TriageVerdict, Urgency
from detector.models import JobKind
from router.base import Connection, ConnectionState

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
CRITICAL = {"severity": "critical", "occurrences": 4, "open_seconds": 300, "errors": 250, "score": 0.99}


def _verdict(action: Action, *channels: Channel) -> TriageVerdict:
    return TriageVerdict(action, channels, Urgency.HIGH, "test", DecisionPath.RULES, "test")


def _plan(
    verdict: TriageVerdict,
    kind: JobKind = JobKind.OPEN,
    facts: dict[str, Any] | None = None,
    states: dict[str, str] | None = None,
    prior: tuple[PriorDelivery, ...] = (),
    links: dict[str, str] | None = None,
    policy: Any = None,
    now: datetime = NOW,
) -> Plan:
    data = {"id": 42, "project": "shop", "service": "checkout", "events": 3000, **(facts or CRITICAL)}
    incident = incident_from_facts(data, now)
    conns = {c.value: "active" for c in Channel} | (states or {})
    return plan(
        PlanInput(
            job_id=7,
            kind=kind,
            incident=incident,
            policy=(policy or BUILTIN_POLICY).for_service("shop", "checkout"),
            connections={k: Connection(k, ConnectionState(v)) for k, v in conns.items()},
            verdict=verdict,
            now=now,
            prior=prior,
            connect_links=links or {},
        )
    )


def test_a_page_uses_the_incident_key_as_pagerduty_dedup_key() -> None:
    p = _plan(_verdict(Action.PAGE, Channel.PAGERDUTY, Channel.SLACK))
    trigger, post = p.actions
    assert (trigger.kind, trigger.call.slug) == (
        ActionKind.PAGERDUTY_TRIGGER,
        "PAGERDUTY_CREATE_INCIDENT_RECORD",
    )
    args = trigger.call.arguments
    assert args["incident__incident_key"] == "logwarden-42"
    assert args["incident__service__id"] == "PDEFAULT"
    assert args["incident__urgency"] == "high"
    assert args["incident__title"] == "[CRITICAL] shop/checkout: error-rate anomaly (incident 42)"
    assert trigger.idempotency_key == "logwarden-42/open/pagerduty.trigger"
    assert (post.call.slug, post.call.arguments["channel"]) == ("SLACK_SEND_MESSAGE", "#alerts")
    assert "thread_ts" not in post.call.arguments


def test_jira_searches_by_label_before_creating() -> None:
    p = _plan(_verdict(Action.NOTIFY, Channel.JIRA), kind=JobKind.REPEAT)
    (create,) = p.actions
    assert create.kind is ActionKind.JIRA_CREATE
    assert create.call.arguments["labels"] == ["logwarden-42"]
    assert create.call.arguments["project"] == "OPS"
    assert create.call.arguments["issuetype"] == "Bug"
    assert create.lookup is not None
    assert create.lookup.slug == "JIRA_SEARCH_ISSUES"
    assert create.lookup.arguments == {"jql": 'labels = "logwarden-42"', "max_results": 1}
    assert create.lookup_fills is None  # found → the ticket exists already: no second create
    assert create.idempotency_key == "logwarden-42/repeat/jira.create/7"  # repeats are per job


def test_closing_uses_stored_references_or_looks_them_up() -> None:
    prior = (
        PriorDelivery(Channel.PAGERDUTY, ActionKind.PAGERDUTY_TRIGGER, "PDEFAULT", None),
        PriorDelivery(Channel.SLACK, ActionKind.SLACK_POST, "#old-room", "1700000000.000100"),
        PriorDelivery(Channel.JIRA, ActionKind.JIRA_CREATE, "OPS/Bug", None, JobKind.REPEAT),
    )
    p = _plan(
        _verdict(Action.CLOSE, Channel.PAGERDUTY, Channel.SLACK, Channel.JIRA),
        kind=JobKind.RESOLVE,
        facts={**CRITICAL, "status": "resolved"},
        prior=prior,
    )
    resolve, update, comment = p.actions
    assert resolve.call.slug == "PAGERDUTY_UPDATE_INCIDENT"
    assert resolve.call.arguments["incident__status"] == "resolved"
    assert "id" not in resolve.call.arguments
    assert resolve.lookup is not None
    assert resolve.lookup.slug == "PAGERDUTY_LIST_INCIDENTS"
    assert resolve.lookup.arguments["incident_key"] == "logwarden-42"
    assert resolve.lookup_fills == "id"
    assert (update.call.slug, update.target) == ("SLACK_UPDATE_MESSAGE", "#old-room")
    assert update.call.arguments["ts"] == "1700000000.000100"
    assert update.lookup is None
    assert comment.call.slug == "JIRA_ADD_COMMENT"
    assert comment.lookup_fills == "issue_key"
    assert "resolved:" in str(update.call.arguments["markdown_text"])


def test_a_repeat_replies_in_the_thread_of_the_first_message() -> None:
    prior = (PriorDelivery(Channel.SLACK, ActionKind.SLACK_POST, "#alerts", "1700000000.000100"),)
    p = _plan(_verdict(Action.NOTIFY, Channel.SLACK), kind=JobKind.REPEAT, prior=prior)
    (post,) = p.actions
    assert post.call.arguments["thread_ts"] == "1700000000.000100"


def test_fallback_tells_the_owner_with_the_connect_link() -> None:
    p = _plan(
        _verdict(Action.PAGE, Channel.PAGERDUTY, Channel.SLACK),
        states={"pagerduty": "expired"},
        links={"pagerduty": "https://connect.example/lt_1"},
    )
    (post,) = p.actions
    assert post.fallback_for is Channel.PAGERDUTY
    text = str(post.call.arguments["markdown_text"])
    assert "pagerduty is not connected for operator; sent to #alerts instead." in text
    assert "https://connect.example/lt_1" in text
    (skip,) = p.skipped
    assert (skip.channel, skip.reason) == (Channel.PAGERDUTY, SkipReason.NOT_CONNECTED)
    assert skip.detail == "pagerduty connection for operator is expired"
    assert p.connect_needed == ("pagerduty",)


def test_nothing_deliverable_is_flagged() -> None:
    p = _plan(
        _verdict(Action.PAGE, Channel.PAGERDUTY, Channel.SLACK),
        states={"pagerduty": "missing", "slack": "missing", "jira": "missing"},
    )
    assert p.actions == ()
    assert p.undelivered
    assert not _plan(_verdict(Action.IGNORE)).undelivered


def test_skip_details_explain_the_policy() -> None:
    policy = parse_policy('[defaults.jira]\nenabled = false\n[defaults.slack]\nseverities = ["warning"]\n')
    p = _plan(_verdict(Action.NOTIFY, Channel.SLACK, Channel.JIRA), policy=policy)
    details = {s.channel: (s.reason, s.detail) for s in p.skipped}
    assert details[Channel.SLACK] == (SkipReason.NOT_ALLOWED, "slack is allowed for warning, not critical")
    assert details[Channel.JIRA] == (SkipReason.NOT_ALLOWED, "jira is disabled for shop/checkout")


def test_quiet_hours_report_when_to_retry() -> None:
    policy = parse_policy(
        '[defaults]\ntimezone = "Asia/Tokyo"\nquiet_hours = { start = "20:00", end = "08:00" }\n'
    )
    warning = {"severity": "warning", "errors": 90, "score": 0.9}
    p = _plan(_verdict(Action.NOTIFY, Channel.SLACK), facts=warning, policy=policy)  # 23:00 in Tokyo
    assert [s.reason for s in p.skipped] == [SkipReason.QUIET_HOURS]
    assert p.resume_at == datetime(2026, 3, 2, 23, 0, tzinfo=UTC)  # 08:00 JST


def test_log_text_is_neutralised_in_notifications() -> None:
    facts = {**CRITICAL, "messages": ["boom <!here> `code` & <@U123>\n\x07second line"]}
    p = _plan(_verdict(Action.NOTIFY, Channel.SLACK), facts=facts)
    text = str(p.actions[0].call.arguments["markdown_text"])
    assert "> `boom &lt;!here&gt; 'code' &amp; &lt;@U123&gt; second line`" in text
    assert "<!here>" not in text


def test_planning_is_deterministic() -> None:
    verdict = _verdict(Action.PAGE, Channel.PAGERDUTY, Channel.SLACK, Channel.JIRA)
    assert _plan(verdict) == _plan(verdict)


def test_the_catalogue_maps_logical_fields_and_reads_references() -> None:
    call = build_call(Tool.SLACK_SEND, {"target": "#a", "text": "hi", "thread": None})
    assert dict(call.arguments) == {"channel": "#a", "markdown_text": "hi"}
    with pytest.raises(KeyError):  # an unknown logical field is never dropped silently
        build_call(Tool.SLACK_SEND, {"chanel": "#a"})
    assert result_reference(Tool.JIRA_SEARCH, {"issues": [{"key": "OPS-3"}]}) == "OPS-3"
    assert result_reference(Tool.JIRA_SEARCH, {"issues": []}) is None
    assert result_reference(Tool.PAGERDUTY_TRIGGER, {"incident": {"id": "Q1"}}) == "Q1"
    assert result_reference(Tool.SLACK_SEND, "not a mapping") is None
    assert SLUGS_BY_CHANNEL[Channel.PAGERDUTY] == {
        "PAGERDUTY_CREATE_INCIDENT_RECORD",
        "PAGERDUTY_LIST_INCIDENTS",
        "PAGERDUTY_UPDATE_INCIDENT",
    }


def test_titles_fit_a_jira_summary() -> None:
    facts = {**CRITICAL, "service": "s" * 200, "project": "p" * 200}
    p = _plan(_verdict(Action.NOTIFY, Channel.JIRA), kind=JobKind.REPEAT, facts=facts)
    summary = str(p.actions[0].call.arguments["summary"])
    assert len(summary) == 250
    assert summary.endswith("…")


def test_a_channel_already_acting_carries_the_connect_notice() -> None:
    prior = (PriorDelivery(Channel.SLACK, ActionKind.SLACK_POST, "#alerts", "1700000000.000100"),)
    p = _plan(
        _verdict(Action.NOTIFY, Channel.SLACK, Channel.JIRA),
        kind=JobKind.REPEAT,
        facts={"severity": "warning", "errors": 30, "score": 0.8},
        states={"jira": "missing"},
        prior=prior,
        links={"jira": "https://connect.example/jira"},
    )
    (post,) = p.actions
    assert (post.kind, post.fallback_for) == (ActionKind.SLACK_POST, Channel.JIRA)
    text = str(post.call.arguments["markdown_text"])
    assert (
        "jira is not connected for operator; sent to #alerts instead. Connect it: https://connect.example/jira"
        in text
    )
    assert p.connect_needed == ("jira",)
