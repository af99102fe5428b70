"""The agents package's errors. Each says whether retrying the same work can help.

::

    AgentError                   base; .retryable
    ├── PolicyError              the notification policy file is invalid: every problem with its
    │                            file, line, field path and reason (permanent: fix the file)
    ├── AgentConfigError         a configured model cannot be used, e.g. its provider key is
    │                            missing (permanent: fix the configuration)
    └── MetaToolError            the tool router answered a meta-tool call with an error result
                                 (bad arguments, or trouble of its own); nothing in that call ran
                                 (retryable)

Transport failures of the owner's tool-router session are the router's own errors
(``router.base``): ``RouterUnavailable`` (retryable), ``RouterAuthError`` (permanent),
``ConnectionRequired`` (ask the owner to connect; try another channel). One is refined here::

    RouterUnavailable (router.base)
    └── CallRejected             the router answered a tool call with an HTTP error status before
                                 running it: nothing was sent (retryable)

Model failures, timeouts, usage-limit breaches and an exhausted budget are not errors here: they
are expected outcomes that route the decision to the deterministic rules (see ``agents.models``).
"""

from __future__ import annotations

from dataclasses import dataclass

from router.base import RouterUnavailable


class AgentError(Exception):
    """Base of the agents error tree."""

    retryable: bool = False


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One thing wrong with a policy file."""

    source: str
    """The file (or a label such as ``<built-in>``)."""
    line: int | None
    """1-based line of the offending key in the file, when it can be found."""
    path: str
    """Field path, e.g. ``policy[2].slack.rate_limit.max`` (``policy[2]`` is the third entry)."""
    reason: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.reason}"


class PolicyError(AgentError):
    """The policy file is invalid. Permanent: fix the file and start again."""

    retryable = False

    def __init__(self, source: str, problems: tuple[PolicyProblem, ...]) -> None:
        count = len(problems)
        listing = "\n  ".join(str(p) for p in problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"invalid notification policy {source} ({count} {noun}):\n  {listing}")
        self.source = source
        self.problems = problems


class AgentConfigError(AgentError):
    """A configured model cannot be used (unknown provider, missing key). Permanent."""

    retryable = False


class MetaToolError(AgentError):
    """The tool router answered a meta-tool call with an error result; nothing in it ran."""

    retryable = True


class CallRejected(RouterUnavailable):
    """The router answered a tool call with an HTTP error status: nothing ran. Retryable."""

    retryable = True
