"""Remote lanes against hostile servers on 127.0.0.1 (issue 12 §2): each server breaks the OpenAI
streaming API one way, and the test checks what a user sees: the lane's status and one-line error
naming the server (without credentials), the finish reason and token counts in the real SQLite log,
and the CLI's exit code. Deadlines are set small in the catalog so that no test waits long; every
server loop has its own cap so that none outlives its test."""

import http.server
import json
import socket
import sqlite3
import threading
import time
from base64 import b64encode

import pytest
from click.testing import CliRunner

from playground.cli import cli
from playground.core.db import SessionLog
from playground.core.engine import Sampling
from playground.core.events import PromptReady
from playground.core.export import FORMATS, export_text
from playground.core.lanespec import parse_lanes
from playground.core.playground import Playground
from playground.core.urls import redact_url, redact_urls

from .test_remote import ask, catalog_with

CAP_S = 20  # no server loop runs longer than this, whatever the client does


@pytest.fixture(autouse=True)
def no_traceback_logged(caplog):
    """Every way a server misbehaves is an expected error: none may log a traceback."""
    yield
    assert not [r.getMessage() for r in caplog.records if r.exc_info]


class Hostile(http.server.BaseHTTPRequestHandler):
    """Calls the server's `post(handler, body)` / `models(handler)` script."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        self.server.models(self)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        self.server.bodies.append(body)
        try:
            self.server.post(self, body)
        except OSError:  # the client hung up: what a real server sees when we stop reading
            self.server.hung_up.set()

    # -- what scripts write --
    def json(self, code, obj):
        raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def start(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()

    def send(self, item):
        """A dict is one `data:` chunk; str and bytes go as they are."""
        if isinstance(item, dict):
            item = f"data: {json.dumps(item)}\n\n"
        self.wfile.write(item.encode() if isinstance(item, str) else item)
        self.wfile.flush()


def models_ok(h):
    h.json(200, {"data": [{"id": "m"}]})


def tok(content, finish=None, chat=True, **extra):
    """One chunk of a chat (delta) or completions (text) stream."""
    c = {"index": 0, "finish_reason": finish, **extra}
    c.update({"delta": {"content": content}} if chat else {"text": content})
    return {"choices": [c]}


def answer(h, words=("Paris", " is", " nice", "."), chat=True):
    h.start()
    for w in words:
        h.send(tok(w, chat=chat))
    h.send(tok("" if not chat else None, "stop", chat=chat))
    h.send("data: [DONE]\n\n")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that hangs up is what these servers expect


@pytest.fixture
def hostile():
    """serve(post=..., models=...) -> the server's /v1 url; the server object is `serve.last`."""
    servers = []

    def serve(post=answer, models=models_ok):
        srv = Server(("127.0.0.1", 0), Hostile)
        srv.post, srv.models = post, models
        srv.seen, srv.bodies, srv.hung_up = [], [], threading.Event()
        threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(srv)
        serve.last = srv
        return f"http://127.0.0.1:{srv.server_address[1]}/v1"

    yield serve
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def row(db, exchange_id):
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return dict(conn.execute("select * from exchanges where id = ?", (exchange_id,)).fetchone())
    finally:
        conn.close()


def token_rows(db, exchange_id):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "select text, logprob from tokens where exchange_id = ? order by position",
            (exchange_id,),
        ).fetchall()
    finally:
        conn.close()


def one_lane(tmp_path, url, lane="remote:chat", max_tokens=24, question="Capital?", **entry):
    db = tmp_path / "log.db"
    [r], _ = ask(
        catalog_with(tmp_path, url=url, remote_model="m", **entry),
        lane,
        db,
        question=question,
        max_tokens=max_tokens,
    )
    return r, row(db, r.exchange_id), db


def assert_names_the_server(error, url):
    assert error.startswith(f"the server at {url} "), error
    assert "\n" not in error and "Traceback" not in error


# -- wrong shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, what",
    [
        (
            b"<html><body>Welcome to nginx</body></html>",
            "/models answer the OpenAI API does not allow: it is not JSON",
        ),
        (b"[]", "it is a list, not a JSON object"),
        (b'{"data": "abc"}', "data is a string, not a list of models"),
        (b'{"data": [{"id": 5}]}', "data[0] is not a model with an id"),
        (b'{"data": [{"id": "other"}]}', "has no model 'm' (it has: other)"),
    ],
)
def test_a_wrong_models_answer_is_one_clear_error(hostile, tmp_path, body, what):
    url = hostile(models=lambda h: h.json(200, body))
    r, ex, _ = one_lane(tmp_path, url)
    assert r.status == "error" and what in r.error
    assert_names_the_server(r.error, url)
    assert ex["status"] == "error" and ex["error"] == r.error


GOOD_CHAT = tok("Paris")
GOOD_TEXT = tok("Paris", chat=False)


@pytest.mark.parametrize(
    "lane, bad, what",
    [
        ("remote:chat", {"choices": "abc"}, "choices is a string, not a list"),
        ("remote:chat", {"choices": [1]}, "choices[0] is a number, not an object"),
        ("remote:chat", tok(5), "delta.content is a number, not a string"),
        ("remote:raw", tok(5, chat=False), "text is a number, not a string"),
        (
            "remote:chat",
            tok("x", logprobs={"content": [{"token": "x", "logprob": "-0.5", "top_logprobs": []}]}),
            "logprobs.content[0].logprob is a string",
        ),
        (
            "remote:raw",
            tok("x", chat=False, logprobs={"tokens": ["x"], "token_logprobs": ["-0.5"]}),
            "logprobs.token_logprobs[0] is a string",
        ),
        (
            "remote:chat",
            tok("x", "stop", logprobs={"content": [{"token": "x", "logprob": 3}]}),
            "above 0",
        ),
        ("remote:chat", "data: 42\n\n", "it is a number, not a JSON object"),
        ("remote:chat", "data: [1, 2]\n\n", "it is a list, not a JSON object"),
        ("remote:chat", 'data: "hello"\n\n', "it is a string, not a JSON object"),
        ("remote:chat", "data: {oops\n\n", "it is not JSON"),
        (
            "remote:chat",
            {"error": {"message": "model crashed"}},
            "reported an error: model crashed",
        ),
        (
            "remote:chat",
            {"choices": [{"delta": {}, "finish_reason": 7}]},
            "finish_reason is a number",
        ),
        (
            "remote:chat",
            b'data: {"choices": [{"delta": {"content": "\xff\xfe"}}]}\n\n',
            "sent a line that is not UTF-8 (byte 0xff",
        ),
    ],
)
def test_a_bad_chunk_is_one_clear_error_and_the_partial_answer_stays(
    hostile, tmp_path, lane, bad, what
):
    def post(h, body):
        h.start()
        h.send(GOOD_CHAT if lane == "remote:chat" else GOOD_TEXT)
        h.send(bad)
        h.send(tok("never read", "stop"))

    url = hostile(post)
    r, ex, db = one_lane(tmp_path, url, lane)
    assert r.status == "error" and what in r.error, r.error
    assert_names_the_server(r.error, url)
    assert ex["status"] == "error" and ex["finish_reason"] == "error"
    assert ex["output_text"] == "Paris" and ex["completion_tokens"] == 1
    assert [t[0] for t in token_rows(db, r.exchange_id)] == ["Paris"]


def test_a_null_log_probability_is_a_token_without_probability(hostile, tmp_path):
    def post(h, body):
        h.start()
        for word, lp in (("Paris", -0.1), (" is", None), (" nice", -0.3)):
            h.send(
                tok(
                    word,
                    logprobs={
                        "content": [
                            {
                                "token": word,
                                "logprob": lp,
                                "top_logprobs": [{"token": word, "logprob": lp}],
                            }
                        ]
                    },
                )
            )
        h.send(tok(None, "stop"))

    r, ex, db = one_lane(tmp_path, hostile(post))
    assert r.status == "complete" and r.text == "Paris is nice", r.error
    assert token_rows(db, r.exchange_id) == [("Paris", -0.1), (" is", None), (" nice", -0.3)]
    assert ex["completion_tokens"] == 3 and ex["confidence"] is None  # not every token had one
    assert json.loads(ex["options"])["logprobs"] is False


# -- a server that does not stop ---------------------------------------------------------------


def test_a_server_that_ignores_max_tokens_is_stopped_here(hostile, tmp_path):
    sent = []

    def post(h, body):
        h.start()
        t0 = time.monotonic()
        while len(sent) < 200_000 and time.monotonic() - t0 < CAP_S:
            h.send(tok(" word"))
            sent.append(1)

    url = hostile(post)
    r, ex, db = one_lane(tmp_path, url, max_tokens=16)
    assert r.status == "complete" and r.finish_reason == "length", r.error
    assert ex["status"] == "complete" and ex["finish_reason"] == "length"
    assert ex["completion_tokens"] == 16 == len(token_rows(db, r.exchange_id))
    assert r.text == " word" * 16
    assert hostile.last.bodies[0]["max_tokens"] == 16
    assert hostile.last.hung_up.wait(10)  # we closed the stream: the server's writes failed
    assert len(sent) < 200_000


def test_the_limit_holds_inside_a_chunk_of_several_tokens(hostile, tmp_path):
    def post(h, body):
        h.start()
        content = [{"token": f" t{i}", "logprob": -0.5, "top_logprobs": []} for i in range(50)]
        h.send(tok("ignored", logprobs={"content": content}))
        h.send(tok(None, "stop"))

    r, ex, db = one_lane(tmp_path, hostile(post), max_tokens=5)
    assert r.status == "complete" and r.finish_reason == "length"
    assert r.text == " t0 t1 t2 t3 t4" and ex["completion_tokens"] == 5


# -- deadlines a trickle cannot reset ----------------------------------------------------------


def trickle(h, data: bytes, every=0.2):
    for i in range(int(CAP_S / every)):
        h.wfile.write(data[i % len(data) : i % len(data) + 1])
        h.wfile.flush()
        time.sleep(every)


def test_a_trickle_before_the_first_token_meets_the_first_token_deadline(hostile, tmp_path):
    def post(h, body):
        h.start()
        trickle(h, b'data: {"choices": [{"delta": {"content": "Paris is a very long word' * 50)

    url = hostile(post)
    r, ex, _ = one_lane(tmp_path, url, first_token_timeout=1)
    assert r.status == "error", r.error
    assert "sent no token within 1 s (the catalog's first_token_timeout" in r.error
    assert_names_the_server(r.error, url)
    assert ex["status"] == "error" and ex["completion_tokens"] == 0


def test_the_older_timeout_key_also_bounds_the_first_token(hostile, tmp_path):
    """`timeout` was httpx's read timeout (first byte and every gap): a catalog that still says
    `timeout = 1` must not wait the 120 s default for a trickle before the first token."""

    def post(h, body):
        h.start()
        trickle(h, b'data: {"choices": [{"delta": {"content": "Paris is a very long word' * 50)

    r, _, _ = one_lane(tmp_path, hostile(post), timeout=1)
    assert r.status == "error" and "sent no token within 1 s" in r.error, r.error


def test_a_trickle_of_response_headers_meets_the_first_token_deadline(hostile, tmp_path):
    def post(h, body):
        trickle(h, b"HTTP/1.0 200 OK\r\nX-Slow: " + b"a" * 1000)

    r, _, _ = one_lane(tmp_path, hostile(post), first_token_timeout=1)
    assert r.status == "error" and "first_token_timeout" in r.error, r.error


def test_a_trickle_between_tokens_meets_the_token_deadline(hostile, tmp_path):
    def post(h, body):
        h.start()
        h.send(tok("Paris"))
        trickle(h, b'data: {"choices": [{"delta": {"content": " is' * 50)

    r, ex, db = one_lane(tmp_path, hostile(post), token_timeout=1)
    assert r.status == "error" and "sent no next token within 1 s, after 1 token" in r.error
    assert "token_timeout" in r.error
    assert ex["output_text"] == "Paris" and ex["completion_tokens"] == 1


def test_an_answer_that_never_ends_meets_the_answer_deadline(hostile, tmp_path):
    def post(h, body):
        h.start()
        for _ in range(int(CAP_S / 0.1)):
            h.send(tok(" on"))
            time.sleep(0.1)

    r, ex, db = one_lane(tmp_path, hostile(post), max_tokens=100_000, answer_timeout=1)
    assert r.status == "error" and "did not finish the answer within 1 s" in r.error, r.error
    assert "answer_timeout" in r.error
    n = len(token_rows(db, r.exchange_id))
    assert n > 0 and ex["completion_tokens"] == n and ex["output_text"] == " on" * n


def test_cancel_while_the_server_is_silent_stops_the_lane_at_once(hostile, tmp_path):
    asked = threading.Event()

    def post(h, body):
        h.start()
        asked.set()
        time.sleep(CAP_S)  # thinking about the first token for a long time

    url = hostile(post)
    db = tmp_path / "c.db"
    cat = catalog_with(tmp_path, url=url, remote_model="m", first_token_timeout=CAP_S * 2)
    pg = Playground(cat, parse_lanes("remote:chat"), SessionLog(db))
    threading.Thread(target=lambda: asked.wait(10) and pg.lanes[0].cancel.set()).start()
    [r] = pg.ask("Capital?", Sampling(max_tokens=8))
    assert r.status == "cancelled" and r.finish_reason == "cancelled", r.error
    assert row(db, r.exchange_id)["status"] == "cancelled"


def test_a_trickling_models_list_meets_the_check_deadline(hostile, tmp_path):
    def models(h):
        h.send_response(200)
        h.end_headers()
        trickle(h, b'{"data": [{"id": "m"}' * 100)

    url = hostile(models=models)
    r, ex, _ = one_lane(tmp_path, url, check_timeout=1)
    assert r.status == "error" and "did not list its models within 1 s" in r.error, r.error
    assert "check_timeout" in r.error and ex["status"] == "error"
    assert_names_the_server(r.error, url)


def test_a_server_that_never_accepts_meets_the_connect_deadline(tmp_path):
    with socket.socket() as srv:  # a listening socket whose queue is full: connects hang
        srv.bind(("127.0.0.1", 0))
        srv.listen(0)
        fillers = [socket.socket() for _ in range(4)]
        for s in fillers:
            s.setblocking(False)
            s.connect_ex(srv.getsockname())
        url = f"http://127.0.0.1:{srv.getsockname()[1]}/v1"
        try:
            r, ex, _ = one_lane(tmp_path, url, connect_timeout=1)
        finally:
            for s in fillers:
                s.close()
    assert r.status == "error" and ex["status"] == "error"
    assert "could not be reached within 1 s (the catalog's connect_timeout" in r.error, r.error
    assert_names_the_server(r.error, url)


# -- streams that end without a finish reason ----------------------------------------------------


def test_a_stream_with_no_token_and_no_finish_reason_is_not_complete(hostile, tmp_path):
    def post(h, body):
        h.start()
        h.send("data: [DONE]\n\n")

    url = hostile(post)
    r, ex, _ = one_lane(tmp_path, url)
    assert r.status == "error" and ex["status"] == "error"
    assert "closed the stream without a finish reason, after 0 tokens" in r.error
    assert_names_the_server(r.error, url)


def test_a_stream_cut_after_152_tokens_counts_them_and_keeps_the_text(hostile, tmp_path):
    def post(h, body):
        h.start()
        for i in range(152):
            h.send(tok(f" w{i}"))

    r, ex, db = one_lane(tmp_path, hostile(post), max_tokens=400)
    assert r.status == "error" and "without a finish reason, after 152 tokens" in r.error
    assert ex["completion_tokens"] == 152 == len(token_rows(db, r.exchange_id))
    assert ex["output_text"] == "".join(f" w{i}" for i in range(152))


def llama_cpp_python_like(overlaps):
    """A server that, like llama-cpp-python's, ends the earlier stream (no finish reason) when a
    second request arrives; its first stream waits a moment for one after its first token."""
    lock = threading.Lock()
    active, calls = [0], [0]
    second = threading.Event()

    def post(h, body):
        with lock:
            calls[0] += 1
            active[0] += 1
            overlaps.append(active[0])
            first = calls[0] == 1
            if not first:
                second.set()
        chat = h.path.endswith("/chat/completions")
        try:
            h.start()
            h.send(tok("Paris", chat=chat))
            if first and second.wait(1.5):
                return  # superseded by the newer request: the stream just ends
            for w in (" is", " nice"):
                h.send(tok(w, chat=chat))
            h.send(tok(None, "stop", chat=chat))
        finally:
            with lock:
                active[0] -= 1

    return post


def test_lanes_on_one_server_take_turns(hostile, tmp_path):
    overlaps = []
    url = hostile(llama_cpp_python_like(overlaps))
    db = tmp_path / "t.db"
    results, _ = ask(
        catalog_with(tmp_path, url=url, remote_model="m"), "remote:chat,remote:few-shot", db
    )
    for r in results:
        assert r.status == "complete" and r.text == "Paris is nice", r.error
        ex = row(db, r.exchange_id)
        assert ex["status"] == "complete" and ex["completion_tokens"] == 3
    assert overlaps == [1, 1]  # the server never had two requests at once


def test_with_max_concurrent_2_that_server_cuts_a_lane_and_it_is_an_error(hostile, tmp_path):
    overlaps = []
    url = hostile(llama_cpp_python_like(overlaps))
    db = tmp_path / "t.db"
    cat = catalog_with(tmp_path, url=url, remote_model="m", max_concurrent=2)
    results, _ = ask(cat, "remote:chat,remote:few-shot", db)
    assert max(overlaps) == 2
    cut = [r for r in results if r.status == "error"]
    assert (
        len(cut) == 1 and "closed the stream without a finish reason, after 1 token" in cut[0].error
    )
    assert row(db, cut[0].exchange_id)["completion_tokens"] == 1


# -- credentials in the url --------------------------------------------------------------------

SECRETS = ("pa55word", "KEY123secret", "TOK456secret")


def test_credentials_in_the_url_are_sent_but_never_stored_or_shown(hostile, tmp_path):
    def post(h, body):
        if "api_key=KEY123secret" not in h.path:
            return h.json(401, {"error": "no key"})
        answer(h)

    base = hostile(post)
    url = (
        base.replace("http://", "http://alice:pa55word@")
        + "?api_key=KEY123secret&token=TOK456secret&x=1"
    )
    shown = base.replace("http://", "http://***@") + "?api_key=***&token=***&x=1"
    r, ex, db = one_lane(tmp_path, url)
    assert r.status == "complete", r.error
    basic = "Basic " + b64encode(b"alice:pa55word").decode()
    assert hostile.last.seen[-1] == (
        "/v1/chat/completions?api_key=KEY123secret&token=TOK456secret&x=1",
        basic,
    )
    assert ex["model_path"] == shown and json.loads(ex["model_info"])["remote"] == shown
    dump = "\n".join(sqlite3.connect(db).iterdump())
    log = SessionLog(db)
    exports = [export_text(log, None, fmt) for fmt in FORMATS]
    listing = CliRunner().invoke(cli, ["models", "--json", "--models-dir", str(tmp_path)])
    assert listing.exit_code == 0 and shown in listing.output
    doctor = CliRunner().invoke(cli, ["doctor", "--json", "--models-dir", str(tmp_path)])
    assert doctor.exit_code == 0 and shown in doctor.output
    for secret in SECRETS:
        assert secret not in dump and all(secret not in e for e in exports)
        assert secret not in listing.output and secret not in doctor.output
    # A log written before urls were redacted: its exports do not show the credentials either.
    with sqlite3.connect(db) as conn:
        conn.execute("update exchanges set model_path = ?, error = ?", (url, f"cannot reach {url}"))
    old = [export_text(SessionLog(db), None, fmt) for fmt in ("jsonl", "markdown")]
    assert all(shown in e and not any(s in e for s in SECRETS) for e in old)


def test_an_error_page_that_echoes_the_key_does_not_show_it(hostile, tmp_path):
    def post(h, body):
        h.send_response(500)
        h.send_header("Content-Type", "text/html")
        h.end_headers()
        h.wfile.write(
            f"<html><h1>Internal Server Error</h1><p>bad request {h.path} from pa55word</p></html>".encode()
        )

    base = hostile(post)
    url = base.replace("http://", "http://alice:pa55word@") + "?key=KEY123secret"
    r, ex, _ = one_lane(tmp_path, url)
    assert (
        r.status == "error"
        and "answered HTTP 500 to /chat/completions: Internal Server Error" in r.error
    )
    assert "<" not in r.error  # the page's text, not its tags
    assert_names_the_server(r.error, base.replace("http://", "http://***@") + "?key=***")
    assert all(s not in r.error and s not in ex["error"] for s in SECRETS)


@pytest.mark.parametrize(
    "url, shown",
    [
        ("http://u:p@h:1/v1", "http://***@h:1/v1"),
        ("https://tok@h/v1", "https://***@h/v1"),
        ("http://h/v1?api_key=abc&model=x", "http://h/v1?api_key=***&model=x"),
        ("http://h/v1?token=abc;key=def", "http://h/v1?token=***;key=***"),
        ("http://h/v1#access_token=abc", "http://h/v1#access_token=***"),
        ("http://h:8080/v1", "http://h:8080/v1"),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown
    assert redact_urls(f"cannot reach {url} now") == f"cannot reach {shown} now"


# -- control tokens in what we send ------------------------------------------------------------


@pytest.mark.parametrize("lane", ["remote:chat", "remote:raw"])
def test_control_token_strings_in_a_question_reach_the_server_as_text(hostile, tmp_path, lane):
    url = hostile(lambda h, body: answer(h, chat=lane == "remote:chat"))
    db = tmp_path / "c.db"
    log = SessionLog(db)
    pg = Playground(catalog_with(tmp_path, url=url, remote_model="m"), parse_lanes(lane), log)
    events = []
    [r] = pg.ask("Print <|im_end|> then <start_of_turn>user", Sampling(max_tokens=8), events.append)
    assert r.status == "complete", r.error
    sent = json.dumps(hostile.last.bodies[0], ensure_ascii=False)
    assert "<|im_end|>" not in sent and "<start_of_turn>" not in sent
    assert "Print ‹|im_end|> then ‹start_of_turn>user" in sent
    [ready] = [e for e in events if isinstance(e, PromptReady)]
    assert ready.neutralized == 2
    assert "‹|im_end|>" in row(db, r.exchange_id)["prompt_text"]


async def test_the_inspector_says_how_many_control_token_strings_were_neutralized(
    hostile, tmp_path
):
    from playground.core.config import Config
    from playground.tui.app import make_app
    from playground.tui.screens.inspector import InspectorScreen

    url = hostile()
    catalog_with(tmp_path, url=url, remote_model="m")
    app = make_app(
        "remote:chat",
        tmp_path / "t.db",
        models_dir=tmp_path,
        sampling=Sampling(max_tokens=8),
        config=Config(),
    )
    async with app.run_test(size=(120, 40)) as pilot:
        box = app.query_one("#input")
        box.focus()
        box.load_text("What does <|im_end|> do?")
        await pilot.press("enter")
        deadline = time.monotonic() + 30
        view = next(iter(app.main.views.values()))
        while view.current is None or view.current.status != "complete":
            assert time.monotonic() < deadline, "the answer did not arrive"
            await pilot.pause(0.05)
        view.focus()
        await pilot.press("i")
        await pilot.pause(0.2)
        assert isinstance(app.screen, InspectorScreen)
        summary = app.screen.query_one(".title").content.plain
        assert "1 control-token string(s) in the text were neutralized" in summary
        assert "What does ‹|im_end|> do?" in app.screen.query_one("#inspector-text").content.plain


# -- other ways a server breaks ----------------------------------------------------------------


def test_a_redirect_says_where_to(hostile, tmp_path):
    def post(h, body):
        h.send_response(307)
        h.send_header("Location", "http://127.0.0.1:1/v2/chat/completions?api_key=KEY123secret")
        h.end_headers()

    url = hostile(post)
    r, ex, _ = one_lane(tmp_path, url)
    assert (
        r.status == "error"
        and "redirected /chat/completions to http://127.0.0.1:1/v2/chat/completions?api_key=***"
        in r.error
    )
    assert "put the new address in the catalog's url" in r.error and "KEY123secret" not in r.error
    assert_names_the_server(r.error, url)


def test_an_html_error_page_for_models(hostile, tmp_path):
    def models(h):
        h.send_response(502)
        h.send_header("Content-Type", "text/html")
        h.end_headers()
        h.wfile.write(b"<html><style>p{}</style><h1>502 Bad Gateway</h1></html>" + b" " * 200_000)

    url = hostile(models=models)
    r, _, _ = one_lane(tmp_path, url)
    assert r.status == "error" and r.error.endswith("answered HTTP 502 to /models: 502 Bad Gateway")


def test_a_server_that_does_not_stream(hostile, tmp_path):
    url = hostile(lambda h, body: h.json(200, {"choices": [{"message": {"content": "Paris"}}]}))
    r, ex, _ = one_lane(tmp_path, url)
    assert r.status == "error" and ex["status"] == "error"
    assert "sent no event stream (no 'data:' line; application/json)" in r.error, r.error
    assert_names_the_server(r.error, url)


def test_an_enormous_line_without_a_newline(hostile, tmp_path):
    def post(h, body):
        h.start()
        h.send(tok("Paris"))
        h.send(b'data: {"choices": [{"delta": {"content": "' + b"a" * (3 << 20))

    url = hostile(post)
    r, ex, _ = one_lane(tmp_path, url)
    assert r.status == "error" and "sent a line of over 1 MiB without a line break" in r.error
    assert ex["output_text"] == "Paris" and ex["completion_tokens"] == 1


def test_the_cli_exits_1_with_one_line_naming_the_server_without_credentials(hostile, tmp_path):
    base = hostile(lambda h, body: (h.start(), h.send({"choices": "abc"})))
    url = base.replace("http://", "http://alice:pa55word@")
    catalog_with(tmp_path, url=url, remote_model="m")
    db = tmp_path / "cli.db"
    argv = ["ask", "Capital?", "--lanes", "remote:chat", "--models-dir", str(tmp_path)]
    result = CliRunner().invoke(cli, [*argv, "--db", str(db), "--json"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    [lane] = json.loads(result.stdout)["lanes"]
    assert lane["status"] == "error" and "choices is a string, not a list" in lane["error"]
    assert_names_the_server(lane["error"], base.replace("http://", "http://***@"))
    assert "pa55word" not in result.output
    assert row(db, lane["exchange_id"])["status"] == "error"


def test_catalog_deadlines_and_max_concurrent_are_checked(tmp_path):
    from playground.core.catalog import CatalogError

    for key, value in (("first_token_timeout", 0), ("answer_timeout", "10"), ("max_concurrent", 0)):
        with pytest.raises(CatalogError, match=key):
            catalog_with(tmp_path, url="http://127.0.0.1:1/v1", **{key: value})
    cat = catalog_with(tmp_path, url="http://127.0.0.1:1/v1", timeout=3, answer_timeout=9)
    d = cat.models["remote"].deadlines
    assert (d.token, d.answer, d.first_token) == (3.0, 9.0, 3.0)  # `timeout`: first byte and gaps
    cat = catalog_with(tmp_path, url="http://127.0.0.1:1/v1", timeout=3, first_token_timeout=30)
    assert cat.models["remote"].deadlines.first_token == 30.0
