"""One loaded model, and a streaming generation that yields every token with its probabilities.

Per-token probabilities come from the last row of logits after each decode: llama-cpp-python's own
all-logits mode (for `logprobs`) keeps n_ctx x n_vocab floats and is very slow with Gemma's
262,144-entry vocabulary. Sampling happens here, in numpy, from those same logits: greedy is an
argmax, exactly as llama.cpp's greedy sampler.

One `Llama` is not safe to use from two threads: a `Model` holds a lock, and a generation holds it
from its first evaluated token to its last.
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import ctypes
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from playground.core.applog import quiet_llama_cpp
from playground.core.catalog import ModelSpec
from playground.core.errors import PlaygroundError
from playground.core.events import Alternative, FinishReason, Stats, Token
from playground.core.gguf import GGUFInfo, inspect_gguf

if TYPE_CHECKING:
    import llama_cpp

TOP_K_ALTERNATIVES = 5
MAX_TOP_K = 2**31 - 1  # larger than any vocabulary (and it is logged: SQLite integers)
MAX_SEED = 2**63 - 1  # the largest integer SQLite stores (the log keeps the seed)
# Prompts evaluated for figures that must not depend on the cache's history go in chunks of this
# many tokens, starting at multiples of it (see Model._prepare).
ALIGN = 16


class EngineError(PlaygroundError):
    pass


@dataclass
class Sampling:
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = no limit
    seed: int | None = None
    max_tokens: int = 256
    stop: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise EngineError(f"temperature must be a number >= 0, not {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise EngineError(f"top-p must be in (0, 1], not {self.top_p}")
        if not 0 <= self.top_k <= MAX_TOP_K:
            raise EngineError(
                f"top-k must be a whole number from 0 (no limit) to 2^31-1, not {self.top_k}"
            )
        if self.max_tokens < 1:
            raise EngineError(f"max tokens must be at least 1, not {self.max_tokens}")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise EngineError(f"the seed must be a whole number from 0 to 2^63-1, not {self.seed}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "seed": self.seed,
            "max_tokens": self.max_tokens,
            "stop": list(self.stop),
        }


@dataclass
class Outcome:
    """Filled in by `Model.generate` as it runs; complete once the generator is exhausted."""

    finish_reason: FinishReason = "length"
    token_ids: list[int] = field(default_factory=list)
    answer_ids: list[int] = field(default_factory=list)  # the tokens before any stop sequence
    text: str = ""
    evaluated: int = 0
    reused: int = 0
    stats: Stats | None = None
    # Set by the consumer to stop after the token just yielded (a tool call).
    interrupt: bool = False
    # False for a remote server that sent no token probabilities.
    has_logprobs: bool = True
    # Set by the consumer: called with (evaluated, total) after each batch of a long prompt.
    on_prompt: Callable[[int, int], None] | None = None


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_OPEN: weakref.WeakSet[Model] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Free llama.cpp models before the interpreter tears down the modules their finalizers need
    (otherwise llama-cpp-python prints a TypeError at exit)."""
    for model in list(_OPEN):
        model.close()
    for llm in list(_VOCABS.values()):
        with contextlib.suppress(Exception):
            llm.close()
    _VOCABS.clear()


# Loads one at a time: two models loading at once double the peak memory of a load, and
# llama.cpp's backend initialisation is not documented as thread-safe.
_LOAD_LOCK = threading.Lock()


# What the engine uses of llama-cpp-python beyond its documented API (the per-position logits, the
# KV cache, the vocabulary). pyproject.toml pins the versions this was tested with; a loaded model
# is checked against this list, so a future version that drops a name fails with its name.
PRIVATE_API = {
    "Llama": ("_ctx", "_model", "_batch", "input_ids", "n_tokens", "n_batch", "eval", "reset"),
    "Llama._ctx": (
        "kv_cache_clear",
        "kv_cache_seq_rm",
        "set_n_threads",
        "get_logits",
        "get_logits_ith",
        "decode",
    ),
    "Llama._model": ("vocab", "token_get_attr", "token_bos", "token_eos", "add_bos_token"),
    "Llama._batch": ("set_batch", "batch"),
    "llama_cpp": (
        "llama_token_to_piece",
        "llama_vocab_is_eog",
        "llama_log_set",
        "llama_log_callback",
        "LLAMA_TOKEN_ATTR_CONTROL",
    ),
}


def check_llama_cpp(llm: llama_cpp.Llama) -> None:
    """Raise EngineError naming what this llama-cpp-python lacks of PRIVATE_API."""
    import llama_cpp

    objects = {
        "Llama": llm,
        "Llama._ctx": getattr(llm, "_ctx", None),
        "Llama._model": getattr(llm, "_model", None),
        "Llama._batch": getattr(llm, "_batch", None),
        "llama_cpp": llama_cpp,
    }
    missing = [
        f"{owner}.{name}"
        for owner, names in PRIVATE_API.items()
        for name in names
        if objects[owner] is None or not hasattr(objects[owner], name)
    ]
    if missing:
        version = getattr(llama_cpp, "__version__", "?")
        raise EngineError(
            f"llama-cpp-python {version} lacks {', '.join(missing)}, which playground needs: "
            "install the version range in pyproject.toml (pip install -e .)"
        )


class Model:
    """A loaded GGUF model: tokenizer, chat template, and a lock-guarded generator."""

    def __init__(
        self, spec: ModelSpec, n_threads: int | None = None, n_gpu_layers: int | None = None
    ):
        import llama_cpp

        self.spec = spec
        self.model_id = spec.id
        path = spec.path()
        self.info: GGUFInfo = inspect_gguf(path)
        self.path = path
        self.n_ctx = spec.n_ctx
        gpu = spec.n_gpu_layers if n_gpu_layers is None else n_gpu_layers
        threads = n_threads or spec.n_threads or cpu_count()
        t0 = time.perf_counter()
        try:
            quiet_llama_cpp()
            with _LOAD_LOCK:
                self.llm = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=self.n_ctx,
                    n_gpu_layers=gpu,
                    n_threads=threads,
                    n_threads_batch=threads,
                    logits_all=False,
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError) as e:
            raise EngineError(f"llama.cpp could not load {path}: {e}") from e
        self.load_seconds = time.perf_counter() - t0
        try:
            check_llama_cpp(self.llm)
        except EngineError:
            self.llm.close()
            raise
        _OPEN.add(self)
        self.n_gpu_layers = gpu
        self.threads = threads
        self.lock = threading.Lock()
        self.n_vocab = self.llm.n_vocab()
        vocab = self.llm._model
        self._attr_control = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
        self.bos_id: int | None = (
            self.info.bos_token_id if self.info.bos_token_id is not None else vocab.token_bos()
        )
        self.eos_id = vocab.token_eos()
        self.add_bos = bool(vocab.add_bos_token()) and self.bos_id is not None and self.bos_id >= 0
        self.bos_text = (
            vocab.token_get_text(self.bos_id)
            if self.bos_id is not None and self.bos_id >= 0
            else ""
        )
        self.eos_text = vocab.token_get_text(self.eos_id) if self.eos_id >= 0 else ""
        self.chat_template = spec.chat_template or self.info.chat_template
        self._eog: dict[int, bool] = {}
        self._special: dict[int, bool] = {}
        self._pieces: dict[int, bytes] = {}
        self._llama_cpp = llama_cpp
        self._aligned = 0  # cached positions below this were evaluated in aligned chunks

    # -- Tokenizer protocol (see prompts.Tokenizer) -------------------------------------------
    @property
    def family(self) -> str:
        return self.spec.family_name(self.info)

    def tokenize(self, text: str, special: bool) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def is_special(self, token_id: int) -> bool:
        v = self._special.get(token_id)
        if v is None:
            ok = 0 <= token_id < self.n_vocab
            v = ok and bool(self.llm._model.token_get_attr(token_id) & self._attr_control)
            self._special[token_id] = v
        return v

    def piece(self, token_id: int) -> bytes:
        p = self._pieces.get(token_id)
        if p is None:
            buf = ctypes.create_string_buffer(64)
            vocab = self.llm._model.vocab
            n = self._llama_cpp.llama_token_to_piece(vocab, token_id, buf, 64, 0, True)
            if n < 0:  # a longer piece: retry with the size llama.cpp asks for
                buf = ctypes.create_string_buffer(-n)
                n = self._llama_cpp.llama_token_to_piece(vocab, token_id, buf, -n, 0, True)
            p = buf.raw[: max(n, 0)]
            self._pieces[token_id] = p
        return p

    def detokenize(self, ids: Sequence[int]) -> str:
        return b"".join(self.piece(t) for t in ids).decode("utf-8", errors="replace")

    def piece_text(self, token_id: int) -> str:
        return self.piece(token_id).decode("utf-8", errors="replace")

    def piece_texts(self, ids: Sequence[int]) -> list[str]:
        """The text of each token of a sequence, a character split over tokens shown whole at
        the token that completes it (see `decode_pieces`)."""
        return decode_pieces([self.piece(t) for t in ids])

    def is_eog(self, token_id: int) -> bool:
        v = self._eog.get(token_id)
        if v is None:
            v = bool(self._llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token_id))
            self._eog[token_id] = v
        return v

    # -- generation ------------------------------------------------------------------------
    def set_threads(self, n: int) -> None:
        n = max(1, n)
        if n != self.threads:
            self.llm._ctx.set_n_threads(n, n)
            self.threads = n

    def _clear(self) -> None:
        """Forget the KV cache: the next evaluation starts from nothing."""
        # llama-cpp-python leaves these two unannotated
        self.llm.reset()  # type: ignore[no-untyped-call]
        self.llm._ctx.kv_cache_clear()  # type: ignore[no-untyped-call]
        self._aligned = 0

    def clear_cache(self) -> None:
        """Forget the KV cache, so the next prompt is evaluated whole (waits for a generation
        in progress to finish)."""
        with self.lock:
            self._clear()

    def _cached_prefix(self, prompt: list[int]) -> int:
        """How many leading tokens of *prompt* the KV cache holds."""
        llm = self.llm
        cached = llm.input_ids[: llm.n_tokens].tolist() if llm.n_tokens else []
        prefix = 0
        for a, b in zip(cached, prompt, strict=False):
            if a != b:
                break
            prefix += 1
        return prefix

    def _prepare(
        self,
        prompt: list[int],
        fresh: bool = False,
        on_prompt: Callable[[int, int], None] | None = None,
    ) -> tuple[int, int]:
        """Keep the longest cached prefix of *prompt* and evaluate the rest. Returns (evaluated,
        reused).

        Reuse is fast but not bit-exact: llama.cpp's kernels depend on the batch shape, so the
        tail of a prompt evaluated on top of a cached prefix gets logits ~1e-3 away from the same
        prompt evaluated whole, enough to flip a near-tie. With *fresh*, the figures are those of
        an empty cache, whatever ran before: the prompt is evaluated in ALIGN-token chunks that
        start at multiples of ALIGN, and only cached chunks evaluated that way are reused (a
        probe set's shared few-shot scaffold, say), so the same input always meets the same
        batch shapes. Scores and probe runs use it.

        *on_prompt* hears (evaluated, total) after each n_batch tokens of a longer prompt: the
        same batches llama.cpp's own eval makes, so the logits do not change."""
        llm = self.llm
        prefix = self._cached_prefix(prompt)
        if fresh:
            keep = min(prefix, self._aligned, len(prompt) - 1) // ALIGN * ALIGN
        else:
            keep = min(prefix, len(prompt) - 1)  # the last token again, for fresh logits
        if keep > 0 and llm._ctx.kv_cache_seq_rm(-1, keep, -1):
            llm.n_tokens = keep
        else:
            keep = 0
            self._clear()
        if fresh:
            for start in range(keep, len(prompt), ALIGN):
                llm.eval(prompt[start : start + ALIGN])
            self._aligned = len(prompt) // ALIGN * ALIGN
        else:
            todo, step = prompt[keep:], max(1, llm.n_batch)
            if on_prompt is None or len(todo) <= step:
                llm.eval(todo)
            else:
                for start in range(0, len(todo), step):
                    llm.eval(todo[start : start + step])
                    on_prompt(min(start + step, len(todo)), len(todo))
            self._aligned = min(self._aligned, keep // ALIGN * ALIGN)
        return len(prompt) - keep, keep

    def _last_logits(self) -> np.ndarray:
        ptr = self.llm._ctx.get_logits_ith(-1)
        return np.ctypeslib.as_array(
            ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(self.n_vocab,)
        )

    def generate(
        self,
        prompt: list[int],
        sampling: Sampling,
        outcome: Outcome,
        cancel: threading.Event | None = None,
        lane: str = "",
        top_k_alternatives: int = TOP_K_ALTERNATIVES,
        fresh: bool = False,
    ) -> Iterator[Token]:
        """Stream the answer to *prompt* (token ids) as Token events; fill *outcome* as it goes.
        *fresh*: the same tokens and probabilities as from an empty cache (see `_prepare`)."""
        if len(prompt) >= self.n_ctx:
            raise EngineError(
                f"the prompt is {len(prompt):,} tokens but {self.model_id}'s context window is {self.n_ctx:,}"
            )
        rng = np.random.default_rng(sampling.seed)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        out = StopText(sampling.stop)
        logprobs: list[float] = []
        with self.lock:
            t0 = time.perf_counter()
            ttft = None
            evaluated, reused = self._prepare(prompt, fresh, outcome.on_prompt)
            outcome.evaluated, outcome.reused = evaluated, reused
            room = self.n_ctx - len(prompt)
            limit = min(sampling.max_tokens, room)
            finish: FinishReason = "length" if limit == sampling.max_tokens else "context"
            i = 0
            while i < limit:
                if cancel is not None and cancel.is_set():
                    finish = "cancelled"
                    break
                logits = self._last_logits()
                token, lp, top = self._sample(logits, sampling, rng, top_k_alternatives)
                if self.is_eog(token):
                    finish = "eos"
                    break
                if ttft is None:
                    ttft = time.perf_counter() - t0
                outcome.token_ids.append(token)
                logprobs.append(lp)
                delta = out.add(decoder.decode(self.piece(token)))
                yield Token(
                    lane=lane,
                    index=i,
                    token_id=token,
                    piece=self.piece_text(token),
                    text=delta,
                    logprob=lp,
                    top=[Alternative(t, self.piece_text(t), p) for t, p in top],
                    elapsed=time.perf_counter() - t0,
                )
                i += 1
                if out.stopped:
                    finish = "stop"
                    break
                if outcome.interrupt:
                    finish = "tool"
                    break
                if i < limit:
                    self.llm.eval([token])
            if not out.stopped:
                # flush text held back for a stop sequence that never came
                rest = out.rest(decoder.decode(b"", final=True))
                if rest:
                    yield Token(lane, i, -1, "", rest, 0.0, [], time.perf_counter() - t0)
            total = time.perf_counter() - t0
        answer_text = out.answer
        answer_ids = tokens_within(
            outcome.token_ids, [self.piece(t) for t in outcome.token_ids], answer_text
        )
        n_answer = len(answer_ids)
        outcome.answer_ids = answer_ids
        outcome.text = answer_text
        outcome.finish_reason = finish
        gen_time = total - (ttft or 0.0)
        n = len(outcome.token_ids)
        outcome.stats = Stats(
            prompt_tokens=len(prompt),
            evaluated=evaluated,
            reused=reused,
            completion_tokens=n,
            answer_tokens=n_answer,
            time_to_first_token=ttft,
            tokens_per_second=(n - 1) / gen_time if n > 1 and gen_time > 0 else None,
            total_seconds=total,
            mean_logprob=float(np.mean(logprobs[:n_answer])) if n_answer else None,
        )

    def sequence_logprobs(self, ids: list[int]) -> list[float]:
        """Log-probability of each token of *ids* given the ones before it (from the second on),
        in one decode that asks for the logits of every position."""
        if len(ids) < 2:
            return []
        if len(ids) > min(self.n_ctx, self.llm.n_batch):
            raise EngineError(
                f"text of {len(ids)} tokens is too long to score (at most {min(self.n_ctx, self.llm.n_batch)})"
            )
        with self.lock:
            llm = self.llm
            self._clear()
            llm._batch.set_batch(batch=ids, n_past=0, logits_all=False)
            for i in range(len(ids)):  # ask this one decode for the logits of every position
                llm._batch.batch.logits[i] = True
            llm._ctx.decode(llm._batch)
            llm.input_ids[: len(ids)] = ids
            llm.n_tokens = len(ids)
            logits = llm._ctx.get_logits()  # type: ignore[no-untyped-call]  # unannotated upstream
            ptr = ctypes.cast(logits, ctypes.POINTER(ctypes.c_float))
            rows = np.ctypeslib.as_array(ptr, shape=(len(ids), self.n_vocab))
            out = []
            for i in range(len(ids) - 1):
                x = rows[i]
                m = float(x.max())
                lse = m + float(np.log(np.exp(x - m, dtype=np.float32).sum(dtype=np.float64)))
                out.append(float(x[ids[i + 1]]) - lse)
            return out

    def next_token_logprobs(self, prompt: list[int], candidates: list[int]) -> list[float]:
        """Log-probabilities of *candidates* as the next token after *prompt* (for P(True)).
        The same input gets the same number whatever ran before it (see `_prepare`)."""
        if not prompt:
            raise EngineError("nothing to score: the prompt is empty")
        if len(prompt) >= self.n_ctx:
            raise EngineError(
                f"the prompt is {len(prompt):,} tokens but {self.model_id}'s context window is {self.n_ctx:,}"
            )
        with self.lock:
            self._prepare(prompt, fresh=True)
            x = self._last_logits()
            m = float(x.max())
            lse = m + float(np.log(np.exp(x - m, dtype=np.float32).sum(dtype=np.float64)))
            return [float(x[c]) - lse for c in candidates]

    def _sample(
        self, logits: np.ndarray, s: Sampling, rng: np.random.Generator, k_alt: int
    ) -> tuple[int, float, list[tuple[int, float]]]:
        x = logits
        m = float(x.max())
        lse = m + float(np.log(np.exp(x - m, dtype=np.float32).sum(dtype=np.float64)))
        if k_alt > 0:
            idx = np.argpartition(x, -k_alt)[-k_alt:]
            idx = idx[np.argsort(-x[idx])]
            top = [(int(t), float(x[t]) - lse) for t in idx]
        else:
            top = []
        token = int(np.argmax(x)) if s.temperature == 0 else self._draw(x, s, rng)
        return token, float(x[token]) - lse, top

    @staticmethod
    def _draw(x: np.ndarray, s: Sampling, rng: np.random.Generator) -> int:
        k = s.top_k if 0 < s.top_k < x.size else min(x.size, 1000)
        cand = np.argpartition(x, -k)[-k:]
        z = x[cand].astype(np.float64) / s.temperature
        order = np.argsort(-z)
        cand, z = cand[order], z[order]
        p = np.exp(z - z.max())
        p /= p.sum()
        if s.top_p < 1.0:
            keep = int(np.searchsorted(np.cumsum(p), s.top_p) + 1)
            cand, p = cand[:keep], p[:keep] / p[:keep].sum()
        return int(cand[rng.choice(len(cand), p=p)])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.llm.close()


class StopText:
    """An answer's text as it streams, cut at the first stop sequence: `add` returns what may be
    shown now, holding back a tail that could be the start of a stop sequence."""

    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self.text = ""
        self.shown = 0  # characters of text already released
        self.cut_at: int | None = None

    @property
    def stopped(self) -> bool:
        return self.cut_at is not None

    @property
    def answer(self) -> str:
        """The text before the stop sequence (all of it if none came)."""
        return self.text[: self.cut_at] if self.cut_at is not None else self.text

    def add(self, piece: str) -> str:
        """Append a token's text; returns the text that may be shown now."""
        text = self.text = self.text + piece
        new_shown = len(text)
        if self.stops:
            hit = _find_stop(text, self.stops, self.shown)
            if hit is not None:
                self.cut_at = hit
                new_shown = hit
            else:
                new_shown = len(text) - _held_back(text, self.stops)
        delta = text[self.shown : new_shown] if new_shown > self.shown else ""
        self.shown = max(self.shown, new_shown)
        return delta

    def rest(self, tail: str = "") -> str:
        """The generation ended without a stop: *tail* appended, the text still held back."""
        self.text += tail
        rest = self.text[self.shown :]
        self.shown = len(self.text)
        return rest


def _find_stop(text: str, stops: list[str], shown: int) -> int | None:
    """Earliest position of a stop sequence in *text* not before what is already shown."""
    best = None
    for s in stops:
        j = text.find(s, max(0, shown - len(s) + 1))
        if j != -1 and (best is None or j < best):
            best = j
    return best


def _held_back(text: str, stops: list[str]) -> int:
    """How many trailing characters could be the start of a stop sequence."""
    hold = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:n]):
                hold = max(hold, n)
                break
    return hold


def tokens_within(ids: list[int], pieces: list[bytes], text: str) -> list[int]:
    """The leading tokens whose bytes lie entirely inside *text*."""
    limit = len(text.encode("utf-8"))
    out, used = [], 0
    for t, p in zip(ids, pieces, strict=False):
        if used + len(p) > limit:
            break
        used += len(p)
        out.append(t)
    return out


def decode_pieces(pieces: Sequence[bytes]) -> list[str]:
    """Each token's text in a sequence, decoded across token boundaries: an emoji or a CJK
    character whose UTF-8 bytes are spread over several byte tokens shows whole at the token that
    completes it (the ones before show nothing), not as one replacement character per token.
    Bytes that never form a character still show as U+FFFD."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out = [decoder.decode(p) for p in pieces]
    tail = decoder.decode(b"", final=True)
    if tail:
        if out:
            out[-1] += tail
        else:
            out.append(tail)
    return out


_VOCABS: dict[str, llama_cpp.Llama] = {}
_VOCAB_LOCK = threading.Lock()


def vocab_pieces(path: str, ids: Sequence[int]) -> list[str]:
    """Token texts from a GGUF's vocabulary alone (no weights loaded): for showing a logged prompt
    token by token when its model is not running (replays)."""
    import llama_cpp

    with _VOCAB_LOCK:
        llm = _VOCABS.get(path)
        if llm is None:
            quiet_llama_cpp()
            with _LOAD_LOCK:
                llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
            _VOCABS[path] = llm
    out = []
    for t in ids:
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(llm._model.vocab, t, buf, 64, 0, True)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(llm._model.vocab, t, buf, -n, 0, True)
        out.append(buf.raw[: max(n, 0)])
    return decode_pieces(out)
