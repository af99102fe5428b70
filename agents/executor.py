"""The rules executor: runs a rules :class:`~agents.planner.Plan` through the owner's guarded
tool-router session, deterministically, one action after another (the page first).

For each planned action:

1. its lookup, if any (a read-only call through the guard): with ``lookup_fills``, the reference it
   finds fills that argument of the call (nothing found → nothing to update: ``skipped``);
   without, a reference found means the item already exists (a Jira ticket an earlier attempt
   created): it is recorded as the delivery (``already_done``) and the call is not made;
2. the call, through :meth:`agents.guard.Guard.execute`, which reserves the idempotency key
   before it and completes it after (``sent``), or answers from the record (``already_done``),
   or refuses (``refused``), or reports the app's or router's error (``failed``, retryable or
   not, with a connect link when the toolkit is not connected).

Router failures for the whole session (``RouterUnavailable``, ``RouterAuthError``) propagate to
the worker, which classifies them. An action that failed does not stop the next one: a Jira
ticket failing never holds back the page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from agents.guard import Guard, Send
from agents.guard_calls import CallOutcome, CallStatus
from agents.planner import Plan, PlannedAction
from agents.policy import Channel

CONNECTION_REQUIRED = "connection_required"


class ActionStatus(StrEnum):
    SENT = "sent"
    ALREADY_DONE = "already_done"
    SKIPPED = "skipped"
    REFUSED = "refused"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What became of one planned action."""

    action: PlannedAction
    status: ActionStatus
    external_ref: str | None = None
    error: str | None = None
    error_code: str | None = None
    retryable: bool = False
    connect_url: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status in (ActionStatus.SENT, ActionStatus.ALREADY_DONE)

    def to_json(self) -> dict[str, object]:
        item: dict[str, object] = {
            "channel": self.action.channel.value,
            "action": self.action.kind.value,
            "tool": self.action.call.slug,
            "target": self.action.target,
            "status": self.status.value,
        }
        if self.action.fallback_for is not None:
            item["fallback_for"] = self.action.fallback_for.value
        for name in ("external_ref", "error", "error_code", "connect_url"):
            value = getattr(self, name)
            if value is not None:
                item[name] = value
        if self.status is ActionStatus.FAILED:
            item["retryable"] = self.retryable
        return item


@dataclass(frozen=True, slots=True)
class Execution:
    """Every planned action's result, in plan order."""

    results: tuple[ActionResult, ...] = ()
    connect_links: dict[str, str] = field(default_factory=dict)

    @property
    def not_connected(self) -> tuple[Channel, ...]:
        """Channels whose call found the toolkit not connected (it was revoked since planning)."""
        return tuple(r.action.channel for r in self.results if r.error_code == CONNECTION_REQUIRED)

    @property
    def retryable_failures(self) -> tuple[ActionResult, ...]:
        return tuple(r for r in self.results if r.status is ActionStatus.FAILED and r.retryable)

    @property
    def permanent_failures(self) -> tuple[ActionResult, ...]:
        return tuple(
            r
            for r in self.results
            if (r.status is ActionStatus.FAILED and not r.retryable and r.error_code != CONNECTION_REQUIRED)
            or r.status is ActionStatus.REFUSED
        )

    @property
    def delivered(self) -> tuple[ActionResult, ...]:
        return tuple(r for r in self.results if r.delivered)

    def merged(self, later: Execution) -> Execution:
        """This execution followed by ``later`` (a re-plan): later results replace earlier ones
        for the same channel."""
        replaced = {r.action.channel for r in later.results}
        kept = tuple(r for r in self.results if r.action.channel not in replaced)
        return Execution(kept + later.results, {**self.connect_links, **later.connect_links})


_STATUS = {
    CallStatus.SENT: ActionStatus.SENT,
    CallStatus.ALREADY_DONE: ActionStatus.ALREADY_DONE,
    CallStatus.REFUSED: ActionStatus.REFUSED,
    CallStatus.FAILED: ActionStatus.FAILED,
    CallStatus.READ: ActionStatus.SENT,
}


def _result(action: PlannedAction, outcome: CallOutcome) -> ActionResult:
    return ActionResult(
        action=action,
        status=_STATUS[outcome.status],
        external_ref=outcome.external_ref,
        error=outcome.error,
        error_code=outcome.error_code,
        retryable=outcome.retryable,
        connect_url=outcome.connect_url,
    )


async def run_action(action: PlannedAction, guard: Guard, send: Send) -> ActionResult:
    """One planned action: its lookup, then its call (see the module docstring)."""
    arguments = dict(action.call.arguments)
    if action.lookup is not None:
        [found] = await guard.execute([(action.lookup.slug, dict(action.lookup.arguments))], send)
        if found.status is not CallStatus.READ:
            return _result(action, found)
        if action.lookup_fills is not None:
            if found.external_ref is None:
                return ActionResult(
                    action, ActionStatus.SKIPPED, error="nothing to update: the lookup found nothing"
                )
            arguments[action.lookup_fills] = found.external_ref
        elif found.external_ref is not None:
            adopted = await guard.adopt(
                action.call.slug, arguments, found.external_ref, f"found by {found.slug}"
            )
            return _result(action, adopted)
    [outcome] = await guard.execute([(action.call.slug, arguments)], send, fallback_for=action.fallback_for)
    return _result(action, outcome)


async def execute_plan(
    plan: Plan,
    guard: Guard,
    send: Send,
    only: Iterable[PlannedAction] | None = None,
    *,
    stop_when_not_connected: bool = False,
) -> Execution:
    """Run the plan's actions (or ``only`` these of them) in order through ``guard``.

    With ``stop_when_not_connected``, the first action that finds its toolkit not connected ends
    the run, so that a re-plan can route the rest (and the connect notice) elsewhere.
    """
    actions = plan.actions if only is None else tuple(only)
    results: list[ActionResult] = []
    for action in actions:
        result = await run_action(action, guard, send)
        results.append(result)
        if stop_when_not_connected and result.error_code == CONNECTION_REQUIRED:
            break
    return Execution(tuple(results), dict(guard.connect_links))
