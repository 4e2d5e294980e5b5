"""A recorded session streaming again as it was logged, with no model loaded.

The replay reads the same typed events the engine sends (`playground.core.replay`) and feeds them to
the lanes at their logged times (or, in step mode, one turn per Space).
"""

from __future__ import annotations

import threading
import time
from functools import partial

from textual.worker import get_current_worker

from playground.core.events import Token
from playground.core.playground import Playground
from playground.tui.keys import REPLAY_ACTIONS, REPLAY_KEYS
from playground.tui.screens.lanes import NOT_NOW, Call, LanesScreen, Notice
from playground.tui.widgets.prompt_input import PromptInput


class ReplayScreen(LanesScreen):
    """Read-only: only the replay's keys, help and the keys that look at a lane act (a lane key
    such as m would load a model)."""

    BINDINGS = REPLAY_KEYS
    read_only = True

    def __init__(self, pg: Playground, session_id: str, speed: float = 1.0, step: bool = False):
        super().__init__(pg)
        self.session_id = session_id
        self.speed = speed
        self.step = step
        self._next_turn = threading.Event()

    def start(self) -> None:
        from playground.core.sessions import exchanges

        rows = exchanges(self.log_db, self.session_id, latest_only=True)
        box = self.query_one(PromptInput)
        box.placeholder = (
            "Replaying "
            + self.session_id
            + (": Space or n shows the next turn" if self.step else "")
            + " · Esc stops"
        )
        box.disabled = True
        for view in self.views.values():
            view.load_state = "replay: no model is loaded"
        self.pg.session_id = self.session_id
        self.run_worker(
            partial(self._replay_worker, rows), thread=True, group="replay", exit_on_error=False
        )

    def stop(self) -> None:
        super().stop()
        self._next_turn.set()

    def send(self, question: str) -> None:
        self.notify(
            "This is a replay: Space or n shows the next turn; Esc stops.", severity="warning"
        )

    def rerun_session(self, session_id: str) -> None:
        self.notify(NOT_NOW, severity="warning")

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "next_turn":
            return self.step
        if action not in REPLAY_ACTIONS:
            return False
        return super().check_action(action, parameters)

    def action_next_turn(self) -> None:
        self._next_turn.set()

    def _replay_worker(self, rows: list[dict]) -> None:
        from playground.core.replay import exchange_events

        worker = get_current_worker()
        turns: dict[int, list[dict]] = {}
        for r in rows:
            turns.setdefault(r["turn"], []).append(r)
        for turn, exs in sorted(turns.items()):
            if self.step:
                self._next_turn.clear()
                self.events.append(
                    Notice(f"turn {turn + 1} of {len(turns)} is next: press Space or n")
                )
                while not self._next_turn.wait(0.1):
                    if worker.is_cancelled:
                        return
            stream = []  # (time, order, event): tokens at their logged time, others with the token before
            for r in exs:
                lane = next((x for x in self.pg.lanes if x.index == r["lane_index"]), None)
                if lane is None:
                    continue
                # Queued with the events, not called now: at --speed instant the previous
                # turn's events may still wait in the queue, and would land in this new turn.
                self.events.append(
                    Call(
                        partial(
                            self._begin_replayed,
                            lane.key,
                            r["question"],
                            turn,
                            bool(self.log_db.tokens(r["id"])),
                        )
                    )
                )
                at = 0.0
                for ev in exchange_events(self.log_db, r["id"], lane.key):
                    if isinstance(ev, Token):
                        at = max(at, ev.elapsed)
                    stream.append((at, len(stream), ev))
            if not self._play(stream, worker):
                return
        self.events.append(Notice("replay finished"))

    def _play(self, stream: list[tuple], worker) -> bool:
        """Queue one turn's events at their logged pace; False when the replay was stopped."""
        clock = 0.0
        for at, _, ev in sorted(stream, key=lambda x: (x[0], x[1])):
            if self.speed > 0 and at > clock:
                time.sleep(min(2.0, (at - clock) / self.speed))
                clock = at
            if worker.is_cancelled:
                return False
            self.events.append(ev)
        return True

    def _begin_replayed(self, lane_key: str, question: str, turn: int, has_tokens: bool) -> None:
        ans = self.views[lane_key].begin(question)
        ans.turn = turn
        if not has_tokens:  # said under the answer, so it stays with its turn
            ans.remark = "this answer's token rows are missing: replaying the text only, without the token view"
