"""The CLI's boundary as a user meets it: a real `playground` process given bad input ends with one
line on stderr and a non-zero status, never a traceback and never a hang (issue 12 §5, 13 §6)."""

from __future__ import annotations

import json
import os
import pty
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from playground.core.db import SessionLog

from .conftest import PLAYGROUND, ROOT

TIMEOUT_S = 120  # a hang fails the test instead of blocking the suite


def env(**extra: str) -> dict[str, str]:
    """This checkout on the path wherever the command runs; no TEXTUAL_DRIVER from outside."""
    e = {k: v for k, v in os.environ.items() if k != "TEXTUAL_DRIVER"}
    e["PYTHONPATH"] = str(ROOT)
    e.update(extra)
    return e


def cli(*args, cwd=None, stdin=subprocess.DEVNULL, input=None, extra_env=None):
    return subprocess.run(
        [*PLAYGROUND, *args],
        cwd=cwd,
        stdin=None if input is not None else stdin,
        input=input,
        capture_output=True,
        timeout=TIMEOUT_S,
        env=env(**(extra_env or {})),
    )


def one_line_error(r, status: int = 1) -> str:
    """The run failed with `status` and said why in one line of stderr, with no traceback."""
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == status, (r.returncode, err)
    assert "Traceback" not in err, err
    if status == 1:
        assert err.startswith("Error: ") and len(err.strip().splitlines()) == 1, err
    return err


def logged(db: Path, answer: str = "Rome.") -> str:
    log = SessionLog(db)
    sid = log.new_session(["base:few-shot", "tuned:chat"])
    exchange = log.start_exchange(
        session_id=sid,
        turn=0,
        lane_index=0,
        lane="tuned:chat",
        model_id="smollm2",
        question="Capital of Italy?",
        output_text=answer,
    )
    log.update_exchange(exchange, status="complete", finish_reason="stop")
    log.close()
    return sid


# -- files where a file or folder should be ------------------------------------------------------


def test_export_under_a_file_and_into_a_pipe(db_path, tmp_path):
    logged(db_path)
    (tmp_path / "notes.txt").write_text("keep")
    r = cli(
        "export",
        "--all",
        "--output",
        str(tmp_path / "notes.txt" / "out.jsonl"),
        "--db",
        str(db_path),
    )
    assert "notes.txt" in one_line_error(r)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    r = cli("export", "--all", "--force", "--output", str(fifo), "--db", str(db_path))
    assert "not a regular file" in one_line_error(r)
    r = cli("export", "--all", "--force", "--output", "/dev/full", "--db", str(db_path))
    assert "not a regular file" in one_line_error(r)
    assert (tmp_path / "notes.txt").read_text() == "keep"


def test_corpus_add_refuses_pipes_and_devices(tmp_path):
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    corpus = tmp_path / "corpus.sqlite"
    r = cli("corpus", "add", str(fifo), "/dev/zero", "--corpus", str(corpus))
    err = r.stderr.decode()
    assert r.returncode == 1 and "Traceback" not in err
    assert err.count("not a regular file") == 2
    assert "0 file(s) added, 2 skipped" in r.stdout.decode()


def test_corrupt_corpus_files(tmp_path, db_path):
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"\x8f\x00garbage" * 500)
    r = cli("corpus", "search", "Eiffel", "--corpus", str(garbage))
    err = one_line_error(r)
    assert "garbage.sqlite" in err and "not a database" in err
    assert garbage.read_bytes() == b"\x8f\x00garbage" * 500
    logged(db_path)  # a session log is SQLite too, with another schema
    before = db_path.read_bytes()
    r = cli("corpus", "add", str(ROOT / "README.md"), "--corpus", str(db_path))
    err = one_line_error(r)
    assert "not a search corpus" in err and db_path.name in err
    assert db_path.read_bytes() == before


def test_models_dir_missing_and_a_pipe_as_catalog(tmp_path):
    r = cli("models", "--models-dir", str(tmp_path / "nowhere"))
    assert "does not exist" in one_line_error(r, status=2)
    (tmp_path / "m").mkdir()
    os.mkfifo(tmp_path / "m" / "models.toml")
    r = cli("models", "--models-dir", str(tmp_path / "m"))
    assert "models.toml is not a regular file" in one_line_error(r)


def test_db_in_a_missing_folder_is_not_created(tmp_path):
    target = tmp_path / "no" / "such" / "x.db"
    r = cli("ask", "hi", "--db", str(target))
    assert "does not exist" in one_line_error(r)
    r = cli("sessions", extra_env={"PLAYGROUND_DB": str(target)})
    one_line_error(r)
    assert not (tmp_path / "no").exists()
    r = cli("export", "--all", cwd=tmp_path)
    assert "no session database" in one_line_error(r)


# -- SQLite ---------------------------------------------------------------------------------------


def test_a_locked_database_names_its_file(db_path):
    sid = logged(db_path)
    exchange = sqlite3.connect(db_path).execute("select id from exchanges").fetchone()[0]
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        r = cli(
            "tag",
            str(exchange),
            "--label",
            "correct",
            "--db",
            str(db_path),
            extra_env={"PLAYGROUND_BUSY_TIMEOUT_S": "0.2"},
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    err = one_line_error(r)
    assert "locked" in err and str(db_path) in err
    assert sid


def test_ids_too_large_for_sqlite(db_path):
    logged(db_path)
    r = cli("tag", str(2**70), "--label", "correct", "--db", str(db_path))
    assert "EXCHANGE_ID" in one_line_error(r, status=2)
    r = cli("sessions", "--limit", str(2**64), "--db", str(db_path))
    assert "--limit" in one_line_error(r, status=2)


def test_arguments_that_are_not_utf8():
    r = subprocess.run(
        [*map(os.fsencode, PLAYGROUND), b"ask", b"caf\xe9 \xff?"],
        capture_output=True,
        timeout=TIMEOUT_S,
        env=env(),
        stdin=subprocess.DEVNULL,
    )
    err = one_line_error(r, status=2)
    assert "not valid UTF-8" in err and "caf\ufffd" in err


# -- read-only logs -------------------------------------------------------------------------------

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.fixture
def read_only_log():
    """A log in a folder nobody may write, as a user who is not root (root writes anyway)."""
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot drop to a user chmod applies to")
    top = Path(tempfile.mkdtemp(prefix="playground-ro-"))
    folder = top / "shelf"
    folder.mkdir()
    db = folder / "log.db"
    sid = logged(db, answer="Rome\x9b31m is the capital.")
    state = top / "state"
    state.mkdir()
    state.chmod(0o777)
    db.chmod(0o444)
    folder.chmod(0o555)
    top.chmod(0o755)
    yield db, sid, state
    folder.chmod(0o755)
    shutil.rmtree(top)


def as_user(args, state: Path, **kw):
    prefix = NOBODY if os.geteuid() == 0 else []
    return subprocess.run(
        [*prefix, *args],
        capture_output=True,
        timeout=TIMEOUT_S,
        env=env(PLAYGROUND_STATE_DIR=str(state), PLAYGROUND_CACHE_DIR=str(state), HOME=str(state)),
        cwd=state,
        stdin=subprocess.DEVNULL,
        **kw,
    )


def test_a_read_only_log_can_be_listed_and_exported(read_only_log):
    db, sid, state = read_only_log
    r = as_user([*PLAYGROUND, "sessions", "--json", "--db", str(db)], state)
    assert r.returncode == 0, r.stderr.decode()
    assert [s["id"] for s in json.loads(r.stdout)] == [sid]
    r = as_user([*PLAYGROUND, "export", sid, "--db", str(db)], state)
    assert r.returncode == 0, r.stderr.decode()
    assert json.loads(r.stdout)["output_text"] == "Rome\x9b31m is the capital."
    r = as_user([*PLAYGROUND, "tag", "1", "--label", "correct", "--db", str(db)], state)
    assert "not writable" in one_line_error(r)
    out = db.parent / "out.jsonl"
    r = as_user([*PLAYGROUND, "export", sid, "--output", str(out), "--db", str(db)], state)
    assert "Permission denied" in one_line_error(r) and str(out) in r.stderr.decode()
    assert sorted(p.name for p in db.parent.iterdir()) == ["log.db"]


REPLAY_READ_ONLY = """
import asyncio, sys
from playground.cli import options as opt
from playground.tui.app import make_replay_app, ReviewApp
from pathlib import Path

async def main(db, sid):
    log = opt.open_log(Path(db), reading=True)
    app = make_replay_app(log, sid, 0.0)
    async with app.run_test() as pilot:
        for _ in range(50):
            await pilot.pause(0.1)
            text = " ".join(str(w.render()) for w in app.screen.query("*"))
            if "Rome" in text:
                print("replayed:", log.read_only)
                break
    async with ReviewApp(log, sid, False, "ann").run_test() as pilot:
        await pilot.pause(0.2)
        await pilot.press("c")
        await pilot.pause(0.2)
        notes = [n.message for n in app_notes(pilot.app)]
        print("review opened;", notes)
        print("tags:", log.query("select count(*) as n from tags")[0]["n"])

def app_notes(app):
    return list(app._notifications)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_a_read_only_log_can_be_replayed_and_reviewed(read_only_log):
    db, sid, state = read_only_log
    r = as_user([sys.executable, "-c", REPLAY_READ_ONLY, str(db), sid], state)
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert "replayed: True" in out and "review opened" in out
    assert "read-only here: tags and votes cannot be saved" in out and "tags: 0" in out


# -- the app needs a terminal --------------------------------------------------------------------


@pytest.mark.parametrize("args", [["app"], ["demo"], ["replay", "x"], ["review", "x"]])
def test_the_app_without_a_terminal_says_so(db_path, args):
    sid = logged(db_path)
    args = [sid if a == "x" else a for a in args]
    r = cli(*args, "--db", str(db_path))
    assert "needs a terminal" in one_line_error(r)
    r = cli(*args, "--db", str(db_path), input=b"\xff\xfe\x00binary")
    assert "needs a terminal" in one_line_error(r)


CRASH = """
import sys
from textual.app import App
from playground.cli.boundary import run_tui

class Crashes(App):
    def on_mount(self):
        raise RuntimeError("the lanes screen fell over")

run_tui(Crashes(), "the app")
"""


def test_a_crash_of_the_app_exits_non_zero_with_the_error():
    r = subprocess.run(
        [sys.executable, "-c", CRASH],
        capture_output=True,
        timeout=TIMEOUT_S,
        env=env(TEXTUAL_DRIVER="textual.drivers.headless_driver:HeadlessDriver"),
        stdin=subprocess.DEVNULL,
    )
    err = r.stderr.decode()
    assert r.returncode == 1
    assert "Error: the app stopped: the lanes screen fell over" in err


# -- ask's question -------------------------------------------------------------------------------


def test_ask_reads_the_question_from_a_pipe(db_path, tmp_path):
    question = "What is the capital of \x9b31mItaly?\u202e"
    r = cli(
        "ask",
        "--lanes",
        f"{tmp_path}/none.gguf:raw",
        "--json",
        "--db",
        str(db_path),
        input=question.encode(),
    )
    assert r.returncode == 1  # the lane's model is missing: an error row, the question logged
    for raw in ("\x9b", "\u202e"):
        assert raw not in r.stdout.decode()
    out = json.loads(r.stdout)
    assert out["question"] == question
    assert "model file not found" in out["lanes"][0]["error"]


def test_ask_without_a_question_on_a_terminal_shows_usage(db_path):
    main, other = pty.openpty()
    try:
        r = cli("ask", "--db", str(db_path), stdin=other)
    finally:
        os.close(main)
        os.close(other)
    err = one_line_error(r, status=2)
    assert "give a QUESTION" in err and "Usage: playground ask" in err
    assert not db_path.exists()


# -- what reaches the terminal --------------------------------------------------------------------


def test_export_jsonl_escapes_terminal_controls_and_keeps_the_text(db_path):
    answer = "Rome\x9b2J\x1b]52;c;YQ==\x07 \u202eytic\x7f"
    sid = logged(db_path, answer=answer)
    for fmt in ("jsonl", "sft"):
        r = cli("export", sid, "--format", fmt, "--db", str(db_path))
        assert r.returncode == 0, r.stderr
        text = r.stdout.decode()
        assert not any(c in text for c in "\x9b\x1b\x07\u202e\x7f")
    r = cli("export", sid, "--db", str(db_path))
    assert json.loads(r.stdout)["output_text"] == answer


def test_demo_check_shows_controls_as_text(tmp_path):
    demo = tmp_path / "osc.toml"
    demo.write_text(
        'title = "clip\\u001b]52;c;YQ==\\u0007board"\n[[step]]\nquestion = "Why\\u009b2J?"\n'
    )
    r = cli("demo", str(demo), "--check")
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in out and "\x9b" not in out and "\x07" not in out
    assert "clip␛]52;c;YQ==␇board: 1 steps" in out


def test_demo_runs_outside_the_repo_and_prefers_a_local_copy(tmp_path):
    r = cli("demo", "--check", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "7 steps" in r.stdout.decode()
    shipped = ROOT / "playground" / "data" / "demos" / "hallucination.toml"
    assert "SCIENCE.md" not in shipped.read_text()
    local = tmp_path / "sessions" / "demos" / "hallucination.toml"
    local.parent.mkdir(parents=True)
    local.write_text('title = "Our workshop"\n[[step]]\nquestion = "Who is Zyler Vance?"\n')
    r = cli("demo", "--check", cwd=tmp_path)
    assert r.stdout.decode().startswith("Our workshop: 1 steps")


# -- options checked before anything starts ------------------------------------------------------


def test_a_huge_lanes_option_is_one_short_line(db_path):
    r = cli("ask", "hi", "--lanes", "a" * 10_000 + ":raw", "--db", str(db_path))
    err = one_line_error(r)
    assert len(err) < 400


@pytest.mark.parametrize("speed", ["0", "nan", "-2", "inf", "fast"])
def test_replay_speed_must_be_positive(db_path, speed):
    sid = logged(db_path)
    r = cli("replay", sid, "--speed", speed, "--db", str(db_path))
    assert "--speed must be" in one_line_error(r)


def test_serve_checks_its_demo_first(tmp_path):
    r = cli("serve", "--demo", str(tmp_path / "missing.toml"), "--port", "1")
    assert "demo file not found" in one_line_error(r)


def test_rerun_and_agreement_refuse_what_does_not_exist(db_path):
    sid = logged(db_path)
    r = cli("rerun", sid, "--lanes", "nope:raw", "--db", str(db_path))
    assert "unknown model 'nope'" in one_line_error(r)
    r = cli("agreement", "--session", "nope", "--db", str(db_path))
    assert "no session 'nope'" in one_line_error(r)


def test_ask_tables_keep_lane_specs_and_model_ids_whole(db_path):
    script = textwrap.dedent(
        """
        import sys
        from rich.console import Console
        from playground.cli.ask import LiveColumns
        from playground.core.catalog import Catalog
        from playground.core.db import SessionLog
        from playground.core.lanespec import parse_lanes
        from playground.core.playground import Playground

        lanes = "base:few-shot+abstain@0.75,tuned:chat+abstain@0.75,smollm2-135m-instruct:chat+search-first,tuned:chat"
        pg = Playground(Catalog.load(), parse_lanes(lanes), SessionLog(sys.argv[1]))
        Console(width=80).print(LiveColumns(pg, "Who is Zyler Vance?").render())
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", script, str(db_path)],
        capture_output=True,
        timeout=TIMEOUT_S,
        env=env(),
    )
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr
    lines = out.splitlines()
    top = next(line for line in lines if "╭" in line)
    starts = [i for i, c in enumerate(top) if c == "╭"]
    assert len(starts) == 4
    panels = [  # each panel's text, its lines read in turn
        "".join(line[i + 1 : top.index("╮", i)].strip() for line in lines) for i in starts
    ]
    assert "tuned:chat+abstain@0.75" in panels[1]
    assert "smollm2-135m-instruct:chat+search-first" in panels[2]
    assert "smollm2-135m-instruct" in panels[3] and "(instruction-following)" in panels[3]


def test_the_package_ships_its_data_files():
    """An installed playground (not this checkout) has the demo and the fact tables too."""
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["playground"]
    package = ROOT / "playground"
    shipped = {p for pattern in patterns for p in package.glob(pattern) if p.is_file()}
    data = {
        p for p in (package / "data").rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }
    assert data and data <= shipped, sorted(str(p) for p in data - shipped)


# -- what the adversarial suite's full run on the merged branches still found ---------------------


def test_a_database_of_another_program_is_refused_and_left_as_it_was(tmp_path):
    db = tmp_path / "other.db"
    c = sqlite3.connect(db)
    c.execute("create table exchanges (x text)")
    c.execute("insert into exchanges values ('someone else')")
    c.execute("PRAGMA user_version = 2")
    c.commit()
    c.close()
    for args in (["sessions"], ["export", "--all", "--format", "jsonl"], ["report"]):
        err = one_line_error(cli(*args, "--db", str(db)))
        assert "not a playground session log" in err and str(db) in err, err
    c = sqlite3.connect(db)
    assert c.execute("select x from exchanges").fetchall() == [("someone else",)]
    assert c.execute("PRAGMA user_version").fetchone()[0] == 2


def test_a_catalog_value_of_the_wrong_type_is_named(tmp_path):
    (tmp_path / "models.toml").write_text(
        '[[model]]\nid = "x"\nkind = "base"\nfile = 5\n', encoding="utf-8"
    )
    err = one_line_error(cli("models", "--models-dir", str(tmp_path)))
    assert "file must be a text value, not 5" in err, err


def test_thousands_of_lanes_are_refused_at_once():
    err = one_line_error(cli("ask", "--lanes", ",".join(["base:raw"] * 2500), "q"))
    assert "2500 lanes given: at most 16" in err, err


def test_a_top_k_beyond_any_vocabulary_is_refused():
    err = one_line_error(cli("ask", "--lanes", "base:raw", "--top-k", str(2**70), "q"))
    assert "top-k must be a whole number from 0" in err, err


def test_a_question_piped_in_that_is_not_utf8_is_refused():
    err = one_line_error(cli("ask", "--lanes", "base:raw", input=b"Who is \xff\xfe?\n"))
    assert "standard input is not UTF-8 text (byte 7)" in err, err
