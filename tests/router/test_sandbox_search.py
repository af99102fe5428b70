"""Pure: the catalogue, the search ranking and the JQL subset."""

from __future__ import annotations

import jsonschema
import pytest

from router.base import DEFAULT_TOOLKITS
from router.sandbox import CATALOGUE
from router.sandbox.executor import HANDLERS
from router.sandbox.jql import JqlError, parse
from router.sandbox.search import ToolIndex, stem, terms


def test_catalogue_has_a_realistic_number_of_tools_per_toolkit() -> None:
    assert CATALOGUE.toolkits == DEFAULT_TOOLKITS
    for toolkit in DEFAULT_TOOLKITS:
        assert len(CATALOGUE.tools([toolkit])) >= 12, toolkit
    assert all(t.slug.startswith(t.toolkit.upper() + "_") for t in CATALOGUE.tools())


def test_every_schema_is_valid_json_schema_and_every_handler_has_a_tool() -> None:
    for tool in CATALOGUE.tools():
        jsonschema.Draft202012Validator.check_schema(tool.input_schema)
        assert tool.description
        assert tool.name
    assert set(HANDLERS) <= {t.slug for t in CATALOGUE.tools()}
    required = {
        "SLACK_SEND_MESSAGE",
        "SLACK_UPDATE_MESSAGE",
        "JIRA_SEARCH_ISSUES",
        "JIRA_CREATE_ISSUE",
        "JIRA_ADD_COMMENT",
        "PAGERDUTY_CREATE_INCIDENT_RECORD",
        "PAGERDUTY_UPDATE_INCIDENT",
    }
    assert required <= set(HANDLERS)


def test_lookup_is_case_insensitive() -> None:
    tool = CATALOGUE.get(" slack_send_message ")
    assert tool is not None
    assert tool.slug == "SLACK_SEND_MESSAGE"
    assert CATALOGUE.get("NOPE_TOOL") is None


@pytest.mark.parametrize(
    ("word", "expected"),
    [("messages", "messag"), ("message", "messag"), ("created", "creat"), ("creating", "creat"),
     ("incidents", "incident"), ("issues", "issu"), ("policies", "policy"), ("class", "class"), ("pd", "pd")],
)  # fmt: skip
def test_stem(word: str, expected: str) -> None:
    assert stem(word) == expected


def test_terms_drop_stop_words_and_split_slugs() -> None:
    assert terms("Send a message to the #alerts channel") == ["send", "messag", "alert", "channel"]
    assert terms("SLACK_SEND_MESSAGE") == ["slack", "send", "messag"]


INDEX = ToolIndex(CATALOGUE.tools())


@pytest.mark.parametrize(
    ("use_case", "best"),
    [
        ("post a message to the #alerts channel in Slack", "SLACK_SEND_MESSAGE"),
        ("notify the team in slack", "SLACK_SEND_MESSAGE"),
        ("send a slack message", "SLACK_SEND_MESSAGE"),
        ("schedule a slack message for later", "SLACK_SCHEDULE_MESSAGE"),
        ("edit the slack message we posted earlier", "SLACK_UPDATE_MESSAGE"),
        ("create a jira ticket for the checkout errors", "JIRA_CREATE_ISSUE"),
        ("find an existing jira issue with label lw-abc", "JIRA_SEARCH_ISSUES"),
        ("add a comment to the jira issue", "JIRA_ADD_COMMENT"),
        ("page the on-call engineer", "PAGERDUTY_CREATE_INCIDENT_RECORD"),
        ("trigger a pagerduty incident with a dedup key", "PAGERDUTY_CREATE_INCIDENT_RECORD"),
        ("resolve the pagerduty incident, the service recovered", "PAGERDUTY_UPDATE_INCIDENT"),
        ("who is on call right now", "PAGERDUTY_LIST_ONCALLS"),
    ],
)
def test_search_ranks_the_right_tool_first(use_case: str, best: str) -> None:
    ranking = INDEX.rank(use_case)
    assert ranking.primary[0].slug == best, [h.slug for h in ranking.primary + ranking.related]


def test_search_is_deterministic_and_ordered() -> None:
    first = INDEX.scores("send an alert about an incident")
    assert first == INDEX.scores("send an alert about an incident")
    assert [h.score for h in first] == sorted((h.score for h in first), reverse=True)
    assert len({h.slug for h in first}) == len(first)


def test_search_with_no_matching_words_finds_nothing() -> None:
    ranking = INDEX.rank("zzz qqq")
    assert ranking.primary == ()
    assert ranking.related == ()
    assert ranking.toolkits == ()


def test_naming_a_toolkit_boosts_it() -> None:
    plain = {h.slug: h.score for h in INDEX.scores("list users")}
    named = INDEX.rank("list users in pagerduty")
    assert named.primary[0].slug == "PAGERDUTY_LIST_USERS"
    assert (
        plain["PAGERDUTY_LIST_USERS"]
        < {h.slug: h.score for h in INDEX.scores("list users in pagerduty")}["PAGERDUTY_LIST_USERS"]
    )


def test_primary_hits_are_close_to_the_best_and_related_follow() -> None:
    ranking = INDEX.rank("create jira issue")
    assert 1 <= len(ranking.primary) <= 3
    assert len(ranking.related) <= 5
    best = ranking.primary[0].score
    assert all(h.score >= best / 2 for h in ranking.primary)
    assert all(r.score <= ranking.primary[-1].score for r in ranking.related)


ISSUES = [
    {"key": "OPS-1", "project": "OPS", "labels": ["lw-a", "sev2"], "status": "To Do",
     "summary": "Checkout 5xx", "description": "errors spiking", "issuetype": "Bug", "priority": "High",
     "created": "2026-01-01"},
    {"key": "OPS-2", "project": "OPS", "labels": ["lw-b"], "status": "Done", "summary": "Login slow",
     "description": None, "issuetype": "Task", "priority": None, "created": "2026-01-02"},
    {"key": "WEB-1", "project": "WEB", "labels": [], "status": "In Progress", "summary": "Checkout button",
     "description": "css", "issuetype": "Task", "priority": "Low", "created": "2026-01-03"},
]  # fmt: skip


@pytest.mark.parametrize(
    ("jql", "keys"),
    [
        ("", ["WEB-1", "OPS-2", "OPS-1"]),
        ("project = OPS", ["OPS-2", "OPS-1"]),
        ('project = ops AND labels = "lw-a"', ["OPS-1"]),
        ("labels in (lw-a, lw-b) ORDER BY key ASC", ["OPS-1", "OPS-2"]),
        ("labels not in (lw-a)", ["WEB-1", "OPS-2"]),
        ("statusCategory != Done", ["WEB-1", "OPS-1"]),
        ('status = "In Progress"', ["WEB-1"]),
        ("summary ~ checkout ORDER BY created ASC", ["OPS-1", "WEB-1"]),
        ("text ~ spiking", ["OPS-1"]),
        ("issuetype = Task AND project != OPS", ["WEB-1"]),
        ("key = ops-2", ["OPS-2"]),
    ],
)
def test_jql_subset(jql: str, keys: list[str]) -> None:
    query = parse(jql)
    assert [i["key"] for i in query.sort([i for i in ISSUES if query.matches(i)])] == keys


@pytest.mark.parametrize(
    ("jql", "message"),
    [
        ("project = OPS OR project = WEB", "OR is not supported"),
        ("assignee = me", "unknown field"),
        ("project > 3", "unsupported operator"),
        ("project ~ OPS", "summary and text only"),
        ("labels in (a, b", "unterminated"),
        ("project =", "expected a value"),
        ("project = OPS ORDER BY votes", "cannot order by"),
        ('summary ~ "unterminated', "cannot read"),
    ],
)
def test_jql_errors_say_what_is_wrong(jql: str, message: str) -> None:
    with pytest.raises(JqlError, match=message):
        parse(jql)
