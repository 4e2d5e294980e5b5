"""A lane's header: its number, model and family, and the settings of the answer shown.

When the lane's settings changed after the answer on screen was made, a second line says what the
next message will use, so the header never claims settings that the answer did not have.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text

from playground.core.engine import Sampling
from playground.core.playground import Lane
from playground.core.prompts import penalty
from playground.tui.widgets.safe import SafeStatic

if TYPE_CHECKING:
    from playground.tui.widgets.answer import Answer

COMPARED = ("temperature", "top_p", "top_k", "max_tokens", "seed")


def settings_text(mode: str, abstain: float | None, s: dict, search: str | None = None) -> str:
    """One line: mode, search, abstention target and sampling, as the header shows them."""
    parts = [mode]
    if search:
        parts.append("search tool" if search == "tool" else "search first")
    if abstain is not None:
        parts.append(f"abstain T={abstain:g} (wrong costs {penalty(abstain):.3g})")
    parts.append("greedy" if not s.get("temperature") else f"temp {s['temperature']:g}")
    if s.get("temperature") and s.get("top_p", 1) < 1:
        parts.append(f"top-p {s['top_p']:g}")
    if s.get("temperature") and s.get("top_k"):
        parts.append(f"top-k {s['top_k']}")
    parts.append(f"max {s.get('max_tokens')}")
    if s.get("seed") is not None:
        parts.append(f"seed {s['seed']}")
    return " · ".join(parts)


class LaneHeader(SafeStatic):
    """The top of a lane; its colours come from the theme (`app.tcss`)."""

    COMPONENT_CLASSES = {
        "lane-header--unknown",  # a model the catalog does not know
        "lane-header--tuned",
        "lane-header--base",
        "lane-header--next",  # the settings of the next message, when they differ
    }

    def show(self, lane: Lane, answer: Answer | None, default: Sampling) -> None:
        """Describe *lane* with the settings of *answer* (default: the app's sampling)."""
        self.update(self.describe(lane, answer, default))

    def describe(self, lane: Lane, answer: Answer | None, default: Sampling) -> Text:
        def style(name: str) -> Style:
            return self.get_component_rich_style(f"lane-header--{name}", partial=True)

        bold = Style(bold=True)
        spec = lane.model_spec
        t = Text()
        t.append(f"{lane.index + 1} ", style="bold reverse")
        t.append(" ")
        if spec is None:
            t.append(lane.spec.model, style=bold + style("unknown"))
        else:
            t.append(spec.id, style="bold")
            t.append(" · ")
            kind = "base" if spec.kind == "base" else "tuned"
            t.append(kind, style=bold + style(kind))
            t.append(" · " + spec.family_name(lane.model.info if lane.model else None))
        t.append("\n")
        shown = answer.settings if answer and answer.settings else None
        mode = answer.mode if shown else lane.spec.mode
        abstain = answer.abstain if shown else lane.spec.abstain
        search = answer.search if shown else lane.spec.search
        settings = shown or (lane.sampling or default).as_dict()
        t.append(settings_text(mode, abstain, settings, search))
        nxt = (lane.sampling or default).as_dict()
        if shown and (
            lane.spec.mode != mode
            or lane.spec.abstain != abstain
            or lane.spec.search != search
            or any(nxt[k] != settings.get(k) for k in COMPARED)
        ):
            t.append("\nnext: ", style=style("next"))
            t.append(
                settings_text(lane.spec.mode, lane.spec.abstain, nxt, lane.spec.search),
                style=style("next"),
            )
        return t
