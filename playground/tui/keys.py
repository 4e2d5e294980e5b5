"""Every app-wide key in one place, in the order the help screen lists them.

Each binding has an id: `[keys]` in config.toml rebinds it (`"app.lab" = "f9"`). The lane keys live
with the lane widget (`LaneView.BINDINGS`). The lanes screen owns most of these keys, so they act
only while the lanes are on top; the demo and replay screens add their own.
"""

from __future__ import annotations

from textual.binding import Binding

QUIT = Binding("ctrl+q", "app.quit", "Quit", priority=True, id="app.quit")

LANES_KEYS = [
    Binding("escape", "cancel_all", "Cancel", id="app.cancel"),
    Binding("f1", "help", "Help", id="app.help"),
    Binding("question_mark", "help", "Help", show=False, id="app.help2"),
    Binding("ctrl+n", "new_session", "New session", priority=True, id="app.new_session"),
    Binding("ctrl+r", "regenerate_all", "Regenerate", priority=True, id="app.regenerate"),
    Binding("ctrl+e", "edit_last", "Edit last", priority=True, id="app.edit_last"),
    Binding("ctrl+t", "toggle_tokens_all", "Tokens", priority=True, id="app.tokens"),
    Binding("f2", "add_lane", "Add lane", id="app.add_lane"),
    Binding("f4", "lab", "Lab", id="app.lab"),
    Binding("f5", "sessions", "Sessions", id="app.sessions"),
]

DEMO_KEYS = [
    Binding("f6", "demo_step(1)", "Demo: next step", show=False, priority=True, id="app.demo_next"),
    Binding(
        "f7", "demo_step(-1)", "Demo: step back", show=False, priority=True, id="app.demo_back"
    ),
]

REPLAY_KEYS = [
    Binding("space,n", "next_turn", "Replay: next turn", priority=True, id="app.next_turn"),
]

APP_KEYS = [QUIT]

ANYWHERE = [*LANES_KEYS, *DEMO_KEYS, *REPLAY_KEYS, *APP_KEYS]

# Textual's footer lists the focused widget's keys, then the screen's, then the app's: the lanes
# screen binds Quit too, first, so the footer shows it where it always was (after Ctrl+E).
LANES_SCREEN_KEYS = [QUIT, *LANES_KEYS]

# What a replay offers of the lanes screen's keys: the replay's own, help, Esc and the token view
# (each lane keeps its view-only keys: LaneView.VIEW_ONLY).
REPLAY_ACTIONS = {"help", "cancel_all", "next_turn", "toggle_tokens_all"}

# While another screen is on top, the footer of the lanes screen under it offers only these.
ANY_SCREEN_ACTIONS = {"cancel_all", "demo_step", "next_turn"}
