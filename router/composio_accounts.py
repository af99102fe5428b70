"""Composio connected accounts → connection states, one per toolkit.

Pure decisions over plain values (table-tested): which Composio status means which
``ConnectionState``, which statuses end a wait, and which of a user's accounts for a toolkit
counts when there are several.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from router.base import Connection, ConnectionState

STATUS_STATES: Mapping[str, ConnectionState] = {
    "INITIALIZING": ConnectionState.INITIATED,
    "INITIATED": ConnectionState.INITIATED,
    "ACTIVE": ConnectionState.ACTIVE,
    "EXPIRED": ConnectionState.EXPIRED,
    "FAILED": ConnectionState.FAILED,
    "REVOKED": ConnectionState.FAILED,
    "INACTIVE": ConnectionState.FAILED,
}
"""Composio connected-account status → connection state (anything unknown counts as failed)."""

TERMINAL_STATUSES = frozenset({"FAILED", "EXPIRED", "REVOKED"})
"""Statuses a pending connection never leaves. INACTIVE is not one: it can become ACTIVE again."""

_PREFERENCE = (ConnectionState.ACTIVE, ConnectionState.INITIATED, ConnectionState.EXPIRED)


@dataclass(frozen=True, slots=True)
class Account:
    """The parts of a Composio connected account the router uses (never its credentials)."""

    id: str
    toolkit: str
    status: str
    user_id: str | None
    updated_at: str = ""
    disabled: bool = False

    @property
    def state(self) -> ConnectionState:
        if self.disabled:
            return ConnectionState.FAILED
        return STATUS_STATES.get(self.status.upper(), ConnectionState.FAILED)


def summarize(accounts: Iterable[Account], toolkits: Iterable[str]) -> dict[str, Connection]:
    """One connection per toolkit: the best account (active, then pending, then expired, then
    failed; the most recently updated among equals), ``missing`` when there is none."""
    best: dict[str, Account] = {}

    def rank(account: Account) -> tuple[int, str]:
        state = account.state
        order = _PREFERENCE.index(state) if state in _PREFERENCE else len(_PREFERENCE)
        return (-order, account.updated_at)

    for account in accounts:
        current = best.get(account.toolkit)
        if current is None or rank(account) > rank(current):
            best[account.toolkit] = account
    result: dict[str, Connection] = {}
    for toolkit in toolkits:
        found = best.get(toolkit)
        if found is None:
            result[toolkit] = Connection(toolkit, ConnectionState.MISSING)
        else:
            result[toolkit] = Connection(toolkit, found.state, found.id)
    return result


def account_from_sdk(raw: Any) -> Account:
    """The parts of an SDK connected-account object we use (read leniently: the SDK does not
    validate responses)."""
    toolkit = getattr(raw, "toolkit", None)
    return Account(
        id=str(raw.id),
        toolkit=str(getattr(toolkit, "slug", "") or "").lower(),
        status=str(getattr(raw, "status", "") or ""),
        user_id=getattr(raw, "user_id", None),
        updated_at=str(getattr(raw, "updated_at", "") or ""),
        disabled=bool(getattr(raw, "is_disabled", False)),
    )
