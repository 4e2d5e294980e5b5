"""The Textual app: lanes side by side over the headless core.

Lane workers run in threads and append engine events to a queue; a 20 Hz timer drains the queue and
repaints only the lanes that changed, so streaming never costs one repaint per token and key presses
are handled between batches.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from playground.core.catalog import Catalog
from playground.core.config import Config
from playground.core.db import LABELS, SessionLog, default_tagger
from playground.core.engine import Sampling
from playground.core.errors import PlaygroundError
from playground.core.events import Finished, LaneNotReady, ModelLoaded, ModelLoading, Started
from playground.core.lanespec import LaneSpec, parse_lane
from playground.core.playground import Lane, Playground
from playground.core.prompts import MODES, penalty
from playground.tui.screens.forms import LaneSettingsScreen, TextPrompt
from playground.tui.screens.help import HelpScreen
from playground.tui.screens.inspector import InspectorScreen
from playground.tui.widgets.lane import LaneView
from playground.tui.widgets.prompt_input import PromptInput

MAX_LANES = 4


class _Notice:
    """A message for the user from a worker thread, shown as a notification."""

    lane = ""

    def __init__(self, text: str) -> None:
        self.text = text


TARGETS = (0.5, 0.75, 0.9)
FRAME_S = 1 / 10
STACK_BELOW_COLUMNS = 34  # narrower lanes than this stack vertically instead


def _kind(kind: str) -> str:
    return "base" if kind == "base" else "tuned"


class PlaygroundApp(App):
    CSS_PATH = Path(__file__).parent / "app.tcss"
    TITLE = "playground"
    SUB_TITLE = "base vs tuned, side by side"

    BINDINGS = [
        Binding("escape", "cancel_all", "Cancel", id="app.cancel"),
        Binding("f1", "help", "Help", id="app.help"),
        Binding("question_mark", "help", "Help", show=False, id="app.help2"),
        Binding("ctrl+n", "new_session", "New session", priority=True, id="app.new_session"),
        Binding("ctrl+r", "regenerate_all", "Regenerate", priority=True, id="app.regenerate"),
        Binding("ctrl+e", "edit_last", "Edit last", priority=True, id="app.edit_last"),
        Binding("ctrl+t", "toggle_tokens_all", "Tokens", priority=True, id="app.tokens"),
        Binding("f2", "add_lane", "Add lane", id="app.add_lane"),
        Binding("f4", "lab", "Lab", id="app.lab"),
        Binding("f5", "sessions", "Sessions", id="app.sessions"),
        Binding(
            "f6", "demo_step(1)", "Demo: next step", show=False, priority=True, id="app.demo_next"
        ),
        Binding(
            "f7", "demo_step(-1)", "Demo: step back", show=False, priority=True, id="app.demo_back"
        ),
        Binding("space", "next_turn", "Replay: next turn", show=False, id="app.next_turn"),
        Binding("ctrl+q", "quit", "Quit", priority=True, id="app.quit"),
    ]

    def __init__(
        self,
        catalog: Catalog,
        lanes: list[LaneSpec],
        log: SessionLog,
        sampling: Sampling | None = None,
        config: Config | None = None,
    ) -> None:
        super().__init__()
        self.config = config or Config()
        self.pg = Playground(catalog, lanes, log)
        self.log_db = log
        self.sampling = sampling or Sampling()
        self.tagger = self.config.tagger or default_tagger()
        self.views: dict[str, LaneView] = {}
        self.events: deque = deque()
        self.running: set[str] = set()
        self.editing = False
        self.last_target: dict[str, float] = {}
        self.last_lane_key: str | None = None
        self.device = "CPU"
        self.replay: dict | None = None  # set by make_replay_app: {session, speed, step}
        self.demo = None  # set by make_demo_app: a playground.core.demo.Demo
        self.demo_step = -1
        self.prefill = ""
        self._next_turn = threading.Event()

    # -- layout ------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="narration")
        with Horizontal(id="lanes"):
            for lane in self.pg.lanes:
                yield self._make_view(lane)
        yield PromptInput(
            id="input", placeholder="Ask every lane… (Enter sends, Ctrl+J new line, F1 help)"
        )
        yield Static(id="status")
        yield Footer()

    def _make_view(self, lane: Lane) -> LaneView:
        view = LaneView(lane.key)
        self.views[lane.key] = view
        view.set_header(self._header(lane))
        if lane.error:
            view.load_state = lane.error
        return view

    def on_mount(self) -> None:
        if self.config.keys:
            self.set_keymap(self.config.keys)
        self.query_one(PromptInput).focus()
        self.set_interval(FRAME_S, self._drain)
        if self.replay is not None:
            self._start_replay()
            return
        narration = self.query_one("#narration", Static)
        narration.display = self.demo is not None
        if self.demo is not None:
            narration.update(
                Text(f"{self.demo.title}: F6 starts step 1 of {len(self.demo.steps)}", style="bold")
            )
        for lane in self.pg.lanes:
            self._load(lane)
        self._update_status()
        self._relayout()

    def on_unmount(self) -> None:
        """Quitting stops the lanes within a token, so the process exits at once and every
        answer in flight is logged as cancelled."""
        self.pg.cancel()
        self._next_turn.set()

    def on_resize(self) -> None:
        self._relayout()

    def _relayout(self) -> None:
        lanes = self.query_one("#lanes")
        n = max(1, len(self.pg.lanes))
        lanes.set_class(self.size.width // n < STACK_BELOW_COLUMNS, "stacked")

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
        touched = set()
        while self.events:
            ev = self.events.popleft()
            if isinstance(ev, _Notice):
                self.notify(ev.text)
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
                lane = self.pg.lane_by_key(ev.lane)
                if lane is not None:
                    view.set_header(self._header(lane))
            if isinstance(ev, Finished):
                self.running.discard(ev.lane)
            if isinstance(ev, Finished | ModelLoaded | LaneNotReady):
                self._update_status()
        for view in self.views.values():
            view.refresh_view()

    # -- headers and status --------------------------------------------------------------------
    def _header(self, lane: Lane) -> Text:
        view = self.views.get(lane.key)
        spec = lane.model_spec
        t = Text()
        t.append(f"{lane.index + 1} ", style="bold reverse")
        t.append(" ")
        if spec is None:
            t.append(lane.spec.model, style="bold red")
        else:
            t.append(spec.id, style="bold")
            t.append(" · ")
            kind_style = "bold green" if spec.kind == "tuned" else "bold yellow"
            t.append(_kind(spec.kind), style=kind_style)
            t.append(" · " + spec.family_name(lane.model.info if lane.model else None))
        t.append("\n")
        ans = view.current if view else None
        shown = ans.settings if ans and ans.settings else None
        mode = ans.mode if shown else lane.spec.mode
        abstain = ans.abstain if shown else lane.spec.abstain
        search = ans.search if shown else lane.spec.search
        settings = shown or (lane.sampling or self.sampling).as_dict()
        t.append(self._settings_text(mode, abstain, settings, search))
        nxt = (lane.sampling or self.sampling).as_dict()
        if shown and (
            lane.spec.mode != mode
            or lane.spec.abstain != abstain
            or lane.spec.search != search
            or any(
                nxt[k] != settings.get(k)
                for k in ("temperature", "top_p", "top_k", "max_tokens", "seed")
            )
        ):
            t.append("\nnext: ", style="yellow")
            t.append(
                self._settings_text(lane.spec.mode, lane.spec.abstain, nxt, lane.spec.search),
                style="yellow",
            )
        return t

    @staticmethod
    def _settings_text(mode: str, abstain: float | None, s: dict, search: str | None = None) -> str:
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

    def _update_status(self) -> None:
        lanes = self.pg.lanes
        threads = self.pg.threads_per_lane(lanes)
        fams = {lane.model.family for lane in lanes if lane.model is not None}
        t = Text()
        t.append(f"db {self.log_db.path}", style="")
        t.append(f" · session {self.pg.session_id or '(new)'}")
        t.append(f" · {self.device} · {threads} thread{'s' if threads > 1 else ''} per lane")
        if len(fams) > 1:
            t.append(
                " · families differ: " + " vs ".join(sorted(f.split(" (")[0] for f in fams)),
                style="yellow",
            )
        if self.editing:
            t.append(" · editing the last question", style="bold yellow")
        self.query_one("#status", Static).update(t)

    # -- sending -------------------------------------------------------------------------------
    @on(PromptInput.Submitted)
    def _submitted(self, message: PromptInput.Submitted) -> None:
        question = message.text.strip()
        if self.replay is not None:
            self.notify(
                "This is a replay: Space shows the next turn; Esc stops.", severity="warning"
            )
            return
        if self.running:
            self.notify("The lanes are still answering: Esc cancels them.", severity="warning")
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

    # -- workshop demo ---------------------------------------------------------------------------
    async def set_lanes(self, specs: list[LaneSpec]) -> None:
        """Replace every lane (a demo step, for instance); loaded models are kept in the pool."""
        self.pg.cancel()
        for lane in list(self.pg.lanes):
            self.views.pop(lane.key).remove()
        self.pg.lanes.clear()
        self.running.clear()
        container = self.query_one("#lanes")
        for spec in specs:
            lane = self.pg.add_lane(spec)
            await container.mount(self._make_view(lane))
            self._load(lane)
        self.pg.reset_conversations()
        self._relayout()
        self._update_status()

    async def action_demo_step(self, delta: int = 1) -> None:
        if self.demo is None:
            return
        if self.running:
            self.notify("The lanes are still answering: Esc cancels them.", severity="warning")
            return
        k = self.demo_step + delta
        if not 0 <= k < len(self.demo.steps):
            self.notify(
                "That was the last step."
                if k >= len(self.demo.steps)
                else "This is the first step."
            )
            return
        self.demo_step = k
        step = self.demo.steps[k]
        narration = Text()
        narration.append(
            f"{step.title}  ({k + 1}/{len(self.demo.steps)} · F6 next · F7 back)\n", style="bold"
        )
        narration.append(step.narration)
        self.query_one("#narration", Static).update(narration)
        await self.set_lanes(step.lanes)
        self.sampling = replace(self.sampling, max_tokens=step.max_tokens)
        self.prefill = step.prefill
        turn = self.pg.begin_turn()
        self._start(self.pg.lanes, step.question, turn, {})
        for view in self.views.values():
            view.token_view = step.tokens

    # -- replay ---------------------------------------------------------------------------------
    def _start_replay(self) -> None:
        from playground.core.sessions import exchanges

        rows = exchanges(self.log_db, self.replay["session"], latest_only=True)
        box = self.query_one(PromptInput)
        box.placeholder = (
            "Replaying "
            + self.replay["session"]
            + (": Space shows the next turn" if self.replay["step"] else "")
            + " · Esc stops"
        )
        box.disabled = True
        for view in self.views.values():
            view.load_state = "replay: no model is loaded"
        self.pg.session_id = self.replay["session"]
        self.run_worker(
            partial(self._replay_worker, rows), thread=True, group="replay", exit_on_error=False
        )

    def _replay_worker(self, rows: list[dict]) -> None:
        import time as _time

        from playground.core.events import Token
        from playground.core.replay import exchange_events

        worker = get_current_worker()
        turns: dict[int, list[dict]] = {}
        for r in rows:
            turns.setdefault(r["turn"], []).append(r)
        speed = self.replay["speed"]
        for turn, exs in sorted(turns.items()):
            if self.replay["step"]:
                self._next_turn.clear()
                self.events.append(_Notice(f"turn {turn + 1} of {len(turns)} is next: press Space"))
                while not self._next_turn.wait(0.1):
                    if worker.is_cancelled:
                        return
            stream = []  # (time, order, event): tokens at their logged time, others with the token before
            for r in exs:
                lane = next((x for x in self.pg.lanes if x.index == r["lane_index"]), None)
                if lane is None:
                    continue
                self.call_from_thread(
                    self._begin_replayed,
                    lane.key,
                    r["question"],
                    turn,
                    bool(self.log_db.tokens(r["id"])),
                )
                at = 0.0
                for ev in exchange_events(self.log_db, r["id"], lane.key):
                    if isinstance(ev, Token):
                        at = max(at, ev.elapsed)
                    stream.append((at, len(stream), ev))
            clock = 0.0
            for at, _, ev in sorted(stream, key=lambda x: (x[0], x[1])):
                if speed > 0 and at > clock:
                    _time.sleep(min(2.0, (at - clock) / speed))
                    clock = at
                if worker.is_cancelled:
                    return
                self.events.append(ev)
        self.events.append(_Notice("replay finished"))

    def _begin_replayed(self, lane_key: str, question: str, turn: int, has_tokens: bool) -> None:
        view = self.views[lane_key]
        view.begin(question).turn = turn
        if not has_tokens:
            view.note(
                "this answer's token rows are missing: replaying the text only, without the token view"
            )

    def action_next_turn(self) -> None:
        self._next_turn.set()

    # -- lane targeting ------------------------------------------------------------------------
    def on_descendant_focus(self, event) -> None:
        node = self.focused
        while node is not None and not isinstance(node, LaneView):
            node = node.parent
        if isinstance(node, LaneView):
            self.last_lane_key = node.lane_key

    def _target(self, index: int | None) -> tuple[Lane, LaneView] | None:
        if index is not None:
            if 0 <= index < len(self.pg.lanes):
                lane = self.pg.lanes[index]
                return lane, self.views[lane.key]
            return None
        lane = self.pg.lane_by_key(self.last_lane_key or "") or (
            self.pg.lanes[0] if self.pg.lanes else None
        )
        return (lane, self.views[lane.key]) if lane else None

    def _respec(self, lane: Lane, spec: LaneSpec, why: str) -> None:
        self.pg.set_lane_spec(lane.index, spec)
        view = self.views[lane.key]
        if view.answers:
            view.note(f"{why}: a new conversation starts here")
        view.load_state = "loading…"
        view.set_header(self._header(lane))
        self._load(lane)

    # -- lane actions (focused lane, or an explicit index from the command palette) -------------
    def action_lane_cycle_mode(self, index: int | None = None) -> None:
        if (t := self._target(index)) is None:
            return
        lane, _ = t
        mode = MODES[(MODES.index(lane.spec.mode) + 1) % len(MODES)]
        self._respec(lane, replace(lane.spec, mode=mode), f"mode is now {mode}")

    def action_lane_cycle_search(self, index: int | None = None) -> None:
        if (t := self._target(index)) is None:
            return
        lane, _ = t
        order = [None, "tool", "first"]
        nxt = order[(order.index(lane.spec.search) + 1) % len(order)]
        names = {
            None: "search off",
            "tool": "search tool on (the model may search)",
            "first": "search first (results before answering)",
        }
        self._respec(lane, replace(lane.spec, search=nxt), names[nxt])

    def action_lane_toggle_abstain(self, index: int | None = None) -> None:
        if (t := self._target(index)) is None:
            return
        lane, _ = t
        if lane.spec.abstain is None:
            target = self.last_target.get(lane.key, 0.75)
            self._respec(
                lane,
                replace(lane.spec, abstain=target),
                f"abstention on, T={target:g}",
            )
        else:
            self.last_target[lane.key] = lane.spec.abstain
            self._respec(lane, replace(lane.spec, abstain=None), "abstention off")

    def action_lane_cycle_target(self, index: int | None = None) -> None:
        if (t := self._target(index)) is None:
            return
        lane, _ = t
        cur = lane.spec.abstain
        nxt = next((x for x in TARGETS if cur is None or x > cur + 1e-9), TARGETS[0])
        self.last_target[lane.key] = nxt
        self._respec(lane, replace(lane.spec, abstain=nxt), f"abstention T={nxt:g}")

    def action_lane_settings(self, index: int | None = None) -> None:
        if (t := self._target(index)) is None:
            return
        lane, _ = t

        def done(result) -> None:
            if result is None:
                return
            lane.sampling = result.sampling
            if result.spec != lane.spec:
                self._respec(lane, result.spec, f"now {result.spec.text}")
            self.views[lane.key].set_header(self._header(lane))
            self.notify(f"Lane {lane.index + 1}: settings apply to the next message.")

        self.push_screen(
            LaneSettingsScreen(
                f"lane {lane.index + 1}",
                lane.spec,
                lane.sampling or self.sampling,
                list(self.pg.catalog.models),
            ),
            done,
        )

    def action_lane_inspect(self, index: int | None = None) -> None:
        if (t := self._target(index)) is None:
            return
        lane, view = t
        ans = view.current
        if ans is None or ans.prompt is None:
            self.notify("Nothing sent to this lane yet: ask a question first.", severity="warning")
            return
        p = ans.prompt
        if lane.model is not None and lane.model.model_id == ans.model_id:
            pieces = [lane.model.piece_text(t) for t in p.token_ids]
        else:  # a replayed or logged answer: read the token texts from the model file's vocabulary
            from pathlib import Path as _Path

            from playground.core.engine import vocab_pieces

            path = (
                self.log_db.exchange(ans.exchange_id).get("model_path") if ans.exchange_id else None
            )
            if not path or not _Path(path).is_file():
                self.notify(
                    "The model file of this answer is not here, so its tokens cannot be shown.",
                    severity="warning",
                )
                return
            pieces = vocab_pieces(path, p.token_ids)
        title = f"Lane {lane.index + 1} · {ans.model_id} · {ans.mode} · turn {ans.turn + 1}"
        self.push_screen(
            InspectorScreen(
                title, p.token_ids, p.special, pieces, p.reused, p.evaluated, p.dropped_turns
            )
        )

    def action_lane_tag(
        self, label: str, index: int | None = None, note: str | None = None
    ) -> None:
        if (t := self._target(index)) is None:
            return
        lane, view = t
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
        ans.tags.append(label)
        view.mark_answer(ans)
        self.notify(f"Lane {lane.index + 1}: tagged {label}" + (f" ({note})" if note else ""))

    def action_lane_tag_note(self, index: int | None = None) -> None:
        def check(value: str) -> None:
            label, _, _ = value.strip().partition(" ")
            if not any(x.startswith(label.lower()) for x in LABELS) or not label:
                raise PlaygroundError(f"start with a label: {', '.join(LABELS)}")

        def done(value: str | None) -> None:
            if value:
                label, _, note = value.strip().partition(" ")
                full = next(x for x in LABELS if x.startswith(label.lower()))
                self.action_lane_tag(full, index, note.strip() or None)

        self.push_screen(
            TextPrompt(
                "Tag the answer: a label, then a note",
                "hallucination invented a film",
                validate=check,
            ),
            done,
        )

    def action_lane_cancel(self, index: int | None = None) -> None:
        if (t := self._target(index)) is not None:
            self.pg.cancel(t[0].index)

    def action_lane_regenerate(self, index: int | None = None) -> None:
        if (t := self._target(index)) is None:
            return
        if t[0].key in self.running:
            self.notify("This lane is still answering: x cancels it.", severity="warning")
            return
        self._resend([t[0]], None)

    def action_lane_copy(self, index: int | None = None) -> None:
        if (t := self._target(index)) is None or t[1].current is None:
            return
        self.copy_to_clipboard(t[1].current.text.strip())
        self.notify("Answer copied to the clipboard.")

    def action_lane_copy_code(self, index: int | None = None) -> None:
        if (t := self._target(index)) is None or t[1].current is None:
            return
        blocks = re.findall(r"```[^\n]*\n(.*?)```", t[1].current.text, re.S)
        if not blocks:
            self.notify("No code block in this answer.", severity="warning")
            return
        self.copy_to_clipboard(blocks[-1])
        self.notify("Code block copied to the clipboard.")

    def action_lane_remove(self, index: int | None = None) -> None:
        if (t := self._target(index)) is None:
            return
        if len(self.pg.lanes) <= 1:
            self.notify("The last lane stays.", severity="warning")
            return
        lane, view = t
        self.pg.remove_lane(lane.index)
        self.running.discard(lane.key)
        del self.views[lane.key]
        view.remove()
        for other in self.pg.lanes:
            self.views[other.key].set_header(self._header(other))
        self._relayout()

    def action_lane_move(self, delta: int, index: int | None = None) -> None:
        if (t := self._target(index)) is None:
            return
        lane, view = t
        old = lane.index
        new = self.pg.move_lane(old, delta)
        if new == old:
            return
        container = self.query_one("#lanes")
        neighbour = self.views[self.pg.lanes[new - 1 if delta > 0 else new + 1].key]
        if delta > 0:
            container.move_child(view, after=neighbour)
        else:
            container.move_child(view, before=neighbour)
        for other in self.pg.lanes:
            self.views[other.key].set_header(self._header(other))

    # -- app actions ----------------------------------------------------------------------------
    def action_cancel_all(self) -> None:
        if self.running:
            self.pg.cancel()
            self.notify("Cancelling…")
        elif self.editing:
            self.editing = False
            self.query_one(PromptInput).clear()
            self._update_status()

    def action_help(self) -> None:
        def rows(bindings):
            for b in bindings:
                key = self._keymap.get(b.id, b.key) if b.id else b.key
                yield (
                    ", ".join(self.get_key_display(Binding(k, "")) for k in key.split(",")),
                    b.description,
                    b.id,
                )

        extra = [
            ("Enter", "Send the question to every lane", None),
            ("Ctrl+J", "New line in the question", None),
            ("Up / Down", "Question history", None),
            ("Tab / Shift+Tab", "Move between the input and the lanes", None),
            ("Ctrl+P", "Command palette: every action, for any lane", None),
        ]
        app_rows = extra + list(rows(self.BINDINGS))
        self.push_screen(
            HelpScreen(app_rows, list(rows(LaneView.BINDINGS)), str(self.config.path or ""))
        )

    def action_new_session(self) -> None:
        if self.running:
            self.notify(
                "The lanes are still answering: Esc cancels them first.", severity="warning"
            )
            return
        self.pg.new_session()
        for view in self.views.values():
            view.clear()
        self._update_status()
        self.notify("New session: the next question starts fresh conversations.")

    def action_regenerate_all(self) -> None:
        if self.running:
            self.notify("The lanes are still answering: Esc cancels them.", severity="warning")
            return
        self._resend(self.pg.lanes, None)

    def action_edit_last(self) -> None:
        if self.running:
            self.notify("The lanes are still answering: Esc cancels them.", severity="warning")
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

        self.push_screen(
            TextPrompt(
                "New lane: MODEL:MODE[+abstain@T]", "tuned:chat+abstain@0.75", validate=check
            ),
            done,
        )

    def action_sessions(self) -> None:
        from playground.tui.screens.review import ReviewScreen, SessionsScreen

        def chosen(session_id: str | None) -> None:
            if session_id and session_id.startswith("rerun:"):
                self.rerun_session(session_id.removeprefix("rerun:"))
            elif session_id:
                self.push_screen(ReviewScreen(self.log_db, session_id, tagger=self.tagger))

        self.push_screen(SessionsScreen(self.log_db), chosen)

    def rerun_session(self, session_id: str) -> None:
        """Ask a recorded session's questions again in today's lanes, as a new session that points to
        the original; each lane shows the recorded answer of its position above the new one."""
        from playground.core.sessions import exchanges

        if self.running or self.replay is not None:
            self.notify("Not now: the lanes are busy (or this is a replay).", severity="warning")
            return
        rows = exchanges(self.log_db, session_id, latest_only=True)
        turns: dict[int, dict] = {}
        for r in rows:
            entry = turns.setdefault(r["turn"], {"question": r["question"], "answers": {}})
            entry["answers"][r["lane_index"]] = r["output_text"]
        if not turns:
            self.notify("That session has no questions.", severity="warning")
            return
        self.pg.new_session()
        for view in self.views.values():
            view.clear()
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
        import time as _time

        worker = get_current_worker()
        for t in turns:
            self.call_from_thread(self._rerun_turn, t)
            while not worker.is_cancelled and (self.running or self.events):
                _time.sleep(0.05)
        self.events.append(_Notice("re-run finished: the new session points to the original"))

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
        self.push_screen(
            ReviewScreen(self.log_db, self.pg.session_id, blind=blind, tagger=self.tagger)
        )

    def action_lane_vote(self, index: int | None = None, verdict: str = "better") -> None:
        """This lane answered the last question better than the others (or a tie / both bad)."""
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
            if (t := self._target(index)) is None or t[1].current is None:
                return
            winner = t[1].current.exchange_id
            name = f"lane {t[0].index + 1} answered better"
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
                self.open_logged(
                    [r for r in rows if r["probe_id"] == probe_id and r["sample"] == 0]
                )

        self.push_screen(LabScreen(rep, rows), opened)

    def open_logged(self, rows: list[dict]) -> None:
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

    MAIN_ONLY = {
        "sessions",
        "lab",
        "new_session",
        "regenerate_all",
        "edit_last",
        "toggle_tokens_all",
        "add_lane",
        "help",
    }

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "next_turn":
            return self.replay is not None and bool(self.replay.get("step"))
        if action == "demo_step":
            return self.demo is not None
        return not (action in self.MAIN_ONLY and self.screen is not self.screen_stack[0])

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Help", "Every key and what it does", self.action_help)
        yield SystemCommand("New session", "Start fresh conversations", self.action_new_session)
        yield SystemCommand("Cancel all", "Stop every lane", self.action_cancel_all)
        yield SystemCommand(
            "Regenerate all",
            "Answer the last question again in every lane",
            self.action_regenerate_all,
        )
        yield SystemCommand(
            "Edit last question",
            "Change the last question and send it again",
            self.action_edit_last,
        )
        yield SystemCommand(
            "Token view",
            "Show answers as tokens shaded by probability",
            self.action_toggle_tokens_all,
        )
        yield SystemCommand("Add lane", "Add a lane (up to 4)", self.action_add_lane)
        yield SystemCommand(
            "Lab", "The latest probe run: scores, calibration, answers", self.action_lab
        )
        yield SystemCommand(
            "Sessions", "Every logged session; search; review and tag", self.action_sessions
        )
        yield SystemCommand("Review this session", "Tag its answers one by one", self.action_review)
        yield SystemCommand(
            "Review this session blind",
            "Lane names hidden while you tag and vote",
            partial(self.action_review, True),
        )
        yield SystemCommand(
            "Vote: tie",
            "The lanes' latest answers are equally good",
            partial(self.action_lane_vote, None, "tie"),
        )
        yield SystemCommand(
            "Vote: both bad",
            "None of the lanes' latest answers is good",
            partial(self.action_lane_vote, None, "both_bad"),
        )
        for lane in self.pg.lanes:
            i = lane.index
            name = f"Lane {i + 1} ({lane.spec.text})"
            yield SystemCommand(
                f"{name}: next mode",
                "raw → few-shot → chat",
                partial(self.action_lane_cycle_mode, i),
            )
            yield SystemCommand(
                f"{name}: abstention on/off",
                "Confidence-target prompt",
                partial(self.action_lane_toggle_abstain, i),
            )
            yield SystemCommand(
                f"{name}: next target T",
                "0.5 → 0.75 → 0.9",
                partial(self.action_lane_cycle_target, i),
            )
            yield SystemCommand(
                f"{name}: settings",
                "Model, mode, T, temperature, top-p, max tokens, seed",
                partial(self.action_lane_settings, i),
            )
            yield SystemCommand(
                f"{name}: inspect prompt",
                "Exactly what the model received",
                partial(self.action_lane_inspect, i),
            )
            yield SystemCommand(
                f"{name}: token view",
                "Tokens shaded by probability",
                self.views[lane.key].action_toggle_tokens,
            )
            for label in LABELS:
                yield SystemCommand(
                    f"{name}: tag {label}",
                    "Tag the latest answer",
                    partial(self.action_lane_tag, label, i),
                )
            yield SystemCommand(
                f"{name}: cancel", "Stop this lane", partial(self.action_lane_cancel, i)
            )
            yield SystemCommand(
                f"{name}: regenerate",
                "Answer the last question again",
                partial(self.action_lane_regenerate, i),
            )
            yield SystemCommand(
                f"{name}: copy answer", "To the clipboard", partial(self.action_lane_copy, i)
            )
            yield SystemCommand(
                f"{name}: remove", "Remove this lane", partial(self.action_lane_remove, i)
            )
            yield SystemCommand(
                f"{name}: move left", "Reorder lanes", partial(self.action_lane_move, -1, i)
            )
            yield SystemCommand(
                f"{name}: move right", "Reorder lanes", partial(self.action_lane_move, 1, i)
            )


def make_app(
    lanes: str,
    db: Path,
    models_dir: Path | None = None,
    base: str | None = None,
    tuned: str | None = None,
    sampling: Sampling | None = None,
    config: Config | None = None,
    search_backend: str = "offline",
    corpus_path: Path | None = None,
    gpu_layers: int | None = None,
) -> PlaygroundApp:
    """Build the app (used by the console script, the tests and the benchmarks)."""
    from playground.core.lanespec import parse_lanes

    specs = parse_lanes(lanes)
    catalog = Catalog.load(models_dir)
    if base:
        catalog = catalog.with_override("base", base)
    if tuned:
        catalog = catalog.with_override("tuned", tuned)
    if gpu_layers is not None:
        catalog = catalog.with_gpu_layers(gpu_layers)
    if not 1 <= len(specs) <= MAX_LANES:
        raise PlaygroundError(f"the app shows 1 to {MAX_LANES} lanes, not {len(specs)}")
    log = SessionLog(db)
    app = PlaygroundApp(catalog, specs, log, sampling, config or Config.load())
    app.pg.search_backend = search_backend
    app.pg.corpus_path = corpus_path
    return app


def make_replay_app(
    log: SessionLog, session_id: str, speed: float = 1.0, step: bool = False
) -> PlaygroundApp:
    """The app showing a recorded session as it streamed, with no model loaded."""
    import json as _json

    from playground.core.lanespec import parse_lanes
    from playground.core.sessions import session

    sess = session(log, session_id)
    specs = parse_lanes(",".join(_json.loads(sess["lanes"] or "[]"))) if sess["lanes"] else []
    if not specs:
        raise PlaygroundError(f"session {session_id} has no lanes to replay")
    app = PlaygroundApp(Catalog.load(), specs[:MAX_LANES], log, config=Config.load())
    app.replay = {"session": sess["id"], "speed": speed, "step": step}
    app.sub_title = f"replay of {sess['id']}"
    return app


class ReviewApp(App):
    """`playground review`: the review screen on its own."""

    CSS_PATH = Path(__file__).parent / "app.tcss"
    TITLE = "playground review"

    def __init__(self, log: SessionLog, session_id: str, blind: bool, tagger: str | None) -> None:
        super().__init__()
        self.log_db, self.session_id, self.blind, self.tagger = log, session_id, blind, tagger

    def on_mount(self) -> None:
        from playground.tui.screens.review import ReviewScreen

        self.push_screen(
            ReviewScreen(self.log_db, self.session_id, self.blind, self.tagger),
            lambda _: self.exit(),
        )


def make_demo_app(
    path, db: Path, models_dir: Path | None = None, corpus_path: Path | None = None
) -> PlaygroundApp:
    """The app stepping through a workshop demo script with a narration panel."""
    from playground.core.demo import load_demo

    demo = load_demo(path)
    app = PlaygroundApp(
        Catalog.load(models_dir), demo.steps[0].lanes, SessionLog(db), Sampling(), Config.load()
    )
    app.pg.corpus_path = corpus_path
    app.demo = demo
    app.sub_title = demo.title
    return app
