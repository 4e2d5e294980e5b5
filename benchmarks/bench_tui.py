"""App benchmark: responsiveness while both default lanes stream, startup, and streaming speed.

- key latency: p95 delay between a key press and its handler running while both default lanes
  stream 256 tokens (target < 100 ms);
- streaming: tokens/s of each lane inside the app over tokens/s of the same lane from
  `playground ask --json` (target >= 0.95);
- startup: seconds from the command to the first frame (target < 1.5 s), next to a bare Textual app
  started the same way.

Run: .venv/bin/python benchmarks/bench_tui.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from textual import events
from textual.binding import Binding

from playground.core.config import Config
from playground.core.engine import Sampling
from playground.tui.app import PlaygroundApp, make_app

LANES = "base:raw,tuned:raw"
PROMPT = "Once upon a time, in a small village by the sea,"
TOKENS = 256


class TimedApp(PlaygroundApp):
    BINDINGS = [*PlaygroundApp.BINDINGS, Binding("f12", "ping", "ping", show=False)]

    def action_ping(self) -> None:
        self.handled.append(time.perf_counter())


async def key_latency_and_speed(db: Path) -> dict:
    app = TimedApp(
        make_app(LANES, db, sampling=Sampling(max_tokens=TOKENS), config=Config()).main, Config()
    )
    app.handled = []
    delays = []
    async with app.run_test(size=(120, 40)) as pilot:
        while not all(v.load_state.startswith("ready") for v in app.main.views.values()):
            await pilot.pause(0.05)
        app.query_one("#input").load_text(PROMPT)
        await pilot.press("enter")
        while not all(v.current and v.current.tokens for v in app.main.views.values()):
            await pilot.pause(0.01)
        while app.main.running:
            n = len(app.handled)
            key = events.Key("f12", None)
            key.set_sender(app)
            sent = time.perf_counter()
            app._driver.send_message(key)  # as the terminal driver does for a real key press
            deadline = sent + 5
            while len(app.handled) == n and time.perf_counter() < deadline:
                await asyncio.sleep(0.001)
            if len(app.handled) == n:
                raise RuntimeError("the key press was never handled")
            delays.append(app.handled[-1] - sent)
            await asyncio.sleep(0.05)
        await pilot.pause(0.2)
        tps = {v.lane_key: v.current.stats.tokens_per_second for v in app.main.views.values()}
        names = {lane.key: lane.spec.text for lane in app.main.pg.lanes}
    delays.sort()
    p95 = delays[int(0.95 * (len(delays) - 1))]
    return {
        "presses": len(delays),
        "p95_ms": p95 * 1000,
        "median_ms": statistics.median(delays) * 1000,
        "app_tps": {names[k]: v for k, v in tps.items()},
    }


def ask_speed(db: Path) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "playground.cli",
            "ask",
            PROMPT,
            "--lanes",
            LANES,
            "--max-tokens",
            str(TOKENS),
            "--db",
            str(db),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return {lane["lane"]: lane["tokens_per_second"] for lane in json.loads(out.stdout)["lanes"]}


STARTUP = r"""
import sys, time
t_exec = time.time()
mode, db = sys.argv[1], sys.argv[2]
if mode == "playground":
    from playground.tui.app import make_app
    from playground.core.config import Config
    app = make_app("base:few-shot,tuned:chat", db, config=Config())
else:
    from textual.app import App
    from textual.widgets import Static
    class Bare(App):
        def compose(self):
            yield Static("hello")
    app = Bare()
async def first_frame(pilot):
    print(time.time(), flush=True)
    pilot.app.exit()
app.run(headless=True, auto_pilot=first_frame)
"""


def startup(db: Path, repeats: int = 3) -> dict:
    out = {}
    for mode in ("playground", "bare"):
        times = []
        for _ in range(repeats):
            t0 = time.time()
            res = subprocess.run(
                [sys.executable, "-c", STARTUP, mode, str(db)],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
            times.append(float(res.stdout.strip().splitlines()[0]) - t0)
        out[mode] = statistics.median(times)
    out["ratio"] = out["playground"] / out["bare"]
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        lat = asyncio.run(key_latency_and_speed(db))
        ask = ask_speed(db)
        start = startup(db)
    print(f"{'measure':<66}  {'values':>16}  {'ratio':>6}  target")
    print(
        f"{'key press to handler while 2 lanes stream 256 tokens (p95 ms)':<66}  "
        f"{lat['p95_ms']:>13.1f} ms  {'':>6}  < 100 ms  ({lat['presses']} presses, median {lat['median_ms']:.1f} ms)"
    )
    ratios = {}
    for lane, tps in lat["app_tps"].items():
        r = tps / ask[lane]
        ratios[lane] = r
        print(
            f"{'tokens/s in the app / in playground ask (' + lane + ')':<66}  {tps:>7.1f} / {ask[lane]:<6.1f}  {r:6.2f}  >= 0.95"
        )
    print(
        f"{'startup to first frame: playground / bare Textual app (s)':<66}  "
        f"{start['playground']:>6.2f} / {start['bare']:<6.2f}  {start['ratio']:6.2f}  playground < 1.5 s"
    )
    results = {
        "key_latency": lat,
        "ask_tps": ask,
        "tps_ratio": ratios,
        "startup": start,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    path = Path(__file__).parent / "results" / "tui.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
