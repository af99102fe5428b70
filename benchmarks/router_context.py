"""Context cost of tool routing: what an agent is offered per session, against preloading toolkits.

Starts a sandbox router on a real PostgreSQL (an embedded one in a temporary directory unless
--database-url is given), opens a user's MCP session and measures the meta-tools through a real
``tools/list``; then measures what preloading the Slack, Jira and PagerDuty tools of the sandbox
catalogue would put in the context instead, and what one search round trip returns.

    python benchmarks/router_context.py [--database-url URL] [--tiktoken-bpe cl100k_base.tiktoken]

Tokens: tiktoken cl100k_base when --tiktoken-bpe points at its local BPE file, else chars/4.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import warnings
from pathlib import Path

import asyncpg
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from logwarden import db, migrator
from router.base import McpEndpoint
from router.context_cost import (
    ESTIMATE,
    ContextCost,
    Tokenizer,
    definitions_cost,
    offered_cost,
    tiktoken_tokenizer,
)
from router.sandbox import CATALOGUE, SandboxServer

SEARCH = {"queries": [{"use_case": "page the on-call engineer for a checkout outage"}]}


def _row(label: str, cost: ContextCost, baseline: ContextCost) -> str:
    ratio = cost.schema_tokens / baseline.schema_tokens if baseline.schema_tokens else float("nan")
    return f"{label:<44} {cost.tools:>6} {cost.schema_tokens:>8} {cost.schema_chars:>8} {ratio:>8.2f}x"


async def _search_tokens(endpoint: McpEndpoint, tokenizer: Tokenizer) -> int:
    """Tokens of one COMPOSIO_SEARCH_TOOLS result, called over MCP like an agent would."""
    async with (
        httpx2.AsyncClient(headers=dict(endpoint.headers), timeout=httpx2.Timeout(10)) as http,
        streamable_http_client(endpoint.url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool("COMPOSIO_SEARCH_TOOLS", SEARCH)
    text = getattr(result.content[0], "text", "")
    return tokenizer.count(text)


async def run(dsn: str, tokenizer: Tokenizer) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await migrator.migrate(conn)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4, timeout=10)
    try:
        async with SandboxServer(pool) as server:
            endpoint = await server.router().session("bench-user")
            meta = await offered_cost(endpoint, tokenizer=tokenizer)
            search = await _search_tokens(endpoint, tokenizer)
    finally:
        await pool.close()
    per_toolkit = {
        tk: definitions_cost(
            ((t.slug, t.description, t.input_schema) for t in CATALOGUE.tools([tk])), tokenizer
        )
        for tk in CATALOGUE.toolkits
    }
    preload = definitions_cost(
        ((t.slug, t.description, t.input_schema) for t in CATALOGUE.tools()), tokenizer
    )
    print(f"tokens: {tokenizer.name}")
    print(f"{'offered per session':<44} {'tools':>6} {'tokens':>8} {'chars':>8} {'vs meta':>9}")
    print(_row("router meta-tools (MCP tools/list)", meta, meta))
    for toolkit, cost in per_toolkit.items():
        print(_row(f"preload {toolkit} toolkit", cost, meta))
    print(_row("preload slack + jira + pagerduty", preload, meta))
    print(f"one COMPOSIO_SEARCH_TOOLS result (3 primary schemas): {search} tokens")
    saved = preload.schema_tokens - meta.schema_tokens
    print(
        f"meta-tools use {meta.schema_tokens / preload.schema_tokens:.1%} of the preload cost "
        f"({saved} tokens saved per model request; a search round trip adds {search} once)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: embedded, in a temporary directory)")
    parser.add_argument("--tiktoken-bpe", type=Path, help="local cl100k_base.tiktoken for exact token counts")
    args = parser.parse_args()
    tokenizer = tiktoken_tokenizer(args.tiktoken_bpe) if args.tiktoken_bpe else ESTIMATE
    if args.database_url:
        asyncio.run(run(args.database_url, tokenizer))
        return 0
    with tempfile.TemporaryDirectory(prefix="lw-bench-pg-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # platformdirs: no XDG_RUNTIME_DIR in containers
        embedded = db.start_embedded(Path(tmp))
        asyncio.run(run(embedded.dsn, tokenizer))
        del embedded
    return 0


if __name__ == "__main__":
    sys.exit(main())
