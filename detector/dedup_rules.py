"""The dedup decision as a pure function: claim state + anomaly + database time → a named reason.

This is the specification of what a claim does. At run time the same rules execute inside one
SQL statement (``detector/dedup.py``), under the row lock of the fingerprint's claim row, so that
several processors agree; the tests run random claim sequences through both and require them to
agree, reason for reason.

Per fingerprint there is at most one claim state (``None`` until the first incident):

- ``phase`` ``active``: ``incident_id`` is unresolved (open or acknowledged);
- ``phase`` ``recovered``: ``incident_id`` was resolved; its resolve job is held until the end of
  the window, and ``resolve_job_pending`` says whether it can still be cancelled.

Rules, in order (``in_window`` means ``now < window_until``; the window restarts at every claim
that changes something, and is never moved by a duplicate):

=====================  ============================================  ==========================
state                  anomaly                                       reason (job)
=====================  ============================================  ==========================
none                   recovery                                      nothing_open
none                   onset / escalation                            new_incident (open)
active                 recovery                                      resolved (resolve, held)
active                 severity above the incident's                 escalated (escalate)
active, in window      otherwise                                     duplicate_in_window
active, not acked,     otherwise                                     repeat_due (repeat)
paged ≥ repeat ago
active                 otherwise                                     attached_to_open
recovered, in window   recovery                                      duplicate_in_window
recovered              recovery                                      nothing_open
recovered, in window,  onset / escalation                            reopened (escalate if the
resolve job pending                                                  severity rose, else none)
recovered              onset / escalation                            new_incident (open)
=====================  ============================================  ==========================

Why ``reopened``: an anomaly that flaps (recovers and comes back inside the window) must not page
again, and its recovery must not be lost either. The resolve job is therefore held for the
window; a flap cancels it and reopens the same incident, so nothing is sent; a recovery that
stays recovered is delivered when the window ends.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from detector.models import EventKind, JobKind, Severity


class ClaimReason(StrEnum):
    """What a claim did. Every claim returns exactly one."""

    NEW_INCIDENT = "new_incident"
    """Opened a new incident and an ``open`` job."""
    DUPLICATE_IN_WINDOW = "duplicate_in_window"
    """Restated what was claimed inside the dedup window: nothing written."""
    ATTACHED_TO_OPEN = "attached_to_open"
    """Counted on the unresolved incident (occurrences, last seen, latest anomaly); no job."""
    ESCALATED = "escalated"
    """Raised the incident's severity and created an ``escalate`` job."""
    REPEAT_DUE = "repeat_due"
    """Attached, and the repeat interval since the last page has passed: a ``repeat`` job."""
    RESOLVED = "resolved"
    """A recovery resolved the incident and created its ``resolve`` job (held for the window)."""
    REOPENED = "reopened"
    """An anomaly came back inside the window after a recovery: the same incident reopened and its
    held resolve job was cancelled (an ``escalate`` job only if the severity rose)."""
    NOTHING_OPEN = "nothing_open"
    """A recovery with no unresolved incident to resolve: nothing written."""

    @property
    def writes(self) -> bool:
        """Whether a claim with this reason changed anything."""
        return self not in (ClaimReason.DUPLICATE_IN_WINDOW, ClaimReason.NOTHING_OPEN)


class Phase(StrEnum):
    ACTIVE = "active"
    RECOVERED = "recovered"


@dataclass(frozen=True, slots=True)
class ClaimState:
    """A fingerprint's claim row (times are the database clock)."""

    incident_id: int
    phase: Phase
    severity: Severity
    acknowledged: bool
    window_until: datetime
    paged_at: datetime
    resolve_job_pending: bool = False
    """Phase recovered only: the held resolve job has not been leased and can be cancelled."""


def decide(
    state: ClaimState | None,
    kind: EventKind,
    severity: Severity,
    now: datetime,
    repeat_interval: timedelta,
) -> ClaimReason:
    """The reason a claim of ``kind``/``severity`` gets against ``state`` at database time ``now``."""
    in_window = state is not None and now < state.window_until
    if kind is EventKind.RECOVERY:
        if state is None:
            return ClaimReason.NOTHING_OPEN
        if state.phase is Phase.ACTIVE:
            return ClaimReason.RESOLVED
        return ClaimReason.DUPLICATE_IN_WINDOW if in_window else ClaimReason.NOTHING_OPEN
    if state is None:
        return ClaimReason.NEW_INCIDENT
    if state.phase is Phase.RECOVERED:
        if in_window and state.resolve_job_pending:
            return ClaimReason.REOPENED
        return ClaimReason.NEW_INCIDENT
    if severity > state.severity:
        return ClaimReason.ESCALATED
    if in_window:
        return ClaimReason.DUPLICATE_IN_WINDOW
    if not state.acknowledged and now >= state.paged_at + repeat_interval:
        return ClaimReason.REPEAT_DUE
    return ClaimReason.ATTACHED_TO_OPEN


def job_for(reason: ClaimReason, state: ClaimState | None, severity: Severity) -> JobKind | None:
    """The outbox job a claim with ``reason`` creates, if any."""
    if reason is ClaimReason.REOPENED:
        assert state is not None
        return JobKind.ESCALATE if severity > state.severity else None
    return _JOBS.get(reason)


_JOBS = {
    ClaimReason.NEW_INCIDENT: JobKind.OPEN,
    ClaimReason.ESCALATED: JobKind.ESCALATE,
    ClaimReason.REPEAT_DUE: JobKind.REPEAT,
    ClaimReason.RESOLVED: JobKind.RESOLVE,
}


def advance(
    state: ClaimState | None,
    reason: ClaimReason,
    severity: Severity,
    now: datetime,
    window: timedelta,
    new_incident_id: int,
) -> ClaimState | None:
    """The claim state after a claim with ``reason`` (``new_incident_id`` is used only for
    ``new_incident``)."""
    if not reason.writes:
        return state
    job = job_for(reason, state, severity)
    until = now + window
    if reason is ClaimReason.NEW_INCIDENT:
        return ClaimState(new_incident_id, Phase.ACTIVE, severity, False, until, now)
    assert state is not None
    paged_at = now if job in (JobKind.ESCALATE, JobKind.REPEAT) else state.paged_at
    if reason is ClaimReason.RESOLVED:
        return replace(
            state, phase=Phase.RECOVERED, acknowledged=False, window_until=until, resolve_job_pending=True
        )
    if reason is ClaimReason.REOPENED:
        return replace(
            state,
            phase=Phase.ACTIVE,
            severity=max(state.severity, severity),
            acknowledged=False,
            window_until=until,
            paged_at=paged_at,
            resolve_job_pending=False,
        )
    return replace(state, severity=max(state.severity, severity), window_until=until, paged_at=paged_at)
