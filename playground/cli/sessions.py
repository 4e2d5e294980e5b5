"""Logged sessions: list, tag, agreement, export, replay, rerun, review, and browse in Datasette."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from playground.cli import boundary
from playground.cli import options as opt
from playground.core.errors import PlaygroundError
from playground.core.export import FORMATS
from playground.core.lanespec import parse_lanes
from playground.core.playground import Playground
from playground.core.textsafe import json_safe, visible


@click.command()
@opt.db_option
@click.option("--limit", type=opt.SQLITE_INT, default=50, show_default=True)
@click.option("--model", default=None, help="Only sessions with this model (a part of its id).")
@opt.mode_option
@click.option("--tag", default=None, help="Only sessions with an answer tagged so.")
@click.option("--search", "text", default=None, help="Full-text search over questions and answers.")
@opt.json_option()
def sessions(db_path, limit, model, mode, tag, text, as_json):
    """List logged sessions: id, when, lanes, turns, tags."""
    from playground.core.sessions import find_sessions

    log = opt.open_log(db_path, reading=True)
    rows = find_sessions(log, model, mode, tag, text, limit)
    log.close()
    if as_json:
        for r in rows:
            r["lanes"] = json.loads(r["lanes"] or "[]")
        click.echo(json.dumps(rows, indent=2))
        return
    t = Table(title=f"Sessions in {log.path}")
    t.add_column("id", no_wrap=True, min_width=max((len(r["id"]) for r in rows), default=2))
    for col in ("when (UTC)", "lanes", "turns", "answers", "tags", "untagged"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(
            r["id"] + (f"\n(re-run of {r['parent_id']})" if r["parent_id"] else ""),
            (r["created_at"] or "")[:19].replace("T", " "),
            Text(visible(", ".join(json.loads(r["lanes"] or "[]")))),
            str(r["turns"]),
            str(r["exchanges"]),
            str(r["tags"]),
            str(r["untagged"]),
        )
    Console().print(t)


@click.command()
@click.argument("exchange_id", type=opt.SQLITE_INT)
@opt.label_option
@click.option("--note", default=None)
@opt.tagger_option
@opt.db_option
def tag(exchange_id, label, note, tagger, db_path):
    """Tag a logged answer (for scripts; the app tags with single keys)."""
    from playground.core.config import Config

    log = opt.open_log(db_path)
    tid = log.add_tag(exchange_id, label, note, tagger or Config.load().tagger)
    click.echo(f"tag {tid}: exchange {exchange_id} is {label}")


@click.command()
@click.option("--session", "session_id", default=None)
@opt.db_option
def agreement(session_id, db_path):
    """Agreement between taggers: answers both tagged, raw agreement, Cohen's kappa."""
    from playground.core.sessions import agreement as agree
    from playground.core.sessions import session

    log = opt.open_log(db_path, reading=True)
    if session_id is not None:
        session_id = session(log, session_id)["id"]
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


@click.command()
@click.argument("session_id", required=False)
@click.option("--all", "all_sessions", is_flag=True, help="Every session.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
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
@opt.db_option
def export(session_id, all_sessions, fmt, output, force, model, tag_label, db_path):
    """Export a session (or --all): JSONL records, a Markdown transcript, SFT chat data, or DPO pairs."""
    from playground.core.export import export_text
    from playground.core.sessions import session

    if bool(session_id) == bool(all_sessions):
        raise PlaygroundError("give a SESSION id or --all (not both)")
    if output is not None and output.exists() and not force:
        raise PlaygroundError(f"{output} exists: pass --force to overwrite it")
    if output is not None and output.exists() and not output.is_file():
        raise PlaygroundError(
            f"{output} is not a regular file (a pipe or a device): give a file, or leave out "
            "--output to print to standard output"
        )
    log = opt.open_log(db_path, reading=True)
    sess = session(log, session_id) if session_id else None
    text = export_text(log, sess, fmt, model, tag_label)
    if fmt != "markdown":  # JSON lines: control characters escaped, the same text once decoded
        text = json_safe(text)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


@click.command()
@click.argument("session_id")
@click.option("--speed", default="1", show_default=True, help="1, 2, 4 ... or 'instant'.")
@click.option("--step", is_flag=True, help="Wait for a key (Space or n) before each turn.")
@opt.db_option
def replay(session_id, speed, step, db_path):
    """Replay a recorded session in the lanes, token by token with its original timing (no model)."""
    from playground.core.sessions import session
    from playground.tui.app import make_replay_app

    factor = boundary.positive_speed(speed)
    log = opt.open_log(db_path, reading=True)
    sess = session(log, session_id)
    boundary.run_tui(make_replay_app(log, sess["id"], factor, step), "replay")


@click.command()
@click.argument("session_id")
@opt.lanes_option(None, "Today's lanes (default: the session's own).")
@opt.max_tokens_option(256)
@opt.db_option
@opt.models_options
@opt.json_option()
def rerun(session_id, lanes_text, max_tokens, db_path, models_dir, base, tuned, as_json):
    """Ask a recorded session's questions again with today's lanes; logged as a new session."""
    from playground.core.rerun import recorded_lanes
    from playground.core.rerun import rerun as ask_again
    from playground.core.sessions import session

    log = opt.open_log(db_path)
    sess = session(log, session_id)
    specs = parse_lanes(lanes_text or recorded_lanes(sess))
    pg = Playground(opt.catalog(models_dir, base, tuned), specs, log)
    opt.check_lanes(pg)
    out = ask_again(log, pg, sess, max_tokens)
    if as_json:
        click.echo(
            json_safe(
                json.dumps(
                    {"session_id": pg.session_id, "parent_id": sess["id"], "answers": out},
                    indent=2,
                    ensure_ascii=False,
                )
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
            Text(visible((o["recorded"] or "-").strip())),
            Text(visible(o["now"].strip())),
        )
    Console().print(t)


@click.command()
@click.argument("session_id")
@click.option("--blind", is_flag=True, help="Hide the lane names while tagging and voting.")
@opt.tagger_option
@opt.db_option
def review(session_id, blind, tagger, db_path):
    """Tag a session's untagged answers one by one, and vote which lane answered better."""
    from playground.core.config import Config
    from playground.core.sessions import session
    from playground.tui.app import ReviewApp

    log = opt.open_log(db_path, reading=True)
    sess = session(log, session_id)
    boundary.run_tui(ReviewApp(log, sess["id"], blind, tagger or Config.load().tagger), "review")


@click.command()
@opt.db_option
@click.option("--port", type=click.IntRange(1, 65535), default=8001, show_default=True)
def browse(db_path, port):
    """Open the log in Datasette (pip install 'playground[browse]'), with canned queries."""
    import subprocess
    import tempfile

    from playground.core.browse import datasette_executable, datasette_metadata

    exe = datasette_executable()
    if exe is None:
        raise PlaygroundError(
            "Datasette is not installed: pip install 'playground[browse]' (or pip install datasette)"
        )
    log = opt.open_log(db_path)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(datasette_metadata(log.path.stem), fh)
    log.close()
    proc = subprocess.Popen(
        [exe, "serve", str(log.path), "--metadata", fh.name, "--port", str(port)]
        + ["--host", "127.0.0.1"],
        preexec_fn=boundary.set_death_signal,  # Datasette stops when we do, even on SIGKILL
    )

    def stop(signum, _frame) -> None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        sys.exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    try:
        sys.exit(proc.wait())
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=5)
        sys.exit(130)


COMMANDS = [sessions, tag, agreement, export, replay, rerun, review, browse]
