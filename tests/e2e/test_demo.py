"""``logwarden demo`` (the README's main command) runs the real pipeline and reports truthfully."""

import io

import pytest

from logwarden.config import Settings
from logwarden.demo import print_report, run_demo

pytestmark = pytest.mark.anyio


async def test_demo_detects_every_injected_incident_and_finishes_every_job(settings: Settings) -> None:
    out = io.StringIO()
    # Unpaced (speed far above real time): detection is event-time and deterministic; whether a
    # short incident's page goes out before its recovery depends on timing, so that is not asserted.
    report = await run_demo(settings, seed=0, speed=1e9, out=out)
    positive = [label for label in report.labels if label.positive]
    assert positive
    assert sum(1 for o in report.evaluation.outcomes if o.label.positive and o.detected) == len(positive)
    assert report.evaluation.false_incidents == ()
    assert report.incidents
    assert all(i["status"] == "resolved" for i in report.incidents)
    assert all(d["status"] == "sent" for d in report.deliveries)
    assert report.lines > 100_000
    assert report.rejected > 0  # the stream carries bad lines on purpose; they are counted, not fatal
    print_report(report, out)
    text = out.getvalue()
    assert "Incidents" in text
    assert f"detected               {len(positive)} of {len(positive)}" in text
