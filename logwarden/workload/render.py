"""Turn per-second counts into JSON-lines bytes, fast.

Every good line is three pre-built byte pieces joined: the timestamp up to the second (one per
format and second), the fraction of the second (one per format and millisecond), and the rest of
the line (one per service and message variant). A chunk is rendered by picking piece numbers with
numpy and joining the pieces once, so the per-line cost is a few array operations, not Python
string formatting. Bad lines are whole pre-built lines in the third table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from logwarden.workload.config import WorkloadConfig
from logwarden.workload.plan import TS_FORMATS, Fleet

OK_VARIANTS = 3
ERROR_VARIANTS = 3
VARIANTS = OK_VARIANTS + ERROR_VARIANTS
SKEWED_HOST_SHARE = 1 / 3
"""Share of a skewed service's lines written by its skewed host."""

_OFFSETS = {"rfc3339_z": 0, "rfc3339_+02:00": 120, "rfc3339_-05:00": -300, "rfc3339_+05:30": 330}
_OK_LEVELS = ("info", "INFO", "debug", "notice", "warn")
_ERROR_LEVELS = ("error", "ERROR", "Error", "fatal", "Critical", "alert", "emergency")
_OK_MESSAGES = (
    "request completed in 12ms",
    "processed batch of 250 records",
    "cache hit ratio 0.93",
    "user 48211 logged in",
    "heartbeat ok",
    "scheduled job sync-inventory finished in 3401ms",
)
_ERROR_MESSAGES = (
    "timeout after 1503ms calling payments-db",
    "timeout after 98ms calling payments-db",
    "connection refused: 10.0.3.17:5432",
    "NullPointerException at OrderService.handle(OrderService.java:214)",
    "upstream returned 503 for request 7f3a9c2e",
    "deadlock detected on table orders",
)
_HTTP_OK = ((200, "info"), (201, "info"), (204, "debug"), (304, "info"), (404, "warn"))
_HTTP_ERRORS = ((500, "error"), (502, "info"), (503, "info"), (504, "warn"))
_PATHS = ("/api/v1/orders", "/api/v1/cart", "/health", "/api/v2/search", "/login")


def _bad_lines(start_ts: int) -> list[tuple[str, bytes, float]]:
    """(kind, line, weight): the bad input a real log stream carries."""
    ts = datetime.fromtimestamp(start_ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    svc = '"service":"orders-api"'
    rest = '"level":"error","message":"boom"'
    lines = [
        ("malformed_json", f'{{"ts":"{ts}",{svc},"level":"error","mess', 2.0),
        ("malformed_json", f'{{"ts": "{ts}", service: orders-api, level: error}}', 1.0),
        ("missing_service", f'{{"ts":"{ts}",{rest}}}', 1.5),
        ("missing_service", f'{{"ts":"{ts}","service":"",{rest}}}', 0.5),
        ("missing_ts", f"{{{svc},{rest}}}", 1.0),
        ("bad_timestamp", f'{{"ts":"yesterday at noon",{svc},{rest}}}', 1.0),
        ("bad_timestamp", f'{{"ts":"2024-13-45T99:00:00Z",{svc},{rest}}}', 1.0),
        ("absurd_timestamp", f'{{"ts":"2999-01-01T00:00:00Z",{svc},{rest}}}', 0.5),
        ("absurd_timestamp", f'{{"ts":1e30,{svc},{rest}}}', 0.5),
        ("wrong_type", f'{{"ts":"{ts}","service":12345,{rest}}}', 1.0),
        ("wrong_type", f'{{"ts":true,{svc},{rest}}}', 0.5),
        ("wrong_type", f'{{"ts":"{ts}",{svc},"level":["error"],"message":"x"}}', 0.5),
        ("nan", f'{{"ts":NaN,{svc},{rest}}}', 0.5),
        ("nan", f'{{"ts":Infinity,{svc},{rest}}}', 0.5),
        ("empty", "", 1.0),
        ("empty", "   \t", 0.5),
        ("not_object", "[1,2,3]", 0.5),
        ("not_object", '"just a string"', 0.5),
        ("oversized", f'{{"ts":"{ts}",{svc},"level":"error","message":"{"x" * 70_000}"}}', 0.01),
    ]
    out = [(kind, text.encode(), weight) for kind, text, weight in lines]
    out.append(
        ("non_utf8", f'{{"ts":"{ts}","service":"caf'.encode() + b'\xe9\xff-api",' + rest.encode() + b"}", 1.0)
    )
    return out


def _service_lines(fleet: Fleet, i: int, rng: np.random.Generator) -> list[bytes]:
    """The tail of each of service ``i``'s line variants: OK variants first, then error ones."""
    head = f'"project":"{fleet.projects[i]}",' if fleet.emit_project[i] else ""
    head += f'"service":{json.dumps(fleet.names[i])},'
    out = []
    for variant in range(VARIANTS):
        error = variant >= OK_VARIANTS
        if fleet.http[i]:
            table = _HTTP_ERRORS if error else _HTTP_OK
            status, level = table[int(rng.integers(len(table)))]
            path = _PATHS[int(rng.integers(len(_PATHS)))]
            body = f'"level":"{level}","status":{status},"message":"GET {path} {status}"'
        else:
            levels, messages = (_ERROR_LEVELS, _ERROR_MESSAGES) if error else (_OK_LEVELS, _OK_MESSAGES)
            level = levels[int(rng.integers(len(levels)))]
            message = messages[int(rng.integers(len(messages)))]
            body = f'"level":"{level}","message":{json.dumps(message)}'
        out.append((head + body + "}\n").encode())
    return out


def _fraction_pieces() -> list[bytes]:
    pieces = [b""]
    for name in TS_FORMATS:
        if name == "epoch_ms":
            pieces.extend(f"{ms:03d},".encode() for ms in range(1000))
        elif name == "epoch_s":
            pieces.extend(f".{ms:03d},".encode() for ms in range(1000))
        else:
            minutes = _OFFSETS[name]
            zone = (
                "Z"
                if minutes == 0
                else f"{'+' if minutes > 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
            )
            pieces.extend(f'.{ms:03d}{zone}",'.encode() for ms in range(1000))
    return pieces


def _object_array(items: list[bytes]) -> NDArray[np.object_]:
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return arr


@dataclass(frozen=True, slots=True)
class Rendered:
    data: bytes
    """``carry_in`` then the lines to emit now, in emission order."""
    carry: bytes
    """Lines whose emission falls after this chunk (late or duplicated near the end)."""
    lines: int
    carry_lines: int
    errors: int
    bad: int
    duplicates: int
    delayed: int
    skewed: int


class Renderer:
    """Renders counts for one chunk of seconds into bytes. Holds the constant piece tables."""

    def __init__(self, cfg: WorkloadConfig, fleet: Fleet, rng: np.random.Generator) -> None:
        self.cfg = cfg
        self.fleet = fleet
        self.margin = int(np.ceil(cfg.max_skew_s)) + 1
        self.fraction = _object_array(_fraction_pieces())
        tails = [piece for i in range(len(fleet)) for piece in _service_lines(fleet, i, rng)]
        bad = _bad_lines(cfg.start_ts)
        self.bad_kinds = tuple(kind for kind, _, _ in bad)
        self.bad_base = len(tails)
        weights = np.array([w for _, _, w in bad])
        self.bad_weights = weights / weights.sum()
        self.tails = _object_array(tails + [line + b"\n" for _, line, _ in bad])

    def _second_pieces(self, t0_abs: int, seconds: int) -> NDArray[np.object_]:
        width = seconds + 2 * self.margin
        pieces = [b""]
        for name in TS_FORMATS:
            for k in range(width):
                sec = t0_abs + k - self.margin
                if name.startswith("epoch"):
                    pieces.append(f'{{"ts":{sec}'.encode())
                else:
                    local = datetime.fromtimestamp(sec, UTC) + timedelta(minutes=_OFFSETS[name])
                    pieces.append(local.strftime('{"ts":"%Y-%m-%dT%H:%M:%S').encode())
        return _object_array(pieces)

    def render(
        self,
        t0_abs: int,
        ok: NDArray[np.int64],
        err: NDArray[np.int64],
        rng: np.random.Generator,
        carry_in: bytes = b"",
    ) -> Rendered:
        """``ok``/``err``: line counts per service (rows) and second (columns) from ``t0_abs``;
        ``carry_in`` (lines held back by the previous chunk) goes first."""
        cfg, fleet = self.cfg, self.fleet
        seconds = ok.shape[1]
        cells = np.arange(ok.size)
        ok_cells, err_cells = np.repeat(cells, ok.ravel()), np.repeat(cells, err.ravel())
        n_ok, n_err = ok_cells.size, err_cells.size
        cell = np.concatenate([ok_cells, err_cells])
        svc, sec = np.divmod(cell, seconds)
        variant = np.concatenate(
            [rng.integers(0, OK_VARIANTS, n_ok), rng.integers(OK_VARIANTS, VARIANTS, n_err)]
        )
        n = svc.size
        skew = fleet.skew_ms[svc]
        skewed = (skew != 0) & (rng.random(n) < SKEWED_HOST_SHARE)
        rel_ms = sec * 1000 + rng.integers(0, 1000, n) + np.where(skewed, skew, 0)
        ts_sec, frac = np.divmod(rel_ms, 1000)
        fmt = fleet.ts_format[svc]
        first = 1 + fmt * (seconds + 2 * self.margin) + ts_sec + self.margin
        second = 1 + fmt * 1000 + frac
        third = svc * VARIANTS + variant
        emit = sec.copy()
        delayed = rng.random(n) < cfg.delayed_share
        emit[delayed] += rng.integers(1, cfg.max_delay_s + 1, int(delayed.sum())) if cfg.max_delay_s else 0
        dup = np.flatnonzero(rng.random(n) < cfg.duplicate_share)
        n_bad = int(rng.binomial(n + dup.size, cfg.bad_line_share / (1.0 - cfg.bad_line_share)))
        bad = rng.choice(len(self.bad_kinds), n_bad, p=self.bad_weights)
        zeros = np.zeros(n_bad, dtype=np.int64)
        first = np.concatenate([first, first[dup], zeros])
        second = np.concatenate([second, second[dup], zeros])
        third = np.concatenate([third, third[dup], self.bad_base + bad])
        dup_emit = emit[dup] + rng.integers(0, cfg.max_delay_s + 1, dup.size)
        emit = np.concatenate([emit, dup_emit, rng.integers(0, seconds, n_bad)])
        total = emit.size
        perm = rng.permutation(total)
        # A stable sort on 16-bit keys is a radix sort: O(n); the shuffle interleaves services.
        order = perm[np.argsort(emit[perm].astype(np.uint16), kind="stable")]
        cut = int(np.searchsorted(emit[order], seconds))
        seconds_table = self._second_pieces(t0_abs, seconds)
        table = np.concatenate([seconds_table, self.fraction, self.tails])
        pieces = np.empty((total, 3), dtype=np.int64)
        pieces[:, 0] = first[order]
        pieces[:, 1] = second[order] + len(seconds_table)
        pieces[:, 2] = third[order] + len(seconds_table) + len(self.fraction)
        now = table[pieces[:cut].ravel()].tolist()
        now.insert(0, carry_in)
        return Rendered(
            data=b"".join(now),
            carry=b"".join(table[pieces[cut:].ravel()].tolist()),
            lines=cut,
            carry_lines=total - cut,
            errors=n_err,
            bad=n_bad,
            duplicates=int(dup.size),
            delayed=int(delayed.sum()),
            skewed=int(skewed.sum()),
        )
