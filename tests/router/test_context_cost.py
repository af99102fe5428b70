"""Context cost: tool definitions offered to a model, counted and measured in tokens."""

from __future__ import annotations

import math
from pathlib import Path

import anyio
import pytest

from router.base import McpEndpoint, RouterUnavailable
from router.context_cost import (
    ESTIMATE,
    Tokenizer,
    definition_json,
    definitions_cost,
    offered_cost,
    tiktoken_tokenizer,
)
from router.sandbox import CATALOGUE, SandboxServer
from router.sandbox.mcp_server import tool_definitions

pytestmark = pytest.mark.anyio

TOOLS = [
    ("a", "first tool", {"type": "object", "properties": {"x": {"type": "string"}}}),
    ("b", None, {"type": "object"}),
]


def test_definitions_cost_counts_tools_characters_and_estimated_tokens() -> None:
    cost = definitions_cost(TOOLS)
    texts = [definition_json(*t) for t in TOOLS]
    assert cost.tools == 2
    assert cost.schema_chars == sum(len(t) for t in texts)
    assert cost.schema_tokens == sum(math.ceil(len(t) / 4) for t in texts)
    assert cost.tokenizer == ESTIMATE.name
    assert (
        texts[1]
        == '{"type":"function","function":{"name":"b","description":"","parameters":{"type":"object"}}}'
    )


def test_a_custom_tokenizer_is_used_and_named() -> None:
    words = Tokenizer("words", lambda text: len(text.split('"')))
    cost = definitions_cost(TOOLS, words)
    assert cost.tokenizer == "words"
    assert cost.schema_tokens == sum(len(definition_json(*t).split('"')) for t in TOOLS)


def test_tiktoken_needs_a_local_bpe_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        tiktoken_tokenizer(tmp_path / "cl100k_base.tiktoken")


async def test_offered_cost_measures_a_real_tools_list(sandbox: SandboxServer) -> None:
    endpoint = await sandbox.router().session("alice")
    with anyio.fail_after(15):
        offered = await offered_cost(endpoint)
    expected = definitions_cost((t.name, t.description, t.input_schema) for t in tool_definitions())
    assert offered == expected
    assert offered.tools == 4
    preload = definitions_cost((t.slug, t.description, t.input_schema) for t in CATALOGUE.tools())
    assert preload.tools == len(CATALOGUE) >= 36
    assert preload.schema_tokens > 5 * offered.schema_tokens


async def test_offered_cost_of_an_endpoint_that_refuses_is_router_unavailable(sandbox: SandboxServer) -> None:
    endpoint = await sandbox.router().session("alice")
    with anyio.fail_after(15), pytest.raises(RouterUnavailable):
        await offered_cost(McpEndpoint(endpoint.url, {"x-api-key": "wrong"}), timeout=5)
