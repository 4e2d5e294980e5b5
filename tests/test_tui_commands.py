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
    commands = list(playground_commands(screen))
    titles = [c.title for c in commands]
    assert titles[:3] == ["Help", "New session", "Cancel all"]
    assert "Vote: both bad" in titles and len(titles) == 13 + 2 * 22
    lane2 = [t for t in titles if t.startswith("Lane 2 (tuned:chat): ")]
    assert [t.split(": ", 1)[1] for t in lane2] == [
        "next mode",
        "abstention on/off",
        "next target T",
        "next search setting",
        "settings",
        "inspect prompt",
        "token view",
        "expand search results",
        "tag correct",
        "tag hallucination",
        "tag abstained",
        "tag partial",
        "tag with a note",
        "vote better",
        "undo tag or vote",
        "cancel",
        "regenerate",
        "copy answer",
        "copy code",
        "remove",
        "move left",
        "move right",
    ]
    assert all(callable(c.callback) for c in commands)
    helps = {c.title: c.help for c in commands}
    # Each entry says its key: every lane key but moving along the tokens and scrolling has one.
    shown = {h.split(" ", 2)[1] for h in helps.values() if h.startswith("key ")}
    lane_keys = {
        b.key
        for b in LaneView.BINDINGS
        if b.action.split("(")[0] not in ("token_cursor", "scroll_body")
    }
    assert lane_keys <= shown, lane_keys - shown
    assert helps["Lane 1 (base:few-shot): tag with a note"].startswith("key n (a focused lane) · ")
    assert helps["Help"].startswith("key f1 · ")


def test_a_replay_offers_no_palette_entry_that_runs_a_model():
    from playground.tui.screens.replay import ReplayScreen

    pg = Playground(Catalog.load(), parse_lanes("base:few-shot,tuned:chat"))
    screen = ReplayScreen(pg, "s1")
    screen.views = {lane.key: LaneView(lane) for lane in pg.lanes}
    titles = [c.title for c in playground_commands(screen)]
    assert "Help" in titles and "Lane 1 (base:few-shot): inspect prompt" in titles
    for gone in ("next mode", "settings", "tag correct", "regenerate", "remove"):
        assert not any(t.endswith(gone) for t in titles), gone
    assert "New session" not in titles and "Add lane" not in titles


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
    assert len({b.id for b in LaneView.BINDINGS}) == len(LaneView.BINDINGS) == 28


def test_token_texts_decode_across_token_boundaries():
    """An emoji or a CJK character split over byte tokens shows whole in the inspector, at the
    token that completes it, not as one replacement character per token."""
    from playground.core.engine import decode_pieces

    llama, han = "🦙".encode(), "日".encode()
    pieces = [b"Hi ", llama[:2], llama[2:], b" ", han[:1], han[1:], b"!"]
    texts = decode_pieces(pieces)
    assert "".join(texts) == "Hi 🦙 日!" and "\ufffd" not in "".join(texts)
    assert texts[1:3] == ["", "🦙"] and texts[4:6] == ["", "日"]
    assert decode_pieces([b"\xff", b"a"]) == ["\ufffd", "a"]  # bytes that are no character
    assert decode_pieces([llama[:2]]) == ["\ufffd"]  # a character cut off at the end
