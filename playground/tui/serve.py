"""`playground serve`: the app in a web browser through textual-serve, on loopback by default."""

from __future__ import annotations

import contextlib
import ipaddress
import shlex
import signal
import sys
from pathlib import Path

import psutil

from playground.core.errors import PlaygroundError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(host: str, port: int, public: bool, demo_file: Path | None, db_path: Path | None) -> None:
    from textual_serve.server import Server

    if not is_loopback(host) and not public:
        raise PlaygroundError(
            f"{host} is not this machine's loopback: anyone who can reach it could use the app; "
            "pass --public if you mean it"
        )
    if not is_loopback(host):
        print(
            f"Warning: serving on {host}: anyone who can reach this address can use the app and read its log.",
            file=sys.stderr,
        )
    args = [sys.executable, "-m", "playground.cli"]
    args += ["demo", str(demo_file)] if demo_file else ["app"]
    if db_path:
        args += ["--db", str(db_path)]

    def reap(*_) -> None:
        """textual-serve leaves the app processes it started running when it stops: end them."""
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, reap)
    try:
        Server(shlex.join(args), host=host, port=port, title="playground").serve()
    finally:
        reap()
