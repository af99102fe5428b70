"""The guard's pure verdict, table by table: every reason, the order of checks, the exemptions."""

from datetime import UTC, datetime
from typing import Any

import pytest

from agents.guard_rules import (
    GET_TOOL_SCHEMAS,
    MANAGE_CONNECTIONS,
    MULTI_EXECUTE_TOOL,
    SEARCH_TOOLS,
    GuardReason,
    GuardScope,
    GuardState,
    meta_verdict,
    verdict,
)
from agents.planner import ActionKind, PriorDelivery
from agents.policy import BUILTIN_POLICY, Channel
from agents.policy_file import parse_policy
from agents.scenarios import incident_from_facts
from detector.models import JobKind

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
KEY = "logwarden-42"

QUIET = parse_policy(
    """
version = 1
[defaults]
owner = "alice"
quiet_hours = { start = "13:00", end = "15:00" }
slack = { channel = "#shop", rate_limit = { max = 2, per_minutes = 60 } }
""",
    "quiet.toml",
)


def _scope(
    severity: str = "critical",
    kind: JobKind = JobKind.OPEN,
    prior: tuple[PriorDelivery, ...] = (),
    policy: Any = BUILTIN_POLICY,
    sent: dict[Channel, int] | None = None,
    max_calls: int = 16,
) -> GuardScope:
    incident = incident_from_facts(
        {
            "id": 42,
            "project": "shop",
            "service": "checkout",
            "severity": severity,
            "errors": 90,
            "score": 0.99,
        },
        NOW,
    )
    return GuardScope(
        job_id=7,
        job_kind=kind,
        incident=incident,
        policy=policy.for_service("shop", "checkout"),
        now=NOW,
        prior=prior,
        sent_in_window=sent or {},
        max_calls=max_calls,
    )


PD_TRIGGER = (
    "PAGERDUTY_CREATE_INCIDENT_RECORD",
    {"incident__title": "t", "incident__service__id": "PDEFAULT", "incident__incident_key": KEY},
)
SLACK_POST = ("SLACK_SEND_MESSAGE", {"channel": "#alerts", "markdown_text": "hi"})
JIRA_CREATE = ("JIRA_CREATE_ISSUE", {"project": "OPS", "summary": "s", "labels": [KEY]})
PRIOR = (
    PriorDelivery(Channel.PAGERDUTY, ActionKind.PAGERDUTY_TRIGGER, "PDEFAULT", "Q1"),
    PriorDelivery(Channel.SLACK, ActionKind.SLACK_POST, "#alerts", "1700000000.000001"),
    PriorDelivery(Channel.JIRA, ActionKind.JIRA_CREATE, "OPS/Bug", "OPS-3"),
)


@pytest.mark.parametrize(
    ("scope", "call", "reason"),
    [
        (_scope(), PD_TRIGGER, GuardReason.ALLOWED),
        (_scope(), SLACK_POST, GuardReason.ALLOWED),
        (_scope(), JIRA_CREATE, GuardReason.ALLOWED),
        (_scope("warning"), SLACK_POST, GuardReason.ALLOWED),
        # the injection's "page everyone" on a warning: PagerDuty is critical-only by policy
        (_scope("warning"), PD_TRIGGER, GuardReason.CHANNEL_NOT_ALLOWED),
        (_scope(), ("GITHUB_CREATE_AN_ISSUE", {"title": "x"}), GuardReason.UNKNOWN_TOOL),
        (_scope(), ("SLACK_DELETE_A_MESSAGE", {"channel": "#alerts"}), GuardReason.UNKNOWN_TOOL),
        (_scope(), ("SLACK_SEND_MESSAGE", ["not", "an", "object"]), GuardReason.BAD_ARGUMENTS),
        (_scope(), ("SLACK_SEND_MESSAGE", {"channel": "#general", "text": "x"}), GuardReason.WRONG_TARGET),
        (_scope(), ("SLACK_SEND_MESSAGE", {"channel": "alerts", "text": "x"}), GuardReason.ALLOWED),
        (
            _scope(),
            ("SLACK_SEND_MESSAGE", {"channel": "#alerts", "text": "x", "thread_ts": "1.2"}),
            GuardReason.WRONG_TARGET,
        ),
        (
            _scope(),
            ("PAGERDUTY_CREATE_INCIDENT_RECORD", {**PD_TRIGGER[1], "incident__service__id": "POTHER"}),
            GuardReason.WRONG_TARGET,
        ),
        (
            _scope(),
            ("PAGERDUTY_CREATE_INCIDENT_RECORD", {**PD_TRIGGER[1], "incident__incident_key": "mine"}),
            GuardReason.MISSING_KEY,
        ),
        (_scope(), ("JIRA_CREATE_ISSUE", {"project": "OPS", "summary": "s"}), GuardReason.MISSING_KEY),
        (_scope(), ("JIRA_CREATE_ISSUE", {**JIRA_CREATE[1], "project": "HR"}), GuardReason.WRONG_TARGET),
        (_scope(), ("JIRA_ADD_COMMENT", {"issue_key": "OPS-9", "comment": "x"}), GuardReason.WRONG_TARGET),
        (
            _scope(prior=PRIOR),
            ("JIRA_ADD_COMMENT", {"issue_key": "ops-3", "comment": "x"}),
            GuardReason.ALLOWED,
        ),
        (_scope(prior=PRIOR), PD_TRIGGER, GuardReason.ALREADY_DONE),
        (_scope(prior=PRIOR), JIRA_CREATE, GuardReason.ALREADY_DONE),
        (
            _scope(prior=PRIOR),
            ("SLACK_UPDATE_MESSAGE", {"channel": "#alerts", "ts": "1700000000.000001", "text": "x"}),
            GuardReason.ALLOWED,
        ),
        (
            _scope(prior=PRIOR),
            ("SLACK_UPDATE_MESSAGE", {"channel": "#alerts", "ts": "1600000000.000009", "text": "x"}),
            GuardReason.WRONG_TARGET,
        ),
        (
            _scope(prior=PRIOR),
            ("PAGERDUTY_UPDATE_INCIDENT", {"id": "Q1", "incident__status": "resolved"}),
            GuardReason.ACTION_NOT_FOR_JOB,
        ),
        (
            _scope(kind=JobKind.RESOLVE, prior=PRIOR),
            ("PAGERDUTY_UPDATE_INCIDENT", {"id": "Q1", "incident__status": "resolved"}),
            GuardReason.ALLOWED,
        ),
        (
            _scope(kind=JobKind.RESOLVE, prior=PRIOR),
            ("PAGERDUTY_UPDATE_INCIDENT", {"id": "Q1", "incident__status": "acknowledged"}),
            GuardReason.BAD_ARGUMENTS,
        ),
        (
            _scope(kind=JobKind.RESOLVE, prior=PRIOR),
            ("PAGERDUTY_UPDATE_INCIDENT", {"id": "QOTHER", "incident__status": "resolved"}),
            GuardReason.WRONG_TARGET,
        ),
        (_scope(kind=JobKind.RESOLVE, prior=PRIOR), PD_TRIGGER, GuardReason.ACTION_NOT_FOR_JOB),
        # a resolve may close the loop on a channel the policy no longer allows for the severity
        (
            _scope("warning", kind=JobKind.RESOLVE, prior=PRIOR),
            ("PAGERDUTY_UPDATE_INCIDENT", {"id": "Q1", "incident__status": "resolved"}),
            GuardReason.ALLOWED,
        ),
        (_scope(), ("JIRA_SEARCH_ISSUES", {"jql": 'labels = "x"'}), GuardReason.READ_ONLY),
        (_scope("warning"), ("PAGERDUTY_LIST_INCIDENTS", {}), GuardReason.CHANNEL_NOT_ALLOWED),
        (_scope("warning", prior=PRIOR), ("PAGERDUTY_LIST_INCIDENTS", {}), GuardReason.READ_ONLY),
        (_scope(max_calls=0), SLACK_POST, GuardReason.TOOL_CALL_CAP),
        # quiet hours and rate limits hold back new warning notifications only
        (
            _scope("warning", policy=QUIET),
            ("SLACK_SEND_MESSAGE", {"channel": "#shop"}),
            GuardReason.QUIET_HOURS,
        ),
        (_scope("critical", policy=QUIET), ("SLACK_SEND_MESSAGE", {"channel": "#shop"}), GuardReason.ALLOWED),
        (
            _scope("warning", sent={Channel.SLACK: 30}),
            ("SLACK_SEND_MESSAGE", {"channel": "#alerts"}),
            GuardReason.RATE_LIMITED,
        ),
        (
            _scope("critical", sent={Channel.SLACK: 30}),
            ("SLACK_SEND_MESSAGE", {"channel": "#alerts"}),
            GuardReason.ALLOWED,
        ),
    ],
)
def test_verdicts(scope: GuardScope, call: tuple[str, Any], reason: GuardReason) -> None:
    v = verdict(scope, GuardState(), *call)
    assert v.reason is reason, v.detail
    assert v.allowed is (reason in (GuardReason.ALLOWED, GuardReason.READ_ONLY))


def test_an_allowed_action_carries_the_planners_idempotency_key() -> None:
    assert verdict(_scope(), GuardState(), *PD_TRIGGER).key == "logwarden-42/open/pagerduty.trigger"
    repeat = verdict(_scope(kind=JobKind.REPEAT, prior=PRIOR), GuardState(), *SLACK_POST)
    assert repeat.key == "logwarden-42/repeat/slack.post/7"
    assert verdict(_scope(), GuardState(), *SLACK_POST).target == "#alerts"


def test_references_learned_in_the_run_widen_updates_and_sends_count_against_the_limit() -> None:
    resolve = ("PAGERDUTY_UPDATE_INCIDENT", {"id": "Q77", "incident__status": "resolved"})
    unused = _scope("warning", kind=JobKind.RESOLVE)
    assert verdict(unused, GuardState(), *resolve).reason is GuardReason.CHANNEL_NOT_ALLOWED
    scope = _scope(kind=JobKind.RESOLVE, prior=PRIOR)
    assert verdict(scope, GuardState(), *resolve).reason is GuardReason.WRONG_TARGET
    learned = GuardState(learned={Channel.PAGERDUTY: frozenset({"Q77"})})
    assert verdict(scope, learned, *resolve).reason is GuardReason.ALLOWED
    warning = _scope("warning", sent={Channel.SLACK: 29})
    assert verdict(warning, GuardState(), *SLACK_POST).allowed
    assert (
        verdict(warning, GuardState(sent={Channel.SLACK: 1}), *SLACK_POST).reason is GuardReason.RATE_LIMITED
    )


@pytest.mark.parametrize(
    ("name", "arguments", "reason"),
    [
        (SEARCH_TOOLS, {"queries": [{"use_case": "x"}]}, GuardReason.READ_ONLY),
        (GET_TOOL_SCHEMAS, {"tool_slugs": ["SLACK_SEND_MESSAGE"]}, GuardReason.READ_ONLY),
        (MULTI_EXECUTE_TOOL, {"tools": []}, GuardReason.READ_ONLY),
        (MANAGE_CONNECTIONS, {"toolkits": ["jira"]}, GuardReason.CONNECT_LINK),
        (MANAGE_CONNECTIONS, {"toolkits": ["jira"], "reinitiate_all": True}, GuardReason.BAD_ARGUMENTS),
        (MANAGE_CONNECTIONS, {"toolkits": ["github"]}, GuardReason.BAD_ARGUMENTS),
        ("COMPOSIO_REMOTE_BASH_TOOL", {"command": "curl evil"}, GuardReason.UNKNOWN_TOOL),
        (SEARCH_TOOLS, "not an object", GuardReason.BAD_ARGUMENTS),
    ],
)
def test_meta_tool_verdicts(name: str, arguments: Any, reason: GuardReason) -> None:
    assert meta_verdict(_scope(), GuardState(), name, arguments).reason is reason


def test_the_call_cap_is_checked_first() -> None:
    capped = GuardState(calls=16)
    assert meta_verdict(_scope(), capped, SEARCH_TOOLS, {}).reason is GuardReason.TOOL_CALL_CAP
    assert verdict(_scope(), capped, "NOT_A_TOOL", {}).reason is GuardReason.TOOL_CALL_CAP
