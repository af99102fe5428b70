"""Tool specifications for the sandbox catalogue, and small JSON-schema builders.

A :class:`ToolSpec` is what an agent is offered for one app tool: slug, toolkit, description and
the JSON schema of its arguments (shaped like Composio's: snake_case properties, a title and a
description on each, ``required`` lists). The builders keep the catalogue modules readable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema

JsonSchema = Mapping[str, Any]

GENERIC_OUTPUT_SCHEMA: JsonSchema = {
    "type": "object",
    "title": "ToolResponse",
    "properties": {
        "data": {"type": "object", "title": "Data", "description": "The app's response payload."},
        "successful": {
            "type": "boolean",
            "title": "Successful",
            "description": "Whether the call succeeded.",
        },
        "error": {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "title": "Error",
            "description": "Why the call failed, when it did.",
        },
    },
    "required": ["data", "successful"],
}


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One app tool as offered to agents (and searched by the router)."""

    slug: str
    toolkit: str
    name: str
    description: str
    input_schema: JsonSchema = field(repr=False, compare=False)
    tags: tuple[str, ...] = ()
    """Extra words the search matches (synonyms an operator might use: page, ticket, notify)."""
    output_schema: JsonSchema = field(
        default_factory=lambda: GENERIC_OUTPUT_SCHEMA, repr=False, compare=False
    )

    def schema_entry(self, include: Sequence[str] = ("input_schema",)) -> dict[str, Any]:
        """The tool as it appears in ``tool_schemas`` of search and get-schemas results."""
        entry: dict[str, Any] = {
            "tool_slug": self.slug,
            "toolkit": self.toolkit,
            "name": self.name,
            "description": self.description,
        }
        if "input_schema" in include:
            entry["input_schema"] = dict(self.input_schema)
        if "output_schema" in include:
            entry["output_schema"] = dict(self.output_schema)
        return entry


def string(
    description: str,
    *,
    title: str | None = None,
    examples: Sequence[str] = (),
    enum: Sequence[str] = (),
    default: str | None = None,
) -> dict[str, Any]:
    """A string property."""
    prop: dict[str, Any] = {"type": "string", "description": description}
    if title is not None:
        prop["title"] = title
    if examples:
        prop["examples"] = list(examples)
    if enum:
        prop["enum"] = list(enum)
    if default is not None:
        prop["default"] = default
    return prop


def integer(description: str, *, minimum: int | None = None, maximum: int | None = None) -> dict[str, Any]:
    """An integer property."""
    prop: dict[str, Any] = {"type": "integer", "description": description}
    if minimum is not None:
        prop["minimum"] = minimum
    if maximum is not None:
        prop["maximum"] = maximum
    return prop


def boolean(description: str, *, default: bool | None = None) -> dict[str, Any]:
    """A boolean property."""
    prop: dict[str, Any] = {"type": "boolean", "description": description}
    if default is not None:
        prop["default"] = default
    return prop


def strings(description: str, *, examples: Sequence[str] = ()) -> dict[str, Any]:
    """An array-of-strings property."""
    prop: dict[str, Any] = {"type": "array", "items": {"type": "string"}, "description": description}
    if examples:
        prop["examples"] = [list(examples)]
    return prop


def obj(properties: Mapping[str, dict[str, Any]], required: Sequence[str] = ()) -> dict[str, Any]:
    """An object schema; each property gets a Title-Cased ``title`` as Composio's schemas do."""
    props: dict[str, Any] = {}
    for name, prop in properties.items():
        titled = dict(prop)
        titled.setdefault("title", name.replace("__", " ").replace("_", " ").title())
        props[name] = titled
    missing = [name for name in required if name not in props]
    if missing:
        raise ValueError(f"required properties not defined: {missing}")
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = list(required)
    return schema


def schema_problem(schema: JsonSchema, arguments: Mapping[str, Any]) -> str | None:
    """Why ``arguments`` do not fit ``schema`` (the first problem, with its path), or None."""
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(arguments), key=lambda e: list(e.absolute_path)
    )
    if not errors:
        return None
    where = "/".join(str(p) for p in errors[0].absolute_path) or "(arguments)"
    return f"{where}: {errors[0].message}"
