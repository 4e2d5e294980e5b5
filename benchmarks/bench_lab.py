"""Lab benchmark: probe throughput on the default lanes, lanes side by side over one after the other,
and what it costs that probe runs evaluate every prompt from an empty KV cache (so an item's answer
does not depend on the items before it) next to reusing the cached prefix, as chat turns do.

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


def fresh_over_reuse(catalog, pool, probes, max_tokens: int = 32) -> dict:
    """Seconds per answer of the base few-shot lane, prompts from an empty cache over prompts that
    reuse the scaffold already in the cache (interleaved, the same questions, greedy)."""
    from playground.core.engine import Outcome, Sampling
    from playground.core.prompts import Conversation, ModeSpec

    model, _ = pool.get(catalog.resolve("base"))
    model.set_threads(2)
    times: dict[bool, float] = {True: 0.0, False: 0.0}
    for p in probes:
        ids = Conversation(ModeSpec("few-shot"), model).render(p.question, max_tokens).token_ids
        for fresh in (False, True):
            t0 = time.perf_counter()
            list(model.generate(ids, Sampling(max_tokens=max_tokens), Outcome(), fresh=fresh))
            times[fresh] += time.perf_counter() - t0
    n = len(probes)
    return {
        "fresh_s": times[True] / n,
        "reuse_s": times[False] / n,
        "ratio": times[True] / times[False],
    }


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
        fresh = fresh_over_reuse(catalog, pool, probes)
    qpm = len(probes) / together * 60
    print(f"{'measure':<60}  {'values':>16}  {'ratio':>6}")
    print(f"{'probe throughput, both default lanes, 64-token answers':<60}  {qpm:>10.1f} q/min")
    print(
        f"{'lanes side by side / one after the other (wall s)':<60}  {together:>7.1f} / {apart:<6.1f}  {together / apart:6.2f}"
    )
    print(
        f"{'probe answer from an empty cache / reusing the prefix (s)':<60}  {fresh['fresh_s']:>7.2f} / {fresh['reuse_s']:<6.2f}  {fresh['ratio']:6.2f}"
    )
    out = {
        "fresh_over_reuse": fresh,
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
