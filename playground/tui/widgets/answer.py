"""One turn of a lane (`Answer`: the question, the answer as it streams, its tokens and searches),
and how a token is shown in the token view: its piece with whitespace made visible, on a background
from red (unlikely) to green (likely). The lanes and the review screen share the heat map; it keeps
its own colour scale whatever the theme, since it encodes a probability.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from playground.core.events import PromptReady, Token


def prob_style(p: float) -> str:
    """Background from red (unlikely) through yellow to green (likely)."""
    p = max(0.0, min(1.0, p))
    if p < 0.5:
        r, g = 200, int(60 + 280 * p)
    else:
        r, g = int(200 - 300 * (p - 0.5)), 200
    return f"black on rgb({max(r, 40)},{min(g, 200)},60)"


def show_piece(piece: str) -> str:
    """A token's text with whitespace made visible for the token view."""
    return piece.replace("\n", "↵\n").replace("\t", "⇥") or "∅"


@dataclass
class Answer:
    """One turn of this lane: the question and the answer as it streams."""

    question: str
    text: str = ""
    tokens: list[Token] = field(default_factory=list)
    status: str = "waiting"
    error: str | None = None
    finish_reason: str | None = None
    exchange_id: int | None = None
    stats: object | None = None
    prompt: PromptReady | None = None
    settings: dict = field(default_factory=dict)
    mode: str = ""
    abstain: float | None = None
    model_id: str = ""
    tags: list[str] = field(default_factory=list)
    searches: list[dict] = field(default_factory=list)
    search: str | None = None
    turn: int = 0
    expanded: bool = False  # a long question shown whole
    prompt_progress: float | None = None  # share of a long prompt evaluated, before the answer
    remark: str = ""  # a line about this answer, shown under it (a replay's missing tokens)
