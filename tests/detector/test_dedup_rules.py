"""The pure dedup decision, table-driven (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from detector.dedup_rules import ClaimReason, ClaimState, Phase, advance, decide, job_for
from detector.models import EventKind, JobKind, Severity

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
REPEAT = timedelta(hours=4)
WINDOW = timedelta(seconds=5)
W, C = Severity.WARNING, Severity.CRITICAL
ONSET, ESC, REC = EventKind.ONSET, EventKind.ESCALATION, EventKind.RECOVERY


def state(
    phase: Phase = Phase.ACTIVE,
    severity: Severity = W,
    *,
    in_window: bool = False,
    paged_ago: timedelta = timedelta(minutes=1),
    acked: bool = False,
    held: bool = False,
) -> ClaimState:
    until = NOW + timedelta(seconds=2) if in_window else NOW - timedelta(seconds=1)
    return ClaimState(7, phase, severity, acked, until, NOW - paged_ago, held)


CASES = [
    # (state, kind, severity, reason, job)
    (None, REC, W, ClaimReason.NOTHING_OPEN, None),
    (None, ONSET, W, ClaimReason.NEW_INCIDENT, JobKind.OPEN),
    (None, ESC, C, ClaimReason.NEW_INCIDENT, JobKind.OPEN),
    (state(in_window=True), ONSET, W, ClaimReason.DUPLICATE_IN_WINDOW, None),
    (state(severity=C, in_window=True), ESC, W, ClaimReason.DUPLICATE_IN_WINDOW, None),
    (state(in_window=True), ESC, C, ClaimReason.ESCALATED, JobKind.ESCALATE),
    (state(), ESC, C, ClaimReason.ESCALATED, JobKind.ESCALATE),
    (state(acked=True), ESC, C, ClaimReason.ESCALATED, JobKind.ESCALATE),
    (state(), ONSET, W, ClaimReason.ATTACHED_TO_OPEN, None),
    (state(severity=C), ESC, W, ClaimReason.ATTACHED_TO_OPEN, None),
    (state(paged_ago=REPEAT), ONSET, W, ClaimReason.REPEAT_DUE, JobKind.REPEAT),
    (state(paged_ago=REPEAT - timedelta(seconds=1)), ONSET, W, ClaimReason.ATTACHED_TO_OPEN, None),
    (state(paged_ago=REPEAT, acked=True), ONSET, W, ClaimReason.ATTACHED_TO_OPEN, None),
    (state(paged_ago=REPEAT, in_window=True), ONSET, W, ClaimReason.DUPLICATE_IN_WINDOW, None),
    (state(in_window=True), REC, W, ClaimReason.RESOLVED, JobKind.RESOLVE),
    (state(acked=True), REC, W, ClaimReason.RESOLVED, JobKind.RESOLVE),
    (state(Phase.RECOVERED, in_window=True, held=True), REC, W, ClaimReason.DUPLICATE_IN_WINDOW, None),
    (state(Phase.RECOVERED, held=True), REC, W, ClaimReason.NOTHING_OPEN, None),
    (state(Phase.RECOVERED, in_window=True, held=True), ONSET, W, ClaimReason.REOPENED, None),
    (state(Phase.RECOVERED, in_window=True, held=True), ESC, C, ClaimReason.REOPENED, JobKind.ESCALATE),
    (state(Phase.RECOVERED, severity=C, in_window=True, held=True), ONSET, W, ClaimReason.REOPENED, None),
    (state(Phase.RECOVERED, in_window=True, held=False), ONSET, W, ClaimReason.NEW_INCIDENT, JobKind.OPEN),
    (state(Phase.RECOVERED, held=True), ONSET, W, ClaimReason.NEW_INCIDENT, JobKind.OPEN),
]


@pytest.mark.parametrize(("before", "kind", "severity", "reason", "job"), CASES)
def test_decide(
    before: ClaimState | None, kind: EventKind, severity: Severity, reason: ClaimReason, job: JobKind | None
) -> None:
    assert decide(before, kind, severity, NOW, REPEAT) is reason
    assert job_for(reason, before, severity) is job


def test_duplicates_and_nothing_open_change_nothing() -> None:
    before = state(in_window=True)
    for reason in (ClaimReason.DUPLICATE_IN_WINDOW, ClaimReason.NOTHING_OPEN):
        assert not reason.writes
        assert advance(before, reason, C, NOW, WINDOW, 99) is before


def test_new_incident_state() -> None:
    after = advance(None, ClaimReason.NEW_INCIDENT, C, NOW, WINDOW, 42)
    assert after == ClaimState(42, Phase.ACTIVE, C, False, NOW + WINDOW, NOW, False)


def test_every_change_restarts_the_window_but_only_pages_move_paged_at() -> None:
    before = state(paged_ago=timedelta(hours=1))
    attached = advance(before, ClaimReason.ATTACHED_TO_OPEN, W, NOW, WINDOW, 0)
    assert attached is not None
    assert attached.window_until == NOW + WINDOW
    assert attached.paged_at == before.paged_at
    escalated = advance(before, ClaimReason.ESCALATED, C, NOW, WINDOW, 0)
    assert escalated is not None
    assert (escalated.severity, escalated.paged_at) == (C, NOW)


def test_resolve_holds_a_cancellable_job_and_reopen_cancels_it() -> None:
    resolved = advance(state(severity=C, acked=True), ClaimReason.RESOLVED, W, NOW, WINDOW, 0)
    assert resolved is not None
    assert (resolved.phase, resolved.severity, resolved.acknowledged) == (Phase.RECOVERED, C, False)
    assert resolved.resolve_job_pending
    reopened = advance(resolved, ClaimReason.REOPENED, W, NOW, WINDOW, 0)
    assert reopened is not None
    assert (reopened.phase, reopened.severity, reopened.resolve_job_pending) == (Phase.ACTIVE, C, False)
    assert reopened.incident_id == resolved.incident_id
