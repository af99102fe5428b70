"""Policy resolution: wildcard precedence, field-by-field layering, quiet hours in time zones."""

from datetime import UTC, datetime, time

import pytest

from agents.policy import BUILTIN_POLICY, Channel, QuietHours, pattern_rank
from agents.policy_file import parse_policy
from detector.models import Severity

PRECEDENCE = """
[defaults]
owner = "default-owner"

[[policy]]
project = "shop"
owner = "project-owner"

[[policy]]
project = "shop"
service = "check*"
owner = "prefix-owner"

[[policy]]
project = "shop"
service = "*out"
owner = "suffix-owner"

[[policy]]
project = "shop"
service = "checkout-?"
owner = "longer-pattern-owner"

[[policy]]
project = "shop"
service = "checkout"
owner = "exact-owner"

[[policy]]
project = "*"
service = "checkout"
owner = "any-project-exact-service"

[[policy]]
project = "sh*"
service = "db"
owner = "project-pattern"

[[policy]]
project = "*"
service = "db"
owner = "project-star"
"""


@pytest.mark.parametrize(
    ("project", "service", "owner"),
    [
        ("shop", "checkout", "exact-owner"),  # exact service + exact project beats everything
        ("labs", "checkout", "any-project-exact-service"),  # exact service beats project-only entries
        ("shop", "checkout-1", "longer-pattern-owner"),  # more fixed characters win among patterns
        ("shop", "checkin", "prefix-owner"),
        ("shop", "logout", "suffix-owner"),
        ("shop", "cart", "project-owner"),  # only the project entry matches
        ("shop", "db", "project-pattern"),  # same service; project "sh*" beats "*"
        ("shopping", "db", "project-pattern"),
        ("labs", "db", "project-star"),
        ("labs", "cart", "default-owner"),  # nothing matches: [defaults]
    ],
)
def test_most_specific_match_wins(project: str, service: str, owner: str) -> None:
    policy = parse_policy(PRECEDENCE)
    assert policy.for_service(project, service).owner == owner


def test_equal_specificity_goes_to_the_entry_written_first() -> None:
    # Both patterns have 5 fixed characters and both match "checkXout".
    text = (
        '[[policy]]\nservice = "check*"\nowner = "first"\n[[policy]]\nservice = "*kXout"\nowner = "second"\n'
    )
    assert pattern_rank("check*") == pattern_rank("*kXout")
    assert parse_policy(text).for_service("p", "checkXout").owner == "first"
    swapped = (
        '[[policy]]\nservice = "*kXout"\nowner = "second"\n[[policy]]\nservice = "check*"\nowner = "first"\n'
    )
    assert parse_policy(swapped).for_service("p", "checkXout").owner == "second"


def test_patterns_are_case_sensitive_and_support_classes() -> None:
    text = '[[policy]]\nservice = "api-[ab]"\nowner = "ab"\n'
    policy = parse_policy(text)
    assert policy.for_service("p", "api-a").owner == "ab"
    assert policy.for_service("p", "api-c").owner == "operator"
    assert policy.for_service("p", "API-a").owner == "operator"
    assert pattern_rank("api-[ab]") == (0, 4)
    assert pattern_rank("api-a") == (1, 5)


def test_channel_settings_merge_field_by_field_across_layers() -> None:
    text = """
[defaults.slack]
channel = "#ops"
rate_limit = { max = 7, per_minutes = 30 }
[[policy]]
project = "shop"
slack = { severities = ["critical"] }
[[policy]]
project = "shop"
service = "checkout"
slack = { channel = "#checkout" }
"""
    resolved = parse_policy(text).for_service("shop", "checkout")
    slack = resolved.channel(Channel.SLACK)
    assert slack.target.describe() == "#checkout"  # from the exact entry
    assert slack.severities == {Severity.CRITICAL}  # from the project entry
    assert slack.rate_limit is not None
    assert slack.rate_limit.max == 7
    assert resolved.channel(Channel.JIRA).target.describe() == "OPS/Bug"  # built-in
    assert resolved.matched == ("built-in", "defaults", "policy[0] shop/*", "policy[1] shop/checkout")


def test_builtin_policy_routes_everything_to_the_operator() -> None:
    resolved = BUILTIN_POLICY.for_service("any", "thing")
    assert resolved.owner == "operator"
    assert resolved.channel(Channel.SLACK).target.describe() == "#alerts"
    assert resolved.channel(Channel.JIRA).target.describe() == "OPS/Bug"
    assert resolved.pages
    assert not resolved.allows(Channel.PAGERDUTY, Severity.WARNING)
    assert resolved.quiet_hours is None


def test_quiet_hours_taken_whole_from_the_most_specific_layer() -> None:
    text = """
[defaults]
quiet_hours = { start = "22:00", end = "07:00", channels = ["slack", "jira"] }
[[policy]]
service = "batch"
quiet_hours = { start = "01:00", end = "02:00" }
[[policy]]
service = "payments"
quiet_hours = { enabled = false }
"""
    policy = parse_policy(text)
    batch = policy.for_service("p", "batch").quiet_hours
    assert batch == QuietHours(time(1), time(2), frozenset({Channel.SLACK, Channel.PAGERDUTY}))
    assert policy.for_service("p", "payments").quiet_hours is None
    other = policy.for_service("p", "web").quiet_hours
    assert other is not None
    assert other.channels == {Channel.SLACK, Channel.JIRA}


BERLIN = '[defaults]\ntimezone = "Europe/Berlin"\nquiet_hours = { start = "22:00", end = "07:00" }\n'
DAYTIME = '[defaults]\ntimezone = "Asia/Kolkata"\nquiet_hours = { start = "09:30", end = "17:00" }\n'


@pytest.mark.parametrize(
    ("text", "now", "quiet", "ends"),
    [
        # Berlin is UTC+1 in winter, UTC+2 in summer (DST from 2026-03-29 01:00 UTC).
        (BERLIN, datetime(2026, 1, 15, 20, 59, tzinfo=UTC), False, None),  # 21:59 local
        (BERLIN, datetime(2026, 1, 15, 21, 0, tzinfo=UTC), True, datetime(2026, 1, 16, 6, 0, tzinfo=UTC)),
        (BERLIN, datetime(2026, 1, 16, 5, 59, tzinfo=UTC), True, datetime(2026, 1, 16, 6, 0, tzinfo=UTC)),
        (BERLIN, datetime(2026, 1, 16, 6, 0, tzinfo=UTC), False, None),  # 07:00 local: end is exclusive
        (BERLIN, datetime(2026, 7, 15, 20, 0, tzinfo=UTC), True, datetime(2026, 7, 16, 5, 0, tzinfo=UTC)),
        (BERLIN, datetime(2026, 7, 16, 5, 0, tzinfo=UTC), False, None),
        # the night DST starts: 22:00 CET = 21:00 UTC; 07:00 CEST = 05:00 UTC
        (BERLIN, datetime(2026, 3, 28, 21, 0, tzinfo=UTC), True, datetime(2026, 3, 29, 5, 0, tzinfo=UTC)),
        # a non-UTC input instant is compared by its instant, not its wall clock
        (
            BERLIN,
            datetime.fromisoformat("2026-01-15T23:30:00+01:00"),
            True,
            datetime(2026, 1, 16, 6, 0, tzinfo=UTC),
        ),
        # a daytime window (no midnight wrap) in a +05:30 zone
        (DAYTIME, datetime(2026, 1, 15, 4, 0, tzinfo=UTC), True, datetime(2026, 1, 15, 11, 30, tzinfo=UTC)),
        (DAYTIME, datetime(2026, 1, 15, 3, 59, tzinfo=UTC), False, None),
    ],
)
def test_quiet_hours_in_the_owner_time_zone(
    text: str, now: datetime, quiet: bool, ends: datetime | None
) -> None:
    resolved = parse_policy(text).for_service("p", "s")
    assert resolved.quiet(now) is quiet
    if ends is not None:
        assert resolved.quiet_hours is not None
        assert resolved.quiet_hours.ends_at(now, resolved.timezone) == ends


def test_quiet_hours_refuse_a_naive_clock() -> None:
    resolved = parse_policy(BERLIN).for_service("p", "s")
    with pytest.raises(ValueError, match="timezone-aware"):
        resolved.quiet(datetime(2026, 1, 15, 23, 0))
