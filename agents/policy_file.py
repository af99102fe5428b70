"""Loading and validating a policy file (TOML) into a :class:`agents.policy.Policy`.

The file is checked completely at start-up: unknown keys, wrong types and bad values are all
collected and raised together as one :class:`agents.errors.PolicyError`, each problem with the
file, the line the key is on (when it can be found), the field path and the reason. The schema
(pydantic, ``extra="forbid"``, strict types) lives only here; the rest of the system sees frozen
dataclasses. See ``docs/policy.example.toml`` for a documented example.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agents.errors import PolicyError, PolicyProblem
from agents.policy import (
    DEFAULT_QUIET_CHANNELS,
    Channel,
    ChannelLayer,
    Policy,
    PolicyLayer,
    PolicyRule,
    QuietHours,
    RateLimit,
    TriageLayer,
)
from agents.toml_lines import KeyPath, key_lines, line_of
from detector.models import Severity

SeverityName = Literal["warning", "critical"]
ChannelName = Literal["slack", "jira", "pagerduty"]

_SLACK_CHANNEL = re.compile(r"^(#[a-z0-9][a-z0-9._-]{0,79}|[CG][A-Z0-9]{6,20})$")
_JIRA_PROJECT = re.compile(r"^[A-Z][A-Z0-9_]{1,9}$")
_PAGERDUTY_SERVICE = re.compile(r"^[A-Z0-9]{4,20}$")
_NAME = re.compile(r"^[^\s\x00-\x1f]{1,200}$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RateLimitTable(_Table):
    """``rate_limit = { max = 10, per_minutes = 60 }``; ``{ enabled = false }`` removes a limit."""

    enabled: bool = True
    max: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    per_minutes: Annotated[int, Field(ge=1, le=10_080)] = 60

    @model_validator(mode="after")
    def _max_when_enabled(self) -> RateLimitTable:
        if self.enabled and self.max is None:
            raise ValueError("max is required unless enabled = false")
        return self


class _ChannelTable(_Table):
    enabled: bool | None = None
    severities: list[SeverityName] | None = None
    rate_limit: RateLimitTable | None = None


class SlackTable(_ChannelTable):
    channel: str | None = None

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value is not None and not _SLACK_CHANNEL.match(value):
            raise ValueError(
                "must be a channel name such as '#alerts' (lowercase letters, digits, '-', '_', '.')"
                " or a channel id such as 'C0123456789'"
            )
        return value


class JiraTable(_ChannelTable):
    project: str | None = None
    issue_type: Annotated[str, Field(min_length=1, max_length=60)] | None = None

    @field_validator("project")
    @classmethod
    def _project(cls, value: str | None) -> str | None:
        if value is not None and not _JIRA_PROJECT.match(value):
            raise ValueError("must be a Jira project key: 2-10 uppercase letters, digits or '_', e.g. 'OPS'")
        return value


class PagerDutyTable(_ChannelTable):
    service_id: str | None = None

    @field_validator("service_id")
    @classmethod
    def _service(cls, value: str | None) -> str | None:
        if value is not None and not _PAGERDUTY_SERVICE.match(value):
            raise ValueError(
                "must be a PagerDuty service id: 4-20 uppercase letters or digits, e.g. 'PX1Y2Z3'"
            )
        return value


def _clock(value: Any) -> Any:
    if isinstance(value, str):
        match = _CLOCK.match(value)
        if match is None:
            raise ValueError("must be a 24-hour clock time 'HH:MM', e.g. '22:00'")
        return time(int(match.group(1)), int(match.group(2)))
    if isinstance(value, time) and (value.tzinfo is not None or value.second or value.microsecond):
        raise ValueError("must be a whole minute without a UTC offset, e.g. 22:00")
    return value


class QuietHoursTable(_Table):
    """``quiet_hours = { start = "22:00", end = "07:00", channels = ["slack"] }``."""

    enabled: bool = True
    start: time | None = None
    end: time | None = None
    channels: list[ChannelName] | None = None

    @field_validator("start", "end", mode="before")
    @classmethod
    def _parse_clock(cls, value: Any) -> Any:
        return _clock(value)

    @model_validator(mode="after")
    def _complete(self) -> QuietHoursTable:
        if not self.enabled:
            return self
        if self.start is None or self.end is None:
            raise ValueError("start and end are both required unless enabled = false")
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self


class TriageTable(_Table):
    ignore_below_errors: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    ignore_below_score: Annotated[float, Field(ge=0, le=1)] | None = None
    notify_score: Annotated[float, Field(ge=0, le=1)] | None = None
    sustained_seconds: Annotated[float, Field(ge=0, le=86_400)] | None = None
    sustained_occurrences: Annotated[int, Field(ge=1, le=1_000_000)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> TriageTable:
        low, high = self.ignore_below_score, self.notify_score
        if low is not None and high is not None and low > high:
            raise ValueError("ignore_below_score must not exceed notify_score")
        return self


class LayerTable(_Table):
    owner: str | None = None
    timezone: str | None = None
    slack: SlackTable | None = None
    jira: JiraTable | None = None
    pagerduty: PagerDutyTable | None = None
    quiet_hours: QuietHoursTable | None = None
    triage: TriageTable | None = None

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError("must be a user id of 1-200 characters without spaces")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"unknown time zone {value!r} (use an IANA name such as 'Europe/Berlin')"
                ) from None
        return value


class RuleTable(LayerTable):
    project: str = "*"
    service: str = "*"

    @field_validator("project", "service")
    @classmethod
    def _pattern(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be a name or fnmatch pattern of 1-200 characters without spaces")
        return value


class PolicyFile(_Table):
    version: Literal[1] = 1
    defaults: LayerTable = LayerTable()
    policy: list[RuleTable] = []


# --- conversion -----------------------------------------------------------------------------------


def _rate_limit(table: RateLimitTable | None) -> RateLimit | Literal[False] | None:
    if table is None:
        return None
    if not table.enabled or table.max is None:
        return False
    return RateLimit(max=table.max, window=timedelta(minutes=table.per_minutes))


def _channel_layer(table: _ChannelTable, target: dict[str, str | None]) -> ChannelLayer:
    return ChannelLayer(
        enabled=table.enabled,
        severities=None
        if table.severities is None
        else frozenset(Severity.parse(s) for s in table.severities),
        rate_limit=_rate_limit(table.rate_limit),
        target=tuple((k, v) for k, v in target.items() if v is not None),
    )


def _layer(label: str, table: LayerTable) -> PolicyLayer:
    channels: list[tuple[Channel, ChannelLayer]] = []
    if table.pagerduty is not None:
        channels.append(
            (Channel.PAGERDUTY, _channel_layer(table.pagerduty, {"service_id": table.pagerduty.service_id}))
        )
    if table.slack is not None:
        channels.append((Channel.SLACK, _channel_layer(table.slack, {"channel": table.slack.channel})))
    if table.jira is not None:
        jira = table.jira
        channels.append(
            (Channel.JIRA, _channel_layer(jira, {"project": jira.project, "issue_type": jira.issue_type}))
        )
    quiet: QuietHours | Literal[False] | None = None
    if table.quiet_hours is not None:
        q = table.quiet_hours
        if not q.enabled or q.start is None or q.end is None:
            quiet = False
        else:
            muted = (
                DEFAULT_QUIET_CHANNELS if q.channels is None else frozenset(Channel(c) for c in q.channels)
            )
            quiet = QuietHours(start=q.start, end=q.end, channels=muted)
    triage = None
    if table.triage is not None:
        t = table.triage
        triage = TriageLayer(
            ignore_below_errors=t.ignore_below_errors,
            ignore_below_score=t.ignore_below_score,
            notify_score=t.notify_score,
            sustained_seconds=t.sustained_seconds,
            sustained_occurrences=t.sustained_occurrences,
        )
    return PolicyLayer(
        label=label,
        owner=table.owner,
        timezone=None if table.timezone is None else ZoneInfo(table.timezone),
        channels=tuple(channels),
        quiet_hours=quiet,
        triage=triage,
    )


def _to_policy(source: str, data: PolicyFile) -> Policy:
    rules = tuple(
        PolicyRule(
            index=i,
            project=rule.project,
            service=rule.service,
            layer=_layer(f"policy[{i}] {rule.project}/{rule.service}", rule),
        )
        for i, rule in enumerate(data.policy)
    )
    return Policy(source=source, defaults=_layer("defaults", data.defaults), rules=rules)


# --- errors -------------------------------------------------------------------------------------


def _format_path(loc: KeyPath) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _model_at(loc: KeyPath) -> type[BaseModel] | None:
    """The schema model that owns the last key of ``loc`` (for listing allowed keys)."""
    model: type[BaseModel] = PolicyFile
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        nested = _find_model(info.annotation)
        if nested is None:
            return None
        model = nested
    return model


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _reason(error: dict[str, Any], loc: KeyPath) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        model = _model_at(loc)
        if model is None:
            return f"unknown key {key!r}"
        allowed = sorted(model.model_fields)
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key {key!r} ({hint}allowed: {', '.join(allowed)})"
    message = str(error.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    if kind == "missing":
        return "required"
    value = error.get("input")
    if isinstance(value, str | int | float | bool | time) and repr(value) not in message:
        message += f" (got {value!r})"
    return message


def _problems(source: str, text: str, exc: ValidationError) -> list[PolicyProblem]:
    lines = key_lines(text)
    problems = []
    for error in exc.errors():
        loc: KeyPath = tuple(p for p in error.get("loc", ()) if isinstance(p, str | int))
        problems.append(
            PolicyProblem(
                source=source,
                line=line_of(lines, loc),
                path=_format_path(loc),
                reason=_reason(dict(error), loc),
            )
        )
    return problems


def _duplicates(source: str, text: str, data: PolicyFile) -> list[PolicyProblem]:
    lines = key_lines(text)
    seen: dict[tuple[str, str], int] = {}
    problems = []
    for i, rule in enumerate(data.policy):
        key = (rule.project, rule.service)
        if key in seen:
            loc: KeyPath = ("policy", i)
            problems.append(
                PolicyProblem(
                    source=source,
                    line=line_of(lines, loc),
                    path=_format_path(loc),
                    reason=f"project {rule.project!r} / service {rule.service!r} repeats policy[{seen[key]}]",
                )
            )
        else:
            seen[key] = i
    return problems


_TOML_POSITION = re.compile(r"\(at line (\d+), column \d+\)")


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Validate policy TOML ``text``; ``source`` names it in errors. Raises PolicyError."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POSITION.search(str(exc))
        line = int(match.group(1)) if match else None
        reason = "not valid TOML: " + _TOML_POSITION.sub("", str(exc)).strip()
        raise PolicyError(source, (PolicyProblem(source, line, "", reason),)) from None
    try:
        data = PolicyFile.model_validate(raw)
    except ValidationError as exc:
        problems = sorted(_problems(source, text, exc), key=lambda p: (p.line or 0, p.path))
        raise PolicyError(source, tuple(problems)) from None
    duplicates = _duplicates(source, text, data)
    if duplicates:
        raise PolicyError(source, tuple(duplicates))
    return _to_policy(source, data)


def load_policy(path: Path) -> Policy:
    """Read and validate the policy file at ``path``. Raises PolicyError listing every problem."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = f"cannot read the file: {exc.strerror if isinstance(exc, OSError) else exc}"
        raise PolicyError(source, (PolicyProblem(source, None, "", reason),)) from None
    return parse_policy(text, source)
