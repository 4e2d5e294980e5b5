"""SIGTERM on a running app (issue 13 §1): it quits, and the terminal is left as it was found.

The app runs in a child process on a real pseudo-terminal; the test reads the terminal's settings
(cooked mode: line editing and echo) before the app starts and after it is gone.
"""

import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time

from .conftest import ROOT

APP = """
import sys, time
from textual.app import App
from textual.widgets import Static
from playground.tui.shutdown import run

class Probe(App):
    def compose(self):
        yield Static("APP-IS-UP")

    def on_mount(self):
        if sys.argv[1] == "stuck":  # a handler that never returns: the event loop is blocked
            self.set_timer(0.3, lambda: time.sleep(120))

run(Probe())
"""


def run_and_terminate(mode: str) -> tuple[int, list, list]:
    """Start the app on a new terminal, SIGTERM it once it has drawn; (exit status, terminal
    settings before, settings after)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    before = termios.tcgetattr(slave)
    env = {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", APP, mode],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    output = bytearray()

    def drain():  # keep the terminal's buffer empty, or the app blocks writing to it
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            output.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while b"APP-IS-UP" not in output:
            assert proc.poll() is None, bytes(output)[-2000:]
            assert time.monotonic() < deadline, "the app never drew"
            time.sleep(0.05)
        time.sleep(1.0 if mode == "stuck" else 0.3)
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=30)
        after = termios.tcgetattr(slave)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(slave)
        os.close(master)
    return status, before, after


def cooked(attrs: list) -> bool:
    lflag = attrs[3]
    return bool(lflag & termios.ICANON) and bool(lflag & termios.ECHO)


def test_sigterm_quits_like_ctrl_q_and_restores_the_terminal():
    status, before, after = run_and_terminate("normal")
    assert cooked(before)
    assert status == 143
    assert cooked(after) and after == before


def test_sigterm_restores_the_terminal_even_when_the_app_is_stuck():
    status, before, after = run_and_terminate("stuck")  # its handler would sleep 120 s
    assert status == 143
    assert cooked(after) and after == before
