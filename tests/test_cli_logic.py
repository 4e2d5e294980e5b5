"""Logic the CLI used to hold, now in core: re-run, export selection, Datasette's canned queries,
the catalog listing and Is-It-Valid's result rows. Model-free: lanes are stand-ins."""

from __future__ import annotations

import json
import sqlite3
from types import SimpleNamespace

import pytest

from playground.core import browse, export, rerun
from playground.core.db import SessionLog
from playground.core.lab import validity
from playground.core.sessions import session


def _lane(text: str, model_id: str | None = None, kind: str = "base"):
    model = SimpleNamespace(model_id=model_id, family="Gemma 3") if model_id else None
    return SimpleNamespace(
        spec=SimpleNamespace(text=text, model=text.split(":")[0]),
        model=model,
        model_spec=SimpleNamespace(kind=kind) if model_id else None,
    )


class FakePlayground:
    """Lanes that answer from a script: (question, lane) -> answer text."""

    def __init__(self, lanes, answers):
        self.lanes = lanes
        self.answers = answers
        self.asked: list[str] = []
        self.session_id = None
        self.pool = SimpleNamespace(sha256=lambda model: "ab" * 32)

    def reset_conversations(self):
        pass

    def ask(self, question, sampling):
        self.asked.append(question)
        return [
            SimpleNamespace(
                lane=lane,
                text=self.answers(question, lane.spec.text),
                exchange_id=100 + i,
                status="complete",
            )
            for i, lane in enumerate(self.lanes)
        ]


def logged_session(log: SessionLog) -> tuple[str, list[int]]:
    """Two lanes, two turns; turn 0's tuned answer was regenerated once (the latest counts)."""
    sid = log.new_session(["base:few-shot", "tuned:chat"], title="t")
    rows = [
        (0, 0, "base:few-shot", "gemma", "Capital of Italy?", "Rome.", None),
        (0, 1, "tuned:chat", "smollm", "Capital of Italy?", "Milan.", None),
        (1, 0, "base:few-shot", "gemma", "And of Spain?", "Madrid.", None),
        (1, 1, "tuned:chat", "smollm", "And of Spain?", "Madrid!", None),
    ]
    ids = []
    for turn, idx, lane, model, q, a, parent in rows:
        ids.append(
            log.start_exchange(
                session_id=sid,
                turn=turn,
                lane_index=idx,
                lane=lane,
                model_id=model,
                question=q,
                output_text=a,
                parent_id=parent,
            )
        )
    regen = log.start_exchange(
        session_id=sid,
        turn=0,
        lane_index=1,
        lane="tuned:chat",
        model_id="smollm",
        question="Capital of Italy?",
        output_text="Rome!",
        parent_id=ids[1],
    )
    log.add_tag(ids[0], "correct", None, "ann")
    return sid, ids + [regen]


@pytest.fixture
def log(db_path):
    log = SessionLog(db_path)
    yield log
    log.close()


def test_rerun_asks_each_turn_once_and_logs_a_child_session(log):
    sid, _ = logged_session(log)
    sess = session(log, sid)
    assert rerun.recorded_lanes(sess) == "base:few-shot,tuned:chat"
    assert rerun.questions(log, sid) == [(0, "Capital of Italy?"), (1, "And of Spain?")]
    pg = FakePlayground(
        [_lane("tuned:chat"), _lane("base:raw")], lambda q, lane: f"{lane} says {q}"
    )
    out = rerun.rerun(log, pg, sess, max_tokens=8)
    assert pg.asked == ["Capital of Italy?", "And of Spain?"]
    child = session(log, pg.session_id)
    assert child["parent_id"] == sid and child["title"] == f"re-run of {sid}"
    assert json.loads(child["lanes"]) == ["tuned:chat", "base:raw"]
    assert [(o["turn"], o["lane"], o["recorded"]) for o in out] == [
        (0, "tuned:chat", "Rome!"),  # the regenerated answer, not the one it replaced
        (0, "base:raw", None),  # a lane the recorded session did not have
        (1, "tuned:chat", "Madrid!"),
        (1, "base:raw", None),
    ]
    assert out[0]["now"] == "tuned:chat says Capital of Italy?" and out[0]["exchange_id"] == 100


def test_export_selects_latest_answers_and_filters(log):
    sid, ids = logged_session(log)
    sess = session(log, sid)
    in_order = [ids[0], ids[1], ids[4], ids[2], ids[3]]  # turn, lane, then id
    assert [r["id"] for r in export.select(log, sess, "jsonl")] == in_order
    latest = [r["output_text"] for r in export.select(log, sess, "markdown")]
    assert "Milan." not in latest and "Rome!" in latest
    assert {r["model_id"] for r in export.select(log, None, "jsonl", model="gem")} == {"gemma"}
    assert [r["id"] for r in export.select(log, sess, "jsonl", tag="correct")] == [ids[0]]
    lines = export.export_text(log, sess, "jsonl").splitlines()
    assert [json.loads(x)["id"] for x in lines] == in_order
    md = export.export_text(log, None, "markdown")
    assert md.startswith(f"# Session {sid}") and "Rome!" in md and "Milan." not in md


def test_datasette_queries_run_on_a_real_log(log):
    logged_session(log)
    meta = browse.datasette_metadata(log.path.stem)
    queries = meta["databases"][log.path.stem]["queries"]
    assert set(queries) == {
        "hallucination_rate_by_model_and_mode",
        "speed_by_model",
        "searches_by_lane",
    }
    conn = sqlite3.connect(log.path)
    for q in queries.values():
        conn.execute(q["sql"]).fetchall()  # every canned query is valid SQL on this schema


def test_validity_compare_rows(monkeypatch):
    def fake_classify(model, sts, seed=0):
        return {"error": 0.25, "auroc": 0.8, "n": len(sts)}

    monkeypatch.setattr(validity, "classify", fake_classify)
    monkeypatch.setattr(
        "playground.core.lab.grading.grade",
        lambda p, text: {"outcome": "correct" if text == p.answer else "incorrect"},
    )
    lanes = [_lane("base:few-shot", "gemma"), _lane("tuned:chat", "gemma", "tuned")]
    lanes.append(_lane("nope:chat"))
    pg = FakePlayground(lanes, lambda q, lane: "Rome" if lane == "base:few-shot" else "?")
    questions = [SimpleNamespace(question="Capital of Italy?", answer="Rome")] * 2
    said = []
    rows = validity.compare(pg, questions, ["s1", "s2", "s3"], 8, status=said.append)
    assert said[:2] == ["generating answers… 1/2", "generating answers… 2/2"]
    assert said[2:] == ["scoring 3 statements with gemma…"]  # one model, classified once
    base, tuned, nope = rows
    assert base == {
        "lane": "base:few-shot",
        "model": "gemma",
        "kind": "base",
        "family": "Gemma 3",
        "sha256": "ab" * 32,
        "note": None,
        "iiv_error": 0.25,
        "iiv_auroc": 0.8,
        "statements": 3,
        "hallucination_rate": 0.0,
        "two_times_error": 0.5,
    }
    assert tuned["hallucination_rate"] == 1.0 and tuned["kind"] == "tuned"
    assert nope["model"] == "nope" and nope["iiv_error"] is None and nope["statements"] == 0
