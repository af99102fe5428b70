"""The sandbox router's errors (a branch of ``router.base.RouterError``; see the package docstring)."""

from __future__ import annotations

from router.base import RouterError


class SandboxError(RouterError):
    """Base of the sandbox's own errors. Permanent unless a subclass says otherwise."""

    retryable = False


class InvalidRequest(SandboxError):
    """A caller passed something the sandbox cannot serve: an unknown toolkit, an empty user id."""


class UnknownConnection(SandboxError):
    """No such connection for this user (it does not exist, or it belongs to someone else)."""


class SandboxStartError(SandboxError):
    """The server could not start (the port is taken, the database schema is missing)."""
