"""Lanes: MODEL:MODE[+abstain@T] specs, a pool of loaded models, and running lanes side by side."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from playground.core.catalog import Catalog, ModelSpec
from playground.core.engine import EngineError, Model, Outcome, Sampling, _ids_within, cpu_count
from playground.core.errors import PlaygroundError
from playground.core.events import (
    Event,
    Finished,
    LaneNotReady,
    ModelLoaded,
    ModelLoading,
    PromptReady,
    SearchDone,
    SearchStarted,
    Started,
    Stats,
    Token,
)
from playground.core.gguf import file_sha256
from playground.core.log import ExchangeWriter, SessionLog
from playground.core.prompts import MODES, Conversation, ModeSpec
from playground.core.remote import RemoteConversation, RemoteModel
from playground.core.search.backends import Result, SearchError, make_backend
from playground.core.search.markers import Invented, MarkerParser, Query, Unterminated
from playground.core.search.markers import Text as MarkerText
from playground.core.search.tool import DEFAULT_BUDGET, LIMIT_BLOCK, MAX_SEARCHES, results_block

DEFAULT_LANES = "base:few-shot,tuned:chat"
logger = logging.getLogger(__name__)
JOIN_TIMEOUT_S = 3600.0


class LaneSpecError(PlaygroundError):
    pass


@dataclass(frozen=True)
class LaneSpec:
    model: str
    mode: str
    abstain: float | None = None
    search: str | None = None  # None | "tool" (+search) | "first" (+search-first)

    @property
    def text(self) -> str:
        return f"{self.model}:{self.mode_spec().label}"

    def mode_spec(self) -> ModeSpec:
        return ModeSpec(self.mode, self.abstain, search=self.search)


LANE_HELP = "write MODEL:MODE[+abstain@T][+search|+search-first], e.g. base:few-shot or tuned:chat+abstain@0.75"


def parse_lane(text: str) -> LaneSpec:
    """Parse `MODEL:MODE[+abstain@T][+search|+search-first]`, e.g. `tuned:chat+abstain@0.75`."""
    raw = text.strip()
    model, sep, rest = raw.rpartition(":")
    if not sep or not model or not rest:
        raise LaneSpecError(f"invalid lane {text!r}: {LANE_HELP}")
    mode, *options = rest.split("+")
    if mode not in MODES:
        raise LaneSpecError(
            f"invalid lane {text!r}: unknown mode {mode!r} (use one of {', '.join(MODES)})"
        )
    abstain = None
    search = None
    for opt in options:
        if opt in ("search", "search-first"):
            if search is not None:
                raise LaneSpecError(
                    f"invalid lane {text!r}: choose one of +search and +search-first"
                )
            search = "tool" if opt == "search" else "first"
            continue
        m = re.fullmatch(r"abstain(?:@(.*))?", opt)
        if not m:
            raise LaneSpecError(
                f"invalid lane {text!r}: unknown option {opt!r} (known: abstain@T, search, search-first)"
            )
        if m.group(1) is None:
            raise LaneSpecError(
                f"invalid lane {text!r}: abstain needs a confidence target, e.g. abstain@0.75"
            )
        try:
            t = float(m.group(1))
        except ValueError:
            raise LaneSpecError(f"invalid lane {text!r}: {m.group(1)!r} is not a number") from None
        if not 0.0 < t < 1.0:
            raise LaneSpecError(
                f"invalid lane {text!r}: the confidence target must be between 0 and 1 (exclusive), not {t:g}"
            )
        abstain = t
    return LaneSpec(model=model, mode=mode, abstain=abstain, search=search)


def parse_lanes(text: str) -> list[LaneSpec]:
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise LaneSpecError("no lanes given: e.g. --lanes base:few-shot,tuned:chat")
    return [parse_lane(p) for p in parts]


class ModelPool:
    """Loaded models by id: one `Llama` per model, shared by the lanes that use it."""

    def __init__(self, n_gpu_layers: int | None = None):
        self.n_gpu_layers = n_gpu_layers
        self._models: dict[str, Model] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._sha: dict[str, str] = {}

    def loaded(self, model_id: str) -> Model | None:
        return self._models.get(model_id)

    def get(self, spec: ModelSpec) -> tuple[Model, float]:
        """The loaded model and the seconds this call spent loading it (0 if it was loaded)."""
        with self._lock:
            lock = self._locks.setdefault(spec.id, threading.Lock())
        with lock:
            if spec.id in self._models:
                return self._models[spec.id], 0.0
            t0 = time.perf_counter()
            if spec.is_remote:
                model = RemoteModel(spec)
                model.check()
            else:
                model = Model(spec, n_gpu_layers=self.n_gpu_layers)
            self._models[spec.id] = model
            return model, time.perf_counter() - t0

    def sha256(self, model: Model) -> str | None:
        if isinstance(model, RemoteModel):
            return None
        if model.model_id not in self._sha:
            self._sha[model.model_id] = file_sha256(model.path)
        return self._sha[model.model_id]

    def close(self) -> None:
        for m in self._models.values():
            m.close()
        self._models.clear()


_lane_keys = iter(range(1_000_000_000))


@dataclass
class Lane:
    """One column: a model, a mode, its own settings and its own conversation."""

    index: int
    spec: LaneSpec
    model_spec: ModelSpec | None = None
    model: Model | None = None
    conversation: Conversation | None = None
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


@dataclass
class LaneResult:
    lane: Lane
    exchange_id: int | None
    status: str
    finish_reason: str
    text: str
    stats: object | None
    error: str | None


def _conversation(lane: Lane):
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
        corpus_path=None,
        search_proxy: str | None = None,
    ):
        self.catalog = catalog
        self.pool = pool or ModelPool()
        self.search_backend = search_backend
        self.corpus_path = corpus_path
        self.search_proxy = search_proxy
        self._searcher = None
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

    def lane_by_key(self, key: str) -> Lane | None:
        return next((lane for lane in self.lanes if lane.key == key), None)

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
        results: dict[int, LaneResult] = {}
        lane.cancel.clear()
        self._run_lane_safe(
            lane,
            question,
            lane.sampling or sampling,
            emit,
            threads,
            turn,
            results,
            parent_id,
            prefill,
        )
        return results[lane.index]

    def searcher(self):
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
        return turn.question

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
        models = {lane.model_spec.id for lane in lanes if lane.model_spec is not None}
        return max(1, cpu_count() // max(1, len(models)))

    def ask(
        self,
        question: str,
        sampling: Sampling,
        emit: Callable[[Event], None] | None = None,
        lanes: list[int] | None = None,
        timeout: float = JOIN_TIMEOUT_S,
        prefill: str = "",
    ) -> list[LaneResult]:
        """*prefill* starts every answer with that text, as if the model had written it (a way
        to steer it, e.g. into a search)."""
        """Send *question* to the lanes (all, or those indexed) at once; block until all finish."""
        emit = emit or (lambda e: None)
        self.ensure_session()
        targets = [self.lanes[i] for i in lanes] if lanes is not None else list(self.lanes)
        turn = self.begin_turn()
        threads = self.threads_per_lane(targets)
        results: dict[int, LaneResult] = {}
        workers = []
        for lane in targets:
            lane.cancel.clear()
            t = threading.Thread(
                target=self._run_lane_safe,
                args=(
                    lane,
                    question,
                    lane.sampling or sampling,
                    emit,
                    threads,
                    turn,
                    results,
                    None,
                    prefill,
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
        self, lane, question, sampling, emit, threads, turn, results, parent_id=None, prefill=""
    ) -> None:
        try:
            results[lane.index] = self._run_lane(
                lane, question, sampling, emit, threads, turn, parent_id, prefill
            )
        except Exception as e:  # never let one lane take the others down
            msg = str(e) if isinstance(e, PlaygroundError) else f"{type(e).__name__}: {e}"
            if not isinstance(e, PlaygroundError):
                logger.exception("lane %s failed", lane.spec.text)
            emit(Finished(lane.name, None, "error", "error", "", None, msg))
            results[lane.index] = LaneResult(lane, None, "error", "error", "", None, msg)

    def _load(self, lane: Lane, emit) -> float:
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
        emit,
        threads: int,
        turn: int,
        parent_id: int | None = None,
        prefill: str = "",
    ) -> LaneResult:
        base_fields = {
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
        try:
            load_seconds = self._load(lane, emit)
            model = lane.model
            assert model is not None
            if lane.conversation is None:
                lane.conversation = _conversation(lane)
            if isinstance(model, RemoteModel):
                return self._run_remote(lane, question, sampling, emit, base_fields, load_seconds)
            model_question, first_search = self._search_first(
                lane, question, emit, lambda t: len(model.tokenize(t, special=False))
            )
            rendered = lane.conversation.render(
                model_question, reserve=min(sampling.max_tokens, 64)
            )
        except (PlaygroundError, OSError) as e:
            msg = str(e)
            lane.error = msg if lane.model is None else None
            ex_id = None
            if self.log is not None:
                spec = lane.model_spec
                ex_id = self.log.start_exchange(
                    **base_fields,
                    model_id=spec.id if spec else lane.spec.model,
                    model_kind=spec.kind if spec else None,
                    stop=[],
                )
                self.log.update_exchange(ex_id, status="error", finish_reason="error", error=msg)
            emit(Started(lane.name, ex_id, lane.spec.model, lane.spec.mode, lane.spec.abstain))
            emit(Finished(lane.name, ex_id, "error", "error", "", None, msg))
            return LaneResult(lane, ex_id, "error", "error", "", None, msg)

        stops = list(dict.fromkeys([*rendered.stops, *sampling.stop]))
        run_sampling = Sampling(**{**sampling.as_dict(), "stop": stops})
        writer = None
        ex_id = None
        if self.log is not None:
            ex_id = self.log.start_exchange(
                **base_fields,
                stop=stops,
                model_id=model.model_id,
                model_kind=model.spec.kind,
                model_family=model.family,
                model_path=str(model.path),
                model_sha256=self.pool.sha256(model),
                model_info=model.info.summary(),
                n_ctx=model.n_ctx,
                n_threads=threads,
                n_gpu_layers=model.n_gpu_layers,
                prompt_text=rendered.text,
                prompt_token_ids=rendered.token_ids,
                prompt_special=[int(s) for s in rendered.special],
                prompt_tokens=len(rendered.token_ids),
                dropped_turns=rendered.dropped_turns,
                load_seconds=load_seconds,
            )
            writer = ExchangeWriter(self.log, ex_id)
        lane.last_exchange_id = ex_id
        emit(
            Started(
                lane.name,
                ex_id,
                model.model_id,
                lane.spec.mode,
                lane.spec.abstain,
                run_sampling.as_dict(),
                lane.spec.search,
            )
        )
        status, error = "complete", None
        searches: list[tuple[int | None, SearchDone]] = []

        def record(done: SearchDone) -> None:
            done = self._log_search(ex_id, done)
            searches.append((done.search_id, done))
            emit(done)

        if first_search is not None:
            record(first_search)

        def announce(outcome: Outcome) -> None:
            """The prompt is in the model: say what it received and what came from the cache."""
            emit(
                PromptReady(
                    lane.name,
                    ex_id,
                    rendered.text,
                    rendered.token_ids,
                    rendered.special,
                    outcome.evaluated,
                    outcome.reused,
                    rendered.dropped_turns,
                )
            )
            if writer:
                writer.streaming(prompt_evaluated=outcome.evaluated, prompt_reused=outcome.reused)

        t_start = time.perf_counter()
        answer_ids: list[int] = []  # after the prompt: the model's tokens and injected results
        visible = ""
        logprobs: list[float] = []
        n_generated = 0
        parser = MarkerParser() if lane.spec.search == "tool" else None
        if prefill:
            answer_ids = model.tokenize(prefill, special=False)
            shown = prefill
            if parser is not None:
                shown = "".join(i.text for i in parser.feed(prefill) if isinstance(i, MarkerText))
            visible = shown
            if writer:
                writer.token(-1, -1, "", 0.0, [], 0.0, shown)
            emit(Token(lane.name, 0, -1, "", shown, 0.0, [], 0.0))
        first_outcome: Outcome | None = None
        finish = "length"
        resume_pending: int | None = None  # search id whose resume cost is measured next
        try:
            model.set_threads(threads)
            while True:
                outcome = Outcome()
                left = run_sampling.max_tokens - n_generated
                seg = Sampling(**{**run_sampling.as_dict(), "max_tokens": max(1, left)})
                query = invented = None
                seg_visible = ""
                started = False
                for ev in model.generate(
                    rendered.token_ids + answer_ids,
                    seg,
                    outcome,
                    lane.cancel,
                    lane.name,
                    fresh=self.fresh_prompts and first_outcome is None,
                ):
                    if not started:
                        started = True
                        if first_outcome is None:
                            first_outcome = outcome
                            announce(outcome)
                        elif resume_pending is not None and self.log is not None:
                            self.log.update_search(
                                resume_pending, resume_evaluated=outcome.evaluated
                            )
                            resume_pending = None
                    shown, q, inv = _feed(parser, ev.text)
                    query, invented = query or q, invented or inv
                    if query is not None or invented is not None:
                        outcome.interrupt = True
                    out = replace(ev, index=n_generated + ev.index, text=shown)
                    visible += shown
                    seg_visible += shown
                    if ev.token_id >= 0:
                        logprobs.append(ev.logprob)
                    if writer:
                        writer.token_event(out)
                    emit(out)
                if first_outcome is None:  # no token at all (immediate end of generation)
                    first_outcome = outcome
                    announce(outcome)
                n_generated += len(outcome.token_ids)
                if query is not None and outcome.finish_reason == "tool":
                    answer_ids += outcome.token_ids
                    position, token_index = len(visible), n_generated
                    room = model.n_ctx - len(rendered.token_ids) - len(answer_ids) - 32
                    kind, block, results, err, secs, backend = self._answer_query(
                        lane,
                        query,
                        emit,
                        position,
                        sum(d.kind == "tool" for _, d in searches),
                        lambda t: len(model.tokenize(t, special=False)),
                        budget=max(48, min(DEFAULT_BUDGET, room)),
                    )
                    block_ids = model.tokenize(block, special=False)
                    if (
                        len(rendered.token_ids) + len(answer_ids) + len(block_ids)
                        >= model.n_ctx - 8
                    ):
                        block = "\n<SEARCH_RESULTS>\nsearch failed: no room left in the context window\n</SEARCH_RESULTS>\n"
                        block_ids = model.tokenize(block, special=False)
                        err = err or "no room left in the context window"
                    answer_ids += block_ids
                    record(
                        SearchDone(
                            lane.name,
                            query.query,
                            kind,
                            backend,
                            [r.as_dict() for r in results or []],
                            err,
                            secs,
                            position,
                            token_index,
                            len(block_ids),
                        )
                    )
                    resume_pending = searches[-1][0]
                    parser.resume()
                    if n_generated >= run_sampling.max_tokens:
                        finish = "length"
                        break
                    if lane.cancel.is_set():
                        finish = "cancelled"
                        break
                    continue
                if invented is not None:
                    before = seg_visible
                    answer_ids += _ids_within(
                        outcome.token_ids, [model.piece(t) for t in outcome.token_ids], before
                    )
                    record(_invented(lane.name, len(visible), n_generated))
                    finish = "invented_results"
                    break
                answer_ids += outcome.answer_ids
                finish = outcome.finish_reason
                break
            visible += self._finish_parser(
                parser,
                lane,
                n_generated,
                visible,
                time.perf_counter() - t_start,
                writer,
                emit,
                record,
            )
        except EngineError as e:
            status, error = "error", str(e)
            finish = "error"
        if finish == "cancelled":
            status = "cancelled"
        total = time.perf_counter() - t_start
        fs = first_outcome.stats if first_outcome is not None else None
        ttft = fs.time_to_first_token if fs else None
        gen_time = total - (ttft or 0.0)
        stats = (
            Stats(
                prompt_tokens=len(rendered.token_ids),
                evaluated=first_outcome.evaluated if first_outcome else 0,
                reused=first_outcome.reused if first_outcome else 0,
                completion_tokens=n_generated,
                answer_tokens=len(answer_ids),
                time_to_first_token=ttft,
                tokens_per_second=(n_generated - 1) / gen_time
                if n_generated > 1 and gen_time > 0
                else None,
                total_seconds=total,
                mean_logprob=float(sum(logprobs) / len(logprobs)) if logprobs else None,
            )
            if first_outcome is not None
            else None
        )
        if writer:
            writer.text = visible
            writer.flush(**_final_fields(status, finish, error, len(searches), stats))
        if status != "error":
            lane.conversation.commit(model_question, answer_ids, rendered.dropped_turns)
            lane.turns += 1
        emit(Finished(lane.name, ex_id, status, finish, visible, stats, error))
        return LaneResult(lane, ex_id, status, finish, visible, stats, error)

    def _search_first(
        self, lane: Lane, question: str, emit, count
    ) -> tuple[str, SearchDone | None]:
        """+search-first: the question with the results block before it, and the search to log
        once the exchange exists. *count* measures text in tokens."""
        if lane.spec.search != "first":
            return question, None
        emit(SearchStarted(lane.name, question, "first", 0))
        results, err, secs, backend = self.run_search(question)
        block = results_block(results, err, count)
        done = SearchDone(
            lane.name,
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
        return block.strip("\n") + "\n\n" + question, done

    def _answer_query(
        self,
        lane: Lane,
        query: Query,
        emit,
        position: int,
        done_so_far: int,
        count,
        budget: int = DEFAULT_BUDGET,
    ):
        """The block that answers a model's query: results, or a "no more searches" block after
        MAX_SEARCHES. Returns (kind, block, results, error, seconds, backend)."""
        if done_so_far >= MAX_SEARCHES:
            return "limit", LIMIT_BLOCK, None, "search limit reached", 0.0, self.search_backend
        emit(SearchStarted(lane.name, query.query, "tool", position))
        results, err, secs, backend = self.run_search(query.query)
        return (
            "tool",
            results_block(results, err, count, budget=budget),
            results,
            err,
            secs,
            backend,
        )

    def _finish_parser(
        self, parser, lane: Lane, index: int, visible: str, elapsed: float, writer, emit, record
    ) -> str:
        """The answer ended: release the text held back for a possible marker, and report a query
        left open. Returns the released text."""
        released = ""
        for item in parser.finish() if parser is not None else []:
            if isinstance(item, MarkerText):
                released += item.text
                tail = Token(lane.name, index, -1, "", item.text, 0.0, [], elapsed)
                if writer:
                    writer.token_event(tail)
                emit(tail)
            elif isinstance(item, Unterminated):
                record(
                    SearchDone(
                        lane.name,
                        item.query,
                        "unterminated",
                        self.search_backend,
                        [],
                        "the model opened <SEARCH_START> but the answer ended before it closed the query",
                        0.0,
                        len(visible) + len(released),
                        index,
                        0,
                    )
                )
        return released

    def _log_search(self, exchange_id: int | None, done: SearchDone) -> SearchDone:
        """Log a search with its exchange; the event comes back with its row id."""
        if self.log is None:
            return done
        sid = self.log.add_search(
            exchange_id,
            kind=done.kind,
            query=done.query,
            backend=done.backend,
            results=done.results,
            error=done.error,
            seconds=done.seconds,
            position=done.position,
            token_index=done.token_index,
            injected_tokens=done.injected_tokens,
        )
        return replace(done, search_id=sid)

    def _run_remote(
        self,
        lane: Lane,
        question: str,
        sampling: Sampling,
        emit,
        base_fields: dict,
        load_seconds: float,
    ) -> LaneResult:
        """A lane on an OpenAI-compatible server: the prompt goes as text (completions) or messages
        (chat). The search loop works on the text: the stream is stopped at the closing marker, the
        results are appended, and a new request continues the answer (the server's own prompt
        cache, where it has one, keeps that cheap)."""
        model = lane.model
        conv = lane.conversation
        endpoint = "chat" if lane.spec.mode == "chat" else "completions"
        count = lambda t: max(1, len(t) // 4)  # noqa: E731  (no tokenizer here: about 4 characters a token)
        model_question, first_search = self._search_first(lane, question, emit, count)

        def request(answer_so_far: str) -> dict:
            if endpoint == "chat":
                messages = conv.messages(model_question)
                if answer_so_far:
                    messages += [
                        {"role": "assistant", "content": answer_so_far},
                        {
                            "role": "user",
                            "content": "Continue your answer using these search results.",
                        },
                    ]
                return {"messages": messages}
            return {"prompt": conv.prompt_text(model_question) + answer_so_far}

        payload = request("")
        prompt_text = (
            json.dumps(payload["messages"], ensure_ascii=False)
            if endpoint == "chat"
            else payload["prompt"]
        )
        stops = list(dict.fromkeys([*conv.stops(), *sampling.stop]))
        run_sampling = Sampling(**{**sampling.as_dict(), "stop": stops})
        ex_id = writer = None
        if self.log is not None:
            ex_id = self.log.start_exchange(
                **base_fields,
                stop=stops,
                model_id=model.model_id,
                model_kind=model.spec.kind,
                model_family=model.family,
                model_path=model.url,
                model_info={"remote": model.url, "model": model.remote_model, "endpoint": endpoint},
                n_ctx=model.n_ctx,
                prompt_text=prompt_text,
                prompt_token_ids=[],
                prompt_special=[],
                load_seconds=load_seconds,
            )
            writer = ExchangeWriter(self.log, ex_id)
        lane.last_exchange_id = ex_id
        emit(
            Started(
                lane.name,
                ex_id,
                model.model_id,
                lane.spec.mode,
                lane.spec.abstain,
                run_sampling.as_dict(),
                lane.spec.search,
            )
        )
        emit(PromptReady(lane.name, ex_id, prompt_text, [], [], 0, 0, 0))

        n_searches = 0

        def record(done: SearchDone) -> None:
            emit(self._log_search(ex_id, done))

        if first_search is not None:
            record(first_search)
            n_searches += 1

        parser = MarkerParser() if lane.spec.search == "tool" else None
        t0 = time.perf_counter()
        visible = ""
        raw = ""  # what the model wrote plus the results blocks: the assistant's text so far
        n = 0
        logprobs: list[float] = []
        all_logprobs = True
        ttft = None
        finish = "length"
        status, error = "complete", None
        try:
            if writer:
                writer.streaming()
            while True:
                outcome = Outcome()
                halt = _Halt(lane.cancel)
                seg = Sampling(
                    **{**run_sampling.as_dict(), "max_tokens": max(1, run_sampling.max_tokens - n)}
                )
                query = invented = None
                for ev in model.generate(request(raw), endpoint, seg, outcome, halt, lane.name):
                    if ttft is None:
                        ttft = time.perf_counter() - t0
                    shown, q, inv = _feed(parser, ev.text)
                    query, invented = query or q, invented or inv
                    if query is not None or invented is not None:
                        halt.stop()
                    out = replace(
                        ev, index=n + ev.index, text=shown, elapsed=time.perf_counter() - t0
                    )
                    visible += shown
                    if ev.logprob == ev.logprob:
                        logprobs.append(ev.logprob)
                    else:
                        all_logprobs = False
                    if writer:
                        writer.token_event(out)
                    emit(out)
                n += len(outcome.token_ids)
                if query is not None:
                    kind, block, results, err, secs, backend = self._answer_query(
                        lane, query, emit, len(visible), n_searches, count
                    )
                    n_searches += 1
                    raw += outcome.text[: _marker_end(outcome.text)] + block
                    record(
                        SearchDone(
                            lane.name,
                            query.query,
                            kind,
                            backend,
                            [r.as_dict() for r in results or []],
                            err,
                            secs,
                            len(visible),
                            n,
                            count(block),
                        )
                    )
                    parser.resume()
                    if n >= run_sampling.max_tokens or lane.cancel.is_set():
                        finish = "cancelled" if lane.cancel.is_set() else "length"
                        break
                    continue
                if invented is not None:
                    record(_invented(lane.name, len(visible), n))
                    finish = "invented_results"
                    break
                raw += outcome.text
                finish = outcome.finish_reason
                break
            visible += self._finish_parser(
                parser, lane, n, visible, time.perf_counter() - t0, writer, emit, record
            )
        except EngineError as e:
            status, error, finish = "error", str(e), "error"
        if finish == "cancelled":
            status = "cancelled"
        stats = Stats.streamed(n, ttft, time.perf_counter() - t0, logprobs, complete=all_logprobs)
        if writer:
            writer.text = visible
            writer.flush(
                **_final_fields(status, finish, error, n_searches, stats, prompt=False),
                options={
                    **(base_fields.get("options") or {}),
                    "remote": True,
                    "logprobs": bool(logprobs) and all_logprobs,
                },
            )
        if status != "error":
            conv.turns.append((model_question, raw))
            lane.turns += 1
        emit(Finished(lane.name, ex_id, status, finish, visible, stats, error))
        return LaneResult(lane, ex_id, status, finish, visible, stats, error)


class _Halt:
    """Stops a remote stream when the lane is cancelled or when the lane runner says so (a search)."""

    def __init__(self, cancel: threading.Event):
        self.cancel = cancel
        self._stop = False

    def stop(self) -> None:
        self._stop = True

    def is_set(self) -> bool:
        return self._stop or self.cancel.is_set()


def _marker_end(text: str) -> int:
    """Where the first closing search marker ends in *text* (what follows it is dropped)."""
    from playground.core.search.markers import CLOSES

    m = re.search("|".join(re.escape(c) for c in CLOSES), text, re.IGNORECASE)
    return m.end() if m else len(text)


def _feed(parser: MarkerParser | None, text: str) -> tuple[str, Query | None, Invented | None]:
    """What of *text* may be shown now, and a query or invented results block it completed."""
    if parser is None:
        return text, None, None
    shown, query, invented = "", None, None
    for item in parser.feed(text):
        if isinstance(item, MarkerText):
            shown += item.text
        elif isinstance(item, Query):
            query = item
        elif isinstance(item, Invented):
            invented = item
    return shown, query, invented


def _invented(lane: str, position: int, token_index: int) -> SearchDone:
    return SearchDone(
        lane,
        "",
        "invented",
        "model",
        [],
        "the model began writing search results itself; it was stopped (the program, not the model, supplies results)",
        0.0,
        position,
        token_index,
        0,
    )


def _final_fields(
    status: str,
    finish: str,
    error: str | None,
    searches: int,
    stats: Stats | None,
    prompt: bool = True,
) -> dict:
    """The exchange row's last update."""
    out = {"status": status, "finish_reason": finish, "error": error, "searches": searches}
    if stats is not None:
        if prompt:
            out.update(prompt_evaluated=stats.evaluated, prompt_reused=stats.reused)
        out.update(
            completion_tokens=stats.completion_tokens,
            answer_tokens=stats.answer_tokens,
            time_to_first_token=stats.time_to_first_token,
            tokens_per_second=stats.tokens_per_second,
            total_seconds=stats.total_seconds,
            mean_logprob=stats.mean_logprob,
            confidence=stats.confidence,
        )
    return out
