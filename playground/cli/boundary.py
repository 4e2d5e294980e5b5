"""The CLI's boundary with the user: one-line errors, arguments checked, the app only on a terminal.

Every command runs inside `PlaygroundGroup.invoke` (root.py), which hands what it raises to
`report`: a problem the user can fix (PlaygroundError), a SQLite error (named with the file it
was working on), a number too large for SQLite, text that is not UTF-8, or an operating-system
error (a full disk, a read-only folder, a file where a folder should be) becomes one line on
stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import re
import signal
import sqlite3
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import click

from playground.core.errors import PlaygroundError
from playground.core.textsafe import visible

# The errors the boundary turns into one line (anything else is a bug and keeps its traceback).
USER_ERRORS = (PlaygroundError, sqlite3.Error, OverflowError, UnicodeError, OSError)
LONGEST_NAME = 120  # a file name in a message is cut to this many characters

# serve sets this in the environment of the app processes it starts: they ask the kernel to end
# them when their parent (serve) dies, however it dies (SIGKILL included).
DIE_WITH_PARENT = "PLAYGROUND_DIE_WITH_PARENT"
PR_SET_PDEATHSIG = 1


def short(text: str, most: int = LONGEST_NAME) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _file_of(exc: BaseException) -> Path | None:
    """The file a failing SQLite call was working on: the `path` of the innermost object (a
    SessionLog, a Corpus) whose method the error went through."""
    tb: types.TracebackType | None = exc.__traceback__
    found = None
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        path = getattr(owner, "path", None)
        if isinstance(path, Path):
            found = path
        tb = tb.tb_next
    return found


def message(exc: BaseException) -> str:
    """What went wrong, in one line, for a user."""
    if isinstance(exc, PlaygroundError):
        text = str(exc)
    elif isinstance(exc, sqlite3.Error):
        where = _file_of(exc)
        what = str(exc) or type(exc).__name__
        if "locked" in what or "busy" in what:
            what += " (another program holds its write lock; try again when it is done)"
        text = f"{where}: {what}" if where is not None else f"SQLite: {what}"
    elif isinstance(exc, OverflowError):
        text = f"a number is too large: {exc}"
    elif isinstance(exc, UnicodeError):
        text = f"text that is not valid UTF-8: {exc.__class__.__name__}: {short(str(exc), 200)}"
    elif isinstance(exc, OSError):
        text = exc.strerror or str(exc) or type(exc).__name__
        names = [n for n in (exc.filename, exc.filename2) if n is not None]
        if names:
            text += ": " + " -> ".join(short(os.fsdecode(n)) for n in names)
    else:
        text = str(exc)
    text = " ".join(text.split("\n"))
    text = re.sub(rf"\S{{{LONGEST_NAME + 1},}}", lambda m: short(m.group()), text)
    safe = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return visible(safe)


def report(exc: BaseException) -> None:
    """Print the one-line error on stderr."""
    with contextlib.suppress(OSError):
        click.secho(f"Error: {message(exc)}", fg="red", err=True)


def quiet_broken_pipe() -> None:
    """Standard output was closed (`playground export | head`): stop quietly, as `cat` does."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(141)


def check_arguments(args: list[str]) -> None:
    """Arguments that are not valid UTF-8 (Python keeps their bytes as lone surrogates) are a
    usage error: they would fail later, halfway through a command."""
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = visible(arg.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
            raise click.UsageError(
                f"the argument {short(shown, 80)!r} is not valid UTF-8 (bytes shown as �)"
            ) from None


def positive_speed(text: str) -> float:
    """A replay --speed: a positive finite number, or 'instant' (0: no waiting)."""
    if text == "instant":
        return 0.0
    try:
        factor = float(text)
    except ValueError:
        raise PlaygroundError(
            f"--speed must be a number such as 2 or 4, or 'instant', not {short(text, 40)!r}"
        ) from None
    if not math.isfinite(factor) or factor <= 0:
        raise PlaygroundError(
            f"--speed must be a positive number such as 0.5, 2 or 4, or 'instant', not {text!r}"
        )
    return factor


def set_death_signal() -> None:
    """Ask the kernel to send this process SIGTERM when its parent dies (Linux; a no-op
    elsewhere). For a child's preexec_fn, and for the app processes serve starts."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def die_with_parent(poll_s: float = 0.5) -> None:
    """In a process serve started: end (SIGTERM to ourselves, so the app quits as on Ctrl+Q)
    once serve is gone, even after a SIGKILL of serve.

    Called at start-up when DIE_WITH_PARENT holds serve's process id. A watcher thread compares
    our parent with it; the kernel's parent-death signal (PR_SET_PDEATHSIG) cannot be used here:
    it fires when the *thread* that started us exits, and textual-serve starts apps from a
    thread that does (the served demo quit on its first step)."""
    wanted = os.environ.pop(DIE_WITH_PARENT, None)  # for us, not for what we start
    if not wanted:
        return
    if str(os.getppid()) != wanted:  # serve is already gone
        os._exit(1)

    def watch() -> None:
        while str(os.getppid()) == wanted:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="die-with-serve", daemon=True).start()


def needs_terminal(what: str) -> None:
    """The app draws on a terminal: without one (a pipe, /dev/null) it would wait forever or fail
    on the first key. TEXTUAL_DRIVER (textual-serve, tests) brings its own."""
    if os.environ.get("TEXTUAL_DRIVER"):
        return
    for name, stream in (("input", sys.stdin), ("output", sys.stdout)):
        if stream is None or not stream.isatty():
            raise PlaygroundError(
                f"{what} needs a terminal, and standard {name} is not one: run it in a terminal "
                "(for scripts: `playground ask`, `playground export`)"
            )


def run_tui(app: Any, what: str = "the app") -> None:
    """Run a Textual app; if it crashed, exit non-zero with the error on stderr.

    Textual prints the traceback of a crash itself once the terminal is restored; the exit status
    and the last line are ours."""
    from playground.tui.shutdown import EXIT_STATUS, quit_on_sigterm

    needs_terminal(what)
    uninstall = quit_on_sigterm(app)  # SIGTERM quits as Ctrl+Q does and restores the terminal
    try:
        app.run()
    finally:
        uninstall()
    code = app.return_code
    if code == EXIT_STATUS:
        sys.exit(code)
    if code:
        exc = getattr(app, "_exception", None)
        line = message(exc) if exc is not None else f"exit status {code}"
        click.secho(f"Error: {what} stopped: {line}", fg="red", err=True)
        sys.exit(code)
