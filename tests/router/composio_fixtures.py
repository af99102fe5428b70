"""Minimal Composio v3.1 response bodies that composio 0.29.0 accepts (our own test data).

Shapes follow the fields the SDK dereferences (see the reference notes, §1.2): a session needs
``session_id``, ``mcp{type,url}``, ``config{user_id,…}``, ``config_version`` and
``tool_router_tools``; a connected account needs ``id``, ``status``, ``toolkit.slug``,
``user_id`` and ``auth_config``.
"""

from __future__ import annotations

from typing import Any

API = "https://composio.test"
KEY = "ak_test_Zq7vW3-never-print-me"
USER = "operator-42"
META_TOOLS = (
    "COMPOSIO_SEARCH_TOOLS",
    "COMPOSIO_MULTI_EXECUTE_TOOL",
    "COMPOSIO_MANAGE_CONNECTIONS",
    "COMPOSIO_GET_TOOL_SCHEMAS",
)
SESSIONS = "/api/v3.1/tool_router/session"
ACCOUNTS = "/api/v3.1/connected_accounts"


def session_body(session_id: str, user_id: str = USER, *, origin: str = API) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "mcp": {"type": "http", "url": f"{origin}/tool_router/{session_id}/mcp"},
        "tool_router_tools": list(META_TOOLS),
        "config": {
            "user_id": user_id,
            "toolkits": {"enabled": ["slack", "jira", "pagerduty"]},
            "manage_connections": {"enabled": True},
            "execute": {"enable_multi_execute": True},
            "search": {"enable": True},
            "preload": {"tools": []},
            "instant": False,
        },
        "config_version": 1,
    }


def account(
    id_: str,
    toolkit: str,
    status: str = "ACTIVE",
    *,
    user_id: str = USER,
    updated_at: str = "2026-01-01T00:00:00Z",
    disabled: bool = False,
) -> dict[str, Any]:
    return {
        "id": id_,
        "user_id": user_id,
        "status": status,
        "toolkit": {"slug": toolkit},
        "auth_config": {
            "id": f"ac_{toolkit}",
            "auth_scheme": "OAUTH2",
            "is_composio_managed": True,
            "is_disabled": False,
        },
        # What the real API returns holds credentials; the router must never surface it.
        "state": {"authScheme": "OAUTH2", "val": {"status": status, "access_token": "xoxb-secret"}},
        "data": {},
        "params": {},
        "is_disabled": disabled,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": updated_at,
    }


def account_page(items: list[dict[str, Any]], next_cursor: str | None = None) -> dict[str, Any]:
    return {
        "items": items,
        "total_items": len(items),
        "total_pages": 1,
        "current_page": 1,
        "next_cursor": next_cursor,
    }


def link_body(account_id: str, token: str = "lt_abc") -> dict[str, Any]:
    return {
        "connected_account_id": account_id,
        "link_token": token,
        "redirect_url": f"https://connect.composio.test/link/{token}",
        "expires_at": "2026-01-01T00:10:00Z",
    }


def error_body(status: int, message: str, slug: str = "Error") -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "code": status * 10,
            "slug": slug,
            "status": status,
            "request_id": "req_123",
        }
    }
