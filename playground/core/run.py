"""One answer of one lane: `LaneRun` drives a `Backend` through the search loop.

The loop is the same for a model loaded here and a model behind a server: stream a segment, feed
its text to the search loop, and when the model closes a query, inject the results block and
continue; stop on a stop sequence, the token limit, cancel, or an error. What differs is behind
the `Backend` protocol: `LocalBackend` keeps token ids (the KV cache reuses the prefix when a
segment continues), `RemoteBackend` keeps the answer as text and sends a new request to continue.
Tests drive the same loop with a backend that replays a script (tests/test_run.py).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from playground.core.db import ExchangeRecorder, Row, SessionLog
from playground.core.engine import Model, Outcome, Sampling, tokens_within
from playground.core.errors import PlaygroundError
from playground.core.events import (
    Event,
    Finished,
    FinishReason,
    FinishStatus,
    PromptProgress,
    PromptReady,
    SearchDone,
    Started,
    Stats,
    Token,
)
from playground.core.prompts import Conversation, Mode
from playground.core.remote import Json, RemoteConversation, RemoteModel
from playground.core.search.loop import SearchLoop, check_prefill
from playground.core.search.markers import CLOSES, Invented
from playground.core.search.markers import Query as MarkerQuery
from playground.core.search.tool import DEFAULT_BUDGET

if TYPE_CHECKING:
    from playground.core.playground import Lane

logger = logging.getLogger(__name__)

NO_ROOM_BLOCK = (
    "\n<SEARCH_RESULTS>\nsearch failed: no room left in the context window\n</SEARCH_RESULTS>\n"
)


@dataclass
class Prompt:
    """What a backend sends for a question: text, and token ids where the backend has them."""

    text: str
    token_ids: list[int] = field(default_factory=list)
    special: list[bool] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)
    dropped_turns: int = 0
    neutralized: int = 0  # control-token strings defused in the text sent (remote lanes)


@dataclass
class Totals:
    """What a run measured, for the backend's Stats."""

    tokens: int  # tokens generated, over every segment
    first: Outcome | None  # the first segment's outcome (the prompt's evaluation)
    first_token_s: float | None  # seconds from the start to the first token
    total_s: float
    logprobs: list[float]
    all_logprobs: bool  # every token came with its probability


class Backend(Protocol):
    """A lane's model as a LaneRun drives it: prepare a prompt, stream a segment, inject a block,
    continue, keep the answer. *cancel* stops a stream; `Outcome.interrupt` stops it after the
    token just yielded (a closed query)."""

    model_id: str
    reports_cache: bool  # the prompt's evaluated / reused token counts are known

    def count(self, text: str) -> int: ...
    def prepare(self, question: str, sampling: Sampling) -> Prompt: ...
    def exchange_fields(self, prompt: Prompt) -> Row: ...
    def prefill(self, text: str) -> bool: ...
    def stream(
        self, sampling: Sampling, outcome: Outcome, cancel: threading.Event, first: bool, t0: float
    ) -> Iterator[Token]: ...
    def stopped_for_query(self, outcome: Outcome) -> bool: ...
    def keep_segment(self, outcome: Outcome) -> None: ...
    def budget(self) -> int: ...
    def inject(self, block: str) -> tuple[int, str | None]: ...
    def keep_invented(self, outcome: Outcome, shown: str) -> None: ...
    def keep_answer(self, outcome: Outcome) -> None: ...
    def stats(self, totals: Totals) -> Stats | None: ...
    def commit(self) -> None: ...


class LocalBackend:
    """A model loaded here: token ids, the KV cache, the exact context window."""

    reports_cache = True

    def __init__(
        self,
        model: Model,
        conversation: Conversation,
        lane: str,
        threads: int,
        sha256: str | None,
        fresh: bool = False,
    ):
        self.model = model
        self.model_id = model.model_id
        self.conversation = conversation
        self.lane = lane
        self.threads = threads
        self.sha256 = sha256
        self.fresh = fresh
        self.question = ""
        self.prompt = Prompt("")
        self.answer_ids: list[int] = []  # after the prompt: the model's tokens and injected blocks

    def count(self, text: str) -> int:
        return len(self.model.tokenize(text, special=False))

    def prepare(self, question: str, sampling: Sampling) -> Prompt:
        self.question = question
        r = self.conversation.render(question, reserve=min(sampling.max_tokens, 64))
        self.prompt = Prompt(r.text, r.token_ids, r.special, r.stops, r.dropped_turns)
        return self.prompt

    def exchange_fields(self, prompt: Prompt) -> Row:
        m = self.model
        return {
            **_model_fields(m),
            "model_path": str(m.path),
            "model_sha256": self.sha256,
            "model_info": m.info.summary(),
            "n_ctx": m.n_ctx,
            "n_threads": self.threads,
            "n_gpu_layers": m.n_gpu_layers,
            "prompt_text": prompt.text,
            "prompt_token_ids": prompt.token_ids,
            "prompt_special": [int(s) for s in prompt.special],
            "prompt_tokens": len(prompt.token_ids),
            "dropped_turns": prompt.dropped_turns,
        }

    def prefill(self, text: str) -> bool:
        self.answer_ids = self.model.tokenize(text, special=False)
        return True

    def stream(
        self, sampling: Sampling, outcome: Outcome, cancel: threading.Event, first: bool, t0: float
    ) -> Iterator[Token]:
        if first:
            self.model.set_threads(self.threads)
        return self.model.generate(
            self.prompt.token_ids + self.answer_ids,
            sampling,
            outcome,
            cancel,
            self.lane,
            fresh=self.fresh and first,
        )

    def stopped_for_query(self, outcome: Outcome) -> bool:
        return outcome.finish_reason == "tool"

    def keep_segment(self, outcome: Outcome) -> None:
        self.answer_ids += outcome.token_ids

    def budget(self) -> int:
        room = self.model.n_ctx - len(self.prompt.token_ids) - len(self.answer_ids) - 32
        return max(48, min(DEFAULT_BUDGET, room))

    def inject(self, block: str) -> tuple[int, str | None]:
        ids = self.model.tokenize(block, special=False)
        error = None
        if len(self.prompt.token_ids) + len(self.answer_ids) + len(ids) >= self.model.n_ctx - 8:
            ids = self.model.tokenize(NO_ROOM_BLOCK, special=False)
            error = "no room left in the context window"
        self.answer_ids += ids
        return len(ids), error

    def keep_invented(self, outcome: Outcome, shown: str) -> None:
        pieces = [self.model.piece(t) for t in outcome.token_ids]
        self.answer_ids += tokens_within(outcome.token_ids, pieces, shown)

    def keep_answer(self, outcome: Outcome) -> None:
        self.answer_ids += outcome.answer_ids

    def stats(self, totals: Totals) -> Stats | None:
        first = totals.first
        if first is None:
            return None
        ttft = first.stats.time_to_first_token if first.stats else None
        gen_time = totals.total_s - (ttft or 0.0)
        n = totals.tokens
        lps = totals.logprobs
        return Stats(
            prompt_tokens=len(self.prompt.token_ids),
            evaluated=first.evaluated,
            reused=first.reused,
            completion_tokens=n,
            answer_tokens=len(self.answer_ids),
            time_to_first_token=ttft,
            tokens_per_second=(n - 1) / gen_time if n > 1 and gen_time > 0 else None,
            total_seconds=totals.total_s,
            mean_logprob=float(sum(lps) / len(lps)) if lps else None,
        )

    def commit(self) -> None:
        self.conversation.commit(self.question, self.answer_ids, self.prompt.dropped_turns)


class RemoteBackend:
    """A model behind an OpenAI-compatible server: the prompt goes as text (completions) or
    messages (chat). After a search the results are appended to the answer so far and a new
    request continues it (the server's own prompt cache, where it has one, keeps that cheap)."""

    reports_cache = False

    def __init__(self, model: RemoteModel, conversation: RemoteConversation, lane: str, mode: Mode):
        self.model = model
        self.model_id = model.model_id
        self.conversation = conversation
        self.lane = lane
        self.endpoint = "chat" if mode == "chat" else "completions"
        self.question = ""
        self.raw = ""  # what the model wrote plus the results blocks: the assistant's text so far

    def count(self, text: str) -> int:
        return max(1, len(text) // 4)  # no tokenizer here: about 4 characters a token

    def request(self, answer_so_far: str) -> Json:
        conv = self.conversation
        if self.endpoint == "chat":
            messages = conv.messages(self.question)
            if answer_so_far:
                messages += [
                    {"role": "assistant", "content": answer_so_far},
                    {"role": "user", "content": "Continue your answer using these search results."},
                ]
            return {"messages": messages}
        return {"prompt": conv.prompt_text(self.question) + answer_so_far}

    def prepare(self, question: str, sampling: Sampling) -> Prompt:
        self.question = question
        payload = self.request("")
        if self.endpoint == "chat":
            text = json.dumps(payload["messages"], ensure_ascii=False)
        else:
            text = payload["prompt"]
        conv = self.conversation
        return Prompt(text, stops=conv.stops(), neutralized=conv.neutralized)

    def exchange_fields(self, prompt: Prompt) -> Row:
        m = self.model
        return {
            **_model_fields(m),
            "model_path": m.url,
            "model_info": {"remote": m.url, "model": m.remote_model, "endpoint": self.endpoint},
            "n_ctx": m.n_ctx,
            "prompt_text": prompt.text,
            "prompt_token_ids": [],
            "prompt_special": [],
        }

    def prefill(self, text: str) -> bool:
        return False  # not offered for servers

    def stream(
        self, sampling: Sampling, outcome: Outcome, cancel: threading.Event, first: bool, t0: float
    ) -> Iterator[Token]:
        request = self.request(self.raw)
        for ev in self.model.generate(request, self.endpoint, sampling, outcome, cancel, self.lane):
            yield replace(ev, elapsed=time.perf_counter() - t0)

    def stopped_for_query(self, outcome: Outcome) -> bool:
        return True  # a closed query ends the stream whatever the server says

    def keep_segment(self, outcome: Outcome) -> None:
        self.raw += outcome.text[: _marker_end(outcome.text)]

    def budget(self) -> int:
        return DEFAULT_BUDGET

    def inject(self, block: str) -> tuple[int, str | None]:
        self.raw += block
        return self.count(block), None

    def keep_invented(self, outcome: Outcome, shown: str) -> None:
        pass

    def keep_answer(self, outcome: Outcome) -> None:
        self.raw += outcome.text

    def stats(self, totals: Totals) -> Stats | None:
        return Stats.streamed(
            totals.tokens,
            totals.first_token_s,
            totals.total_s,
            totals.logprobs,
            complete=totals.all_logprobs,
        )

    def commit(self) -> None:
        self.conversation.turns.append((self.question, self.raw))


def _model_fields(m: Model | RemoteModel) -> Row:
    return {"model_id": m.model_id, "model_kind": m.spec.kind, "model_family": m.family}


def _marker_end(text: str) -> int:
    """Where the first closing search marker ends in *text* (what follows it is dropped)."""
    m = re.search("|".join(re.escape(c) for c in CLOSES), text, re.IGNORECASE)
    return m.end() if m else len(text)


@dataclass
class LaneResult:
    lane: Lane
    exchange_id: int | None
    status: FinishStatus
    finish_reason: FinishReason
    text: str
    stats: Stats | None
    error: str | None


class LaneRun:
    """One answer: the exchange row, the event stream, the search loop, the final figures."""

    def __init__(
        self,
        lane: Lane,
        backend: Backend,
        search: SearchLoop,
        prompt: Prompt,
        sampling: Sampling,
        emit: Callable[[Event], None],
        log: SessionLog | None = None,
        fields: Row | None = None,
    ):
        self.lane = lane
        self.backend = backend
        self.search = search
        self.prompt = prompt
        stops = list(dict.fromkeys([*prompt.stops, *sampling.stop]))
        self.sampling = replace(sampling, stop=stops)
        self.emit = emit
        self.log = log
        self.fields = fields or {}
        self.recorder: ExchangeRecorder | None = None
        self.exchange_id: int | None = None
        self.searches: list[SearchDone] = []
        self.visible = ""
        self.n = 0  # tokens generated so far
        self.logprobs: list[float] = []
        self.all_logprobs = True
        self.first: Outcome | None = None
        self.first_token_s: float | None = None
        self.announced = False
        self.resume_pending: int | None = None  # search id whose resume cost is measured next
        self.finish: FinishReason = "length"
        self.status: FinishStatus = "complete"
        self.error: str | None = None
        self.t0 = time.perf_counter()

    def run(self, first_search: SearchDone | None = None, prefill: str = "") -> LaneResult:
        """Run to the end; generation errors end the answer with status "error"."""
        self._open()
        if not self.backend.reports_cache:
            self._announce(Outcome())
        if first_search is not None:
            self._record(first_search)
        self.t0 = time.perf_counter()
        try:
            if not prefill or not self.backend.prefill(prefill) or self._prefill(prefill):
                self._loop()
            for item in self.search.release(self.n, len(self.visible), self.t0):
                if isinstance(item, Token):
                    self._token(item)
                else:
                    self._record(item)
        except PlaygroundError as e:  # an engine's error, a refused prefill
            self.status, self.error, self.finish = "error", str(e), "error"
        except Exception as e:  # a bug or third-party code: the row still ends as an error
            logger.exception("lane %s failed", self.lane.spec.text)
            self.status, self.error, self.finish = "error", f"{type(e).__name__}: {e}", "error"
        return self._close()

    # -- the stream ------------------------------------------------------------------------
    def _open(self) -> None:
        b = self.backend
        if self.log is not None:
            fields = {**self.fields, "stop": self.sampling.stop, **b.exchange_fields(self.prompt)}
            self.recorder = ExchangeRecorder(self.log, fields, server=not b.reports_cache)
            self.exchange_id = self.recorder.id
        self.lane.last_exchange_id = self.exchange_id
        spec = self.lane.spec
        self._emit(
            Started(
                self.lane.name,
                self.exchange_id,
                b.model_id,
                spec.mode,
                spec.abstain,
                self.sampling.as_dict(),
                spec.search,
            )
        )

    def _announce(self, outcome: Outcome) -> None:
        """The prompt is in the model: say what it received and what came from the cache."""
        self.announced = True
        p = self.prompt
        self._emit(
            PromptReady(
                self.lane.name,
                self.exchange_id,
                p.text,
                p.token_ids,
                p.special,
                outcome.evaluated,
                outcome.reused,
                p.dropped_turns,
                p.neutralized,
            )
        )

    def _prompt_progress(self, evaluated: int, total: int) -> None:
        self.emit(PromptProgress(self.lane.name, evaluated, total))  # not logged: only for the eye

    def _prefill(self, text: str) -> bool:
        """The answer starts with *text*, as if the model had written it: a search call it ends
        with runs (see check_prefill). Returns whether generation goes on."""
        check_prefill(text)
        shown, query, _ = self.search.feed(text)
        self._token(Token(self.lane.name, 0, -1, "", shown, 0.0, [], 0.0))
        return query is None or self._answer(query, Outcome())

    def _emit(self, ev: Event) -> Event:
        """The recorder sees every event first (a search comes back with its row id)."""
        if self.recorder is not None:
            ev = self.recorder(ev)
        self.emit(ev)
        return ev

    def _token(self, ev: Token) -> None:
        self.visible += ev.text
        self._emit(ev)

    def _record(self, done: SearchDone) -> None:
        recorded = self._emit(done)  # the recorder gives it its row id
        self.searches.append(recorded if isinstance(recorded, SearchDone) else done)

    def _loop(self) -> None:
        """Segments until the answer ends: each closed query adds a results block and continues."""
        while True:
            outcome = Outcome()
            if not self.announced:  # the question's prompt: say how far a long one got
                outcome.on_prompt = self._prompt_progress
            left = self.sampling.max_tokens - self.n
            seg = replace(self.sampling, max_tokens=max(1, left))
            try:
                query, invented, shown = self._segment(outcome, seg)
            finally:  # a stream cut mid-answer still counts the tokens it sent
                self.n += len(outcome.token_ids)
            if query is not None and self.backend.stopped_for_query(outcome):
                if self._answer(query, outcome):
                    continue
                return
            if invented is not None:
                self.backend.keep_invented(outcome, shown)
                self._record(self.search.invented(len(self.visible), self.n))
                self.finish = "invented_results"
                return
            self.backend.keep_answer(outcome)
            self.finish = outcome.finish_reason
            return

    def _segment(
        self, outcome: Outcome, sampling: Sampling
    ) -> tuple[MarkerQuery | None, Invented | None, str]:
        """Stream one segment. Returns (query, invented, text shown in this segment)."""
        query: MarkerQuery | None = None
        invented: Invented | None = None
        shown_here = ""
        started = False
        first = self.first is None
        for ev in self.backend.stream(sampling, outcome, self.lane.cancel, first, self.t0):
            if not started:
                started = True
                self._segment_started(outcome)
            shown, q, inv = self.search.feed(ev.text)
            query, invented = query or q, invented or inv
            if query is not None or invented is not None:
                outcome.interrupt = True
            if ev.token_id != -1:  # -1: released text, not a token
                if ev.logprob == ev.logprob:
                    self.logprobs.append(ev.logprob)
                else:  # NaN: a server sent no probability
                    self.all_logprobs = False
            shown_here += shown
            self._token(replace(ev, index=self.n + ev.index, text=shown))
        if self.first is None:  # no token at all (immediate end of generation)
            self.first = outcome
            if not self.announced:
                self._announce(outcome)
        return query, invented, shown_here

    def _segment_started(self, outcome: Outcome) -> None:
        if self.first_token_s is None:
            self.first_token_s = time.perf_counter() - self.t0
        if self.first is None:
            self.first = outcome
            if not self.announced:
                self._announce(outcome)
        elif self.resume_pending is not None and self.recorder is not None:
            self.recorder.resumed(self.resume_pending, outcome.evaluated)
            self.resume_pending = None

    def _answer(self, query: MarkerQuery, outcome: Outcome) -> bool:
        """Answer the query the segment ended with; returns whether generation continues."""
        b = self.backend
        b.keep_segment(outcome)
        position = len(self.visible)
        copied = self.search.copied(query.query)
        kind, block, results, err, secs, name = self.search.answer(
            query, position, b.count, b.budget()
        )
        injected, failure = b.inject(block)
        done = SearchDone(
            self.lane.name,
            query.query,
            kind,
            name,
            [r.as_dict() for r in results or []],
            err or failure,
            secs,
            position,
            self.n,
            injected,
            copied=copied,
        )
        self._record(done)
        if b.reports_cache:
            self.resume_pending = self.searches[-1].search_id
        self.search.resume()
        if self.n >= self.sampling.max_tokens:
            self.finish = "length"
            return False
        if self.lane.cancel.is_set():
            self.finish = "cancelled"
            return False
        return True

    # -- the end ---------------------------------------------------------------------------
    def _close(self) -> LaneResult:
        if self.finish == "cancelled":
            self.status = "cancelled"
        totals = Totals(
            self.n,
            self.first,
            self.first_token_s,
            time.perf_counter() - self.t0,
            self.logprobs,
            self.all_logprobs,
        )
        stats = self.backend.stats(totals)
        if self.status != "error":
            self.backend.commit()
            self.lane.turns += 1
        ev = Finished(
            self.lane.name,
            self.exchange_id,
            self.status,
            self.finish,
            self.visible,
            stats,
            self.error,
        )
        self._emit(ev)
        return LaneResult(
            self.lane, self.exchange_id, self.status, self.finish, self.visible, stats, self.error
        )
