"""The sandbox tool catalogue: every app tool the sandbox router can find, describe and run.

Slack, Jira and PagerDuty, each with a realistic number of tools (so the cost of preloading whole
toolkits into an agent's context can be compared with finding tools on demand). Only some tools
have behaviour in the sandbox (``EXECUTABLE``); the others can be searched and described, and
executing them returns an error result that says so.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from router.sandbox.catalog_jira import JIRA_TOOLS
from router.sandbox.catalog_pagerduty import PAGERDUTY_TOOLS
from router.sandbox.catalog_slack import SLACK_TOOLS
from router.sandbox.spec import ToolSpec


class Catalogue:
    """Tools by slug, grouped by toolkit, in a stable order."""

    __slots__ = ("_by_slug", "toolkits")

    def __init__(self, tools: Iterable[ToolSpec]) -> None:
        by_slug: dict[str, ToolSpec] = {}
        for tool in tools:
            if tool.slug in by_slug:
                raise ValueError(f"tool slug {tool.slug} is defined twice")
            by_slug[tool.slug] = tool
        self._by_slug = by_slug
        self.toolkits: tuple[str, ...] = tuple(dict.fromkeys(t.toolkit for t in by_slug.values()))

    def get(self, slug: str) -> ToolSpec | None:
        """The tool with this slug (case-insensitive), or None."""
        return self._by_slug.get(slug.strip().upper())

    def tools(self, toolkits: Collection[str] | None = None) -> tuple[ToolSpec, ...]:
        """All tools, or those of the given toolkits, in catalogue order."""
        return tuple(t for t in self._by_slug.values() if toolkits is None or t.toolkit in toolkits)

    def __len__(self) -> int:
        return len(self._by_slug)


CATALOGUE = Catalogue(SLACK_TOOLS + JIRA_TOOLS + PAGERDUTY_TOOLS)
"""The sandbox's catalogue: Slack, Jira and PagerDuty."""
