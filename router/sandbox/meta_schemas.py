"""Names, descriptions and input schemas of the Composio Tool Router meta-tools.

The argument shapes are Composio's documented ones (reference/sdk.md §1.7); the sandbox offers
exactly these four tools per session, whatever the catalogue holds.
"""

from __future__ import annotations

from router.sandbox.spec import JsonSchema

SEARCH_TOOLS = "COMPOSIO_SEARCH_TOOLS"
GET_TOOL_SCHEMAS = "COMPOSIO_GET_TOOL_SCHEMAS"
MULTI_EXECUTE_TOOL = "COMPOSIO_MULTI_EXECUTE_TOOL"
MANAGE_CONNECTIONS = "COMPOSIO_MANAGE_CONNECTIONS"

MAX_PARALLEL_TOOLS = 50

_SESSION_ID = {"type": "string", "description": "The session id returned by COMPOSIO_SEARCH_TOOLS."}

SEARCH_SCHEMA: JsonSchema = {
    "type": "object",
    "properties": {
        "queries": {
            "type": "array",
            "minItems": 1,
            "maxItems": 10,
            "description": "One entry per distinct task; each is searched separately.",
            "items": {
                "type": "object",
                "properties": {
                    "use_case": {
                        "type": "string",
                        "minLength": 1,
                        "description": "The task in plain English, e.g. 'post a message to a Slack channel'",
                    },
                    "known_fields": {
                        "type": "string",
                        "description": "Values you already know, e.g. 'channel: #alerts, project: OPS'.",
                    },
                },
                "required": ["use_case"],
                "additionalProperties": False,
            },
        },
        "session": {
            "type": "object",
            "description": "Pass {'generate_id': true} on a new workflow, or the session id you got.",
            "properties": {"id": {"type": "string"}, "generate_id": {"type": "boolean"}},
            "additionalProperties": False,
        },
        "model": {"type": "string", "description": "The calling model's name (informational)."},
    },
    "required": ["queries"],
    "additionalProperties": False,
}

GET_SCHEMAS_SCHEMA: JsonSchema = {
    "type": "object",
    "properties": {
        "tool_slugs": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_PARALLEL_TOOLS,
            "items": {"type": "string", "minLength": 1},
            "description": "Tool slugs to describe, e.g. ['JIRA_CREATE_ISSUE'].",
        },
        "include": {
            "type": "array",
            "items": {"type": "string", "enum": ["input_schema", "output_schema"]},
            "description": "Which schemas to return (default: input_schema).",
        },
        "session_id": _SESSION_ID,
    },
    "required": ["tool_slugs"],
    "additionalProperties": False,
}

MULTI_EXECUTE_SCHEMA: JsonSchema = {
    "type": "object",
    "properties": {
        "tools": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_PARALLEL_TOOLS,
            "description": "Tools to run, each with arguments matching its input schema (up to 50).",
            "items": {
                "type": "object",
                "properties": {
                    "tool_slug": {"type": "string", "minLength": 1, "description": "A slug found by search."},
                    "arguments": {"type": "object", "description": "Arguments for the tool."},
                },
                "required": ["tool_slug", "arguments"],
                "additionalProperties": False,
            },
        },
        "sync_response_to_workbench": {
            "type": "boolean",
            "description": "Also store large responses in the workbench (the sandbox has none).",
        },
        "thought": {"type": "string", "description": "One sentence: why these tools, now."},
        "session_id": _SESSION_ID,
        "current_step": {"type": "string", "description": "Short label of the workflow step."},
        "current_step_metric": {"type": "string", "description": "Progress, e.g. '2/3 notified'."},
    },
    "required": ["tools", "sync_response_to_workbench"],
    "additionalProperties": False,
}

MANAGE_CONNECTIONS_SCHEMA: JsonSchema = {
    "type": "object",
    "properties": {
        "toolkits": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "minLength": 1},
            "description": "Toolkits to check or connect, e.g. ['slack', 'pagerduty'].",
        },
        "reinitiate_all": {
            "type": "boolean",
            "description": "Start a new connection even for toolkits that are already connected.",
        },
        "session_id": _SESSION_ID,
    },
    "required": ["toolkits"],
    "additionalProperties": False,
}

DESCRIPTIONS = {
    SEARCH_TOOLS: (
        "Search the tools of the user's connected apps for one or more use cases. Returns primary and "
        "related tool slugs per use case, their input schemas, and whether each toolkit is connected. "
        "Call this first; then execute with COMPOSIO_MULTI_EXECUTE_TOOL."
    ),
    GET_TOOL_SCHEMAS: "Get the complete input (and optionally output) schemas of tools by slug.",
    MULTI_EXECUTE_TOOL: (
        "Execute up to 50 tools found by COMPOSIO_SEARCH_TOOLS, each with arguments matching its schema. "
        "Returns one result per tool (response or error) and the number of errors."
    ),
    MANAGE_CONNECTIONS: (
        "Check the user's connections to toolkits and create connect links (redirect_url) for those "
        "that are not connected. Share the link with the user; the toolkit works once they open it."
    ),
}

SCHEMAS: dict[str, JsonSchema] = {
    SEARCH_TOOLS: SEARCH_SCHEMA,
    GET_TOOL_SCHEMAS: GET_SCHEMAS_SCHEMA,
    MULTI_EXECUTE_TOOL: MULTI_EXECUTE_SCHEMA,
    MANAGE_CONNECTIONS: MANAGE_CONNECTIONS_SCHEMA,
}
