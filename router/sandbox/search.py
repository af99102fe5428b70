"""Tool search: a deterministic BM25 ranking of catalogue tools for a use case.

Each tool is a small document: its slug and name (counted twice, they say what it does), its
toolkit, description and tags (synonyms operators use: page, ticket, notify). Words are
lower-cased, split on anything but letters and digits, stripped of stop words and of common
English suffixes, then scored with Okapi BM25 (k1 = 1.2, b = 0.75). A query that names a toolkit
("... in Slack") boosts that toolkit's tools, and a tool whose slug words the query covers gets up to
twice its score (so "send a slack message" prefers SLACK_SEND_MESSAGE over the longer-named
SLACK_SEND_EPHEMERAL_MESSAGE). Ties are broken by slug, so the ranking is a pure function of the
catalogue and the query.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from router.sandbox.spec import ToolSpec

K1 = 1.2
B = 0.75
TOOLKIT_BOOST = 1.5
PRIMARY_RATIO = 0.5
"""A hit is primary when it scores at least this fraction of the best hit."""
MAX_PRIMARY = 3
MAX_RELATED = 5

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    {
        *("a", "an", "the", "to", "of", "for", "in", "on", "and", "or", "with", "by", "from", "about"),
        *("is", "are", "it", "this", "that", "be", "as", "at", "into", "i", "we", "my", "our", "me"),
        *("you", "your", "want", "need", "please", "use", "using", "can", "could", "would", "should"),
        *("will", "do", "does", "via", "new", "one"),
    }
)
_TOOLKIT_ALIASES = {"pd": "pagerduty", "pager": "pagerduty", "atlassian": "jira"}


def stem(word: str) -> str:
    """A crude, stable suffix stripper: 'messages', 'message' → 'messag'; 'created' → 'creat'."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    for suffix in ("ing", "ed", "es", "s", "e"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix) and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def terms(text: str) -> list[str]:
    """The searchable terms of a text, in order."""
    return [stem(w) for w in _WORD.findall(text.lower().replace("_", " ")) if w not in _STOP]


@dataclass(frozen=True, slots=True)
class Hit:
    """One ranked tool."""

    slug: str
    toolkit: str
    score: float


@dataclass(frozen=True, slots=True)
class Ranking:
    """What a search returns for one use case."""

    primary: tuple[Hit, ...]
    related: tuple[Hit, ...]

    @property
    def toolkits(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(h.toolkit for h in self.primary + self.related))


class ToolIndex:
    """A BM25 index over a fixed set of tools (build once, query many times)."""

    __slots__ = ("_avg_len", "_docs", "_idf", "_names", "_tools")

    def __init__(self, tools: Sequence[ToolSpec]) -> None:
        self._tools = tuple(tools)
        self._docs: list[tuple[Counter[str], int]] = []
        self._names = [frozenset(terms(t.slug)) - {t.toolkit} for t in self._tools]
        df: Counter[str] = Counter()
        for tool in self._tools:
            words = (
                terms(tool.slug) * 2
                + terms(tool.name) * 2
                + terms(tool.toolkit)
                + terms(tool.description)
                + terms(" ".join(tool.tags))
            )
            counts = Counter(words)
            self._docs.append((counts, len(words)))
            df.update(counts.keys())
        n = len(self._tools)
        self._avg_len = sum(length for _, length in self._docs) / n if n else 0.0
        self._idf = {term: math.log(1 + (n - f + 0.5) / (f + 0.5)) for term, f in df.items()}

    def scores(self, query: str) -> list[Hit]:
        """Every tool that matches at least one query term, best first (ties by slug)."""
        query_terms = terms(query)
        named = {_TOOLKIT_ALIASES.get(t, t) for t in query_terms}
        hits: list[Hit] = []
        asked = set(query_terms)
        for tool, (counts, length), name in zip(self._tools, self._docs, self._names, strict=True):
            score = 0.0
            for term in query_terms:
                tf = counts.get(term, 0)
                if tf:
                    norm = tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / self._avg_len))
                    score += self._idf[term] * norm
            if score > 0:
                score *= 1 + len(name & asked) / len(name) if name else 1
                if tool.toolkit in named:
                    score *= TOOLKIT_BOOST
                hits.append(Hit(tool.slug, tool.toolkit, round(score, 6)))
        hits.sort(key=lambda h: (-h.score, h.slug))
        return hits

    def rank(self, query: str) -> Ranking:
        """Primary tools (close to the best score, at most 3) and related ones (the next 5)."""
        hits = self.scores(query)
        if not hits:
            return Ranking((), ())
        floor = hits[0].score * PRIMARY_RATIO
        primary = tuple(h for h in hits[:MAX_PRIMARY] if h.score >= floor)
        related = tuple(hits[len(primary) : len(primary) + MAX_RELATED])
        return Ranking(primary, related)
