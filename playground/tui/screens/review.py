"""Review and tag: walk a session's untagged answers one by one; vote which lane answered better."""

from __future__ import annotations

import math

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from playground.core.db import SessionLog, queries
from playground.core.events import Token
from playground.core.replay import exchange_events
from playground.core.sessions import add_vote, exchanges
from playground.tui.widgets.answer import prob_style, show_piece
from playground.tui.widgets.lane import fold
from playground.tui.widgets.safe import SafeStatic

LABEL_KEYS = {"c": "correct", "h": "hallucination", "d": "abstained", "p": "partial"}


class ReviewScreen(Screen[None]):
    """One answer at a time: c / h / d / p label it, s skips, 1-4 vote the better answer of the turn."""

    BINDINGS = [
        Binding("c", "label('correct')", "Correct"),
        Binding("h", "label('hallucination')", "Hallucination"),
        Binding("d", "label('abstained')", "Didn't know"),
        Binding("p", "label('partial')", "Partial"),
        Binding("s", "skip", "Skip"),
        Binding("space,enter,right", "next_turn", "Next turn", show=False),
        Binding("e", "expand", "Expand question", show=False),
        Binding("1", "vote(0)", "1 better", show=False),
        Binding("2", "vote(1)", "2 better", show=False),
        Binding("3", "vote(2)", "3 better", show=False),
        Binding("4", "vote(3)", "4 better", show=False),
        Binding("equals_sign", "vote_even('tie')", "Tie", show=False),
        Binding("0", "vote_even('both_bad')", "Both bad", show=False),
        Binding("escape,q", "dismiss(None)", "Close"),
    ]

    COMPONENT_CLASSES = {"review--question", "review--done"}  # colours: app.tcss

    def __init__(
        self, log: SessionLog, session_id: str, blind: bool = False, tagger: str | None = None
    ) -> None:
        super().__init__()
        self.log_db = log
        self.session_id = session_id
        self.blind = blind
        self.tagger = tagger
        rows = exchanges(log, session_id, latest_only=True)
        self.turns: dict[int, list[dict]] = {}
        for r in rows:
            self.turns.setdefault(r["turn"], []).append(r)
        tagged = queries.tagged_exchange_ids(log)
        self.queue = [
            r
            for r in rows
            if r["id"] not in tagged and r["status"] in ("complete", "cancelled", "interrupted")
        ]
        self.total = len(self.queue)
        self.done = 0
        self.held_label = ""
        self.expanded = False  # a long question shown whole
        # The answer just tagged while its turn stays on screen (the turn's last untagged one):
        # votes still go to this turn until the user moves on.
        self.held: dict | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="review-box"):
            yield SafeStatic(id="review-progress", classes="title")
            with VerticalScroll():
                yield SafeStatic(id="review-body")
            yield SafeStatic(
                Text(
                    "c correct · h hallucination · d didn't know · p partial · s skip · 1-4 this turn's better answer · = tie · 0 both bad · Space next turn · Esc closes",
                    style="dim",
                )
            )
        yield Footer()

    def on_mount(self) -> None:
        self.show()
        self.watch(self.app, "theme", lambda: self.call_after_refresh(self.show), init=False)

    @property
    def current(self) -> dict | None:
        if self.held is not None:
            return self.held
        return self.queue[0] if self.queue else None

    def _answer_name(self, r: dict, i: int) -> str:
        return f"Answer {'ABCD'[i]}" if self.blind else r["lane"]

    def show(self) -> None:
        progress = self.query_one("#review-progress", Static)
        body = self.query_one("#review-body", Static)
        r = self.current
        progress.update(
            Text(
                f"Review of session {self.session_id}: {self.done} of {self.total} tagged"
                + (" · blind" if self.blind else ""),
                style="bold",
            )
        )
        if r is None:
            body.update(
                Text(
                    "Every answer of this session is tagged. Esc closes.",
                    style=self.get_component_rich_style("review--done", partial=True),
                )
            )
            return
        out = Text()
        question = self.get_component_rich_style("review--question", partial=True)
        out.append("Question: ", style=Style(bold=True) + question)
        shown, folded = fold(r["question"], self.expanded)
        out.append(shown + "\n", style=question)
        if folded:
            out.append(f"… ({folded}, e expands)\n", style="dim italic")
        out.append("\n")
        turn = self.turns.get(r["turn"], [])
        for i, other in enumerate(turn):
            mine = other["id"] == r["id"]
            out.append(
                f"[{i + 1}] {self._answer_name(other, i)}"
                + ("  ← tag this one" if mine else "")
                + "\n",
                style="bold" if mine else "dim",
            )
            if mine:
                out.append_text(self._answer_text(other))
            else:
                out.append((other["output_text"] or "").strip() + "\n\n", style="dim")
        if self.held is not None:
            out.append(
                f"Tagged {self.held_label}. Every answer of this turn is tagged: 1-4 vote, "
                "another label retags it, Space goes on.",
                style="bold",
            )
        body.update(out)

    def _writable(self) -> bool:
        """A log this user cannot write is opened read-only: say so instead of failing."""
        if self.log_db.read_only:
            self.notify(
                f"{self.log_db.path} is read-only here: tags and votes cannot be saved",
                severity="error",
            )
        return not self.log_db.read_only

    def _answer_text(self, r: dict) -> Text:
        """The answer exactly as logged (no stop-sequence tokens), each token on its probability's
        colour when it has one; then its confidence ("–" when the server sent no log-probs)."""
        out = Text()
        k = 0
        for ev in exchange_events(self.log_db, r["id"], ""):
            if not isinstance(ev, Token) or not ev.text:
                continue
            if ev.piece and ev.text == ev.piece:
                known = ev.logprob == ev.logprob  # NaN: a server sent no probability
                style = prob_style(math.exp(ev.logprob)) if known else "reverse"
                out.append(show_piece(ev.text), style=style + (" underline" if k % 2 else ""))
                k += 1
            else:  # text no token accounts for on its own (a server's answer without tokens)
                out.append(ev.text)
        confidence = r.get("confidence")
        conf = f"{confidence:.0%}" if confidence is not None else "–"
        out.append(f"\nconfidence {conf}\n\n", style="dim")
        return out

    def action_label(self, label: str) -> None:
        r = self.current
        if r is None or not self._writable():
            return
        self.log_db.add_tag(r["id"], label, tagger=self.tagger)
        self.notify(f"{self._answer_name(r, 0) if not self.blind else 'answer'} tagged {label}")
        if self.held is None:
            self.queue.pop(0)
            self.done += 1
            if not any(x["turn"] == r["turn"] for x in self.queue):
                self.held = r  # stay on this turn until the user moves on
        self.held_label = label
        self.show()

    def action_next_turn(self) -> None:
        self.held = None
        self.show()

    def action_expand(self) -> None:
        self.expanded = not self.expanded
        self.show()

    def action_skip(self) -> None:
        if self.held is not None:
            self.action_next_turn()
        elif self.queue:
            self.queue.append(self.queue.pop(0))
            self.show()

    def _turn(self) -> list[dict]:
        r = self.current
        return self.turns.get(r["turn"], []) if r else []

    def action_vote(self, index: int) -> None:
        turn = self._turn()
        if not self._writable():
            return
        if len(turn) < 2 or index >= len(turn):
            self.notify("A vote compares two or more answers of the same turn.", severity="warning")
            return
        ids = [x["id"] for x in turn]
        add_vote(
            self.log_db,
            self.session_id,
            turn[0]["turn"],
            ids,
            "better",
            ids[index],
            self.blind,
            self.tagger,
        )
        self.notify(f"vote: [{index + 1}] answered better")

    def action_vote_even(self, verdict: str) -> None:
        turn = self._turn()
        if not self._writable():
            return
        if len(turn) < 2:
            self.notify("A vote compares two or more answers of the same turn.", severity="warning")
            return
        add_vote(
            self.log_db,
            self.session_id,
            turn[0]["turn"],
            [x["id"] for x in turn],
            verdict,
            None,
            self.blind,
            self.tagger,
        )
        self.notify(f"vote: {verdict.replace('_', ' ')}")
