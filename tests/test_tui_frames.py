"""No frame is lost (issue 13 §2): what the app draws while models load, and after a lane's
settings change, reaches the screen without the user resizing the terminal."""

import contextlib
import io
import os
import pty
import subprocess
import sys
import threading
import time

import pytest
from rich.console import Console

from .conftest import ROOT
from .test_tui import app_for, ask, ready, wait_for

pytestmark = pytest.mark.slow  # every test here loads the default models

READY = "ready: type a question below and press Enter"


def screen_text(app) -> str:
    """The screen as the compositor has it now, as plain text (what a terminal would show)."""
    width, height = app.size
    console = Console(
        width=width, height=height, file=io.StringIO(), record=True, force_terminal=True
    )
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


def test_the_loading_app_draws_to_its_terminal_and_keeps_its_descriptors(tmp_path):
    """The real program on a real terminal: while the two default models load, the process's
    stderr (where Textual draws) stays the terminal, and both lanes' 'ready' reach it."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "playground.cli", "--db", str(tmp_path / "t.db")],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
        cwd=ROOT,
    )
    terminal = os.ttyname(slave)
    output = bytearray()

    def drain():
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            output.extend(chunk)

    threading.Thread(target=drain, daemon=True).start()
    seen = set()  # where the child's fds 1 and 2 pointed, sampled while it loads
    try:
        deadline = time.monotonic() + 240
        while output.count(READY.encode()) < 2:
            assert proc.poll() is None, bytes(output)[-3000:]
            assert time.monotonic() < deadline, "the lanes never showed ready"
            for fd in (1, 2):
                with contextlib.suppress(OSError):
                    seen.add(os.readlink(f"/proc/{proc.pid}/fd/{fd}"))
            time.sleep(0.01)
        assert b"Ask every lane" in output  # the first frame, drawn while the models loaded
        os.write(master, b"\x11")  # Ctrl+Q
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(slave)
        os.close(master)
    assert seen == {terminal}, seen


async def test_both_lanes_show_ready_and_a_new_turn_after_settings_changed(db_path):
    app = app_for(db_path, max_tokens=8)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        assert screen_text(app).count(READY) == 2
        await ask(pilot, "What is 2+2?")
        base, tuned = app.main.views.values()
        tuned.focus()
        await pilot.press("f")  # search: the model may search, from the next message
        await ready(pilot)
        await pilot.press("s")
        await pilot.pause(0.2)
        app.screen.query_one("#temperature").value = "0.5"
        app.screen.query_one("#seed").value = "7"
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        await ask(pilot, "Name a colour.")
        await wait_for(pilot, lambda: tuned.current.status == "complete", "the new turn")
        shown = screen_text(app)
        assert shown.count("You: Name a colour.") == 2, shown
        words = tuned.current.text.split()
        assert words and words[0] in shown.split("You: Name a colour.")[-1], shown


async def test_the_default_demo_walks_every_step_with_a_lane_focused(db_path, tmp_path):
    """Issue 13 §1: at step 5 (four lanes) Tab three times, then F6, F6: every step runs and the
    app still answers F1 and Ctrl+P (focus was left on a removed lane, and every key was lost)."""
    import re

    from textual.command import CommandPalette

    from playground.core.config import Config
    from playground.tui.app import make_demo_app
    from playground.tui.screens.help import HelpScreen
    from playground.tui.widgets.lane import LaneView

    script = (ROOT / "playground" / "data" / "demos" / "hallucination.toml").read_text(
        encoding="utf-8"
    )
    demo = tmp_path / "demo.toml"  # the same steps and lanes, shorter answers
    demo.write_text(re.sub(r"max_tokens = \d+", "max_tokens = 6", script), encoding="utf-8")
    app = make_demo_app(demo, db_path)
    app.config = Config()
    steps = len(app.main.demo.steps)

    async def step(k):
        await pilot.press("f6")
        await wait_for(
            pilot,
            lambda: (
                app.main.demo_step == k
                and not app.main.running
                and all(
                    v.current and v.current.status != "streaming" for v in app.main.views.values()
                )
            ),
            f"step {k + 1}",
        )
        assert f"({k + 1}/{steps}" in app.query_one("#narration").content.plain

    async with app.run_test(size=(130, 40)) as pilot:
        await pilot.pause(0.2)
        for k in range(5):
            await step(k)
        assert len(app.main.views) == 4
        await pilot.press("tab", "tab", "tab")
        assert isinstance(app.focused, LaneView)
        await step(5)
        assert app.focused is not None and app.focused.is_attached
        await step(6)
        await pilot.press("f1")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        assert isinstance(app.screen, CommandPalette)
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert app.screen is app.main
