"""Keys that can't surprise (issue 13 §4, §6), on the real app with lanes that load no model.

`NoModelLanes` is the real lanes screen whose lanes say they are ready without loading anything:
focus, Tab stops, forms, confirmations and the status line need no model. The sessions screen and
the replay read a session written by the real recorder.
"""

import math
import types

from playground.core.catalog import Catalog
from playground.core.config import Config
from playground.core.db import ExchangeRecorder, SessionLog
from playground.core.events import Finished, ModelLoaded, PromptReady, Token
from playground.core.lanespec import parse_lanes
from playground.core.playground import Playground
from playground.tui.app import PlaygroundApp, make_replay_app
from playground.tui.screens.forms import Confirm, LaneSettingsScreen
from playground.tui.screens.inspector import InspectorScreen
from playground.tui.screens.lanes import LanesScreen
from playground.tui.screens.sessions import SessionsScreen
from playground.tui.widgets.lane import LaneView
from playground.tui.widgets.prompt_input import PromptInput

FAMILIES = {"base": "Gemma 3 (Google)", "tuned": "SmolLM2 (Hugging Face)"}


class NoModelLanes(LanesScreen):
    """The lanes screen; a lane is 'loaded' at once, with a stand-in that only has a family."""

    def _load(self, lane):
        lane.model = types.SimpleNamespace(family=FAMILIES.get(lane.spec.model, "Other"), info=None)
        self.events.append(ModelLoaded(lane.key, lane.spec.model, 0.0))


def lanes_app(db_path, lanes="base:few-shot,tuned:chat"):
    pg = Playground(Catalog.load(), parse_lanes(lanes), SessionLog(db_path))
    return PlaygroundApp(NoModelLanes(pg), Config())


def record_session(db_path, question="Who is Zyler Vance?", lanes=("base:few-shot", "tuned:chat")):
    """A logged session with one turn, written by the real recorder (no model)."""
    log = SessionLog(db_path)
    sid = log.new_session(list(lanes))
    for i, lane in enumerate(lanes):
        fields = {"session_id": sid, "turn": 0, "lane_index": i, "lane": lane}
        rec = ExchangeRecorder(log, {**fields, "question": question})
        for ev in [
            PromptReady("l", rec.id, question, [1, 2], [False, False], 2, 0),
            Token("l", 0, 7, "Zyler", "Zyler", math.log(0.5), [], 0.01),
            Token("l", 1, 8, " is", " is", math.log(0.9), [], 0.02),
            Finished("l", rec.id, "complete", "stop", "Zyler is"),
        ]:
            rec(ev)
    return sid


async def loaded(pilot):
    app = pilot.app
    for _ in range(50):
        await pilot.pause(0.05)
        if all(v.load_state.startswith("ready") for v in app.main.views.values()):
            return
    raise AssertionError("the lanes never said ready")


def status(app) -> str:
    return app.main.query_one("#status").content.plain


def notices(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_one_tab_stop_per_lane_and_letters_go_to_the_question(db_path):
    app = lanes_app(db_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        first, second = app.main.views.values()
        for i in range(40):  # more than the lane shows: its body scrolls
            first.note(f"line {i}")
        await pilot.pause(0.2)
        assert first.query_one(".lane-body").max_scroll_y > 0
        # From the question box: Tab reaches lane 1, then lane 2, then the box again.
        stops = []
        for _ in range(3):
            await pilot.press("tab")
            stops.append(app.focused)
        assert stops == [first, second, app.query_one(PromptInput)]
        await pilot.press("tab")
        assert app.focused is first
        assert "lane 1 (base:few-shot) has the keys" in status(app)
        # A question typed into the focused lane goes to the question box, whole.
        await pilot.press(*"What", "space", "i", "s", "space", "2", "plus", "2", "question_mark")
        await pilot.pause(0.1)
        box = app.query_one(PromptInput)
        assert box.text == "What is 2+2?" and app.focused is box
        assert [lane.spec.text for lane in app.main.pg.lanes] == ["base:few-shot", "tuned:chat"]
        assert not isinstance(app.screen, InspectorScreen)
        assert "has the keys" not in status(app)
        # A lane key still acts on the focused lane.
        second.focus()
        await pilot.press("a")
        await pilot.pause(0.1)
        assert app.main.pg.lanes[1].spec.abstain == 0.75 and box.text == "What is 2+2?"


async def test_copy_with_nothing_to_copy_says_so(db_path):
    app = lanes_app(db_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        next(iter(app.main.views.values())).focus()
        await pilot.press("y")
        await pilot.pause(0.1)
        assert any("Nothing to copy" in n for n in notices(app))


async def test_removing_a_lane_asks_first_and_the_status_line_follows(db_path):
    app = lanes_app(db_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        assert "families differ: Gemma 3 vs SmolLM2" in status(app)
        second = list(app.main.views.values())[1]
        second.focus()
        await pilot.press("delete")
        await pilot.pause(0.1)
        assert isinstance(app.screen, Confirm) and "Remove lane 2" in str(app.screen.question)
        await pilot.press("n")
        await pilot.pause(0.1)
        assert len(app.main.pg.lanes) == 2 and not isinstance(app.screen, Confirm)
        second.focus()
        await pilot.press("delete", "y")
        await pilot.pause(0.2)
        assert [lane.spec.text for lane in app.main.pg.lanes] == ["base:few-shot"]
        assert "families differ" not in status(app)
        assert app.focused is not None and app.focused.is_attached


async def test_the_settings_form_shows_every_error_and_bounds_max_tokens(db_path):
    app = lanes_app(db_path, lanes="tuned:chat")
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        next(iter(app.main.views.values())).focus()
        await pilot.press("s")
        await pilot.pause(0.2)
        form = app.screen
        assert isinstance(form, LaneSettingsScreen)
        form.query_one("#temperature").value = "hot"
        form.query_one("#max_tokens").value = "99999999"
        form.query_one("#seed").value = "-3"
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        shown = form.query_one("#form-error").content.plain
        assert "Temperature: 'hot' is not a valid number" in shown
        assert "Max tokens" in shown and "context window is 4,096 tokens" in shown
        assert "Seed: -3 is below 0" in shown
        assert app.screen is form  # nothing applied
        form.query_one("#temperature").value = "0.5"
        form.query_one("#max_tokens").value = "4095"
        form.query_one("#seed").value = ""
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert app.main.pg.lanes[0].sampling.max_tokens == 4095


async def test_sessions_opens_in_the_search_box_and_rerun_asks_first(db_path):
    sid = record_session(db_path)
    app = lanes_app(db_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        await pilot.press("f5")
        await pilot.pause(0.3)
        screen = app.screen
        assert isinstance(screen, SessionsScreen)
        assert app.focused is screen.query_one("#sessions-search")
        await pilot.press(*"Zyler")  # r is a letter here, not a re-run
        await pilot.pause(0.2)
        assert app.screen is screen and screen.query_one("#sessions-search").value == "Zyler"
        assert screen.query_one("#sessions-table").row_count == 1
        await pilot.press("enter")  # to the table
        assert app.focused is screen.query_one("#sessions-table")
        await pilot.press("r")
        await pilot.pause(0.1)
        assert isinstance(app.screen, Confirm) and sid in str(app.screen.question)
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert app.screen is screen
    sessions = list(SessionLog(db_path).db.query("select id from sessions"))
    assert [s["id"] for s in sessions] == [sid]  # nothing re-ran


async def test_replay_steps_with_n_or_space_and_lane_keys_load_nothing(db_path):
    sid = record_session(db_path)
    app = make_replay_app(SessionLog(db_path), sid, speed=0, step=True)
    app.config = Config()
    async with app.run_test(size=(120, 30)) as pilot:
        base, tuned = app.main.views.values()
        await pilot.pause(0.3)
        assert base.current is None
        await pilot.press("n")
        for _ in range(40):
            await pilot.pause(0.05)
            if tuned.current is not None and tuned.current.status == "complete":
                break
        assert tuned.current is not None and tuned.current.text.strip() == "Zyler is"
        tuned.focus()
        await pilot.press("m", "a", "s", "h", "x")  # would change the lane, load a model, tag
        await pilot.pause(0.2)
        assert [lane.spec.text for lane in app.main.pg.lanes] == ["base:few-shot", "tuned:chat"]
        assert all(lane.model is None for lane in app.main.pg.lanes)
        assert tuned.load_state == "replay: no model is loaded"
        assert app.screen is app.main and not tuned.current.tags
        await pilot.press("v")  # looking is fine
        assert tuned.token_view
        assert "n shows the next turn" in app.query_one(PromptInput).placeholder
    assert not list(SessionLog(db_path).db.query("select * from tags"))


def test_the_lane_keys_the_replay_allows_exist():
    actions = {b.action.split("(")[0] for b in LaneView.BINDINGS}
    assert actions >= LaneView.VIEW_ONLY
