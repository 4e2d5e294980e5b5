"""Search benchmark, ratios measured side by side in one run.

- resume: prompt tokens evaluated when generation resumes after a search, over the tokens injected
  (target <= 1.1), on the default base model steered into a search;
- offline search latency: p95 of a query on a 10,000-document corpus (target < 20 ms), next to the
  built-in corpus (about 260 documents).

Run: .venv/bin/python benchmarks/bench_search.py
"""

from __future__ import annotations

import json
import random
import re
import statistics
import tempfile
import time
from pathlib import Path

from playground.core.catalog import Catalog
from playground.core.db import SessionLog
from playground.core.engine import Sampling
from playground.core.facts import articles
from playground.core.lanespec import parse_lanes
from playground.core.playground import Playground
from playground.core.search.backends import Corpus

QUESTIONS = [
    "What is the capital of Mongolia?",
    "Who won the 1966 FIFA World Cup?",
    "Who wrote Moby-Dick?",
]
QUERY_WORDS = "river mountain capital currency planet element author novel city bridge tower empire ocean desert".split()


def resume_ratio(tmp: Path) -> dict:
    log = SessionLog(tmp / "bench.db")
    pg = Playground(
        Catalog.load(),
        parse_lanes("base:few-shot+search,tuned:chat+search"),
        log,
        corpus_path=tmp / "c.sqlite",
    )
    rows = []
    for q in QUESTIONS:
        for r in pg.ask(q, Sampling(max_tokens=48), prefill="<SEARCH_START>"):
            rows += [
                s
                for s in log.searches(r.exchange_id)
                if s["kind"] == "tool" and s["resume_evaluated"]
            ]
        pg.new_session()
    injected = sum(s["injected_tokens"] for s in rows)
    evaluated = sum(s["resume_evaluated"] for s in rows)
    return {
        "searches": len(rows),
        "injected": injected,
        "evaluated": evaluated,
        "ratio": evaluated / injected,
    }


def latency(corpus: Corpus, n: int = 300) -> dict:
    rng = random.Random(0)
    times = []
    for _ in range(n):
        q = " ".join(rng.sample(QUERY_WORDS, 3))
        t0 = time.perf_counter()
        corpus.search(q)
        times.append(time.perf_counter() - t0)
    times.sort()
    return {
        "p95_ms": times[int(0.95 * (n - 1))] * 1000,
        "median_ms": statistics.median(times) * 1000,
        "docs": corpus.count(),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        res = resume_ratio(tmp)
        small = Corpus(tmp / "small.sqlite")
        big = Corpus(tmp / "big.sqlite")
        # 10,000 synthetic articles: words drawn Zipf-like from the built-in corpus's vocabulary plus
        # rare made-up words, so common words are common and most words are rare, as in real text.
        rng = random.Random(1)
        vocab = sorted({w.lower() for a in articles() for w in re.findall(r"[A-Za-z]+", a.text)})
        vocab += [f"term{i}" for i in range(20_000)]
        weights = [1 / (k + 1) for k in range(len(vocab))]
        with big.conn:
            big.conn.executemany(
                "insert into docs (title, source, body, builtin) values (?, 'bench', ?, 0)",
                [
                    (f"Doc {i}", " ".join(rng.choices(vocab, weights, k=120)))
                    for i in range(10_000 - big.count())
                ],
            )
        global QUERY_WORDS
        QUERY_WORDS = rng.choices(vocab[:2000], k=900)
        lat_big, lat_small = latency(big), latency(small)
    print(f"{'measure':<64}  {'values':>16}  {'ratio':>6}  target")
    print(
        f"{'tokens evaluated on resume / tokens injected (' + str(res['searches']) + ' searches)':<64}  {res['evaluated']:>7} / {res['injected']:<6}  {res['ratio']:6.3f}  <= 1.1"
    )
    print(
        f"{'offline search p95: 10,000 docs / built-in corpus (ms)':<64}  {lat_big['p95_ms']:>7.2f} / {lat_small['p95_ms']:<6.2f}  {lat_big['p95_ms'] / lat_small['p95_ms']:6.2f}  10,000 docs < 20 ms"
    )
    out = {
        "resume": res,
        "latency_10k": lat_big,
        "latency_builtin": lat_small,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    path = Path(__file__).parent / "results" / "search.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
