"""Read a logged exchange back as the same typed event stream a live generation produces.

The log, the CLI and the TUI consume one event stream; replaying a session (or opening a probe
answer in a lane) is that stream read back from SQLite, with the original timing of every token.
"""

from __future__ import annotations

import json
import math
from typing import Any

from playground.core.db import ExchangeRow, Row, SessionLog, TokenRow, token_event
from playground.core.events import (
    NO_TOKEN,
    Event,
    ExchangeStatus,
    Finished,
    FinishReason,
    FinishStatus,
    PromptReady,
    SearchDone,
    Started,
    Stats,
    Token,
)
from playground.core.search.markers import MarkerParser
from playground.core.search.markers import Text as MarkerText


def exchange_events(log: SessionLog, exchange_id: int, lane: str) -> list[Event]:
    """Started, PromptReady, the searches and tokens in stream order, Finished."""
    ex = log.exchange(exchange_id)
    tokens = log.tokens(exchange_id)
    events = _opening(ex, exchange_id, lane)
    body, text = _answer(ex, tokens, log.searches(exchange_id), lane)
    return [*events, *body, _finished(ex, exchange_id, lane, len(tokens), text)]


def _opening(ex: ExchangeRow, exchange_id: int, lane: str) -> list[Event]:
    """Started and PromptReady, as the live run emitted them."""
    sampling: dict[str, Any] = {
        "temperature": ex.get("temperature"),
        "top_p": ex.get("top_p"),
        "top_k": ex.get("top_k"),
        "seed": ex.get("seed"),
        "max_tokens": ex.get("max_tokens"),
    }
    options = json.loads(ex["options"] or "{}") if ex.get("options") else {}
    ids = json.loads(ex["prompt_token_ids"] or "[]")
    special = [bool(x) for x in json.loads(ex.get("prompt_special") or "[]")]
    return [
        Started(
            lane,
            exchange_id,
            ex["model_id"] or "",
            ex["mode"] or "",
            ex["abstain_t"],
            sampling,
            options.get("search"),
        ),
        PromptReady(
            lane,
            exchange_id,
            ex["prompt_text"] or "",
            ids,
            special,
            ex.get("prompt_evaluated") or 0,
            ex.get("prompt_reused") or 0,
            ex.get("dropped_turns") or 0,
        ),
    ]


def _answer(
    ex: ExchangeRow, tokens: list[TokenRow], searches: list[Row], lane: str
) -> tuple[list[Event], str]:
    """The tokens with each search placed before the first token generated after it; returns
    the events and the answer's visible text."""
    events: list[Event] = []
    pending = sorted(searches, key=lambda s: (s["token_index"] or 0, s["id"]))
    text = ""
    if tokens:
        # Text is rebuilt from the logged answer: token pieces include markers a parser hid.
        visible = ex["output_text"] or ""
        pos = 0
        if shown := _prefill_shown(ex, visible):  # the answer starts with it, before any token
            events.append(Token(lane, 0, NO_TOKEN, "", shown, 0.0, [], 0.0))
            text, pos = shown, len(shown)
        for t in tokens:
            while pending and (pending[0]["token_index"] or 0) <= t["position"]:
                events.append(_search(pending.pop(0), lane))
            piece = t["text"] or ""
            delta = ""
            if visible.startswith(piece, pos):
                delta, pos = piece, pos + len(piece)
            events.append(token_event(t, lane, delta))
            text += delta
        if pos < len(visible):  # text the token pieces do not account for (held-back stop text)
            elapsed = tokens[-1]["elapsed"] or 0.0
            events.append(Token(lane, len(tokens), NO_TOKEN, "", visible[pos:], 0.0, [], elapsed))
            text += visible[pos:]
    else:
        text = ex["output_text"] or ""
        if text:
            events.append(Token(lane, 0, NO_TOKEN, "", text, 0.0, [], 0.0))
    events += [_search(s, lane) for s in pending]
    return events, text


def _prefill_shown(ex: ExchangeRow, visible: str) -> str:
    """What the answer's prefill (in the options) showed: its text, search markers hidden."""
    options = json.loads(ex["options"] or "{}") if ex.get("options") else {}
    prefill = options.get("prefill") or ""
    if not prefill:
        return ""
    parser = MarkerParser(tool=options.get("search") == "tool")
    shown = "".join(i.text for i in parser.feed(prefill) if isinstance(i, MarkerText))
    return shown if visible.startswith(shown) else ""


def _finished(ex: ExchangeRow, exchange_id: int, lane: str, n_tokens: int, text: str) -> Finished:
    """The logged outcome and figures as the Finished event."""
    stats = None
    if ex["completion_tokens"] is not None:
        stats = Stats(
            prompt_tokens=ex.get("prompt_tokens") or 0,
            evaluated=ex.get("prompt_evaluated") or 0,
            reused=ex.get("prompt_reused") or 0,
            completion_tokens=ex["completion_tokens"] or 0,
            answer_tokens=ex["answer_tokens"] or n_tokens,
            time_to_first_token=ex.get("time_to_first_token"),
            tokens_per_second=ex.get("tokens_per_second"),
            total_seconds=ex.get("total_seconds") or 0.0,
            mean_logprob=ex["mean_logprob"]
            if ex["mean_logprob"] is not None and math.isfinite(ex["mean_logprob"])
            else None,
        )
    logged = ex["status"]
    status: FinishStatus = (
        logged
        if logged == "complete" or logged == "cancelled" or logged == "error"
        else "cancelled"
    )
    reason: FinishReason = ex["finish_reason"] or _reason_of_status(logged)
    return Finished(
        lane, exchange_id, status, reason, ex["output_text"] or text, stats, ex["error"]
    )


def _reason_of_status(status: ExchangeStatus) -> FinishReason:
    """The finish reason of an answer logged without one: its status (the recorder writes both
    together, so only an answer whose process died lacks a reason: "interrupted")."""
    if status == "complete":
        return "stop"
    if status == "cancelled" or status == "error":
        return status
    return "interrupted"


def _search(row: Row, lane: str) -> SearchDone:
    return SearchDone(
        lane,
        row["query"] or "",
        row["kind"] or "tool",
        row["backend"] or "",
        json.loads(row["results"] or "[]"),
        row["error"],
        row["seconds"] or 0.0,
        row["position"] or 0,
        row["token_index"] or 0,
        row["injected_tokens"] or 0,
        row["id"],
        bool(row.get("copied")),
    )
