"""Labelled decision scenarios kept as data, and a runner that scores any decider on them.

A scenario file (TOML) holds named policies and ``[[scenario]]`` entries: the job kind, the
incident facts, the policy, the owner's connection states, earlier deliveries and send counts,
and the expected outcome (actions in order, skipped channels with reasons, and optionally the
owner, targets, fallbacks, connect requests and the quiet-hours resume time). See
``tests/agents/scenarios/`` for the format by example.

A *decider* is any ``async (ScenarioCase) -> Outcome``: :func:`rules_decider` (triage rules +
rules planner), :func:`triage_model_decider` (a triage model for the ambiguous middle + the
planner), or a future acting agent whose deliveries are turned into an :class:`Outcome`.
:func:`evaluate` runs one over every case and prints each mismatch and the pass rate, so real
models can be measured the same way by anyone with provider keys.
"""

from __future__ import annotations

import tomllib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.planner import ActionKind, Plan, PlanInput, PriorDelivery, plan
from agents.policy import BUILTIN_POLICY, Channel, Policy, ServicePolicy
from agents.policy_file import load_policy, parse_policy
from agents.triage_rules import TriageInput, TriageVerdict, rules_only
from detector.models import (
    AnomalyEvent,
    EventKind,
    Incident,
    IncidentStatus,
    JobKind,
    Severity,
    Signal,
    fingerprint,
)
from router.base import Connection, ConnectionState

if TYPE_CHECKING:
    from agents.triage import TriageModel


class ScenarioError(ValueError):
    """A scenario file is malformed (permanent: fix the file)."""


@dataclass(frozen=True, slots=True)
class Expected:
    actions: tuple[str, ...]
    """``channel.action`` in plan order, e.g. ``("pagerduty.trigger", "slack.post")``."""
    skipped: Mapping[str, str]
    """Channel → skip reason; channels not listed must not be skipped."""
    owner: str | None = None
    targets: Mapping[str, str] = field(default_factory=dict)
    fallbacks: Mapping[str, str] = field(default_factory=dict)
    """Acting channel → the channel it stands in for."""
    connect: tuple[str, ...] | None = None
    resume_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ScenarioCase:
    name: str
    source: str
    job_id: int
    kind: JobKind
    incident: Incident
    policy: ServicePolicy
    connections: Mapping[str, Connection]
    now: datetime
    prior: tuple[PriorDelivery, ...]
    sent_in_window: Mapping[Channel, int]
    connect_links: Mapping[str, str]
    expected: Expected


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a decider decided, in the shape scenarios compare."""

    actions: tuple[str, ...]
    skipped: Mapping[str, str]
    owner: str
    targets: Mapping[str, str]
    fallbacks: Mapping[str, str]
    connect: tuple[str, ...]
    resume_at: datetime | None

    @classmethod
    def from_plan(cls, p: Plan) -> Outcome:
        return cls(
            actions=tuple(a.kind.value for a in p.actions),
            skipped={s.channel.value: s.reason.value for s in p.skipped},
            owner=p.owner,
            targets={a.channel.value: a.target for a in p.actions},
            fallbacks={
                a.channel.value: a.fallback_for.value for a in p.actions if a.fallback_for is not None
            },
            connect=p.connect_needed,
            resume_at=p.resume_at,
        )


Decider = Callable[[ScenarioCase], Awaitable[Outcome]]


def plan_input(case: ScenarioCase, verdict: TriageVerdict) -> PlanInput:
    return PlanInput(
        job_id=case.job_id,
        kind=case.kind,
        incident=case.incident,
        policy=case.policy,
        connections=case.connections,
        verdict=verdict,
        now=case.now,
        prior=case.prior,
        sent_in_window=case.sent_in_window,
        connect_links=case.connect_links,
    )


def _triage_input(case: ScenarioCase) -> TriageInput:
    used = frozenset(d.channel for d in case.prior)
    return TriageInput(kind=case.kind, incident=case.incident, policy=case.policy, used_channels=used)


async def rules_decider(case: ScenarioCase) -> Outcome:
    """Triage rules (their fallback for the ambiguous middle) + the rules planner: no model."""
    return Outcome.from_plan(plan(plan_input(case, rules_only(_triage_input(case)))))


def triage_model_decider(model: TriageModel) -> Decider:
    """Triage with ``model`` for the ambiguous middle, then the rules planner."""
    from agents.triage import triage  # the model path needs pydantic-ai; the rules do not

    async def decide(case: ScenarioCase) -> Outcome:
        verdict = await triage(_triage_input(case), model)
        return Outcome.from_plan(plan(plan_input(case, verdict)))

    return decide


def differences(expected: Expected, got: Outcome) -> list[str]:
    """Human-readable mismatches (empty when the outcome is right)."""
    problems = []
    if tuple(expected.actions) != got.actions:
        problems.append(f"actions: expected {list(expected.actions)}, got {list(got.actions)}")
    if dict(expected.skipped) != dict(got.skipped):
        problems.append(f"skipped: expected {dict(expected.skipped)}, got {dict(got.skipped)}")
    if expected.owner is not None and expected.owner != got.owner:
        problems.append(f"owner: expected {expected.owner!r}, got {got.owner!r}")
    for channel, target in expected.targets.items():
        if got.targets.get(channel) != target:
            problems.append(f"{channel} target: expected {target!r}, got {got.targets.get(channel)!r}")
    if expected.fallbacks and dict(expected.fallbacks) != dict(got.fallbacks):
        problems.append(f"fallbacks: expected {dict(expected.fallbacks)}, got {dict(got.fallbacks)}")
    if expected.connect is not None and tuple(expected.connect) != got.connect:
        problems.append(f"connect: expected {list(expected.connect)}, got {list(got.connect)}")
    if expected.resume_at is not None and expected.resume_at != got.resume_at:
        problems.append(f"resume_at: expected {expected.resume_at}, got {got.resume_at}")
    return problems


@dataclass(frozen=True, slots=True)
class EvalReport:
    total: int
    passed: int
    failures: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def pass_rate(self) -> float:
        return self.passed / self.total if self.total else 0.0


async def evaluate(
    cases: Sequence[ScenarioCase],
    decider: Decider,
    *,
    label: str = "decider",
    out: Callable[[str], None] = print,
) -> EvalReport:
    """Run ``decider`` on every case; print mismatches and the pass rate; return the report."""
    failures = []
    for case in cases:
        got = await decider(case)
        problems = differences(case.expected, got)
        if problems:
            failures.append((case.name, tuple(problems)))
            out(f"FAIL {case.name} ({case.source})")
            for problem in problems:
                out(f"    {problem}")
    report = EvalReport(total=len(cases), passed=len(cases) - len(failures), failures=tuple(failures))
    out(f"{label}: {report.passed}/{report.total} scenarios passed ({report.pass_rate:.1%})")
    return report


# --- loading ------------------------------------------------------------------------------------


def incident_from_facts(data: Mapping[str, Any], now: datetime) -> Incident:
    """An incident (with its latest anomaly) from the compact facts scenario files use."""
    project, service = str(data["project"]), str(data["service"])
    signal = Signal(data.get("signal", "error_rate"))
    severity = Severity.parse(data["severity"])
    errors = int(data.get("errors", 0))
    events = int(data.get("events", 1000))
    window = float(data.get("window_seconds", 1.0))
    end = now.timestamp()
    event = AnomalyEvent(
        kind=EventKind(data.get("event", "onset")),
        project=project,
        service=service,
        signal=signal,
        severity=severity,
        fingerprint=fingerprint(project, service, signal),
        window_start=end - window,
        window_end=end,
        error_count=errors,
        total_count=events,
        observed_rate=float(data.get("rate", errors / events if events else 0.0)),
        baseline_mean=float(data.get("baseline", 0.01)),
        baseline_std=float(data.get("baseline_std", 0.005)),
        z=float(data.get("z", 6.0)),
        ewma=float(data.get("ewma", 0.02)),
        rate_of_change=float(data.get("rate_of_change", 1.0)),
        score=float(data["score"]),
        messages=tuple(str(m) for m in data.get("messages", ())),
    )
    opened = float(data.get("open_seconds", 0))
    status = IncidentStatus(data.get("status", "open"))
    return Incident(
        id=int(data.get("id", 1)),
        fingerprint=event.fingerprint,
        project=project,
        service=service,
        signal=signal,
        status=status,
        severity=severity,
        first_seen=now - timedelta(seconds=opened),
        last_seen=now,
        occurrences=int(data.get("occurrences", 1)),
        resolved_at=now if status is IncidentStatus.RESOLVED else None,
        latest=event,
    )


def _policies(data: Mapping[str, Any], base: Path) -> dict[str, Policy]:
    found: dict[str, Policy] = {"builtin": BUILTIN_POLICY}
    for name, spec in data.get("policies", {}).items():
        if "file" in spec:
            found[name] = load_policy((base / spec["file"]).resolve())
        else:
            found[name] = parse_policy(spec["toml"], f"{base.name}:policies.{name}")
    return found


def _case(raw: Mapping[str, Any], source: str, policies: Mapping[str, Policy]) -> ScenarioCase:
    now = raw["now"]
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise ScenarioError(f"{source}: {raw.get('name')}: now must be an offset date-time")
    now = now.astimezone(UTC)
    incident = incident_from_facts(raw["incident"], now)
    policy = policies[raw.get("policy", "builtin")].for_service(incident.project, incident.service)
    states = {c.value: "active" for c in Channel} | dict(raw.get("connections", {}))
    exp = raw["expect"]
    resume = exp.get("resume_at")
    return ScenarioCase(
        name=str(raw["name"]),
        source=source,
        job_id=int(raw.get("job_id", 1)),
        kind=JobKind(raw["job"]),
        incident=incident,
        policy=policy,
        connections={k: Connection(k, ConnectionState(v)) for k, v in states.items()},
        now=now,
        prior=tuple(
            PriorDelivery(
                channel=Channel(p["channel"]),
                action=ActionKind(p["action"]),
                target=str(p["target"]),
                external_ref=p.get("ref"),
                job_kind=JobKind(p.get("job", "open")),
            )
            for p in raw.get("prior", ())
        ),
        sent_in_window={Channel(k): int(v) for k, v in raw.get("sent", {}).items()},
        connect_links=dict(raw.get("links", {})),
        expected=Expected(
            actions=tuple(exp.get("actions", ())),
            skipped=dict(exp.get("skipped", {})),
            owner=exp.get("owner"),
            targets=dict(exp.get("targets", {})),
            fallbacks=dict(exp.get("fallbacks", {})),
            connect=None if "connect" not in exp else tuple(exp["connect"]),
            resume_at=None if resume is None else resume.astimezone(UTC),
        ),
    )


def load_scenarios(path: Path) -> list[ScenarioCase]:
    """Every scenario in ``path`` (a ``.toml`` file, or a directory of them, sorted by name)."""
    files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
    cases: list[ScenarioCase] = []
    for file in files:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
        policies = _policies(data, file.parent)
        for raw in data.get("scenario", ()):
            try:
                cases.append(_case(raw, file.name, policies))
            except (KeyError, ValueError, TypeError) as exc:
                raise ScenarioError(f"{file.name}: scenario {raw.get('name')!r}: {exc!r}") from None
    names = [c.name for c in cases]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ScenarioError(f"scenario names repeat: {duplicated}")
    return cases
