"""Lanes side by side: a session's lanes over a shared model pool, each answer run by a LaneRun."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from playground.core import cpuload
from playground.core.catalog import Catalog, ModelSpec
from playground.core.db import Row, SessionLog
from playground.core.db.recorder import SEARCH_COLUMNS
from playground.core.engine import Sampling
from playground.core.errors import PlaygroundError
from playground.core.events import (
    Event,
    Finished,
    LaneNotReady,
    ModelLoaded,
    ModelLoading,
    SearchDone,
    Started,
)
from playground.core.lanespec import LaneSpec
from playground.core.pool import LoadedModel, ModelPool
from playground.core.prompts import Conversation, TooLong
from playground.core.remote import RemoteConversation, RemoteModel
from playground.core.run import Backend, LaneResult, LaneRun, LocalBackend, RemoteBackend
from playground.core.search.backends import (
    Corpus,
    RecordedSearch,
    Result,
    SearchError,
    WebSearch,
    make_backend,
)
from playground.core.search.loop import SearchLoop

logger = logging.getLogger(__name__)
JOIN_TIMEOUT_S = 3600.0


_lane_keys = iter(range(1_000_000_000))


@dataclass
class Lane:
    """One column: a model, a mode, its own settings and its own conversation."""

    index: int
    spec: LaneSpec
    model_spec: ModelSpec | None = None
    model: LoadedModel | None = None
    conversation: Conversation | RemoteConversation | None = None
    error: str | None = None
    sampling: Sampling | None = None  # None: the settings given to ask()
    cancel: threading.Event = field(default_factory=threading.Event)
    turns: int = 0
    last_exchange_id: int | None = None
    key: str = field(default_factory=lambda: f"lane-{next(_lane_keys)}")

    @property
    def name(self) -> str:
        """The stable key events carry to say which lane they belong to."""
        return self.key


def _conversation(lane: Lane) -> Conversation | RemoteConversation:
    """A fresh conversation for the lane's model: token ids for a local model, text for a server."""
    assert lane.model is not None
    if isinstance(lane.model, RemoteModel):
        return RemoteConversation(lane.spec.mode_spec())
    return Conversation(lane.spec.mode_spec(), lane.model)


class Playground:
    """A session: lanes side by side over a shared model pool, logged to a SessionLog."""

    def __init__(
        self,
        catalog: Catalog,
        lanes: list[LaneSpec],
        log: SessionLog | None = None,
        pool: ModelPool | None = None,
        session_id: str | None = None,
        search_backend: str = "offline",
        corpus_path: Path | None = None,
        search_proxy: str | None = None,
    ):
        self.catalog = catalog
        self.pool = pool or ModelPool()
        self.search_backend = search_backend
        self.corpus_path = corpus_path
        self.search_proxy = search_proxy
        self._searcher: Corpus | WebSearch | RecordedSearch | None = None
        self._searcher_lock = threading.Lock()
        self.log = log
        self.lanes: list[Lane] = []
        for spec in lanes:
            self.add_lane(spec)
        self.session_id = session_id
        self.turn = 0
        # Evaluate every local prompt from an empty KV cache, so an answer never depends on what
        # the lane answered before (probe runs: the same item gives the same answer and the
        # same probabilities in any order, resumed or not). Slower: nothing is reused.
        self.fresh_prompts = False

    # -- lanes -----------------------------------------------------------------------------
    def _resolve(self, lane: Lane) -> None:
        lane.model = None
        lane.conversation = None
        lane.error = None
        lane.model_spec = None
        try:
            lane.model_spec = self.catalog.resolve(lane.spec.model)
        except PlaygroundError as e:
            lane.error = str(e)

    def add_lane(self, spec: LaneSpec) -> Lane:
        lane = Lane(len(self.lanes), spec)
        self._resolve(lane)
        self.lanes.append(lane)
        return lane

    def remove_lane(self, index: int) -> None:
        lane = self.lanes.pop(index)
        lane.cancel.set()
        self._reindex()

    def move_lane(self, index: int, delta: int) -> int:
        j = max(0, min(len(self.lanes) - 1, index + delta))
        self.lanes.insert(j, self.lanes.pop(index))
        self._reindex()
        return j

    def _reindex(self) -> None:
        for i, lane in enumerate(self.lanes):
            lane.index = i

    def set_lane_spec(self, index: int, spec: LaneSpec) -> Lane:
        """Change a lane's model or mode: its conversation starts afresh on the next message."""
        lane = self.lanes[index]
        lane.spec = spec
        self._resolve(lane)
        lane.turns = 0
        return lane

    def begin_turn(self) -> int:
        """Start a new turn (a question sent to the lanes); returns its number."""
        self.ensure_session()
        turn = self.turn
        self.turn += 1
        return turn

    def run_lane(
        self,
        lane: Lane,
        question: str,
        sampling: Sampling,
        emit: Callable[[Event], None],
        threads: int,
        turn: int,
        parent_id: int | None = None,
        prefill: str = "",
    ) -> LaneResult:
        """Run one lane to the end (blocking; call it from a worker thread). Never raises."""
        lane.cancel.clear()
        return self._run_lane_safe(
            lane, question, lane.sampling or sampling, emit, threads, turn, parent_id, prefill
        )

    def searcher(self) -> Corpus | WebSearch | RecordedSearch:
        """The search backend, created on first use (so lanes without search never touch it)."""
        with self._searcher_lock:
            if self._searcher is None:
                self._searcher = make_backend(
                    self.search_backend, self.log, self.corpus_path, self.search_proxy
                )
            return self._searcher

    def run_search(self, query: str) -> tuple[list[Result] | None, str | None, float, str]:
        """(results, error, seconds, backend name); never raises for a failed search."""
        t0 = time.perf_counter()
        name = self.search_backend
        try:
            backend = self.searcher()
            name = backend.name
            return backend.search(query), None, time.perf_counter() - t0, name
        except SearchError as e:
            return None, str(e), time.perf_counter() - t0, name
        except Exception as e:  # a backend is third-party code: report, never crash the lane
            return None, f"{type(e).__name__}: {e}", time.perf_counter() - t0, name

    def load_lane(self, lane: Lane, emit: Callable[[Event], None]) -> bool:
        """Load the lane's model and check its mode works with it (blocking; from a worker).
        Problems are reported as a LaneNotReady event; returns whether the lane is ready."""
        try:
            self._load(lane, emit)
            assert lane.model is not None
            if lane.conversation is None:
                lane.conversation = _conversation(lane)
            return True
        except (PlaygroundError, OSError) as e:
            model_id = lane.model_spec.id if lane.model_spec else lane.spec.model
            emit(LaneNotReady(lane.name, model_id, str(e)))
            return False

    def undo_turn(self, lane: Lane) -> str | None:
        """Take back a lane's last turn (to regenerate or edit it); returns its question."""
        if lane.conversation is None or not lane.conversation.turns:
            return None
        turn = lane.conversation.turns.pop()
        lane.turns -= 1
        return turn[0] if isinstance(turn, tuple) else turn.question  # a server's: (q, answer)

    def ensure_session(self) -> str | None:
        if self.log is not None and self.session_id is None:
            self.session_id = self.log.new_session([lane.spec.text for lane in self.lanes])
        return self.session_id

    def reset_conversations(self) -> None:
        """Every lane starts a fresh conversation on its next question (same session)."""
        for lane in self.lanes:
            lane.conversation = None
            lane.turns = 0

    def new_session(self) -> None:
        self.session_id = None
        self.turn = 0
        for lane in self.lanes:
            lane.conversation = None
            lane.turns = 0

    def threads_per_lane(self, lanes: list[Lane]) -> int:
        """llama.cpp threads each lane gets: the cores no other process keeps busy, shared among
        the models that run at once, never fewer than one (see core/cpuload.py for why)."""
        models = {lane.model_spec.id for lane in lanes if lane.model_spec is not None}
        return max(1, cpuload.WATCH.free_cores() // max(1, len(models)))

    def ask(
        self,
        question: str,
        sampling: Sampling,
        emit: Callable[[Event], None] | None = None,
        lanes: list[int] | None = None,
        timeout: float = JOIN_TIMEOUT_S,
        prefill: str = "",
    ) -> list[LaneResult]:
        """Send *question* to the lanes (all, or those indexed) at once; block until all finish.
        *prefill* starts every answer with that text, as if the model had written it (a way to
        steer it, e.g. into a search)."""
        emit = emit or (lambda e: None)
        self.ensure_session()
        targets = [self.lanes[i] for i in lanes] if lanes is not None else list(self.lanes)
        turn = self.begin_turn()
        threads = self.threads_per_lane(targets)
        results: dict[int, LaneResult] = {}
        workers = []
        for lane in targets:
            lane.cancel.clear()
            run = functools.partial(
                self._run_lane_safe, lane, question, lane.sampling or sampling, emit, threads, turn
            )
            t = threading.Thread(
                target=lambda lane=lane, run=run: results.__setitem__(
                    lane.index, run(prefill=prefill)
                ),
                name=f"lane-{lane.index}",
                daemon=True,
            )
            workers.append(t)
            t.start()
        deadline = time.monotonic() + timeout
        for t in workers:
            t.join(max(0.0, deadline - time.monotonic()))
        for lane in targets:
            if lane.index not in results:
                lane.cancel.set()
                results[lane.index] = LaneResult(
                    lane, None, "error", "error", "", None, "timed out"
                )
        return [results[lane.index] for lane in targets]

    def cancel(self, lane_index: int | None = None) -> None:
        for lane in self.lanes:
            if lane_index is None or lane.index == lane_index:
                lane.cancel.set()

    def _run_lane_safe(
        self,
        lane: Lane,
        question: str,
        sampling: Sampling,
        emit: Callable[[Event], None],
        threads: int,
        turn: int,
        parent_id: int | None = None,
        prefill: str = "",
    ) -> LaneResult:
        try:
            return self._run_lane(lane, question, sampling, emit, threads, turn, parent_id, prefill)
        except Exception as e:  # never let one lane take the others down
            msg = str(e) if isinstance(e, PlaygroundError) else f"{type(e).__name__}: {e}"
            if not isinstance(e, PlaygroundError):
                logger.exception("lane %s failed", lane.spec.text)
            emit(Finished(lane.name, None, "error", "error", "", None, msg))
            return LaneResult(lane, None, "error", "error", "", None, msg)

    def _load(self, lane: Lane, emit: Callable[[Event], None]) -> float:
        if lane.error and lane.model_spec is None:
            raise PlaygroundError(lane.error)
        assert lane.model_spec is not None
        if lane.model is None:
            if self.pool.loaded(lane.model_spec.id) is None:
                emit(ModelLoading(lane.name, lane.model_spec.id))
            lane.model, seconds = self.pool.get(lane.model_spec)
            emit(ModelLoaded(lane.name, lane.model_spec.id, seconds))
            return seconds
        return 0.0

    def _run_lane(
        self,
        lane: Lane,
        question: str,
        sampling: Sampling,
        emit: Callable[[Event], None],
        threads: int,
        turn: int,
        parent_id: int | None = None,
        prefill: str = "",
    ) -> LaneResult:
        fields: Row = {
            "parent_id": parent_id,
            "options": {
                "search": lane.spec.search,
                "prefill": prefill or None,
                "search_backend": self.search_backend if lane.spec.search else None,
            },
            "session_id": self.session_id,
            "turn": turn,
            "lane_index": lane.index,
            "lane": lane.spec.text,
            "mode": lane.spec.mode,
            "abstain_t": lane.spec.abstain,
            "question": question,
            **{k: v for k, v in sampling.as_dict().items() if k != "stop"},
        }
        search = SearchLoop(lane.name, lane.spec.search, self.run_search, self.search_backend, emit)
        try:
            load_seconds = self._load(lane, emit)
            backend = self.backend_for(lane, threads)
            model_question, first_search = search.first(question, backend.count)
            prompt = backend.prepare(model_question, sampling)
        except TooLong as e:
            msg = str(search.too_long(e, question, backend.count))
            return self._not_started(lane, fields, msg, emit, first_search)
        except (PlaygroundError, OSError) as e:
            return self._not_started(lane, fields, str(e), emit)
        run = LaneRun(
            lane,
            backend,
            search,
            prompt,
            sampling,
            emit,
            self.log,
            {**fields, "load_seconds": load_seconds},
        )
        return run.run(first_search, prefill)

    def backend_for(self, lane: Lane, threads: int) -> Backend:
        """The lane's model behind the protocol a LaneRun drives (tests give a fake one)."""
        model = lane.model
        assert model is not None
        if lane.conversation is None:
            lane.conversation = _conversation(lane)
        conversation = lane.conversation
        if isinstance(model, RemoteModel):
            assert isinstance(conversation, RemoteConversation)
            return RemoteBackend(model, conversation, lane.name, lane.spec.mode)
        assert isinstance(conversation, Conversation)
        return LocalBackend(
            model,
            conversation,
            lane.name,
            threads,
            self.pool.sha256(model) if self.log is not None else None,
            fresh=self.fresh_prompts,
        )

    def _not_started(
        self,
        lane: Lane,
        fields: Row,
        msg: str,
        emit: Callable[[Event], None],
        search: SearchDone | None = None,
    ) -> LaneResult:
        """The lane could not start (no model, a prompt that does not fit): an error exchange,
        with the search-first results that did not fit (*search*)."""
        lane.error = msg if lane.model is None else None
        ex_id = None
        if self.log is not None:
            spec = lane.model_spec
            ex_id = self.log.start_exchange(
                **fields,
                model_id=spec.id if spec else lane.spec.model,
                model_kind=spec.kind if spec else None,
                stop=[],
            )
            self.log.update_exchange(ex_id, status="error", finish_reason="error", error=msg)
            if search is not None:
                self.log.update_exchange(ex_id, searches=1)
                self.log.add_search(ex_id, **{k: getattr(search, k) for k in SEARCH_COLUMNS})
        emit(Started(lane.name, ex_id, lane.spec.model, lane.spec.mode, lane.spec.abstain))
        emit(Finished(lane.name, ex_id, "error", "error", "", None, msg))
        return LaneResult(lane, ex_id, "error", "error", "", None, msg)
