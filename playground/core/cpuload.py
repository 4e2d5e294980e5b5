"""How many cores other processes keep busy, so lanes can leave them alone.

llama.cpp's worker threads meet at a barrier after every step of a decode. When another process
holds one of their cores, the rest spin until the descheduled thread runs again: on a 2-core
machine with one busy process, one lane with 2 threads fell to ~2 tokens/s while 1 thread kept
~25 (benchmarks/bench_threads.py). So a lane gets the cores nobody else is using, never fewer
than one thread.

The figure is the CPU time the whole machine spent busy, minus this process's own, over the last
window of at least `WINDOW_S` seconds: reading it is cheap and never blocks (a caller such as the
status bar may read it often; it reuses the last window's figure until a new window is complete).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import psutil

from playground.core.engine import cpu_count

WINDOW_S = 1.0  # shortest window a new figure is measured over
IGNORE_BELOW = 0.35  # a process using a third of a core is noise, not a busy core


@dataclass(frozen=True)
class _Snapshot:
    wall: float
    busy: float  # the machine's busy CPU seconds, all cores
    own: float  # this process's CPU seconds


def _cpus() -> set[int] | None:
    """The cores this process may run on (None: all of them, or not knowable here)."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return None


def _snapshot() -> _Snapshot:
    per_cpu = psutil.cpu_times(percpu=True)
    mine = _cpus()
    busy = 0.0
    for i, t in enumerate(per_cpu):
        if mine is None or i in mine:
            # guest time is already counted in user time on Linux
            idle = t.idle + getattr(t, "iowait", 0.0)
            busy += sum(t) - idle - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
    own = psutil.Process().cpu_times()
    return _Snapshot(wall=time.monotonic(), busy=busy, own=own.user + own.system)


class CpuWatch:
    """Cores kept busy by other processes, measured over the last complete window."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = _snapshot()
        self._elsewhere = 0.0

    def busy_elsewhere(self) -> float:
        """Cores other processes kept busy (a float, 0 up to the core count)."""
        with self._lock:
            now = _snapshot()
            span = now.wall - self._last.wall
            if span >= WINDOW_S:
                others = (now.busy - self._last.busy) - (now.own - self._last.own)
                self._elsewhere = min(float(cpu_count()), max(0.0, others / span))
                self._last = now
            return self._elsewhere

    def measure(self) -> float:
        """busy_elsewhere, waiting first until a full window has passed (for a one-off report)."""
        with self._lock:
            wait = WINDOW_S - (time.monotonic() - self._last.wall)
        if wait > 0:
            time.sleep(wait)
        return self.busy_elsewhere()

    def free_cores(self) -> int:
        """Cores this process can use without fighting another for them (at least 1)."""
        busy = self.busy_elsewhere()
        whole = int(busy + 1 - IGNORE_BELOW) if busy >= IGNORE_BELOW else 0
        return max(1, cpu_count() - whole)


WATCH = CpuWatch()  # one per process: started at import, so the first answer has a window
