"""The log as one consumer of an answer's event stream.

`ExchangeRecorder` opens the exchange row (the events carry its id, so that is the one explicit
call), then reads the same typed events the CLI and the TUI get: PromptReady (streaming, and what
the prompt cost), Token (token rows and the partial text, flushed at most every FLUSH_EVERY_S),
SearchDone (a searches row; the event goes on with its row id) and Finished (the final figures).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from playground.core.db.store import Row, SessionLog, TokenFields, token_row
from playground.core.events import Event, Finished, PromptReady, SearchDone, Stats, Token

FLUSH_EVERY_S = 0.5
SEARCH_COLUMNS = (
    "kind",
    "query",
    "backend",
    "results",
    "error",
    "seconds",
    "position",
    "token_index",
    "injected_tokens",
    "copied",
)
"""The columns of a searches row that a SearchDone event fills (same names)."""
STATS_COLUMNS = (
    "completion_tokens",
    "answer_tokens",
    "time_to_first_token",
    "tokens_per_second",
    "total_seconds",
    "mean_logprob",
    "confidence",
)
"""The columns of an exchanges row that an answer's Stats fills (same names)."""


class ExchangeRecorder:
    """Writes one exchange as its events arrive. *server*: the answer comes from a server, which
    keeps its prompt cache to itself and may send no token probabilities (the options say so)."""

    def __init__(self, log: SessionLog, fields: Row, server: bool = False):
        self.log = log
        self.options = fields.get("options") or {}
        self.server = server
        self.id = log.start_exchange(**fields)
        self.pending: list[TokenFields] = []
        self.text = ""
        self.searches = 0
        self.logprobs = 0  # tokens that came with a probability
        self.all_logprobs = True
        self.last_flush = 0.0

    def __call__(self, ev: Event) -> Event:
        """Record *ev*; returns the event to pass on (a SearchDone with its row id)."""
        if isinstance(ev, Token):
            self._token(ev)
        elif isinstance(ev, SearchDone):
            ev = replace(ev, search_id=self._search(ev))
        elif isinstance(ev, PromptReady):
            cost: Row = (
                {}
                if self.server
                else {"prompt_evaluated": ev.evaluated, "prompt_reused": ev.reused}
            )
            self.log.update_exchange(self.id, status="streaming", **cost)
            self.last_flush = time.monotonic()
        elif isinstance(ev, Finished):
            self._finish(ev)
        return ev

    def resumed(self, search_id: int, evaluated: int) -> None:
        """Generation resumed after a search's results: what evaluating them cost."""
        self.log.update_search(search_id, resume_evaluated=evaluated)

    def _token(self, ev: Token) -> None:
        self.text += ev.text
        row = token_row(ev)
        if row is not None:
            self.pending.append(row)
            if row["logprob"] is None:
                self.all_logprobs = False
            else:
                self.logprobs += 1
        if time.monotonic() - self.last_flush >= FLUSH_EVERY_S:
            self.flush()

    def _search(self, ev: SearchDone) -> int:
        self.searches += 1
        return self.log.add_search(self.id, **{k: getattr(ev, k) for k in SEARCH_COLUMNS})

    def _finish(self, ev: Finished) -> None:
        self.text = ev.text
        fields: Row = {
            "status": ev.status,
            "finish_reason": ev.finish_reason,
            "error": ev.error,
            "searches": self.searches,
            **_stats_fields(ev.stats, prompt=not self.server),
        }
        if self.server:
            logprobs = self.logprobs > 0 and self.all_logprobs
            fields["options"] = {**self.options, "remote": True, "logprobs": logprobs}
        self.flush(**fields)

    def flush(self, **fields: Any) -> None:
        self.log.update_exchange(self.id, tokens=self.pending, output_text=self.text, **fields)
        self.pending = []
        self.last_flush = time.monotonic()


def _stats_fields(stats: Stats | None, prompt: bool) -> Row:
    """The exchange row's figures from an answer's Stats (*prompt*: with the prompt's cost)."""
    if stats is None:
        return {}
    out = {k: getattr(stats, k) for k in STATS_COLUMNS}
    if prompt:
        out.update(prompt_evaluated=stats.evaluated, prompt_reused=stats.reused)
    return out
