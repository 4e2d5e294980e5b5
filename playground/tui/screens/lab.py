"""The lab screen: a probe run's tables and reliability diagram; Enter opens a question's answers."""

from __future__ import annotations

import json

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer

from playground.core.lab.report import num, pct
from playground.core.lab.scores import TARGETS
from playground.core.textsafe import visible
from playground.tui.widgets.safe import SafeStatic

MARK = {"correct": "✓", "incorrect": "✗", "not_attempted": "–"}


class LabScreen(Screen[str | None]):
    BINDINGS = [Binding("escape,q", "dismiss(None)", "Close")]

    def __init__(self, report: dict, items: list[dict]) -> None:
        super().__init__()
        self.report = report
        self.items = items
        self.lanes = json.loads(report["run"]["lanes"])

    def compose(self) -> ComposeResult:
        run = self.report["run"]
        with Vertical(id="lab-box"):
            yield SafeStatic(
                Text(
                    f"Probe run {run['id']} · set {run['set_name']} · {run['status']} · {self.report['n_items']} answers  (Enter opens a question's answers in the matching lanes)",
                    style="bold",
                ),
                classes="title",
            )
            yield SafeStatic(self._tables(), id="lab-tables")
            table = DataTable(id="lab-questions", cursor_type="row", zebra_stripes=True)
            yield table
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("question", width=56)
        table.add_columns("type", *self.lanes)
        by_probe: dict[str, dict] = {}
        for r in self.items:
            if r["sample"] == 0:
                by_probe.setdefault(r["probe_id"], {"question": r["question"], "type": r["type"]})[
                    r["lane"]
                ] = r["outcome"]
        for pid, row in by_probe.items():
            table.add_row(
                Text(visible(row["question"])),
                row["type"],
                *[MARK.get(row.get(lane, ""), "") for lane in self.lanes],
                key=pid,
            )
        table.focus()

    def _tables(self):
        t = Table(expand=True, title="Answers (greedy) and scores with a confidence target t")
        for col in (
            "lane",
            "correct",
            "wrong",
            "no answer",
            "acc. if attempted",
            "F",
            *[f"t={x:g}" for x in TARGETS],
        ):
            t.add_column(col, justify="left" if col == "lane" else "right", no_wrap=col == "lane")
        for e in self.report["lanes"]:
            s = e["simpleqa"]
            t.add_row(
                Text(e["lane"]),
                pct(s["correct"]),
                pct(s["incorrect"]),
                pct(s["not_attempted"]),
                pct(s["accuracy_given_attempted"]),
                num(s["f"]),
                *[f"{e['targets'][x]:+.2f}" for x in TARGETS],
            )
        c = Table(
            expand=True,
            title="Calibration of the length-normalized probability (ECE / Brier / AUROC) and its reliability by bin",
        )
        c.add_column("lane", no_wrap=True)
        c.add_column("ECE", justify="right")
        c.add_column("Brier", justify="right")
        c.add_column("AUROC", justify="right")
        c.add_column("accuracy by confidence bin (0–0.1 … 0.9–1)")
        for e in self.report["lanes"]:
            cal = e["calibration"].get("conf_normalized")
            if not cal:
                continue
            bins = {round(b["bin"][0], 1): b for b in cal["reliability"]}
            bars = Text()
            for k in range(10):
                b = bins.get(round(k / 10, 1))
                bars.append(
                    " " + ("·" if b is None else "▁▂▃▄▅▆▇█"[min(7, int(b["accuracy"] * 7.999))]),
                    style="bold" if b else "dim",
                )
            c.add_row(Text(e["lane"]), num(cal["ece"]), num(cal["brier"]), num(cal["auroc"]), bars)
        return Group(t, c)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.dismiss(str(event.row_key.value))
