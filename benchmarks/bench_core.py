"""Core benchmark: every figure is a ratio of two things measured side by side in this one run.

- per-token probabilities: our tokens/s over llama-cpp-python's own create_completion tokens/s
  (same model, same prompt tokens, greedy), per model. Target >= 0.90.
- concurrency: both default lanes side by side over one after the other (wall time). Target <= 0.85.
- memory: peak RSS of a process with both default models loaded at n_ctx 4096, next to raw
  llama-cpp-python loading the same two. Target < 1.0 GB.
- prefix reuse: prompt tokens evaluated on turn 2 over the tokens that turn added. Target <= 1.1.

Run: .venv/bin/python benchmarks/bench_core.py [--tokens 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from playground.core.catalog import Catalog
from playground.core.engine import Model, Outcome, Sampling
from playground.core.lanespec import parse_lanes
from playground.core.playground import Playground
from playground.core.pool import ModelPool
from playground.core.prompts import Conversation, ModeSpec

PROMPT = "Once upon a time, in a small village by the sea,"


def raw_tokens_per_second(model: Model, prompt: list[int], n: int) -> float:
    model.llm.reset()
    stamps = []
    for _ in model.llm.create_completion(
        prompt, max_tokens=n, temperature=0.0, top_k=1, stream=True
    ):
        stamps.append(time.perf_counter())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def ours_tokens_per_second(model: Model, prompt: list[int], n: int) -> float:
    model.llm.reset()
    stamps = []
    for _ in model.generate(prompt, Sampling(max_tokens=n), Outcome()):
        stamps.append(time.perf_counter())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def probability_overhead(pool: ModelPool, catalog: Catalog, n: int, repeats: int) -> dict:
    out = {}
    for role in ("base", "tuned"):
        model, _ = pool.get(catalog.resolve(role))
        model.set_threads(2)
        prompt = Conversation(ModeSpec("raw"), model).render(PROMPT, n).token_ids
        raw, ours = [], []
        for _ in range(repeats):  # interleaved, so drift on a shared machine hits both alike
            raw.append(raw_tokens_per_second(model, prompt, n))
            ours.append(ours_tokens_per_second(model, prompt, n))
        r, o = statistics.median(raw), statistics.median(ours)
        out[role] = {"model": model.model_id, "raw_tps": r, "ours_tps": o, "ratio": o / r}
    return out


def concurrency(pool: ModelPool, catalog: Catalog, n: int, repeats: int) -> dict:
    specs = parse_lanes("base:raw,tuned:raw")
    sampling = Sampling(max_tokens=n)
    side, seq = [], []
    for _ in range(repeats):
        pg = Playground(catalog, specs, log=None, pool=pool)
        for lane in pg.lanes:
            lane.model = None
        t0 = time.perf_counter()
        pg.ask(PROMPT, sampling)
        side.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(len(specs)):
            pg.new_session()
            pg.ask(PROMPT, sampling, lanes=[i])
        seq.append(time.perf_counter() - t0)
    s, q = statistics.median(side), statistics.median(seq)
    return {"side_by_side_s": s, "one_after_other_s": q, "ratio": s / q}


RSS_SCRIPT = r"""
import json, resource, sys
mode = sys.argv[1]
from playground.core.catalog import Catalog
cat = Catalog.load()
paths = [str(cat.resolve(r).path()) for r in ("base", "tuned")]
if mode == "raw":
    import llama_cpp
    ms = [llama_cpp.Llama(p, n_ctx=4096, verbose=False) for p in paths]
    for m in ms:
        list(m.create_completion(m.tokenize(b"Hello there"), max_tokens=16, temperature=0.0))
else:
    from playground.core.lanespec import parse_lanes
    from playground.core.playground import Playground
    from playground.core.engine import Sampling
    pg = Playground(cat, parse_lanes("base:few-shot,tuned:chat"))
    pg.ask("Hello there", Sampling(max_tokens=16))
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def memory() -> dict:
    out = {}
    for mode in ("raw", "ours"):
        res = subprocess.run(
            [sys.executable, "-c", RSS_SCRIPT, mode],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        out[mode] = json.loads(res.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    out["ratio"] = out["ours"] / out["raw"]
    return out


def prefix_reuse(pool: ModelPool, catalog: Catalog) -> dict:
    out = {}
    for spec_text in ("tuned:chat", "base:few-shot"):
        pg = Playground(catalog, parse_lanes(spec_text), log=None, pool=pool)
        pg.ask("Who is Zyler Vance?", Sampling(max_tokens=48))
        lane = pg.lanes[0]
        prompt2 = lane.conversation.render("Where was he born?", 16).token_ids
        added = len(prompt2) - _turn1_len(lane)
        res = pg.ask("Where was he born?", Sampling(max_tokens=16))[0]
        out[spec_text] = {
            "evaluated": res.stats.evaluated,
            "reused": res.stats.reused,
            "new_tokens": added,
            "ratio": res.stats.evaluated / added,
        }
    return out


def _turn1_len(lane) -> int:
    """Tokens the model had seen after turn 1: its prompt plus the answer tokens."""
    conv = lane.conversation
    first = Conversation(conv.spec, conv.tok)
    r1 = first.render(conv.turns[0].question, 0)
    return len(r1.token_ids) + len(conv.turns[0].answer_ids)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "core.json")
    args = ap.parse_args()
    catalog = Catalog.load()
    pool = ModelPool()
    results = {
        "probability_overhead": probability_overhead(pool, catalog, args.tokens, args.repeats),
        "concurrency": concurrency(pool, catalog, args.tokens, args.repeats),
        "prefix_reuse": prefix_reuse(pool, catalog),
    }
    pool.close()
    results["memory"] = memory()
    rows = []
    for role, r in results["probability_overhead"].items():
        rows.append(
            (
                f"tokens/s with probabilities / raw create_completion ({role}: {r['model']})",
                f"{r['ours_tps']:.1f} / {r['raw_tps']:.1f}",
                r["ratio"],
                ">= 0.90",
            )
        )
    c = results["concurrency"]
    rows.append(
        (
            "side by side / one after the other (wall s, both default lanes)",
            f"{c['side_by_side_s']:.2f} / {c['one_after_other_s']:.2f}",
            c["ratio"],
            "<= 0.85",
        )
    )
    m = results["memory"]
    rows.append(
        (
            "peak RSS, both models at n_ctx 4096: playground / raw llama-cpp-python (MB)",
            f"{m['ours']:.0f} / {m['raw']:.0f}",
            m["ratio"],
            "ours < 1000 MB",
        )
    )
    for spec, p in results["prefix_reuse"].items():
        rows.append(
            (
                f"turn 2 evaluated / new tokens ({spec})",
                f"{p['evaluated']} / {p['new_tokens']}",
                p["ratio"],
                "<= 1.1",
            )
        )
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'values':>16}  {'ratio':>6}  target")
    for name, values, ratio, target in rows:
        print(f"{name:<{width}}  {values:>16}  {ratio:6.2f}  {target}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    results["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
    args.json.write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
