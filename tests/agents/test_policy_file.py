"""Policy files: every bad key or value is reported with file, line, field path and reason."""

from pathlib import Path

import pytest

from agents.errors import PolicyError, PolicyProblem
from agents.policy import Channel
from agents.policy_file import load_policy, parse_policy
from agents.toml_lines import key_lines, line_of
from detector.models import Severity

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "policy.example.toml"


def _problems(text: str) -> tuple[PolicyProblem, ...]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "policy.toml")
    assert info.value.source == "policy.toml"
    return info.value.problems


BAD = [
    pytest.param(
        '[defaults]\nowner = "ops"\nownr = "x"\n',
        3,
        "defaults.ownr",
        "unknown key 'ownr' (did you mean 'owner'?",
        id="unknown-key-suggests",
    ),
    pytest.param(
        "[defaults.slack]\nchannel = 'alerts'\n",
        2,
        "defaults.slack.channel",
        "must be a channel name such as '#alerts'",
        id="slack-channel-without-hash",
    ),
    pytest.param(
        '[defaults.slack]\nseverities = ["warning", "urgent"]\n',
        2,
        "defaults.slack.severities[1]",
        "Input should be 'warning' or 'critical' (got 'urgent')",
        id="unknown-severity",
    ),
    pytest.param(
        '[defaults.jira]\nproject = "ops"\n',
        2,
        "defaults.jira.project",
        "must be a Jira project key",
        id="jira-key-lowercase",
    ),
    pytest.param(
        '[defaults.pagerduty]\nservice_id = "p-1"\n',
        2,
        "defaults.pagerduty.service_id",
        "must be a PagerDuty service id",
        id="pagerduty-id",
    ),
    pytest.param(
        '[defaults]\ntimezone = "Mars/Olympus"\n',
        2,
        "defaults.timezone",
        "unknown time zone 'Mars/Olympus'",
        id="unknown-timezone",
    ),
    pytest.param(
        '[defaults]\nquiet_hours = { start = "22:00", end = "22:00" }\n',
        2,
        "defaults.quiet_hours",
        "start and end must differ",
        id="quiet-hours-empty",
    ),
    pytest.param(
        '[defaults]\nquiet_hours = { start = "25:00", end = "07:00" }\n',
        2,
        "defaults.quiet_hours.start",
        "must be a 24-hour clock time 'HH:MM'",
        id="quiet-hours-bad-clock",
    ),
    pytest.param(
        '[defaults]\nquiet_hours = { start = "22:00" }\n',
        2,
        "defaults.quiet_hours",
        "start and end are both required",
        id="quiet-hours-half",
    ),
    pytest.param(
        '[defaults.quiet_hours]\nstart = "22:00"\nend = "06:00"\nchannels = ["email"]\n',
        4,
        "defaults.quiet_hours.channels[0]",
        "Input should be 'slack', 'jira' or 'pagerduty' (got 'email')",
        id="quiet-hours-unknown-channel",
    ),
    pytest.param(
        "[defaults.slack]\nrate_limit = { max = 0, per_minutes = 60 }\n",
        2,
        "defaults.slack.rate_limit.max",
        "greater than or equal to 1 (got 0)",
        id="rate-limit-zero",
    ),
    pytest.param(
        '[defaults.slack]\nrate_limit = { max = "ten" }\n',
        2,
        "defaults.slack.rate_limit.max",
        "valid integer (got 'ten')",
        id="rate-limit-string",
    ),
    pytest.param(
        "[defaults.slack]\nrate_limit = { per_minutes = 60 }\n",
        2,
        "defaults.slack.rate_limit",
        "max is required unless enabled = false",
        id="rate-limit-without-max",
    ),
    pytest.param(
        '[defaults.slack]\nenabled = "yes"\n',
        2,
        "defaults.slack.enabled",
        "valid boolean (got 'yes')",
        id="strict-boolean",
    ),
    pytest.param(
        "[defaults.triage]\nignore_below_score = 0.9\nnotify_score = 0.5\n",
        1,
        "defaults.triage",
        "ignore_below_score must not exceed notify_score",
        id="triage-thresholds-order",
    ),
    pytest.param(
        '[[policy]]\nproject = "shop"\n\n[[policy]]\nservice = "db"\n[policy.jira]\nissue_type = ""\n',
        7,
        "policy[1].jira.issue_type",
        "at least 1 character",
        id="second-array-entry-subtable",
    ),
    pytest.param(
        '[[policy]]\nproject = "shop team"\n',
        2,
        "policy[0].project",
        "without spaces",
        id="pattern-with-space",
    ),
    pytest.param(
        '[[policy]]\nproject = "shop"\nservice = "a"\n[[policy]]\nproject = "shop"\nservice = "a"\n',
        4,
        "policy[1]",
        "repeats policy[0]",
        id="duplicate-entry",
    ),
    pytest.param("version = 2\n", 1, "version", "Input should be 1 (got 2)", id="version"),
    pytest.param('[defaults]\nslack = "on"\n', 2, "defaults.slack", "valid dictionary", id="table-expected"),
]


@pytest.mark.parametrize(("text", "line", "path", "reason"), BAD)
def test_each_bad_key_or_value_names_file_line_field_and_reason(
    text: str, line: int, path: str, reason: str
) -> None:
    problems = _problems(text)
    assert len(problems) == 1, problems
    problem = problems[0]
    assert (problem.source, problem.line, problem.path) == ("policy.toml", line, path)
    assert reason in problem.reason
    assert str(problem).startswith(f"policy.toml:{line}: {path}:")


def test_all_problems_are_listed_at_once_in_line_order() -> None:
    text = (
        "[defaults]\n"
        'owner = "ops team"\n'
        "[defaults.slack]\n"
        'chanel = "#x"\n'
        "[[policy]]\n"
        'service = "checkout"\n'
        'pagerduty = { service_id = "PX1", severities = ["critical", "sev1"] }\n'
    )
    problems = _problems(text)
    assert [(p.line, p.path) for p in problems] == [
        (2, "defaults.owner"),
        (4, "defaults.slack.chanel"),
        (7, "policy[0].pagerduty.service_id"),
        (7, "policy[0].pagerduty.severities[1]"),
    ]
    with pytest.raises(PolicyError, match=r"invalid notification policy policy.toml \(4 problems\)"):
        parse_policy(text, "policy.toml")


def test_toml_syntax_error_gives_the_line() -> None:
    problems = _problems('[defaults]\nowner = "a"\nslack = {channel = \n')
    assert problems[0].line == 3
    assert problems[0].reason.startswith("not valid TOML")


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(PolicyError) as info:
        load_policy(missing)
    assert info.value.problems[0].source == str(missing)
    assert "cannot read the file" in info.value.problems[0].reason


def test_quiet_hours_accept_toml_local_times() -> None:
    policy = parse_policy("[defaults]\nquiet_hours = { start = 22:00:00, end = 06:30:00 }\n")
    quiet = policy.for_service("a", "b").quiet_hours
    assert quiet is not None
    assert (quiet.start.hour, quiet.end.hour, quiet.end.minute) == (22, 6, 30)
    assert quiet.channels == {Channel.SLACK, Channel.PAGERDUTY}


def test_the_documented_example_loads_and_resolves() -> None:
    policy = load_policy(EXAMPLE)
    assert policy.source == str(EXAMPLE)
    projects = {r.project for r in policy.rules}
    assert projects == {"shop", "platform", "*"}
    services = [
        ("shop", "checkout"),
        ("shop", "payments-api"),
        ("shop", "payments-worker"),
        ("shop", "cart"),
        ("shop", "search"),
        ("shop", "catalog"),
        ("shop", "web-frontend"),
        ("platform", "auth"),
        ("platform", "api-gateway"),
        ("platform", "db-primary"),
        ("platform", "billing-batch"),
        ("platform", "metrics-ingest"),
    ]
    owners = {policy.for_service(p, s).owner for p, s in services}
    assert owners == {"alice", "carol", "bob", "dba-team"}
    batch = policy.for_service("platform", "billing-batch")
    assert not batch.allows(Channel.SLACK, Severity.CRITICAL)
    assert batch.channel(Channel.JIRA).rate_limit is not None


def test_rate_limit_can_be_removed_by_a_more_specific_entry() -> None:
    text = (
        "[defaults.slack]\nrate_limit = { max = 5 }\n"
        '[[policy]]\nservice = "noisy"\nslack = { rate_limit = { enabled = false } }\n'
    )
    policy = parse_policy(text)
    assert policy.for_service("p", "quiet").channel(Channel.SLACK).rate_limit is not None
    assert policy.for_service("p", "noisy").channel(Channel.SLACK).rate_limit is None


def test_key_lines_handles_inline_tables_arrays_and_multiline_values() -> None:
    text = (
        "# comment\n"
        "[defaults]\n"
        'owner = "x"  # trailing [not a table]\n'
        "note = '''\n"
        "[policy]\n"
        "'''\n"
        "list = [\n"
        '  "a = b",\n'
        "]\n"
        "[[policy]]\n"
        'slack = { channel = "#a", rate_limit = { max = 1 } }\n'
        "[[policy]]\n"
        '"quoted key".inner = 1\n'
        "[policy.jira]\n"
        "project = 'OPS'\n"
    )
    lines = key_lines(text)
    assert lines[("defaults", "owner")] == 3
    assert lines[("defaults", "note")] == 4
    assert ("policy",) not in lines  # inside a multi-line string
    assert lines[("defaults", "list")] == 7
    assert lines[("policy", 0, "slack", "channel")] == 11
    assert lines[("policy", 0, "slack", "rate_limit")] == 11
    assert lines[("policy", 1, "quoted key", "inner")] == 13
    assert lines[("policy", 1, "jira", "project")] == 15
    assert line_of(lines, ("policy", 0, "slack", "rate_limit", "max")) == 11
    assert line_of(lines, ("nothing",)) is None
