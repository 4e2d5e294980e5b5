"""The lanes screen: lanes side by side, the question box, the status bar.

Lane workers run in threads and append engine events to a queue; a 10 Hz timer drains the queue and
repaints only the lanes that changed, so streaming never costs one repaint per token and key presses
are handled between batches. A lane's own keys live on the lane widget, which posts a message here
when the playground (models, the log) must act.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from functools import partial
from pathlib import Path

from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from playground.core.engine import Sampling
from playground.core.errors import PlaygroundError
from playground.core.events import Finished, LaneNotReady, ModelLoaded, ModelLoading, Started
from playground.core.lanespec import LaneSpec, parse_lane
from playground.core.playground import Lane, Playground
from playground.core.textsafe import visible
from playground.tui.keys import ANY_SCREEN_ACTIONS, LANES_SCREEN_KEYS
from playground.tui.screens.forms import Confirm, LaneSettingsScreen, TextPrompt
from playground.tui.screens.help import HelpScreen
from playground.tui.screens.inspector import InspectorScreen
from playground.tui.widgets.lane import (
    LaneView,
    align_turns,
    bodies_of,
    following,
    scroll_together,
)
from playground.tui.widgets.prompt_input import PromptInput
from playground.tui.widgets.safe import SafeStatic
from playground.tui.widgets.status_bar import StatusBar

MAX_LANES = 4
FRAME_S = 1 / 10
STACK_BELOW_COLUMNS = 34  # lanes narrower than this go in a 2-column grid, or else are stacked
COMPACT_BELOW_ROWS = 14  # lanes shorter than this get a 2-line header and a 1-line status
SCREEN_ROWS = 6  # what is not lanes: the question box, the status bar, the footer
BUSY = "The lanes are still answering: Esc cancels them."
NOT_NOW = "Not now: the lanes are busy (or this is a replay)."


class Notice:
    """A message for the user from a worker thread, shown as a notification."""

    lane = ""

    def __init__(self, text: str) -> None:
        self.text = text


class Call:
    """Work for the UI thread queued among the engine events, so it runs in their order (a
    replay begins a lane's next turn only after the previous turn's events were shown)."""

    lane = ""

    def __init__(self, fn) -> None:
        self.fn = fn


class LanesScreen(Screen):
    """Ask every lane at once; tag, vote, regenerate, change a lane's settings."""

    BINDINGS = LANES_SCREEN_KEYS
    read_only = False  # a replay: lanes show, nothing runs (LaneView.check_action reads it)

    def __init__(self, pg: Playground, sampling: Sampling | None = None) -> None:
        super().__init__()
        self.pg = pg
        self.log_db = pg.log
        self.sampling = sampling or Sampling()
        self.views: dict[str, LaneView] = {}
        self.events: deque = deque()
        self.running: set[str] = set()
        self.editing = False
        self.device = "CPU"
        self.prefill = ""

    @property
    def tagger(self) -> str | None:
        return self.app.tagger

    # -- layout ------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield SafeStatic(id="narration")
        with Horizontal(id="lanes"):
            for lane in self.pg.lanes:
                yield self._make_view(lane)
        yield PromptInput(
            id="input", placeholder="Ask every lane… (Enter sends, Ctrl+J new line, F1 help)"
        )
        yield StatusBar(id="status")
        yield Footer()

    def _make_view(self, lane: Lane) -> LaneView:
        view = LaneView(lane)
        self.views[lane.key] = view
        view.show_header(self.sampling)
        if lane.error:
            view.load_state = lane.error
        return view

    def on_mount(self) -> None:
        self.query_one(PromptInput).focus()
        self.set_interval(FRAME_S, self._drain)
        self.start()

    def start(self) -> None:
        """Load every lane's model in the background."""
        self.query_one("#narration", Static).display = False
        for lane in self.pg.lanes:
            self._load(lane)
        self._update_status()
        self._relayout()

    def stop(self) -> None:
        """Quitting stops the lanes within a token, so the process exits at once and every
        answer in flight is logged as cancelled."""
        self.pg.cancel()

    def on_resize(self, event) -> None:
        self._relayout(event.size.width, event.size.height)

    def on_screen_resume(self) -> None:
        """The terminal may have been resized while another screen was on top."""
        self._relayout()

    def _relayout(self, width: int | None = None, height: int | None = None) -> None:
        """Lanes side by side; when that makes them narrower than STACK_BELOW_COLUMNS, two
        columns (3 lanes: 2 + 1, 4 lanes: 2 × 2); stacked only when even two do not fit. *width*:
        the new size while a resize is handled (the screen's own size still is the old one). Lanes
        shorter than COMPACT_BELOW_ROWS get one-line headers and status, to leave room for text."""
        lanes = self.query_one("#lanes")
        width = width if width is not None else self.size.width
        height = height if height is not None else self.size.height
        n = max(1, len(self.pg.lanes))
        row = width // n >= STACK_BELOW_COLUMNS
        grid = not row and n > 2 and width // 2 >= STACK_BELOW_COLUMNS
        lanes.set_class(grid, "grid")
        lanes.set_class(not row and not grid, "stacked")
        rows = (n + 1) // 2 if grid else 1
        lanes.set_class((height - SCREEN_ROWS) // rows < COMPACT_BELOW_ROWS, "compact")
        for i, lane in enumerate(self.pg.lanes):
            if lane.key in self.views:  # the odd lane out of a grid takes the whole row
                self.views[lane.key].set_class(grid and n % 2 == 1 and i == n - 1, "wide")
        self._align_later()

    def _align_later(self, turn_done: bool = False, tries: int = 4, follow: list | None = None):
        """Line up the turns across lanes once the layout shows what just changed (again after
        each pass that moved something, as a margin changes the layout). Then the lanes show the
        latest question: every lane when a turn just finished (*turn_done*), otherwise those that
        showed their end (the others were scrolled back by the user)."""

        def run() -> None:
            # the lanes as they are now: a step of a demo may have replaced them meanwhile
            stacked = self.query_one("#lanes").has_class("stacked")
            views = [self.views[x.key] for x in self.pg.lanes if x.key in self.views]
            bodies = [b for b in follow if b.is_attached] if follow is not None else None
            if bodies is None and turn_done:  # a lane still answering keeps following its text
                busy = ("waiting", "starting", "streaming")
                done = [v for v in views if v.current is None or v.current.status not in busy]
                bodies = bodies_of(done)
            elif bodies is None:
                bodies = following(views)
            again, top = align_turns(views, on=not stacked)
            if again and tries > 1:
                self._align_later(turn_done, tries - 1, bodies)
            else:
                self.call_after_refresh(scroll_together, bodies, top)

        self.call_after_refresh(run)

    def _load(self, lane: Lane) -> None:
        self.run_worker(
            partial(self._load_worker, lane),
            thread=True,
            group=f"load-{lane.key}",
            exit_on_error=False,
        )

    def _load_worker(self, lane: Lane) -> None:
        self.pg.load_lane(lane, self.events.append)
        try:
            import llama_cpp

            gpu = llama_cpp.llama_supports_gpu_offload() and any(
                m.n_gpu_layers != 0 for m in self.pg.pool.models()
            )
            self.device = "GPU offload" if gpu else "CPU"
        except ImportError:  # pragma: no cover - llama-cpp-python is a dependency
            pass

    # -- the event pump ------------------------------------------------------------------------
    def _drain(self) -> None:
        focused = self.focused
        if focused is not None and (not focused.is_attached or focused._pruning):
            # A safety net: keys go to the focused widget's chain, so focus left on a removed
            # widget would leave every key (F1, Ctrl+P, Ctrl+Q) unanswered.
            self._focus_input()
        touched = set()
        aligned = False
        while self.events:
            ev = self.events.popleft()
            if isinstance(ev, Notice):
                self.notify(visible(ev.text), markup=False)
                continue
            if isinstance(ev, Call):
                ev.fn()
                continue
            view = self.views.get(ev.lane)
            if view is None:
                continue
            touched.add(ev.lane)
            if isinstance(ev, LaneNotReady):
                view.load_state = f"Not ready: {ev.error}"
                view.dirty = True
            else:
                view.apply(ev)
            if isinstance(ev, ModelLoaded | Started | ModelLoading):
                view.show_header(self.sampling)
            if isinstance(ev, Finished):
                self.running.discard(ev.lane)
                aligned = True
            if isinstance(ev, Finished | ModelLoaded | LaneNotReady):
                self._update_status()
        for view in self.views.values():
            view.refresh_view()
        if aligned:
            self._align_later(turn_done=True)

    def _update_status(self) -> None:
        lane = self.focused_lane()
        self.query_one(StatusBar).show(
            self.pg,
            self.log_db.path,
            self.device,
            self.editing,
            lane.lane if lane else None,
            typing=not self.read_only,
        )

    def focused_lane(self) -> LaneView | None:
        """The lane whose keys act now (the focused one), if any."""
        node = self.focused
        while node is not None and not isinstance(node, LaneView):
            node = node.parent if isinstance(node.parent, Widget) else None
        return node if node is not None and self.views.get(node.lane.key) is node else None

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        self._update_status()

    def on_descendant_blur(self, event: events.DescendantBlur) -> None:
        self.call_after_refresh(self._update_status)

    def on_key(self, event: events.Key) -> None:
        """A letter typed into a focused lane that is none of its keys is the start of a
        question: it goes to the question box, which takes the focus (so "What is 2+2?" typed
        into a lane never toggles abstention, T or the inspector halfway through)."""
        if self.focused_lane() is None or not (event.is_printable and event.character):
            return
        if event.key in self.active_bindings:
            return
        box = self.query_one(PromptInput)
        if box.disabled:
            return
        event.stop()
        event.prevent_default()
        box.focus()
        box.insert(event.character)

    # -- sending -------------------------------------------------------------------------------
    @on(PromptInput.Submitted)
    def _submitted(self, message: PromptInput.Submitted) -> None:
        self.send(message.text.strip())

    def send(self, question: str) -> None:
        """Ask every lane (or, after Ctrl+E, ask the edited question again in place of the last)."""
        if self.running:
            self.notify(BUSY, severity="warning")
            return
        self.query_one(PromptInput).clear()
        if self.editing:
            self.editing = False
            self._resend(self.pg.lanes, question)
            return
        turn = self.pg.begin_turn()
        self._start(self.pg.lanes, question, turn, {})
        self._update_status()

    def _start(
        self, lanes: list[Lane], question: str, turn: int, parents: dict[str, int | None]
    ) -> None:
        threads = self.pg.threads_per_lane(lanes)
        for lane in lanes:
            view = self.views[lane.key]
            view.begin(question).turn = turn
            self.running.add(lane.key)
            self.run_worker(
                partial(self._lane_worker, lane, question, threads, turn, parents.get(lane.key)),
                thread=True,
                group=f"lane-{lane.key}",
                exit_on_error=False,
            )
        self._drain()

    def _lane_worker(
        self, lane: Lane, question: str, threads: int, turn: int, parent: int | None
    ) -> None:
        self.pg.run_lane(
            lane, question, self.sampling, self.events.append, threads, turn, parent, self.prefill
        )

    def _resend(self, lanes: list[Lane], question: str | None) -> None:
        """Regenerate (question None: the same one) or edit-and-resend the last turn of *lanes*."""
        parents: dict[str, int | None] = {}
        for lane in lanes:
            view = self.views[lane.key]
            ans = view.current
            old_q = self.pg.undo_turn(lane)
            if ans is None or old_q is None:
                continue
            parents[lane.key] = ans.exchange_id
            view.note("regenerated below" if question is None else "edited and sent again below")
            q = old_q if question is None else question
            self._start([lane], q, ans.turn, parents)
        if not parents:
            self.notify("Nothing to regenerate yet.", severity="warning")

    async def set_lanes(self, specs: list[LaneSpec]) -> None:
        """Replace every lane (a demo step, for instance); loaded models are kept in the pool."""
        self.pg.cancel()
        # Focus leaves the lanes before they go: a focused widget removed without being awaited
        # left the screen's focus on a detached lane, and the next step froze the app.
        self._focus_input()
        self.views.clear()
        self.pg.lanes.clear()
        self.running.clear()
        container = self.query_one("#lanes")
        await container.remove_children()  # all at once, and awaited
        views = [self._make_view(self.pg.add_lane(spec)) for spec in specs]
        await container.mount_all(views)
        for lane in self.pg.lanes:
            self._load(lane)
        self.pg.reset_conversations()
        self._focus_input()  # the safety net: focus is never left on a widget that is gone
        self._relayout()
        self._update_status()

    def _focus_input(self) -> None:
        box = self.query_one(PromptInput)
        if not box.disabled:
            box.focus()
        elif self.focused is not None:
            self.set_focus(None)

    def show_logged(self, rows: list[dict]) -> None:
        """Show logged answers (a probe question's) in the lanes whose spec matches, token view
        and inspector included, with no model run."""
        from playground.core.replay import exchange_events

        opened = 0
        for r in rows:
            lane = next((x for x in self.pg.lanes if x.spec.text == r["lane"]), None)
            if lane is None or not r["exchange_id"]:
                continue
            view = self.views[lane.key]
            view.begin(r["question"])
            for ev in exchange_events(self.log_db, r["exchange_id"], lane.key):
                view.apply(ev)
            view.note(
                f"logged answer #{r['exchange_id']} ({r['outcome'].replace('_', ' ')}), not a new generation"
            )
            opened += 1
        if not opened:
            self.notify(
                "No lane here matches the run's lanes: "
                + ", ".join(sorted({r["lane"] for r in rows})),
                severity="warning",
            )

    def clear_lanes(self) -> None:
        """A new session: fresh conversations, nothing on screen."""
        self.pg.new_session()
        for view in self.views.values():
            view.clear()

    # -- what a lane asks for (LaneView messages) ------------------------------------------------
    def _live(self, message: LaneView.LaneMessage) -> Lane | None:
        """The lane a message is about, unless it was removed since the message was posted."""
        lane = message.view.lane
        return lane if self.views.get(lane.key) is message.view else None

    @on(LaneView.SpecChanged)
    def _spec_changed(self, message: LaneView.SpecChanged) -> None:
        if (lane := self._live(message)) is not None:
            self._respec(lane, message.spec, message.why)

    def _respec(self, lane: Lane, spec: LaneSpec, why: str) -> None:
        self.pg.set_lane_spec(lane.index, spec)
        view = self.views[lane.key]
        if view.answers:
            view.note(f"{why}: a new conversation starts here")
            self._align_later()
        view.load_state = "loading…"
        view.show_header(self.sampling)
        self._load(lane)

    @on(LaneView.SettingsWanted)
    def _settings(self, message: LaneView.SettingsWanted) -> None:
        if (lane := self._live(message)) is None:
            return

        def done(result) -> None:
            if result is None:
                return
            lane.sampling = result.sampling
            if result.spec != lane.spec:
                self._respec(lane, result.spec, f"now {result.spec.text}")
            self.views[lane.key].show_header(self.sampling)
            self.notify(f"Lane {lane.index + 1}: settings apply to the next message.")

        self.app.push_screen(
            LaneSettingsScreen(
                f"lane {lane.index + 1}",
                lane.spec,
                lane.sampling or self.sampling,
                list(self.pg.catalog.models),
                self._contexts(),
            ),
            done,
        )

    def _contexts(self) -> dict[str, int]:
        """Each model name the settings form offers, with its context window (max tokens must
        fit in it)."""
        out = {}
        for name in [
            "base",
            "tuned",
            *self.pg.catalog.models,
            *(x.spec.model for x in self.pg.lanes),
        ]:
            with contextlib.suppress(PlaygroundError):
                out[name] = self.pg.catalog.resolve(name).n_ctx
        return out

    @on(LaneView.InspectWanted)
    def _inspect(self, message: LaneView.InspectWanted) -> None:
        if (lane := self._live(message)) is None:
            return
        ans = message.view.current
        if ans is None or ans.prompt is None:
            self.notify("Nothing sent to this lane yet: ask a question first.", severity="warning")
            return
        p = ans.prompt
        if not p.token_ids:  # a server lane: its prompt is text, with no token ids to show
            pieces = []
        elif lane.model is not None and lane.model.model_id == ans.model_id:
            pieces = lane.model.piece_texts(p.token_ids)
        else:  # a replayed or logged answer: read the token texts from the model file's vocabulary
            from playground.core.engine import vocab_pieces

            path = (
                self.log_db.exchange(ans.exchange_id).get("model_path") if ans.exchange_id else None
            )
            if not path or not Path(path).is_file():
                self.notify(
                    "The model file of this answer is not here, so its tokens cannot be shown.",
                    severity="warning",
                )
                return
            pieces = vocab_pieces(path, p.token_ids)
        title = f"Lane {lane.index + 1} · {ans.model_id} · {ans.mode} · turn {ans.turn + 1}"
        self.app.push_screen(
            InspectorScreen(
                title,
                p.token_ids,
                p.special,
                pieces,
                p.reused,
                p.evaluated,
                p.dropped_turns,
                text=p.text,
                neutralized=p.neutralized,
            )
        )

    @on(LaneView.Tagged)
    def _tagged(self, message: LaneView.Tagged) -> None:
        if (lane := self._live(message)) is None:
            return
        view, label, note = message.view, message.label, message.note
        ans = view.current
        if ans is None or ans.exchange_id is None:
            self.notify("No logged answer to tag in this lane yet.", severity="warning")
            return
        if ans.status in ("waiting", "starting", "streaming"):
            self.notify(
                "Wait for the answer to finish (or cancel it) before tagging.", severity="warning"
            )
            return
        try:
            self.log_db.add_tag(ans.exchange_id, label, note=note, tagger=self.tagger)
        except PlaygroundError as e:
            self.notify(str(e), severity="error")
            return
        ans.tags = [t["label"] for t in self.log_db.tags(ans.exchange_id)]
        view.mark_answer(ans)
        view.refresh_view()
        self._align_later()
        self.notify(f"Lane {lane.index + 1}: tagged {label}" + (f" ({note})" if note else ""))

    @on(LaneView.VotedBetter)
    def _voted_better(self, message: LaneView.VotedBetter) -> None:
        if self._live(message) is not None:
            self.vote(message.view, "better")

    def vote(self, winner_view: LaneView | None, verdict: str = "better") -> None:
        """The latest answers of the lanes to the same question: one answered better (the lane of
        *winner_view*), or a tie, or both bad."""
        from playground.core.sessions import add_vote

        views = [self.views[x.key] for x in self.pg.lanes]
        answers = [v.current for v in views if v.current is not None and v.current.exchange_id]
        if len(answers) < 2 or len({a.turn for a in answers}) != 1:
            self.notify(
                "Voting compares the latest answers of two or more lanes to the same question.",
                severity="warning",
            )
            return
        winner = None
        name = verdict.replace("_", " ")
        if verdict == "better":
            if winner_view is None or winner_view.current is None:
                return
            winner = winner_view.current.exchange_id
            name = f"lane {winner_view.lane.index + 1} answered better"
        add_vote(
            self.log_db,
            self.pg.session_id,
            answers[0].turn,
            [a.exchange_id for a in answers],
            verdict,
            winner,
            tagger=self.tagger,
        )
        self.notify(f"vote: {name}")

    @on(LaneView.UndoWanted)
    def _undo(self, message: LaneView.UndoWanted) -> None:
        """u: the last tag or vote this tagger gave the lane's latest answer is taken back."""
        from playground.core.sessions import undo_last

        if (lane := self._live(message)) is None:
            return
        view = message.view
        ans = view.current
        undone = (
            undo_last(self.log_db, ans.exchange_id, self.tagger)
            if ans and ans.exchange_id
            else None
        )
        if ans is None or undone is None:
            self.notify("No tag or vote of this lane's answer to undo.", severity="warning")
            return
        ans.tags = [t["label"] for t in self.log_db.tags(ans.exchange_id)]
        view.mark_answer(ans)
        view.refresh_view()
        self._align_later()
        self.notify(f"Lane {lane.index + 1}: {undone} undone")

    @on(LaneView.CancelWanted)
    def _cancel_lane(self, message: LaneView.CancelWanted) -> None:
        if (lane := self._live(message)) is not None:
            self.pg.cancel(lane.index)

    @on(LaneView.RegenerateWanted)
    def _regenerate_lane(self, message: LaneView.RegenerateWanted) -> None:
        if (lane := self._live(message)) is None:
            return
        if lane.key in self.running:
            self.notify("This lane is still answering: x cancels it.", severity="warning")
            return
        self._resend([lane], None)

    @on(LaneView.RemoveWanted)
    def _remove_lane(self, message: LaneView.RemoveWanted) -> None:
        if (lane := self._live(message)) is None:
            return
        if len(self.pg.lanes) <= 1:
            self.notify("The last lane stays.", severity="warning")
            return
        view = message.view

        def answered(yes: bool | None) -> None:
            if yes and self.views.get(lane.key) is view:
                self._remove(lane, view)

        self.app.push_screen(
            Confirm(f"Remove lane {lane.index + 1} ({lane.spec.text}) and its conversation?"),
            answered,
        )

    def _remove(self, lane: Lane, view: LaneView) -> None:
        self.pg.remove_lane(lane.index)
        self.running.discard(lane.key)
        del self.views[lane.key]
        view.remove()
        self._show_headers()
        self._relayout()
        self._update_status()  # the families warning goes with the lane that made it

    @on(LaneView.Moved)
    def _move_lane(self, message: LaneView.Moved) -> None:
        if (lane := self._live(message)) is None:
            return
        delta = message.delta
        old = lane.index
        new = self.pg.move_lane(old, delta)
        if new == old:
            return
        container = self.query_one("#lanes")
        neighbour = self.views[self.pg.lanes[new - 1 if delta > 0 else new + 1].key]
        if delta > 0:
            container.move_child(message.view, after=neighbour)
        else:
            container.move_child(message.view, before=neighbour)
        self._show_headers()

    def _show_headers(self) -> None:
        for lane in self.pg.lanes:
            self.views[lane.key].show_header(self.sampling)

    # -- screen keys ------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """Under another screen, the footer shows only the keys that still make sense there."""
        return self.is_active or action in ANY_SCREEN_ACTIONS

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen.for_app(self.app))

    def action_cancel_all(self) -> None:
        if self.running:
            self.pg.cancel()
            self.notify("Cancelling…")
        elif self.editing:
            self.editing = False
            self.query_one(PromptInput).clear()
            self._update_status()

    def action_new_session(self) -> None:
        if self.running:
            self.notify(
                "The lanes are still answering: Esc cancels them first.", severity="warning"
            )
            return
        self.clear_lanes()
        self._update_status()
        self.notify("New session: the next question starts fresh conversations.")

    def action_regenerate_all(self) -> None:
        if self.running:
            self.notify(BUSY, severity="warning")
            return
        self._resend(self.pg.lanes, None)

    def action_edit_last(self) -> None:
        if self.running:
            self.notify(BUSY, severity="warning")
            return
        last = next((v.current.question for v in self.views.values() if v.current), None)
        if last is None:
            self.notify("Nothing to edit yet.", severity="warning")
            return
        box = self.query_one(PromptInput)
        box.load_text(last)
        box.move_cursor(box.document.end)
        box.focus()
        self.editing = True
        self._update_status()

    def action_toggle_tokens_all(self) -> None:
        on = not all(v.token_view for v in self.views.values())
        for v in self.views.values():
            v.token_view = on

    def action_add_lane(self) -> None:
        if len(self.pg.lanes) >= MAX_LANES:
            self.notify(f"At most {MAX_LANES} lanes.", severity="warning")
            return

        def check(value: str) -> None:
            spec = parse_lane(value)
            self.pg.catalog.resolve(spec.model)

        def done(value: str | None) -> None:
            if not value:
                return
            lane = self.pg.add_lane(parse_lane(value))
            view = self._make_view(lane)
            self.query_one("#lanes").mount(view)
            self._load(lane)
            self._relayout()
            self._update_status()

        self.app.push_screen(
            TextPrompt(
                "New lane: MODEL:MODE[+abstain@T]", "tuned:chat+abstain@0.75", validate=check
            ),
            done,
        )

    def action_sessions(self) -> None:
        from playground.tui.screens.review import ReviewScreen
        from playground.tui.screens.sessions import SessionChoice, SessionsScreen

        def chosen(choice: SessionChoice | None) -> None:
            if choice is None:
                return
            if choice.rerun:
                self.rerun_session(choice.session_id)
            else:
                self.app.push_screen(  # Esc in the review goes back to the list
                    ReviewScreen(self.log_db, choice.session_id, tagger=self.tagger),
                    lambda _: self.action_sessions(),
                )

        self.app.push_screen(SessionsScreen(self.log_db), chosen)

    def rerun_session(self, session_id: str) -> None:
        """Ask a recorded session's questions again in today's lanes, as a new session that points to
        the original; each lane shows the recorded answer of its position above the new one."""
        from playground.core.sessions import exchanges

        if self.running:
            self.notify(NOT_NOW, severity="warning")
            return
        rows = exchanges(self.log_db, session_id, latest_only=True)
        turns: dict[int, dict] = {}
        for r in rows:
            entry = turns.setdefault(r["turn"], {"question": r["question"], "answers": {}})
            entry["answers"][r["lane_index"]] = r["output_text"]
        if not turns:
            self.notify("That session has no questions.", severity="warning")
            return
        self.clear_lanes()
        self.pg.session_id = self.log_db.new_session(
            [x.spec.text for x in self.pg.lanes],
            title=f"re-run of {session_id}",
            parent_id=session_id,
        )
        self._update_status()
        self.run_worker(
            partial(self._rerun_worker, [turns[k] for k in sorted(turns)]),
            thread=True,
            group="rerun",
            exit_on_error=False,
        )

    def _rerun_worker(self, turns: list[dict]) -> None:
        worker = get_current_worker()
        for t in turns:
            self.app.call_from_thread(self._rerun_turn, t)
            while not worker.is_cancelled and (self.running or self.events):
                time.sleep(0.05)
        self.events.append(Notice("re-run finished: the new session points to the original"))

    def _rerun_turn(self, t: dict) -> None:
        for lane in self.pg.lanes:
            recorded = t["answers"].get(lane.index)
            if recorded is not None:
                self.views[lane.key].note("recorded answer: " + " ".join(recorded.split())[:300])
        self._start(self.pg.lanes, t["question"], self.pg.begin_turn(), {})

    def action_review(self, blind: bool = False) -> None:
        from playground.tui.screens.review import ReviewScreen

        if not self.pg.session_id:
            self.notify("Nothing to review yet in this session.", severity="warning")
            return
        self.app.push_screen(
            ReviewScreen(self.log_db, self.pg.session_id, blind=blind, tagger=self.tagger)
        )

    def action_lab(self, run_id: int | None = None) -> None:
        from playground.core.lab.report import build
        from playground.core.lab.runner import items
        from playground.tui.screens.lab import LabScreen

        try:
            rep = build(self.log_db, run_id)
        except PlaygroundError as e:
            self.notify(f"{e}", severity="warning")
            return
        rows = items(self.log_db, rep["run"]["id"])

        def opened(probe_id: str | None) -> None:
            if probe_id:
                self.show_logged(
                    [r for r in rows if r["probe_id"] == probe_id and r["sample"] == 0]
                )

        self.app.push_screen(LabScreen(rep, rows), opened)
