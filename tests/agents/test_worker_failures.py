"""The worker when things go wrong: channels not connected, the router failing, crashes between
the tool call and the job's completion, shutdown with work in flight, quiet hours."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import anyio
import asyncpg
import pytest

from agents.audit import AuditLog, Outcome
from agents.deliveries import DeliveryStore, Reservation
from agents.job_handler import HandlerOptions
from agents.job_run import Disposition
from agents.policy_file import parse_policy
from agents.worker import Handled, Worker, WorkerCounters
from detector.dedup import DedupConfig
from detector.models import JobStatus, NotificationJob
from detector.outbox import Outbox
from router.base import Connection, ConnectionState, ConnectLink, McpEndpoint
from router.sandbox import Failure, FailureKind, SandboxServer
from tests.agents.support import CONFIG, actions_sent, app_calls, claim, make_worker
from tests.detector.support import expire_lease

pytestmark = pytest.mark.anyio


async def _only(sandbox: SandboxServer, *toolkits: str) -> None:
    """``operator`` has exactly these toolkits connected (the others revoked)."""
    connections = await sandbox.router().connections("operator")
    for toolkit, conn in connections.items():
        if toolkit not in toolkits and conn.account_id is not None:
            await sandbox.store.set_connection_state(conn.account_id, ConnectionState.FAILED)


async def test_jira_not_connected_falls_back_to_slack_with_the_connect_link(
    pool: asyncpg.Pool, sandbox: SandboxServer
) -> None:
    await _only(sandbox, "slack", "pagerduty")
    await claim(pool, "critical", service="search")  # a critical on a non-paging service: Slack + Jira
    policy = parse_policy(
        'version = 1\n[[policy]]\nservice = "search"\npagerduty = { enabled = false }\n', "p"
    )
    with anyio.fail_after(30):
        [handled] = await make_worker(pool, sandbox, policy=policy).drain()
    assert handled.disposition is Disposition.COMPLETE, handled.error
    assert await actions_sent(sandbox) == ["SLACK_SEND_MESSAGE"]
    decision = handled.decision
    assert decision is not None
    link = decision.connect_links["jira"]
    assert link.startswith(sandbox.origin + "/connect/")
    [post] = await pool.fetch("SELECT text FROM sandbox_slack_messages")
    assert "jira is not connected for operator" in post["text"]
    assert link in post["text"]
    assert {"channel": "jira", "reason": "not_connected"} in decision.output["skipped"]
    [row] = await AuditLog(pool).for_job(handled.job_id)
    assert row.decision.connect_links == {"jira": link}


async def test_pagerduty_not_connected_still_pages_through_slack(
    pool: asyncpg.Pool, sandbox: SandboxServer
) -> None:
    await _only(sandbox, "slack")
    made = await claim(pool, "critical")
    with anyio.fail_after(30):
        [handled] = await make_worker(pool, sandbox).drain()
    assert handled.disposition is Disposition.COMPLETE
    assert await actions_sent(sandbox) == ["SLACK_SEND_MESSAGE"]
    assert made.incident_id is not None
    [row] = await DeliveryStore(pool).for_incident(made.incident_id)
    assert (row.action.value, row.fallback_for) == ("slack.post", "pagerduty")
    assert handled.decision is not None
    assert "pagerduty" in handled.decision.connect_links


class StaleConnections:
    """A router whose connection states are out of date: it says every toolkit is active."""

    def __init__(self, real: Any) -> None:
        self._real = real

    async def session(self, user_id: str) -> McpEndpoint:
        result: McpEndpoint = await self._real.session(user_id)
        return result

    async def connections(self, user_id: str) -> Mapping[str, Connection]:
        return {t: Connection(t, ConnectionState.ACTIVE) for t in ("slack", "jira", "pagerduty")}

    async def connect(self, user_id: str, toolkit: str, callback_url: str | None = None) -> ConnectLink:
        link: ConnectLink = await self._real.connect(user_id, toolkit, callback_url)
        return link

    async def wait_connected(self, user_id: str, connection_id: str, timeout: float) -> Connection:
        conn: Connection = await self._real.wait_connected(user_id, connection_id, timeout)
        return conn


async def test_a_connection_revoked_after_planning_is_replanned_to_the_fallback(
    pool: asyncpg.Pool, sandbox: SandboxServer
) -> None:
    await _only(sandbox, "slack")
    await claim(pool, "critical")
    worker = make_worker(pool, sandbox, router=StaleConnections(sandbox.router()))
    with anyio.fail_after(30):
        [handled] = await worker.drain()
    assert handled.disposition is Disposition.COMPLETE, handled.error
    calls = await app_calls(sandbox)
    assert calls == [("SLACK_SEND_MESSAGE", "ok")]  # the PagerDuty call stopped at the connection check
    decision = handled.decision
    assert decision is not None
    assert "replanned:not_connected:pagerduty" in decision.fallbacks
    assert decision.connect_links["pagerduty"].startswith(sandbox.origin)
    [post] = await pool.fetch("SELECT text FROM sandbox_slack_messages")
    assert "pagerduty is not connected" in post["text"]


@pytest.mark.parametrize(
    "failure",
    [
        Failure(FailureKind.HTTP_ERROR, tool_slug="SLACK_SEND_MESSAGE", count=2),
        Failure(FailureKind.SERVER_ERROR, tool_slug="SLACK_SEND_MESSAGE", count=2),
        Failure(FailureKind.RATE_LIMITED, tool_slug="SLACK_SEND_MESSAGE", count=2),
    ],
    ids=["http-503", "upstream-5xx", "rate-limited"],
)
async def test_router_failures_retry_the_job_and_deliver_once(
    pool: asyncpg.Pool, sandbox: SandboxServer, failure: Failure
) -> None:
    made = await claim(pool, "critical")
    sandbox.failures.inject(failure)
    worker = make_worker(pool, sandbox)
    with anyio.fail_after(60):
        handled = await worker.drain()
    assert [h.disposition for h in handled] == [Disposition.RETRY, Disposition.RETRY, Disposition.COMPLETE]
    assert await actions_sent(sandbox) == ["PAGERDUTY_CREATE_INCIDENT_RECORD", "SLACK_SEND_MESSAGE"]
    [job] = await worker.outbox.jobs(incident_id=made.incident_id)
    assert (job.status, job.attempts) == (JobStatus.DONE, 3)
    decisions = await AuditLog(pool).for_job(job.id)
    assert [d.decision.outcome for d in decisions] == [Outcome.RETRY, Outcome.RETRY, Outcome.DELIVERED]
    retried = decisions[1].decision  # the page went out on the first attempt: only Slack is left
    assert [(c["tool"], c["status"]) for c in retried.tool_calls] == [("SLACK_SEND_MESSAGE", "failed")]
    assert {"channel": "pagerduty", "reason": "already_done"} in retried.output["skipped"]


async def test_the_router_refusing_credentials_dead_letters_the_job(
    pool: asyncpg.Pool, sandbox: SandboxServer
) -> None:
    class WrongKey(StaleConnections):
        async def session(self, user_id: str) -> McpEndpoint:
            real = await super().session(user_id)
            return McpEndpoint(real.url, {"x-api-key": "lwsk_wrong_key_123456"}, real.session_id)

    made = await claim(pool, "critical")
    worker = make_worker(pool, sandbox, router=WrongKey(sandbox.router()))
    with anyio.fail_after(30):
        [handled] = await worker.drain()
    assert handled.disposition is Disposition.DEAD
    assert handled.error is not None
    assert "refused" in handled.error
    assert "lwsk_wrong" not in handled.error
    [job] = await worker.outbox.jobs(incident_id=made.incident_id)
    assert job.status is JobStatus.DEAD
    assert await app_calls(sandbox) == []


class Crash(BaseException):
    """The process dies here."""


async def _crash_then_rerun(
    pool: asyncpg.Pool, sandbox: SandboxServer, doomed: Worker, job_id: int | None
) -> Handled:
    """``doomed`` dies on the job; its lease runs out; another worker picks the job up."""
    assert job_id is not None
    with anyio.fail_after(60):
        with pytest.raises(Crash):
            await doomed.drain()
        await expire_lease(pool, job_id)
        [handled] = await make_worker(pool, sandbox, owner="worker-b").drain()
    return handled


class CrashingOutbox(Outbox):
    async def complete(self, job: NotificationJob, result: Mapping[str, Any]) -> NotificationJob:
        raise Crash


async def test_a_crash_after_delivery_before_the_job_completes_sends_nothing_twice(
    pool: asyncpg.Pool, sandbox: SandboxServer
) -> None:
    made = await claim(pool, "critical")
    doomed = make_worker(pool, sandbox, outbox=CrashingOutbox(pool, "worker-a", CONFIG))
    handled = await _crash_then_rerun(pool, sandbox, doomed, made.job_id)
    assert handled.disposition is Disposition.COMPLETE
    assert await actions_sent(sandbox) == ["PAGERDUTY_CREATE_INCIDENT_RECORD", "SLACK_SEND_MESSAGE"]
    assert handled.decision is not None
    assert handled.decision.tool_calls == ()  # the record says both were sent: nothing to call
    assert handled.decision.output["skipped"] == [
        {"channel": "pagerduty", "reason": "already_done"},
        {"channel": "slack", "reason": "already_done"},
    ]


class CrashingDeliveries(DeliveryStore):
    """Dies right after the app call for ``action``, before the delivery is completed."""

    def __init__(self, pool: asyncpg.Pool, action: str) -> None:
        super().__init__(pool)
        self.action = action

    async def complete(
        self, res: Reservation, external_ref: str | None, recovered: str | None = None
    ) -> None:
        if res.key.endswith(self.action) and recovered is None:
            raise Crash
        await super().complete(res, external_ref, recovered)


@pytest.mark.parametrize(
    ("action", "settled_by"),
    [
        ("slack.post", "SLACK_FETCH_CONVERSATION_HISTORY"),  # found by its marker in the channel
        ("pagerduty.trigger", "PAGERDUTY_CREATE_INCIDENT_RECORD"),  # sent again; the dedup key holds
    ],
)
async def test_a_crash_between_the_tool_call_and_its_record_sends_nothing_twice(
    pool: asyncpg.Pool, sandbox: SandboxServer, action: str, settled_by: str
) -> None:
    made = await claim(pool, "critical")
    doomed = make_worker(pool, sandbox, deliveries=CrashingDeliveries(pool, action))
    handled = await _crash_then_rerun(pool, sandbox, doomed, made.job_id)
    assert handled.disposition is Disposition.COMPLETE, handled.error
    assert await pool.fetchval("SELECT count(*) FROM sandbox_pd_incidents") == 1
    assert await pool.fetchval("SELECT count(*) FROM sandbox_slack_messages") == 1
    assert made.incident_id is not None
    record = await DeliveryStore(pool).for_incident(made.incident_id)
    assert [(r.action.value, r.status, r.attempts) for r in record] == [
        ("pagerduty.trigger", "sent", 2 if action == "pagerduty.trigger" else 1),
        ("slack.post", "sent", 2 if action == "slack.post" else 1),
    ]
    calls = [slug for slug, _ in await app_calls(sandbox)]
    assert settled_by in calls
    if action == "slack.post":
        assert calls.count("SLACK_SEND_MESSAGE") == 1
        assert record[1].recovered == "found by SLACK_FETCH_CONVERSATION_HISTORY"


async def test_an_unfinished_attempt_younger_than_the_grace_is_left_alone(
    pool: asyncpg.Pool, sandbox: SandboxServer
) -> None:
    made = await claim(pool, "critical")
    with anyio.fail_after(60):
        with pytest.raises(Crash):
            await make_worker(pool, sandbox, deliveries=CrashingDeliveries(pool, "slack.post")).drain()
        assert made.job_id is not None
        await expire_lease(pool, made.job_id)
        careful = make_worker(
            pool,
            sandbox,
            outbox=Outbox(pool, "worker-b", DedupConfig(backoff_base=60)),
            options=HandlerOptions(in_flight_grace=3600),
        )
        [handled] = await careful.drain()  # one attempt: the retry is a minute away
    assert handled.disposition is Disposition.RETRY
    assert handled.error is not None
    assert "may still be running" in handled.error
    assert await pool.fetchval("SELECT count(*) FROM sandbox_slack_messages") == 1


class Blocking(StaleConnections):
    """A router whose session() waits until released: a job in flight for as long as a test likes."""

    def __init__(self, real: Any) -> None:
        super().__init__(real)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def connections(self, user_id: str) -> Mapping[str, Connection]:
        result: Mapping[str, Connection] = await self._real.connections(user_id)
        return result

    async def session(self, user_id: str) -> McpEndpoint:
        self.entered.set()
        await self.release.wait()
        return await super().session(user_id)


async def test_shutdown_releases_jobs_still_in_flight_after_the_grace(
    pool: asyncpg.Pool, sandbox: SandboxServer
) -> None:
    made = await claim(pool, "critical")
    router = Blocking(sandbox.router())
    worker = make_worker(pool, sandbox, router=router)
    stop = asyncio.Event()
    with anyio.fail_after(30):
        running = asyncio.create_task(worker.run(stop))
        await router.entered.wait()
        await worker.shutdown(grace=0)
        await running
    [job] = await worker.outbox.jobs(incident_id=made.incident_id)
    assert (job.status, job.attempts) == (JobStatus.PENDING, 0)
    assert await app_calls(sandbox) == []
    router.release.set()
    with anyio.fail_after(30):
        [handled] = await make_worker(pool, sandbox, owner="worker-b").drain()
    assert handled.disposition is Disposition.COMPLETE


async def test_shutdown_lets_jobs_in_flight_finish_within_the_grace(
    pool: asyncpg.Pool, sandbox: SandboxServer
) -> None:
    made = await claim(pool, "critical")
    router = Blocking(sandbox.router())
    worker = make_worker(pool, sandbox, router=router)
    with anyio.fail_after(30):
        running = asyncio.create_task(worker.run())
        await router.entered.wait()
        closing = asyncio.create_task(worker.shutdown(grace=25))
        router.release.set()
        await closing
        await running
    [job] = await worker.outbox.jobs(incident_id=made.incident_id)
    assert job.status is JobStatus.DONE
    assert await actions_sent(sandbox) == ["PAGERDUTY_CREATE_INCIDENT_RECORD", "SLACK_SEND_MESSAGE"]


QUIET = parse_policy(
    'version = 1\n[defaults]\nquiet_hours = { start = "22:00", end = "07:00", channels = ["slack"] }\n', "q"
)


async def test_quiet_hours_defer_a_warning_until_they_end(pool: asyncpg.Pool, sandbox: SandboxServer) -> None:
    made = await claim(pool, "warning")
    night = datetime(2030, 3, 2, 23, 30, tzinfo=UTC)
    with anyio.fail_after(30):
        [held] = await make_worker(pool, sandbox, policy=QUIET, clock=lambda: night).drain()
    assert held.disposition is Disposition.DEFER
    [job] = await Outbox(pool, "x").jobs(incident_id=made.incident_id)
    assert job.status is JobStatus.PENDING
    assert job.next_attempt_at == datetime(2030, 3, 3, 7, 0, tzinfo=UTC)
    assert job.attempts == 0
    assert await app_calls(sandbox) == []
    await pool.execute("UPDATE notification_jobs SET next_attempt_at = now() WHERE id = $1", job.id)
    morning = datetime(2030, 3, 3, 7, 5, tzinfo=UTC)
    with anyio.fail_after(30):
        [sent] = await make_worker(pool, sandbox, policy=QUIET, clock=lambda: morning).drain()
    assert sent.disposition is Disposition.COMPLETE
    assert await actions_sent(sandbox) == ["SLACK_SEND_MESSAGE"]


class Broken(StaleConnections):
    """A router with a defect: connections() raises something nobody expects."""

    async def connections(self, user_id: str) -> Mapping[str, Connection]:
        raise ZeroDivisionError("bug")


async def test_an_unexpected_error_is_retried_then_dead_lettered_not_lost(
    pool: asyncpg.Pool, sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    made = await claim(pool, "critical")
    worker = make_worker(pool, sandbox, router=Broken(sandbox.router()))
    with anyio.fail_after(60):
        handled = await worker.drain()
    assert [h.disposition for h in handled] == [Disposition.RETRY] * CONFIG.max_attempts
    assert handled[0].error == "unexpected ZeroDivisionError: bug"
    [job] = await worker.outbox.jobs(incident_id=made.incident_id)
    assert job.status is JobStatus.DEAD
    assert "job 1 failed unexpectedly" in caplog.text


class Finished(WorkerCounters):
    """Counters that also say when a job is done."""

    def __init__(self) -> None:
        super().__init__()
        self.done = asyncio.Event()

    def job_done(self, job_id: int, outcome: str) -> None:
        super().job_done(job_id, outcome)
        self.done.set()


class Watched(Outbox):
    """An outbox that says when a lease came back empty."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool, "worker-a", CONFIG)
        self.idle = asyncio.Event()

    async def lease(self, n: int, lease_for: float) -> list[NotificationJob]:
        jobs = await super().lease(n, lease_for)
        if not jobs:
            self.idle.set()
        return jobs


async def test_a_wake_leases_new_jobs_without_waiting_for_the_poll(
    pool: asyncpg.Pool, sandbox: SandboxServer
) -> None:
    events = Finished()
    outbox = Watched(pool)
    worker = make_worker(pool, sandbox, outbox=outbox, poll_interval=3600.0)
    worker.events = events
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        with anyio.fail_after(30):
            # nothing due: once this returns, the loop is in its hour-long pause
            await outbox.idle.wait()
            made = await claim(pool, "critical")
            worker.wake()
            await events.done.wait()
        [job] = await worker.outbox.jobs(incident_id=made.incident_id)
        assert job.status is JobStatus.DONE
    finally:
        stop.set()
        with anyio.fail_after(30):
            await running
