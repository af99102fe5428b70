"""The owner's MCP toolset as the agent sees it: every call through the :class:`~agents.guard.Guard`.

:class:`GuardedToolset` wraps pydantic-ai's ``MCPToolset`` (a ``WrapperToolset``): it offers only
the router meta-tools the agents use, judges each meta-tool call, and runs
``COMPOSIO_MULTI_EXECUTE_TOOL`` through :meth:`Guard.execute` (per inner call: verdict,
reservation, the call, completion). A blocked call comes back to the model as a result it can
read (``error_code: "blocked_by_guard"`` and the reason), never as an exception that ends the
run. :class:`OfferedTools` records the tool definitions the model was shown (count and schema
tokens for the decision record).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai import RunContext
from pydantic_ai.exceptions import ModelRetry
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import WrapperToolset
from pydantic_ai.toolsets.abstract import ToolsetTool

from agents.errors import MetaToolError
from agents.guard import Guard
from agents.guard_calls import CallStatus, refusal
from agents.guard_rules import META_TOOLS, MULTI_EXECUTE_TOOL
from router.context_cost import ContextCost, definitions_cost


def _blocked(message: str) -> dict[str, Any]:
    return {"successful": False, "data": None, "error": message}


def _inner_calls(arguments: Mapping[str, Any]) -> list[tuple[str, Any]] | None:
    tools = arguments.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    calls: list[tuple[str, Any]] = []
    for item in tools:
        if not isinstance(item, Mapping) or not isinstance(item.get("tool_slug"), str):
            return None
        calls.append((item["tool_slug"], item.get("arguments", {})))
    return calls


@dataclass
class GuardedToolset(WrapperToolset[Any]):
    """An MCP toolset behind the guard (see the module docstring)."""

    guard: Guard = field(kw_only=True)

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        tools = await self.wrapped.get_tools(ctx)
        return {name: tool for name, tool in tools.items() if name in META_TOOLS}

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        v = self.guard.check_meta(name, tool_args)
        if not v.allowed:
            return _blocked(refusal(v))
        if name != MULTI_EXECUTE_TOOL:
            result = await self.wrapped.call_tool(name, tool_args, ctx, tool)
            self.guard.note_meta_result(name, result)
            return result
        calls = _inner_calls(tool_args)
        if calls is None:
            return _blocked("tools must be a non-empty list of {tool_slug, arguments}")

        async def send(meta: str, arguments: dict[str, Any]) -> Mapping[str, Any]:
            try:
                result = await self.wrapped.call_tool(meta, arguments, ctx, tool)
            except ModelRetry as exc:  # the router answered with an error result: nothing ran
                raise MetaToolError(str(exc)) from exc
            return result if isinstance(result, Mapping) else _blocked(f"unexpected result: {result!r}"[:300])

        outcomes = await self.guard.execute(calls, send)
        errors = sum(1 for o in outcomes if o.status in (CallStatus.REFUSED, CallStatus.FAILED))
        data = {
            "results": [o.entry(i) for i, o in enumerate(outcomes)],
            "error_count": errors,
            "total_count": len(outcomes),
        }
        error = f"{errors} of {len(outcomes)} tool calls failed or were blocked" if errors else None
        return {"successful": not errors, "data": data, "error": error}


@dataclass
class OfferedTools(WrapperToolset[Any]):
    """Remembers the definitions of the tools offered on the latest model request."""

    offered: list[ToolDefinition] = field(default_factory=list, kw_only=True)

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        tools = await self.wrapped.get_tools(ctx)
        self.offered[:] = [t.tool_def for t in tools.values()]
        return tools

    def cost(self) -> ContextCost:
        return definitions_cost((t.name, t.description, t.parameters_json_schema) for t in self.offered)
