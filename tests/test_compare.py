"""Comparing lanes in the app (issue 13 §3, §5): the grid, turns side by side, long questions,
notes, undo, replay, review and exports — on a real SQLite log, lanes driven by FakeBackend."""

import json
import math
import time
from types import SimpleNamespace

import pytest

from playground.core.config import Config
from playground.core.db import SessionLog
from playground.core.db.queries import BROWSE_QUERIES
from playground.core.engine import Sampling
from playground.core.export import export_text
from playground.core.lanespec import parse_lane
from playground.core.sessions import session
from playground.tui.app import PlaygroundApp, ReviewApp, make_replay_app
from playground.tui.screens.lanes import LanesScreen
from playground.tui.screens.review import ReviewScreen
from playground.tui.screens.sessions import SessionsScreen

from .fakes import FakeBackend, FakePlayground

LANES4 = ["base:raw", "base:few-shot", "tuned:chat", "tuned:raw"]
TIMEOUT_S = 30


class AppPlayground(FakePlayground):
    """Scripted lanes whose stand-in model has what the header and status bar read."""

    def _resolve(self, lane):
        super()._resolve(lane)  # a new mode keeps the stand-in: no real model loads
        if lane.model_spec is not None:
            lane.model = SimpleNamespace(family=lane.model_spec.family_name(), info=None)

    def add_lane(self, spec):
        lane = super().add_lane(spec)
        self._resolve(lane)
        return lane


def fake_app(catalog, db_path, scripts, lanes=LANES4):
    """The real app on a real log; lane i answers from scripts[i] (one segment a question)."""
    fakes = [FakeBackend(*s) for s in scripts]
    pg = AppPlayground(
        catalog, [parse_lane(x) for x in lanes], log=SessionLog(db_path), fakes=fakes
    )
    return PlaygroundApp(LanesScreen(pg, Sampling(max_tokens=64)), Config())


async def until(pilot, condition, what):
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)
    await pilot.pause(0.3)  # the 10 Hz pump and the layout after it


async def ask(pilot, question):
    app = pilot.app
    n = len(next(iter(app.main.views.values())).answers)
    app.main.send(question)
    await until(
        pilot,
        lambda: (
            not app.main.running and all(len(v.answers) == n + 1 for v in app.main.views.values())
        ),
        "the lanes to answer",
    )


def views(app):
    return list(app.main.views.values())


def on_screen(app, view) -> bool:
    """The lane is wholly inside the lanes area (not scrolled away below it)."""
    area = app.main.query_one("#lanes").region
    return area.contains_region(view.region)


# -- §3 the layout ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(130, 40), (80, 24)])
async def test_four_lanes_make_a_grid_on_one_screen(catalog, db_path, size):
    app = fake_app(catalog, db_path, [[]] * 4)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.2)
        assert app.main.query_one("#lanes").has_class("grid")
        assert all(on_screen(app, v) for v in views(app))
        tops = sorted({v.region.y for v in views(app)})
        lefts = sorted({v.region.x for v in views(app)})
        assert len(tops) == 2 and len(lefts) == 2  # 2 × 2
        assert min(v.region.width for v in views(app)) >= 34


async def test_the_layout_follows_each_resize_at_once(catalog, db_path):
    app = fake_app(catalog, db_path, [[]] * 4)
    async with app.run_test(size=(150, 40)) as pilot:
        await pilot.pause(0.2)
        lanes = app.main.query_one("#lanes")
        assert not lanes.has_class("grid") and not lanes.has_class("stacked")  # one row
        await pilot.resize_terminal(100, 40)
        await pilot.pause(0.1)
        assert lanes.has_class("grid")
        await pilot.resize_terminal(60, 40)
        await pilot.pause(0.1)
        assert lanes.has_class("stacked")
        await pilot.resize_terminal(150, 40)
        await pilot.pause(0.1)
        assert not lanes.has_class("grid") and not lanes.has_class("stacked")


async def test_three_lanes_make_two_plus_one(catalog, db_path):
    app = fake_app(catalog, db_path, [[]] * 3, lanes=LANES4[:3])
    async with app.run_test(size=(90, 40)) as pilot:
        await pilot.pause(0.2)
        v = views(app)
        assert v[0].region.y == v[1].region.y < v[2].region.y
        assert v[2].region.width > v[0].region.width  # the odd lane takes the whole row
        assert all(on_screen(app, x) for x in v)


async def test_the_same_question_sits_at_the_same_height(catalog, db_path):
    long_answer = ["line\n"] * 12
    scripts = [[long_answer, ["Mars."]], [["Paris."], ["Venus."]]] * 2
    app = fake_app(catalog, db_path, scripts)
    async with app.run_test(size=(130, 40)) as pilot:
        await ask(pilot, "What is the capital of France?")
        await ask(pilot, "Name a planet.")
        await pilot.pause(0.3)
        second = [v._answer_widgets[1] for v in views(app)]
        assert len({w.virtual_region.y for w in second}) == 1
        # and on screen, at the same line of each lane (side by side, or in the grid's rows)
        pairs = list(zip(second, views(app), strict=True))
        assert len({w.region.y - v.region.y for w, v in pairs}) == 1
        assert all(v.region.contains_region(w.region) for w, v in pairs)


async def test_a_long_question_folds_and_e_expands_it(catalog, db_path):
    app = fake_app(catalog, db_path, [[["Sure."]]], lanes=["base:raw"])
    question = "\n".join(f"line {i} of a pasted document" for i in range(400))  # ~10 KB
    async with app.run_test(size=(130, 40)) as pilot:
        await ask(pilot, question)
        view = views(app)[0]
        shown = view.conversation_text()
        assert "line 3 of" in shown and "line 4 of" not in shown
        assert "396 more lines, e expands" in shown and "Sure." in shown
        view.focus()
        await pilot.press("e")
        assert "line 399 of" in view.conversation_text()
        await pilot.press("e")
        assert "line 399 of" not in view.conversation_text()


async def test_new_conversation_notes_merge_into_one_line(catalog, db_path):
    app = fake_app(catalog, db_path, [[["Rome."]]], lanes=["base:raw"])
    async with app.run_test(size=(130, 40)) as pilot:
        await ask(pilot, "Capital of Italy?")
        view = views(app)[0]
        view.focus()
        await pilot.press("m", "a")
        await pilot.pause(0.3)
        notes = [w.content.plain for w in view.query(".lane-note")]
        assert notes == [
            "— mode is now few-shot · abstention on, T=0.75: a new conversation starts here —"
        ]


async def test_tags_and_votes_can_be_undone_and_a_lane_shows_its_current_tag(catalog, db_path):
    app = fake_app(catalog, db_path, [[["Rome."]], [["Milan."]]], lanes=LANES4[:2])
    async with app.run_test(size=(130, 40)) as pilot:
        await ask(pilot, "Capital of Italy?")
        one, two = views(app)
        log = app.main.log_db
        ex = one.current.exchange_id
        one.focus()
        await pilot.press("h", "c")
        await pilot.pause(0.2)
        shown = one.conversation_text()
        assert " correct " in shown and "hallucination" not in shown
        two.focus()
        await pilot.press("b")  # lane 2 better...
        one.focus()
        await pilot.press("b")  # ...no, lane 1
        await pilot.pause(0.2)
        assert [v["winner_exchange_id"] for v in log.query("select * from votes")] == [
            two.current.exchange_id,
            ex,
        ]
        await pilot.press("u")  # the vote came last: it goes first
        await pilot.pause(0.2)
        assert [v["winner_exchange_id"] for v in log.query("select * from votes")] == [
            two.current.exchange_id
        ]
        assert [t["label"] for t in log.tags(ex)] == ["hallucination", "correct"]
        await pilot.press("u")
        await pilot.pause(0.2)
        assert [t["label"] for t in log.tags(ex)] == ["hallucination"]
        assert " hallucination " in one.conversation_text()
        await pilot.press("u")
        await pilot.press("u")  # nothing left of lane 1's: lane 2's vote stays
        await pilot.pause(0.2)
        assert log.tags(ex) == [] and len(log.query("select * from votes")) == 1
        assert "hallucination" not in one.conversation_text()


# -- §5 replay, review, exports ----------------------------------------------------------------


def recorded(catalog, db_path, scripts, questions, lanes=LANES4[:2], stops=None):
    """A session answered by FakeBackend lanes through the real Playground and recorder."""
    fakes = [FakeBackend(*s, stops=stops) for s in scripts]
    log = SessionLog(db_path)
    pg = FakePlayground(catalog, [parse_lane(x) for x in lanes], log=log, fakes=fakes)
    for q in questions:
        pg.ask(q, Sampling(max_tokens=64))
    return log, pg.session_id


async def test_replay_at_instant_speed_shows_every_turn(catalog, db_path):
    answers = [[[f"Answer {t} of lane {i}."] for t in range(4)] for i in range(2)]
    log, sid = recorded(catalog, db_path, answers, [f"Question {t}?" for t in range(4)])
    app = make_replay_app(log, sid, speed=0.0)
    async with app.run_test(size=(130, 40)) as pilot:
        await until(
            pilot,
            lambda: all(
                len(v.answers) == 4 and v.answers[-1].status == "complete" for v in views(app)
            ),
            "the replay to finish",
        )
        for i, v in enumerate(views(app)):
            assert [a.text for a in v.answers] == [f"Answer {t} of lane {i}." for t in range(4)]
            assert [a.question for a in v.answers] == [f"Question {t}?" for t in range(4)]


async def test_review_stays_on_the_turn_until_the_user_moves_on(catalog, db_path):
    log, sid = recorded(
        catalog,
        db_path,
        [[["Paris."], ["Mars."]], [["Lyon."], ["Venus."]]],
        ["Capital of France?", "Name a planet."],
    )
    app = ReviewApp(log, sid, blind=False, tagger="rev")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)

        def body():
            return app.screen.query_one("#review-body").content.plain

        await pilot.press("c", "h")  # both answers of turn 1
        await pilot.pause(0.1)
        assert "Capital of France?" in body() and "Name a planet." not in body()
        await pilot.press("1")  # the vote is about the turn on screen
        await pilot.pause(0.1)
        [vote] = log.query("select * from votes")
        assert vote["turn"] == 0
        await pilot.press("space")
        await pilot.pause(0.1)
        assert "Name a planet." in body()


async def test_review_shows_the_logged_answer_exactly(catalog, db_path):
    """A stop sequence's tokens are logged but are not the answer: review showed "↵↵User"."""
    log, sid = recorded(
        catalog,
        db_path,
        [[["Paris", ".", "\n\n", "User", ": more"]]],
        ["Capital of France?"],
        lanes=["base:raw"],
        stops=["\n\nUser"],
    )
    [ex] = log.query("select * from exchanges")
    assert ex["output_text"] == "Paris."
    app = ReviewApp(log, sid, blind=False, tagger="rev")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        body = app.screen.query_one("#review-body").content.plain
        assert "Paris." in body and "User" not in body and "↵" not in body
        assert "confidence 78%" in body  # exp(-0.25), the fake's log-probability


async def test_review_folds_a_long_question(catalog, db_path):
    question = "\n".join(f"line {i} of a pasted document" for i in range(400))
    log, sid = recorded(catalog, db_path, [[["Sure."]]], [question], lanes=["base:raw"])
    app = ReviewApp(log, sid, blind=False, tagger="rev")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)

        def body():
            return app.screen.query_one("#review-body").content.plain

        assert "396 more lines, e expands" in body() and "line 399 of" not in body()
        assert "Sure." in body()
        await pilot.press("e")
        await pilot.pause(0.1)
        assert "line 399 of" in body()


async def test_esc_in_a_review_returns_to_the_sessions_list(catalog, db_path):
    log, sid = recorded(catalog, db_path, [[["Rome."]]], ["Capital of Italy?"], ["base:raw"])
    app = fake_app(catalog, db_path, [[]], lanes=["base:raw"])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        app.main.action_sessions()
        await pilot.pause(0.3)
        assert isinstance(app.screen, SessionsScreen)
        await pilot.press("enter", "enter")  # from the search box to the table, then open it
        await pilot.pause(0.3)
        assert isinstance(app.screen, ReviewScreen)
        await pilot.press("escape")
        await pilot.pause(0.3)
        assert isinstance(app.screen, SessionsScreen)


def server_session(db_path):
    """An answer from a server that sent no log-probabilities (NULL in the tokens table)."""
    from playground.core.db import ExchangeRecorder
    from playground.core.events import SERVER_TOKEN, Finished, PromptReady, Stats, Token

    log = SessionLog(db_path)
    sid = log.new_session(["remote:chat"])
    fields = {"session_id": sid, "turn": 0, "lane_index": 0, "lane": "remote:chat"}
    rec = ExchangeRecorder(log, {**fields, "question": "Hi?"}, server=True)
    stats = Stats(3, 3, 0, 2, 2, 0.1, 20.0, 0.2, None)
    for ev in [
        PromptReady("l", rec.id, "[]", [], [], 0, 0),
        Token("l", 0, SERVER_TOKEN, "Hello", "Hello", math.nan, [], 0.1),
        Token("l", 1, SERVER_TOKEN, " there", " there", math.nan, [], 0.2),
        Finished("l", rec.id, "complete", "stop", "Hello there", stats),
    ]:
        rec(ev)
    return log, sid


async def test_an_answer_without_log_probs_shows_a_dash_for_confidence(db_path):
    log, sid = server_session(db_path)
    app = ReviewApp(log, sid, blind=False, tagger="rev")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        assert "confidence –" in app.screen.query_one("#review-body").content.plain
    app = make_replay_app(log, sid, speed=0.0)
    async with app.run_test(size=(120, 40)) as pilot:
        view = views(app)[0]
        await until(pilot, lambda: view.current and view.current.status == "complete", "the replay")
        assert "confidence –" in view.query_one("#lane-status").content.plain
    md = export_text(log, session(log, sid), "markdown")
    assert "confidence –" in md


def test_the_last_vote_of_a_turn_wins(catalog, db_path):
    from playground.core.sessions import add_vote

    log, sid = recorded(catalog, db_path, [[["Rome."]], [["Milan."]]], ["Capital of Italy?"])
    a, b = (r["id"] for r in log.query("select id from exchanges order by lane_index"))
    add_vote(log, sid, 0, [a, b], "better", b)
    add_vote(log, sid, 0, [a, b], "better", a)
    pairs = [json.loads(x) for x in export_text(log, None, "preferences").splitlines()]
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("Rome.", "Milan.")]
    add_vote(log, sid, 0, [a, b], "tie")
    assert export_text(log, None, "preferences") == ""


def test_two_hallucinations_on_one_question_give_one_sft_line(catalog, db_path):
    log, sid = recorded(catalog, db_path, [[["Bob."]], [["Alice."]]], ["Who is Zyler Vance?"])
    for r in log.query("select id from exchanges"):
        log.add_tag(r["id"], "hallucination")
    lines = export_text(log, session(log, sid), "sft").splitlines()
    assert len(lines) == 1 and "I don't know" in lines[0]


def test_the_hallucination_rate_counts_answers_by_their_current_tag(catalog, db_path):
    log, _ = recorded(catalog, db_path, [[["Bob."]], [["Alice."]]], ["Who is Zyler Vance?"])
    a, b = (r["id"] for r in log.query("select id from exchanges order by lane_index"))
    log.add_tag(a, "hallucination")
    log.add_tag(a, "hallucination", tagger="someone else")
    log.add_tag(a, "correct")  # retagged: what counts now
    log.add_tag(b, "hallucination")
    rows = log.query(BROWSE_QUERIES["hallucination_rate_by_model_and_mode"]["sql"])
    # one answer a row: lane 1's (retagged correct) and lane 2's, each counted once
    assert [(r["mode"], r["tagged"], r["hallucination_rate"]) for r in rows] == [
        ("few-shot", 1, 1.0),
        ("raw", 1, 0.0),
    ]


@pytest.mark.slow
def test_a_long_prompt_reports_its_progress(catalog, pool, db_path):
    """Evaluating a long prompt takes seconds on a CPU: the engine says how far it got after each
    batch (the lane shows "evaluating the prompt… 45%"), in the batches llama.cpp makes anyway."""
    from playground.core.events import PromptProgress, PromptReady
    from playground.core.lanespec import parse_lanes
    from playground.core.playground import Playground

    pg = Playground(catalog, parse_lanes("tuned:raw"), SessionLog(db_path), pool=pool)
    events = []
    question = "Summarise this. " + "The cat sat on the mat, and the dog lay by the door. " * 120
    [r] = pg.ask(question, Sampling(max_tokens=2), emit=events.append)
    assert r.status == "complete"
    progress = [e for e in events if isinstance(e, PromptProgress)]
    [ready] = [e for e in events if isinstance(e, PromptReady)]
    batch = pg.lanes[0].model.llm.n_batch
    assert len(progress) >= 2 and progress[0].evaluated == batch
    assert [p.evaluated for p in progress] == sorted(p.evaluated for p in progress)
    assert progress[-1].evaluated == progress[-1].total == ready.evaluated
    assert events.index(progress[-1]) < events.index(ready)
