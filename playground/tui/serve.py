"""`playground serve`: the app in a web browser through textual-serve, on loopback by default.

The app processes textual-serve starts (one a browser tab) end with serve, however serve ends:
on SIGTERM, SIGHUP and Ctrl-C serve ends them itself, at once; on SIGKILL the kernel does, since
each watches for its parent to go (boundary.DIE_WITH_PARENT, read at start-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import shlex
import signal
import socket
import sys
from pathlib import Path

import psutil

from playground.core.errors import PlaygroundError

DIE_WITH_PARENT = "PLAYGROUND_DIE_WITH_PARENT"  # read by playground.cli.boundary.die_with_parent
GRACE_S = 1.0  # how long an app process has to end on SIGTERM before it is killed


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_port(host: str, port: int) -> None:
    """Fail now, in one line, if the address cannot be served (in use, or not this machine's)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise PlaygroundError(f"cannot serve on {host}: {e.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise PlaygroundError(
                    f"port {port} on {host} is in use by another program: pass --port with "
                    "another number"
                ) from None
            raise PlaygroundError(f"cannot serve on {host}:{port}: {e.strerror}") from None


def end_children(grace_s: float = GRACE_S) -> None:
    """SIGTERM every process we started (the app processes), then SIGKILL what is left."""
    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=grace_s)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()


def serve(host: str, port: int, public: bool, demo_file: Path | None, db_path: Path | None) -> None:
    from textual_serve.server import Server

    if not is_loopback(host) and not public:
        raise PlaygroundError(
            f"{host} is not this machine's loopback: anyone who can reach it could use the app; "
            "pass --public if you mean it"
        )
    check_port(host, port)
    if not is_loopback(host):
        print(
            f"Warning: serving on {host}: anyone who can reach this address can use the app and read its log.",
            file=sys.stderr,
        )
    args = [sys.executable, "-m", "playground.cli"]
    args += ["demo", str(demo_file)] if demo_file else ["app"]
    if db_path:
        args += ["--db", str(db_path)]
    # exec: the app is serve's own child (no shell between), so its parent-death signal is ours
    os.environ[DIE_WITH_PARENT] = str(os.getpid())

    def stop() -> None:
        """SIGTERM, SIGHUP, Ctrl-C: end the app processes, then serve, at once (textual-serve's
        graceful exit waits for every browser connection, many seconds)."""
        end_children()
        sys.stdout.flush()
        os._exit(0)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = Server("exec " + shlex.join(args), host=host, port=port, title="playground")
    server.request_exit = stop  # type: ignore[method-assign]  # textual-serve's signal handler
    loop.add_signal_handler(signal.SIGHUP, stop)
    try:
        server.serve()
    finally:
        end_children()
