"""One lane: a header with the model and its settings, the conversation, and a token heat map.

Everything that came from a user or a model is put into `rich.text.Text` objects as plain strings,
never parsed as markup, so `[bold red]` in an answer is shown as typed.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import replace

from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.dom import NoScreen
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from playground.core.db import LABELS
from playground.core.engine import Sampling
from playground.core.errors import PlaygroundError
from playground.core.events import (
    Finished,
    ModelLoaded,
    ModelLoading,
    PromptProgress,
    PromptReady,
    SearchDone,
    SearchStarted,
    Started,
    Token,
)
from playground.core.lanespec import LaneSpec
from playground.core.playground import Lane
from playground.core.prompts import MODES
from playground.core.search.loop import COPIED_MARK
from playground.tui.screens.forms import TextPrompt
from playground.tui.widgets.answer import Answer, prob_style, show_piece
from playground.tui.widgets.lane_header import LaneHeader
from playground.tui.widgets.safe import SafeStatic

LAYOUT_EVERY_S = 0.3
FOLD_LINES = 4  # a longer question shows its first lines until e expands it
FOLD_CHARS = 240
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
NEW_CONVERSATION = ": a new conversation starts here"
TARGETS = (0.5, 0.75, 0.9)  # t cycles through these abstention targets
SEARCH_ORDER = (None, "tool", "first")
SEARCH_NAMES = {
    None: "search off",
    "tool": "search tool on (the model may search)",
    "first": "search first (results before answering)",
}


def fold(question: str, expanded: bool) -> tuple[str, str]:
    """A long question's first lines and what was left out ("12 more lines"), or the whole
    question and "" when it is short or expanded."""
    lines = question.split("\n")
    if expanded or (len(lines) <= FOLD_LINES and len(question) <= FOLD_CHARS):
        return question, ""
    shown = "\n".join(lines[:FOLD_LINES])[:FOLD_CHARS]
    rest_lines = len(lines) - len(shown.split("\n"))  # lines after the last one (partly) shown
    left = len(question) - len(shown)
    more = (
        f"{rest_lines} more line{'s' if rest_lines != 1 else ''}"
        if rest_lines > 0
        else f"{left} more characters"
    )
    return shown, more


class LaneView(Vertical, can_focus=True):
    """A lane. Focus it (Tab or click) to use its keys."""

    BINDINGS = [
        Binding("m", "cycle_mode", "Mode", id="lane.mode"),
        Binding("a", "toggle_abstain", "Abstain", id="lane.abstain"),
        Binding("t", "cycle_target", "Target T", show=False, id="lane.target"),
        Binding("v", "toggle_tokens", "Tokens", id="lane.tokens"),
        Binding("f", "cycle_search", "Search", id="lane.search"),
        Binding(
            "e", "toggle_results", "Expand question/results", show=False, id="lane.expand_results"
        ),
        Binding("i", "inspect", "Inspect", id="lane.inspect"),
        Binding("s", "settings", "Settings", id="lane.settings"),
        Binding("c", "tag('correct')", "Correct", show=False, id="lane.tag_correct"),
        Binding("h", "tag('hallucination')", "Halluc.", show=False, id="lane.tag_hallucination"),
        Binding("d", "tag('abstained')", "Didn't know", show=False, id="lane.tag_abstained"),
        Binding("p", "tag('partial')", "Partial", show=False, id="lane.tag_partial"),
        Binding("n", "tag_note", "Tag+note", show=False, id="lane.tag_note"),
        Binding("b", "vote", "Better", show=False, id="lane.vote_better"),
        Binding("u", "undo", "Undo tag/vote", show=False, id="lane.undo"),
        Binding("x", "cancel", "Cancel lane", show=False, id="lane.cancel"),
        Binding("r", "regenerate", "Regenerate", show=False, id="lane.regenerate"),
        Binding("y", "copy_answer", "Copy", show=False, id="lane.copy"),
        Binding("Y", "copy_code", "Copy code", show=False, id="lane.copy_code"),
        Binding("delete", "remove_lane", "Remove lane", show=False, id="lane.remove"),
        Binding("less_than_sign", "move_lane(-1)", "Move left", show=False, id="lane.move_left"),
        Binding(
            "greater_than_sign", "move_lane(1)", "Move right", show=False, id="lane.move_right"
        ),
        Binding("left", "token_cursor(-1)", "Prev token", show=False, id="lane.token_prev"),
        Binding("right", "token_cursor(1)", "Next token", show=False, id="lane.token_next"),
        # The conversation scrolls from the lane itself: one Tab stop per lane, not a second,
        # hidden one on the scrolling body.
        Binding("up", "scroll_body('up')", "Scroll up", show=False, id="lane.scroll_up"),
        Binding("down", "scroll_body('down')", "Scroll down", show=False, id="lane.scroll_down"),
        Binding("pageup", "scroll_body('page_up')", "Page up", show=False, id="lane.page_up"),
        Binding(
            "pagedown", "scroll_body('page_down')", "Page down", show=False, id="lane.page_down"
        ),
    ]

    # What a lane offers in a replay, where no model runs: looking, never changing or tagging.
    VIEW_ONLY = {
        "toggle_tokens",
        "toggle_results",
        "inspect",
        "copy_answer",
        "copy_code",
        "token_cursor",
        "scroll_body",
    }

    # Colours come from the theme (app.tcss), so light themes work too.
    COMPONENT_CLASSES = {
        "lane--question",  # "You: " and the question
        "lane--tag-correct",
        "lane--tag-hallucination",
        "lane--tag-abstained",
        "lane--tag-partial",
        "lane--warning",  # cancelled, a search stopped or cut short
        "lane--error",
        "lane--search",  # a search's label and query
        "lane--chosen",  # the sampled token among the alternatives
    }

    token_view: reactive[bool] = reactive(False)

    # -- messages: what the lane asks of the screen that owns the playground ------------------
    class LaneMessage(Message):
        def __init__(self, view: LaneView) -> None:
            self.view = view
            super().__init__()

    class SpecChanged(LaneMessage):
        """The lane's model, mode, abstention or search changes from the next message on."""

        def __init__(self, view: LaneView, spec: LaneSpec, why: str) -> None:
            self.spec = spec
            self.why = why
            super().__init__(view)

    class Tagged(LaneMessage):
        """Tag the lane's latest answer with a label (and a note)."""

        def __init__(self, view: LaneView, label: str, note: str | None = None) -> None:
            self.label = label
            self.note = note
            super().__init__(view)

    class Moved(LaneMessage):
        def __init__(self, view: LaneView, delta: int) -> None:
            self.delta = delta
            super().__init__(view)

    class SettingsWanted(LaneMessage):
        """Open the settings form for this lane."""

    class InspectWanted(LaneMessage):
        """Show what the model received for the current answer."""

    class VotedBetter(LaneMessage):
        """This lane answered the last question better than the others."""

    class UndoWanted(LaneMessage):
        """Take back the last tag or vote given to this lane's latest answer."""

    class CancelWanted(LaneMessage):
        pass

    class RegenerateWanted(LaneMessage):
        pass

    class RemoveWanted(LaneMessage):
        pass

    def __init__(self, lane: Lane, **kwargs) -> None:
        super().__init__(id=f"view-{lane.key}", classes="lane", **kwargs)
        self.lane = lane
        self.lane_key = lane.key
        self.last_target = 0.75  # the abstention target that a toggles back on
        self.answers: list[Answer] = []
        self.notes: list[tuple[int, str]] = []  # (position in answers, notice) e.g. mode changes
        self._header_default = Sampling()  # the app's sampling, for the header
        self._header_due = True
        self.status_text = Text("")
        self.load_state = "waiting"
        self.cursor: int | None = None
        self.dirty = True  # header, status, detail, placeholder
        self.dirty_answers: set[int] = set()
        self._answer_widgets: list[Static] = []
        self._last_layout = 0.0
        self._shown_load_state: str | None = None

    def compose(self) -> ComposeResult:
        yield LaneHeader(id="lane-header", classes="lane-header")
        with VerticalScroll(classes="lane-body", can_focus=False):
            yield SafeStatic(id="lane-placeholder", classes="lane-placeholder")
        yield SafeStatic(id="lane-detail", classes="lane-detail")
        yield SafeStatic(id="lane-status", classes="lane-status")

    # -- events from the engine -------------------------------------------------------------
    @property
    def current(self) -> Answer | None:
        return self.answers[-1] if self.answers else None

    def begin(self, question: str) -> Answer:
        ans = Answer(question=question)
        self.answers.append(ans)
        widget = SafeStatic(classes="lane-answer")
        self._answer_widgets.append(widget)
        body = self.query_one(".lane-body", VerticalScroll)
        body.mount(widget)
        body.scroll_end(animate=False, immediate=False)  # a new question is always in view
        self.cursor = None
        self.dirty = True
        self.dirty_answers.add(len(self.answers) - 1)
        return ans

    def clear(self) -> None:
        """Forget the conversation on screen (a new session)."""
        self.answers.clear()
        self.notes.clear()
        for w in self.query(".lane-answer, .lane-note"):
            w.remove()
        self._answer_widgets.clear()
        self.dirty_answers.clear()
        self.dirty = True

    def mark_answer(self, ans: Answer | None = None) -> None:
        """Repaint one answer (the current one by default) on the next frame."""
        ans = ans or self.current
        if ans is not None:
            self.dirty_answers.add(self.answers.index(ans))

    def apply(self, ev) -> None:
        """Take one engine event (called on the UI thread, in batches)."""
        ans = self.current
        if isinstance(ev, ModelLoading):
            self.load_state = f"loading {ev.model_id}…"
        elif isinstance(ev, ModelLoaded):
            self.load_state = "ready: type a question below and press Enter"
        elif ans is None:
            return
        elif isinstance(ev, Started):
            ans.exchange_id = ev.exchange_id
            ans.status = "starting"
            ans.settings = ev.sampling
            ans.mode, ans.abstain, ans.model_id = ev.mode, ev.abstain, ev.model_id
            ans.search = ev.search
        elif isinstance(ev, PromptProgress):
            ans.prompt_progress = ev.evaluated / ev.total if ev.total else None
        elif isinstance(ev, PromptReady):
            ans.prompt = ev
            ans.status = "streaming"
        elif isinstance(ev, SearchStarted):
            ans.searches.append(
                {"query": ev.query, "kind": ev.kind, "position": ev.position, "pending": True}
            )
        elif isinstance(ev, SearchDone):
            pending = next(
                (x for x in ans.searches if x.get("pending") and x["query"] == ev.query), None
            )
            entry = pending if pending is not None else {}
            if pending is None:
                ans.searches.append(entry)
            entry.update(
                query=ev.query,
                kind=ev.kind,
                position=ev.position,
                pending=False,
                results=ev.results,
                error=ev.error,
                seconds=ev.seconds,
                copied=ev.copied,
                expanded=entry.get("expanded", False),
            )
        elif isinstance(ev, Token):
            ans.text += ev.text
            if ev.token_id != -1:
                ans.tokens.append(ev)
        elif isinstance(ev, Finished):
            ans.status = ev.status
            ans.error = ev.error
            ans.finish_reason = ev.finish_reason
            ans.stats = ev.stats
            ans.exchange_id = ev.exchange_id or ans.exchange_id
            if ev.stats is not None:  # drop the tokens of a stop sequence: they are not the answer
                ans.tokens = ans.tokens[: ev.stats.answer_tokens]
            if ev.status != "error":
                ans.text = ev.text
        self.dirty = True
        if ans is not None:
            self.mark_answer(ans)

    def note(self, text: str) -> None:
        """A line between answers; "X: a new conversation starts here" right after "Y: a new
        conversation starts here" becomes one line "Y · X: a new conversation starts here"."""
        pos = len(self.answers)
        body = self.query_one(".lane-body", VerticalScroll)
        last = body.children[-1] if body.children else None
        if (
            self.notes
            and self.notes[-1][0] == pos
            and self.notes[-1][1].endswith(NEW_CONVERSATION)
            and text.endswith(NEW_CONVERSATION)
            and isinstance(last, Static)
            and last.has_class("lane-note")
        ):
            text = self.notes.pop()[1].removesuffix(NEW_CONVERSATION) + " · " + text
            last.update(Text(f"— {text} —", style="italic dim"))
        else:
            body.mount(SafeStatic(Text(f"— {text} —", style="italic dim"), classes="lane-note"))
        self.notes.append((pos, text))
        body.scroll_end(animate=False, immediate=False)
        self.dirty = True

    # -- rendering --------------------------------------------------------------------------
    def show_header(self, default: Sampling) -> None:
        """Describe the lane in its header on the next frame (default: the app's sampling)."""
        self._header_default = default
        self._header_due = True
        self.dirty = True

    def on_mount(self) -> None:
        self.watch(self.app, "theme", self._restyle, init=False)

    def _restyle(self) -> None:
        """Another theme: paint the header and every answer again in its colours."""
        self._header_due = True
        self._shown_load_state = None
        self.dirty = True
        self.dirty_answers.update(range(len(self.answers)))
        self.call_after_refresh(self.refresh_view)

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"lane--{name}", partial=True)

    def refresh_view(self) -> None:
        """Repaint what changed since the last call (the app calls this on a timer).

        Finished answers are widgets of their own that are not touched again. While an answer
        streams, its text is repainted every frame but the screen layout (the costly part, which
        competes with the model threads for the CPU) is redone at most every LAYOUT_EVERY_S."""
        if self._spinning():
            self.dirty = True  # the spinner turns every frame
        if not (self.dirty or self.dirty_answers) or not self.is_mounted:
            return
        body = self.query_one(".lane-body", VerticalScroll)
        at_bottom = body.scroll_y >= body.max_scroll_y - 1
        now = time.monotonic()
        for i in sorted(self.dirty_answers):
            if i < len(self._answer_widgets):
                ans = self.answers[i]
                streaming = ans.status in ("starting", "streaming")
                layout = not streaming or now - self._last_layout >= LAYOUT_EVERY_S
                if layout:
                    self._last_layout = now
                self._answer_widgets[i].update(self._render_answer(ans), layout=layout)
        self.dirty_answers.clear()
        if self.dirty:
            self.dirty = False
            if self._header_due:
                self._header_due = False
                self.query_one(LaneHeader).show(self.lane, self.current, self._header_default)
            placeholder = self.query_one("#lane-placeholder", Static)
            if placeholder.display != (not self.answers):
                placeholder.display = not self.answers
            shown = self._spinner() + self.load_state
            if shown != self._shown_load_state:
                self._shown_load_state = shown
                not_ready = self.load_state.startswith("Not ready")
                style = self._style("error") if not_ready else Style(dim=True)
                placeholder.update(Text(shown, style=style))
            self.query_one("#lane-detail", Static).update(self._render_detail(), layout=False)
            self.query_one("#lane-status", Static).update(self._render_status(), layout=False)
        streaming = self.current is not None and self.current.status in ("starting", "streaming")
        if at_bottom and streaming:  # a finished turn is scrolled by align_turns, with the others
            body.scroll_end(animate=False, immediate=False)

    def _loading(self) -> bool:
        return self.load_state.startswith("loading")

    def _spinning(self) -> bool:
        """A model loads, or a prompt is evaluated before the first token: slow, silent work."""
        ans = self.current
        waiting = ans is not None and (
            ans.status in ("waiting", "starting") or (ans.status == "streaming" and not ans.tokens)
        )
        return self._loading() or waiting

    def _spinner(self) -> str:
        if not self._spinning():
            return ""
        return SPINNER[int(time.monotonic() * 10) % len(SPINNER)] + " "

    def conversation_text(self) -> str:
        """The conversation as shown, as plain text (for tests and copying)."""
        parts = [self.load_state] if not self.answers else []
        for i, a in enumerate(self.answers):
            parts += [f"— {text} —" for pos, text in self.notes if pos == i]
            parts.append(self._render_answer(a).plain)
        parts += [f"— {text} —" for pos, text in self.notes if pos == len(self.answers)]
        return "\n".join(parts)

    def _render_answer(self, ans: Answer) -> Text:
        bold = Style(bold=True)
        out = Text()
        out.append("You: ", style=bold + self._style("question"))
        question, folded = fold(ans.question, ans.expanded)
        out.append(question + "\n", style=self._style("question"))
        if folded:
            out.append(f"… ({folded}, e expands)\n", style="dim italic")
        if ans.tags:  # only the newest tag counts (exports, the lab), so only it is shown
            tag = ans.tags[-1]
            known = tag in ("correct", "hallucination", "abstained", "partial")
            out.append(f" {tag} ", style=bold + self._style(f"tag-{tag}") if known else "reverse")
            out.append("\n")
        if self.token_view and ans is self.current and ans.tokens:
            out.append_text(self._render_tokens(ans))
        else:
            pos = 0
            for search in sorted(ans.searches, key=lambda x: x["position"]):
                out.append(ans.text[pos : search["position"]])
                pos = max(pos, search["position"])
                out.append_text(self._render_search(search))
            body = ans.text[pos:]
            if not ans.searches:
                body = body.strip()
            out.append(body or ("…" if ans.status in ("waiting", "starting", "streaming") else ""))
        if ans.status == "cancelled":
            out.append("  [cancelled]", style=bold + self._style("warning"))
        elif ans.status == "error":
            out.append(f"\n{ans.error}", style=bold + self._style("error"))
        if ans.remark:
            out.append(f"\n— {ans.remark} —", style="italic dim")
        out.append("\n")
        return out

    def _render_search(self, search: dict) -> Text:
        bold, warning = Style(bold=True), self._style("warning")
        out = Text()
        kind = search["kind"]
        if kind == "invented":
            out.append(
                "\n⚠ the model started writing its own search results: stopped\n",
                style=bold + warning,
            )
            return out
        if kind == "unterminated":
            out.append(
                f"\n⚠ unterminated search: <SEARCH_START>{search['query']}\n",
                style=bold + warning,
            )
            return out
        label = "searched first" if kind == "first" else "search"
        out.append(f"\n» {label}: ", style=bold + self._style("search"))
        out.append(search["query"], style=self._style("search"))
        if search.get("copied"):
            out.append(f"  {COPIED_MARK}", style=bold + warning)
        if search.get("pending"):
            out.append("  searching…\n", style="dim")
            return out
        if kind == "limit":
            out.append("  (search limit reached: the model must answer)\n", style=warning)
            return out
        if search.get("error"):
            out.append(f"  search failed: {search['error']}\n", style=self._style("error"))
            return out
        results = search.get("results") or []
        out.append(
            f"  {len(results)} result{'s' if len(results) != 1 else ''}, {search.get('seconds', 0) * 1000:.0f} ms",
            style="dim",
        )
        if not search.get("expanded"):
            out.append("  (e expands)\n", style="dim")
            return out
        out.append("\n")
        for i, r in enumerate(results, 1):
            out.append(f"  [{i}] {r.get('title', '')} ", style="bold")
            out.append(f"({r.get('source', '')})\n", style="dim")
            out.append(f"  {r.get('text', '')}\n", style="dim")
        return out

    def action_toggle_results(self) -> None:
        """Expand (or fold again) the latest answer's long question and its search results."""
        ans = self.current
        if ans is None or not (ans.searches or fold(ans.question, False)[1]):
            return
        expand = not (ans.expanded and all(x.get("expanded") for x in ans.searches))
        ans.expanded = expand
        for x in ans.searches:
            x["expanded"] = expand
        self.mark_answer(ans)
        self.refresh_view()

    def _render_tokens(self, ans: Answer) -> Text:
        out = Text()
        for i, tok in enumerate(ans.tokens):
            known = tok.logprob == tok.logprob  # NaN: a server that sends no probabilities
            style = Style.parse(prob_style(math.exp(tok.logprob)) if known else "reverse") + Style(
                underline=i % 2 == 1
            )
            if i == self.cursor:
                style += Style(reverse=True, bold=True)
            out.append(show_piece(tok.piece), style + Style(meta={"token": i}))
        return out

    def _render_detail(self) -> Text:
        ans = self.current
        if not self.token_view or ans is None or not ans.tokens:
            return Text("")
        i = self.cursor if self.cursor is not None else len(ans.tokens) - 1
        i = max(0, min(i, len(ans.tokens) - 1))
        tok = ans.tokens[i]
        out = Text()
        out.append(f"token {i + 1}/{len(ans.tokens)} ", style="bold")
        out.append(repr(tok.piece))
        prob = (
            f"p={math.exp(tok.logprob):.1%}"
            if tok.logprob == tok.logprob
            else "no probability sent by the server"
        )
        tid = f"id {tok.token_id}" if tok.token_id >= 0 else "id unknown (remote)"
        out.append(f"  {tid}  {prob}\n", style="dim")
        for alt in tok.top:
            chosen = alt.token_id == tok.token_id
            out.append(f"{math.exp(alt.logprob):6.1%} ", style="bold" if chosen else "")
            out.append(
                repr(alt.text), style=Style(bold=True) + self._style("chosen") if chosen else ""
            )
            out.append("  ")
        return out

    def _render_status(self) -> Text:
        ans = self.current
        out = Text()
        if self._loading() and ans is not None:  # a new model for the next question
            out.append(self._spinner() + self.load_state + "\n", style="bold")
        if ans is None:
            return out
        s = ans.stats
        if ans.status in ("starting", "streaming") and ans.tokens:
            el = ans.tokens[-1].elapsed - ans.tokens[0].elapsed
            tps = (len(ans.tokens) - 1) / el if el > 0 else 0.0
            out.append(f"streaming · {len(ans.tokens)} tokens · {tps:.0f} tok/s", style="bold")
        elif ans.status in ("starting", "streaming", "waiting"):
            out.append(
                self._spinner()
                + (
                    "waiting for the model…"
                    if ans.status == "waiting"
                    else "evaluating the prompt…"
                    + (f" {ans.prompt_progress:.0%}" if ans.prompt_progress is not None else "")
                ),
                style="dim",
            )
        elif s is not None:
            parts = [
                ans.status if ans.status != "complete" else f"done ({ans.finish_reason})",
                f"{s.completion_tokens} tok",
                f"{s.tokens_per_second:.0f} tok/s" if s.tokens_per_second else "",
                f"first token {s.time_to_first_token * 1000:.0f} ms"
                if s.time_to_first_token is not None
                else "",
                f"confidence {s.confidence:.0%}"
                if s.confidence is not None and math.isfinite(s.confidence)
                else "confidence –",  # no log-probabilities (a server that sends none)
                f"prompt {s.prompt_tokens} ({s.reused} cached)",
            ]
            out.append(" · ".join(p for p in parts if p))
        elif ans.status == "error":
            out.append("error", style=Style(bold=True) + self._style("error"))
        return out

    # -- interaction --------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """In a replay (a read-only screen) only the keys that look at the lane act."""
        try:
            read_only = bool(getattr(self.screen, "read_only", False))
        except NoScreen:  # detached
            return False
        return action in self.VIEW_ONLY or not read_only

    def action_scroll_body(self, how: str) -> None:
        body = self.query_one(".lane-body", VerticalScroll)
        getattr(body, f"scroll_{how}")(animate=False)

    def action_toggle_tokens(self) -> None:
        self.token_view = not self.token_view

    def watch_token_view(self, value: bool) -> None:
        self.set_class(value, "tokens")
        self.dirty = True
        self.mark_answer()
        self.refresh_view()

    def action_token_cursor(self, delta: int) -> None:
        ans = self.current
        if not self.token_view or ans is None or not ans.tokens:
            return
        n = len(ans.tokens)
        self.cursor = (n - 1 if self.cursor is None else self.cursor) + delta
        self.cursor = max(0, min(n - 1, self.cursor))
        self.dirty = True
        self.mark_answer()
        self.refresh_view()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        index = event.style.meta.get("token") if event.style else None
        if index is not None and index != self.cursor:
            self.cursor = index
            self.dirty = True
            self.mark_answer()
            self.refresh_view()

    # -- lane keys: widget-only ones act here, the others post a message to the lanes screen ----
    def action_cycle_mode(self) -> None:
        spec = self.lane.spec
        mode = MODES[(MODES.index(spec.mode) + 1) % len(MODES)]
        self.post_message(self.SpecChanged(self, replace(spec, mode=mode), f"mode is now {mode}"))

    def action_cycle_search(self) -> None:
        spec = self.lane.spec
        nxt = SEARCH_ORDER[(SEARCH_ORDER.index(spec.search) + 1) % len(SEARCH_ORDER)]
        self.post_message(self.SpecChanged(self, replace(spec, search=nxt), SEARCH_NAMES[nxt]))

    def action_toggle_abstain(self) -> None:
        spec = self.lane.spec
        if spec.abstain is None:
            target = self.last_target
            why = f"abstention on, T={target:g}"
            self.post_message(self.SpecChanged(self, replace(spec, abstain=target), why))
        else:
            self.last_target = spec.abstain
            self.post_message(self.SpecChanged(self, replace(spec, abstain=None), "abstention off"))

    def action_cycle_target(self) -> None:
        spec = self.lane.spec
        cur = spec.abstain
        nxt = next((x for x in TARGETS if cur is None or x > cur + 1e-9), TARGETS[0])
        self.last_target = nxt
        why = f"abstention T={nxt:g}"
        self.post_message(self.SpecChanged(self, replace(spec, abstain=nxt), why))

    def action_settings(self) -> None:
        self.post_message(self.SettingsWanted(self))

    def action_inspect(self) -> None:
        self.post_message(self.InspectWanted(self))

    def action_tag(self, label: str, note: str | None = None) -> None:
        self.post_message(self.Tagged(self, label, note))

    def action_tag_note(self) -> None:
        def check(value: str) -> None:
            label, _, _ = value.strip().partition(" ")
            if not any(x.startswith(label.lower()) for x in LABELS) or not label:
                raise PlaygroundError(f"start with a label: {', '.join(LABELS)}")

        def done(value: str | None) -> None:
            if value:
                label, _, note = value.strip().partition(" ")
                full = next(x for x in LABELS if x.startswith(label.lower()))
                self.action_tag(full, note.strip() or None)

        self.app.push_screen(
            TextPrompt(
                "Tag the answer: a label, then a note",
                "hallucination invented a film",
                validate=check,
            ),
            done,
        )

    def action_vote(self) -> None:
        self.post_message(self.VotedBetter(self))

    def action_undo(self) -> None:
        self.post_message(self.UndoWanted(self))

    def action_cancel(self) -> None:
        self.post_message(self.CancelWanted(self))

    def action_regenerate(self) -> None:
        self.post_message(self.RegenerateWanted(self))

    def action_remove_lane(self) -> None:
        self.post_message(self.RemoveWanted(self))

    def action_move_lane(self, delta: int) -> None:
        self.post_message(self.Moved(self, delta))

    def action_copy_answer(self) -> None:
        if self.current is None or not self.current.text.strip():
            self.app.notify("Nothing to copy yet: this lane has no answer.", severity="warning")
            return
        self.app.copy_to_clipboard(self.current.text.strip())
        self.app.notify("Answer copied to the clipboard.")

    def action_copy_code(self) -> None:
        if self.current is None:
            self.app.notify("Nothing to copy yet: this lane has no answer.", severity="warning")
            return
        blocks = re.findall(r"```[^\n]*\n(.*?)```", self.current.text, re.S)
        if not blocks:
            self.app.notify("No code block in this answer.", severity="warning")
            return
        self.app.copy_to_clipboard(blocks[-1])
        self.app.notify("Code block copied to the clipboard.")


def body_of(view: LaneView) -> VerticalScroll | None:
    """A lane's scrolling body, or None for a lane being replaced (set_lanes removes it while a
    layout callback that captured it may still run: that must not end the app)."""
    if not view.is_attached:
        return None
    found = view.query(".lane-body").results(VerticalScroll)
    return next(iter(found), None)


def bodies_of(views: list[LaneView]) -> list[VerticalScroll]:
    return [b for b in map(body_of, views) if b is not None]


def following(views: list[LaneView]) -> list[VerticalScroll]:
    """The lane bodies that show their end (the user did not scroll back): they follow new text."""
    return [b for b in bodies_of(views) if b.scroll_y >= b.max_scroll_y - 1]


def align_turns(views: list[LaneView], on: bool = True) -> tuple[bool, int | None]:
    """Start each turn at the same height in every lane, so the same question sits side by side
    (lanes side by side or in a grid; *on* False, when they are stacked, undoes it).

    A turn is its answers and the notes before them; the lane whose turn is shorter gets the
    difference as margin above its next turn (and below its last, so every lane scrolls alike).
    Heights are read from the last layout, so call this after a refresh, and again while it
    returns True (it changed a margin, or a widget was not laid out yet); the second value is
    where the latest turn starts."""
    lanes: list[list[tuple[float, list[Widget]]]] = []
    unsettled = False
    for view in views:
        body = body_of(view) if view.is_mounted else None
        if body is None:
            return True, None
        turn_of = {id(w): a.turn for w, a in zip(view._answer_widgets, view.answers, strict=False)}
        blocks: list[tuple[float, list[Widget]]] = []
        pending: list[Widget] = []
        for child in body.children:
            if not child.has_class("lane-note") and id(child) not in turn_of:
                continue
            unsettled = unsettled or not child.is_mounted or child.size.height == 0
            if child.has_class("lane-note"):
                pending.append(child)
                continue
            turn = turn_of[id(child)]
            if blocks and blocks[-1][0] == turn:
                blocks[-1][1].extend([*pending, child])
            else:
                blocks.append((turn, [*pending, child]))
            pending = []
        if pending:
            blocks.append((math.inf, pending))
        lanes.append(blocks)

    def height(w: Widget) -> int:
        return w.outer_size.height + (1 if w.has_class("lane-answer") else 0)

    turns = sorted({t for blocks in lanes for t, _ in blocks})
    tops: dict[float, int] = {}
    y = 0
    for t in turns:  # each turn starts below the tallest previous turn of any lane
        tops[t] = y
        y += max(sum(height(w) for w in ws) for blocks in lanes for bt, ws in blocks if bt == t)
    changed = False
    for blocks in lanes:
        at = 0
        margins: dict[int, tuple[int, int, int, int]] = {}
        for k, (t, ws) in enumerate(blocks):
            extra = tops[t] - at if on else 0
            at = tops[t] if on else at
            after_answer = k > 0 and blocks[k - 1][1][-1].has_class("lane-answer")
            top = extra + (1 if after_answer else 0) if extra > 0 else 0
            for w in ws:
                base = 1 if w.has_class("lane-answer") else 0
                margins[id(w)] = (top if w is ws[0] else 0, 0, base, 0)
            at += sum(height(w) for w in ws)
        if on and blocks and at < y:  # the same total height: the lanes scroll together
            last = blocks[-1][1][-1]
            m = margins[id(last)]
            margins[id(last)] = (m[0], 0, m[2] + y - at, 0)
        for _, ws in blocks:
            for w in ws:
                if tuple(w.styles.margin) != margins[id(w)]:
                    w.styles.margin = margins[id(w)]
                    changed = True
    finite = [t for t in turns if t != math.inf]
    return changed or unsettled, (tops[finite[-1]] if on and finite else None)


def scroll_together(bodies: list[VerticalScroll], y: int | None) -> None:
    """Show the latest question at the top of each lane, on the same line in every lane (or the
    end, when the whole turn fits or the lanes are stacked)."""
    bodies = [b for b in bodies if b.is_attached]  # lanes replaced since this was scheduled
    if y is None:
        for b in bodies:
            b.scroll_end(animate=False, immediate=True)
        return
    y = min([y, *(b.max_scroll_y for b in bodies)])
    for b in bodies:
        b.scroll_to(y=y, animate=False, immediate=True)
