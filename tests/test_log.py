"""The session log: schema, migrations, bad files, crash recovery, two writers at once."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from playground.core.db import LogError, SessionLog
from playground.core.db.migrations import SCHEMA_VERSION

from .conftest import PLAYGROUND, ROOT


def test_schema_and_wal(db_path):
    log = SessionLog(db_path)
    assert log.db.conn.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert {"sessions", "exchanges", "tokens", "tags", "_playground_migrations"} <= set(
        log.db.table_names()
    )
    assert log.db.conn.execute("pragma user_version").fetchone()[0] == SCHEMA_VERSION
    sid = log.new_session(["base:raw"])
    ex = log.start_exchange(session_id=sid, turn=0, lane_index=0, lane="base:raw", stop=["\n"])
    log.update_exchange(
        ex,
        tokens=[{"position": 0, "token_id": 5, "text": "a", "logprob": -0.1, "top": "[]"}],
        output_text="a",
    )
    log.add_tag(ex, "hallucination", note="made up", tagger="ann")
    log.close()
    # Plain SQLite, readable by anything.
    conn = sqlite3.connect(db_path)
    row = conn.execute("select status, output_text, stop from exchanges").fetchone()
    assert row == ("pending", "a", '["\\n"]')
    assert conn.execute("select label, note, tagger from tags").fetchone() == (
        "hallucination",
        "made up",
        "ann",
    )


def test_newer_database_is_refused_and_untouched(db_path):
    SessionLog(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"pragma user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    before = db_path.read_bytes()
    with pytest.raises(LogError, match="newer version"):
        SessionLog(db_path)
    assert db_path.read_bytes() == before


def test_corrupt_database_is_never_overwritten(tmp_path):
    p = tmp_path / "bad.db"
    p.write_bytes(b"this is not sqlite at all" * 100)
    before = p.read_bytes()
    with pytest.raises(LogError, match="not a SQLite database.*untouched"):
        SessionLog(p)
    assert p.read_bytes() == before


def test_damaged_database_body(tmp_path):
    p = tmp_path / "damaged.db"
    SessionLog(p).close()
    data = bytearray(p.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # keep the header, wreck the first page
    p.write_bytes(bytes(data))
    before = p.read_bytes()
    with pytest.raises(LogError, match="damaged|cannot open"):
        SessionLog(p)
    assert p.read_bytes() == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_path(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(LogError, match="not writable"):
        SessionLog(ro / "x.db")


def test_unwritable_location_even_for_root():
    with pytest.raises(
        LogError, match="cannot (create|write) the session database /proc/self/x.db"
    ):
        SessionLog("/proc/self/x.db")


def test_directory_as_database(tmp_path):
    with pytest.raises(LogError, match="is a directory"):
        SessionLog(tmp_path)


def test_unwritable_parent(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LogError, match="cannot create the folder"):
        SessionLog(blocker / "sub" / "x.db")


@pytest.mark.slow
def test_kill_9_leaves_an_interrupted_partial_answer(db_path):
    proc = subprocess.Popen(
        [
            *PLAYGROUND,
            "ask",
            "Once upon a time",
            "--lanes",
            "base:raw",
            "--max-tokens",
            "3000",
            "--db",
            str(db_path),
            "--json",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        text = ""
        while time.monotonic() < deadline:
            time.sleep(0.3)
            if not db_path.exists():
                continue
            try:
                conn = sqlite3.connect(db_path, timeout=5)
                row = conn.execute("select status, output_text from exchanges").fetchone()
                conn.close()
            except sqlite3.OperationalError:
                continue
            if row and row[0] == "streaming" and row[1] and len(row[1]) > 20:
                text = row[1]
                break
        assert text, "the generation never started streaming"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    log = SessionLog(db_path)
    assert log.interrupted_on_open == 1
    row = next(log.db.query("select * from exchanges"))
    assert row["status"] == "interrupted"
    assert row["output_text"].startswith(text[:20])
    assert log.tokens(row["id"]), "token rows written before the kill are kept"
    assert log.db.conn.execute("pragma integrity_check").fetchone()[0] == "ok"


WRITER = r"""
import sys
from playground.core.db import SessionLog
log = SessionLog(sys.argv[1])
sid = log.new_session(["writer:" + sys.argv[2]])
for i in range(int(sys.argv[3])):
    ex = log.start_exchange(session_id=sid, turn=i, lane_index=0, lane="x:raw", question=f"q{i}")
    toks = [{"position": p, "token_id": p, "text": "t", "logprob": -1.0, "top": "[]"} for p in range(16)]
    log.update_exchange(ex, tokens=toks[:8], status="streaming", output_text="partial")
    log.update_exchange(ex, tokens=toks[8:], status="complete", output_text="done")
print("ok")
"""


def test_two_processes_write_at_once_without_losing_rows(db_path):
    SessionLog(db_path).close()
    n = 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db_path), str(k), str(n)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(2)
    ]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert "locked" not in err
        assert out.strip() == "ok"
    conn = sqlite3.connect(db_path)
    assert (
        conn.execute("select count(*) from exchanges where status = 'complete'").fetchone()[0]
        == 2 * n
    )
    assert conn.execute("select count(*) from tokens").fetchone()[0] == 2 * n * 16
    assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"


@pytest.mark.slow
def test_two_playground_processes_on_one_database(db_path):
    cmd = [
        *PLAYGROUND,
        "ask",
        "What is the capital of Italy?",
        "--max-tokens",
        "24",
        "--db",
        str(db_path),
        "--json",
    ]
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(json.loads(out))
    assert outs[0]["session_id"] != outs[1]["session_id"]
    conn = sqlite3.connect(db_path)
    rows = conn.execute("select status, completion_tokens, id from exchanges").fetchall()
    assert len(rows) == 4 and all(r[0] == "complete" for r in rows)
    for _, n, ex in rows:
        assert (
            conn.execute("select count(*) from tokens where exchange_id = ?", (ex,)).fetchone()[0]
            == n
        )


# -- the recorder: the log as a consumer of the event stream --------------------------------------


def _recorded(db_path, events, server=False):
    from playground.core.db import ExchangeRecorder

    log = SessionLog(db_path)
    sid = log.new_session(["x:raw"])
    fields = {"session_id": sid, "turn": 0, "lane_index": 0, "lane": "x:raw", "options": {"a": 1}}
    rec = ExchangeRecorder(log, fields, server=server)
    out = [rec(ev) for ev in events(rec.id)]
    return log, rec.id, out


def test_the_recorder_writes_an_exchange_from_its_events(db_path):
    from playground.core.events import (
        NO_TOKEN,
        Alternative,
        Finished,
        PromptReady,
        SearchDone,
        Stats,
        Token,
    )

    stats = Stats(3, 3, 0, 2, 2, 0.1, 10.0, 0.3, -0.5)

    def events(ex):
        return [
            PromptReady("l", ex, "Q: hi\nA:", [1, 2, 3], [False] * 3, 3, 0),
            Token("l", 0, 7, " Hi", " Hi", -0.25, [Alternative(7, " Hi", -0.25)], 0.01),
            SearchDone("l", "q", "tool", "offline", [{"title": "t"}], None, 0.1, 3, 1, 12),
            Token("l", 1, 8, "!", "", -0.75, [], 0.02),
            Token("l", 2, NO_TOKEN, "", "!", 0.0, [], 0.02),  # released text: no token row
            Finished("l", ex, "complete", "eos", " Hi!", stats),
        ]

    log, ex, out = _recorded(db_path, events)
    assert out[2].search_id == log.searches(ex)[0]["id"]
    row = log.exchange(ex)
    assert (row["status"], row["finish_reason"], row["output_text"]) == ("complete", "eos", " Hi!")
    assert (row["prompt_evaluated"], row["prompt_reused"], row["searches"]) == (3, 0, 1)
    assert (row["completion_tokens"], row["mean_logprob"]) == (2, -0.5)
    assert json.loads(row["options"]) == {"a": 1}
    rows = log.tokens(ex)
    assert [(t["position"], t["token_id"], t["text"], t["logprob"]) for t in rows] == [
        (0, 7, " Hi", -0.25),
        (1, 8, "!", -0.75),
    ]
    assert json.loads(rows[0]["top"]) == [[7, " Hi", -0.25]]


def test_a_server_token_without_probability_round_trips(db_path):
    """NULL id and NULL log-prob in the table, SERVER_TOKEN and NaN in the event: one conversion
    each way, shared by replay and review (review used to crash on the NULL)."""
    import math

    from playground.core.db import token_event
    from playground.core.events import SERVER_TOKEN, Finished, PromptReady, Token

    def events(ex):
        return [
            PromptReady("l", ex, "[]", [], [], 0, 0),
            Token("l", 0, SERVER_TOKEN, "Hi", "Hi", math.nan, [], 0.5),
            Finished("l", ex, "complete", "stop", "Hi"),
        ]

    log, ex, _ = _recorded(db_path, events, server=True)
    [row] = log.tokens(ex)
    assert (row["token_id"], row["logprob"]) == (None, None)
    ev = token_event(row, "lane", "Hi")
    assert (ev.token_id, ev.piece, ev.text, ev.elapsed) == (SERVER_TOKEN, "Hi", "Hi", 0.5)
    assert math.isnan(ev.logprob)
    ex_row = log.exchange(ex)
    assert ex_row["prompt_evaluated"] is None  # a server keeps its prompt cache to itself
    assert json.loads(ex_row["options"]) == {"a": 1, "remote": True, "logprobs": False}


def test_an_interrupted_answer_replays_as_cancelled_with_its_reason(db_path):
    """A row whose process died has status `interrupted` and no finish reason: its replay ends
    with a Finished event that says cancelled (the event's statuses) and "interrupted"."""
    from playground.core.events import Finished
    from playground.core.replay import exchange_events

    log = SessionLog(db_path)
    sid = log.new_session(["l"])
    ex = log.start_exchange(
        session_id=sid, turn=0, lane_index=0, lane="l", model_id="m", mode="raw", question="q"
    )
    log.update_exchange(ex, status="interrupted", output_text="part")
    fin = exchange_events(log, ex, "l")[-1]
    log.close()
    assert isinstance(fin, Finished)
    assert (fin.status, fin.finish_reason, fin.text) == ("cancelled", "interrupted", "part")
