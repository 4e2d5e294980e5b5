"""The typed events a generation produces. The log, the CLI and the TUI consume the same stream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, get_args

ExchangeStatus = Literal["pending", "streaming", "complete", "cancelled", "error", "interrupted"]
"""An exchange row's `status` in the log."""
FinishStatus = Literal["complete", "cancelled", "error"]
"""How a generation ended (Finished.status): the exchange statuses a finished answer can have."""
FinishReason = Literal[
    "stop",  # a stop sequence (or a server said "stop")
    "eos",  # the model's end-of-generation token
    "length",  # the token limit
    "context",  # the context window is full
    "tool",  # a segment ended on a closed search query (the answer goes on)
    "invented_results",  # the model began writing search results itself
    "cancelled",
    "error",
    "content_filter",  # a server's other reasons (the OpenAI API's)
    "tool_calls",
    "function_call",
    "interrupted",  # replay: an answer whose process died before it finished
]
"""Why a generation stopped (Outcome and Finished, the exchange row's `finish_reason`)."""
FINISH_REASONS: tuple[FinishReason, ...] = get_args(FinishReason)
SearchOption = Literal["tool", "first"]
"""A lane's search option: "tool" (+search, the model may search), "first" (+search-first)."""
SearchKind = Literal["tool", "first", "limit", "invented", "unterminated"]
"""What a logged search was: asked by the model (tool), run before answering (first), or refused
(limit: too many; invented: results the model wrote itself; unterminated: a query left open)."""

NO_TOKEN = -1  # Token.token_id of text released without a token (held back for a stop or marker)
SERVER_TOKEN = -2  # Token.token_id of a server's token: its text is known, its id is not


class SearchResult(TypedDict):
    """One search result as a SearchDone event carries it and the log stores it (JSON)."""

    title: str
    source: str
    text: str


@dataclass(frozen=True)
class Alternative:
    token_id: int
    text: str
    logprob: float


@dataclass(frozen=True)
class PromptReady:
    """What the model is about to receive: every token id, which ones are special, the cache."""

    lane: str
    exchange_id: int | None
    text: str
    token_ids: list[int]
    special: list[bool]
    evaluated: int  # prompt tokens run through the model for this turn
    reused: int  # prompt tokens taken from the KV cache
    dropped_turns: int = 0
    neutralized: int = 0  # control-token strings defused in the text a server got


@dataclass(frozen=True)
class Token:
    lane: str
    index: int  # position in the answer, from 0
    token_id: int  # NO_TOKEN, SERVER_TOKEN or an id of the model's vocabulary
    piece: str  # the token's own text (may be part of a multi-byte character)
    text: str  # text this token adds to the visible answer (held back while a stop may match)
    logprob: float  # log-probability under the model (softmax of the raw logits); NaN: not sent
    top: list[Alternative] = field(default_factory=list)
    elapsed: float = 0.0  # seconds since the generation started


@dataclass(frozen=True)
class PromptProgress:
    """A long prompt is being evaluated: *evaluated* of its *total* new tokens so far (sent after
    each batch, before the first token; a prompt of one batch sends none)."""

    lane: str
    evaluated: int
    total: int


@dataclass(frozen=True)
class Started:
    lane: str
    exchange_id: int | None
    model_id: str
    mode: str  # the lane's prompts.Mode (on replay: as logged)
    abstain: float | None
    sampling: dict[str, Any] = field(default_factory=dict)  # the settings this answer uses
    search: SearchOption | None = None


@dataclass(frozen=True)
class ModelLoading:
    lane: str
    model_id: str


@dataclass(frozen=True)
class ModelLoaded:
    lane: str
    model_id: str
    seconds: float


@dataclass(frozen=True)
class LaneNotReady:
    """The lane cannot answer as set up (model failed to load, mode not possible for the model)."""

    lane: str
    model_id: str
    error: str


@dataclass(frozen=True)
class SearchStarted:
    lane: str
    query: str
    kind: SearchOption  # tool (the model asked) | first (before answering)
    position: int  # characters of the visible answer before the search


@dataclass(frozen=True)
class SearchDone:
    lane: str
    query: str
    kind: SearchKind
    backend: str
    results: list[SearchResult]
    error: str | None
    seconds: float
    position: int  # characters of the visible answer before the search
    token_index: int  # answer tokens generated before the results were injected
    injected_tokens: int
    search_id: int | None = None
    copied: bool = False  # the query appears word for word in results injected earlier


@dataclass(frozen=True)
class Stats:
    prompt_tokens: int
    evaluated: int
    reused: int
    completion_tokens: int
    answer_tokens: int
    time_to_first_token: float | None
    tokens_per_second: float | None
    total_seconds: float
    mean_logprob: float | None

    @classmethod
    def streamed(
        cls, tokens: int, ttft: float | None, total: float, logprobs: list[float], complete: bool
    ) -> Stats:
        """Stats of an answer streamed from a server: no prompt figures (the server keeps them);
        a mean log-probability only when every token came with one (*complete*)."""
        gen = total - (ttft or 0.0)
        return cls(
            prompt_tokens=0,
            evaluated=0,
            reused=0,
            completion_tokens=tokens,
            answer_tokens=tokens,
            time_to_first_token=ttft,
            tokens_per_second=(tokens - 1) / gen if tokens > 1 and gen > 0 else None,
            total_seconds=total,
            mean_logprob=sum(logprobs) / len(logprobs) if logprobs and complete else None,
        )

    @property
    def confidence(self) -> float | None:
        """Length-normalized probability of the answer: exp(mean log p)."""
        import math

        return math.exp(self.mean_logprob) if self.mean_logprob is not None else None


@dataclass(frozen=True)
class Finished:
    lane: str
    exchange_id: int | None
    status: FinishStatus
    finish_reason: FinishReason
    text: str
    stats: Stats | None = None
    error: str | None = None


Event = (
    PromptReady
    | PromptProgress
    | Token
    | Started
    | ModelLoading
    | ModelLoaded
    | LaneNotReady
    | SearchStarted
    | SearchDone
    | Finished
)
