"""Review and tag: walk a session's untagged answers one by one; vote which lane answered better."""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Select, Static

from playground.core.db import LABELS, SessionLog, queries, token_event
from playground.core.sessions import add_vote, exchanges, find_sessions
from playground.tui.widgets.lane import prob_style, show_piece

LABEL_KEYS = {"c": "correct", "h": "hallucination", "d": "abstained", "p": "partial"}


class ReviewScreen(Screen[None]):
    """One answer at a time: c / h / d / p label it, s skips, 1-4 vote the better answer of the turn."""

    BINDINGS = [
        Binding("c", "label('correct')", "Correct"),
        Binding("h", "label('hallucination')", "Hallucination"),
        Binding("d", "label('abstained')", "Didn't know"),
        Binding("p", "label('partial')", "Partial"),
        Binding("s", "skip", "Skip"),
        Binding("1", "vote(0)", "1 better", show=False),
        Binding("2", "vote(1)", "2 better", show=False),
        Binding("3", "vote(2)", "3 better", show=False),
        Binding("4", "vote(3)", "4 better", show=False),
        Binding("equals_sign", "vote_even('tie')", "Tie", show=False),
        Binding("0", "vote_even('both_bad')", "Both bad", show=False),
        Binding("escape,q", "dismiss(None)", "Close"),
    ]

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

    def compose(self) -> ComposeResult:
        with Vertical(id="review-box"):
            yield Static(id="review-progress", classes="title")
            with VerticalScroll():
                yield Static(id="review-body")
            yield Static(
                Text(
                    "c correct · h hallucination · d didn't know · p partial · s skip · 1-4 this turn's better answer · = tie · 0 both bad · Esc closes",
                    style="dim",
                )
            )
        yield Footer()

    def on_mount(self) -> None:
        self.show()

    @property
    def current(self) -> dict | None:
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
            body.update(Text("Every answer of this session is tagged. Esc closes.", style="green"))
            return
        out = Text()
        out.append("Question: ", style="bold cyan")
        out.append(r["question"] + "\n\n", style="cyan")
        turn = self.turns.get(r["turn"], [])
        for i, other in enumerate(turn):
            mine = other["id"] == r["id"]
            out.append(
                f"[{i + 1}] {self._answer_name(other, i)}"
                + ("  ← tag this one" if mine else "")
                + "\n",
                style="bold" if mine else "dim",
            )
            toks = self.log_db.tokens(other["id"]) if mine else []
            if toks:
                for k, tok in enumerate(token_event(t, "", t["text"] or "") for t in toks):
                    known = tok.logprob == tok.logprob  # NaN: a server sent no probability
                    style = prob_style(math.exp(tok.logprob)) if known else "reverse"
                    out.append(show_piece(tok.piece), style=style + (" underline" if k % 2 else ""))
                out.append("\n\n")
            else:
                out.append(
                    (other["output_text"] or "").strip() + "\n\n", style="" if mine else "dim"
                )
        body.update(out)

    def action_label(self, label: str) -> None:
        r = self.current
        if r is None:
            return
        self.log_db.add_tag(r["id"], label, tagger=self.tagger)
        self.notify(f"{self._answer_name(r, 0) if not self.blind else 'answer'} tagged {label}")
        self.queue.pop(0)
        self.done += 1
        self.show()

    def action_skip(self) -> None:
        if self.queue:
            self.queue.append(self.queue.pop(0))
            self.show()

    def _turn(self) -> list[dict]:
        r = self.current
        return self.turns.get(r["turn"], []) if r else []

    def action_vote(self, index: int) -> None:
        turn = self._turn()
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


class SessionsScreen(Screen[str | None]):
    """Every logged session, filtered by model, mode, tag or full text. Enter reviews the session;
    r re-runs its questions in today's lanes (the app's lanes), next to the recorded answers."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("r", "rerun", "Re-run in the lanes"),
    ]

    def __init__(self, log: SessionLog) -> None:
        super().__init__()
        self.log_db = log

    def compose(self) -> ComposeResult:
        with Vertical(id="sessions-box"):
            yield Static(
                Text(
                    "Sessions: filter, then Enter reviews and tags a session, r re-runs it in today's lanes",
                    style="bold",
                ),
                classes="title",
            )
            with Horizontal(id="sessions-filters"):
                yield Input(placeholder="search questions and answers…", id="sessions-search")
                yield Input(placeholder="model…", id="sessions-model")
                yield Select(
                    [(m, m) for m in ("raw", "few-shot", "chat")],
                    prompt="any mode",
                    id="sessions-mode",
                )
                yield Select([(t, t) for t in LABELS], prompt="any tag", id="sessions-tag")
            yield DataTable(id="sessions-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("id", "when (UTC)", "lanes", "turns", "tags", "untagged")
        self.fill()
        table.focus()

    def fill(self) -> None:
        import json

        table = self.query_one(DataTable)
        table.clear()
        mode = self.query_one("#sessions-mode", Select).value
        tag = self.query_one("#sessions-tag", Select).value
        try:
            rows = find_sessions(
                self.log_db,
                model=self.query_one("#sessions-model", Input).value.strip() or None,
                mode=None if mode is Select.NULL else str(mode),
                tag=None if tag is Select.NULL else str(tag),
                text=self.query_one("#sessions-search", Input).value.strip() or None,
            )
        except Exception as e:  # a malformed search: say so, keep the screen
            self.notify(f"search: {e}", severity="warning")
            return
        for r in rows:
            table.add_row(
                r["id"],
                (r["created_at"] or "")[:19].replace("T", " "),
                Text(", ".join(json.loads(r["lanes"] or "[]"))),
                str(r["turns"]),
                str(r["tags"]),
                str(r["untagged"]),
                key=r["id"],
            )

    def on_input_changed(self, event: Input.Changed) -> None:
        self.fill()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.fill()

    def _selected(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def action_rerun(self) -> None:
        if (sid := self._selected()) is not None:
            self.dismiss("rerun:" + sid)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.dismiss(str(event.row_key.value))
