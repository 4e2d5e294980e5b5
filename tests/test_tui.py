"""The app driven by Textual's pilot, on the real default models."""

import sqlite3
import time

import pytest
from rich.style import Style

from playground.core.config import Config
from playground.core.engine import Sampling
from playground.tui.app import make_app
from playground.tui.screens.help import HelpScreen
from playground.tui.screens.inspector import InspectorScreen
from playground.tui.widgets.lane import LaneView

pytestmark = pytest.mark.slow  # every test here loads the default models

TIMEOUT_S = 120


async def wait_for(pilot, condition, what, timeout=TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)
    await pilot.pause(0.15)  # let the 20 Hz pump repaint


async def ready(pilot):
    app = pilot.app
    await wait_for(
        pilot,
        lambda: all(
            v.load_state.startswith(("ready", "Not ready")) for v in app.main.views.values()
        ),
        "models to load",
    )


async def idle(pilot):
    await wait_for(pilot, lambda: not pilot.app.main.running, "the lanes to finish")


async def ask(pilot, question):
    box = pilot.app.query_one("#input")
    box.focus()
    box.load_text(question)
    await pilot.press("enter")
    await pilot.pause(0.1)
    await idle(pilot)


def text_of(view: LaneView) -> str:
    return view.conversation_text()


def header_of(view: LaneView) -> str:
    return view.query_one("#lane-header").content.plain


def app_for(db_path, lanes="base:few-shot,tuned:chat", max_tokens=24):
    return make_app(lanes, db_path, sampling=Sampling(max_tokens=max_tokens), config=Config())


def rows(db_path, sql):
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_send_to_all_lanes_and_tag(db_path):
    app = app_for(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        views = list(app.main.views.values())
        assert "Gemma 3" in header_of(views[0]) and "base" in header_of(views[0])
        assert "SmolLM2" in header_of(views[1]) and "tuned" in header_of(views[1])
        assert "families differ" in app.query_one("#status").content.plain
        await ask(pilot, "Who is Zyler Vance?")
        for view in views:
            assert view.current.status == "complete"
            assert "Zyler" in text_of(view)
        assert "tok/s" in views[1].query_one("#lane-status").content.plain
        # Tag the tuned lane's answer: focus it (Tab twice from the input) and press h.
        views[1].focus()
        await pilot.press("h")
        await pilot.pause(0.1)
        assert "hallucination" in text_of(views[1])
    ex = rows(db_path, "select id, status, lane from exchanges order by lane_index")
    assert [r["status"] for r in ex] == ["complete", "complete"]
    tags = rows(db_path, "select exchange_id, label, tagger from tags")
    assert (
        len(tags) == 1
        and tags[0]["label"] == "hallucination"
        and tags[0]["exchange_id"] == ex[1]["id"]
    )


async def test_cancel_keeps_the_partial_answer(db_path):
    app = app_for(db_path, lanes="base:raw,tuned:raw", max_tokens=2000)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        app.query_one("#input").load_text("Once upon a time")
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: all(len(v.current.tokens) > 5 for v in app.main.views.values()),
            "streaming",
        )
        await pilot.press("escape")
        await idle(pilot)
        for view in app.main.views.values():
            assert view.current.status == "cancelled"
            assert "[cancelled]" in text_of(view)
            assert len(view.current.text) > 5
    ex = rows(db_path, "select status, length(output_text) as n from exchanges")
    assert all(r["status"] == "cancelled" and r["n"] > 5 for r in ex)


async def test_switch_mode_and_abstention(db_path):
    app = app_for(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        base, tuned = app.main.views.values()
        tuned.focus()
        await pilot.press("a")  # abstention on, T = 0.75
        await ready(pilot)
        assert "abstain T=0.75 (wrong costs 3)" in header_of(tuned)
        base.focus()
        await pilot.press("m")  # few-shot -> chat: Gemma 3 270M has no chat template
        await ready(pilot)
        assert app.main.pg.lanes[0].spec.mode == "chat"
        assert "no chat template" in text_of(base)
        await ask(pilot, "Who won the 1966 FIFA World Cup?")
        assert base.current.status == "error" and "few-shot" in text_of(base)
        assert tuned.current.status == "complete"
    ex = rows(
        db_path, "select lane, abstain_t, prompt_text, status from exchanges order by lane_index"
    )
    assert ex[0]["status"] == "error" and ex[0]["lane"] == "base:chat"
    assert ex[1]["abstain_t"] == 0.75 and "costs 3 points" in ex[1]["prompt_text"]


async def test_inspector_shows_the_chat_template_special_tokens(db_path):
    app = app_for(db_path, max_tokens=8)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await ask(pilot, "What is 2+2?")
        list(app.main.views.values())[1].focus()
        await pilot.press("i")
        await pilot.pause(0.2)
        assert isinstance(app.screen, InspectorScreen)
        shown = app.screen.query_one("#inspector-text").content
        special = app.screen.get_component_rich_style("inspector--special", partial=True)
        assert special.bgcolor is not None  # a theme colour (app.tcss), not a hard-coded one
        specials = {
            shown.plain[s.start : s.end]
            for s in shown.spans
            if isinstance(s.style, Style) and s.style.bgcolor == special.bgcolor
        }
        assert specials == {"<|im_start|>", "<|im_end|>"}
        assert "What is 2+2?" in shown.plain
        summary = app.screen.query_one(".title").content.plain
        assert "5 special" in summary and "from the KV cache" in summary
        await pilot.press("escape")
        assert not isinstance(app.screen, InspectorScreen)


async def test_inspector_shows_emoji_and_cjk_whole(db_path):
    """Byte tokens that spell one character together show it once, not one '�' per token."""
    app = app_for(db_path, lanes="tuned:chat", max_tokens=2)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await ask(pilot, "Is 🦙 a 日本 word?")
        view = next(iter(app.main.views.values()))
        prompt = view.current.prompt
        model = app.main.pg.lanes[0].model
        assert any("\ufffd" in model.piece_text(t) for t in prompt.token_ids)  # split characters
        view.focus()
        await pilot.press("i")
        await pilot.pause(0.2)
        assert isinstance(app.screen, InspectorScreen)
        shown = app.screen.query_one("#inspector-text").content.plain
        assert "Is 🦙 a 日本 word?" in shown and "\ufffd" not in shown


async def test_broken_model_lane_while_the_other_answers(db_path, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 10)
    app = app_for(db_path, lanes=f"{broken}:raw,tuned:chat")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        bad, good = app.main.views.values()
        assert "truncated" in text_of(bad)
        await ask(pilot, "What is the capital of France?")
        assert bad.current.status == "error" and good.current.status == "complete"
        assert len(good.current.text.strip()) > 3


async def test_markup_in_questions_and_answers_is_shown_literally(db_path):
    app = app_for(db_path, lanes="tuned:raw", max_tokens=4)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        q = "[bold red]alarm[/bold red] [link=https://example.com]x[/link] [/]"
        await ask(pilot, q)
        view = next(iter(app.main.views.values()))
        assert q in text_of(view)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)


async def test_token_view_and_keyboard_cursor(db_path):
    app = app_for(db_path, lanes="tuned:chat", max_tokens=12)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await ask(pilot, "What is the capital of France?")
        view = next(iter(app.main.views.values()))
        view.focus()
        await pilot.press("v", "left", "left")
        await pilot.pause(0.1)
        n = len(view.current.tokens)
        assert view.cursor == n - 3
        detail = view.query_one("#lane-detail").content.plain
        assert f"token {n - 2}/{n}" in detail and "%" in detail


async def test_regenerate_keeps_both_versions(db_path):
    app = app_for(db_path, lanes="tuned:chat", max_tokens=8)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await ask(pilot, "Name a colour.")
        await pilot.press("ctrl+r")
        await pilot.pause(0.1)
        await idle(pilot)
    ex = rows(db_path, "select id, parent_id, turn, question from exchanges order by id")
    assert len(ex) == 2 and ex[1]["parent_id"] == ex[0]["id"] and ex[0]["turn"] == ex[1]["turn"]


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
async def test_layout_fits(db_path, size):
    app = app_for(db_path, lanes="base:few-shot,tuned:chat,tuned:chat+abstain@0.9")
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        lanes = app.query_one("#lanes")
        assert lanes.has_class("grid") == (size[0] == 80) and not lanes.has_class("stacked")
        for view in app.main.views.values():
            assert view.region.width >= 20 and view.region.height >= 5


async def test_keys_from_the_config_file_and_input_history(db_path, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[user]\ntagger = "ada"\n[keys]\n"lane.mode" = "f6"\n')
    app = make_app("tuned:chat", db_path, sampling=Sampling(max_tokens=4), config=Config.load(cfg))
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await ask(pilot, "first question")
        await ask(pilot, "second question")
        box = app.query_one("#input")
        box.focus()
        await pilot.press("up")
        assert box.text == "second question"
        await pilot.press("up")
        assert box.text == "first question"
        await pilot.press("down", "down")
        assert box.text == ""
        await pilot.press("a", "ctrl+j", "b")
        assert box.text == "a\nb"
        view = next(iter(app.main.views.values()))
        view.focus()
        await pilot.press("f6")  # rebound from m
        assert app.main.pg.lanes[0].spec.mode == "raw"
        await pilot.press("d")
        await pilot.pause(0.1)
    assert rows(db_path, "select tagger, label from tags")[0]["tagger"] == "ada"


async def test_settings_form_validates_and_applies(db_path):
    app = app_for(db_path, lanes="tuned:chat")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        next(iter(app.main.views.values())).focus()
        await pilot.press("s")
        await pilot.pause(0.2)
        form = app.screen
        form.query_one("#temperature").value = "hot"
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        assert (
            "Temperature: 'hot' is not a valid number"
            in form.query_one("#form-error").content.plain
        )
        form.query_one("#temperature").value = "0.7"
        form.query_one("#seed").value = "42"
        form.query_one("#abstain").value = "0.9"
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        lane = app.main.pg.lanes[0]
        assert (
            lane.sampling.temperature == 0.7
            and lane.sampling.seed == 42
            and lane.spec.abstain == 0.9
        )
        await ask(pilot, "Who is Zyler Vance?")
    ex = rows(db_path, "select temperature, seed, abstain_t from exchanges")[0]
    assert (ex["temperature"], ex["seed"], ex["abstain_t"]) == (0.7, 42, 0.9)


async def test_search_shows_in_the_lane_and_expands(db_path, tmp_path):
    app = make_app(
        "tuned:chat+search-first",
        db_path,
        sampling=Sampling(max_tokens=24),
        config=Config(),
        corpus_path=tmp_path / "c.sqlite",
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        view = next(iter(app.main.views.values()))
        assert "search first" in header_of(view)
        await ask(pilot, "What is the capital of Mongolia?")
        text = text_of(view)
        assert "» searched first: What is the capital of Mongolia?" in text and "3 results" in text
        assert "Ulaanbaatar is" not in text.split("results")[1].split("\n")[0]  # collapsed
        view.focus()
        await pilot.press("e")
        assert "[1] Mongolia (playground encyclopedia)" in text_of(view)
        await pilot.press("f")  # search off for the next message
        assert app.main.pg.lanes[0].spec.search is None


async def test_lab_screen_opens_logged_answers_in_the_lanes(db_path, catalog, pool):
    from playground.core.db import SessionLog
    from playground.core.lab.probes import load_set
    from playground.core.lab.runner import run_probes, start_run
    from playground.core.lanespec import parse_lanes
    from playground.core.playground import Playground
    from playground.tui.screens.lab import LabScreen

    log = SessionLog(db_path)
    lanes = parse_lanes("base:few-shot,tuned:chat")
    run = start_run(log, "facts", 0, [s.text for s in lanes], 0, 2, 16, {})
    run_probes(
        Playground(catalog, lanes, log, pool=pool),
        log,
        run,
        load_set("facts")[:2],
        0,
        16,
        ptrue=False,
    )
    logged = {
        r["lane"]: r for r in log.db.query("select * from probe_items where probe_id = 'fact-0'")
    }
    app = app_for(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("f4")
        await pilot.pause(0.3)
        assert isinstance(app.screen, LabScreen)
        assert "Probe run" in app.screen.query_one(".title").content.plain
        await pilot.press("enter")
        await pilot.pause(0.3)
        base, tuned = app.main.views.values()
        for view, lane in ((base, "base:few-shot"), (tuned, "tuned:chat")):
            assert view.current.question == "What is the capital of France?"
            assert view.current.text.strip() == logged[lane]["text"].strip()
            assert len(view.current.tokens) > 0 and view.current.status == "complete"
            assert f"logged answer #{logged[lane]['exchange_id']}" in text_of(view)
        tuned.focus()
        await pilot.press("i")
        await pilot.pause(0.2)
        assert isinstance(app.screen, InspectorScreen)


async def test_colours_come_from_the_theme(db_path):
    """A light theme repaints the lanes (finished answers included) in its own colours."""
    app = app_for(db_path, max_tokens=4)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await ask(pilot, "Name a colour.")
        base, tuned = app.main.views.values()
        tuned.focus()
        await pilot.press("h")
        await pilot.pause(0.2)

        def colours():
            answer = tuned.query(".lane-answer").first().content
            header = base.query_one("#lane-header").content
            question = answer.spans[0].style  # "You: "
            tag = next(
                s.style for s in answer.spans if "hallucination" in answer.plain[s.start : s.end]
            )
            kind = next(s.style for s in header.spans if header.plain[s.start : s.end] == "base")
            return question.color, tag.bgcolor, kind.color

        dark = colours()
        assert dark[0] == tuned.get_component_rich_style("lane--question", partial=True).color
        app.theme = "textual-light"
        await pilot.pause(0.3)
        light = colours()
        assert all(a != b for a, b in zip(dark, light, strict=True)), (dark, light)
        assert light[0] == tuned.get_component_rich_style("lane--question", partial=True).color


async def test_move_and_remove_lanes_with_their_keys(db_path):
    app = app_for(db_path, lanes="base:few-shot,tuned:chat,tuned:raw")
    async with app.run_test(size=(150, 40)) as pilot:
        await ready(pilot)
        first = app.main.views[app.main.pg.lanes[0].key]
        first.focus()
        await pilot.press("greater_than_sign")  # move right
        await pilot.pause(0.2)
        assert [lane.spec.text for lane in app.main.pg.lanes] == [
            "tuned:chat",
            "base:few-shot",
            "tuned:raw",
        ]
        assert list(app.query_one("#lanes").children).index(first) == 1
        assert header_of(first).startswith("2 ")
        await pilot.press("delete", "y")  # removing a lane asks first
        await pilot.pause(0.2)
        assert [lane.spec.text for lane in app.main.pg.lanes] == ["tuned:chat", "tuned:raw"]
        assert first not in app.main.views.values() and len(app.query(LaneView)) == 2
        assert header_of(list(app.main.views.values())[1]).startswith("2 ")
