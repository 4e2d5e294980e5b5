"""The command palette's entries and the help screen's keys, without loading a model."""

from playground.core.catalog import Catalog
from playground.core.lanespec import parse_lanes
from playground.core.playground import Playground
from playground.tui.commands import playground_commands
from playground.tui.keys import ANYWHERE, LANES_SCREEN_KEYS
from playground.tui.screens.lanes import LanesScreen
from playground.tui.widgets.lane import LaneView


def test_the_palette_offers_every_action_for_each_lane():
    pg = Playground(Catalog.load(), parse_lanes("base:few-shot,tuned:chat"))
    screen = LanesScreen(pg)
    screen.views = {lane.key: LaneView(lane) for lane in pg.lanes}
    titles = [c.title for c in playground_commands(screen)]
    assert titles[:3] == ["Help", "New session", "Cancel all"]
    assert "Vote: both bad" in titles and len(titles) == 13 + 2 * 16
    lane2 = [t for t in titles if t.startswith("Lane 2 (tuned:chat): ")]
    assert [t.split(": ", 1)[1] for t in lane2] == [
        "next mode",
        "abstention on/off",
        "next target T",
        "settings",
        "inspect prompt",
        "token view",
        "tag correct",
        "tag hallucination",
        "tag abstained",
        "tag partial",
        "cancel",
        "regenerate",
        "copy answer",
        "remove",
        "move left",
        "move right",
    ]
    assert all(callable(c.callback) for c in playground_commands(screen))


def test_every_key_keeps_its_config_id():
    ids = [b.id for b in ANYWHERE]
    assert ids == [
        "app.cancel",
        "app.help",
        "app.help2",
        "app.new_session",
        "app.regenerate",
        "app.edit_last",
        "app.tokens",
        "app.add_lane",
        "app.lab",
        "app.sessions",
        "app.demo_next",
        "app.demo_back",
        "app.next_turn",
        "app.quit",
    ]
    assert LANES_SCREEN_KEYS[0].id == "app.quit"  # first, so the footer keeps its order
    assert len({b.id for b in LaneView.BINDINGS}) == len(LaneView.BINDINGS) == 24
