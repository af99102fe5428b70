"""The four meta-tools' behaviour, in Composio's result envelope.

Every result is ``{"successful": bool, "data": ..., "error": str | None}``. Arguments that do not
match a meta-tool's schema give an MCP error result (``is_error``) naming the problem; problems
with individual app calls inside ``COMPOSIO_MULTI_EXECUTE_TOOL`` are reported per call in
``data.results`` (the MCP result itself is not an error then, so an agent can read them). The
calls of one ``COMPOSIO_MULTI_EXECUTE_TOOL`` run one after another, in the order given.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from router.base import ConnectionState
from router.sandbox.catalog import Catalogue
from router.sandbox.executor import ConnectionView, Executor
from router.sandbox.meta_schemas import (
    GET_TOOL_SCHEMAS,
    MANAGE_CONNECTIONS,
    MULTI_EXECUTE_TOOL,
    SCHEMAS,
    SEARCH_TOOLS,
)
from router.sandbox.search import ToolIndex
from router.sandbox.spec import schema_problem
from router.sandbox.store import DATABASE_ERRORS, SandboxStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the user the request's credentials resolved to, and the session in its URL."""

    user_id: str
    session_id: str


@dataclass(frozen=True, slots=True)
class MetaResult:
    """A meta-tool's envelope, and whether MCP should flag it as an error result."""

    payload: dict[str, Any]
    is_error: bool = False


def envelope(data: Any, error: str | None = None) -> dict[str, Any]:
    return {"successful": error is None, "data": data, "error": error}


class MetaTools:
    """Search, describe, execute and connect, for one server's toolkits."""

    __slots__ = ("_catalogue", "_connection_view", "_executor", "_index", "_link_ttl", "_store", "toolkits")

    def __init__(
        self,
        store: SandboxStore,
        catalogue: Catalogue,
        executor: Executor,
        connection_view: ConnectionView,
        *,
        toolkits: Collection[str],
        link_ttl: float,
    ) -> None:
        self._store = store
        self._catalogue = catalogue
        self._executor = executor
        self._connection_view = connection_view
        self._link_ttl = link_ttl
        self.toolkits = tuple(toolkits)
        self._index = ToolIndex(catalogue.tools(self.toolkits))

    async def call(self, caller: Caller, name: str, arguments: Mapping[str, Any]) -> MetaResult:
        schema = SCHEMAS.get(name)
        if schema is None:
            return MetaResult(envelope(None, f"Unknown tool: {name}"), is_error=True)
        problem = schema_problem(schema, arguments)
        if problem is not None:
            return MetaResult(envelope(None, f"Invalid arguments for {name}: {problem}"), is_error=True)
        try:
            if name == SEARCH_TOOLS:
                return MetaResult(await self.search(caller, arguments))
            if name == GET_TOOL_SCHEMAS:
                return MetaResult(self.get_schemas(arguments))
            if name == MULTI_EXECUTE_TOOL:
                return MetaResult(await self.multi_execute(caller, arguments))
            return MetaResult(await self.manage_connections(caller, arguments))
        except DATABASE_ERRORS as exc:
            log.warning("sandbox: %s failed on the database: %s", name, type(exc).__name__)
            return MetaResult(
                envelope(None, f"The sandbox database is unavailable ({type(exc).__name__}); retry"), True
            )

    async def search(self, caller: Caller, arguments: Mapping[str, Any]) -> dict[str, Any]:
        results = []
        schemas: dict[str, Any] = {}
        seen_toolkits: dict[str, None] = {}
        for i, query in enumerate(arguments["queries"]):
            text = f"{query['use_case']} {query.get('known_fields') or ''}"
            ranking = self._index.rank(text)
            results.append(
                {
                    "index": i,
                    "use_case": query["use_case"],
                    "primary_tool_slugs": [h.slug for h in ranking.primary],
                    "related_tool_slugs": [h.slug for h in ranking.related],
                    "toolkits": list(ranking.toolkits),
                }
            )
            for hit in ranking.primary:
                spec = self._catalogue.get(hit.slug)
                assert spec is not None
                schemas[hit.slug] = spec.schema_entry()
            seen_toolkits.update(dict.fromkeys(ranking.toolkits))
        best = await self._store.best_connections(caller.user_id, list(seen_toolkits))
        statuses = []
        for toolkit in seen_toolkits:
            record = best.get(toolkit)
            state = record.state if record is not None else ConnectionState.MISSING
            active = state is ConnectionState.ACTIVE
            statuses.append(
                {
                    "toolkit": toolkit,
                    "has_active_connection": active,
                    "status": state.value,
                    "connected_account_id": record.id if active and record is not None else None,
                    "description": None
                    if active
                    else f"Call {MANAGE_CONNECTIONS} with toolkits=['{toolkit}'].",
                }
            )
        guidance = [
            f"Build arguments from tool_schemas[slug].input_schema; {GET_TOOL_SCHEMAS} describes the rest.",
            f"Execute with {MULTI_EXECUTE_TOOL} (session_id={caller.session_id}).",
        ]
        data = {
            "results": results,
            "toolkit_connection_statuses": statuses,
            "tool_schemas": schemas,
            "session": {"id": caller.session_id},
            "next_steps_guidance": guidance,
        }
        return envelope(data)

    def get_schemas(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        include = tuple(arguments.get("include") or ("input_schema",))
        schemas: dict[str, Any] = {}
        not_found: list[str] = []
        for slug in arguments["tool_slugs"]:
            spec = self._catalogue.get(slug)
            if spec is None or spec.toolkit not in self.toolkits:
                not_found.append(slug)
            else:
                schemas[spec.slug] = spec.schema_entry(include)
        error = f"Tools not found: {', '.join(not_found)}" if not_found and not schemas else None
        return envelope({"tool_schemas": schemas, "not_found": not_found}, error)

    async def multi_execute(self, caller: Caller, arguments: Mapping[str, Any]) -> dict[str, Any]:
        results = [
            await self._executor.execute(
                caller.user_id, self.toolkits, i, item["tool_slug"], item["arguments"]
            )
            for i, item in enumerate(arguments["tools"])
        ]
        errors = sum(1 for r in results if "error" in r or not r["response"]["successful"])
        data = {"results": results, "error_count": errors, "total_count": len(results)}
        return envelope(data, f"{errors} of {len(results)} tool calls failed" if errors else None)

    async def manage_connections(self, caller: Caller, arguments: Mapping[str, Any]) -> dict[str, Any]:
        wanted = [str(t).strip().lower() for t in arguments["toolkits"]]
        reinitiate = bool(arguments.get("reinitiate_all"))
        best = await self._store.best_connections(caller.user_id, wanted)
        results: dict[str, Any] = {}
        for toolkit in dict.fromkeys(wanted):
            if toolkit not in self.toolkits:
                message = f"Toolkit {toolkit} is not available in this session ({', '.join(self.toolkits)})"
                results[toolkit] = {"toolkit": toolkit, "status": "error", "message": message}
                continue
            record = best.get(toolkit)
            if record is not None and record.state is ConnectionState.ACTIVE and not reinitiate:
                results[toolkit] = {
                    "toolkit": toolkit,
                    "status": "active",
                    "connected_account_id": record.id,
                    "message": f"{toolkit} is connected",
                }
                continue
            pending = await self._store.start_connection(caller.user_id, toolkit, None, self._link_ttl)
            results[toolkit] = {
                "toolkit": toolkit,
                **self._connection_view(pending),
                "message": f"Ask the user to open the redirect_url to connect {toolkit}",
            }
        counts = {
            s: sum(1 for r in results.values() if r["status"] == s) for s in ("active", "initiated", "error")
        }
        summary = {"total": len(results), **counts}
        error = "some toolkits are not available" if counts["error"] else None
        return envelope({"results": results, "summary": summary}, error)
