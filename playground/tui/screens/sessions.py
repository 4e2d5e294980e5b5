"""Every logged session: filter by model, mode, tag or text; review one, or re-run it in the lanes."""

from __future__ import annotations

import json
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Select

from playground.core.db import LABELS, SessionLog
from playground.core.sessions import find_sessions
from playground.core.textsafe import visible
from playground.tui.screens.forms import Confirm
from playground.tui.widgets.safe import SafeStatic


@dataclass(frozen=True)
class SessionChoice:
    """What the user picked on the sessions screen."""

    session_id: str
    rerun: bool = False  # True: ask its questions again in today's lanes; False: review and tag it


class SessionsScreen(Screen[SessionChoice | None]):
    """Every logged session, filtered by model, mode, tag or full text. Enter reviews the session;
    r re-runs its questions in today's lanes (the app's lanes), next to the recorded answers.

    The screen opens in the search box, where letters are text: r acts only in the table (Tab or
    Down gets there), and asks before it runs anything."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("r", "rerun", "Re-run in the lanes"),
    ]

    def __init__(self, log: SessionLog) -> None:
        super().__init__()
        self.log_db = log

    def compose(self) -> ComposeResult:
        with Vertical(id="sessions-box"):
            yield SafeStatic(
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
        self.query_one("#sessions-search", Input).focus()

    def fill(self) -> None:
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
            self.notify(visible(f"search: {e}"), severity="warning", markup=False)
            return
        for r in rows:
            table.add_row(
                r["id"],
                (r["created_at"] or "")[:19].replace("T", " "),
                Text(visible(", ".join(json.loads(r["lanes"] or "[]")))),
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

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """r re-runs only from the table: in a text box it is a letter."""
        if action == "rerun":
            return True if isinstance(self.focused, DataTable) else None
        return True

    def action_rerun(self) -> None:
        if (sid := self._selected()) is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.dismiss(SessionChoice(sid, rerun=True))

        self.app.push_screen(
            Confirm(f"Ask the questions of session {sid} again in today's lanes (a new session)?"),
            answered,
        )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in a filter box moves to the table, where Enter opens a session."""
        self.query_one(DataTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.dismiss(SessionChoice(str(event.row_key.value)))
