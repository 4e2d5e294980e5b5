"""`make bench`: run every benchmarks/bench_*.py (each prints its own side-by-side table), then print
one summary table of the ratios and write benchmarks/results/all.json for tracking."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def summary() -> list[tuple[str, str, str]]:
    def load(name):
        p = RESULTS / f"{name}.json"
        return json.loads(p.read_text()) if p.exists() else None

    rows = []
    if core := load("core"):
        for role, r in core["probability_overhead"].items():
            rows.append(
                (
                    f"per-token probabilities: tokens/s over raw llama-cpp-python ({role})",
                    f"{r['ratio']:.2f}",
                    ">= 0.90",
                )
            )
        rows.append(
            (
                "two lanes side by side over one after the other (wall)",
                f"{core['concurrency']['ratio']:.2f}",
                "<= 0.85",
            )
        )
        rows.append(
            (
                "peak RSS, both default models at n_ctx 4096 (MB)",
                f"{core['memory']['ours']:.0f}",
                "< 1000",
            )
        )
        for spec, p in core["prefix_reuse"].items():
            rows.append(
                (
                    f"turn-2 prompt tokens evaluated over new tokens ({spec})",
                    f"{p['ratio']:.2f}",
                    "<= 1.1",
                )
            )
    if tui := load("tui"):
        rows.append(
            (
                "app: key press to handler while streaming, p95 (ms)",
                f"{tui['key_latency']['p95_ms']:.1f}",
                "< 100",
            )
        )
        for lane, r in tui["tps_ratio"].items():
            rows.append((f"app tokens/s over `playground ask` ({lane})", f"{r:.2f}", ">= 0.95"))
        rows.append(
            ("app startup to first frame (s)", f"{tui['startup']['playground']:.2f}", "< 1.5")
        )
    if search := load("search"):
        rows.append(
            (
                "search: tokens evaluated on resume over tokens injected",
                f"{search['resume']['ratio']:.3f}",
                "<= 1.1",
            )
        )
        rows.append(
            (
                "offline search p95 on 10,000 documents (ms)",
                f"{search['latency_10k']['p95_ms']:.2f}",
                "< 20",
            )
        )
    if lab := load("lab"):
        rows.append(
            (
                "probe throughput, default lanes, 64-token answers (questions/min)",
                f"{lab['questions_per_minute']:.0f}",
                "-",
            )
        )
        rows.append(
            ("probe lanes side by side over one after the other", f"{lab['ratio']:.2f}", "-")
        )
        if fresh := lab.get("fresh_over_reuse"):
            rows.append(
                (
                    "probe answer from an empty KV cache over reusing the prefix (time)",
                    f"{fresh['ratio']:.2f}",
                    "-",
                )
            )
    if log := load("log"):
        rows.append(
            (
                "log: exchanges of 256 tokens written per second",
                f"{log['streamed_exchanges_per_s']:.0f}",
                "-",
            )
        )
        rows.append(
            ("log: streaming writes over one plain transaction", f"{log['ratio']:.2f}", "-")
        )
    if remote := load("remote"):
        rows.append(
            (
                "remote lane (llama_cpp.server) tokens/s over local, logprobs on",
                f"{remote['ratio']:.2f}",
                "-",
            )
        )
        rows.append(
            (
                "remote lane tokens/s over local, logprobs off",
                f"{remote['no_logprobs_ratio']:.2f}",
                "-",
            )
        )
    if threads := load("threads"):
        cores = str(threads["cores"])
        for busy, figures in threads["median_tok_s"].items():
            rows.append(
                (
                    f"one lane under {busy} busy process(es): app's threads over {cores} threads (tok/s)",
                    f"{figures['app'] / figures[cores]:.2f}",
                    ">= 0.85" if busy == "0" else ">= 1.0",
                )
            )
    return rows


def main() -> None:
    failed = 0
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"\n=== {script.name}", flush=True)
        failed |= subprocess.call([sys.executable, str(script)], timeout=1800) != 0
    rows = summary()
    width = max(len(r[0]) for r in rows) if rows else 10
    print(
        f"\n=== summary ({time.strftime('%Y-%m-%d')})\n{'measure':<{width}}  {'value':>8}  target"
    )
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>8}  {target}")
    (RESULTS / "all.json").write_text(
        json.dumps({"date": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": rows}, indent=2)
    )
    sys.exit(failed)


if __name__ == "__main__":
    main()
