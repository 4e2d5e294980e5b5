"""A workshop demo: a narration panel, and F6 / F7 to step through a script of questions.

Each step may change the lanes, the answer length, a prefill and the token view
(`playground.core.demo` reads the script).
"""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text
from textual.widgets import Static

from playground.core.demo import Demo
from playground.core.playground import Playground
from playground.tui.keys import DEMO_KEYS
from playground.tui.screens.lanes import BUSY, LanesScreen


class DemoScreen(LanesScreen):
    BINDINGS = DEMO_KEYS

    def __init__(self, pg: Playground, demo: Demo) -> None:
        super().__init__(pg)
        self.demo = demo
        self.demo_step = -1

    def start(self) -> None:
        super().start()
        narration = self.query_one("#narration", Static)
        narration.display = True
        narration.update(
            Text(f"{self.demo.title}: F6 starts step 1 of {len(self.demo.steps)}", style="bold")
        )

    async def action_demo_step(self, delta: int = 1) -> None:
        if self.running:
            self.notify(BUSY, severity="warning")
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
