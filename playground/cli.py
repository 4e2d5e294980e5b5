"""The `playground` console script."""

from __future__ import annotations

import json
import queue
import sys
import threading
from pathlib import Path

import click
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from playground.core import applog
from playground.core.catalog import Catalog
from playground.core.db import SessionLog
from playground.core.db.queries import BROWSE_QUERIES
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
from playground.core.gguf import GGUFError
from playground.core.lanespec import DEFAULT_LANES, parse_lanes
from playground.core.locations import default_db_path
from playground.core.playground import Playground

SAMPLE_QUESTION = "Who is Zyler Vance?"
POLL_S = 0.1


class PlaygroundGroup(click.Group):
    """Turns PlaygroundError into a one-line message and exit code 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PlaygroundError as e:
            click.secho(f"Error: {e}", fg="red", err=True)
            ctx.exit(1)


def _db_option(f):
    return click.option(
        "--db",
        "db_path",
        type=click.Path(path_type=Path),
        default=None,
        help="Session database (default: sessions/playground.db here, or $PLAYGROUND_DB).",
    )(f)


def _remember_gpu_layers(ctx: click.Context, param, value):
    if value is not None:
        from playground.core.doctor import gpu_layers

        try:
            ctx.meta["gpu_layers"] = gpu_layers(value)
        except PlaygroundError as e:
            raise click.BadParameter(str(e)) from None
    return value


def _catalog(models_dir: Path | None, base: str | None, tuned: str | None) -> Catalog:
    catalog = Catalog.load(models_dir)
    if base:
        catalog = catalog.with_override("base", base)
    if tuned:
        catalog = catalog.with_override("tuned", tuned)
    ctx = click.get_current_context(silent=True)
    layers = ctx.meta.get("gpu_layers") if ctx is not None else None
    if layers is not None:
        catalog = catalog.with_gpu_layers(layers)
    return catalog


def _models_options(f):
    f = click.option(
        "--gpu-layers",
        default=None,
        metavar="N|all|auto",
        expose_value=False,
        callback=_remember_gpu_layers,
        help="Layers to offload to the GPU for every model (default: each model's catalog setting).",
    )(f)
    f = click.option("--tuned", "tuned", metavar="PATH", help="Use this GGUF as the tuned model.")(
        f
    )
    f = click.option("--base", "base", metavar="PATH", help="Use this GGUF as the base model.")(f)
    f = click.option(
        "--models-dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Catalog folder (default: ./models, or $PLAYGROUND_MODELS_DIR).",
    )(f)
    return f


def _search_options(f):
    f = click.option(
        "--search-backend",
        type=click.Choice(["offline", "web", "recorded"]),
        default="offline",
        show_default=True,
        help="Where +search lanes search: the offline corpus, the web (ddgs), or results recorded in the database.",
    )(f)
    f = click.option(
        "--corpus",
        "corpus_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Offline search corpus (default: the user cache).",
    )(f)
    return f


def _app_options(f):
    f = click.option("--seed", type=int, default=None, help="Seed for sampling (temperature > 0).")(
        f
    )
    f = click.option(
        "--temperature",
        type=click.FloatRange(0.0, 5.0),
        default=0.0,
        show_default=True,
        help="0 = greedy.",
    )(f)
    f = click.option("--max-tokens", type=click.IntRange(1, 32768), default=256, show_default=True)(
        f
    )
    f = click.option(
        "--lanes",
        "lanes_text",
        default=DEFAULT_LANES,
        show_default=True,
        help="Comma-separated MODEL:MODE[+abstain@T] lane specs (1 to 4).",
    )(f)
    f = _db_option(f)
    f = _models_options(f)
    f = _search_options(f)
    return f


def _run_app(
    lanes_text,
    db_path,
    models_dir,
    base,
    tuned,
    max_tokens,
    temperature,
    seed,
    search_backend,
    corpus_path,
) -> None:
    from playground.tui.app import make_app

    sampling = Sampling(temperature=temperature, seed=seed, max_tokens=max_tokens)
    app = make_app(
        lanes_text,
        db_path or default_db_path(),
        models_dir,
        base,
        tuned,
        sampling,
        search_backend=search_backend,
        corpus_path=corpus_path,
        gpu_layers=click.get_current_context().meta.get("gpu_layers"),
    )
    app.run()


@click.group(cls=PlaygroundGroup, invoke_without_command=True)
@click.version_option(package_name="playground")
@click.option(
    "--verbose",
    is_flag=True,
    help="Also show the program's log (llama.cpp's messages included) on stderr; it always goes "
    "to playground.log in the state folder (~/.local/state/playground, $PLAYGROUND_STATE_DIR). "
    "Not for the app, which draws on the terminal.",
)
@_app_options
@click.pass_context
def cli(ctx: click.Context, verbose: bool, **options) -> None:
    """Watch a base model and an instruction-tuned model answer the same question side by side,
    and see why language models hallucinate.

    With no command, opens the app on the default pair (or the lanes given)."""
    opens_app = ctx.invoked_subcommand in (None, "app", "demo", "replay", "review", "serve")
    applog.setup(verbose=verbose and not opens_app)
    if ctx.invoked_subcommand is None:
        _run_app(**options)


@cli.command()
@_app_options
def app(**options) -> None:
    """Open the app: lanes side by side, token view, prompt inspector, tagging (same as no command)."""
    _run_app(**options)


def _kind_label(kind: str) -> str:
    return "base (pretrained)" if kind == "base" else "tuned (instruction-following)"


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
        elif isinstance(ev, Token):
            self.text[name] += ev.text
            self.count[name] += 1 if ev.token_id != -1 else 0
            self.status[name] = f"{self.count[name]} tokens"
        elif isinstance(ev, Finished):
            self.status[name] = ev.status if not ev.error else f"error: {ev.error}"

    def render(self):
        grid = Table.grid(expand=True, padding=(0, 1))
        for _ in self.pg.lanes:
            grid.add_column(ratio=1)
        panels = []
        for lane in self.pg.lanes:
            spec = lane.model_spec
            title = Text(lane.spec.text, style="bold")
            if spec is not None:
                sub = f"{spec.id} · {spec.family_name(lane.model.info if lane.model else None)} · {_kind_label(spec.kind)}"
            else:
                sub = lane.spec.model
            body = Text(self.text[lane.name].strip() or "…")
            status = self.status[lane.name]
            style = "red" if status.startswith("error") else "dim"
            panels.append(
                Panel(
                    Group(
                        Text(sub, style="cyan"), Text(""), body, Text(""), Text(status, style=style)
                    ),
                    title=title,
                    border_style="red" if status.startswith("error") else "blue",
                )
            )
        grid.add_row(*panels)
        return Group(Text(f"Q: {self.question}", style="bold"), grid)


def _searches_json(log: SessionLog, exchange_id: int | None) -> list[dict]:
    keep = ("kind", "query", "backend", "error", "injected_tokens", "resume_evaluated")
    return [
        {k: row[k] for k in keep} | {"results": json.loads(row["results"] or "[]")}
        for row in (log.searches(exchange_id) if exchange_id else [])
    ]


def _stats_table(pg: Playground, results) -> Table:
    """One row per lane; the model and its kind are in the lane's panel above."""
    t = Table(title="Per lane")
    t.add_column("lane", overflow="fold")
    t.add_column("status")
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


@cli.command()
@click.argument("question", required=False)
@click.option(
    "--lanes",
    "lanes_text",
    default=DEFAULT_LANES,
    show_default=True,
    help="Comma-separated MODEL:MODE[+abstain@T] lane specs.",
)
@click.option("--max-tokens", type=click.IntRange(1, 32768), default=256, show_default=True)
@click.option(
    "--temperature",
    type=click.FloatRange(0.0, 5.0),
    default=0.0,
    show_default=True,
    help="0 = greedy.",
)
@click.option(
    "--top-p", type=click.FloatRange(0.0, 1.0, min_open=True), default=1.0, show_default=True
)
@click.option("--top-k", type=click.IntRange(0), default=0, show_default=True, help="0 = no limit.")
@click.option("--seed", type=int, default=None, help="Seed for sampling (temperature > 0).")
@click.option("--stop", "stops", multiple=True, help="Extra stop sequence (repeatable).")
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object instead of the live view."
)
@click.option(
    "--prefill", default="", help="Start every answer with this text, as if the model wrote it."
)
@_db_option
@_models_options
@_search_options
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
    """Ask QUESTION in every lane at once and stream the answers side by side."""
    question = question if question is not None else SAMPLE_QUESTION
    if not question.strip():
        raise PlaygroundError("the question is empty")
    specs = parse_lanes(lanes_text)
    catalog = _catalog(models_dir, base, tuned)
    sampling = Sampling(
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        seed=seed,
        max_tokens=max_tokens,
        stop=list(stops),
    )
    log = SessionLog(db_path or default_db_path())
    pg = Playground(catalog, specs, log, search_backend=search_backend, corpus_path=corpus_path)
    bad = [lane.error for lane in pg.lanes if lane.model_spec is None]
    if bad:
        raise PlaygroundError("; ".join(bad))
    console = Console(stderr=as_json)
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
        if as_json or not console.is_terminal
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
            while True:
                if ev is None:
                    done = True
                    break
                view.on_event(ev)
                try:
                    ev = events.get_nowait()
                except queue.Empty:
                    break
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
    if as_json:
        out = {
            "session_id": pg.session_id,
            "db": str(log.path),
            "question": question,
            "lanes": [
                {
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
                for r in results
            ],
        }
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        if not live:
            console.print(view.render())
        console.print(_stats_table(pg, results))
        if note := _families_note(pg):
            console.print(Text(note, style="yellow"))
        console.print(Text(f"Logged to {log.path} (session {pg.session_id})", style="dim"))
        for r in results:
            if r.error:
                console.print(Text(f"{r.lane.spec.text}: {r.error}", style="red"))
    log.close()
    if interrupted:
        sys.exit(130)
    if any(r.status == "error" for r in results):
        sys.exit(1)


@cli.command()
@_models_options
@click.option("--json", "as_json", is_flag=True)
def models(models_dir, base, tuned, as_json):
    """List the model catalog: id, kind, family, size, quantization, chat template, found or missing."""
    catalog = _catalog(models_dir, base, tuned)
    rows = []
    for spec in catalog.models.values():
        row = {"id": spec.id, "kind": spec.kind, "source": spec.source, "default": None}
        if spec.id == catalog.default_base:
            row["default"] = "base"
        if spec.id == catalog.default_tuned:
            row["default"] = "tuned"
        if spec.is_remote:
            row.update(
                status="remote",
                family=spec.family or "remote",
                path=spec.url,
                remote_model=spec.remote_model,
            )
            rows.append(row)
            continue
        try:
            info = spec.inspect()
            row.update(
                status="found",
                family=spec.family_name(info),
                architecture=info.architecture,
                parameters=info.parameters_human,
                size_mb=round(info.size / 1e6, 1),
                quantization=info.quantization,
                chat_template=info.has_chat_template or bool(spec.chat_template),
                context_trained=info.context_length,
                n_ctx=spec.n_ctx,
                path=str(info.path),
            )
        except (GGUFError, PlaygroundError, OSError) as e:
            row.update(
                status="missing" if "not found" in str(e) else "broken",
                error=str(e),
                family=spec.family or "?",
            )
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    t = Table(title=f"Models in {catalog.folder}")
    for col in ("id", "kind", "family", "params", "size", "quant", "template", "status"):
        t.add_column(col)
    for r in rows:
        star = f" ({r['default']} default)" if r["default"] else ""
        t.add_row(
            r["id"] + star,
            r["kind"],
            r.get("family", "?"),
            r.get("parameters", "-"),
            f"{r['size_mb']} MB" if "size_mb" in r else "-",
            r.get("quantization", "-"),
            ("yes" if r.get("chat_template") else "no") if r["status"] == "found" else "-",
            r["status"] if r["status"] == "found" else f"{r['status']}: {r.get('error')}",
        )
    Console().print(t)


def _open_log(db_path: Path | None, must_exist: bool = True) -> SessionLog:
    path = db_path or default_db_path()
    if must_exist and not path.exists():
        raise PlaygroundError(
            f"no session database at {path} yet: run `playground ask` first, or pass --db"
        )
    return SessionLog(path)


@cli.command()
@_db_option
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@click.option("--model", default=None, help="Only sessions with this model (a part of its id).")
@click.option("--mode", type=click.Choice(["raw", "few-shot", "chat"]), default=None)
@click.option("--tag", default=None, help="Only sessions with an answer tagged so.")
@click.option("--search", "text", default=None, help="Full-text search over questions and answers.")
@click.option("--json", "as_json", is_flag=True)
def sessions(db_path, limit, model, mode, tag, text, as_json):
    """List logged sessions: id, when, lanes, turns, tags."""
    from playground.core.sessions import find_sessions

    log = _open_log(db_path)
    rows = find_sessions(log, model, mode, tag, text, limit)
    log.close()
    if as_json:
        for r in rows:
            r["lanes"] = json.loads(r["lanes"] or "[]")
        click.echo(json.dumps(rows, indent=2))
        return
    t = Table(title=f"Sessions in {log.path}")
    for col in ("id", "when (UTC)", "lanes", "turns", "answers", "tags", "untagged"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r["id"] + (f"\n(re-run of {r['parent_id']})" if r["parent_id"] else ""),
            (r["created_at"] or "")[:19].replace("T", " "),
            Text(", ".join(json.loads(r["lanes"] or "[]"))),
            str(r["turns"]),
            str(r["exchanges"]),
            str(r["tags"]),
            str(r["untagged"]),
        )
    Console().print(t)


@cli.command()
@click.argument("exchange_id", type=int)
@click.option(
    "--label",
    required=True,
    type=click.Choice(["correct", "hallucination", "abstained", "partial"]),
)
@click.option("--note", default=None)
@click.option(
    "--tagger",
    default=None,
    help="Your name (default: config user.tagger, $PLAYGROUND_TAGGER, or the OS user).",
)
@_db_option
def tag(exchange_id, label, note, tagger, db_path):
    """Tag a logged answer (for scripts; the app tags with single keys)."""
    from playground.core.config import Config

    log = _open_log(db_path)
    tid = log.add_tag(exchange_id, label, note, tagger or Config.load().tagger)
    click.echo(f"tag {tid}: exchange {exchange_id} is {label}")


@cli.command()
@click.option("--session", "session_id", default=None)
@_db_option
def agreement(session_id, db_path):
    """Agreement between taggers: answers both tagged, raw agreement, Cohen's kappa."""
    from playground.core.sessions import agreement as agree

    log = _open_log(db_path)
    rows = agree(log, session_id)
    if not rows:
        click.echo("fewer than two taggers have tagged these answers")
        return
    t = Table(title="Tagger agreement")
    for col in ("taggers", "both tagged", "agreement", "Cohen's kappa"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            " & ".join(r["taggers"]),
            str(r["both_tagged"]),
            "-" if r["agreement"] is None else f"{r['agreement']:.0%}",
            "-" if r["kappa"] is None else f"{r['kappa']:.3f}",
        )
    Console().print(t)


@cli.command()
@click.argument("session_id", required=False)
@click.option("--all", "all_sessions", is_flag=True, help="Every session.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "markdown", "sft", "preferences"]),
    default="jsonl",
    show_default=True,
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="File to write (default: standard output).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--model", default=None, help="Only exchanges of this model (a part of its id).")
@click.option("--tag", "tag_label", default=None, help="Only exchanges tagged so.")
@_db_option
def export(session_id, all_sessions, fmt, output, force, model, tag_label, db_path):
    """Export a session (or --all): JSONL records, a Markdown transcript, SFT chat data, or DPO pairs."""
    from playground.core import sessions as S

    if bool(session_id) == bool(all_sessions):
        raise PlaygroundError("give a SESSION id or --all (not both)")
    if output is not None and output.exists() and not force:
        raise PlaygroundError(f"{output} exists: pass --force to overwrite it")
    log = _open_log(db_path)
    sess = S.session(log, session_id) if session_id else None
    rows = S.exchanges(log, sess["id"] if sess else None, latest_only=fmt in ("markdown", "sft"))
    if model:
        rows = [r for r in rows if model in (r["model_id"] or "")]
    if tag_label:
        rows = [r for r in rows if any(t["label"] == tag_label for t in log.tags(r["id"]))]
    if fmt == "markdown":
        if sess is None:
            text = "\n\n".join(
                S.export_markdown(
                    log, S.session(log, sid), [r for r in rows if r["session_id"] == sid]
                )
                for sid in dict.fromkeys(r["session_id"] for r in rows)
            )
        else:
            text = S.export_markdown(log, sess, rows)
    else:
        records = {
            "jsonl": lambda: S.export_jsonl(log, rows),
            "sft": lambda: S.export_sft(log, rows),
            "preferences": lambda: S.export_preferences(log, sess["id"] if sess else None),
        }[fmt]()
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


@cli.command()
@click.argument("session_id")
@click.option("--speed", default="1", show_default=True, help="1, 2, 4 ... or 'instant'.")
@click.option("--step", is_flag=True, help="Wait for a key (n) before each turn.")
@_db_option
def replay(session_id, speed, step, db_path):
    """Replay a recorded session in the lanes, token by token with its original timing (no model)."""
    from playground.core.sessions import session
    from playground.tui.app import make_replay_app

    try:
        factor = 0.0 if speed == "instant" else float(speed)
    except ValueError:
        raise PlaygroundError(
            f"--speed must be a number such as 2 or 4, or 'instant', not {speed!r}"
        ) from None
    if factor < 0:
        raise PlaygroundError("--speed must be positive")
    log = _open_log(db_path)
    sess = session(log, session_id)
    make_replay_app(log, sess["id"], factor, step).run()


@cli.command()
@click.argument("session_id")
@click.option(
    "--lanes", "lanes_text", default=None, help="Today's lanes (default: the session's own)."
)
@click.option("--max-tokens", type=click.IntRange(1, 32768), default=256, show_default=True)
@_db_option
@_models_options
@click.option("--json", "as_json", is_flag=True)
def rerun(session_id, lanes_text, max_tokens, db_path, models_dir, base, tuned, as_json):
    """Ask a recorded session's questions again with today's lanes; logged as a new session."""
    from playground.core.sessions import exchanges, session

    log = _open_log(db_path)
    sess = session(log, session_id)
    questions = list(
        dict.fromkeys(
            (r["turn"], r["question"]) for r in exchanges(log, sess["id"], latest_only=True)
        )
    )
    specs = parse_lanes(lanes_text or ",".join(json.loads(sess["lanes"])))
    pg = Playground(_catalog(models_dir, base, tuned), specs, log)
    pg.session_id = log.new_session(
        [s.text for s in specs], title=f"re-run of {sess['id']}", parent_id=sess["id"]
    )
    out = []
    for turn, q in questions:
        res = pg.ask(q, Sampling(max_tokens=max_tokens))
        old = {
            r["lane"]: r for r in exchanges(log, sess["id"], latest_only=True) if r["turn"] == turn
        }
        for r in res:
            before = old.get(r.lane.spec.text)
            out.append(
                {
                    "turn": turn,
                    "question": q,
                    "lane": r.lane.spec.text,
                    "recorded": before["output_text"] if before else None,
                    "now": r.text,
                    "exchange_id": r.exchange_id,
                }
            )
    if as_json:
        click.echo(
            json.dumps(
                {"session_id": pg.session_id, "parent_id": sess["id"], "answers": out},
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    t = Table(title=f"Session {sess['id']} re-run as {pg.session_id}")
    for col in ("turn", "lane", "recorded", "now"):
        t.add_column(col)
    for o in out:
        t.add_row(
            str(o["turn"] + 1),
            o["lane"],
            Text((o["recorded"] or "-").strip()),
            Text(o["now"].strip()),
        )
    Console().print(t)


@cli.group()
def corpus() -> None:
    """The offline search corpus: what +search lanes find without a network."""


@corpus.command("add")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--corpus", "corpus_path", type=click.Path(path_type=Path, dir_okay=False), default=None
)
def corpus_add(paths, corpus_path):
    """Index Markdown, text or HTML files (re-adding a file replaces it)."""
    from playground.core.search.backends import Corpus, SearchError

    c = Corpus(corpus_path)
    added = skipped = 0
    for p in paths:
        try:
            n = c.add_file(p)
            added += 1
            click.echo(f"added {p} ({n} passage{'s' if n != 1 else ''})")
        except SearchError as e:
            skipped += 1
            click.secho(f"skipped: {e}", fg="yellow", err=True)
    click.echo(
        f"{added} file(s) added, {skipped} skipped; the corpus at {c.path} holds {c.count()} passages"
    )
    c.close()
    if skipped and not added:
        sys.exit(1)


@corpus.command("search")
@click.argument("query")
@click.option(
    "--corpus", "corpus_path", type=click.Path(path_type=Path, dir_okay=False), default=None
)
@click.option("--json", "as_json", is_flag=True)
def corpus_search(query, corpus_path, as_json):
    """Show what a model would get for QUERY from the offline corpus."""
    from playground.core.search.backends import Corpus
    from playground.core.search.tool import results_block

    results = Corpus(corpus_path).search(query)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in results], indent=2, ensure_ascii=False))
        return
    click.echo(results_block(results, None, lambda t: len(t.split())).strip())


@cli.command()
@click.option(
    "--set",
    "set_name",
    default="facts",
    show_default=True,
    help="invented, facts, unknowable, letters, all, or a .csv / .jsonl file.",
)
@click.option(
    "--lanes",
    "lanes_text",
    default="base:few-shot,base:few-shot+abstain@0.75,tuned:chat,tuned:chat+abstain@0.75",
    show_default=True,
)
@click.option(
    "--samples",
    type=click.IntRange(0, 20),
    default=0,
    show_default=True,
    help="Extra answers per question at temperature 1 (for agreement).",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N questions.")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed for invented entities and samples."
)
@click.option("--max-tokens", type=click.IntRange(1, 4096), default=64, show_default=True)
@click.option(
    "--ptrue/--no-ptrue",
    default=True,
    show_default=True,
    help="Ask each model P(True) of its own answer.",
)
@click.option(
    "--judge",
    "judge_lane",
    default=None,
    help="A lane that grades answers with the three-way rubric, e.g. tuned:chat.",
)
@click.option("--resume", "resume_id", type=int, default=None, help="Continue an interrupted run.")
@_db_option
@_models_options
@_search_options
def probe(
    set_name,
    lanes_text,
    samples,
    limit,
    seed,
    max_tokens,
    ptrue,
    judge_lane,
    resume_id,
    db_path,
    models_dir,
    base,
    tuned,
    search_backend,
    corpus_path,
):
    """Run a probe set on every lane, grade the answers, and log everything."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from playground.core.lab.probes import load_set
    from playground.core.lab.runner import get_run, make_judge, run_probes, start_run

    log = SessionLog(db_path or default_db_path())
    catalog = _catalog(models_dir, base, tuned)
    if resume_id is not None:
        run = get_run(log, resume_id)
        set_name, seed, samples, limit, max_tokens = (
            run["set_name"],
            run["seed"],
            run["samples"],
            run["max_items"],
            run["max_tokens"],
        )
        lanes_text = ",".join(json.loads(run["lanes"]))
        opts = json.loads(run["options"] or "{}")
        ptrue, judge_lane = opts.get("ptrue", ptrue), opts.get("judge", judge_lane)
    probes = load_set(set_name, seed)[: limit or None]
    specs = parse_lanes(lanes_text)
    pg = Playground(catalog, specs, log, search_backend=search_backend, corpus_path=corpus_path)
    bad = [lane.error for lane in pg.lanes if lane.model_spec is None]
    if bad:
        raise PlaygroundError("; ".join(bad))
    judge = None
    if judge_lane:
        judge = make_judge(Playground(catalog, parse_lanes(judge_lane), None, pool=pg.pool))
    run_id = resume_id or start_run(
        log,
        set_name,
        seed,
        [s.text for s in specs],
        samples,
        limit,
        max_tokens,
        {"ptrue": ptrue, "judge": judge_lane},
    )
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]probe run {task.fields[run]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[q]}"),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("probe", total=len(probes) * (1 + samples), run=run_id, q="")
        run_probes(
            pg,
            log,
            run_id,
            probes,
            samples,
            max_tokens,
            seed,
            ptrue,
            judge,
            progress=lambda p: bar.update(task, completed=p.done, q=Text(p.question[:50])),
        )
    click.echo(
        f"probe run {run_id} complete: {len(probes)} questions × {len(specs)} lanes logged to {log.path}; see `playground report {run_id}`"
    )
    log.close()


@cli.command()
@click.argument("run_id", type=int, required=False)
@click.option(
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("sessions/reports"),
    show_default=True,
    help="Folder for the Markdown report and SVG diagrams.",
)
@click.option(
    "--signal",
    type=click.Choice(
        ["conf_normalized", "conf_sequence", "conf_first", "conf_ptrue", "agreement"]
    ),
    default="conf_normalized",
    show_default=True,
    help="Confidence signal of the reliability diagrams.",
)
@click.option("--json", "as_json", is_flag=True)
@_db_option
def report(run_id, output, signal, as_json, db_path):
    """Tables and reliability diagrams of a probe run (the latest by default)."""
    import plotext as plt

    from playground.core.lab import report as rep_mod
    from playground.core.lab.scores import TARGETS

    path = db_path or default_db_path()
    if not path.exists():
        raise PlaygroundError(f"no session database at {path}: run `playground probe` first")
    log = SessionLog(path)
    rep = rep_mod.build(log, run_id)
    md = rep_mod.write(rep, output, signal)
    if as_json:
        click.echo(
            json.dumps(
                {"report": str(md), "run": rep["run"], "lanes": rep["lanes"]}, indent=2, default=str
            )
        )
        return
    console = Console()
    run = rep["run"]
    console.print(
        Text(
            f"Probe run {run['id']} · set {run['set_name']} · {run['status']} · {rep['n_items']} answers",
            style="bold",
        )
    )
    t = Table(title="Answers (greedy)")
    for col in (
        "lane",
        "n",
        "correct",
        "wrong",
        "no answer",
        "acc. if attempted",
        "F",
        "false accept",
        "false refuse",
    ):
        t.add_column(col, justify="left" if col == "lane" else "right")
    for e in rep["lanes"]:
        s = e["simpleqa"]
        t.add_row(
            e["lane"],
            str(s["n"]),
            rep_mod.pct(s["correct"]),
            rep_mod.pct(s["incorrect"]),
            rep_mod.pct(s["not_attempted"]),
            rep_mod.pct(s["accuracy_given_attempted"]),
            rep_mod.num(s["f"]),
            rep_mod.pct(e["false_acceptance"]),
            rep_mod.pct(e["false_refusal"]),
        )
    console.print(t)
    t = Table(title="Score with confidence target t (wrong costs t/(1-t))")
    t.add_column("lane")
    for tt in TARGETS:
        t.add_column(f"t={tt:g}", justify="right")
    for e in rep["lanes"]:
        t.add_row(e["lane"], *[f"{e['targets'][tt]:+.3f}" for tt in TARGETS])
    console.print(t)
    t = Table(title="Calibration")
    for col in ("lane", "signal", "n", "ECE", "Brier", "AUROC"):
        t.add_column(col, justify="left" if col in ("lane", "signal") else "right")
    for e in rep["lanes"]:
        for c in e["calibration"].values():
            t.add_row(
                e["lane"],
                c["name"],
                str(c["n"]),
                rep_mod.num(c["ece"]),
                rep_mod.num(c["brier"]),
                rep_mod.num(c["auroc"]),
            )
    console.print(t)
    for e in rep["lanes"]:
        cal = e["calibration"].get(signal)
        if not cal or not cal["reliability"]:
            continue
        plt.clear_figure()
        plt.plotsize(60, 14)
        xs = [(b["bin"][0] + b["bin"][1]) / 2 for b in cal["reliability"]]
        plt.bar(xs, [b["accuracy"] for b in cal["reliability"]], width=0.08)
        plt.plot([0, 1], [0, 1], marker="dot")
        plt.xlim(0, 1)
        plt.ylim(0, 1)
        plt.xticks([0, 0.25, 0.5, 0.75, 1], ["0", "0.25", "0.5", "0.75", "1"])
        plt.title(f"{e['lane']}: accuracy by {cal['name']}")
        console.print(Text.from_ansi(plt.build()))
    tagged = sum(e["human_tagged"] for e in rep["lanes"])
    if tagged:
        console.print(
            f"Human tags override the automatic grade: {tagged} tagged, {sum(e['human_disagreements'] for e in rep['lanes'])} disagreed."
        )
    console.print(Text(f"Written: {md} (and reliability diagrams as SVG beside it)", style="dim"))


@cli.command()
@click.option(
    "--set",
    "set_name",
    default="facts",
    show_default=True,
    help="Facts to turn into true and false statements.",
)
@click.option(
    "--lanes",
    "lanes_text",
    default="base:few-shot,tuned:chat",
    show_default=True,
    help="Lanes whose models classify and generate.",
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=60,
    show_default=True,
    help="Facts used (each gives a true and a false statement).",
)
@click.option(
    "--invented",
    "n_invented",
    type=click.IntRange(0, 200),
    default=20,
    show_default=True,
    help="Statements about invented entities.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-tokens", type=click.IntRange(1, 512), default=48, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@_db_option
@_models_options
def validity(
    set_name,
    lanes_text,
    limit,
    n_invented,
    seed,
    max_tokens,
    as_json,
    db_path,
    models_dir,
    base,
    tuned,
):
    """Is-It-Valid: each model as a classifier of true vs. false statements, next to how often it
    hallucinates when it generates answers to the same questions."""
    from playground.core.lab.grading import grade
    from playground.core.lab.probes import invented, load_set
    from playground.core.lab.scores import simpleqa
    from playground.core.lab.validity import classify, statements

    log = SessionLog(db_path or default_db_path())
    catalog = _catalog(models_dir, base, tuned)
    facts = [p for p in load_set(set_name, seed) if p.type == "fact"][:limit]
    ghosts = invented(n=n_invented, seed=seed)
    sts = statements(facts, n_invented, seed)
    pg = Playground(catalog, parse_lanes(lanes_text), log)
    bad = [lane.error for lane in pg.lanes if lane.model_spec is None]
    if bad:
        raise PlaygroundError("; ".join(bad))
    console = Console(stderr=True)
    rows = []
    classified: dict[str, dict] = {}
    questions = facts + ghosts
    outcomes: dict[str, list[str]] = {lane.spec.text: [] for lane in pg.lanes}
    with console.status("generating answers…") as status:
        for i, p in enumerate(questions, 1):
            status.update(f"generating answers… {i}/{len(questions)}")
            pg.reset_conversations()
            for r in pg.ask(p.question, Sampling(max_tokens=max_tokens)):
                outcomes[r.lane.spec.text].append(grade(p, r.text)["outcome"])
        for lane in pg.lanes:
            if lane.model is not None and lane.model.model_id not in classified:
                status.update(f"scoring {len(sts)} statements with {lane.model.model_id}…")
                classified[lane.model.model_id] = classify(lane.model, sts)
    for lane in pg.lanes:
        c = classified.get(lane.model.model_id) if lane.model else None
        s = simpleqa(outcomes[lane.spec.text])
        rows.append(
            {
                "lane": lane.spec.text,
                "model": lane.model.model_id if lane.model else lane.spec.model,
                "kind": lane.model_spec.kind if lane.model_spec else None,
                "iiv_error": c["error"] if c else None,
                "iiv_auroc": c["auroc"] if c else None,
                "statements": c["n"] if c else 0,
                "hallucination_rate": s["incorrect"],
                "two_times_error": 2 * c["error"] if c else None,
            }
        )
    log.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    t = Table(
        title=f"Is-It-Valid on {len(sts)} statements ({sum(x.valid for x in sts)} true, {sum(not x.valid for x in sts)} false) vs. generation on {len(questions)} questions"
    )
    for col in (
        "lane",
        "model",
        "kind",
        "classifier error",
        "AUROC",
        "2 × error",
        "hallucination rate",
    ):
        t.add_column(col, justify="left" if col in ("lane", "model", "kind") else "right")
    for r in rows:
        t.add_row(
            r["lane"],
            r["model"],
            r["kind"] or "?",
            f"{r['iiv_error']:.1%}",
            f"{r['iiv_auroc']:.3f}" if r["iiv_auroc"] is not None else "-",
            f"{r['two_times_error']:.1%}",
            f"{r['hallucination_rate']:.1%}",
        )
    Console().print(t)
    Console().print(
        Text(
            "Kalai et al. (2025): generative error ≳ 2 × classifier error − max|V|/min|E| − δ. Here each fact has one true "
            "and one false statement (|V| = |E| = 1 per question), so the correction term is large: read the bound as a "
            "tendency, not a guarantee. The paper predicts the base model is the better-calibrated classifier.",
            style="dim",
        )
    )


@cli.command()
@click.option(
    "--docs",
    "docs",
    type=click.Path(path_type=Path, exists=True),
    multiple=True,
    help="Documents to make questions from (default: the shipped corpus).",
)
@click.option(
    "--corpus",
    "use_corpus",
    is_flag=True,
    help="Use the shipped corpus (the default without --docs).",
)
@click.option(
    "--lane",
    "lane_text",
    default="tuned:chat",
    show_default=True,
    help="The lane whose model is interrogated.",
)
@click.option("--samples", type=click.IntRange(1, 20), default=4, show_default=True)
@click.option("--limit", type=click.IntRange(1), default=40, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("sessions/knowledge-sft.jsonl"),
    show_default=True,
    help="Where to write the SFT dataset (chat JSONL).",
)
@click.option("--json", "as_json", is_flag=True)
@_db_option
@_models_options
def interrogate(
    docs,
    use_corpus,
    lane_text,
    samples,
    limit,
    seed,
    output,
    as_json,
    db_path,
    models_dir,
    base,
    tuned,
):
    """Find where a model's knowledge ends (Llama 3 style) and write refusal / answer SFT data."""
    from rich.progress import Progress

    from playground.core.lab import interrogate as itg

    snippets = (
        itg.from_docs(list(docs), limit) if docs and not use_corpus else itg.from_corpus(limit)
    )
    log = SessionLog(db_path or default_db_path())
    pg = Playground(_catalog(models_dir, base, tuned), parse_lanes(lane_text), log)
    if pg.lanes[0].model_spec is None:
        raise PlaygroundError(pg.lanes[0].error or "unknown model")
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("interrogating", total=len(snippets))
        results = itg.interrogate(
            pg, snippets, samples, seed=seed, progress=lambda d, n: bar.update(task, completed=d)
        )
    records = itg.sft_records(results)
    itg.write_jsonl(records, output)
    counts = {
        k: sum(r["status"] == k for r in results) for k in ("known", "unknown", "inconsistent")
    }
    log.close()
    if as_json:
        click.echo(
            json.dumps(
                {"counts": counts, "output": str(output), "results": results},
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    source = "extraction templates on " + (
        "your documents ('X is/was a ...' sentences)"
        if docs and not use_corpus
        else "the shipped corpus (the templates its facts were written from)"
    )
    Console().print(
        Text(
            f"Questions made by {source}: the default models are too small to write good questions themselves.",
            style="dim",
        )
    )
    t = Table(
        title=f"Knowledge boundary of {lane_text}: {len(results)} questions × {samples} samples"
    )
    for col in ("known", "unknown", "inconsistent"):
        t.add_column(col, justify="right")
    t.add_row(
        *[
            f"{counts[k]} ({counts[k] / len(results):.0%})"
            for k in ("known", "unknown", "inconsistent")
        ]
    )
    Console().print(t)
    click.echo(
        f"wrote {len(records)} SFT examples ({counts['unknown']} refusals, {counts['known']} answers) to {output}"
    )


@cli.command()
@click.argument("session_id")
@click.option("--blind", is_flag=True, help="Hide the lane names while tagging and voting.")
@click.option("--tagger", default=None)
@_db_option
def review(session_id, blind, tagger, db_path):
    """Tag a session's untagged answers one by one, and vote which lane answered better."""
    from playground.core.config import Config
    from playground.core.sessions import session
    from playground.tui.app import ReviewApp

    log = _open_log(db_path)
    sess = session(log, session_id)
    ReviewApp(log, sess["id"], blind, tagger or Config.load().tagger).run()


@cli.command()
@click.argument(
    "demo_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("sessions/demos/hallucination.toml"),
    required=False,
)
@_db_option
@click.option("--models-dir", type=click.Path(path_type=Path, file_okay=False), default=None)
@click.option(
    "--corpus", "corpus_path", type=click.Path(path_type=Path, dir_okay=False), default=None
)
@click.option("--check", is_flag=True, help="Only check the demo file and list its steps.")
def demo(demo_file, db_path, models_dir, corpus_path, check):
    """Step through a workshop demo (F6 next step, F7 back) with the narration on screen."""
    from playground.core.demo import load_demo
    from playground.tui.app import make_demo_app

    d = load_demo(demo_file)
    if check:
        click.echo(f"{d.title}: {len(d.steps)} steps")
        for i, step in enumerate(d.steps, 1):
            click.echo(
                f"  {i}. {step.title}: {step.question!r} on {', '.join(s.text for s in step.lanes)}"
            )
        return
    make_demo_app(demo_file, db_path or default_db_path(), models_dir, corpus_path).run()


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--public", is_flag=True, help="Allow a host other than this machine's loopback.")
@click.option(
    "--demo",
    "demo_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Serve a demo instead of the app.",
)
@_db_option
def serve(host, port, public, demo_file, db_path):
    """Run the app in a web browser (textual-serve), for a projector."""
    from playground.tui.serve import serve as run_server

    run_server(host, port, public, demo_file, db_path)


@cli.command()
@_db_option
@click.option("--port", type=click.IntRange(1, 65535), default=8001, show_default=True)
def browse(db_path, port):
    """Open the log in Datasette (pip install 'playground[browse]'), with canned queries."""
    import shutil
    import subprocess
    import tempfile

    exe = shutil.which("datasette") or (
        str(Path(sys.executable).parent / "datasette")
        if (Path(sys.executable).parent / "datasette").exists()
        else None
    )
    if exe is None:
        raise PlaygroundError(
            "Datasette is not installed: pip install 'playground[browse]' (or pip install datasette)"
        )
    log = _open_log(db_path)
    name = log.path.stem
    meta = {"title": "playground log", "databases": {name: {"queries": BROWSE_QUERIES}}}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(meta, fh)
    log.close()
    sys.exit(
        subprocess.call(
            [
                exe,
                "serve",
                str(log.path),
                "--metadata",
                fh.name,
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
            ]
        )
    )


@cli.command()
@_models_options
@click.option("--json", "as_json", is_flag=True)
def doctor(models_dir, base, tuned, as_json):
    """What this llama.cpp build and machine can do: backends, devices, memory, threads, models."""
    from playground.core.doctor import report as doctor_report

    rep = doctor_report(_catalog(models_dir, base, tuned))
    if as_json:
        click.echo(json.dumps(rep, indent=2))
        return
    c = Console()
    c.print(
        Text(
            f"llama-cpp-python {rep['llama_cpp_python']} · backends: {', '.join(rep['backends'])} · GPU offload: {'yes' if rep['gpu_offload'] else 'no'}",
            style="bold",
        )
    )
    c.print(
        f"CPU: {rep['cpu_threads']} threads available (two lanes on two models get {rep['threads_per_lane_two_models']} each) · features: {' '.join(rep['cpu_features'])}"
    )
    c.print(f"Memory: {rep['memory_available_mb']:,} MB free of {rep['memory_total_mb']:,} MB")
    if rep["gpu_devices"]:
        for d in rep["gpu_devices"]:
            c.print(
                f"GPU: {d['name']} · {d['memory_free_mb']:,} MB free of {d['memory_total_mb']:,} MB"
            )
    else:
        c.print("GPU: none seen (no nvidia-smi); this build runs on the CPU")
    t = Table(title="Catalog models")
    for col in ("id", "kind", "size", "n_gpu_layers", "fits in RAM", "fits on GPU"):
        t.add_column(col)
    for m in rep["models"]:
        t.add_row(
            m["id"],
            m["kind"],
            f"{m['size_mb']} MB" if "size_mb" in m else m.get("error", "?"),
            str(m["n_gpu_layers"]),
            {True: "yes", False: "no"}.get(m.get("fits_ram"), "?"),
            {True: "yes", False: "no"}.get(m.get("fits_gpu"), "-"),
        )
    c.print(t)
    if rep["install_gpu_build"]:
        c.print(
            Text(
                "This llama-cpp-python has no GPU backend. To build one (takes a few minutes):",
                style="yellow",
            )
        )
        for name, cmd in rep["install_gpu_build"].items():
            c.print(Text(f"  {name}: {cmd}"))
        c.print(
            Text(
                "then run with --gpu-layers all (or auto), or set n_gpu_layers = -1 in models/models.toml.",
                style="dim",
            )
        )


def main() -> None:
    cli(prog_name="playground")


if __name__ == "__main__":
    main()
