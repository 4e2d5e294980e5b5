"""Lanes leave cores that other processes keep busy alone (issue 13 §7)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from playground.core import cpuload
from playground.core.engine import cpu_count

SPIN = "import time\nend = time.monotonic() + 20\nwhile time.monotonic() < end: pass\n"


def test_a_busy_process_counts_and_our_own_work_does_not() -> None:
    watch = cpuload.CpuWatch()
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        watch.measure()  # a window that starts with the spinner already running
        # our own busy work in the same window must not count as "elsewhere"
        end = time.monotonic() + cpuload.WINDOW_S + 0.2
        while time.monotonic() < end:
            pass
        busy = watch.busy_elsewhere()
    finally:
        spinner.kill()
        spinner.wait(timeout=10)
    # the spinner keeps about one core busy; our own loop (another core) is not counted
    assert 0.6 <= busy < 1.6, busy
    if cpu_count() >= 2:
        assert watch.free_cores() <= cpu_count() - 1


def test_free_cores_is_never_below_one() -> None:
    watch = cpuload.CpuWatch()
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(cpu_count() + 1)]
    try:
        watch.measure()
        watch.measure()
        assert watch.free_cores() == 1
    finally:
        for s in spinners:
            s.kill()
            s.wait(timeout=10)


@pytest.mark.parametrize("n_models, expected", [(1, 2), (2, 1)])
def test_threads_shared_among_models(n_models: int, expected: int, monkeypatch) -> None:
    from playground.core.catalog import Catalog
    from playground.core.lanespec import parse_lanes
    from playground.core.playground import Playground

    monkeypatch.setattr(cpuload.WATCH, "free_cores", lambda: 2)
    spec = "base:raw,tuned:raw" if n_models == 2 else "base:raw,base:few-shot"
    pg = Playground(Catalog.load(), parse_lanes(spec), log=None)
    assert pg.threads_per_lane(pg.lanes) == expected
