"""The line under the input: the database, the session, the device, threads, and warnings."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from playground.core.lanes import Playground


class StatusBar(Static):
    def show(self, pg: Playground, db_path, device: str, editing: bool) -> None:
        lanes = pg.lanes
        threads = pg.threads_per_lane(lanes)
        fams = {lane.model.family for lane in lanes if lane.model is not None}
        t = Text()
        t.append(f"db {db_path}", style="")
        t.append(f" · session {pg.session_id or '(new)'}")
        t.append(f" · {device} · {threads} thread{'s' if threads > 1 else ''} per lane")
        if len(fams) > 1:
            t.append(
                " · families differ: " + " vs ".join(sorted(f.split(" (")[0] for f in fams)),
                style="yellow",
            )
        if editing:
            t.append(" · editing the last question", style="bold yellow")
        self.update(t)
