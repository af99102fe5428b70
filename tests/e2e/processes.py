"""``logwarden run`` as a real OS process: started with a test database in its environment, fed
through its standard input, its JSON log lines read as they come (tests wait for a log line, or
for the process to exit, never for time to pass)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

REPO = Path(__file__).resolve().parents[2]

LogEntry = dict[str, Any]


def run_env(database_url: str, data_dir: Path, **settings: str | float) -> dict[str, str]:
    """The child's environment: this one without any LOGWARDEN_ variable, plus the test's."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LOGWARDEN_")}
    env.update(
        PYTHONPATH=str(REPO),
        LOGWARDEN_DATABASE_URL=database_url,
        LOGWARDEN_DATA_DIR=str(data_dir),
        LOGWARDEN_SANDBOX_PORT="0",
        LOGWARDEN_LOG_FORMAT="json",
    )
    env.update({f"LOGWARDEN_{k.upper()}": str(v) for k, v in settings.items()})
    return env


class RunProcess:
    """One running ``logwarden run``; its stderr log is collected (and watched) while it runs."""

    def __init__(self, process: anyio.abc.Process, name: str) -> None:
        self.process = process
        self.name = name
        self.entries: list[LogEntry] = []
        self.raw: list[str] = []
        self._changed = anyio.Event()
        self._ended = False

    async def _read_log(self) -> None:
        assert self.process.stderr is not None
        buffered = b""
        async for chunk in self.process.stderr:
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                self.raw.append(text)
                try:
                    entry = json.loads(text)
                except ValueError:
                    entry = {"msg": text}
                self.entries.append(entry if isinstance(entry, dict) else {"msg": text})
            self._changed.set()
            self._changed = anyio.Event()
        self._ended = True
        self._changed.set()

    async def send(self, data: bytes) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(data)

    async def close_input(self) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.aclose()

    async def wait_for_log(self, match: Callable[[LogEntry], bool]) -> LogEntry:
        """The first log entry ``match`` accepts, as soon as the process writes it."""
        seen = 0
        while True:
            for entry in self.entries[seen:]:
                if match(entry):
                    return entry
            seen = len(self.entries)
            if self._ended:
                raise AssertionError(f"{self.name} closed its log (exited) before logging it:\n{self.log()}")
            await self._changed.wait()

    async def wait(self) -> int:
        return await self.process.wait()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def log(self) -> str:
        return "\n".join(self.raw[-60:])


@asynccontextmanager
async def logwarden_run(
    args: list[str], env: Mapping[str, str], *, name: str = "logwarden run"
) -> AsyncIterator[RunProcess]:
    """``python -m logwarden run ARGS`` with stdin piped; killed on the way out if still running."""
    process = await anyio.open_process(
        [sys.executable, "-m", "logwarden", "run", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(env),
        cwd=REPO,
    )
    run = RunProcess(process, name)
    async with process, anyio.create_task_group() as tg:
        tg.start_soon(run._read_log)
        try:
            yield run
        finally:
            if process.returncode is None:
                run.kill()
            with anyio.CancelScope(shield=True):
                await process.wait()


def stdin_args(processor_id: str, *extra: str) -> list[str]:
    """A processor reading JSON lines from stdin, event-time buckets, no HTTP, exit at EOF."""
    return ["--stdin", "--no-http", "--exit-at-eof", "--event-clock", "--processor-id", processor_id, *extra]
