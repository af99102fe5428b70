"""Representative error messages: a bounded sample per key and bucket, masked when reported.

Masking replaces UUIDs, hex ids and numbers so that "timeout after 1503ms" and "timeout after
98ms" count as one message. Raw samples are kept (at most ``message_samples`` per key per
bucket, for the last ``message_buckets`` closed buckets) and masked only when an event is
emitted, which is rare; the hot path never runs a regular expression.
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


class MessageSamples:
    """Raw error-message samples of the most recent closed buckets, per key id."""

    __slots__ = ("_closed", "_open", "per_bucket")

    def __init__(self, per_bucket: int, buckets: int) -> None:
        self.per_bucket = per_bucket
        self._open: dict[int, dict[int, list[str]]] = {}
        """bucket -> key id -> samples, for buckets not closed yet."""
        self._closed: deque[dict[int, list[str]]] = deque(maxlen=buckets)

    def add(self, bucket: int, keys: list[int], messages: list[str]) -> None:
        """Keep up to ``per_bucket`` of these messages per key (the first ones)."""
        if self.per_bucket == 0:
            return
        per_key = self._open.setdefault(bucket, {})
        limit = self.per_bucket
        for key, message in zip(keys, messages, strict=True):
            kept = per_key.get(key)
            if kept is None:
                per_key[key] = [message]
            elif len(kept) < limit:
                kept.append(message)

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
            samples.extend(per_key.get(key, ()))
        return top_messages(samples)

    def forget(self, keys: Iterable[int]) -> None:
        """Drop the samples of evicted keys (their ids may be reused)."""
        gone = set(keys)
        for per_key in (*self._open.values(), *self._closed):
            for key in gone.intersection(per_key):
                del per_key[key]

    def to_state(self) -> dict[str, Any]:
        return {
            "open": [[b, [[k, v] for k, v in per_key.items()]] for b, per_key in self._open.items()],
            "closed": [[[k, v] for k, v in per_key.items()] for per_key in self._closed],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self._open = {int(b): {int(k): [str(m) for m in v] for k, v in items} for b, items in state["open"]}
        self._closed.clear()
        for items in state["closed"]:
            self._closed.append({int(k): [str(m) for m in v] for k, v in items})
