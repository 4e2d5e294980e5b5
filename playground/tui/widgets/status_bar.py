"""The line under the input: the database, the session, the device, threads, and warnings."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text

from playground.core import cpuload
from playground.core.playground import Playground
from playground.tui.widgets.safe import SafeStatic


class StatusBar(SafeStatic):
    COMPONENT_CLASSES = {"status-bar--warning"}
    _shown: tuple | None = None  # what show() was given last, to paint again in a new theme

    def on_mount(self) -> None:
        self.watch(self.app, "theme", self._restyle, init=False)

    def _restyle(self) -> None:
        if self._shown is not None:
            self.call_after_refresh(self.show, *self._shown)

    def show(self, pg: Playground, db_path, device: str, editing: bool) -> None:
        self._shown = (pg, db_path, device, editing)
        lanes = pg.lanes
        threads = pg.threads_per_lane(lanes)
        fams = {lane.model.family for lane in lanes if lane.model is not None}
        warning = self.get_component_rich_style("status-bar--warning", partial=True)
        t = Text()
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
