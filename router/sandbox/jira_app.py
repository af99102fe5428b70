"""The sandbox's fake Jira: issues, keys numbered per project, comments and a three-step workflow.

Owns ``sandbox_jira_counters``, ``sandbox_jira_issues`` and ``sandbox_jira_comments``. Keys are
``<PROJECT>-<n>`` with n counting from 1 per user and project (an atomic counter row). Search
takes the JQL subset of :mod:`router.sandbox.jql`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import asyncpg

from router.sandbox.app import AppResult, DbConn, Handler, Row, failed, iso, ok
from router.sandbox.jql import Clause, JqlError, JqlQuery, parse

NEXT_NUMBER = """
INSERT INTO sandbox_jira_counters (user_id, project, last_number) VALUES ($1, $2, 1)
ON CONFLICT (user_id, project) DO UPDATE SET last_number = sandbox_jira_counters.last_number + 1
RETURNING last_number
"""
INSERT_ISSUE = """
INSERT INTO sandbox_jira_issues
    (user_id, issue_key, project, summary, description, issuetype, priority, labels)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING created_at
"""
_ISSUE_COLUMNS = (
    "issue_key, project, summary, description, issuetype, priority, labels, status, created_at, updated_at"
)
SELECT_ISSUE = f"SELECT {_ISSUE_COLUMNS} FROM sandbox_jira_issues WHERE user_id = $1 AND issue_key = $2"
SELECT_ISSUES = f"""
SELECT {_ISSUE_COLUMNS} FROM sandbox_jira_issues
WHERE user_id = $1 AND ($2::text IS NULL OR project = $2) AND labels @> $3::text[]
"""
INSERT_COMMENT = """
INSERT INTO sandbox_jira_comments (user_id, issue_key, body) VALUES ($1, $2, $3) RETURNING id, created_at
"""
SELECT_COMMENTS = """
SELECT id, body, created_at FROM sandbox_jira_comments
WHERE user_id = $1 AND issue_key = $2 ORDER BY id LIMIT $3
"""
SET_STATUS = """
UPDATE sandbox_jira_issues SET status = $3, updated_at = now() WHERE user_id = $1 AND issue_key = $2
RETURNING status
"""

BASE_URL = "https://sandbox.atlassian.net"
STATUSES = {
    "to do": "To Do",
    "in progress": "In Progress",
    "done": "Done",
    "11": "To Do",
    "21": "In Progress",
    "31": "Done",
}
_PROJECT = re.compile(r"^[A-Z][A-Z0-9_]{1,9}$")
_NOT_FOUND = "Issue does not exist or you do not have permission to see it."


def _issue_json(row: Row) -> dict[str, Any]:
    return {
        "key": row["issue_key"],
        "self": f"{BASE_URL}/rest/api/2/issue/{row['issue_key']}",
        "fields": {
            "project": {"key": row["project"]},
            "summary": row["summary"],
            "description": row["description"],
            "issuetype": {"name": row["issuetype"]},
            "priority": {"name": row["priority"]} if row["priority"] else None,
            "labels": list(row["labels"]),
            "status": {"name": row["status"]},
            "created": iso(row["created_at"]),
            "updated": iso(row["updated_at"]),
        },
    }


def _plain(row: asyncpg.Record) -> dict[str, Any]:
    """The row as a dict JQL can match on (and _issue_json can render)."""
    return {**dict(row), "key": row["issue_key"], "created": row["created_at"], "updated": row["updated_at"]}


async def create_issue(conn: DbConn, user_id: str, args: Mapping[str, Any]) -> AppResult:
    project = str(args["project"]).strip().upper()
    if not _PROJECT.match(project):
        return failed(f"project: '{args['project']}' is not a valid project key (e.g. OPS)")
    summary = str(args["summary"]).strip()
    if not summary or len(summary) > 255:
        return failed("summary: must be 1-255 characters")
    labels = [str(label) for label in args.get("labels") or ()]
    bad = [label for label in labels if not label or any(ch.isspace() for ch in label)]
    if bad:
        return failed(f"labels: a label cannot contain spaces ({bad[0]!r})")
    number = await conn.fetchval(NEXT_NUMBER, user_id, project)
    key = f"{project}-{number}"
    await conn.execute(
        INSERT_ISSUE,
        user_id,
        key,
        project,
        summary,
        args.get("description"),
        str(args.get("issuetype") or "Task"),
        args.get("priority"),
        labels,
    )
    return ok({"key": key, "self": f"{BASE_URL}/rest/api/2/issue/{key}", "labels": labels}, external_ref=key)


async def search_issues(conn: DbConn, user_id: str, args: Mapping[str, Any]) -> AppResult:
    try:
        query = parse(str(args.get("jql") or ""))
    except JqlError as exc:
        return failed(f"Error in the JQL Query: {exc}")
    extra = list(query.clauses)
    if args.get("project"):
        extra.append(Clause("project", "=", (str(args["project"]),)))
    query = JqlQuery(tuple(extra), query.order_by, query.descending)
    labels = [str(label) for label in args.get("labels") or ()]
    rows = await conn.fetch(SELECT_ISSUES, user_id, None, labels)
    found = query.sort([p for p in map(_plain, rows) if query.matches(p)])
    limit = int(args.get("max_results") or 50)
    issues = [_issue_json(p) for p in found[:limit]]
    return ok({"startAt": 0, "maxResults": limit, "total": len(found), "issues": issues})


async def add_comment(conn: DbConn, user_id: str, args: Mapping[str, Any]) -> AppResult:
    key = str(args["issue_key"]).strip().upper()
    if await conn.fetchrow(SELECT_ISSUE, user_id, key) is None:
        return failed(_NOT_FOUND)
    row = await conn.fetchrow(INSERT_COMMENT, user_id, key, str(args["comment"]))
    assert row is not None
    return ok(
        {"id": str(row["id"]), "issue_key": key, "body": args["comment"], "created": iso(row["created_at"])},
        key,
    )


async def get_issue(conn: DbConn, user_id: str, args: Mapping[str, Any]) -> AppResult:
    row = await conn.fetchrow(SELECT_ISSUE, user_id, str(args["issue_key"]).strip().upper())
    return failed(_NOT_FOUND) if row is None else ok(_issue_json(row))


async def transition_issue(conn: DbConn, user_id: str, args: Mapping[str, Any]) -> AppResult:
    key = str(args["issue_key"]).strip().upper()
    status = STATUSES.get(str(args["transition"]).strip().lower())
    if status is None:
        return failed(f"transition {args['transition']!r} is not valid (To Do, In Progress, Done)")
    if await conn.fetchval(SET_STATUS, user_id, key, status) is None:
        return failed(_NOT_FOUND)
    if args.get("comment"):
        await conn.execute(INSERT_COMMENT, user_id, key, str(args["comment"]))
    return ok({"key": key, "status": status}, external_ref=key)


async def list_comments(conn: DbConn, user_id: str, args: Mapping[str, Any]) -> AppResult:
    key = str(args["issue_key"]).strip().upper()
    if await conn.fetchrow(SELECT_ISSUE, user_id, key) is None:
        return failed(_NOT_FOUND)
    rows = await conn.fetch(SELECT_COMMENTS, user_id, key, int(args.get("max_results") or 50))
    comments = [{"id": str(r["id"]), "body": r["body"], "created": iso(r["created_at"])} for r in rows]
    return ok({"comments": comments, "total": len(comments)})


JIRA_HANDLERS: dict[str, Handler] = {
    "JIRA_CREATE_ISSUE": create_issue,
    "JIRA_SEARCH_ISSUES": search_issues,
    "JIRA_ADD_COMMENT": add_comment,
    "JIRA_GET_ISSUE": get_issue,
    "JIRA_TRANSITION_ISSUE": transition_issue,
    "JIRA_LIST_ISSUE_COMMENTS": list_comments,
}
