"""The Textual app: the keymap, the config, and which screen shows the lanes.

`make_app` (the lanes), `make_replay_app` (a recorded session streaming again) and `make_demo_app`
(a workshop script) build it for the console script, the tests and the benchmarks; the lanes
screen (`screens/lanes.py`) does the work.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from playground.core.catalog import Catalog
from playground.core.config import Config
from playground.core.db import SessionLog, default_tagger
from playground.core.engine import Sampling
from playground.core.errors import PlaygroundError
from playground.core.lanespec import parse_lanes
from playground.core.playground import Playground
from playground.tui.commands import playground_commands
from playground.tui.keys import APP_KEYS
from playground.tui.screens.demo import DemoScreen
from playground.tui.screens.lanes import MAX_LANES, LanesScreen
from playground.tui.screens.replay import ReplayScreen

CSS_PATH = Path(__file__).parent / "app.tcss"


class PlaygroundApp(App):
    """The config, the keymap and the main screen: `LanesScreen`, or its replay or demo kind."""

    CSS_PATH = CSS_PATH
    TITLE = "playground"
    SUB_TITLE = "base vs tuned, side by side"
    BINDINGS = APP_KEYS

    def __init__(self, main: LanesScreen, config: Config | None = None) -> None:
        super().__init__()
        self.config = config or Config()
        self.tagger = self.config.tagger or default_tagger()
        self.main = main

    def get_default_screen(self) -> Screen:
        return self.main

    def on_mount(self) -> None:
        if self.config.keys:
            self.set_keymap(self.config.keys)

    def on_unmount(self) -> None:
        self.main.stop()

    def key_display(self, binding: Binding) -> str:
        """The key of a binding as the user sees it, after the config file's `[keys]`."""
        key = self._keymap.get(binding.id, binding.key) if binding.id else binding.key
        return ", ".join(self.get_key_display(Binding(k, "")) for k in key.split(","))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from playground_commands(self.main)


def make_app(
    lanes: str,
    db: Path,
    models_dir: Path | None = None,
    base: str | None = None,
    tuned: str | None = None,
    sampling: Sampling | None = None,
    config: Config | None = None,
    search_backend: str = "offline",
    corpus_path: Path | None = None,
    gpu_layers: int | None = None,
) -> PlaygroundApp:
    """Build the app (used by the console script, the tests and the benchmarks)."""
    specs = parse_lanes(lanes)
    catalog = Catalog.load(models_dir)
    if base:
        catalog = catalog.with_override("base", base)
    if tuned:
        catalog = catalog.with_override("tuned", tuned)
    if gpu_layers is not None:
        catalog = catalog.with_gpu_layers(gpu_layers)
    if not 1 <= len(specs) <= MAX_LANES:
        raise PlaygroundError(f"the app shows 1 to {MAX_LANES} lanes, not {len(specs)}")
    pg = Playground(catalog, specs, SessionLog(db))
    pg.search_backend = search_backend
    pg.corpus_path = corpus_path
    return PlaygroundApp(LanesScreen(pg, sampling), config or Config.load())


def make_replay_app(
    log: SessionLog, session_id: str, speed: float = 1.0, step: bool = False
) -> PlaygroundApp:
    """The app showing a recorded session as it streamed, with no model loaded."""
    import json

    from playground.core.sessions import session

    sess = session(log, session_id)
    specs = parse_lanes(",".join(json.loads(sess["lanes"] or "[]"))) if sess["lanes"] else []
    if not specs:
        raise PlaygroundError(f"session {session_id} has no lanes to replay")
    pg = Playground(Catalog.load(), specs[:MAX_LANES], log)
    app = PlaygroundApp(ReplayScreen(pg, sess["id"], speed, step), Config.load())
    app.sub_title = f"replay of {sess['id']}"
    return app


def make_demo_app(
    path, db: Path, models_dir: Path | None = None, corpus_path: Path | None = None
) -> PlaygroundApp:
    """The app stepping through a workshop demo script with a narration panel."""
    from playground.core.demo import load_demo

    demo = load_demo(path)
    pg = Playground(Catalog.load(models_dir), demo.steps[0].lanes, SessionLog(db))
    pg.corpus_path = corpus_path
    app = PlaygroundApp(DemoScreen(pg, demo), Config.load())
    app.sub_title = demo.title
    return app


class ReviewApp(App):
    """`playground review`: the review screen on its own."""

    CSS_PATH = CSS_PATH
    TITLE = "playground review"

    def __init__(self, log: SessionLog, session_id: str, blind: bool, tagger: str | None) -> None:
        super().__init__()
        self.log_db, self.session_id, self.blind, self.tagger = log, session_id, blind, tagger

    def on_mount(self) -> None:
        from playground.tui.screens.review import ReviewScreen

        self.push_screen(
            ReviewScreen(self.log_db, self.session_id, self.blind, self.tagger),
            lambda _: self.exit(),
        )
