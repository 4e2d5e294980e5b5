"""What a lane's model received for the current turn: text, special tokens, ids, cache use."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from playground.tui.widgets.safe import SafeStatic


class InspectorScreen(Screen[None]):
    BINDINGS = [Binding("escape,q,i", "dismiss", "Close")]

    # Colours come from the theme (app.tcss): special tokens, and two shades that alternate so
    # that neighbouring tokens stay apart.
    COMPONENT_CLASSES = {
        "inspector--special",
        "inspector--even",
        "inspector--odd",
        "inspector--warning",
    }

    def __init__(
        self,
        title: str,
        token_ids: list[int],
        special: list[bool],
        pieces: list[str],
        reused: int,
        evaluated: int,
        dropped: int = 0,
        text: str = "",
        neutralized: int = 0,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.token_ids = token_ids
        self.special = special
        self.pieces = pieces
        self.reused = reused
        self.evaluated = evaluated
        self.dropped = dropped
        self.text = text  # what a server received (it tokenizes it: no ids here)
        self.neutralized = neutralized

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="inspector-box"):
            yield SafeStatic(id="inspector-summary", classes="title")
            yield SafeStatic(
                Text("What the model saw (special tokens highlighted):", style="bold underline")
            )
            yield SafeStatic(id="inspector-text")
            yield SafeStatic(
                Text("\nToken ids (one box per token; cached ones dim):", style="bold underline")
            )
            yield SafeStatic(id="inspector-ids")
        yield Footer()

    def on_mount(self) -> None:
        self._paint()
        self.watch(self.app, "theme", lambda: self.call_after_refresh(self._paint), init=False)

    def _paint(self) -> None:
        """Fill in the views in the colours of the current theme."""
        self.query_one("#inspector-summary", Static).update(self._summary())
        self.query_one("#inspector-text", Static).update(self._text_view())
        self.query_one("#inspector-ids", Static).update(self._id_view())

    def _summary(self) -> Text:
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
                style=self._style("warning"),
            )
        if not self.token_ids and self.text:
            summary.append(" · sent to the server as text, which its tokenizer splits")
        if self.neutralized:
            summary.append(
                f"\n{self.neutralized} control-token string(s) in the text were neutralized "
                "(‹ for <): the server would have read them as its chat template's markers",
                style=self._style("warning"),
            )
        return summary

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"inspector--{name}", partial=True)

    def _text_view(self) -> Text:
        if not self.token_ids:
            return Text(self.text)
        special_style = Style(bold=True) + self._style("special")
        out = Text()
        for piece, special in zip(self.pieces, self.special, strict=True):
            if special:
                out.append(piece, style=special_style)
            else:
                out.append(piece)
        return out

    def _id_view(self) -> Text:
        special_style = Style(bold=True) + self._style("special")
        alt = (self._style("even"), self._style("odd"))
        out = Text()
        for i, (tid, piece, special) in enumerate(
            zip(self.token_ids, self.pieces, self.special, strict=True)
        ):
            style = special_style if special else alt[i % 2]
            if i < self.reused:
                style += Style(dim=True)
            out.append(f"{tid}", style=style)
            out.append(
                f"{piece!r}"[1:-1] if not special else "", style=Style(italic=True) + alt[i % 2]
            )
            out.append(" ")
        return out
