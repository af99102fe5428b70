"""Eight OS processes replay one anomaly stream with skewed clocks; some are SIGKILLed.

Each processor shifts every event time by its own offset in [-3 s, +3 s] (event times must not
matter), half claim one anomaly at a time and half in batches (so a batch often holds an onset and
its escalation), and three of them are killed with SIGKILL at seeded random points: right before,
during or right after a claim. Whatever the interleaving, the outcome is fixed: exactly one
incident per fingerprint, exactly one open job per incident, one escalate job exactly where the
stream escalates, the highest severity kept, and nothing lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
from collections import defaultdict
from pathlib import Path

import anyio
import asyncpg
import pytest

from detector.models import AnomalyEvent, EventKind, Severity
from tests.detector.support import anomaly, assert_references_hold

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 8
VICTIMS = 3
SEED = 1234


def _stream(rng: random.Random) -> tuple[list[AnomalyEvent], dict[str, tuple[Severity, int]]]:
    """Interleaved events for 40 subjects (20 service names in two projects), each subject's
    events in order; and per fingerprint the expected (severity, escalate jobs)."""
    per_subject: list[list[AnomalyEvent]] = []
    expected: dict[str, tuple[Severity, int]] = {}
    for project in ("alpha", "beta"):
        for i in range(20):
            subject = {"project": project, "service": f"svc-{i}"}
            shape = rng.choice(["escalates", "critical", "warning"])
            if shape == "escalates":
                events = [
                    anomaly("onset", "warning", **subject),
                    anomaly("escalation", "critical", **subject),
                ]
                expected[events[0].fingerprint] = (Severity.CRITICAL, 1)
            else:
                events = [anomaly("onset", shape, **subject)]
                expected[events[0].fingerprint] = (Severity.parse(shape), 0)
            per_subject.append(events)
    stream: list[AnomalyEvent] = []
    while per_subject:
        events = rng.choice(per_subject)
        stream.append(events.pop(0))
        if not events:
            per_subject.remove(events)
    return stream, expected


async def _run(proc: asyncio.subprocess.Process, kill: tuple[str, str] | None) -> list[str]:
    """Read the child's lines until it ends. A victim runs in lockstep and is SIGKILLed at
    ``kill = (mode, line)``: "before" (blocked before its claim), "during" (released into its
    claim, then killed at once) or "after" (blocked after its claim)."""
    assert proc.stdout is not None
    assert proc.stdin is not None
    lines = []
    while line := (await proc.stdout.readline()).decode().strip():
        lines.append(line)
        if kill is None or line in ("ready", "done"):
            continue
        mode, at = kill
        if line == at and mode != "during":
            proc.send_signal(signal.SIGKILL)
            break
        proc.stdin.write(b"next\n")
        await proc.stdin.drain()
        if line == at:
            proc.send_signal(signal.SIGKILL)
            break
    await proc.wait()
    return lines


async def test_eight_processes_with_skewed_clocks_and_kills(database_url: str) -> None:
    rng = random.Random(SEED)
    stream, expected = _stream(rng)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGWARDEN_")}
    victims = rng.sample(range(PROCESSES), VICTIMS)
    kills: dict[int, tuple[str, str]] = {}
    for n, mode in zip(victims, ["before", "during", "after"], strict=True):
        size = 1 if n % 2 == 0 else 7
        kills[n] = (
            mode,
            f"{'claimed' if mode == 'after' else 'claiming'} {rng.randrange(0, len(stream), size)}",
        )
    procs = []
    for n in range(PROCESSES):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.detector.claim_process",
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        config = {
            "dsn": database_url,
            "stream": [e.to_dict() for e in stream],
            "offset": rng.uniform(-3.0, 3.0),
            "batch": 1 if n % 2 == 0 else 7,
            "window": 5.0,
            "lockstep": n in victims,
        }
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(json.dumps(config).encode() + b"\n")
        await proc.stdin.drain()
        procs.append(proc)

    with anyio.fail_after(120):
        for proc in procs:  # a start barrier: nobody claims before everyone is connected
            assert proc.stdout is not None
            assert (await proc.stdout.readline()).decode().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outputs = await asyncio.gather(*(_run(p, kills.get(n)) for n, p in enumerate(procs)))

    for n, (proc, lines) in enumerate(zip(procs, outputs, strict=True)):
        if n in victims:
            assert proc.returncode == -signal.SIGKILL, (n, lines[-3:])
        else:
            assert (proc.returncode, lines[-1]) == (0, "done"), (n, lines[-3:])

    conn = await asyncpg.connect(database_url)
    try:
        incidents = await conn.fetch("SELECT id, fingerprint, status, severity FROM incidents")
        jobs = await conn.fetch("SELECT incident_id, kind, status FROM notification_jobs")
        advisory = await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
        await assert_references_hold(conn)
    finally:
        await conn.close()

    by_fp = defaultdict(list)
    for row in incidents:
        by_fp[row["fingerprint"]].append(row)
    assert set(by_fp) == set(expected)  # nothing lost, nothing invented
    kinds: dict[int, list[str]] = defaultdict(list)
    for job in jobs:
        assert job["status"] == "pending"
        kinds[job["incident_id"]].append(job["kind"])
    for fp, (severity, escalations) in expected.items():
        [incident] = by_fp[fp]  # exactly one incident per fingerprint
        assert (incident["status"], incident["severity"]) == ("open", severity.value), fp
        assert sorted(kinds[incident["id"]]) == sorted(["open"] + ["escalate"] * escalations), fp
    assert advisory == 0
    assert all(e.kind is not EventKind.RECOVERY for e in stream)
