"""`playground ask`, `models`, `sessions` as a user runs them, including every bad input."""

import hashlib
import json
import sqlite3

import pytest
from click.testing import CliRunner

from playground.cli import cli


def run(*args, db=None):
    argv = list(args)
    if db is not None:
        argv += ["--db", str(db)]
    result = CliRunner().invoke(cli, argv, catch_exceptions=True)
    assert "Traceback" not in result.output
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.mark.slow
def test_ask_json_logs_everything(db_path, catalog):
    r = run("ask", "Who is Zyler Vance?", "--max-tokens", "24", "--json", db=db_path)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [lane["lane"] for lane in out["lanes"]] == ["base:few-shot", "tuned:chat"]
    for lane in out["lanes"]:
        assert lane["status"] == "complete"
        assert lane["text"].strip()
        assert lane["completion_tokens"] > 0 and lane["tokens_per_second"] > 0
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    rows = conn.execute("select * from exchanges order by lane_index").fetchall()
    assert len(rows) == 2
    tuned = rows[1]
    path = catalog.resolve("tuned").path()
    assert tuned["model_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert tuned["session_id"] == out["session_id"]
    assert tuned["prompt_text"].startswith("<|im_start|>system")
    ids = json.loads(tuned["prompt_token_ids"])
    assert len(ids) == tuned["prompt_tokens"] == len(json.loads(tuned["prompt_special"]))
    assert tuned["temperature"] == 0 and tuned["max_tokens"] == 24
    assert tuned["output_text"] == out["lanes"][1]["text"]
    n = conn.execute(
        "select count(*) from tokens where exchange_id = ?", (tuned["id"],)
    ).fetchone()[0]
    assert n == tuned["completion_tokens"]
    top = json.loads(
        conn.execute(
            "select top from tokens where exchange_id = ? limit 1", (tuned["id"],)
        ).fetchone()[0]
    )
    assert len(top) == 5 and all(len(a) == 3 for a in top)
    sessions = run("sessions", "--json", db=db_path)
    assert json.loads(sessions.stdout)[0]["id"] == out["session_id"]


@pytest.mark.slow
def test_ask_live_view_says_families_differ(db_path):
    r = run("ask", "What is 2+2?", "--max-tokens", "12", db=db_path)
    assert r.exit_code == 0
    assert "different families" in r.output
    assert "Gemma 3" in r.output and "SmolLM2" in r.output
    assert "base (pretrained)" in r.output


@pytest.mark.slow
def test_one_broken_lane_does_not_stop_the_other(db_path):
    r = run(
        "ask",
        "What is 2+2?",
        "--lanes",
        "base:chat,tuned:chat",
        "--max-tokens",
        "12",
        "--json",
        db=db_path,
    )
    assert r.exit_code == 1
    lanes = json.loads(r.stdout)["lanes"]
    assert lanes[0]["status"] == "error" and "few-shot" in lanes[0]["error"]
    assert lanes[1]["status"] == "complete"
    conn = sqlite3.connect(db_path)
    assert (
        conn.execute("select status from exchanges where lane = 'base:chat'").fetchone()[0]
        == "error"
    )


@pytest.mark.parametrize(
    "lanes,message",
    [
        ("base", "write MODEL:MODE"),
        ("base:chatty", "unknown mode 'chatty'"),
        ("tuned:chat+abstain@1.5", "between 0 and 1"),
        ("tuned:chat+abstain@0", "between 0 and 1"),
        ("tuned:chat+abstain@x", "'x' is not a number"),
        ("tuned:chat+abstain", "needs a confidence target"),
        ("tuned:chat+turbo", "unknown option 'turbo'"),
        ("gpt5:chat", "unknown model 'gpt5'"),
    ],
)
def test_bad_lane_specs(db_path, lanes, message):
    r = run("ask", "hi", "--lanes", lanes, db=db_path)
    assert r.exit_code != 0
    assert message in r.output


def _lane_error(db_path, spec):
    r = run("ask", "hi", "--lanes", spec, "--max-tokens", "4", "--json", db=db_path)
    assert r.exit_code == 1
    return json.loads(r.stdout)["lanes"][0]["error"]


def test_missing_model_file(db_path, tmp_path):
    assert "model file not found" in _lane_error(db_path, f"{tmp_path}/nope.gguf:raw")


def test_model_that_is_not_gguf(db_path, tmp_path):
    p = tmp_path / "notes.gguf"
    p.write_text("hello")
    assert "not a GGUF model file" in _lane_error(db_path, f"{p}:raw")


def test_truncated_model(db_path, tmp_path, smollm2_path):
    p = tmp_path / "half.gguf"
    p.write_bytes(smollm2_path.read_bytes()[:30_000_000])
    assert "truncated" in _lane_error(db_path, f"{p}:raw")


def test_directory_as_model(db_path, tmp_path):
    assert "is a directory" in _lane_error(db_path, f"{tmp_path}:raw")


def test_base_override_with_missing_file(db_path, tmp_path):
    r = run(
        "ask",
        "hi",
        "--base",
        str(tmp_path / "x.gguf"),
        "--lanes",
        "base:raw",
        "--max-tokens",
        "4",
        db=db_path,
    )
    assert r.exit_code == 1 and "model file not found" in r.output


@pytest.mark.slow
def test_question_longer_than_context(db_path):
    r = run(
        "ask", "word " * 6000, "--lanes", "tuned:chat", "--max-tokens", "4", "--json", db=db_path
    )
    err = json.loads(r.stdout)["lanes"][0]["error"]
    assert r.exit_code == 1 and "too many" in err and "4,096" in err


def test_empty_question(db_path):
    r = run("ask", "   ", db=db_path)
    assert r.exit_code == 1 and "empty" in r.output


def test_corrupt_database(tmp_path):
    p = tmp_path / "x.db"
    p.write_bytes(b"garbage" * 100)
    r = run("ask", "hi", db=p)
    assert r.exit_code == 1 and "not a SQLite database" in r.output
    assert p.read_bytes() == b"garbage" * 100


def test_unwritable_database():
    r = run("ask", "hi", db="/proc/self/x.db")
    assert r.exit_code == 1 and "session database" in r.output


def test_models_lists_the_catalog():
    r = run("models", "--json")
    rows = {row["id"]: row for row in json.loads(r.stdout)}
    assert (
        rows["gemma3-270m"]["status"] == "found" and rows["gemma3-270m"]["chat_template"] is False
    )
    assert (
        rows["gemma3-270m"]["quantization"] == "Q4_K_M" and rows["gemma3-270m"]["default"] == "base"
    )
    assert rows["smollm2-135m-instruct"]["chat_template"] is True
    assert rows["smollm2-135m-instruct"]["family"].startswith("SmolLM2")


def test_sessions_without_database(tmp_path):
    r = run("sessions", db=tmp_path / "none.db")
    assert r.exit_code == 1 and "no session database" in r.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["export"], "give a SESSION id or --all"),
        (["replay", "abc", "--speed", "fast"], "--speed must be a number"),
        (["rerun", "abc"], "no session database"),
        (["report"], "run `playground probe` first"),
        (["probe", "--set", "no-such-set.csv"], "no-such-set.csv"),
        (["validity", "--lanes", "gpt5:chat"], "unknown model 'gpt5'"),
        (["interrogate", "--lane", "gpt5:chat"], "unknown model 'gpt5'"),
        (["demo", "no-such-demo.toml", "--check"], "no-such-demo.toml"),
        (["app", "--lanes", "base"], "write MODEL:MODE"),
    ],
)
def test_every_area_fails_with_one_line(tmp_path, monkeypatch, args, message):
    """PlaygroundGroup turns a PlaygroundError of any command, in any module, into one line."""
    monkeypatch.chdir(tmp_path)
    r = run(*args, db=tmp_path / "s.db")
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: ") and message in r.output
    assert len(r.output.strip().splitlines()) == 1


def _logged(db_path):
    from playground.core.db import SessionLog

    log = SessionLog(db_path)
    sid = log.new_session(["base:few-shot", "tuned:chat"])
    ids = [
        log.start_exchange(
            session_id=sid,
            turn=0,
            lane_index=i,
            lane=lane,
            model_id=model,
            question="Capital of Italy?",
            output_text=answer,
        )
        for i, (lane, model, answer) in enumerate(
            [("base:few-shot", "gemma", "Rome."), ("tuned:chat", "smollm", "Milan.")]
        )
    ]
    log.close()
    return sid, ids


def test_session_commands_without_a_model(db_path, tmp_path):
    sid, ids = _logged(db_path)
    assert json.loads(run("sessions", "--json", db=db_path).stdout)[0]["id"] == sid
    r = run("tag", str(ids[1]), "--label", "hallucination", "--tagger", "ann", db=db_path)
    assert r.exit_code == 0 and f"exchange {ids[1]} is hallucination" in r.output
    r = run("tag", str(ids[1]), "--label", "wrong", db=db_path)
    assert r.exit_code == 2 and "'wrong' is not one of" in r.output
    assert run("sessions", "--mode", "chatty", db=db_path).exit_code == 2
    out = tmp_path / "out" / "s.md"
    r = run("export", sid[:5], "--format", "markdown", "--output", str(out), db=db_path)
    assert r.exit_code == 0 and out.read_text().startswith(f"# Session {sid}")
    r = run("export", "--all", "--tag", "hallucination", db=db_path)
    assert [json.loads(x)["id"] for x in r.stdout.splitlines()] == [ids[1]]
    r = run("agreement", db=db_path)
    assert "fewer than two taggers" in r.output


def test_corpus_search_json():
    r = run("corpus", "search", "Eiffel Tower", "--json")
    assert r.exit_code == 0, r.output
    assert isinstance(json.loads(r.stdout), list)


def test_the_console_script_runs_as_a_module():
    import subprocess

    from .conftest import PLAYGROUND

    r = subprocess.run([*PLAYGROUND, "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for name in ("ask", "export", "probe", "corpus", "doctor", "browse"):
        assert f"  {name} " in r.stdout


# Every command and flag users and scripts type; the CLI's modules may move, these may not.
COMMANDS_AND_FLAGS = {
    "": "--base --corpus --db --gpu-layers --lanes --max-tokens --models-dir --search-backend --seed --temperature --tuned --verbose --version",
    "agreement": "--db --session",
    "app": "--base --corpus --db --gpu-layers --lanes --max-tokens --models-dir --search-backend --seed --temperature --tuned",
    "ask": "--base --corpus --db --gpu-layers --json --lanes --max-tokens --models-dir --prefill --search-backend --seed --stop --temperature --top-k --top-p --tuned",
    "browse": "--db --port",
    "corpus": "",
    "corpus add": "--corpus",
    "corpus search": "--corpus --json",
    "demo": "--check --corpus --db --models-dir",
    "doctor": "--base --gpu-layers --json --models-dir --tuned",
    "export": "--all --db --force --format --model --output --tag",
    "grade": "--json",
    "interrogate": "--base --corpus --db --docs --gpu-layers --json --lane --limit --max-tokens --models-dir --output --samples --seed --temperature --top-k --top-p --tuned",
    "models": "--base --gpu-layers --json --models-dir --tuned",
    "probe": "--base --corpus --db --gpu-layers --judge --lanes --limit --max-tokens --models-dir --no-ptrue --ptrue --resume --samples --search-backend --seed --set --targets --tuned",
    "replay": "--db --speed --step",
    "report": "--db --json --output --signal",
    "rerun": "--base --db --gpu-layers --json --lanes --max-tokens --models-dir --tuned",
    "review": "--blind --db --tagger",
    "serve": "--db --demo --host --port --public",
    "sessions": "--db --json --limit --mode --model --search --tag",
    "tag": "--db --label --note --tagger",
    "validity": "--base --db --gpu-layers --invented --json --lanes --limit --max-tokens --models-dir --seed --set --tuned",
}


def test_every_command_and_flag_is_still_there():
    import click

    found = {}

    def walk(cmd, path):
        flags = [o for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")]
        found[" ".join(path)] = " ".join(sorted(flags))
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])

    walk(cli, [])
    assert found == COMMANDS_AND_FLAGS


def test_choices_come_from_core():
    from playground.core.db import LABELS
    from playground.core.export import FORMATS
    from playground.core.lab.report import SIGNALS
    from playground.core.prompts import MODES

    def choices(command, name):
        return tuple(next(p for p in cli.commands[command].params if p.name == name).type.choices)

    assert choices("tag", "label") == LABELS
    assert choices("sessions", "mode") == MODES
    assert choices("export", "fmt") == FORMATS
    assert choices("report", "signal") == tuple(SIGNALS)


@pytest.mark.slow
def test_validity_rows_per_lane(db_path):
    r = run(
        "validity", "--limit", "1", "--invented", "1", "--max-tokens", "8", "--json", db=db_path
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    rows = data["lanes"]
    assert [(x["lane"], x["kind"]) for x in rows] == [
        ("base:few-shot", "base"),
        ("tuned:chat", "tuned"),
    ]
    # half true, half false: one fact's true statement, and one false one (the invented claim)
    assert data["statements"] == {"true": 1, "false": 1}
    assert data["command"].startswith("playground validity --set facts") and data["seed"] == 0
    assert "cannot test whether post-training" in data["families_note"]
    for x in rows:
        assert x["statements"] == 2 and len(x["sha256"]) == 64
        assert 0 <= x["iiv_error"] <= 1 and x["two_times_error"] == 2 * x["iiv_error"]
        assert x["hallucination_rate"] in (0, 0.5, 1)
