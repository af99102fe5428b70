"""The sandbox's fake Slack: messages per user's workspace, in ``sandbox_slack_messages``.

Channels need not be created first: a name ('alerts', '#alerts') maps to a stable channel id
('C' + 10 hex digits of its hash), and an id-looking value (C0123ABCD) is used as is. Message
timestamps look like Slack's ('1700000000.000123') and are unique per channel.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import asyncpg

from router.sandbox.app import AppResult, DbConn, Handler, failed, ok

INSERT_MESSAGE = """
INSERT INTO sandbox_slack_messages (user_id, channel_id, channel_name, ts, thread_ts, text)
VALUES ($1, $2, $3,
        floor(extract(epoch FROM clock_timestamp()))::bigint::text || '.'
            || lpad((nextval('sandbox_slack_ts_seq') % 1000000)::text, 6, '0'),
        $4, $5)
RETURNING ts
"""
UPDATE_MESSAGE = """
UPDATE sandbox_slack_messages SET text = $4, edited_at = now()
WHERE user_id = $1 AND channel_id = $2 AND ts = $3
RETURNING ts, thread_ts
"""
SELECT_HISTORY = """
SELECT ts, thread_ts, text, edited_at FROM sandbox_slack_messages
WHERE user_id = $1 AND channel_id = $2
  AND ($3::numeric IS NULL OR ts::numeric >= $3::numeric)
  AND ($4::numeric IS NULL OR ts::numeric <= $4::numeric)
ORDER BY ts::numeric DESC
LIMIT $5
"""
SELECT_THREAD = """
SELECT ts, thread_ts, text, edited_at FROM sandbox_slack_messages
WHERE user_id = $1 AND channel_id = $2 AND (ts = $3 OR thread_ts = $3)
ORDER BY ts::numeric
LIMIT $4
"""
SELECT_CHANNELS = """
SELECT channel_id, max(channel_name) AS channel_name, count(*) AS messages
FROM sandbox_slack_messages WHERE user_id = $1
GROUP BY channel_id ORDER BY channel_id LIMIT $2
"""

_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{8,}$")
_TS = re.compile(r"^\d{1,12}(\.\d{1,6})?$")


def channel_ref(value: str) -> tuple[str, str | None]:
    """(channel id, channel name or None) for a channel id, name or #name."""
    raw = value.strip()
    if _CHANNEL_ID.match(raw):
        return raw, None
    name = raw.lstrip("#").lower()
    return "C" + hashlib.sha256(name.encode()).hexdigest()[:10].upper(), name


def _message(row: asyncpg.Record) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "message", "ts": row["ts"], "text": row["text"]}
    if row["thread_ts"] is not None:
        message["thread_ts"] = row["thread_ts"]
    if row["edited_at"] is not None:
        message["edited"] = {"ts": f"{row['edited_at'].timestamp():.6f}"}
    return message


def _body(args: Mapping[str, Any]) -> str | None:
    for key in ("markdown_text", "text", "blocks", "attachments"):
        value = args.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


def _bound(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    if not _TS.match(text):
        raise ValueError(text)
    return text


async def send_message(conn: DbConn, user_id: str, args: Mapping[str, Any]) -> AppResult:
    body = _body(args)
    if body is None:
        return failed("no_text: one of markdown_text, text or blocks is required")
    channel_id, name = channel_ref(str(args["channel"]))
    if not channel_id or name == "":
        return failed("channel_not_found")
    thread_ts = args.get("thread_ts")
    if thread_ts is not None and not _TS.match(str(thread_ts)):
        return failed("invalid_thread_ts")
    ts = await conn.fetchval(INSERT_MESSAGE, user_id, channel_id, name, thread_ts, body)
    message: dict[str, Any] = {"type": "message", "ts": ts, "text": body}
    if thread_ts is not None:
        message["thread_ts"] = thread_ts
    return ok({"ok": True, "channel": channel_id, "ts": ts, "message": message}, external_ref=ts)


async def update_message(conn: DbConn, user_id: str, args: Mapping[str, Any]) -> AppResult:
    body = _body(args)
    if body is None:
        return failed("no_text: one of markdown_text, text or blocks is required")
    channel_id, _ = channel_ref(str(args["channel"]))
    ts = str(args["ts"])
    row = await conn.fetchrow(UPDATE_MESSAGE, user_id, channel_id, ts, body)
    if row is None:
        return failed("message_not_found")
    return ok({"ok": True, "channel": channel_id, "ts": ts, "text": body}, external_ref=ts)


async def conversation_history(conn: DbConn, user_id: str, args: Mapping[str, Any]) -> AppResult:
    channel_id, _ = channel_ref(str(args["channel"]))
    limit = int(args.get("limit") or 100)
    try:
        oldest, latest = _bound(args.get("oldest")), _bound(args.get("latest"))
    except ValueError as exc:
        return failed(f"invalid_ts_bound: {exc}")
    rows = await conn.fetch(SELECT_HISTORY, user_id, channel_id, oldest, latest, limit + 1)
    messages = [_message(r) for r in rows[:limit]]
    return ok({"ok": True, "channel": channel_id, "messages": messages, "has_more": len(rows) > limit})


async def message_thread(conn: DbConn, user_id: str, args: Mapping[str, Any]) -> AppResult:
    channel_id, _ = channel_ref(str(args["channel"]))
    rows = await conn.fetch(
        SELECT_THREAD, user_id, channel_id, str(args["ts"]), int(args.get("limit") or 100)
    )
    if not rows:
        return failed("thread_not_found")
    return ok({"ok": True, "channel": channel_id, "messages": [_message(r) for r in rows]})


async def list_channels(conn: DbConn, user_id: str, args: Mapping[str, Any]) -> AppResult:
    rows = await conn.fetch(SELECT_CHANNELS, user_id, int(args.get("limit") or 100))
    channels = [{"id": r["channel_id"], "name": r["channel_name"], "is_channel": True} for r in rows]
    return ok({"ok": True, "channels": channels})


SLACK_HANDLERS: dict[str, Handler] = {
    "SLACK_SEND_MESSAGE": send_message,
    "SLACK_UPDATE_MESSAGE": update_message,
    "SLACK_FETCH_CONVERSATION_HISTORY": conversation_history,
    "SLACK_FETCH_MESSAGE_THREAD_FROM_A_CONVERSATION": message_thread,
    "SLACK_LIST_ALL_CHANNELS": list_channels,
}
