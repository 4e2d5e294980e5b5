"""Session-log benchmark: exchanges with 256 tokens each written per second, as a lane writes them
while streaming (the row first, token batches every half second, the final update), next to the
same rows inserted in one plain sqlite3 transaction.

Run: .venv/bin/python benchmarks/bench_log.py [--exchanges 200]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from playground.core.db import ExchangeRecorder, SessionLog
from playground.core.events import Alternative, Finished, PromptReady, Token

TOKENS = 256


def ours(path: Path, n: int) -> float:
    log = SessionLog(path)
    sid = log.new_session(["bench:raw"])
    top = [Alternative(1, "a", -1.0)] * 5
    t0 = time.perf_counter()
    for i in range(n):
        fields = {"session_id": sid, "turn": i, "lane_index": 0, "lane": "bench:raw"}
        rec = ExchangeRecorder(log, {**fields, "question": f"q{i}", "stop": []})
        rec(PromptReady("bench", rec.id, "", [], [], 10, 0))
        for p in range(TOKENS):
            rec(Token("bench", p, p, "tok", "tok", -0.5, top, p * 0.01))
            if p % 64 == 63:
                rec.flush()  # a lane flushes about every half second while it streams
        rec(Finished("bench", rec.id, "complete", "length", "tok" * TOKENS))
    dt = time.perf_counter() - t0
    log.close()
    return n / dt


def raw(path: Path, n: int) -> float:
    conn = sqlite3.connect(str(path))
    conn.execute("pragma journal_mode = wal")
    conn.execute("create table ex (id integer primary key, q text, out text)")
    conn.execute("create table tok (ex int, pos int, id int, text text, lp real, top text)")
    t0 = time.perf_counter()
    with conn:
        for i in range(n):
            cur = conn.execute("insert into ex (q, out) values (?, ?)", (f"q{i}", "tok" * TOKENS))
            conn.executemany(
                "insert into tok values (?, ?, ?, ?, ?, ?)",
                [
                    (cur.lastrowid, p, p, "tok", -0.5, json.dumps([[1, "a", -1.0]] * 5))
                    for p in range(TOKENS)
                ],
            )
    dt = time.perf_counter() - t0
    conn.close()
    return n / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--exchanges", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        a = ours(Path(d) / "ours.db", args.exchanges)
        b = raw(Path(d) / "raw.db", args.exchanges)
    print(f"{'measure':<70}  {'values':>16}  {'ratio':>6}")
    print(
        f"{'exchanges of 256 tokens per second: streaming writes / one plain transaction':<70}  {a:>7.1f} / {b:<7.1f} {a / b:6.2f}"
    )
    out = {
        "streamed_exchanges_per_s": a,
        "plain_exchanges_per_s": b,
        "ratio": a / b,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    path = Path(__file__).parent / "results" / "log.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
