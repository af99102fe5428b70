"""The tool-router contract: per-user MCP sessions and app connections.

A tool router gives each user (an operator; the owner of an incident) one MCP endpoint through
which an agent reaches exactly that user's connected apps, finding tools on demand through the
router's meta-tools. Implementations: ``router.composio`` (Composio Tool Router) and
``router.sandbox`` (a local MCP server that records deliveries in PostgreSQL).

Errors (every one says whether it is retryable)::

    RouterError                  base; .retryable
    ├── ConnectionRequired       the user has not connected the toolkit; carries the connect link
    │                            (permanent for this attempt: ask the user, try another channel)
    ├── RouterUnavailable        network failure, timeout, 5xx, rate limit (retryable, with backoff)
    └── RouterAuthError          the router refused our credentials (permanent: fix configuration)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

DEFAULT_TOOLKITS: tuple[str, ...] = ("slack", "jira", "pagerduty")


class RouterError(Exception):
    """Base of the router error tree."""

    retryable: bool = False


class RouterUnavailable(RouterError):
    """The router could not be reached or failed transiently. Retry with backoff."""

    retryable = True


class RouterAuthError(RouterError):
    """The router rejected our credentials. Permanent until configuration changes."""

    retryable = False


class ConnectionState(StrEnum):
    ACTIVE = "active"
    INITIATED = "initiated"
    EXPIRED = "expired"
    FAILED = "failed"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class Connection:
    """One toolkit's connection state for one user."""

    toolkit: str
    state: ConnectionState
    account_id: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectLink:
    """Where the user goes to connect a toolkit (OAuth), and the connection it creates."""

    url: str
    connection_id: str
    toolkit: str


class ConnectionRequired(RouterError):
    """The user's toolkit is not connected; ``link`` is where they connect it."""

    retryable = False

    def __init__(self, toolkit: str, link: ConnectLink | None) -> None:
        where = f": connect at {link.url}" if link is not None else ""
        super().__init__(f"{toolkit} is not connected{where}")
        self.toolkit = toolkit
        self.link = link


@dataclass(frozen=True, slots=True)
class McpEndpoint:
    """A user's MCP session: the URL and the headers that authenticate it.

    Headers carry credentials, so they are kept out of the repr.
    """

    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    session_id: str | None = None


@runtime_checkable
class ToolRouter(Protocol):
    """Per-user tool-router sessions and connections."""

    async def session(self, user_id: str) -> McpEndpoint:
        """The user's MCP endpoint, created on first use and reused afterwards."""
        ...

    async def connections(self, user_id: str) -> Mapping[str, Connection]:
        """Connection state per configured toolkit (``missing`` when never connected)."""
        ...

    async def connect(self, user_id: str, toolkit: str, callback_url: str | None = None) -> ConnectLink:
        """Start connecting a toolkit; the user opens ``ConnectLink.url`` to finish (OAuth)."""
        ...

    async def wait_connected(self, user_id: str, connection_id: str, timeout: float) -> Connection:
        """Poll until the connection is active (returned), failed/expired (ConnectionRequired),
        or ``timeout`` seconds pass (RouterUnavailable)."""
        ...
