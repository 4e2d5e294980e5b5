"""`serve` and `browse` and the processes they start (issue 12 §6, 13 §6): a real textual-serve on
127.0.0.1, a real browser-side websocket that makes it start the app; however serve ends (SIGTERM,
SIGHUP, SIGKILL), the app processes end with it, and a port in use is one line, not a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time

import aiohttp
import psutil
import pytest

from .conftest import PLAYGROUND, ROOT

START_S = 120  # two shared cores: python, textual and textual-serve take a while to start
TERM_S = 10  # what SIGTERM may take at most here (it was ~17 s; a loaded machine needs slack)


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k != "TEXTUAL_DRIVER"}
    e["PYTHONPATH"] = str(ROOT)
    return e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout: float, what: str):
    """Poll *check* until it returns something true; fail naming *what* after *timeout* s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if found := check():
            return found
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def app_processes(server: psutil.Process) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return [
            p
            for p in server.children(recursive=True)
            if "playground.cli" in " ".join(p.cmdline()) and "app" in p.cmdline()
        ]
    return []


@pytest.fixture
def served(db_path):
    """A `playground serve` with one browser tab open (its app process running)."""
    port = free_port()
    proc = subprocess.Popen(
        [*PLAYGROUND, "serve", "--port", str(port), "--db", str(db_path)],
        env=env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    server = psutil.Process(proc.pid)
    loop = asyncio.new_event_loop()
    session = ws = None
    started: list[psutil.Process] = []
    try:
        wait_for(lambda: listening(port) or proc.poll() is not None, START_S, "serve to listen")
        assert proc.poll() is None, proc.stderr.read().decode()

        async def open_tab():
            s = aiohttp.ClientSession()
            return s, await s.ws_connect(f"http://127.0.0.1:{port}/ws?width=80&height=24")

        session, ws = loop.run_until_complete(open_tab())
        started = wait_for(lambda: app_processes(server), START_S, "the app process")
        # the app has started once it draws: it reads its parent-death wish first thing
        wait_for(
            lambda: (
                loop.run_until_complete(ws.receive(timeout=START_S)).type
                != aiohttp.WSMsgType.CLOSED
            ),
            START_S,
            "the app to draw",
        )
        yield proc, started
    finally:
        for p in [*started, server]:
            with contextlib.suppress(psutil.Error):
                p.kill()
        with contextlib.suppress(Exception):
            loop.run_until_complete(session.close())
        loop.close()
        proc.wait(timeout=30)
        proc.stderr.close()


def gone(processes: list[psutil.Process]) -> bool:
    _, alive = psutil.wait_procs(processes, timeout=1)
    return not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_serve_ends_its_apps_and_itself_on_sigterm_and_sighup(served, sig):
    proc, apps = served
    proc.send_signal(sig)
    assert proc.wait(timeout=TERM_S) == 0
    assert gone(apps), [p.pid for p in apps]


def test_the_apps_of_a_killed_serve_die_with_it(served):
    proc, apps = served
    proc.kill()
    proc.wait(timeout=30)
    wait_for(lambda: gone(apps), 60, "the orphaned app processes to end")


def test_serve_on_a_port_in_use_says_so():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run(
            [*PLAYGROUND, "serve", "--port", str(port)],
            env=env(),
            capture_output=True,
            timeout=START_S,
            stdin=subprocess.DEVNULL,
        )
    err = r.stderr.decode()
    assert r.returncode == 1 and "Traceback" not in err
    assert f"port {port} on 127.0.0.1 is in use" in err


def test_browse_stops_datasette_when_it_is_stopped(db_path, tmp_path):
    """Datasette is an optional extra this environment does not install: a stand-in executable
    on the PATH plays its part (a process that serves until stopped); what is tested is browse."""
    from playground.core.db import SessionLog

    SessionLog(db_path).close()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "datasette.pid"
    stand_in = bin_dir / "datasette"
    stand_in.write_text(f"#!/bin/sh\necho $$ > {marker}\nexec sleep 600\n")
    stand_in.chmod(0o755)
    e = env()
    e["PATH"] = f"{bin_dir}:{e['PATH']}"
    for sig in (signal.SIGTERM, signal.SIGKILL):
        marker.unlink(missing_ok=True)
        proc = subprocess.Popen(
            [*PLAYGROUND, "browse", "--db", str(db_path)],
            env=e,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            pid = int(
                wait_for(
                    lambda: marker.exists() and marker.read_text().strip(), START_S, "datasette"
                )
            )
            datasette = psutil.Process(pid)
            proc.send_signal(sig)
            proc.wait(timeout=TERM_S)
            wait_for(lambda d=datasette: gone([d]), 30, f"datasette to stop after {sig.name}")
        finally:
            proc.kill()
            proc.wait(timeout=30)
            with contextlib.suppress(Exception):
                psutil.Process(int(marker.read_text())).kill()
