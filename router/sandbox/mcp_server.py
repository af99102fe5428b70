"""The MCP side: a lowlevel mcp ``Server`` offering the four meta-tools with explicit schemas.

Who is calling is decided by the HTTP layer before a request reaches MCP (``http_app``): it puts
a :class:`~router.sandbox.meta_tools.Caller` in the request scope's state, and the tool handler
reads it from there. A request without one (which the HTTP layer never lets through) gets an
error result rather than acting as anybody.
"""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server

from router.sandbox.meta_schemas import DESCRIPTIONS, SCHEMAS
from router.sandbox.meta_tools import Caller, MetaTools, envelope

SERVER_NAME = "logwarden-sandbox-tool-router"
CALLER_STATE_KEY = "sandbox_caller"
INSTRUCTIONS = (
    "Local sandbox of a Composio Tool Router session: find tools with COMPOSIO_SEARCH_TOOLS, run them "
    "with COMPOSIO_MULTI_EXECUTE_TOOL, connect apps with COMPOSIO_MANAGE_CONNECTIONS."
)


def tool_definitions() -> list[types.Tool]:
    """The meta-tools as offered in ``tools/list``."""
    return [
        types.Tool(name=name, description=DESCRIPTIONS[name], input_schema=dict(schema))
        for name, schema in SCHEMAS.items()
    ]


def caller_of(ctx: ServerRequestContext[Any, Any]) -> Caller | None:
    """The caller the HTTP layer authenticated for this request, if any."""
    request = ctx.request
    scope = getattr(request, "scope", None)
    if not isinstance(scope, dict):
        return None
    caller = scope.get("state", {}).get(CALLER_STATE_KEY)
    return caller if isinstance(caller, Caller) else None


def _result(payload: dict[str, Any], is_error: bool) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text=json.dumps(payload, default=str))],
        structured_content=payload,
        is_error=is_error,
    )


def build_mcp_server(meta: MetaTools) -> Server[Any]:
    """A lowlevel MCP server whose tools are ``meta``'s meta-tools."""
    definitions = tool_definitions()

    async def list_tools(
        _ctx: ServerRequestContext[Any, Any], _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=definitions)

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        caller = caller_of(ctx)
        if caller is None:
            return _result(envelope(None, "unauthenticated request"), True)
        outcome = await meta.call(caller, params.name, dict(params.arguments or {}))
        return _result(outcome.payload, outcome.is_error)

    return Server(SERVER_NAME, instructions=INSTRUCTIONS, on_list_tools=list_tools, on_call_tool=call_tool)
