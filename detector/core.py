"""The streaming detector: log bytes in, anomaly events out.

Event time drives everything. Each event lands in the bucket of its timestamp for its
(project, service) key. The watermark is the newest event time seen (or the clock passed to
:meth:`Detector.advance`, whichever is later) minus the allowed lateness; a bucket closes when the
watermark passes its end, and then every key is scored at once (:mod:`detector.step`). An event
whose bucket has already closed is counted as late and dropped, never merged into a later bucket.

A running service calls :meth:`Detector.advance` from a timer with its clock so that buckets still
close while input is idle; offline replays need only :meth:`Detector.feed` and
:meth:`Detector.flush`.

Nothing here raises on bad input: rejected lines and records are counted (:meth:`Detector.stats`).
"""

from __future__ import annotations

import math
from itertools import compress

import numpy as np
import numpy.typing as npt

from detector.buckets import PendingBuckets
from detector.columns import Batch
from detector.config import DetectorConfig
from detector.counters import DetectorStats, Reason, Rejections
from detector.ingest import JsonLinesDecoder, line_shape
from detector.keys import KeyRegistry
from detector.messages import MessageSamples
from detector.models import AnomalyEvent, EventKind, Signal, fingerprint
from detector.otlp import OtlpDecoder
from detector.state import NEVER_IDLE, KeyState
from detector.step import Verdict, close_bucket, eviction_verdicts

I64 = npt.NDArray[np.int64]
_NEVER = -(2**62)


class Detector:
    """Streaming anomaly detector over JSON lines and OTLP logs. Not thread-safe."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = cfg = config or DetectorConfig()
        self._rejections = Rejections(cfg.rejection_samples)
        self._json = JsonLinesDecoder(cfg, self._rejections)
        self._otlp = OtlpDecoder(self._json.columns, self._rejections)
        self._keys = KeyRegistry(cfg.max_keys)
        self._state = KeyState(cfg)
        self._pending = PendingBuckets(self._state.capacity)
        self._messages = MessageSamples(cfg.message_samples, cfg.message_buckets)
        self._next: int | None = None
        """The next bucket to close (every earlier bucket is closed); None before any input."""
        self._horizon: int | None = None
        """Buckets before this may close: the watermark, in buckets."""
        self._clock: float | None = None
        self._carry = b""
        self._discarding = False
        self._fresh: list[int] = []
        self._counts = {"lines": 0, "otlp_requests": 0, "accepted": 0, "late": 0, "evicted": 0, "closed": 0}
        self._emitted = {kind.value: 0 for kind in EventKind}

    # -- input ------------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> list[AnomalyEvent]:
        """Ingest JSON lines in any chunking (a partial last line waits for the next call)."""
        buf = bytes(chunk)  # no copy when it already is bytes
        if self._discarding:  # the rest of a too-long line is dropped
            nl = buf.find(b"\n")
            if nl < 0:
                return []
            buf, self._discarding = buf[nl + 1 :], False
        if self._carry:
            # one copy of the chunk is cheaper than running the pipeline twice per call
            buf, self._carry = self._carry + buf, b""
        cut = buf.rfind(b"\n")
        if cut < 0:
            self._carry = self._bounded_carry(buf)
            return []
        self._carry = self._bounded_carry(buf[cut + 1 :])
        return self._decode(buf, 0, cut + 1)

    def _bounded_carry(self, rest: bytes) -> bytes:
        """Keep a partial line for the next call, unless it is already too long."""
        if len(rest) <= self.config.max_line_bytes:
            return rest
        self._counts["lines"] += 1
        self._rejections.add(Reason.TOO_LONG, f"line {self._counts['lines']}", rest)
        self._discarding = True
        return b""

    def _decode(self, buf: bytes, start: int, end: int) -> list[AnomalyEvent]:
        first = self._counts["lines"] + 1
        shape = line_shape(buf, start, end)
        self._counts["lines"] += shape[0]
        return self._ingest(self._json.decode(buf, first, start, end, shape))

    def feed_otlp(self, body: bytes, content_type: str) -> list[AnomalyEvent]:
        """Ingest one OTLP/HTTP logs request body (``application/x-protobuf`` or
        ``application/json``; decompression is the HTTP layer's job)."""
        self._counts["otlp_requests"] += 1
        label = f"request {self._counts['otlp_requests']}"
        return self._ingest(self._otlp.decode(bytes(body), content_type, label))

    def advance(self, now: float) -> list[AnomalyEvent]:
        """Declare that event time ``now`` (epoch seconds) has been reached, e.g. from the
        service's clock: buckets that end ``allowed_lateness_seconds`` before it close even if
        no event arrives. Events further than ``max_future_seconds`` ahead of it are rejected."""
        if not math.isfinite(now):
            return []
        self._clock = now if self._clock is None else max(self._clock, now)
        self._raise_horizon(
            math.floor((now - self.config.allowed_lateness_seconds) / self.config.bucket_seconds)
        )
        return self._close_ready()

    def flush(self) -> list[AnomalyEvent]:
        """End of input: the carried partial line is taken as a last line and every open bucket
        closes. Later events for those buckets count as late.

        Buckets that the watermark had not passed are incomplete by construction (their late
        and clock-skewed lines never came), so they are scored for error rate but not judged for
        volume collapse: a replay's last seconds do not look like every service going silent."""
        events: list[AnomalyEvent] = []
        if self._carry and not self._discarding:
            rest, self._carry = self._carry, b""
            self._counts["lines"] += 1
            events += self._ingest(self._json.decode(rest, self._counts["lines"]))
        self._carry, self._discarding = b"", False
        complete = self._horizon
        if self._pending:
            self._raise_horizon(max(self._pending.buckets) + 1)
        return events + self._close_ready(complete)

    # -- ingestion --------------------------------------------------------------------------

    def _ingest(self, batch: Batch) -> list[AnomalyEvent]:
        if not len(batch):
            return self._close_ready()
        cfg = self.config
        seconds = batch.seconds
        keys = self._key_ids(batch)
        buckets = seconds if cfg.bucket_seconds == 1 else seconds // cfg.bucket_seconds
        if self._fresh:  # new keys start their idle clock at this batch
            self._state.last_seen[self._fresh] = int(buckets.max())
            self._fresh.clear()
        newest = int(seconds.max())
        ahead_of_clock = self._clock is not None and newest > self._clock + cfg.max_future_seconds
        if int(keys.min()) >= 0 and not ahead_of_clock:
            # the common case, cheaply: if even the newest line of the batch cannot make its
            # oldest late, no line is late
            reach = math.floor((newest - cfg.allowed_lateness_seconds) / cfg.bucket_seconds)
            if self._horizon is not None:
                reach = max(reach, self._horizon)
            if int(buckets.min()) >= reach:
                self._counts["accepted"] += len(batch)
                self._pending.add(buckets, keys, batch.errors)
                if batch.messages:
                    error_rows = np.flatnonzero(batch.errors)
                    self._messages_add(buckets[error_rows], keys[error_rows], batch.messages)
                self._raise_horizon(reach)
                return self._close_ready()
        ok = keys >= 0
        if self._clock is not None:
            ahead = ok & (seconds > self._clock + cfg.max_future_seconds)
            for i in np.flatnonzero(ahead).tolist():
                self._rejections.add(Reason.ABSURD_TIMESTAMP, "ahead of the clock", f"ts={int(seconds[i])}")
            ok &= ~ahead
        # a line is late when its bucket closed before it arrived: before the horizon, or before
        # the watermark raised by the lines ahead of it in this batch
        running = np.maximum.accumulate(np.where(ok, seconds, _NEVER))
        closed = np.floor((running - cfg.allowed_lateness_seconds) / cfg.bucket_seconds).astype(np.int64)
        if self._horizon is not None:
            np.maximum(closed, self._horizon, out=closed)
        late = ok & (buckets < closed)
        self._counts["late"] += int(late.sum())
        ok &= ~late
        rows = np.flatnonzero(ok)
        self._counts["accepted"] += len(rows)
        self._pending.add(buckets[rows], keys[rows], batch.errors[rows])
        if batch.messages:
            error_rows = np.flatnonzero(batch.errors)
            keep = ok[error_rows]
            if keep.any():
                kept = error_rows[keep]
                msgs = list(compress(batch.messages, keep.tolist()))
                self._messages_add(buckets[kept], keys[kept], msgs)
        if len(rows):
            self._raise_horizon(int(closed[-1]))
        return self._close_ready()

    def _messages_add(self, buckets: I64, keys: I64, messages: list[str]) -> None:
        order = np.argsort(buckets, kind="stable")
        cuts = np.flatnonzero(np.diff(buckets[order])) + 1
        for part in np.split(order, cuts):
            idx = part.tolist()
            self._messages.add(int(buckets[idx[0]]), keys[part].tolist(), [messages[i] for i in idx])

    def _key_ids(self, batch: Batch) -> I64:
        """Key id per row, -1 for rows refused (bad name, or ``max_keys`` reached)."""
        ids = self._keys.lookup(batch.projects, batch.project, batch.services, batch.packed)
        unknown = np.flatnonzero(ids < 0)
        if len(unknown):  # keys not seen before
            self._resolve(batch, unknown, ids)
        return ids

    def _resolve(self, batch: Batch, rows: npt.NDArray[np.intp], ids: I64) -> None:
        """Check and allocate the keys first seen in these rows (in a stable order)."""
        limit = self.config.max_name_chars
        names = [
            (batch.projects[i] if batch.projects is not None else batch.project, batch.services[i])
            for i in rows.tolist()
        ]
        verdict: dict[tuple[str, str], int | Reason] = {}
        for project, service in sorted(set(names)):
            if not service:
                verdict[(project, service)] = Reason.MISSING_SERVICE
            elif len(service) > limit or len(project) > limit:
                verdict[(project, service)] = Reason.NAME_TOO_LONG
            else:
                key = self._keys.allocate(project, service)
                verdict[(project, service)] = Reason.KEY_LIMIT if key is None else key
                if key is not None:
                    self._new_key(key)
        for i, name in zip(rows.tolist(), names, strict=True):
            got = verdict[name]
            if isinstance(got, Reason):
                self._rejections.add(
                    got, batch.label(i), f"project={name[0][:64]!r} service={name[1][:64]!r}"
                )
            else:
                ids[i] = got
        self._keys.catch_up()

    def _new_key(self, key: int) -> None:
        st = self._state
        if self._keys.used > st.capacity:
            st.ensure(self._keys.used)
            self._pending.grow(st.capacity)
        self._fresh.append(key)  # an evicted id was cleared when it was freed

    # -- closing buckets --------------------------------------------------------------------

    def _raise_horizon(self, bucket: int) -> None:
        if self._horizon is None or bucket > self._horizon:
            self._horizon = bucket
        if self._next is None:
            self._next = self._pending.first()

    def _close_ready(self, complete: int | None = None) -> list[AnomalyEvent]:
        """Close every bucket before the horizon; from ``complete`` on they are forced (flush)."""
        if self._next is None or self._horizon is None or self._next >= self._horizon:
            return []
        events: list[AnomalyEvent] = []
        cfg = self.config
        quiet = cfg.idle_ttl_buckets + cfg.slot_buckets + cfg.windows[-1]
        while self._next < self._horizon:
            upcoming = self._pending.first()
            stop = self._horizon if upcoming is None else min(upcoming, self._horizon)
            if stop - self._next > quiet:  # a long silence: start every key afresh at its end
                used = self._keys.used
                live = np.zeros(used, dtype=np.bool_)
                live[self._keys.live()] = True
                holding = self._pending.holding(used)
                events += self._evict(np.flatnonzero(live & ~holding), self._next)
                events += self._restart(np.flatnonzero(live & holding), self._next, stop)
                self._messages.drop_open_before(stop)
                self._next = stop
                continue
            events += self._close(self._next, complete is None or self._next < complete)
            self._next += 1
        return events

    def _close(self, t: int, complete: bool = True) -> list[AnomalyEvent]:
        cfg, st = self.config, self._state
        used = self._keys.used
        events: list[AnomalyEvent] = []
        if self._counts["closed"]:
            st.roll(t, used)
            stale = st.stale(t, used, t - cfg.idle_ttl_buckets)
            if stale.any():
                group = st.group(t, used)
                idle = stale.reshape(-1)[: len(group)] & ~self._pending.holding(used)[group]
                events += self._evict(group[idle], t)
        popped = self._pending.pop(t)
        if popped is None:
            verdicts = close_bucket(st, t, np.zeros((2, used), np.int32), used, most=0, volume=complete)
        else:
            counts, most = popped
            verdicts = close_bucket(st, t, counts[:, :used], used, most=most, volume=complete)
            self._pending.recycle(counts, used)
        self._messages.close(t)
        self._counts["closed"] += 1
        return events + self._events(verdicts, t)

    def _evict(self, keys: npt.NDArray[np.intp], t: int) -> list[AnomalyEvent]:
        if not len(keys):
            return []
        events = self._events(eviction_verdicts(self._state, keys, t - 1, self._keys.used), t - 1)
        self._state.clear(keys)
        self._state.last_seen[keys] = NEVER_IDLE  # a free id is never idle (clear did it too)
        self._keys.evict(keys.tolist())
        self._messages.forget(keys.tolist())
        self._counts["evicted"] += len(keys)
        return events

    def _restart(self, keys: npt.NDArray[np.intp], t: int, stop: int) -> list[AnomalyEvent]:
        """Keys with data after a long silence keep their ids but none of their stale state."""
        if not len(keys):
            return []
        events = self._events(eviction_verdicts(self._state, keys, t - 1, self._keys.used), t - 1)
        self._state.clear(keys)
        self._state.last_seen[keys] = stop
        return events

    def _events(self, verdicts: list[Verdict], t: int) -> list[AnomalyEvent]:
        """The events of verdicts about bucket ``t`` (the keys' names looked up at once)."""
        if not verdicts:
            return []
        names = self._keys.names([v.key for v in verdicts])
        return [self._event(v, t, name) for v, name in zip(verdicts, names, strict=True)]

    def _event(self, v: Verdict, t: int, name: tuple[str, str] | None) -> AnomalyEvent:
        assert name is not None
        project, service = name
        bs = self.config.bucket_seconds
        end = float((t + 1) * bs)
        messages = self._messages.recent(v.key) if v.signal is Signal.ERROR_RATE else ()
        self._emitted[v.kind.value] += 1
        return AnomalyEvent(
            kind=v.kind,
            project=project,
            service=service,
            signal=v.signal,
            severity=v.severity,
            fingerprint=fingerprint(project, service, v.signal),
            window_start=end - v.window * bs,
            window_end=end,
            error_count=v.errors,
            total_count=v.total,
            observed_rate=v.observed_rate,
            baseline_mean=v.baseline_mean,
            baseline_std=v.baseline_std,
            z=v.z,
            ewma=v.ewma,
            rate_of_change=v.rate_of_change,
            score=v.score,
            messages=messages,
        )

    # -- introspection ----------------------------------------------------------------------

    def stats(self) -> DetectorStats:
        """Ingest and rejection counts, late events, keys, buckets closed, events emitted."""
        c = self._counts
        watermark = None if self._next is None else float(self._next * self.config.bucket_seconds)
        return DetectorStats(
            lines_received=c["lines"],
            otlp_requests=c["otlp_requests"],
            otlp_records=self._otlp.records_seen,
            events_accepted=c["accepted"],
            rejected=self._rejections.counts(),
            rejected_samples=self._rejections.sample_map(),
            late_events=c["late"],
            keys=len(self._keys),
            keys_evicted=c["evicted"],
            buckets_closed=c["closed"],
            watermark=watermark,
            anomaly_events=dict(self._emitted),
            state_bytes=self._state.nbytes_per_key() * self._state.capacity,
        )

    def snapshot(self) -> bytes:
        """The detector's whole state as bytes (see :mod:`detector.snapshot`)."""
        from detector.snapshot import dump

        return dump(self)

    @classmethod
    def restore(cls, data: bytes, config: DetectorConfig | None = None) -> Detector:
        """A detector that continues exactly where the snapshotted one stopped."""
        from detector.snapshot import load

        return load(data, config)
