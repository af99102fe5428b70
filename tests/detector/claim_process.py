"""One "processor" for test_dedup_processes.py, run as ``python -m tests.detector.claim_process``.

Protocol (lines on stdin/stdout, so the parent never sleeps to wait):
- the parent writes one JSON line: dsn, the anomaly stream, this processor's clock offset (added
  to every event time), batch size (1: ``claim``; more: ``claim_many``), dedup window;
- the child connects and prints ``ready``; the parent writes ``go`` once every child is ready;
- for each batch starting at index i the child prints ``claiming i``, claims, prints ``claimed i``;
- at the end it prints ``done``.
In lockstep mode the child waits for a ``next`` line after each ``claiming``/``claimed`` line, so
the parent can SIGKILL it at an exact point (before, during or after a given claim) while it is
certainly still running.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace

import asyncpg

from detector.dedup import Dedup, DedupConfig
from detector.dedup_errors import DedupUnavailable
from detector.models import AnomalyEvent


def say(line: str, lockstep: bool = False) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    if lockstep and sys.stdin.readline().strip() != "next":
        raise SystemExit("the parent went away")


async def main() -> None:
    cfg = json.loads(sys.stdin.readline())
    offset = float(cfg["offset"])
    stream = [
        replace(e, window_start=e.window_start + offset, window_end=e.window_end + offset)
        for e in (AnomalyEvent.from_dict(d) for d in cfg["stream"])
    ]
    conn = await asyncpg.connect(cfg["dsn"], timeout=30)
    dedup = Dedup(conn, DedupConfig(window=float(cfg["window"])))
    say("ready")
    if sys.stdin.readline().strip() != "go":
        return
    size = int(cfg["batch"])
    lockstep = bool(cfg["lockstep"])
    for start in range(0, len(stream), size):
        batch = stream[start : start + size]
        say(f"claiming {start}", lockstep)
        for _ in range(5):  # what the pipeline does with a retryable error: try again
            try:
                await (dedup.claim(batch[0]) if size == 1 else dedup.claim_many(batch))
                break
            except DedupUnavailable:
                continue
        else:
            raise SystemExit(f"claim at {start} kept failing")
        say(f"claimed {start}", lockstep)
    await conn.close()
    say("done")


if __name__ == "__main__":
    asyncio.run(main())
