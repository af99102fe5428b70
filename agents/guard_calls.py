"""What became of guarded tool calls, how they are shown to a model, and how they are recorded.

Split from :mod:`agents.guard` (which decides and reserves): :class:`CallOutcome` per app call
(rendered as a ``COMPOSIO_MULTI_EXECUTE_TOOL`` results entry for the model, a refusal included),
:class:`CallRecord` for the decision audit, the action marker (``ref:<idempotency key>``) the
guard appends to every message and comment it lets through, and readers of router envelopes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from agents.guard_rules import Verdict
from agents.planner import ActionKind
from agents.policy import Channel
from agents.tool_catalog import TOOLS, Tool, result_node

_MARKED: frozenset[ActionKind] = frozenset(
    {ActionKind.SLACK_POST, ActionKind.SLACK_UPDATE, ActionKind.JIRA_COMMENT}
)
_ALREADY_RESOLVED = "already resolved"
UNKNOWN_CODES = frozenset({"timeout"})
"""Per-call errors after which the app may or may not have acted: the reservation stays open."""


class CallStatus(StrEnum):
    SENT = "sent"
    ALREADY_DONE = "already_done"
    READ = "read"
    REFUSED = "refused"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What became of one app tool call."""

    slug: str
    verdict: Verdict
    status: CallStatus
    external_ref: str | None = None
    data: Any = None
    error: str | None = None
    error_code: str | None = None
    retryable: bool = False
    connect_url: str | None = None
    recovered: str | None = None

    @property
    def done(self) -> bool:
        return self.status in (CallStatus.SENT, CallStatus.ALREADY_DONE)

    def entry(self, index: int) -> dict[str, Any]:
        """A ``COMPOSIO_MULTI_EXECUTE_TOOL`` results entry, as the model reads it."""
        if self.status in (CallStatus.SENT, CallStatus.READ):
            return {"index": index, "tool_slug": self.slug, "response": _ok(self.data)}
        if self.status is CallStatus.ALREADY_DONE:
            note = {
                "already_done": True,
                "external_ref": self.external_ref,
                "note": "logwarden already did this for this incident; it was not sent again",
            }
            return {"index": index, "tool_slug": self.slug, "response": _ok(note)}
        entry: dict[str, Any] = {
            "index": index,
            "tool_slug": self.slug,
            "error": self.error,
            "error_code": self.error_code,
            "retryable": self.retryable,
        }
        if self.status is CallStatus.REFUSED:
            entry["guard_reason"] = self.verdict.reason.value
        if self.connect_url is not None:
            entry["connection"] = {"status": "initiated", "redirect_url": self.connect_url}
        return entry


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call as the decision record keeps it (redacted)."""

    tool: str
    verdict: str
    detail: str
    status: str
    channel: str | None = None
    action: str | None = None
    key: str | None = None
    external_ref: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _ok(data: Any) -> dict[str, Any]:
    return {"successful": True, "data": data, "error": None}


def refusal(v: Verdict) -> str:
    return f"Blocked by logwarden's guard ({v.reason.value}): {v.detail}. Do not retry this call."


def marker(key: str) -> str:
    """The text that identifies an action in the message or comment it sent."""
    return f"ref:{key}"


def with_marker(tool: Tool, action: ActionKind, key: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    marked = dict(arguments)
    if action not in _MARKED:
        return marked
    names = [TOOLS[tool].arguments["text"], "text", "markdown_text"]
    field = next((n for n in names if isinstance(marked.get(n), str) and marked[n]), names[0])
    body = str(marked.get(field) or "")
    if marker(key) not in body:
        line = f"_{marker(key)}_" if TOOLS[tool].channel is Channel.SLACK else marker(key)
        marked[field] = f"{body}\n{line}" if body else line
    return marked


def entries(envelope: Mapping[str, Any]) -> dict[int, Any]:
    data = envelope.get("data")
    results = data.get("results") if isinstance(data, Mapping) else None
    if not isinstance(results, list):
        return {}
    found: dict[int, Any] = {}
    for position, entry in enumerate(results):
        index = entry.get("index", position) if isinstance(entry, Mapping) else position
        found[int(index) if isinstance(index, int) else position] = entry
    return found


def settled_anyway(action: ActionKind | None, error: Any) -> bool:
    """An app error that means the action's effect is already in place."""
    return action is ActionKind.PAGERDUTY_RESOLVE and _ALREADY_RESOLVED in str(error or "").lower()


def find_marked(tool: Tool, data: Any, key: str, fields: tuple[str, ...], ref_field: str) -> str | None:
    items = result_node(tool, data)
    if not isinstance(items, list):
        return None
    for item in items:
        if isinstance(item, Mapping) and any(marker(key) in str(item.get(f) or "") for f in fields):
            ref = item.get(ref_field)
            return None if ref is None else str(ref)
    return None
