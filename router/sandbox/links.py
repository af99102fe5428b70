"""The sandbox's URLs: its MCP endpoints and connect links, built from one origin.

The origin is known once the server has bound its port (or given up front when the app is served
by someone else, or when another process talks to a sandbox that runs elsewhere).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from router.base import ConnectionState
from router.sandbox.errors import SandboxError
from router.sandbox.store import ConnectionRecord

MCP_PATH = "/tool_router/{session_id}/mcp"
CONNECT_PATH = "/connect/{token}"


class Links:
    """URL builder for one sandbox origin, e.g. ``http://127.0.0.1:8790``."""

    __slots__ = ("_origin",)

    def __init__(self, origin: str | None = None) -> None:
        self._origin = origin.rstrip("/") if origin else None

    @property
    def known(self) -> bool:
        """Whether the origin is set."""
        return self._origin is not None

    @property
    def origin(self) -> str:
        if self._origin is None:
            raise SandboxError("the sandbox server has not started yet: its address is unknown")
        return self._origin

    @origin.setter
    def origin(self, value: str) -> None:
        self._origin = value.rstrip("/")

    def mcp_url(self, session_id: str) -> str:
        return self.origin + MCP_PATH.format(session_id=quote(session_id, safe=""))

    def connect_url(self, link_token: str) -> str:
        return self.origin + CONNECT_PATH.format(token=quote(link_token, safe=""))

    def connection_view(self, record: ConnectionRecord) -> dict[str, Any]:
        """A connection as shown to agents: status, ids and, while pending, where to connect."""
        view: dict[str, Any] = {
            "status": record.state.value,
            "connected_account_id": record.id,
        }
        if record.state is ConnectionState.INITIATED:
            view["redirect_url"] = self.connect_url(record.link_token)
            view["expires_at"] = record.expires_at.isoformat()
        return view
