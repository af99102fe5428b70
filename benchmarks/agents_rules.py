"""Cost of a rules decision (triage rules + rules planner) against resolving the policy alone.

Run from the repository root:  python -m benchmarks.agents_rules

Uses the labelled scenarios (tests/agents/scenarios) as the workload and the documented example
policy. Prints decisions per second and µs per decision, and the ratio to the baseline measured
in the same run (policy resolution for the same incidents), so the figure travels between
machines. No model, no network, no database.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

from agents.planner import plan
from agents.policy_file import load_policy
from agents.scenarios import load_scenarios, plan_input
from agents.triage_rules import TriageInput, rules_only

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 7
ROUNDS = 200


def main() -> None:
    cases = load_scenarios(ROOT / "tests" / "agents" / "scenarios")
    policy = load_policy(ROOT / "docs" / "policy.example.toml")
    subjects = [(c.incident.project, c.incident.service) for c in cases]

    def resolve_only() -> None:
        for project, service in subjects:
            policy.for_service(project, service)

    def decide() -> None:
        for case in cases:
            used = frozenset(d.channel for d in case.prior)
            plan(plan_input(case, rules_only(TriageInput(case.kind, case.incident, case.policy, used))))

    def measure(fn: Callable[[], None]) -> float:
        timings = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            for _ in range(ROUNDS):
                fn()
            timings.append((time.perf_counter() - start) / (ROUNDS * len(cases)))
        return statistics.median(timings)

    base = measure(resolve_only)
    full = measure(decide)
    print(f"workload: {len(cases)} scenarios x {ROUNDS} rounds, median of {REPEATS}")
    print(f"baseline  policy.for_service     {base * 1e6:8.1f} us/op  {1 / base:10.0f} ops/s")
    print(f"decision  triage rules + plan    {full * 1e6:8.1f} us/op  {1 / full:10.0f} ops/s")
    print(f"ratio     decision / baseline    {full / base:8.1f}x")


if __name__ == "__main__":
    main()
