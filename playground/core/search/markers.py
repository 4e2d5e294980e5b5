"""Find <SEARCH_START>query<SEARCH_END> in a stream of text deltas, whatever the token boundaries.

The parser is fed the model's visible text as it streams and returns what may be shown now: text
that cannot be the beginning of a marker. A possible half-written marker is held back until it
either completes (and is never shown) or turns out to be ordinary text. Matching ignores case, and
the usual improvisations of small models are accepted as the closing marker (`</SEARCH_END>`,
`</SEARCH_START>`, ...). When a model starts writing `<SEARCH_RESULTS>` itself, the parser says so:
the program, not the model, supplies results. A lane without the search tool gets a parser that
looks for results markers only (`tool=False`): a model inventing results is stopped in every lane.
A query that grows past MAX_QUERY_CHARS without closing is ended there (`Query.closer` is ""), so
a runaway query is not hidden from the user for the rest of the answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

OPEN = "<SEARCH_START>"
CLOSES = ("<SEARCH_END>", "</SEARCH_END>", "</SEARCH_START>", "<SEARCH_END/>", "<\\SEARCH_END>")
RESULTS = ("<SEARCH_RESULTS>", "</SEARCH_RESULTS>")
ALL = (OPEN, *CLOSES, *RESULTS)
MAX_QUERY_CHARS = 500
QUERY_CUTOFF = 2 * MAX_QUERY_CHARS  # an open query this long can no longer close into a valid one


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Query:
    """A complete query: the model wrote the opening and a closing marker (closer "": a query
    cut off at QUERY_CUTOFF characters without one)."""

    query: str
    closer: str


@dataclass(frozen=True)
class Invented:
    """The model began a results block of its own."""

    marker: str


@dataclass(frozen=True)
class Unterminated:
    """The stream ended inside a query."""

    query: str


Item = Text | Query | Invented | Unterminated


def _find(hay: str, needles: Iterable[str]) -> tuple[int, str] | None:
    """Earliest case-insensitive occurrence of any needle (positions in *hay* itself: upper-casing
    can change a string's length, as with 'ß')."""
    best: tuple[int, str] | None = None
    for n in needles:
        m = re.search(re.escape(n), hay, re.IGNORECASE)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), n)
    return best


def _held(text: str, needles: Iterable[str]) -> int:
    """Length of the longest suffix of *text* that is a proper prefix of a marker."""
    hold = 0
    for n in needles:
        for k in range(min(len(n) - 1, len(text)), hold, -1):
            if text[-k:].upper() == n[:k].upper() and text[-k:].isascii():
                hold = k
                break
    return hold


class MarkerParser:
    def __init__(self, tool: bool = True) -> None:
        self.opens = (OPEN, *RESULTS) if tool else RESULTS
        self.held = ALL if tool else RESULTS
        self.buf = ""
        self.in_query = False
        self.stopped = False  # after a complete query or an invented results block

    def feed(self, text: str) -> list[Item]:
        if self.stopped:
            return []
        self.buf += text
        out: list[Item] = []
        while not self.stopped:
            if not self.in_query:
                hit = _find(self.buf, self.opens)
                if hit is None:
                    keep = _held(self.buf, self.held)
                    shown = self.buf[: len(self.buf) - keep]
                    if shown:
                        out.append(Text(shown))
                    self.buf = self.buf[len(shown) :]
                    return out
                i, marker = hit
                if i:
                    out.append(Text(self.buf[:i]))
                self.buf = self.buf[i + len(marker) :]
                if marker == OPEN:
                    self.in_query = True
                else:
                    out.append(Invented(marker))
                    self.stopped = True
            else:
                hit = _find(self.buf, (*CLOSES, OPEN, *RESULTS))
                if hit is None:
                    if len(self.buf) > QUERY_CUTOFF:
                        out.append(Query(self.buf.strip(), ""))
                        self.buf, self.in_query, self.stopped = "", False, True
                    return out
                i, marker = hit
                query = self.buf[:i]
                self.buf = self.buf[i + len(marker) :]
                if marker == OPEN:  # a nested opening marker starts the query again
                    continue
                out.append(Query(query.strip(), marker))
                if marker in RESULTS:
                    out.append(Invented(marker))
                self.in_query = False
                self.stopped = True
        return out

    def finish(self) -> list[Item]:
        """The stream ended: release held-back text, report an unterminated query."""
        if self.stopped:
            return []
        buf, self.buf = self.buf, ""
        if self.in_query:
            return [Unterminated(buf.strip())]
        return [Text(buf)] if buf else []

    def resume(self) -> None:
        """Continue after the program answered a query (results were injected)."""
        self.stopped = False
        self.in_query = False
        self.buf = ""
