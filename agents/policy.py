"""The notification policy: who owns a service's incidents and how they may be told.

A :class:`Policy` is a stack of layers. For an incident on ``(project, service)`` the layers are
applied from the least to the most specific, each overriding only the fields it sets:

1. the built-in layer (:data:`BUILTIN_LAYER`): owner ``operator``, Slack ``#alerts``, Jira
   ``OPS``/``Bug``, PagerDuty for critical incidents only, no quiet hours;
2. the file's ``[defaults]``;
3. every ``[[policy]]`` entry whose ``project`` and ``service`` patterns (``fnmatch`` style,
   case-sensitive: ``*``, ``?``, ``[abc]``) both match, in increasing specificity.

Specificity (the most specific entry wins each field it sets): the service pattern decides
first, then the project pattern; for each, an exact name beats any pattern, and among patterns the
one with more fixed characters (not ``*``, ``?`` or a ``[...]`` group) wins. Two entries of equal
specificity: the one written first in the file wins. Channel settings merge field by field (a
service may change only its Slack channel and inherit everything else); ``quiet_hours`` is taken
whole from the most specific layer that sets it.

Quiet hours (in the owner's ``timezone``) suppress only *new* notifications (a Slack post, a Jira
ticket, a PagerDuty trigger) for *warning* incidents on the listed channels. They never suppress
anything for a critical incident (a critical page always pages, through a fallback channel if
PagerDuty is not connected), nor the actions that close the loop on something already sent
(updates, comments, resolves). Rate limits (per owner and channel, over a sliding window) follow
the same exemptions: PagerDuty triggers for critical incidents, a critical incident's fallback
notification and closing actions are never blocked.

The built-in policy (:data:`BUILTIN_POLICY`) is used when no policy file is configured, so the
default install routes every incident to ``operator`` with nothing to write.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo

from detector.models import Severity

_T = TypeVar("_T")


class Channel(StrEnum):
    """A notification channel; its value is also the tool-router toolkit name."""

    PAGERDUTY = "pagerduty"
    SLACK = "slack"
    JIRA = "jira"


CHANNEL_ORDER: tuple[Channel, ...] = (Channel.PAGERDUTY, Channel.SLACK, Channel.JIRA)
"""The order channels are planned and reported in: the page first."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``max`` new notifications per owner on a channel within ``window``."""

    max: int
    window: timedelta


@dataclass(frozen=True, slots=True)
class SlackTarget:
    channel: str

    def describe(self) -> str:
        return self.channel


@dataclass(frozen=True, slots=True)
class JiraTarget:
    project: str
    issue_type: str

    def describe(self) -> str:
        return f"{self.project}/{self.issue_type}"


@dataclass(frozen=True, slots=True)
class PagerDutyTarget:
    service_id: str

    def describe(self) -> str:
        return self.service_id


Target = SlackTarget | JiraTarget | PagerDutyTarget


@dataclass(frozen=True, slots=True)
class ChannelPolicy:
    """How one channel may be used for one service."""

    channel: Channel
    enabled: bool
    severities: frozenset[Severity]
    target: Target
    rate_limit: RateLimit | None

    def allows(self, severity: Severity) -> bool:
        return self.enabled and severity in self.severities


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily quiet period in local wall-clock time; ``start > end`` spans midnight."""

    start: time
    end: time
    channels: frozenset[Channel]
    """Channels whose new warning notifications are held back while quiet."""

    def active(self, now: datetime, tz: ZoneInfo) -> bool:
        local = _local_time(now, tz)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def ends_at(self, now: datetime, tz: ZoneInfo) -> datetime:
        """The next end of the quiet period after ``now``, in UTC."""
        local = now.astimezone(tz)
        end = datetime.combine(local.date(), self.end, tzinfo=tz)
        if end <= local:
            end = datetime.combine(local.date() + timedelta(days=1), self.end, tzinfo=tz)
        return end.astimezone(UTC)


def _local_time(now: datetime, tz: ZoneInfo) -> time:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(tz).time().replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class TriageThresholds:
    """Numbers the triage rules use to tell blips, clear cases and the ambiguous middle apart."""

    ignore_below_errors: int = 3
    """An error-rate warning with fewer errors in its window is a blip: no action."""
    ignore_below_score: float = 0.5
    """A warning scoring below this is a blip: no action."""
    notify_score: float = 0.8
    """A warning scoring at least this is clear enough to notify by rule; between the two is
    the ambiguous middle (the triage model, or Slack by rule when there is no model)."""
    sustained_seconds: float = 120.0
    """An incident this old (or an anomaly window this long) is sustained."""
    sustained_occurrences: int = 3
    """An incident seen this many times is sustained."""


@dataclass(frozen=True, slots=True)
class ServicePolicy:
    """The resolved policy for one (project, service): the slice a decision needs."""

    project: str
    service: str
    owner: str
    timezone: ZoneInfo
    channels: tuple[ChannelPolicy, ...]
    """One per channel, in :data:`CHANNEL_ORDER`."""
    quiet_hours: QuietHours | None
    triage: TriageThresholds
    matched: tuple[str, ...]
    """The layers that applied, least specific first (for the decision record)."""

    def channel(self, channel: Channel) -> ChannelPolicy:
        for policy in self.channels:
            if policy.channel is channel:
                return policy
        raise KeyError(channel)

    def allows(self, channel: Channel, severity: Severity) -> bool:
        return self.channel(channel).allows(severity)

    @property
    def pages(self) -> bool:
        """Whether critical incidents on this service may page (PagerDuty allowed for critical)."""
        return self.allows(Channel.PAGERDUTY, Severity.CRITICAL)

    def quiet(self, now: datetime) -> bool:
        return self.quiet_hours is not None and self.quiet_hours.active(now, self.timezone)


# --- layers -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelLayer:
    """A partial channel setting: ``None`` fields inherit from the layer below."""

    enabled: bool | None = None
    severities: frozenset[Severity] | None = None
    rate_limit: RateLimit | Literal[False] | None = None
    """``False``: explicitly no limit."""
    target: tuple[tuple[str, str], ...] = ()
    """Target fields this layer sets, e.g. ``(("channel", "#shop"),)``."""


@dataclass(frozen=True, slots=True)
class PolicyLayer:
    """One layer of settings (built-in, ``[defaults]`` or one ``[[policy]]`` entry)."""

    label: str
    owner: str | None = None
    timezone: ZoneInfo | None = None
    channels: tuple[tuple[Channel, ChannelLayer], ...] = ()
    quiet_hours: QuietHours | Literal[False] | None = None
    """``False``: explicitly no quiet hours."""
    triage: TriageLayer | None = None


@dataclass(frozen=True, slots=True)
class TriageLayer:
    """Partial :class:`TriageThresholds`: ``None`` fields inherit."""

    ignore_below_errors: int | None = None
    ignore_below_score: float | None = None
    notify_score: float | None = None
    sustained_seconds: float | None = None
    sustained_occurrences: int | None = None

    def over(self, base: TriageThresholds) -> TriageThresholds:
        return TriageThresholds(
            ignore_below_errors=_pick(self.ignore_below_errors, base.ignore_below_errors),
            ignore_below_score=_pick(self.ignore_below_score, base.ignore_below_score),
            notify_score=_pick(self.notify_score, base.notify_score),
            sustained_seconds=_pick(self.sustained_seconds, base.sustained_seconds),
            sustained_occurrences=_pick(self.sustained_occurrences, base.sustained_occurrences),
        )


def _pick(value: _T | None, default: _T) -> _T:
    return default if value is None else value


_WILDCARDS = re.compile(r"\[[^\]]*\]|[*?]")


def pattern_rank(pattern: str) -> tuple[int, int]:
    """(1 if exact else 0, number of fixed characters): larger is more specific."""
    fixed = _WILDCARDS.sub("", pattern)
    return (1 if fixed == pattern else 0, len(fixed))


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """A ``[[policy]]`` entry: patterns and the layer they select."""

    index: int
    project: str
    service: str
    layer: PolicyLayer

    def matches(self, project: str, service: str) -> bool:
        return fnmatchcase(project, self.project) and fnmatchcase(service, self.service)

    @property
    def rank(self) -> tuple[tuple[int, int], tuple[int, int], int]:
        """Sort key, ascending specificity; equal patterns: the earlier entry ranks higher."""
        return (pattern_rank(self.service), pattern_rank(self.project), -self.index)


_BUILTIN_TARGETS: Mapping[Channel, Mapping[str, str]] = {
    Channel.SLACK: {"channel": "#alerts"},
    Channel.JIRA: {"project": "OPS", "issue_type": "Bug"},
    Channel.PAGERDUTY: {"service_id": "PDEFAULT"},
}

BUILTIN_LAYER = PolicyLayer(
    label="built-in",
    owner="operator",
    timezone=ZoneInfo("UTC"),
    channels=(
        (
            Channel.PAGERDUTY,
            ChannelLayer(
                enabled=True,
                severities=frozenset({Severity.CRITICAL}),
                rate_limit=False,
                target=tuple(_BUILTIN_TARGETS[Channel.PAGERDUTY].items()),
            ),
        ),
        (
            Channel.SLACK,
            ChannelLayer(
                enabled=True,
                severities=frozenset({Severity.WARNING, Severity.CRITICAL}),
                rate_limit=RateLimit(max=30, window=timedelta(hours=1)),
                target=tuple(_BUILTIN_TARGETS[Channel.SLACK].items()),
            ),
        ),
        (
            Channel.JIRA,
            ChannelLayer(
                enabled=True,
                severities=frozenset({Severity.WARNING, Severity.CRITICAL}),
                rate_limit=RateLimit(max=10, window=timedelta(hours=1)),
                target=tuple(_BUILTIN_TARGETS[Channel.JIRA].items()),
            ),
        ),
    ),
    quiet_hours=False,
)
"""The bottom layer under every policy: complete, so resolution always yields every field."""

DEFAULT_QUIET_CHANNELS: frozenset[Channel] = frozenset({Channel.SLACK, Channel.PAGERDUTY})


@dataclass(frozen=True, slots=True)
class Policy:
    """A loaded policy: the file's defaults and its entries (see the module docstring)."""

    source: str
    defaults: PolicyLayer = field(default_factory=lambda: PolicyLayer(label="defaults"))
    rules: tuple[PolicyRule, ...] = ()

    def for_service(self, project: str, service: str) -> ServicePolicy:
        """The resolved policy for an incident on ``(project, service)``."""
        matching = sorted((r for r in self.rules if r.matches(project, service)), key=lambda r: r.rank)
        layers = (BUILTIN_LAYER, self.defaults, *(r.layer for r in matching))
        return resolve_layers(project, service, layers)


BUILTIN_POLICY = Policy(source="<built-in>")
"""The policy used when no policy file is configured."""


def _target(channel: Channel, fields: Mapping[str, str]) -> Target:
    if channel is Channel.SLACK:
        return SlackTarget(channel=fields["channel"])
    if channel is Channel.JIRA:
        return JiraTarget(project=fields["project"], issue_type=fields["issue_type"])
    return PagerDutyTarget(service_id=fields["service_id"])


def _merge_channel(channel: Channel, layers: tuple[PolicyLayer, ...]) -> ChannelPolicy:
    enabled = False
    severities: frozenset[Severity] = frozenset()
    rate_limit: RateLimit | None = None
    target: dict[str, str] = {}
    for layer in layers:
        for name, part in layer.channels:
            if name is not channel:
                continue
            if part.enabled is not None:
                enabled = part.enabled
            if part.severities is not None:
                severities = part.severities
            if part.rate_limit is not None:
                rate_limit = part.rate_limit or None
            target.update(part.target)
    return ChannelPolicy(
        channel=channel,
        enabled=enabled,
        severities=severities,
        target=_target(channel, target),
        rate_limit=rate_limit,
    )


def resolve_layers(project: str, service: str, layers: tuple[PolicyLayer, ...]) -> ServicePolicy:
    """Apply ``layers`` in order (the first must be complete, like :data:`BUILTIN_LAYER`)."""
    owner = ""
    timezone = ZoneInfo("UTC")
    quiet: QuietHours | None = None
    thresholds = TriageThresholds()
    for layer in layers:
        owner = layer.owner or owner
        timezone = layer.timezone or timezone
        if layer.quiet_hours is not None:
            quiet = layer.quiet_hours or None
        if layer.triage is not None:
            thresholds = layer.triage.over(thresholds)
    return ServicePolicy(
        project=project,
        service=service,
        owner=owner,
        timezone=timezone,
        channels=tuple(_merge_channel(c, layers) for c in CHANNEL_ORDER),
        quiet_hours=quiet,
        triage=thresholds,
        matched=tuple(layer.label for layer in layers),
    )
