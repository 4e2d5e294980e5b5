"""Snapshots of the main screen, the prompt inspector and the help screen (greedy, so repeatable).

Update after an intended change with: .venv/bin/python -m pytest tests/test_snapshots.py --snapshot-update
"""

import uuid
from pathlib import Path

import pytest

from playground.core import cpuload
from playground.core.config import Config
from playground.core.engine import Sampling
from playground.tui.app import make_app

from .test_tui import idle, ready

pytestmark = pytest.mark.slow  # every test here loads the default models

SIZES = [(120, 40), (80, 24)]
DB = Path("sessions/snapshot-test.db")


def steady(pilot):
    """No blinking cursor: a snapshot must not depend on when it is taken."""
    for widget in pilot.app.query("TextArea"):
        widget.cursor_blink = False


@pytest.fixture
def snap_app(monkeypatch):
    for suffix in ("", "-wal", "-shm"):
        Path(f"{DB}{suffix}").unlink(missing_ok=True)
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=0xC0FFEE))
    monkeypatch.setattr(cpuload.WATCH, "busy_elsewhere", lambda: 0.0)  # the machine's other load
    monkeypatch.setenv("PLAYGROUND_TAGGER", "snapshot")
    # The status line's threads and busy cores follow the machine's load at the moment: a
    # snapshot shows a quiet two-core machine, whatever else runs while it is taken.
    monkeypatch.setattr(cpuload.WATCH, "busy_elsewhere", lambda: 0.0)
    monkeypatch.setattr(cpuload.WATCH, "free_cores", lambda: 2)
    app = make_app(
        "base:few-shot,tuned:chat", DB, sampling=Sampling(max_tokens=16), config=Config()
    )
    yield app
    for suffix in ("", "-wal", "-shm"):
        Path(f"{DB}{suffix}").unlink(missing_ok=True)


@pytest.mark.parametrize("size", SIZES)
def test_main_screen(snap_compare, snap_app, size):
    async def run_before(pilot):
        await ready(pilot)
        steady(pilot)

    assert snap_compare(snap_app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_help_screen(snap_compare, snap_app, size):
    async def run_before(pilot):
        await ready(pilot)
        steady(pilot)
        await pilot.press("f1")
        await pilot.pause(0.2)

    assert snap_compare(snap_app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_inspector(snap_compare, snap_app, size):
    async def run_before(pilot):
        await ready(pilot)
        steady(pilot)
        box = pilot.app.query_one("#input")
        box.load_text("Who is Zyler Vance?")
        await pilot.press("enter")
        await pilot.pause(0.1)
        await idle(pilot)
        list(pilot.app.main.views.values())[1].focus()
        await pilot.press("i")
        await pilot.pause(0.2)

    assert snap_compare(snap_app, terminal_size=size, run_before=run_before)
