"""Remote-lane overhead: tokens/s of a lane on llama-cpp-python's own server (127.0.0.1) over a local
lane on the same model file, same prompt, greedy, measured side by side in one run.

Run: .venv/bin/python benchmarks/bench_remote.py [--tokens 128]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playground.core.catalog import Catalog
from playground.core.engine import Sampling
from playground.core.lanespec import parse_lanes
from playground.core.playground import Playground

PROMPT = "Once upon a time, in a small village by the sea,"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    catalog = Catalog.load()
    path = catalog.resolve("tuned").path()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(path),
            "--model_alias",
            "smollm2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--n_threads",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1"
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/models", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        with tempfile.TemporaryDirectory() as d:
            folder = Path(d)
            (folder / "models.toml").write_text(
                f'[default_pair]\nbase = "remote"\ntuned = "local"\n[[model]]\nid = "remote"\nkind = "tuned"\nurl = "{url}"\n'
                f'remote_model = "smollm2"\nextra_body = {{repeat_penalty = 1.0}}\n[[model]]\nid = "local"\nkind = "tuned"\npath = "{path}"\nn_threads = 2\n'
                f'[[model]]\nid = "remote-nolp"\nkind = "tuned"\nurl = "{url}"\nremote_model = "smollm2"\nlogprobs = false\n'
                f"extra_body = {{repeat_penalty = 1.0}}\n"
            )
            cat = Catalog.load(folder)
            remote, local, nolp = [], [], []
            for _ in range(args.repeats):
                for lane, out in (
                    ("remote:raw", remote),
                    ("local:raw", local),
                    ("remote-nolp:raw", nolp),
                ):
                    pg = Playground(cat, parse_lanes(lane), None)
                    [r] = pg.ask(PROMPT, Sampling(max_tokens=args.tokens))
                    out.append(r.stats.tokens_per_second)
    finally:
        server.terminate()
        server.wait(timeout=20)
    rm, lm, nm = statistics.median(remote), statistics.median(local), statistics.median(nolp)
    print(f"{'measure':<62}  {'values':>16}  {'ratio':>6}")
    print(
        f"{'tokens/s: remote lane (llama_cpp.server) / local lane, SmolLM2':<62}  {rm:>7.1f} / {lm:<7.1f} {rm / lm:6.2f}"
    )
    print(
        f"{'  the same with logprobs = false for the server':<62}  {nm:>7.1f} / {lm:<7.1f} {nm / lm:6.2f}"
    )
    res = {
        "remote_tps": rm,
        "local_tps": lm,
        "ratio": rm / lm,
        "no_logprobs_tps": nm,
        "no_logprobs_ratio": nm / lm,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out_path = Path(__file__).parent / "results" / "remote.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(res, indent=2))
    print(f"\nwritten to {out_path}")


if __name__ == "__main__":
    main()
