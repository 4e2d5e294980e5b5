"""The program's own log (not the session database): Python `logging` to a file in the user's
state folder, and llama.cpp's messages routed into it through llama.cpp's log callback.

llama.cpp prints its chatter (model metadata, "using full-size SWA cache", …) to stderr, and
llama-cpp-python silences it by pointing file descriptors 1 and 2 at /dev/null while it loads a
model. The Textual app draws to stderr, so frames drawn meanwhile vanish. Here nothing touches a
file descriptor: llama.cpp's log goes through `llama_log_set` to the logger `playground.llama_cpp`,
and llama-cpp-python's descriptor swap is replaced by a no-op. Nothing reaches the terminal
unless `--verbose` asked for it.
"""

from __future__ import annotations

import ctypes
import logging
import logging.handlers
import sys
import threading
from pathlib import Path

from playground.core.locations import state_dir

LOG_NAME = "playground.log"
LLAMA_LOGGER = "playground.llama_cpp"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# ggml.h's enum ggml_log_level: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (continues the
# last message). llama-cpp-python's own callback still uses an older order (3 = error), which is
# why "using full-size SWA cache", a warning, reached the terminal with verbose=False.
_LEVELS = {
    0: logging.INFO,
    1: logging.DEBUG,
    2: logging.INFO,
    3: logging.WARNING,
    4: logging.ERROR,
}

log = logging.getLogger("playground")
# Until setup() runs (a library use: tests, benchmarks), records go nowhere rather than to
# logging's last-resort handler, which would print llama.cpp's warnings on stderr.
log.addHandler(logging.NullHandler())
_llama_log = logging.getLogger(LLAMA_LOGGER)
_setup_lock = threading.Lock()


def log_path() -> Path:
    return state_dir() / LOG_NAME


def setup(verbose: bool = False) -> Path | None:
    """Send the `playground` loggers to the log file (and to stderr with *verbose*). Returns the
    file's path, or None when the state folder cannot be written (logging then stays off the
    terminal unless verbose; a missing log must never stop the program)."""
    with _setup_lock:
        log.setLevel(logging.DEBUG)
        log.propagate = False
        # llama.cpp's debug level is one line per tensor: keep its info, warnings and errors.
        _llama_log.setLevel(logging.INFO)
        for h in list(log.handlers):
            log.removeHandler(h)
            h.close()
        target = log_path()
        path: Path | None = target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            handler: logging.Handler = logging.handlers.RotatingFileHandler(
                target, maxBytes=2_000_000, backupCount=2, encoding="utf-8"
            )
            handler.setLevel(logging.DEBUG)
        except OSError:
            path = None
            handler = logging.NullHandler()
        handler.setFormatter(logging.Formatter(_FORMAT))
        log.addHandler(handler)
        if verbose:
            err = logging.StreamHandler(sys.stderr)
            err.setLevel(logging.DEBUG)
            err.setFormatter(logging.Formatter("%(name)s: %(message)s"))
            log.addHandler(err)
        return path


class _LlamaLog:
    """Collects llama.cpp's log pieces into lines (a message may come in several calls, the
    later ones at level CONT) and hands each whole line to `logging`."""

    def __init__(self) -> None:
        self.level = logging.INFO
        self.buffer = ""
        self.lock = threading.Lock()

    def __call__(self, level: int, text: bytes | None, _user_data: object) -> None:
        try:
            piece = (text or b"").decode("utf-8", errors="replace")
            with self.lock:
                if level != 5:
                    self.level = _LEVELS.get(level, logging.INFO)
                self.buffer += piece
                if "\n" not in self.buffer:
                    return
                *lines, self.buffer = self.buffer.split("\n")
                level_now = self.level
            for line in lines:
                if line.strip():
                    _llama_log.log(level_now, "%s", line.rstrip())
        except Exception:  # a callback from C must never raise
            pass


_callback = None  # the ctypes callback object: kept alive as long as llama.cpp may call it


def route_llama_log() -> None:
    """Install the log callback (idempotent). Call it after `import llama_cpp`, whose own module
    installs a callback that prints to stderr."""
    global _callback
    import llama_cpp

    with _setup_lock:
        if _callback is None:
            _callback = llama_cpp.llama_log_callback(_LlamaLog())
        llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))


class _NoSwap:
    """Stands in for llama-cpp-python's `suppress_stdout_stderr`, which points file descriptors 1
    and 2 at /dev/null (and swaps sys.stdout/sys.stderr) around every load when `verbose=False`."""

    def __init__(self, disable: bool = True):
        pass

    def __enter__(self) -> _NoSwap:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


# Where llama-cpp-python looks the context manager up (checked by tests/test_pins.py).
SWAP_SITES = ("llama_cpp.llama", "llama_cpp._internals")


def quiet_llama_cpp() -> None:
    """Before any `Llama(...)`: llama.cpp's log goes to the log file, and no file descriptor or
    sys.stderr is swapped while a model loads (idempotent)."""
    import importlib

    route_llama_log()
    for name in SWAP_SITES:
        module = importlib.import_module(name)
        if getattr(module, "suppress_stdout_stderr", None) is not _NoSwap:
            setattr(module, "suppress_stdout_stderr", _NoSwap)  # noqa: B010 (a module attribute mypy cannot see)
