"""F1 / ?: every key, grouped, with the id to rebind it in the config file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

if TYPE_CHECKING:
    from playground.tui.app import PlaygroundApp

INTRO = (
    "Type a question and press Enter: every lane answers at once. Tab moves between the input and the "
    "lanes, one stop per lane; a focused lane takes the single-letter keys below (the status line "
    "names it), and any other letter goes back to the question box. Ctrl+P opens the command "
    "palette, which offers every action with its key. Keys can be changed in the config file "
    '([keys] id = "key").'
)


EXTRA = [
    ("Enter", "Send the question to every lane", None),
    ("Ctrl+J", "New line in the question", None),
    ("Up / Down", "Question history", None),
    ("Tab / Shift+Tab", "Move between the input and the lanes", None),
    ("Ctrl+P", "Command palette: every action, for any lane", None),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f1,question_mark", "dismiss", "Close")]

    @classmethod
    def for_app(cls, app: PlaygroundApp) -> HelpScreen:
        """Every app-wide key and every lane key, as bound now (the config file may rebind them)."""
        from playground.tui.keys import ANYWHERE
        from playground.tui.widgets.lane import LaneView

        def rows(bindings):
            for b in bindings:
                yield (app.key_display(b), b.description, b.id)

        return cls(
            EXTRA + list(rows(ANYWHERE)),
            list(rows(LaneView.BINDINGS)),
            str(app.config.path or ""),
        )

    def __init__(self, app_bindings, lane_bindings, config_path: str) -> None:
        super().__init__()
        self.app_bindings = app_bindings
        self.lane_bindings = lane_bindings
        self.config_path = config_path

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(Text("playground — keys", style="bold"), classes="title")
            yield Static(Text(INTRO), classes="intro")
            yield Static(self._table("Anywhere", self.app_bindings))
            yield Static(self._table("In a focused lane", self.lane_bindings))
            yield Static(
                Text(f"Config file: {self.config_path}   ·   Esc closes this screen", style="dim")
            )

    @staticmethod
    def _table(title: str, bindings) -> Table:
        t = Table(title=title, title_justify="left", expand=True, show_edge=False)
        t.add_column("key", style="bold", no_wrap=True)
        t.add_column("action")
        t.add_column("id (for the config file)", style="dim")
        for key, description, binding_id in bindings:
            t.add_row(Text(key), Text(description), Text(binding_id or ""))
        return t
