"""`playground ask`: every lane answers one question, streamed side by side in a Rich live view."""

from __future__ import annotations

import json
import queue
import sys
import threading

import click
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from playground.cli import options as opt
from playground.core.db import SessionLog
from playground.core.engine import Sampling
from playground.core.errors import PlaygroundError
from playground.core.events import (
    Finished,
    ModelLoaded,
    ModelLoading,
    PromptReady,
    SearchDone,
    SearchStarted,
    Token,
)
from playground.core.lanespec import DEFAULT_LANES, parse_lanes
from playground.core.playground import Playground
from playground.core.search.loop import COPIED_MARK, check_prefill
from playground.core.textsafe import json_safe, visible

POLL_S = 0.1


def _kind_label(kind: str) -> str:
    return "base (pretrained)" if kind == "base" else "tuned (instruction-following)"


class LanePanel:
    """A lane's panel: its spec as the title where the title fits, else as the first line (a
    panel title is cut short, and a lane's spec or model id must stay whole)."""

    def __init__(self, title: Text, lines: list[Text], border: str):
        self.title, self.lines, self.border = title, lines, border

    def __rich_console__(self, console, options):
        if self.title.cell_len + 6 <= options.max_width:
            yield Panel(Group(*self.lines), title=self.title, border_style=self.border)
        else:
            yield Panel(Group(self.title, *self.lines), border_style=self.border)


class LiveColumns:
    """Rich live view of the lanes, updated from the event queue."""

    def __init__(self, pg: Playground, question: str):
        self.pg = pg
        self.question = question
        self.text = {lane.name: "" for lane in pg.lanes}
        self.status = {lane.name: "waiting" for lane in pg.lanes}
        self.count = {lane.name: 0 for lane in pg.lanes}

    def on_event(self, ev) -> None:
        name = ev.lane
        if isinstance(ev, ModelLoading):
            self.status[name] = f"loading {ev.model_id}..."
        elif isinstance(ev, ModelLoaded):
            self.status[name] = "loaded"
        elif isinstance(ev, PromptReady):
            self.status[name] = f"prompt {len(ev.token_ids)} tokens ({ev.reused} cached)"
        elif isinstance(ev, SearchStarted):
            self.text[name] += (
                f"\n» {'searched first' if ev.kind == 'first' else 'search'}: {ev.query} …"
            )
        elif isinstance(ev, SearchDone):
            self._search_done(name, ev)
        elif isinstance(ev, Token):
            self.text[name] += ev.text
            self.count[name] += 1 if ev.token_id != -1 else 0
            self.status[name] = f"{self.count[name]} tokens"
        elif isinstance(ev, Finished):
            self.status[name] = ev.status if not ev.error else f"error: {ev.error}"

    def _search_done(self, name: str, ev: SearchDone) -> None:
        if self.text[name].endswith(" …"):
            self.text[name] = self.text[name][:-2]
        if ev.kind == "invented":
            self.text[name] += "\n⚠ the model started writing its own search results: stopped\n"
        elif ev.kind == "unterminated":
            self.text[name] += f"\n⚠ unterminated search: <SEARCH_START>{ev.query}\n"
        elif ev.error:
            self.text[name] += f" (search failed: {ev.error})\n"
        else:
            titles = ", ".join(r["title"] for r in ev.results)
            self.text[name] += f" ({len(ev.results)} results: {titles})\n"
        if ev.copied:
            self.text[name] = self.text[name].rstrip("\n") + f"  {COPIED_MARK}\n"

    def render(self):
        grid = Table.grid(expand=True, padding=(0, 1))
        for _ in self.pg.lanes:
            grid.add_column(ratio=1)
        panels = []
        for lane in self.pg.lanes:
            spec = lane.model_spec
            title = Text(visible(lane.spec.text), style="bold", overflow="fold")
            if spec is not None:
                sub = f"{spec.id} · {spec.family_name(lane.model.info if lane.model else None)} · {_kind_label(spec.kind)}"
            else:
                sub = lane.spec.model
            body = Text(visible(self.text[lane.name].strip()) or "…", overflow="fold")
            status = self.status[lane.name]
            style = "red" if status.startswith("error") else "dim"
            panels.append(
                LanePanel(
                    title,
                    [
                        Text(visible(sub), style="cyan", overflow="fold"),
                        Text(""),
                        body,
                        Text(""),
                        Text(visible(status), style=style, overflow="fold"),
                    ],
                    "red" if status.startswith("error") else "blue",
                )
            )
        grid.add_row(*panels)
        return Group(Text(visible(f"Q: {self.question}"), style="bold"), grid)


def _searches_json(log: SessionLog, exchange_id: int | None) -> list[dict]:
    keep = ("kind", "query", "backend", "error", "injected_tokens", "resume_evaluated")
    return [
        {k: row[k] for k in keep}
        | {"copied": bool(row["copied"]), "results": json.loads(row["results"] or "[]")}
        for row in (log.searches(exchange_id) if exchange_id else [])
    ]


def _lane_json(log: SessionLog, r) -> dict:
    return {
        "lane": r.lane.spec.text,
        "model": r.lane.model_spec.id if r.lane.model_spec else r.lane.spec.model,
        "kind": r.lane.model_spec.kind if r.lane.model_spec else None,
        "family": r.lane.model.family if r.lane.model else None,
        "mode": r.lane.spec.mode,
        "abstain": r.lane.spec.abstain,
        "text": r.text,
        "exchange_id": r.exchange_id,
        "status": r.status,
        "finish_reason": r.finish_reason,
        "error": r.error,
        "completion_tokens": r.stats.completion_tokens if r.stats else 0,
        "tokens_per_second": r.stats.tokens_per_second if r.stats else None,
        "time_to_first_token": r.stats.time_to_first_token if r.stats else None,
        "confidence": r.stats.confidence if r.stats else None,
        "prompt_tokens": r.stats.prompt_tokens if r.stats else None,
        "prompt_reused": r.stats.reused if r.stats else None,
        "searches": _searches_json(log, r.exchange_id),
    }


def _stats_table(pg: Playground, results) -> Table:
    """One row per lane; the model and its kind are in the lane's panel above."""
    t = Table(title="Per lane")
    t.add_column("lane", overflow="fold")
    t.add_column("status", overflow="fold")
    for col in ("tokens", "tok/s", "1st token", "conf.", "prompt"):
        t.add_column(col, justify="right")
    for r in results:
        s = r.stats
        t.add_row(
            Text(r.lane.spec.text),
            r.status + (f" ({r.finish_reason})" if r.status == "complete" else ""),
            str(s.completion_tokens) if s else "-",
            f"{s.tokens_per_second:.1f}" if s and s.tokens_per_second else "-",
            f"{s.time_to_first_token * 1000:.0f} ms"
            if s and s.time_to_first_token is not None
            else "-",
            f"{s.confidence:.0%}" if s and s.confidence is not None else "-",
            f"{s.prompt_tokens} ({s.reused} cached)" if s else "-",
        )
    return t


def _families_note(pg: Playground) -> str | None:
    fams = {}
    for lane in pg.lanes:
        if lane.model_spec is not None and lane.model is not None:
            fams[lane.model_spec.id] = lane.model.family
    if len(set(fams.values())) > 1:
        return (
            "Note: these models are from different families ("
            + ", ".join(f"{k}: {v}" for k, v in fams.items())
            + "), so differences are not only base vs tuned."
        )
    return None


def _feed(ev, events: queue.Queue, view: LiveColumns) -> bool:
    """Give the view this event and every one queued behind it; True at the end marker (None)."""
    while True:
        if ev is None:
            return True
        view.on_event(ev)
        try:
            ev = events.get_nowait()
        except queue.Empty:
            return False


def _stream(pg: Playground, question: str, sampling: Sampling, prefill: str, console, quiet):
    """Run the lanes in a thread and show their events; returns (view, live, results, interrupted).

    Ctrl-C cancels the lanes and waits for them; an error in the thread is raised here.
    """
    events: queue.Queue = queue.Queue()
    results: list = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            results.extend(pg.ask(question, sampling, emit=events.put, prefill=prefill))
        except BaseException as e:  # surfaced in the main thread
            failure.append(e)
        finally:
            events.put(None)

    worker = threading.Thread(target=run, name="ask", daemon=True)
    view = LiveColumns(pg, question)
    interrupted = False
    worker.start()
    live = (
        None
        if quiet or not console.is_terminal
        else Live(view.render(), console=console, refresh_per_second=10, transient=False)
    )
    try:
        if live:
            live.start()
        done = False
        while not done:
            try:
                ev = events.get(timeout=POLL_S)
            except queue.Empty:
                continue
            done = _feed(ev, events, view)
            if live:
                live.update(view.render())
    except KeyboardInterrupt:
        interrupted = True
        pg.cancel()
        worker.join(timeout=30)
    finally:
        if live:
            live.update(view.render())
            live.stop()
    worker.join(timeout=30)
    if failure:
        raise failure[0]
    return view, live, results, interrupted


def _print_summary(console, pg: Playground, log: SessionLog, view, live, results) -> None:
    if not live:
        console.print(view.render())
    console.print(_stats_table(pg, results))
    if note := _families_note(pg):
        console.print(Text(note, style="yellow"))
    console.print(
        Text(f"Logged to {log.path} (session {pg.session_id})", style="dim", overflow="fold")
    )
    for r in results:
        if r.error:
            console.print(Text(visible(f"{r.lane.spec.text}: {r.error}"), style="red"))


@click.command()
@click.argument("question", required=False)
@opt.lanes_option(DEFAULT_LANES, "Comma-separated MODEL:MODE[+abstain@T] lane specs.")
@opt.max_tokens_option(256)
@opt.temperature_option
@click.option(
    "--top-p", type=click.FloatRange(0.0, 1.0, min_open=True), default=1.0, show_default=True
)
@click.option("--top-k", type=click.IntRange(0), default=0, show_default=True, help="0 = no limit.")
@opt.seed_option(None, "Seed for sampling (temperature > 0).")
@click.option("--stop", "stops", multiple=True, help="Extra stop sequence (repeatable).")
@opt.json_option("Print one JSON object instead of the live view.")
@click.option(
    "--prefill", default="", help="Start every answer with this text, as if the model wrote it."
)
@opt.db_option
@opt.models_options
@opt.search_options
def ask(
    question,
    lanes_text,
    max_tokens,
    temperature,
    top_p,
    top_k,
    seed,
    stops,
    prefill,
    as_json,
    db_path,
    models_dir,
    base,
    tuned,
    search_backend,
    corpus_path,
):
    """Ask QUESTION in every lane at once and stream the answers side by side.

    Without QUESTION, the question is read from standard input (`echo "Who is Zyler Vance?" |
    playground ask`)."""
    if question is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise click.UsageError(
                'give a QUESTION (playground ask "Who is Zyler Vance?"), or pipe one in'
            )
        data = sys.stdin.buffer.read()
        try:
            question = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise PlaygroundError(
                f"the question on standard input is not UTF-8 text (byte {e.start})"
            ) from None
    if not question.strip():
        raise PlaygroundError("the question is empty")
    specs = parse_lanes(lanes_text)
    check_prefill(prefill)
    cat = opt.catalog(models_dir, base, tuned)
    sampling = Sampling(
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        seed=seed,
        max_tokens=max_tokens,
        stop=list(stops),
    )
    log = SessionLog(opt.db_location(db_path))
    pg = Playground(cat, specs, log, search_backend=search_backend, corpus_path=corpus_path)
    opt.check_lanes(pg)
    console = Console(stderr=as_json)
    view, live, results, interrupted = _stream(pg, question, sampling, prefill, console, as_json)
    if as_json:
        out = {
            "session_id": pg.session_id,
            "db": str(log.path),
            "question": question,
            "lanes": [_lane_json(log, r) for r in results],
        }
        click.echo(json_safe(json.dumps(out, indent=2, ensure_ascii=False)))
    else:
        _print_summary(console, pg, log, view, live, results)
    log.close()
    if interrupted:
        sys.exit(130)
    if any(r.status == "error" for r in results):
        sys.exit(1)


COMMANDS = [ask]
