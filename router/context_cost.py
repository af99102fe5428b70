"""How much of an agent's context its tool definitions take: count and schema tokens.

A tool definition is measured as a model API receives it: the function-tool JSON
``{"type": "function", "function": {"name", "description", "parameters"}}``, serialised compactly.
Tokens are counted with tiktoken's ``cl100k_base`` when its BPE file is available locally
(:func:`tiktoken_tokenizer`; tiktoken downloads encodings on first use, which this project never
lets it do), otherwise estimated as ``ceil(characters / 4)`` (:data:`CHARS_PER_TOKEN`), the usual
rule of thumb for English and JSON with OpenAI tokenizers.

Agents record :func:`definitions_cost` of what they were offered per decision; the sandbox
benchmark compares the router's meta-tools (via a real ``tools/list``) with preloading toolkits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from router.base import McpEndpoint, RouterUnavailable

CHARS_PER_TOKEN = 4

# cl100k_base's pre-tokenisation pattern and special tokens, as tiktoken_ext.openai_public defines them.
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|"""
    r"""\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_CL100K_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


@dataclass(frozen=True, slots=True)
class Tokenizer:
    """A named token counter."""

    name: str
    count: Callable[[str], int]


def _estimate(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


ESTIMATE = Tokenizer(f"estimate (chars/{CHARS_PER_TOKEN})", _estimate)
"""The default: no tokenizer files needed."""


def tiktoken_tokenizer(bpe_file: Path) -> Tokenizer:
    """tiktoken's cl100k_base from a local ``cl100k_base.tiktoken`` file (never downloads).

    Raises FileNotFoundError when the file is missing and ImportError without tiktoken.
    """
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    if not bpe_file.is_file():
        raise FileNotFoundError(f"no tiktoken BPE file at {bpe_file}")
    encoding = tiktoken.Encoding(
        name="cl100k_base",
        pat_str=_CL100K_PATTERN,
        mergeable_ranks=load_tiktoken_bpe(str(bpe_file)),
        special_tokens=_CL100K_SPECIAL,
    )
    return Tokenizer("tiktoken cl100k_base", lambda text: len(encoding.encode(text, disallowed_special=())))


@dataclass(frozen=True, slots=True)
class ContextCost:
    """Tool definitions offered to a model, and what they cost in its context."""

    tools: int
    schema_tokens: int
    schema_chars: int
    tokenizer: str


def definition_json(name: str, description: str | None, parameters: Mapping[str, Any]) -> str:
    """One tool as a model API receives it (compact JSON)."""
    function: dict[str, Any] = {"name": name, "description": description or "", "parameters": parameters}
    return json.dumps({"type": "function", "function": function}, separators=(",", ":"), ensure_ascii=False)


def definitions_cost(
    tools: Iterable[tuple[str, str | None, Mapping[str, Any]]], tokenizer: Tokenizer = ESTIMATE
) -> ContextCost:
    """Cost of (name, description, JSON-schema parameters) tool definitions."""
    count = tokens = chars = 0
    for name, description, parameters in tools:
        text = definition_json(name, description, parameters)
        count += 1
        chars += len(text)
        tokens += tokenizer.count(text)
    return ContextCost(tools=count, schema_tokens=tokens, schema_chars=chars, tokenizer=tokenizer.name)


async def offered_cost(
    endpoint: McpEndpoint, *, timeout: float = 10.0, tokenizer: Tokenizer = ESTIMATE
) -> ContextCost:
    """Cost of what an MCP endpoint offers, measured with a real ``tools/list``.

    Raises RouterUnavailable when the endpoint cannot be reached or refuses the session.
    """
    try:
        async with (
            httpx2.AsyncClient(headers=dict(endpoint.headers), timeout=httpx2.Timeout(timeout)) as http,
            streamable_http_client(endpoint.url, http_client=http) as (read, write),
            ClientSession(read, write, read_timeout_seconds=timeout) as session,
        ):
            await session.initialize()
            listed = await session.list_tools()
    except Exception as exc:  # the MCP client wraps transport failures in ExceptionGroups
        raise RouterUnavailable(f"cannot list tools at {endpoint.url}: {type(exc).__name__}") from exc
    return definitions_cost(((t.name, t.description, t.input_schema) for t in listed.tools), tokenizer)
