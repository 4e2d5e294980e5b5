"""SIGTERM quits the app the way Ctrl+Q does, and never leaves the terminal in raw mode.

Without a handler, SIGTERM (`kill PID`, a closing session manager) ends Python at once: Textual's
driver never restores the terminal, which stays in raw mode with the mouse reporting on. Here the
signal asks the app to exit (every answer in flight is logged as cancelled); should the app not
stop within GRACE_S (a handler stuck on something), a timer thread puts the terminal back as it
was before the app started and ends the process with status 143, as a SIGTERM would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import termios
import threading
from collections.abc import Callable
from typing import Any

from textual.app import App

GRACE_S = 3.0
EXIT_STATUS = 128 + signal.SIGTERM  # 143

# Leave the alternate screen; show the cursor; mouse reporting, bracketed paste, focus events
# and the kitty keyboard protocol off (what Textual's Linux driver turns on).
RESET = (
    "\x1b[?1049l\x1b[?25h"
    "\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1015l\x1b[?1006l\x1b[?1016l"
    "\x1b[?2004l\x1b[?1004l\x1b[<u"
)


def _saved_terminal() -> tuple[int, list[Any]] | None:
    """The terminal's settings before the app switched it to raw mode (None: not a terminal)."""
    for stream in (sys.__stdin__, sys.__stderr__, sys.__stdout__):
        with contextlib.suppress(Exception):
            fd = stream.fileno()  # type: ignore[union-attr]
            if os.isatty(fd):
                return fd, termios.tcgetattr(fd)
    return None


def restore_terminal(saved: tuple[int, list[Any]] | None) -> None:
    """Put the terminal back in cooked mode with the screen and cursor as they were."""
    if saved is None:
        return
    fd, attrs = saved
    with contextlib.suppress(Exception):
        os.write(fd, RESET.encode())
    with contextlib.suppress(Exception):
        termios.tcsetattr(fd, termios.TCSANOW, attrs)


def run(app: App) -> None:
    """Run *app* in this terminal; SIGTERM quits it as Ctrl+Q does (status 143 after), and the
    terminal is put back even when the app does not stop."""
    uninstall = quit_on_sigterm(app)
    try:
        app.run()
    finally:
        uninstall()
    if app.return_code == EXIT_STATUS:
        sys.exit(EXIT_STATUS)


def quit_on_sigterm(app: App) -> Callable[[], None]:
    """Install the SIGTERM handler (main thread, before the app starts: the terminal's settings
    are read now, while still in cooked mode); returns the function that puts the old one back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    saved = _saved_terminal()

    def fallback() -> None:
        restore_terminal(saved)
        os._exit(EXIT_STATUS)

    def on_sigterm(signum: int, frame: object) -> None:
        # A Python-level handler runs even while the event loop is stuck (the main thread runs
        # it between bytecodes), so the timer starts whatever the app is doing.
        timer = threading.Timer(GRACE_S, fallback)
        timer.daemon = True
        timer.start()
        with contextlib.suppress(RuntimeError):  # no loop running: the timer ends the process
            asyncio.get_running_loop().call_soon_threadsafe(app.exit, None, EXIT_STATUS)

    previous = signal.signal(signal.SIGTERM, on_sigterm)

    def uninstall() -> None:
        with contextlib.suppress(Exception):
            signal.signal(signal.SIGTERM, previous)

    return uninstall
