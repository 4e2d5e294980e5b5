"""The line under the input: the database, the session, the device, threads, and warnings."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text

from playground.core import cpuload
from playground.core.playground import Lane, Playground
from playground.tui.widgets.safe import SafeStatic


class StatusBar(SafeStatic):
    COMPONENT_CLASSES = {"status-bar--warning"}
    _shown: tuple | None = None  # what show() was given last, to paint again in a new theme

    def on_mount(self) -> None:
        self.watch(self.app, "theme", self._restyle, init=False)

    def _restyle(self) -> None:
        if self._shown is not None:
            self.call_after_refresh(self.show, *self._shown)

    def show(
        self,
        pg: Playground,
        db_path,
        device: str,
        editing: bool,
        focused: Lane | None = None,
        typing: bool = True,
    ) -> None:
        """*typing*: letters that are no lane key go to the question box (not in a replay)."""
        self._shown = (pg, db_path, device, editing, focused, typing)
        lanes = pg.lanes
        threads = pg.threads_per_lane(lanes)
        fams = {lane.model.family for lane in lanes if lane.model is not None}
        warning = self.get_component_rich_style("status-bar--warning", partial=True)
        t = Text()
        if focused is not None:  # first: it says where the next key press goes
            t.append(
                f"lane {focused.index + 1} ({focused.spec.text}) has the keys"
                + ("; other letters go to the question · " if typing else " · "),
                style=Style(bold=True),
            )
        t.append(f"db {db_path}", style="")
        t.append(f" · session {pg.session_id or '(new)'}")
        t.append(f" · {device} · {threads} thread{'s' if threads > 1 else ''} per lane")
        busy = cpuload.WATCH.busy_elsewhere()
        if busy >= cpuload.IGNORE_BELOW:
            t.append(f" ({busy:.1f} cores busy elsewhere)")
        if len(fams) > 1:
            t.append(
                " · families differ: " + " vs ".join(sorted(f.split(" (")[0] for f in fams)),
                style=warning,
            )
        if editing:
            t.append(" · editing the last question", style=Style(bold=True) + warning)
        self.update(t)
