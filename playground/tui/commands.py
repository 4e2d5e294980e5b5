"""The command palette (Ctrl+P): every action of the lanes screen, and each lane's, by name, each
with the key that does the same (as bound now: the config file's `[keys]` may rebind it).

The entries are served by Textual's system-commands provider (`App.get_system_commands` yields
them), so they sit in one list with Textual's own (theme, keys, quit) in a stable order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING

from textual.app import SystemCommand
from textual.binding import Binding
from textual.markup import escape

from playground.core.db import LABELS
from playground.tui.keys import ANYWHERE, REPLAY_ACTIONS

if TYPE_CHECKING:
    from playground.tui.screens.lanes import LanesScreen
    from playground.tui.widgets.lane import LaneView

# (title, what it does, the id of the binding that does the same or None, callback)
Command = tuple[str, str, str | None, Callable]


def screen_commands(screen: LanesScreen) -> list[Command]:
    return [
        ("Help", "Every key and what it does", "app.help", screen.action_help),
        ("New session", "Start fresh conversations", "app.new_session", screen.action_new_session),
        ("Cancel all", "Stop every lane", "app.cancel", screen.action_cancel_all),
        (
            "Regenerate all",
            "Answer the last question again in every lane",
            "app.regenerate",
            screen.action_regenerate_all,
        ),
        (
            "Edit last question",
            "Change the last question and send it again",
            "app.edit_last",
            screen.action_edit_last,
        ),
        (
            "Token view",
            "Show answers as tokens shaded by probability",
            "app.tokens",
            screen.action_toggle_tokens_all,
        ),
        ("Add lane", "Add a lane (up to 4)", "app.add_lane", screen.action_add_lane),
        (
            "Lab",
            "The latest probe run: scores, calibration, answers",
            "app.lab",
            screen.action_lab,
        ),
        (
            "Sessions",
            "Every logged session; search; review and tag",
            "app.sessions",
            screen.action_sessions,
        ),
        ("Review this session", "Tag its answers one by one", None, screen.action_review),
        (
            "Review this session blind",
            "Lane names hidden while you tag and vote",
            None,
            partial(screen.action_review, True),
        ),
        (
            "Vote: tie",
            "The lanes' latest answers are equally good",
            None,
            partial(screen.vote, None, "tie"),
        ),
        (
            "Vote: both bad",
            "None of the lanes' latest answers is good",
            None,
            partial(screen.vote, None, "both_bad"),
        ),
    ]


def lane_commands(view: LaneView) -> list[Command]:
    name = f"Lane {view.lane.index + 1} ({view.lane.spec.text})"
    return [
        (f"{name}: next mode", "raw → few-shot → chat", "lane.mode", view.action_cycle_mode),
        (
            f"{name}: abstention on/off",
            "Confidence-target prompt",
            "lane.abstain",
            view.action_toggle_abstain,
        ),
        (f"{name}: next target T", "0.5 → 0.75 → 0.9", "lane.target", view.action_cycle_target),
        (
            f"{name}: next search setting",
            "off → the model may search → search first",
            "lane.search",
            view.action_cycle_search,
        ),
        (
            f"{name}: settings",
            "Model, mode, T, temperature, top-p, max tokens, seed",
            "lane.settings",
            view.action_settings,
        ),
        (
            f"{name}: inspect prompt",
            "Exactly what the model received",
            "lane.inspect",
            view.action_inspect,
        ),
        (
            f"{name}: token view",
            "Tokens shaded by probability",
            "lane.tokens",
            view.action_toggle_tokens,
        ),
        (
            f"{name}: expand search results",
            "Show or hide the results of the answer's searches",
            "lane.expand_results",
            view.action_toggle_results,
        ),
        *[
            (
                f"{name}: tag {label}",
                "Tag the latest answer",
                f"lane.tag_{label}",
                partial(view.action_tag, label),
            )
            for label in LABELS
        ],
        (
            f"{name}: tag with a note",
            "A label, then a note, for the latest answer",
            "lane.tag_note",
            view.action_tag_note,
        ),
        (
            f"{name}: vote better",
            "This lane answered the last question better",
            "lane.vote_better",
            view.action_vote,
        ),
        (
            f"{name}: undo tag or vote",
            "Take back your latest tag or vote on this lane's latest answer",
            "lane.undo",
            view.action_undo,
        ),
        (f"{name}: cancel", "Stop this lane", "lane.cancel", view.action_cancel),
        (
            f"{name}: regenerate",
            "Answer the last question again",
            "lane.regenerate",
            view.action_regenerate,
        ),
        (f"{name}: copy answer", "To the clipboard", "lane.copy", view.action_copy_answer),
        (
            f"{name}: copy code",
            "The answer's last code block, to the clipboard",
            "lane.copy_code",
            view.action_copy_code,
        ),
        (f"{name}: remove", "Remove this lane", "lane.remove", view.action_remove_lane),
        (
            f"{name}: move left",
            "Reorder lanes",
            "lane.move_left",
            partial(view.action_move_lane, -1),
        ),
        (
            f"{name}: move right",
            "Reorder lanes",
            "lane.move_right",
            partial(view.action_move_lane, 1),
        ),
    ]


def _action(callback: Callable) -> str:
    """The action name behind a callback (`action_cycle_mode` → cycle_mode)."""
    func = callback.func if isinstance(callback, partial) else callback
    return getattr(func, "__name__", "").removeprefix("action_")


def playground_commands(screen: LanesScreen) -> Iterator[SystemCommand]:
    """The palette entries for the lanes screen, then for each lane in order; each says its key.
    A replay offers only what it allows (nothing that would run a model or change the log)."""
    from playground.tui.widgets.lane import LaneView

    commands = screen_commands(screen)
    if screen.read_only:
        commands = [c for c in commands if _action(c[3]) in REPLAY_ACTIONS]
    for lane in screen.pg.lanes:
        entries = lane_commands(screen.views[lane.key])
        if screen.read_only:
            entries = [c for c in entries if _action(c[3]) in LaneView.VIEW_ONLY]
        commands += entries
    bindings = {b.id: b for b in [*ANYWHERE, *LaneView.BINDINGS]}
    for title, help_text, binding_id, callback in commands:
        binding = bindings.get(binding_id) if binding_id else None
        key = _key(screen, binding) if binding is not None else ""
        where = " (a focused lane)" if binding_id and binding_id.startswith("lane.") else ""
        hint = f"key {key}{where} · " if key else ""
        yield SystemCommand(title, escape(hint + help_text), callback)


def _key(screen: LanesScreen, binding: Binding) -> str:
    try:
        return str(screen.app.key_display(binding))  # as the config file's [keys] bind it
    except Exception:  # a screen outside a running PlaygroundApp (the fast tests)
        return binding.key
