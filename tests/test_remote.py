"""Remote lanes against real servers on 127.0.0.1: llama-cpp-python's own server with the default
tuned model, and small HTTP servers that misbehave the ways real ones do."""

import http.server
import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from playground.core.catalog import Catalog
from playground.core.db import SessionLog
from playground.core.engine import Sampling
from playground.core.lanespec import parse_lanes
from playground.core.playground import Playground
from playground.core.pool import ModelPool

from .conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(smollm2_path):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(smollm2_path),
            "--model_alias",
            "smollm2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--n_threads",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/models", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("llama_cpp.server did not start") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def catalog_with(tmp_path, **entry) -> Catalog:
    lines = ["[[model]]", 'id = "remote"', 'kind = "tuned"']
    for k, v in entry.items():
        if isinstance(v, dict):
            lines.append(
                f"{k} = {{" + ", ".join(f"{a} = {json.dumps(b)}" for a, b in v.items()) + "}"
            )
        else:
            lines.append(f"{k} = {json.dumps(v)}")
    (tmp_path / "models.toml").write_text(
        "\n".join(lines) + '\n[default_pair]\nbase = "remote"\ntuned = "remote"\n'
    )
    return Catalog.load(tmp_path)


def ask(catalog, lanes, db, question="What is the capital of France?", max_tokens=24, pool=None):
    log = SessionLog(db)
    pg = Playground(catalog, parse_lanes(lanes), log, pool=pool or ModelPool())
    # A local lane evaluates the prompt whole from an empty cache, as the server does with a new
    # prompt: the same batch shapes on both sides (a prompt on top of a cached prefix, or in
    # other batches, gets logits ~1e-3 away, enough to flip a near-tie).
    for model in pg.pool.models():
        if hasattr(model, "clear_cache"):
            model.clear_cache()
    return pg.ask(question, Sampling(max_tokens=max_tokens)), log


@pytest.mark.slow
def test_remote_lanes_match_local_lanes(llama_server, catalog, pool, tmp_path):
    # llama-cpp-python's server applies a repeat penalty of 1.1 unless told otherwise; local lanes
    # apply none, so greedy answers match only with it off.
    remote = catalog_with(
        tmp_path,
        url=llama_server,
        remote_model="smollm2",
        family="SmolLM2 (server)",
        extra_body={"repeat_penalty": 1.0},
    )
    for mode, q in (("chat", "What is the capital of France?"), ("raw", "Once upon a time, in a")):
        [r], log = ask(remote, f"remote:{mode}", tmp_path / f"r{mode}.db", question=q)
        [loc], _ = ask(catalog, f"tuned:{mode}", tmp_path / f"l{mode}.db", question=q, pool=pool)
        assert r.status == "complete", r.error
        assert r.text.strip() == loc.text.strip() != "", mode
        rows = log.tokens(r.exchange_id)
        assert len(rows) == r.stats.completion_tokens > 0
        assert all(t["token_id"] is None and t["logprob"] is not None for t in rows)
        assert len(json.loads(rows[0]["top"])) >= 2
        assert 0 < r.stats.confidence <= 1
        ex = log.exchange(r.exchange_id)
        assert ex["model_path"] == llama_server and json.loads(ex["options"])["remote"] is True


@pytest.mark.slow
def test_remote_multi_turn_and_stop(llama_server, tmp_path):
    remote = catalog_with(tmp_path, url=llama_server, remote_model="smollm2")
    log = SessionLog(tmp_path / "t.db")
    pg = Playground(remote, parse_lanes("remote:few-shot"), log)
    [r1] = pg.ask("What is the capital of Japan?", Sampling(max_tokens=48))
    assert r1.status == "complete" and "User:" not in r1.text
    [r2] = pg.ask("And of France?", Sampling(max_tokens=24))
    prompt = log.exchange(r2.exchange_id)["prompt_text"]
    assert "What is the capital of Japan?" in prompt and r1.text.strip() in prompt


@pytest.mark.slow
def test_two_lanes_on_one_llama_cpp_python_server_both_complete(llama_server, tmp_path):
    # Its server drops the earlier stream when a second request arrives: lanes take turns.
    remote = catalog_with(tmp_path, url=llama_server, remote_model="smollm2")
    results, log = ask(remote, "remote:chat,remote:few-shot", tmp_path / "two.db")
    for r in results:
        assert r.status == "complete" and r.finish_reason in ("stop", "length"), r.error
        ex = log.exchange(r.exchange_id)
        assert ex["completion_tokens"] == len(log.tokens(r.exchange_id)) > 0


@pytest.mark.slow
def test_unreachable_server_and_wrong_model(llama_server, tmp_path):
    dead = catalog_with(tmp_path, url=f"http://127.0.0.1:{free_port()}/v1")
    [r], log = ask(dead, "remote:chat", tmp_path / "a.db")
    assert r.status == "error" and "cannot reach the server" in r.error
    assert log.exchange(r.exchange_id)["status"] == "error"
    wrong = catalog_with(tmp_path, url=llama_server, remote_model="gpt-9")
    [r], _ = ask(wrong, "remote:chat", tmp_path / "b.db")
    assert r.status == "error" and "has no model 'gpt-9'" in r.error and "smollm2" in r.error


@pytest.mark.slow
def test_search_first_on_a_remote_lane(llama_server, tmp_path):
    remote = catalog_with(
        tmp_path, url=llama_server, remote_model="smollm2", extra_body={"repeat_penalty": 1.0}
    )
    log = SessionLog(tmp_path / "s.db")
    pg = Playground(
        remote, parse_lanes("remote:chat+search-first"), log, corpus_path=tmp_path / "c.sqlite"
    )
    [r] = pg.ask("What is the capital of Mongolia?", Sampling(max_tokens=32))
    assert r.status == "complete", r.error
    [s] = log.searches(r.exchange_id)
    assert s["kind"] == "first" and json.loads(s["results"])[0]["title"] == "Mongolia"
    assert "Ulaanbaatar" in log.exchange(r.exchange_id)["prompt_text"]


class Misbehaving(http.server.BaseHTTPRequestHandler):
    """A small OpenAI-style server; its mode says how it misbehaves."""

    mode = "ok"
    seen_auth: list = []
    bodies: list = []

    def log_message(self, *a):
        pass

    def _json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.seen_auth.append(self.headers.get("Authorization"))
        if self.mode == "auth" and self.headers.get("Authorization") != "Bearer s3cret-key":
            return self._json(401, {"error": "unauthorized"})
        self._json(200, {"data": [{"id": "m"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.bodies.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        words = ["Paris", " is", " the", " capital", "."]
        if self.mode == "search":
            asked = json.dumps(body)
            words = (
                ["Ulaan", "baatar", "."]
                if "Mongolia is a country" in asked
                else [
                    "Let me check. <SEARCH",
                    "_START>capital of",
                    " Mongolia</SEA",
                    "RCH_END>",
                    " invented tail",
                ]
            )
        for i, w in enumerate(words):
            if self.mode == "drop" and i == 2:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if self.mode == "slow" and i == 1:
                time.sleep(5)
            if self.path.endswith("/chat/completions"):
                chunk = {"choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]}
            else:
                chunk = {"choices": [{"index": 0, "text": w, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())


@pytest.fixture
def misbehaving():
    handler = type("H", (Misbehaving,), {"seen_auth": [], "bodies": []})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.handle_error = lambda *a: None  # a client that stops reading is expected here
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield handler, f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def test_server_without_logprobs(misbehaving, tmp_path):
    handler, url = misbehaving
    [r], log = ask(
        catalog_with(tmp_path, url=url, remote_model="m"), "remote:chat", tmp_path / "n.db"
    )
    assert r.status == "complete" and r.text == "Paris is the capital."
    assert r.stats.confidence is None
    ex = log.exchange(r.exchange_id)
    assert json.loads(ex["options"])["logprobs"] is False
    assert all(t["logprob"] is None for t in log.tokens(r.exchange_id))


def test_server_that_stops_mid_stream_keeps_the_partial_answer(misbehaving, tmp_path):
    handler, url = misbehaving
    handler.mode = "drop"
    [r], log = ask(
        catalog_with(tmp_path, url=url, remote_model="m"), "remote:chat", tmp_path / "d.db"
    )
    assert (
        r.status == "error" and "stopped in the middle" in r.error or "closed the stream" in r.error
    )
    ex = log.exchange(r.exchange_id)
    assert ex["status"] == "error" and ex["output_text"] == "Paris is"


def test_slow_server_times_out(misbehaving, tmp_path):
    handler, url = misbehaving
    handler.mode = "slow"
    t0 = time.monotonic()
    [r], _ = ask(
        catalog_with(tmp_path, url=url, remote_model="m", timeout=1),
        "remote:chat",
        tmp_path / "s.db",
    )
    assert r.status == "error" and "sent no next token within 1 s" in r.error
    assert "token_timeout" in r.error and time.monotonic() - t0 < 4


def test_invalid_tls(misbehaving, tmp_path):
    handler, url = misbehaving
    [r], _ = ask(
        catalog_with(tmp_path, url=url.replace("http://", "https://"), remote_model="m"),
        "remote:chat",
        tmp_path / "t.db",
    )
    assert r.status == "error" and "server at https://127.0.0.1" in r.error


def test_api_key_from_the_environment_is_sent_but_never_logged(misbehaving, tmp_path, monkeypatch):
    handler, url = misbehaving
    handler.mode = "auth"
    cat = catalog_with(tmp_path, url=url, remote_model="m", api_key_env="PLAYGROUND_TEST_KEY")
    [r], _ = ask(cat, "remote:chat", tmp_path / "k1.db")
    assert r.status == "error" and "wants an API key: set PLAYGROUND_TEST_KEY" in r.error
    monkeypatch.setenv("PLAYGROUND_TEST_KEY", "s3cret-key")
    [r], _ = ask(cat, "remote:chat", tmp_path / "k2.db")
    assert r.status == "complete" and "Bearer s3cret-key" in handler.seen_auth
    dump = "\n".join(sqlite3.connect(tmp_path / "k2.db").iterdump())
    assert "s3cret-key" not in dump and "s3cret-key" not in (tmp_path / "models.toml").read_text()


def test_model_initiated_search_on_a_remote_lane(misbehaving, tmp_path):
    handler, url = misbehaving
    handler.mode = "search"
    log = SessionLog(tmp_path / "t.db")
    pg = Playground(
        catalog_with(tmp_path, url=url, remote_model="m"),
        parse_lanes("remote:few-shot+search"),
        log,
        corpus_path=tmp_path / "c.sqlite",
    )
    [r] = pg.ask("What is the capital of Mongolia?", Sampling(max_tokens=48))
    assert r.status == "complete", r.error
    assert (
        r.text == "Let me check. Ulaanbaatar."
    )  # no marker shown, nothing after the closing marker kept
    [s] = log.searches(r.exchange_id)
    assert s["kind"] == "tool" and s["query"] == "capital of Mongolia" and s["error"] is None
    second = handler.bodies[-1]["prompt"]
    assert second.endswith("</SEARCH_RESULTS>\n") and "Mongolia is a country in Asia" in second
    assert (
        "<SEARCH_START>capital of Mongolia</SEARCH_END>\n<SEARCH_RESULTS>" in second
        and "invented tail" not in second
    )


def test_a_server_finish_reason_outside_the_openai_api_reads_as_stop():
    from playground.core.remote import _finish_reason

    reasons = ("stop", "length", "content_filter", "tool_calls", "abort", None)
    assert [_finish_reason(r) for r in reasons] == [
        "stop",
        "length",
        "content_filter",
        "tool_calls",
        "stop",
        "stop",
    ]


def test_undo_turn_on_a_server_lane_gives_back_its_question(catalog):
    from playground.core.remote import RemoteConversation

    pg = Playground(catalog, parse_lanes("base:raw"))
    lane = pg.lanes[0]
    lane.conversation = RemoteConversation(lane.spec.mode_spec(), [("Who?", "Nobody.")])
    lane.turns = 1
    assert pg.undo_turn(lane) == "Who?"
    assert lane.conversation.turns == [] and lane.turns == 0
