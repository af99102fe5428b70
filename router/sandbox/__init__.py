"""The local sandbox tool router: Composio Tool Router's meta-tools over real MCP, with fake
Slack, Jira and PagerDuty apps whose state and every executed call live in PostgreSQL.

Public names::

    SandboxServer, serve_in_thread, ThreadedSandbox     serve it (asyncio task, or a thread)
    SandboxRouter                                       router.base.ToolRouter over it
    SandboxStore                                        users, connections, deliveries
    Links                                               its URLs (for a sandbox in another process)
    UserKeyResolver, ProjectKeyResolver                 who a request belongs to
    Failure, FailureKind, FailureInjector               injected failures
    CATALOGUE                                           the app tools it knows

Errors (all permanent; part of ``router.base.RouterError``)::

    RouterError
    └── SandboxError            base of the sandbox's own errors
        ├── InvalidRequest      unknown toolkit, bad user id, bad callback URL, non-loopback host
        ├── UnknownConnection   no such connection for this user
        └── SandboxStartError   the server could not start (port taken, ...)

``SandboxRouter`` also raises the shared ``ConnectionRequired`` (a failed or expired connection,
with a fresh link) and ``RouterUnavailable`` (database trouble; waiting timed out).
"""

from router.sandbox.auth import CredentialRequest, CredentialResolver, ProjectKeyResolver, UserKeyResolver
from router.sandbox.catalog import CATALOGUE, Catalogue
from router.sandbox.errors import InvalidRequest, SandboxError, SandboxStartError, UnknownConnection
from router.sandbox.failures import Failure, FailureInjector, FailureKind
from router.sandbox.links import Links
from router.sandbox.server import SandboxServer, ThreadedSandbox, serve_in_thread
from router.sandbox.store import Delivery, SandboxStore
from router.sandbox.tool_router import SandboxRouter

__all__ = [
    "CATALOGUE",
    "Catalogue",
    "CredentialRequest",
    "CredentialResolver",
    "Delivery",
    "Failure",
    "FailureInjector",
    "FailureKind",
    "InvalidRequest",
    "Links",
    "ProjectKeyResolver",
    "SandboxError",
    "SandboxRouter",
    "SandboxServer",
    "SandboxStartError",
    "SandboxStore",
    "ThreadedSandbox",
    "UnknownConnection",
    "UserKeyResolver",
    "serve_in_thread",
]
