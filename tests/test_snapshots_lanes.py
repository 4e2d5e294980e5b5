"""Snapshots of four lanes in the 2 × 2 grid (130×40) and compact (80×24), turns lined up: a replay
of a scripted session, so no model loads and every figure on screen is the logged one.

Update after an intended change with: .venv/bin/python -m pytest tests/test_snapshots_lanes.py --snapshot-update
"""

import sqlite3
import uuid
from pathlib import Path

import pytest

from playground.core import cpuload
from playground.core.db import SessionLog
from playground.core.engine import Sampling
from playground.core.lanespec import parse_lane
from playground.core.playground import Playground
from playground.tui.app import make_replay_app

from .fakes import FakeBackend, FakePlayground

DB = Path("sessions/snapshot-lanes-test.db")
LANES = ["base:raw", "base:few-shot", "tuned:chat", "tuned:raw"]
SCRIPTS = [
    [
        ["The capital of France is Paris.\n", "Q: What is the capital of Italy?\n", "A: Rome."],
        ["Mars."],
    ],
    [["Paris."], ["Venus is a planet."]],
    [["The capital of France is Paris, on the Seine."], ["Jupiter, the largest planet."]],
    [[], ["Saturn."]],
]


@pytest.fixture
def replay_app(monkeypatch, catalog):
    for suffix in ("", "-wal", "-shm"):
        Path(f"{DB}{suffix}").unlink(missing_ok=True)
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=0xC0FFEE))
    monkeypatch.setattr(cpuload.WATCH, "busy_elsewhere", lambda: 0.0)
    monkeypatch.setattr(Playground, "threads_per_lane", lambda self, lanes=None: 1)
    log = SessionLog(DB)
    fakes = [FakeBackend(*s) for s in SCRIPTS]
    pg = FakePlayground(catalog, [parse_lane(x) for x in LANES], log=log, fakes=fakes)
    for q in ("What is the capital of France?", "Name a planet."):
        pg.ask(q, Sampling(max_tokens=32))
    conn = sqlite3.connect(DB)  # the figures a run measures, fixed for the picture
    conn.execute(
        "update exchanges set time_to_first_token = 0.25, tokens_per_second = 20, total_seconds = 1"
    )
    conn.commit()
    conn.close()
    yield make_replay_app(log, pg.session_id, speed=0.0)
    log.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{DB}{suffix}").unlink(missing_ok=True)


@pytest.mark.parametrize("size", [(130, 40), (80, 24)])
def test_four_lanes(snap_compare, replay_app, size):
    async def run_before(pilot):
        app = pilot.app
        for _ in range(200):
            views = list(app.main.views.values())
            if all(len(v.answers) == 2 and v.answers[-1].status == "complete" for v in views):
                break
            await pilot.pause(0.05)
        await pilot.pause(0.5)
        for widget in app.query("TextArea"):
            widget.cursor_blink = False
        app.clear_notifications()
        await pilot.pause(0.2)

    assert snap_compare(replay_app, terminal_size=size, run_before=run_before)
