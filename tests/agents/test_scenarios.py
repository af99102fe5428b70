"""The labelled decision scenarios: the rules pass all of them; any decider gets a pass rate."""

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai import ModelResponse, ToolCallPart
from pydantic_ai.messages import ModelMessage, ModelRequest, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from agents.models import ModelConfig, ModelRouter
from agents.scenarios import (
    Outcome,
    ScenarioCase,
    ScenarioError,
    evaluate,
    load_scenarios,
    rules_decider,
    triage_model_decider,
)
from agents.triage import TriageModel
from detector.models import JobKind

pytestmark = pytest.mark.anyio

SCENARIOS = Path(__file__).parent / "scenarios"


@pytest.fixture(scope="module")
def cases() -> list[ScenarioCase]:
    return load_scenarios(SCENARIOS)


def test_there_are_enough_scenarios_covering_every_job_kind(cases: list[ScenarioCase]) -> None:
    assert len(cases) >= 30
    kinds = Counter(c.kind for c in cases)
    assert set(kinds) == set(JobKind)
    owners = {c.policy.owner for c in cases}
    assert {"operator", "alice", "bob", "carol", "dba-team"} <= owners


async def test_the_rules_pass_every_scenario(
    cases: list[ScenarioCase], capsys: pytest.CaptureFixture[str]
) -> None:
    report = await evaluate(cases, rules_decider, label="rules")
    printed = capsys.readouterr().out
    assert report.failures == ()
    assert report.pass_rate == 1.0
    assert f"rules: {len(cases)}/{len(cases)} scenarios passed (100.0%)" in printed


async def test_a_wrong_decider_is_scored_and_its_mistakes_printed(
    cases: list[ScenarioCase], capsys: pytest.CaptureFixture[str]
) -> None:
    async def page_everyone(case: ScenarioCase) -> Outcome:
        right = await rules_decider(case)
        return Outcome(
            actions=("pagerduty.trigger", "slack.post", "jira.create"),
            skipped={},
            owner=right.owner,
            targets=right.targets,
            fallbacks=right.fallbacks,
            connect=right.connect,
            resume_at=right.resume_at,
        )

    report = await evaluate(cases, page_everyone, label="page-everyone")
    printed = capsys.readouterr().out
    assert report.passed == 0
    assert "FAIL clear warning posts to Slack only (core.toml)" in printed
    assert (
        "actions: expected ['slack.post'], got ['pagerduty.trigger', 'slack.post', 'jira.create']" in printed
    )
    assert f"page-everyone: 0/{len(cases)} scenarios passed (0.0%)" in printed


def _scripted(answer: Callable[[dict[str, Any]], dict[str, Any]]) -> FunctionModel:
    """A stand-in triage model: answers from the facts it is shown."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        request = messages[0]
        assert isinstance(request, ModelRequest)
        prompt = next(p for p in request.parts if isinstance(p, UserPromptPart))
        return ModelResponse(
            parts=[ToolCallPart(info.output_tools[0].name, answer(json.loads(str(prompt.content))))]
        )

    return FunctionModel(respond)


async def test_a_triage_model_is_evaluated_the_same_way(
    cases: list[ScenarioCase], capsys: pytest.CaptureFixture[str]
) -> None:
    def sensible(facts: dict[str, Any]) -> dict[str, Any]:
        if facts["severity"] == "critical":
            return {
                "action": "page",
                "channels": ["pagerduty", "slack"],
                "urgency": "high",
                "rationale": "spike",
            }
        return {"action": "notify", "channels": ["slack"], "urgency": "normal", "rationale": "worth a look"}

    def dismissive(facts: dict[str, Any]) -> dict[str, Any]:
        return {"action": "ignore", "channels": [], "urgency": "low", "rationale": "noise"}

    good = triage_model_decider(
        TriageModel(ModelRouter(ModelConfig(fast="f:m"), resolve=lambda n: _scripted(sensible)))
    )
    report = await evaluate(cases, good, label="sensible model")
    assert report.pass_rate == 1.0

    bad = triage_model_decider(
        TriageModel(ModelRouter(ModelConfig(fast="f:m"), resolve=lambda n: _scripted(dismissive)))
    )
    report = await evaluate(cases, bad, label="dismissive model")
    # only the two ambiguous scenarios reach the model: the borderline warning is dropped, and the
    # brief critical is floored to Slack only (never ignored) instead of paging
    assert sorted(name for name, _ in report.failures) == [
        "borderline warning without a model falls back to Slack",
        "brief critical spike without a model still pages",
    ]
    assert f"dismissive model: {len(cases) - 2}/{len(cases)} scenarios passed" in capsys.readouterr().out


def test_malformed_scenarios_are_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[scenario]]\nname = "x"\njob = "explode"\nnow = 2026-01-01T00:00:00Z\n')
    with pytest.raises(ScenarioError, match=r"bad.toml: scenario 'x'"):
        load_scenarios(bad)
