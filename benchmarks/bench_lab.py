"""Lab benchmark: probe throughput on the default lanes, and lanes side by side over one after the other.

Run: .venv/bin/python benchmarks/bench_lab.py [--questions 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from playground.core.catalog import Catalog
from playground.core.db import SessionLog
from playground.core.lab.probes import load_set
from playground.core.lab.runner import run_probes, start_run
from playground.core.lanespec import parse_lanes
from playground.core.playground import Playground
from playground.core.pool import ModelPool

LANES = "base:few-shot,tuned:chat"


def timed_run(log, catalog, pool, lanes_text, probes) -> float:
    lanes = parse_lanes(lanes_text)
    run = start_run(log, "facts", 0, [s.text for s in lanes], 0, len(probes), 64, {"ptrue": False})
    pg = Playground(catalog, lanes, log, pool=pool)
    t0 = time.perf_counter()
    run_probes(pg, log, run, probes, samples=0, max_tokens=64, ptrue=False)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=16)
    args = ap.parse_args()
    probes = load_set("facts")[: args.questions]
    catalog, pool = Catalog.load(), ModelPool()
    with tempfile.TemporaryDirectory() as d:
        log = SessionLog(Path(d) / "bench.db")
        timed_run(log, catalog, pool, LANES, probes[:2])  # load both models first
        together = timed_run(log, catalog, pool, LANES, probes)
        apart = sum(timed_run(log, catalog, pool, lane, probes) for lane in LANES.split(","))
    qpm = len(probes) / together * 60
    print(f"{'measure':<60}  {'values':>16}  {'ratio':>6}")
    print(f"{'probe throughput, both default lanes, 64-token answers':<60}  {qpm:>10.1f} q/min")
    print(
        f"{'lanes side by side / one after the other (wall s)':<60}  {together:>7.1f} / {apart:<6.1f}  {together / apart:6.2f}"
    )
    out = {
        "questions": len(probes),
        "questions_per_minute": qpm,
        "together_s": together,
        "apart_s": apart,
        "ratio": together / apart,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    path = Path(__file__).parent / "results" / "lab.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
