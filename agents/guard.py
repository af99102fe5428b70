"""The guard around every tool call: the pure verdict (:mod:`agents.guard_rules`) plus the I/O.

One :class:`Guard` per run (one job attempt, one path: the rules executor or the agent). It sees
every call before the tool router does:

- meta-tools: tool search and schemas pass (read-only); connection checks pass (they only make
  connect links, which the guard records); ``COMPOSIO_MULTI_EXECUTE_TOOL`` is judged per inner
  call; anything else is refused. A refused call is answered to the caller as a result entry
  (``error_code: "blocked_by_guard"`` with the reason), never as an exception, and recorded;
- actions: the idempotency key is reserved in ``deliveries`` before the call and completed after
  it (:mod:`agents.deliveries`). A key already sent is not called again (``already_done``, with
  what it made). A key an earlier attempt reserved but never finished has an unknown outcome; it
  is settled before anything is sent again:

  ==========================  =================================================================
  action                      settling an unknown outcome
  ==========================  =================================================================
  PagerDuty trigger           send again: the dedup key (``logwarden-<incident>``) makes
                              PagerDuty return the incident the first attempt opened
  PagerDuty resolve,          send again: idempotent (resolving a resolved incident is
  Slack update                reported as done; an update writes the same text)
  Jira ticket                 search by the incident label; found → that ticket, else create
  Slack post, Jira comment    look for the action's marker (``ref:<key>``, which the guard
                              appends to every message and comment it lets through) in the
                              channel's recent history / the ticket's comments; found → done,
                              else send
  ==========================  =================================================================

  Actions that are not idempotent are only settled once the unfinished attempt is older than
  ``in_flight_grace`` seconds (it may still be running elsewhere; the job retries later). The
  worker's lease is longer than any run, so an attempt that old has died.
- a router error for the whole call: HTTP status errors (``CallRejected``) and meta-tool error
  results fail the call's reservations (nothing ran, retryable); a lost connection or a timeout
  leaves them reserved (unknown) and re-raises;
- every call counts against the run's cap (``GuardScope.max_calls``); secrets are redacted from
  what is stored (:mod:`agents.redact`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from agents.deliveries import ActionRequest, Claim, DeliveryStore, Reservation
from agents.errors import CallRejected, MetaToolError
from agents.guard_calls import (
    UNKNOWN_CODES,
    CallOutcome,
    CallRecord,
    CallStatus,
    entries,
    find_marked,
    refusal,
    settled_anyway,
    with_marker,
)
from agents.guard_rules import (
    MANAGE_CONNECTIONS,
    MULTI_EXECUTE_TOOL,
    GuardReason,
    GuardScope,
    GuardState,
    Verdict,
    meta_verdict,
    verdict,
)
from agents.planner import NEW_NOTIFICATIONS, ActionKind
from agents.policy import Channel
from agents.redact import redact_text
from agents.tool_catalog import TOOLS, Tool, build_call, result_reference

log = logging.getLogger(__name__)

_HISTORY_MARGIN = timedelta(minutes=10)
"""How far before the unfinished attempt's reservation a Slack history probe looks (clock skew)."""

Send = Callable[[str, dict[str, Any]], Awaitable[Mapping[str, Any]]]
"""Calls one meta-tool through the owner's session and returns its envelope."""

IDEMPOTENT: frozenset[ActionKind] = frozenset(
    {ActionKind.PAGERDUTY_TRIGGER, ActionKind.PAGERDUTY_RESOLVE, ActionKind.SLACK_UPDATE}
)


@dataclass(slots=True)
class _Pending:
    index: int
    slug: str
    arguments: dict[str, Any]
    verdict: Verdict
    reservation: Reservation | None


class Guard:
    """Judges, reserves, records. One per run; not shared between runs."""

    def __init__(
        self,
        scope: GuardScope,
        store: DeliveryStore,
        *,
        path: str,
        in_flight_grace: float = 60.0,
    ) -> None:
        if path not in ("rules", "agent"):
            raise ValueError("path must be 'rules' or 'agent'")
        self.scope = scope
        self.path = path
        self._store = store
        self._grace = in_flight_grace
        self._calls = 0
        self._sent: dict[Channel, int] = {}
        self._learned: dict[Channel, set[str]] = {}
        self._keys: set[str] = set()
        self.records: list[CallRecord] = []
        self.outcomes: list[CallOutcome] = []
        self.connect_links: dict[str, str] = {}

    def state(self) -> GuardState:
        return GuardState(
            calls=self._calls,
            sent=dict(self._sent),
            learned={c: frozenset(refs) for c, refs in self._learned.items()},
        )

    def learn(self, channel: Channel, ref: str | None) -> None:
        """Accept ``ref`` as this incident's (e.g. a PagerDuty incident id a lookup found)."""
        if ref:
            self._learned.setdefault(channel, set()).add(ref)

    def check_meta(self, name: str, arguments: Any) -> Verdict:
        """Judge a meta-tool call; counts it; records it when refused."""
        v = meta_verdict(self.scope, self.state(), name, arguments)
        if name != MULTI_EXECUTE_TOOL or not v.allowed:
            self._calls += 1
            self._record(name, v, "refused" if not v.allowed else "called")
        return v

    def note_meta_result(self, name: str, payload: Any) -> None:
        """Keep the connect links a connection check produced."""
        if name != MANAGE_CONNECTIONS or not isinstance(payload, Mapping):
            return
        results = (payload.get("data") or {}).get("results") or {}
        if isinstance(results, Mapping):
            for toolkit, item in results.items():
                if isinstance(item, Mapping) and isinstance(item.get("redirect_url"), str):
                    self.connect_links[str(toolkit)] = item["redirect_url"]

    async def execute(
        self, items: Sequence[tuple[str, Any]], send: Send, *, fallback_for: Channel | None = None
    ) -> list[CallOutcome]:
        """Judge, reserve and run app tool calls in one multi-execute; one outcome per item."""
        outcomes: list[CallOutcome | None] = [None] * len(items)
        pending: list[_Pending] = []
        for index, (slug, arguments) in enumerate(items):
            v = verdict(self.scope, self.state(), slug, arguments)
            self._calls += 1
            if not v.allowed:
                outcomes[index] = self._refused(slug, v)
                continue
            assert v.tool is not None
            canonical = TOOLS[v.tool].slug
            if v.action is None:
                pending.append(_Pending(index, canonical, dict(arguments), v, None))
                continue
            assert v.key is not None
            if v.key in self._keys:  # the same action twice in one run: the first one stands
                again = Verdict(GuardReason.ALREADY_DONE, "this run already made this call", **_parts(v))
                outcomes[index] = self._refused(slug, again)
                continue
            self._keys.add(v.key)
            marked = with_marker(v.tool, v.action, v.key, arguments)
            early, reservation = await self._reserve(v, canonical, marked, send, fallback_for)
            if early is not None:
                outcomes[index] = early
                continue
            if v.action in NEW_NOTIFICATIONS and v.channel is not None:
                self._sent[v.channel] = self._sent.get(v.channel, 0) + 1
            pending.append(_Pending(index, canonical, marked, v, reservation))
        if pending:
            for p, outcome in zip(pending, await self._run(pending, send), strict=True):
                outcomes[p.index] = outcome
        done = [self._finish_outcome(o) for o in outcomes if o is not None]
        assert len(done) == len(items)
        return done

    async def adopt(self, slug: str, arguments: Mapping[str, Any], ref: str, how: str) -> CallOutcome:
        """Record an action's item as already existing (a lookup found it) without calling it."""
        v = verdict(self.scope, self.state(), slug, arguments)
        self._calls += 1
        if not v.allowed or v.key is None or v.tool is None:
            return self._finish_outcome(self._refused(slug, v))
        canonical = TOOLS[v.tool].slug
        res = await self._store.reserve(self._request(v, canonical, dict(arguments), None), self._grace)
        if res.claim in (Claim.NEW, Claim.RETRY, Claim.UNKNOWN):
            await self._store.complete(res, ref, recovered=how)
        elif res.claim is Claim.DONE:
            ref = res.external_ref or ref
        else:
            error = "an earlier attempt of this action may still be running; try again later"
            failed = CallOutcome(
                canonical, v, CallStatus.FAILED, error=error, error_code="in_flight", retryable=True
            )
            return self._finish_outcome(failed)
        self.learn(TOOLS[v.tool].channel, ref)
        return self._finish_outcome(
            CallOutcome(canonical, v, CallStatus.ALREADY_DONE, external_ref=ref, recovered=how)
        )

    # --- reservation ------------------------------------------------------------------------------

    def _request(
        self, v: Verdict, slug: str, arguments: dict[str, Any], fallback_for: Channel | None
    ) -> ActionRequest:
        assert v.action is not None
        assert v.channel is not None
        assert v.key is not None
        scope = self.scope
        return ActionRequest(
            key=v.key,
            incident_id=scope.incident.id,
            job_id=scope.job_id,
            job_kind=scope.job_kind,
            owner=scope.owner,
            channel=v.channel,
            action=v.action,
            tool_slug=slug,
            target=v.target,
            arguments=arguments,
            path=self.path,
            fallback_for=fallback_for,
        )

    async def _reserve(
        self, v: Verdict, slug: str, arguments: dict[str, Any], send: Send, fallback_for: Channel | None
    ) -> tuple[CallOutcome | None, Reservation | None]:
        assert v.action is not None
        assert v.channel is not None
        request = self._request(v, slug, arguments, fallback_for)
        grace = 0.0 if v.action in IDEMPOTENT else self._grace
        res = await self._store.reserve(request, in_flight_grace=grace)
        if res.claim is Claim.DONE:
            self.learn(v.channel, res.external_ref)
            return CallOutcome(slug, v, CallStatus.ALREADY_DONE, external_ref=res.external_ref), None
        if res.claim is Claim.IN_FLIGHT:
            error = "an earlier attempt of this action may still be running; try again later"
            return CallOutcome(
                slug, v, CallStatus.FAILED, error=error, error_code="in_flight", retryable=True
            ), None
        if res.claim is Claim.UNKNOWN:
            settled = await self._settle(v, slug, arguments, res, send)
            return settled, res
        return None, res

    async def _settle(
        self, v: Verdict, slug: str, arguments: Mapping[str, Any], res: Reservation, send: Send
    ) -> CallOutcome | None:
        """Find out whether an unfinished earlier attempt acted (None: it did not; send now)."""
        assert v.action is not None
        assert v.key is not None
        assert v.tool is not None
        if v.action in IDEMPOTENT:
            log.info("delivery %s: earlier outcome unknown; sending again (idempotent)", v.key)
            return None
        probe, found_in = self._probe_call(v, arguments, res)
        try:
            envelope = await send(
                MULTI_EXECUTE_TOOL,
                {
                    "tools": [{"tool_slug": probe.slug, "arguments": dict(probe.arguments)}],
                    "sync_response_to_workbench": False,
                },
            )
        except (MetaToolError, CallRejected) as exc:
            return CallOutcome(slug, v, CallStatus.FAILED, error=f"could not settle: {exc}", retryable=True)
        entry = entries(envelope).get(0) or {}
        response = entry.get("response") if isinstance(entry, Mapping) else None
        self._record(
            probe.slug, v, "probe" if response else "probe_failed", note="settling an unknown outcome"
        )
        if not isinstance(response, Mapping) or not response.get("successful"):
            error = f"could not settle an unknown earlier attempt: {entry.get('error') or 'probe failed'}"
            return CallOutcome(
                slug, v, CallStatus.FAILED, error=error, error_code="unsettled", retryable=True
            )
        ref = found_in(response.get("data"))
        if ref is None:
            log.info("delivery %s: earlier attempt left no trace; sending", v.key)
            return None
        how = f"found by {probe.slug}"
        await self._store.complete(res, ref, recovered=how)
        self.learn(v.channel or TOOLS[v.tool].channel, ref)
        return CallOutcome(slug, v, CallStatus.ALREADY_DONE, external_ref=ref, recovered=how)

    def _probe_call(
        self, v: Verdict, arguments: Mapping[str, Any], res: Reservation
    ) -> tuple[Any, Callable[[Any], str | None]]:
        assert v.tool is not None
        assert v.key is not None
        key = v.key
        if v.action is ActionKind.JIRA_CREATE:
            label = self.scope.incident_key
            call = build_call(Tool.JIRA_SEARCH, {"query": f'labels = "{label}"', "limit": 1})
            return call, lambda data: result_reference(Tool.JIRA_SEARCH, data)
        if v.action is ActionKind.SLACK_POST:
            since = (res.previous_reserved_at or self.scope.now) - _HISTORY_MARGIN
            where = arguments.get(TOOLS[v.tool].arguments["target"])
            call = build_call(
                Tool.SLACK_HISTORY, {"target": str(where), "since": f"{since.timestamp():.6f}", "limit": 200}
            )
            return call, lambda data: find_marked(Tool.SLACK_HISTORY, data, key, ("text",), "ts")
        issue = arguments.get(TOOLS[v.tool].arguments["ref"])
        call = build_call(Tool.JIRA_COMMENTS, {"ref": str(issue), "limit": 100})
        return (
            call,
            lambda data: str(issue) if find_marked(Tool.JIRA_COMMENTS, data, key, ("body",), "id") else None,
        )

    # --- the call -----------------------------------------------------------------------------------

    async def _run(self, pending: list[_Pending], send: Send) -> list[CallOutcome]:
        tools = [{"tool_slug": p.slug, "arguments": p.arguments} for p in pending]
        try:
            envelope = await send(MULTI_EXECUTE_TOOL, {"tools": tools, "sync_response_to_workbench": False})
        except (MetaToolError, CallRejected) as exc:
            return [await self._failed(p, str(exc), "router_error", retryable=True) for p in pending]
        found = entries(envelope)
        return [await self._result(p, found.get(i)) for i, p in enumerate(pending)]

    async def _result(self, p: _Pending, entry: Any) -> CallOutcome:
        v, res = p.verdict, p.reservation
        assert v.tool is not None
        if not isinstance(entry, Mapping):
            return CallOutcome(
                p.slug, v, CallStatus.FAILED, error="the router reported no result", retryable=True
            )
        response = entry.get("response")
        if isinstance(response, Mapping):
            data = response.get("data")
            error = response.get("error")
            if response.get("successful") or settled_anyway(v.action, error):
                ref = result_reference(v.tool, data) if response.get("successful") else None
                if v.action is ActionKind.PAGERDUTY_RESOLVE and ref is None:
                    ref = str(p.arguments.get(TOOLS[v.tool].arguments["ref"]))
                self.learn(TOOLS[v.tool].channel, ref)
                if res is None:
                    return CallOutcome(p.slug, v, CallStatus.READ, external_ref=ref, data=data)
                await self._store.complete(res, ref)
                return CallOutcome(p.slug, v, CallStatus.SENT, external_ref=ref, data=data)
            return await self._failed(
                p, str(error or "the app refused the call"), "app_error", retryable=False
            )
        code = str(entry.get("error_code") or "error")
        connection = entry.get("connection")
        url = connection.get("redirect_url") if isinstance(connection, Mapping) else None
        if isinstance(url, str):
            self.connect_links[TOOLS[v.tool].channel.value] = url
        message = str(entry.get("error") or code)
        if code in UNKNOWN_CODES and res is not None:  # the app may have acted: leave it reserved
            return CallOutcome(p.slug, v, CallStatus.FAILED, error=message, error_code=code, retryable=True)
        outcome = await self._failed(p, message, code, retryable=bool(entry.get("retryable")))
        return CallOutcome(
            outcome.slug,
            v,
            outcome.status,
            error=outcome.error,
            error_code=code,
            retryable=outcome.retryable,
            connect_url=url if isinstance(url, str) else None,
        )

    async def _failed(self, p: _Pending, error: str, code: str, *, retryable: bool) -> CallOutcome:
        if p.reservation is not None:
            await self._store.fail(p.reservation, f"{code}: {error}", retryable)
        return CallOutcome(
            p.slug, p.verdict, CallStatus.FAILED, error=error, error_code=code, retryable=retryable
        )

    # --- records ------------------------------------------------------------------------------------

    def _refused(self, slug: str, v: Verdict) -> CallOutcome:
        return CallOutcome(str(slug), v, CallStatus.REFUSED, error=refusal(v), error_code="blocked_by_guard")

    def _finish_outcome(self, outcome: CallOutcome) -> CallOutcome:
        self.outcomes.append(outcome)
        v = outcome.verdict
        self.records.append(
            CallRecord(
                tool=outcome.slug,
                verdict=v.reason.value,
                detail=v.detail,
                status=outcome.status.value,
                channel=None if v.channel is None else v.channel.value,
                action=None if v.action is None else v.action.value,
                key=v.key,
                external_ref=outcome.external_ref,
                error=None if outcome.error is None else redact_text(outcome.error)[:500],
            )
        )
        if outcome.status is CallStatus.REFUSED:
            log.warning(
                "guard refused %s for incident %s: %s", outcome.slug, self.scope.incident.id, v.detail
            )
        return outcome

    def _record(self, tool: str, v: Verdict, status: str, note: str | None = None) -> None:
        self.records.append(
            CallRecord(tool=tool, verdict=v.reason.value, detail=note or v.detail, status=status, key=v.key)
        )
        if v.reason not in (GuardReason.READ_ONLY, GuardReason.CONNECT_LINK, GuardReason.ALLOWED):
            log.warning("guard refused %s for incident %s: %s", tool, self.scope.incident.id, v.detail)


def _parts(v: Verdict) -> dict[str, Any]:
    return {"tool": v.tool, "channel": v.channel, "action": v.action, "key": v.key, "target": v.target}
