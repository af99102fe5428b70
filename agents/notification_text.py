"""What notifications say: titles, Slack/Jira/PagerDuty bodies, built from incident facts.

Log messages are untrusted: :func:`quote_log` strips control characters, backticks and markup
that could mention people (``<!channel>``) or break out of a code span, and truncates, before any
message text is placed in a notification.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from detector.models import AnomalyEvent, Incident, JobKind, Severity, Signal

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_MAX_QUOTE = 200
_MAX_MESSAGES = 3

_HEADLINE = {
    JobKind.OPEN: "",
    JobKind.ESCALATE: "escalated: ",
    JobKind.REPEAT: "still firing: ",
    JobKind.RESOLVE: "resolved: ",
}


def quote_log(message: str) -> str:
    """A log message made safe to show: one line, no markup, at most 200 characters."""
    text = _CONTROL.sub(" ", message).replace("`", "'")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = " ".join(text.split())
    return text if len(text) <= _MAX_QUOTE else text[: _MAX_QUOTE - 1] + "…"


def _what(incident: Incident) -> str:
    return "volume collapse" if incident.signal is Signal.VOLUME_COLLAPSE else "error-rate anomaly"


_MAX_TITLE = 250  # Jira summaries stop at 255 characters


def title(incident: Incident, kind: JobKind) -> str:
    """One line: ``[CRITICAL] shop/checkout: error-rate anomaly (incident 42)``."""
    text = (
        f"[{incident.severity.label.upper()}] {_HEADLINE[kind]}{incident.project}/{incident.service}: "
        f"{_what(incident)} (incident {incident.id})"
    )
    return text if len(text) <= _MAX_TITLE else text[: _MAX_TITLE - 1] + "…"


def stats(event: AnomalyEvent | None) -> str:
    """The numbers behind the anomaly, one line."""
    if event is None:
        return "no anomaly statistics recorded"
    if event.signal is Signal.VOLUME_COLLAPSE:
        return (
            f"{event.observed_rate:.2f} events/s against a baseline of {event.baseline_mean:.2f}/s; "
            f"z {event.z:.1f}, score {event.score:.2f}"
        )
    share = event.error_count / event.total_count if event.total_count else 0.0
    return (
        f"{event.error_count} errors in {event.total_count} events ({share:.1%}) against a baseline of "
        f"{event.baseline_mean:.1%}; z {event.z:.1f}, score {event.score:.2f}"
    )


def _messages(event: AnomalyEvent | None) -> list[str]:
    if event is None:
        return []
    return [quote_log(m) for m in event.messages[:_MAX_MESSAGES] if m.strip()]


def _seen(incident: Incident) -> str:
    return (
        f"first seen {incident.first_seen:%Y-%m-%d %H:%M:%S %Z}, last seen "
        f"{incident.last_seen:%Y-%m-%d %H:%M:%S %Z}, {incident.occurrences} occurrence(s)"
    )


def slack_text(incident: Incident, kind: JobKind, notices: Sequence[str] = ()) -> str:
    """Slack markdown for a post or an update."""
    icon = (
        ":white_check_mark:"
        if kind is JobKind.RESOLVE
        else (":rotating_light:" if incident.severity is Severity.CRITICAL else ":warning:")
    )
    lines = [f"{icon} *{title(incident, kind)}*", stats(incident.latest), _seen(incident)]
    quoted = _messages(incident.latest)
    if quoted:
        lines.append("Representative log messages (quoted, untrusted):")
        lines.extend(f"> `{m}`" for m in quoted)
    lines.extend(f":information_source: {n}" for n in notices)
    return "\n".join(lines)


def ticket_text(incident: Incident, kind: JobKind, notices: Sequence[str] = ()) -> str:
    """Plain text for a Jira description or comment, or PagerDuty details."""
    lines = [title(incident, kind), stats(incident.latest), _seen(incident)]
    quoted = _messages(incident.latest)
    if quoted:
        lines.append("Representative log messages (quoted, untrusted):")
        lines.extend(f"  | {m}" for m in quoted)
    lines.extend(notices)
    return "\n".join(lines)


def connect_notice(toolkit: str, owner: str, link: str | None, instead: str | None) -> str:
    """Tell the owner a channel is not connected (and where the alert went instead)."""
    where = f"; sent to {instead} instead" if instead else ""
    how = f" Connect it: {link}" if link else " Connect it in your tool router."
    return f"{toolkit} is not connected for {owner}{where}.{how}"
