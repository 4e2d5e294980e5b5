"""The command palette (Ctrl+P): every action of the lanes screen, and each lane's, by name.

The entries are served by Textual's system-commands provider (`App.get_system_commands` yields
them), so they sit in one list with Textual's own (theme, keys, quit) in a stable order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING

from textual.app import SystemCommand

from playground.core.db import LABELS

if TYPE_CHECKING:
    from playground.tui.screens.lanes import LanesScreen
    from playground.tui.widgets.lane import LaneView

Command = tuple[str, str, Callable]


def screen_commands(screen: LanesScreen) -> list[Command]:
    return [
        ("Help", "Every key and what it does", screen.action_help),
        ("New session", "Start fresh conversations", screen.action_new_session),
        ("Cancel all", "Stop every lane", screen.action_cancel_all),
        (
            "Regenerate all",
            "Answer the last question again in every lane",
            screen.action_regenerate_all,
        ),
        (
            "Edit last question",
            "Change the last question and send it again",
            screen.action_edit_last,
        ),
        (
            "Token view",
            "Show answers as tokens shaded by probability",
            screen.action_toggle_tokens_all,
        ),
        ("Add lane", "Add a lane (up to 4)", screen.action_add_lane),
        ("Lab", "The latest probe run: scores, calibration, answers", screen.action_lab),
        ("Sessions", "Every logged session; search; review and tag", screen.action_sessions),
        ("Review this session", "Tag its answers one by one", screen.action_review),
        (
            "Review this session blind",
            "Lane names hidden while you tag and vote",
            partial(screen.action_review, True),
        ),
        (
            "Vote: tie",
            "The lanes' latest answers are equally good",
            partial(screen.vote, None, "tie"),
        ),
        (
            "Vote: both bad",
            "None of the lanes' latest answers is good",
            partial(screen.vote, None, "both_bad"),
        ),
    ]


def lane_commands(view: LaneView) -> list[Command]:
    name = f"Lane {view.lane.index + 1} ({view.lane.spec.text})"
    return [
        (f"{name}: next mode", "raw → few-shot → chat", view.action_cycle_mode),
        (f"{name}: abstention on/off", "Confidence-target prompt", view.action_toggle_abstain),
        (f"{name}: next target T", "0.5 → 0.75 → 0.9", view.action_cycle_target),
        (
            f"{name}: settings",
            "Model, mode, T, temperature, top-p, max tokens, seed",
            view.action_settings,
        ),
        (f"{name}: inspect prompt", "Exactly what the model received", view.action_inspect),
        (f"{name}: token view", "Tokens shaded by probability", view.action_toggle_tokens),
        *[
            (f"{name}: tag {label}", "Tag the latest answer", partial(view.action_tag, label))
            for label in LABELS
        ],
        (f"{name}: cancel", "Stop this lane", view.action_cancel),
        (f"{name}: regenerate", "Answer the last question again", view.action_regenerate),
        (f"{name}: copy answer", "To the clipboard", view.action_copy_answer),
        (f"{name}: remove", "Remove this lane", view.action_remove_lane),
        (f"{name}: move left", "Reorder lanes", partial(view.action_move_lane, -1)),
        (f"{name}: move right", "Reorder lanes", partial(view.action_move_lane, 1)),
    ]


def playground_commands(screen: LanesScreen) -> Iterator[SystemCommand]:
    """The palette entries for the lanes screen, then for each lane in order."""
    commands = screen_commands(screen)
    for lane in screen.pg.lanes:
        commands += lane_commands(screen.views[lane.key])
    for title, help_text, callback in commands:
        yield SystemCommand(title, help_text, callback)
