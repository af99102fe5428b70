"""Representative error messages: a bounded sample per key and bucket, masked when reported.

Masking replaces UUIDs, hex ids and numbers so that "timeout after 1503ms" and "timeout after
98ms" count as one message. Raw samples are kept (at most ``message_samples`` per key per
bucket, for the last ``message_buckets`` closed buckets) and masked only when an event is
emitted, which is rare; the hot path never runs a regular expression. Once a bucket's sample is
full, later messages replace kept ones as in reservoir sampling, with a fixed hash of the count
instead of a random draw, so the sample stays representative and snapshots replay exactly.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_HEX = re.compile(r"\b(?:0x[0-9a-fA-F]+|(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,})\b")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SPACES = re.compile(r"\s+")
TOP_MESSAGES = 5


def mask(message: str) -> str:
    """The message with ids and numbers replaced by placeholders, whitespace collapsed."""
    text = _UUID.sub("<uuid>", message)
    text = _HEX.sub("<hex>", text)
    text = _NUMBER.sub("<n>", text)
    return _SPACES.sub(" ", text).strip()


def top_messages(samples: Iterable[str], limit: int = TOP_MESSAGES) -> tuple[str, ...]:
    """The ``limit`` most frequent masked messages, most frequent first (ties: first seen)."""
    counts = Counter(mask(s) for s in samples)
    counts.pop("", None)
    return tuple(m for m, _ in counts.most_common(limit))


def _draw(seen: int) -> int:
    """A fixed, well-mixed stand-in for a uniform draw in [0, seen]."""
    h = (seen * 0x9E3779B1 + 0x7F4A7C15) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 0x2C1B3C6D) & 0xFFFFFFFF
    h ^= h >> 12
    return h % (seen + 1)


class _Sample:
    __slots__ = ("kept", "seen")

    def __init__(self, seen: int, kept: list[str]) -> None:
        self.seen = seen
        self.kept = kept


class MessageSamples:
    """Raw error-message samples of the most recent closed buckets, per key id."""

    __slots__ = ("_closed", "_open", "per_bucket")

    def __init__(self, per_bucket: int, buckets: int) -> None:
        self.per_bucket = per_bucket
        self._open: dict[int, dict[int, _Sample]] = {}
        """bucket -> key id -> sample, for buckets not closed yet."""
        self._closed: deque[dict[int, _Sample]] = deque(maxlen=buckets)

    def add(self, bucket: int, keys: list[int], messages: list[str]) -> None:
        """Sample these messages into their keys' samples for ``bucket``."""
        if self.per_bucket == 0:
            return
        per_key = self._open.setdefault(bucket, {})
        limit = self.per_bucket
        for key, message in zip(keys, messages, strict=True):
            sample = per_key.get(key)
            if sample is None:
                per_key[key] = _Sample(1, [message])
                continue
            seen = sample.seen
            sample.seen = seen + 1
            if len(sample.kept) < limit:
                sample.kept.append(message)
            else:
                slot = _draw(seen)
                if slot < limit:
                    sample.kept[slot] = message

    def close(self, bucket: int) -> None:
        """The bucket closed: its samples become the newest closed ones."""
        self._closed.append(self._open.pop(bucket, {}))

    def drop_open_before(self, bucket: int) -> None:
        for b in [b for b in self._open if b < bucket]:
            del self._open[b]

    def recent(self, key: int) -> tuple[str, ...]:
        """Top masked messages of ``key`` over the recent closed buckets."""
        samples: list[str] = []
        for per_key in reversed(self._closed):
            sample = per_key.get(key)
            if sample is not None:
                samples.extend(sample.kept)
        return top_messages(samples)

    def forget(self, keys: Iterable[int]) -> None:
        """Drop the samples of evicted keys (their ids may be reused)."""
        gone = set(keys)
        for per_key in (*self._open.values(), *self._closed):
            for key in gone.intersection(per_key):
                del per_key[key]

    def to_state(self) -> dict[str, Any]:
        def dump(per_key: dict[int, _Sample]) -> list[list[Any]]:
            return [[k, s.seen, s.kept] for k, s in per_key.items()]

        return {
            "open": [[b, dump(per_key)] for b, per_key in self._open.items()],
            "closed": [dump(per_key) for per_key in self._closed],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        def load(items: list[list[Any]]) -> dict[int, _Sample]:
            return {int(k): _Sample(int(seen), [str(m) for m in kept]) for k, seen, kept in items}

        self._open = {int(b): load(items) for b, items in state["open"]}
        self._closed.clear()
        for items in state["closed"]:
            self._closed.append(load(items))
