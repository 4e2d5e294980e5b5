"""The search loop of one answer: the model's markers in, results blocks out.

A `LaneRun` feeds every piece of text the model writes through `SearchLoop.feed`; a completed
`<SEARCH_START>query<SEARCH_END>` is answered by `answer` (the block to inject, or "no more
searches" after MAX_SEARCHES), a results block the model starts inventing is reported by
`invented`, and `release` ends the answer (text held back for a possible marker, a query left
open). `first` is +search-first: the question's results before the question. The loop is the same
for every backend; what a backend does with a block (token ids into a KV cache, text into the next
request) is the backend's business.

Every lane watches for invented results, also lanes without +search (a base model that writes
`<SEARCH_RESULTS>` is making up a source). A query that appears word for word (case and spacing
aside) in a results block injected earlier in the same answer is `copied`: a document, not the
model, may have chosen it (a corpus page holding `<SEARCH_START>…<SEARCH_END>`). A copied query
still runs -- refusing it would also refuse the honest follow-up search of a name the results
gave -- but it is marked in the log, the lane and `ask`, so the user sees who steered the search.
The results blocks are neutralized (tool.neutralize), so a copied query is the model's own act.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

from playground.core.errors import PlaygroundError
from playground.core.events import Event, SearchDone, SearchKind, SearchOption, SearchStarted, Token
from playground.core.prompts import TooLong
from playground.core.search.backends import Result
from playground.core.search.markers import RESULTS, Invented, MarkerParser, Query, Unterminated
from playground.core.search.markers import Text as MarkerText
from playground.core.search.tool import DEFAULT_BUDGET, LIMIT_BLOCK, MAX_SEARCHES, results_block

RunSearch = Callable[[str], tuple[list[Result] | None, str | None, float, str]]
"""query -> (results, error, seconds, backend name); never raises for a failed search."""

INVENTED_ERROR = (
    "the model began writing search results itself; it was stopped "
    "(the program, not the model, supplies results)"
)
UNTERMINATED_ERROR = (
    "the model opened <SEARCH_START> but the answer ended before it closed the query"
)


COPIED_MARK = "⚠ copied from a result"
"""How the lane and `ask` mark a query that was copied from results (see the module's doc)."""


class PrefillError(PlaygroundError):
    """A prefill the loop cannot take as the start of the model's answer."""


def check_prefill(prefill: str) -> None:
    """Refuse a prefill, in any lane, that forges search results or goes on after a complete
    search call (the model itself would have been stopped at the closing marker to wait for the
    results). A prefill that ends with a search call runs it in a +search lane."""
    if any(r.lower() in prefill.lower() for r in RESULTS):
        raise PrefillError(
            "the prefill contains <SEARCH_RESULTS>: only the program supplies search results "
            "(a prefill may start a search with <SEARCH_START>query<SEARCH_END>, not answer it)"
        )
    parser = MarkerParser()
    items = parser.feed(prefill)
    if any(isinstance(i, Query) for i in items) and parser.buf.strip():
        raise PrefillError(
            f"the prefill goes on after its search call ({parser.buf.strip()[:40]!r}): end it "
            "with <SEARCH_END>, the model continues once the results are in"
        )


def normalized(text: str) -> str:
    """Case and spacing aside: how a query is compared with the results the model has read."""
    return " ".join(text.casefold().split())


class SearchLoop:
    """One answer's searches: which mode (None, "tool", "first"), the marker parser, the count."""

    def __init__(
        self,
        lane: str,
        mode: SearchOption | None,
        run_search: RunSearch,
        backend_name: str,
        emit: Callable[[Event], None],
    ):
        self.lane = lane
        self.mode = mode
        self.run_search = run_search
        self.backend_name = backend_name
        self.emit = emit
        self.parser = MarkerParser(tool=mode == "tool")
        self.answered = 0  # queries of the model answered with results (not the limit block)
        self.read = ""  # the results blocks injected so far (normalized): what the model has read
        self.first_block = ""  # +search-first: the results block put before the question

    def first(self, question: str, count: Callable[[str], int]) -> tuple[str, SearchDone | None]:
        """+search-first: the question with the results block before it, and the search to log
        once the exchange exists. *count* measures text in tokens."""
        if self.mode != "first":
            return question, None
        self.emit(SearchStarted(self.lane, question, "first", 0))
        results, err, secs, backend = self.run_search(question)
        block = results_block(results, err, count)
        self.read += normalized(block) + "\n"
        done = SearchDone(
            self.lane,
            question,
            "first",
            backend,
            [r.as_dict() for r in results or []],
            err,
            secs,
            0,
            0,
            count(block),
        )
        self.first_block = block.strip("\n")
        return self.first_block + "\n\n" + question, done

    def too_long(self, e: TooLong, question: str, count: Callable[[str], int]) -> TooLong:
        """A prompt that did not fit, told part by part: +search-first put the results before
        the question, so "the question" of the error was both."""
        if not self.first_block:
            return e
        return e.split(
            [("the search results", count(self.first_block)), ("the question", count(question))],
            "give the model a larger n_ctx in models.toml, or use +search instead of "
            "+search-first (its results are cut to the room the context has left)",
        )

    def feed(self, text: str) -> tuple[str, Query | None, Invented | None]:
        """What of *text* may be shown now, and a query or invented results block it completed."""
        shown, query, invented = "", None, None
        for item in self.parser.feed(text):
            if isinstance(item, MarkerText):
                shown += item.text
            elif isinstance(item, Query):
                query = item
            elif isinstance(item, Invented):
                invented = item
        return shown, query, invented

    def copied(self, query: str) -> bool:
        """Whether *query* appears word for word in a results block injected earlier (whole
        words: "ance" is not copied from "Vance")."""
        q = normalized(query)
        return bool(q) and re.search(rf"(?<!\w){re.escape(q)}(?!\w)", self.read) is not None

    def answer(
        self,
        query: Query,
        position: int,
        count: Callable[[str], int],
        budget: int = DEFAULT_BUDGET,
    ) -> tuple[SearchKind, str, list[Result] | None, str | None, float, str]:
        """The block that answers a model's query: results, or a "no more searches" block after
        MAX_SEARCHES. Returns (kind, block, results, error, seconds, backend)."""
        if self.answered >= MAX_SEARCHES:
            return "limit", LIMIT_BLOCK, None, "search limit reached", 0.0, self.backend_name
        self.answered += 1
        self.emit(SearchStarted(self.lane, query.query, "tool", position))
        results, err, secs, backend = self.run_search(query.query)
        block = results_block(results, err, count, budget=budget)
        self.read += normalized(block) + "\n"
        return "tool", block, results, err, secs, backend

    def resume(self) -> None:
        """The results are in the context: read the model's text again."""
        self.parser.resume()

    def invented(self, position: int, token_index: int) -> SearchDone:
        return SearchDone(
            self.lane,
            "",
            "invented",
            "model",
            [],
            INVENTED_ERROR,
            0.0,
            position,
            token_index,
            0,
        )

    def release(self, index: int, position: int, t0: float) -> Iterator[Token | SearchDone]:
        """The answer ended: the text held back for a possible marker (as Token events without a
        token) and a query left open (as a SearchDone to log)."""
        released = 0
        for item in self.parser.finish():
            if isinstance(item, MarkerText):
                released += len(item.text)
                yield Token(self.lane, index, -1, "", item.text, 0.0, [], time.perf_counter() - t0)
            elif isinstance(item, Unterminated):
                yield SearchDone(
                    self.lane,
                    item.query,
                    "unterminated",
                    self.backend_name,
                    [],
                    UNTERMINATED_ERROR,
                    0.0,
                    position + released,
                    index,
                    0,
                )
