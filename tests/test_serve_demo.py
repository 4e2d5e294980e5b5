"""`playground serve --demo` in a browser's place: the default demo through textual-serve's websocket.

Issue 13 §1: at step 5 (4 lanes) Tab ×3, F6 (step 6 runs), F6 again froze the app: keys were
read, nothing was drawn, Ctrl+Q did nothing. Here a websocket client speaks textual-serve's
browser protocol (JSON text messages `["resize", {...}]` and `["stdin", "..."]`; the screen comes
back as binary messages of terminal output), walks the demo with F6 and those keys, and checks
after each key that the screen shows the step it leads to, then that Ctrl+Q ends the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "playground" / "data" / "demos" / "hallucination.toml"
F6 = "\x1b[17~"
TAB = "\t"
CTRL_Q = "\x11"
ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
WAIT_S = 240  # a step loads models and answers on a shared CPU: generous, never a timed assertion


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served_demo(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PLAYGROUND_DB": str(tmp_path / "demo.db"),
        "PLAYGROUND_STATE_DIR": str(tmp_path / "state"),
        "PLAYGROUND_CACHE_DIR": str(tmp_path / "cache"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "playground.cli", "serve", "--demo", str(DEMO), "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"serve did not listen: {proc.communicate(timeout=10)[1][-500:]!r}")
        time.sleep(0.3)
    yield port, tmp_path / "demo.db"
    if proc.poll() is None:
        os.killpg(proc.pid, 9)
    proc.wait(timeout=30)


def demo_progress(db: Path) -> tuple[int, bool]:
    """How many of the demo's questions were asked, and whether an answer is still running."""
    if not db.exists():
        return 0, False
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
        try:
            asked, busy = c.execute(
                "select count(distinct question),"
                " sum(status in ('pending', 'streaming')) from exchanges"
            ).fetchone()
        except sqlite3.OperationalError:  # the schema is still being written
            return 0, False
    return asked or 0, bool(busy)


class Screen:
    """What the app has drawn so far, as text without escape sequences."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, db: Path):
        self.ws = ws
        self.db = db
        self.raw = bytearray()
        self.closed = False

    def text(self, since: int = 0) -> str:
        return ANSI.sub("", self.raw[since:].decode("utf-8", "replace"))

    async def wait_for(self, needle: str, since: int, timeout: float = WAIT_S) -> bool:
        """Read frames until *needle* appears in what was drawn after byte *since* (with an
        empty *needle*: until anything is drawn after it)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (needle not in self.text(since)) if needle else len(self.raw) <= since:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0 or self.closed:
                return False
            try:
                msg = await asyncio.wait_for(self.ws.receive(), timeout=left)
            except TimeoutError:
                return False
            if msg.type == aiohttp.WSMsgType.BINARY:
                self.raw += msg.data
            elif msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                self.closed = True
        return True

    async def wait_closed(self, timeout: float = 60) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.closed:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return False
            try:
                msg = await asyncio.wait_for(self.ws.receive(), timeout=left)
            except TimeoutError:
                return False
            if msg.type == aiohttp.WSMsgType.BINARY:
                self.raw += msg.data
            elif msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                self.closed = True
        return True

    async def advance_to(self, step: int, timeout: float = WAIT_S) -> bool:
        """Press F6 until step *step* has answered, as a presenter does: the demo takes F6 once
        the step on screen has finished answering (a press while it answers is not queued).
        Progress is read from the demo's log (one question a step), not from the frames: Textual
        redraws only what changed, so a step marker need not arrive as one piece of text."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and not self.closed:
            mark = await self.press(F6)
            wait_until = min(deadline, loop.time() + 15)
            while loop.time() < wait_until and not self.closed:
                await self.wait_for("", len(self.raw), timeout=0.5)  # keep reading frames
                asked, busy = demo_progress(self.db)
                if asked > step:
                    return False  # one press too many went through
                if asked == step and not busy:
                    return len(self.raw) > mark  # it answered, and the app drew it
        return False

    async def press(self, key: str) -> int:
        """Type *key*; returns where the frames it causes start."""
        mark = len(self.raw)
        await self.ws.send_json(["stdin", key])
        return mark


@pytest.mark.slow
async def test_served_demo_keeps_drawing_through_step_7_and_quits(served_demo):
    port, db = served_demo
    url = f"http://127.0.0.1:{port}/ws?width=130&height=40"
    async with aiohttp.ClientSession() as http:
        ws = await asyncio.wait_for(http.ws_connect(url), timeout=60)
        try:
            await ws.send_json(["resize", {"width": 130, "height": 40}])
            screen = Screen(ws, db)
            assert await screen.wait_for("F6 starts step 1", 0), (
                "the demo never drew its first screen"
            )
            for step in range(1, 6):
                assert await screen.advance_to(step), f"step {step} was not drawn"
            for _ in range(3):
                mark = await screen.press(TAB)
                # every Tab moves the focus: something is redrawn
                assert await screen.wait_for("", mark, timeout=60), "Tab drew nothing"
            assert await screen.advance_to(6), "step 6 was not drawn after Tab ×3, F6"
            assert await screen.advance_to(7), "the demo froze: step 7 was not drawn"
            await screen.press(CTRL_Q)
            assert await screen.wait_closed(), "Ctrl+Q did not end the app"
        finally:
            await ws.close()
