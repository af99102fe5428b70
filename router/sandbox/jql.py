"""A small JQL subset for the fake Jira: enough to search before creating a ticket.

Grammar: ``clause (AND clause)* [ORDER BY field [ASC|DESC]]`` where a clause is
``field (= | != | ~ | !~) value`` or ``field [NOT] IN (value, ...)``. Fields: project, key
(issuekey), labels (label), status, statusCategory, issuetype (type), priority, summary, text.
Values are bare words or quoted strings. Anything else (OR, parentheses, functions) is refused
with :class:`JqlError`, whose message says what was not understood.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<op>!=|!~|=|~|\(|\)|,)|(?P<word>[^\s=!~(),"']+))"""
)
_FIELDS = {
    "project": "project",
    "key": "key",
    "issuekey": "key",
    "id": "key",
    "labels": "labels",
    "label": "labels",
    "status": "status",
    "statuscategory": "statusCategory",
    "issuetype": "issuetype",
    "type": "issuetype",
    "priority": "priority",
    "summary": "summary",
    "text": "text",
}
_ORDER_FIELDS = {"created", "updated", "key", "priority"}


class JqlError(ValueError):
    """The query is outside the supported subset or malformed (permanent: fix the query)."""


@dataclass(frozen=True, slots=True)
class Clause:
    field: str
    op: str
    values: tuple[str, ...]

    def matches(self, issue: Mapping[str, Any]) -> bool:
        if self.field == "labels":
            labels = set(issue.get("labels") or ())
            hit = any(v in labels for v in self.values)
        elif self.op in ("~", "!~"):
            haystack = str(issue.get("summary") or "")
            if self.field == "text":
                haystack += " " + str(issue.get("description") or "")
            hit = self.values[0].lower() in haystack.lower()
        elif self.field == "statusCategory":
            done = str(issue.get("status", "")).lower() == "done"
            hit = any((v.lower() == "done") == done for v in self.values)
        else:
            value = str(issue.get(self.field) or "").lower()
            hit = any(v.lower() == value for v in self.values)
        return not hit if self.op in ("!=", "!~", "not in") else hit


@dataclass(frozen=True, slots=True)
class JqlQuery:
    clauses: tuple[Clause, ...]
    order_by: str = "created"
    descending: bool = True

    def matches(self, issue: Mapping[str, Any]) -> bool:
        return all(c.matches(issue) for c in self.clauses)

    def sort(self, issues: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        def key(issue: Mapping[str, Any]) -> tuple[Any, ...]:
            if self.order_by == "key":
                project, _, number = str(issue["key"]).partition("-")
                return (project, int(number) if number.isdigit() else 0)
            return (str(issue.get(self.order_by) or ""), str(issue["key"]))

        return sorted(issues, key=key, reverse=self.descending)


def _tokens(jql: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = jql.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise JqlError(f"cannot read the query at {text[pos : pos + 20]!r}")
        if match.group("str") is not None:
            raw = match.group("str")[1:-1]
            tokens.append("\x00" + re.sub(r"\\(.)", r"\1", raw))  # \x00 marks a quoted value
        else:
            tokens.append(match.group("op") or match.group("word"))
        pos = match.end()
    return tokens


def _value(token: str) -> str:
    return token[1:] if token.startswith("\x00") else token


def parse(jql: str) -> JqlQuery:
    """Parse a JQL query of the supported subset."""
    tokens = _tokens(jql)
    clauses: list[Clause] = []
    order_by, descending = "created", True
    i = 0

    def peek(offset: int = 0) -> str:
        return tokens[i + offset] if i + offset < len(tokens) else ""

    while i < len(tokens):
        if peek().lower() == "order" and peek(1).lower() == "by":
            field = peek(2).lower()
            if field not in _ORDER_FIELDS:
                raise JqlError(f"cannot order by {peek(2)!r} (use one of {sorted(_ORDER_FIELDS)})")
            order_by, i = field, i + 3
            if peek().lower() in ("asc", "desc"):
                descending, i = peek().lower() == "desc", i + 1
            if i != len(tokens):
                raise JqlError(f"unexpected {peek()!r} after ORDER BY")
            break
        if clauses:
            if peek().lower() != "and":
                raise JqlError(f"expected AND or ORDER BY, found {peek()!r} (OR is not supported)")
            i += 1
        known = _FIELDS.get(peek().lower())
        if known is None:
            raise JqlError(f"unknown field {peek()!r} (supported: {sorted(set(_FIELDS.values()))})")
        field, i = known, i + 1
        op = peek().lower()
        if op == "not" and peek(1).lower() == "in":
            op, i = "not in", i + 2
        elif op in ("=", "!=", "~", "!~", "in"):
            i += 1
        else:
            raise JqlError(f"unsupported operator {peek()!r} after {field}")
        if op in ("~", "!~") and field not in ("summary", "text"):
            raise JqlError(f"operator {op} works on summary and text only")
        if op in ("in", "not in"):
            if peek() != "(":
                raise JqlError(f"expected '(' after {op.upper()}")
            i += 1
            values: list[str] = []
            while peek() not in (")", ""):
                values.append(_value(peek()))
                i += 1
                if peek() == ",":
                    i += 1
            if peek() != ")" or not values:
                raise JqlError(f"unterminated or empty {op.upper()} list")
            i += 1
        else:
            if peek() in ("", "(", ")", ","):
                raise JqlError(f"expected a value after {field} {op}")
            values = [_value(peek())]
            i += 1
        clauses.append(Clause(field, op, tuple(values)))
    return JqlQuery(tuple(clauses), order_by, descending)
