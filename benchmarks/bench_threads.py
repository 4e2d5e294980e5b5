"""Threads under load: one lane's decode speed with llama.cpp given all cores, all but one, or one,
on an idle machine and next to processes that keep cores busy (as a browser, a video call or a
second app would during a workshop).

llama.cpp's worker threads wait for each other at every step of a decode; when a busy process
takes one of their cores, the others spin until the descheduled one runs again, and tokens/s can
collapse. Every figure is measured side by side in this one run (interleaved repeats, so drift on a
shared machine hits every setting alike) and reported as a ratio to the same load with all cores.

Run: .venv/bin/python benchmarks/bench_threads.py [--tokens 64] [--repeats 3] [--role base]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time
from pathlib import Path

from playground.core import cpuload
from playground.core.catalog import Catalog
from playground.core.engine import Model, Outcome, Sampling, cpu_count
from playground.core.pool import ModelPool
from playground.core.prompts import Conversation, ModeSpec

PROMPT = "Once upon a time, in a small village by the sea,"


def _spin(stop: mp.synchronize.Event) -> None:  # type: ignore[name-defined]
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


class Load:
    """*n* processes that each keep one core busy until the block ends."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.stop = mp.Event()
        self.procs: list[mp.Process] = []

    def __enter__(self) -> Load:
        for _ in range(self.n):
            p = mp.Process(target=_spin, args=(self.stop,), daemon=True)
            p.start()
            self.procs.append(p)
        time.sleep(0.3 if self.n else 0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()


def tokens_per_second(model: Model, prompt: list[int], n: int, threads: int) -> float:
    model.set_threads(threads)
    model.llm.reset()
    stamps = []
    for _ in model.generate(prompt, Sampling(max_tokens=n), Outcome()):
        stamps.append(time.perf_counter())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--role", default="base", help="catalog role or model id (default: base)")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "threads.json")
    args = ap.parse_args()

    cores = cpu_count()
    settings = sorted({cores, max(1, cores - 1), 1}, reverse=True)
    loads = sorted({0, 1, cores})
    catalog = Catalog.load()
    pool = ModelPool()
    model, _ = pool.get(catalog.resolve(args.role))
    prompt = Conversation(ModeSpec("raw"), model).render(PROMPT, args.tokens).token_ids
    tokens_per_second(model, prompt, 8, cores)  # warm up: page the weights in

    figures: dict[int, dict[int, list[float]]] = {b: {t: [] for t in settings} for b in loads}
    chosen: dict[int, list[int]] = {b: [] for b in loads}
    adaptive: dict[int, list[float]] = {b: [] for b in loads}
    for busy in loads:
        with Load(busy):
            cpuload.WATCH.measure()  # start a window that holds this load only
            for _ in range(args.repeats):
                for t in settings:
                    figures[busy][t].append(tokens_per_second(model, prompt, args.tokens, t))
                # what the app does: the cores nobody else keeps busy, read as an answer starts
                t = cpuload.WATCH.free_cores()
                chosen[busy].append(t)
                adaptive[busy].append(tokens_per_second(model, prompt, args.tokens, t))

    print(
        f"one lane ({model.model_id}), {args.tokens} tokens, median of {args.repeats}; {cores} cores"
    )
    head = "| busy processes | " + " | ".join(f"{t} thread{'s' * (t > 1)}" for t in settings)
    print(head + " | the app's choice (threads) | best fixed |")
    print("|---" * (len(settings) + 3) + "|")
    summary = {}
    for busy in loads:
        med = {t: statistics.median(v) for t, v in figures[busy].items()}
        ref = med[cores]
        cells = [f"{med[t]:.1f} tok/s ({med[t] / ref:.2f}x)" for t in settings]
        best = max(med, key=lambda t: med[t])
        ours = statistics.median(adaptive[busy])
        picks = "/".join(str(t) for t in chosen[busy])
        cells.append(f"{ours:.1f} tok/s ({ours / ref:.2f}x; {picks})")
        print(f"| {busy} | " + " | ".join(cells) + f" | {best} |")
        summary[busy] = {**{str(t): v for t, v in med.items()}, "app": ours, "app_threads": picks}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"cores": cores, "tokens": args.tokens, "median_tok_s": summary}, indent=2)
    )
    pool.close()


if __name__ == "__main__":
    main()
