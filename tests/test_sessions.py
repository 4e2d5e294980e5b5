"""Sessions: tag, agreement, export, re-run, replay, review, votes, demos, serve."""

import json
import socket
import subprocess
import time
import urllib.request

import pytest
from click.testing import CliRunner

from playground.cli import cli
from playground.core.config import Config
from playground.core.db import SessionLog
from playground.core.demo import DemoError, load_demo
from playground.core.engine import Sampling
from playground.core.lanespec import parse_lanes
from playground.core.playground import Playground
from playground.core.sessions import add_vote, cohen_kappa, find_sessions

from .conftest import PLAYGROUND, ROOT
from .test_tui import ready, text_of, wait_for


def run(*args):
    r = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in r.output
    return r


@pytest.fixture
def recorded(catalog, pool, db_path):
    """A session with two lanes and two turns, on the real models."""
    log = SessionLog(db_path)
    pg = Playground(catalog, parse_lanes("base:few-shot,tuned:chat"), log, pool=pool)
    pg.ask("What is the capital of Italy?", Sampling(max_tokens=12))
    pg.ask("And of Spain?", Sampling(max_tokens=12))
    return log, pg.session_id


def test_cohen_kappa_by_hand():
    a = ["correct", "correct", "hallucination", "hallucination"]
    b = ["correct", "hallucination", "hallucination", "hallucination"]
    # p_o = 3/4; p_e = (2*1 + 2*3) / 16 = 1/2; kappa = (0.75 - 0.5) / 0.5 = 0.5
    assert cohen_kappa(a, b) == pytest.approx(0.5)
    assert cohen_kappa(a, a) == pytest.approx(1.0)
    assert cohen_kappa([], []) is None


@pytest.mark.slow
def test_tag_agreement_and_filters(recorded, db_path):
    log, sid = recorded
    ids = [r["id"] for r in log.db.query("select id from exchanges order by turn, lane_index")]
    for ex, (x, y) in zip(
        ids,
        [
            ("correct", "correct"),
            ("hallucination", "correct"),
            ("hallucination", "hallucination"),
            ("correct", "correct"),
        ],
        strict=True,
    ):
        assert (
            run("tag", str(ex), "--label", x, "--tagger", "ann", "--db", str(db_path)).exit_code
            == 0
        )
        assert (
            run(
                "tag",
                str(ex),
                "--label",
                y,
                "--tagger",
                "bob",
                "--note",
                "checked",
                "--db",
                str(db_path),
            ).exit_code
            == 0
        )
    r = run("agreement", "--db", str(db_path))
    assert "ann & bob" in r.output and "75%" in r.output and "0.500" in r.output
    r = run("tag", "999999", "--label", "correct", "--db", str(db_path))
    assert r.exit_code == 1 and "no exchange with id 999999" in r.output
    assert [s["id"] for s in find_sessions(log, tag="hallucination")] == [sid]
    assert [s["id"] for s in find_sessions(log, text="Spain")] == [sid]
    assert find_sessions(log, text="Atlantis") == []
    r = run("sessions", "--search", "Italy", "--json", "--db", str(db_path))
    assert json.loads(r.stdout)[0]["turns"] == 2


@pytest.mark.slow
def test_exports(recorded, db_path, tmp_path):
    log, sid = recorded
    ids = [r["id"] for r in log.db.query("select id from exchanges order by turn, lane_index")]
    log.add_tag(ids[0], "correct")
    log.add_tag(ids[1], "hallucination")
    add_vote(log, sid, 0, ids[:2], "better", ids[0], blind=True, tagger="ann")
    jsonl = run("export", sid, "--db", str(db_path))
    recs = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert len(recs) == 4 and recs[0]["tokens"] and recs[0]["tags"][0]["label"] == "correct"
    assert all("logprob" in t for t in recs[0]["tokens"])
    md = run("export", sid[:6], "--format", "markdown", "--db", str(db_path)).stdout
    assert md.startswith(f"# Session {sid}") and "## Turn 2" in md and "> And of Spain?" in md
    sft = run("export", sid, "--format", "sft", "--db", str(db_path)).stdout.splitlines()
    assert len(sft) == 2
    for line in sft:
        rec = json.loads(line)
        assert [m["role"] for m in rec["messages"]] == ["user", "assistant"]
        assert all(isinstance(m["content"], str) and m["content"].strip() for m in rec["messages"])
    assert "I don't know" in json.loads(sft[1])["messages"][1]["content"]
    prefs = [
        json.loads(x)
        for x in run(
            "export", sid, "--format", "preferences", "--db", str(db_path)
        ).stdout.splitlines()
    ]
    assert prefs == [
        {
            "prompt": "What is the capital of Italy?",
            "chosen": log.exchange(ids[0])["output_text"].strip(),
            "rejected": log.exchange(ids[1])["output_text"].strip(),
            "chosen_model": "gemma3-270m",
            "rejected_model": "smollm2-135m-instruct",
            "blind": True,
        }
    ]
    out = tmp_path / "x.jsonl"
    assert run("export", sid, "--output", str(out), "--db", str(db_path)).exit_code == 0
    r = run("export", sid, "--output", str(out), "--db", str(db_path))
    assert r.exit_code == 1 and "exists: pass --force" in r.output
    assert run("export", sid, "--output", str(out), "--force", "--db", str(db_path)).exit_code == 0
    r = run("export", "nosuchsession", "--db", str(db_path))
    assert r.exit_code == 1 and "no session 'nosuchsession'" in r.output


@pytest.mark.slow
def test_rerun_points_to_the_original(recorded, db_path):
    log, sid = recorded
    r = run(
        "rerun", sid, "--lanes", "tuned:chat", "--max-tokens", "8", "--json", "--db", str(db_path)
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["parent_id"] == sid and len(out["answers"]) == 2
    assert out["answers"][0]["recorded"] is not None
    row = next(log.db.query("select parent_id from sessions where id = ?", [out["session_id"]]))
    assert row["parent_id"] == sid


@pytest.mark.slow
async def test_replay_token_by_token_with_the_inspector(recorded, db_path):
    from playground.tui.app import make_replay_app
    from playground.tui.screens.inspector import InspectorScreen

    log, sid = recorded
    with log.transaction() as db:  # one answer lost its token rows: replay its text without them
        last = db.execute("select id from exchanges where turn = 1 and lane_index = 1").fetchone()[
            0
        ]
        db.execute("delete from tokens where exchange_id = ?", [last])
    app = make_replay_app(SessionLog(db_path), sid, speed=0, step=True)
    async with app.run_test(size=(120, 40)) as pilot:
        base, tuned = app.main.views.values()
        await pilot.pause(0.3)
        assert base.current is None  # step mode waits for Space
        await pilot.press("space")
        await wait_for(
            pilot,
            lambda: tuned.current is not None and tuned.current.status == "complete",
            "turn 1",
        )
        assert (
            tuned.current.text.strip()
            == log.exchange(tuned.current.exchange_id)["output_text"].strip()
        )
        assert len(tuned.current.tokens) == len(log.tokens(tuned.current.exchange_id)) > 0
        tuned.focus()
        await pilot.press("i")
        await pilot.pause(0.3)
        assert isinstance(app.screen, InspectorScreen)
        assert "<|im_start|>" in app.screen.query_one("#inspector-text").content.plain
        await pilot.press("escape")
        await pilot.press("space")
        await wait_for(
            pilot, lambda: len(tuned.answers) == 2 and tuned.current.status == "complete", "turn 2"
        )
        assert "token rows are missing" in text_of(tuned)
        app.query_one("#input").load_text("new question")
        assert app.query_one("#input").disabled


@pytest.mark.slow
async def test_review_and_tag_three_answers(recorded, db_path):
    from playground.tui.app import ReviewApp

    log, sid = recorded
    app = ReviewApp(SessionLog(db_path), sid, blind=True, tagger="rev")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        body = app.screen.query_one("#review-body").content.plain
        assert "Answer A" in body and "base:few-shot" not in body  # blind: no lane names
        await pilot.press("c", "h", "s", "d")
        await pilot.press("2")
        await pilot.pause(0.1)
        assert "3 of 4 tagged" in app.screen.query_one("#review-progress").content.plain
    tags = list(log.db.query("select label, tagger from tags order by id"))
    assert [t["label"] for t in tags] == ["correct", "hallucination", "abstained"] and {
        t["tagger"] for t in tags
    } == {"rev"}
    vote = next(log.db.query("select * from votes"))
    assert vote["blind"] == 1 and vote["verdict"] == "better"


async def test_review_shows_a_server_answer_without_probabilities(db_path):
    """A server that sends no log-probs leaves NULL in the tokens table; review used to crash on
    it (math.exp(None)) and now converts rows as replay does."""
    import math

    from playground.core.db import ExchangeRecorder
    from playground.core.events import SERVER_TOKEN, Finished, PromptReady, Token
    from playground.tui.app import ReviewApp

    log = SessionLog(db_path)
    sid = log.new_session(["remote:chat"])
    fields = {"session_id": sid, "turn": 0, "lane_index": 0, "lane": "remote:chat"}
    rec = ExchangeRecorder(log, {**fields, "question": "Hi?"}, server=True)
    for ev in [
        PromptReady("l", rec.id, "[]", [], [], 0, 0),
        Token("l", 0, SERVER_TOKEN, "Hello", "Hello", math.nan, [], 0.1),
        Token("l", 1, SERVER_TOKEN, " there", " there", -0.5, [], 0.2),
        Finished("l", rec.id, "complete", "stop", "Hello there"),
    ]:
        rec(ev)
    app = ReviewApp(SessionLog(db_path), sid, blind=False, tagger="rev")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        body = app.screen.query_one("#review-body").content.plain
        assert "Hello" in body and "there" in body
        await pilot.press("c")
        await pilot.pause(0.1)
    assert [t["label"] for t in log.tags(rec.id)] == ["correct"]


@pytest.mark.slow
async def test_demo_steps_with_narration(db_path, tmp_path):
    from playground.tui.app import make_demo_app

    demo = tmp_path / "d.toml"
    demo.write_text(
        'title = "T"\n[[step]]\ntitle = "One"\nquestion = "What is 2+2?"\nlanes = "tuned:chat"\nmax_tokens = 8\nnarration = "First."\n\n[[step]]\ntitle = "Two"\nquestion = "Who is Zyler Vance?"\nlanes = "base:few-shot,tuned:chat"\nmax_tokens = 8\nnarration = "Second."\n'
    )
    app = make_demo_app(demo, db_path)
    app.config = Config()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("f6")
        await wait_for(
            pilot,
            lambda: (
                not app.main.running
                and app.main.demo_step == 0
                and all(v.current for v in app.main.views.values())
            ),
            "step 1",
        )
        assert "First." in app.query_one("#narration").content.plain and len(app.main.views) == 1
        await pilot.press("f6")
        await wait_for(
            pilot,
            lambda: (
                not app.main.running
                and app.main.demo_step == 1
                and len(app.main.views) == 2
                and all(
                    v.current and v.current.status == "complete" for v in app.main.views.values()
                )
            ),
            "step 2",
        )
        assert "Second." in app.query_one("#narration").content.plain
        assert [lane.spec.text for lane in app.main.pg.lanes] == ["base:few-shot", "tuned:chat"]


def test_demo_errors_name_the_line(tmp_path):
    d = tmp_path / "bad.toml"
    d.write_text(
        'title = "x"\n\n[[step]]\nquestion = "ok"\n\n[[step]]\nquestion = "q"\nlanes = "base:wrong"\n'
    )
    with pytest.raises(DemoError, match=r"step 2 \(line 6\): invalid lane 'base:wrong'"):
        load_demo(d)
    d.write_text('[[step]]\nquestion = "q"\nnarration = "unterminated\n')
    with pytest.raises(DemoError, match="line 3"):
        load_demo(d)
    assert len(load_demo(ROOT / "playground" / "data" / "demos" / "hallucination.toml").steps) == 7


@pytest.mark.slow
def test_serve_on_loopback_only(tmp_path):
    r = run("serve", "--host", "0.0.0.0")
    assert r.exit_code == 1 and "pass --public" in r.output
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [*PLAYGROUND, "serve", "--port", str(port), "--db", str(tmp_path / "s.db")],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        page = None
        while time.monotonic() < deadline and page is None:
            try:
                page = (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
                )
            except OSError:
                time.sleep(0.3)
        assert page is not None and "playground" in page.lower()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
async def test_sessions_screen_filters_and_reruns_in_the_lanes(recorded, db_path):
    from playground.tui.app import make_app
    from playground.tui.screens.sessions import SessionsScreen

    log, sid = recorded
    log.add_tag(next(log.db.query("select id from exchanges limit 1"))["id"], "hallucination")
    app = make_app("tuned:chat", db_path, sampling=Sampling(max_tokens=8), config=Config())
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("f5")
        await pilot.pause(0.3)
        screen = app.screen
        assert isinstance(screen, SessionsScreen)
        table = screen.query_one("#sessions-table")
        assert table.row_count == 1
        screen.query_one("#sessions-search").value = "Atlantis"
        await pilot.pause(0.2)
        assert table.row_count == 0
        screen.query_one("#sessions-search").value = "Spain"
        screen.query_one("#sessions-tag").value = "hallucination"
        await pilot.pause(0.2)
        assert table.row_count == 1
        screen.query_one("#sessions-tag").value = "correct"
        await pilot.pause(0.2)
        assert table.row_count == 0
        screen.query_one("#sessions-tag").clear()
        await pilot.pause(0.2)
        table.focus()
        await pilot.press("r", "y")  # a re-run asks first
        view = next(iter(app.main.views.values()))
        await wait_for(
            pilot,
            lambda: (
                len(view.answers) == 2
                and view.current.status == "complete"
                and not app.main.running
            ),
            "the re-run",
        )
        text = text_of(view)
        assert "recorded answer:" in text and "And of Spain?" in text
    new = next(
        log.db.query("select id, parent_id, title from sessions where parent_id is not null")
    )
    assert new["parent_id"] == sid and new["title"] == f"re-run of {sid}"
    assert (
        len(list(log.db.query("select id from exchanges where session_id = ?", [new["id"]]))) == 2
    )
