"""Terminal safety: control sequences in untrusted text are shown, never obeyed, on every screen;
the database and JSON keep the exact text."""

import asyncio
import io
import json

import pytest
from click.testing import CliRunner
from rich.console import Console

from playground.cli import cli
from playground.core.db import SessionLog
from playground.core.engine import Sampling
from playground.core.lanespec import parse_lane
from playground.core.textsafe import is_safe, visible

from .fakes import FakeBackend, FakePlayground

OSC52 = "\x1b]52;c;YQ==\x07"  # write "a" to the clipboard
CLEAR = "\x1b[2J"  # clear the screen


@pytest.mark.parametrize(
    "raw,shown",
    [
        (f"Clipboard log:\n{OSC52}\n", "Clipboard log:\n␛]52;c;YQ==␇\n"),
        (f"a{CLEAR}b", "a␛[2Jb"),
        ("\x9b2J", "␛2J"),  # 8-bit CSI
        ("\x1bP1$r\x1b\\", "␛P1$r␛\\"),  # DCS
        ("over\rwrite\x08\x7f", "over␍write␈␡"),
        ("abc\u202edcba", "abc\ufffddcba"),  # a right-to-left override reorders what is shown
        ("tab\tand\nnewline stay, é and 日本 too", "tab\tand\nnewline stay, é and 日本 too"),
    ],
)
def test_control_characters_become_visible_one_for_one(raw, shown):
    assert visible(raw) == shown
    assert len(visible(raw)) == len(raw)
    assert is_safe(visible(raw)) and visible(visible(raw)) == visible(raw)
    assert is_safe(raw) == (raw == shown)


@pytest.fixture
def hostile_session(catalog, tmp_path):
    """A session whose question and answer carry terminal control sequences."""
    db = tmp_path / "s.db"
    log = SessionLog(db)
    fake = FakeBackend(["Clipboard", " log:", f"\n{OSC52}", f"{CLEAR}done."])
    pg = FakePlayground(catalog, [parse_lane("base:raw")], log=log, fakes=[fake])
    [r] = pg.ask(f"Show me{CLEAR} this", Sampling(max_tokens=16))
    assert r.status == "complete"
    yield db, pg.session_id, r
    log.close()


def test_the_log_and_json_keep_the_exact_text(hostile_session):
    db, session_id, r = hostile_session
    log = SessionLog(db)
    ex = log.exchange(r.exchange_id)
    assert OSC52 in ex["output_text"] and CLEAR in ex["question"]
    out = CliRunner().invoke(cli, ["export", session_id, "--format", "jsonl", "--db", str(db)])
    assert out.exit_code == 0, out.output
    record = json.loads(out.stdout.splitlines()[0])
    assert record["output_text"] == ex["output_text"] and record["question"] == ex["question"]
    assert "\x1b" not in out.stdout  # JSON escapes it as \u001b


def test_markdown_export_shows_the_sequences(hostile_session):
    db, session_id, _ = hostile_session
    out = CliRunner().invoke(cli, ["export", session_id, "--format", "markdown", "--db", str(db)])
    assert out.exit_code == 0, out.output
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    assert "␛]52;c;YQ==␇" in out.stdout and "Show me␛[2J this" in out.stdout


def test_ask_live_view_shows_the_sequences(hostile_session, catalog):
    from playground.cli.ask import LiveColumns
    from playground.core.events import Token

    pg = FakePlayground(catalog, [parse_lane("base:raw")], log=None, fakes=[])
    pg.lanes[0].model = None  # not loaded: the header names the catalog's model
    view = LiveColumns(pg, f"Q{CLEAR}?")
    view.on_event(Token(pg.lanes[0].name, 0, 1, "", f"hi {OSC52}", -0.1, [], 0.0))
    buf = io.StringIO()
    Console(file=buf, force_terminal=False, width=100).print(view.render())
    assert "\x1b" not in buf.getvalue() and "␛]52;c;YQ==" in buf.getvalue()


def test_replay_in_the_app_shows_the_sequences(hostile_session):
    """Textual passes an ESC in a widget's text straight to the terminal: the lanes must not."""
    from playground.tui.app import make_replay_app

    db, session_id, _ = hostile_session

    async def run():
        log = SessionLog(db)
        app = make_replay_app(log, session_id, speed=0.0)
        async with app.run_test(size=(100, 30)) as pilot:
            for _ in range(50):
                await pilot.pause(0.1)
                text = _screen_text(app)
                if "done." in text:
                    break
            return text

    text = asyncio.run(asyncio.wait_for(run(), 60))
    assert "done." in text, text
    assert "\x1b" not in text and "␛]52;c;YQ==" in text and "Show me␛[2J this" in text


def _screen_text(app) -> str:
    update = app.screen._compositor.render_update(full=True)
    return "\n".join("".join(seg.text for seg in strip) for strip in update.strips)
