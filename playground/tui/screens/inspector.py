"""What a lane's model received for the current turn: text, special tokens, ids, cache use."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

SPECIAL = "bold white on dark_magenta"
ALT = ("on grey15", "on grey23")


class InspectorScreen(Screen[None]):
    BINDINGS = [Binding("escape,q,i", "dismiss", "Close")]

    def __init__(
        self,
        title: str,
        token_ids: list[int],
        special: list[bool],
        pieces: list[str],
        reused: int,
        evaluated: int,
        dropped: int = 0,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.token_ids = token_ids
        self.special = special
        self.pieces = pieces
        self.reused = reused
        self.evaluated = evaluated
        self.dropped = dropped

    def compose(self) -> ComposeResult:
        n = len(self.token_ids)
        summary = Text()
        summary.append(self.title_text + "\n", style="bold")
        summary.append(
            f"{n} tokens · {sum(self.special)} special · {self.reused} from the KV cache · "
            f"{self.evaluated} evaluated for this turn"
        )
        if self.dropped:
            summary.append(
                f" · {self.dropped} oldest turn(s) dropped to fit the context window",
                style="yellow",
            )
        with VerticalScroll(id="inspector-box"):
            yield Static(summary, classes="title")
            yield Static(
                Text("What the model saw (special tokens highlighted):", style="bold underline")
            )
            yield Static(self._text_view(), id="inspector-text")
            yield Static(
                Text("\nToken ids (one box per token; cached ones dim):", style="bold underline")
            )
            yield Static(self._id_view(), id="inspector-ids")
        yield Footer()

    def _text_view(self) -> Text:
        out = Text()
        for piece, special in zip(self.pieces, self.special, strict=True):
            if special:
                out.append(piece, style=SPECIAL)
            else:
                out.append(piece)
        return out

    def _id_view(self) -> Text:
        out = Text()
        for i, (tid, piece, special) in enumerate(
            zip(self.token_ids, self.pieces, self.special, strict=True)
        ):
            style = SPECIAL if special else ALT[i % 2]
            if i < self.reused:
                style += " dim"
            out.append(f"{tid}", style=style)
            out.append(f"{piece!r}"[1:-1] if not special else "", style="italic " + ALT[i % 2])
            out.append(" ")
        return out
