"""Options shared by several commands, declared once, and what they turn into (a catalog, a log).

A command takes an option from here when another command has the same one; an option only one
command has stays with that command, unless its choices are ones `core` defines (labels, modes).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from playground.core.catalog import Catalog
from playground.core.db import LABELS, SessionLog
from playground.core.errors import PlaygroundError
from playground.core.locations import default_db_path
from playground.core.playground import Playground
from playground.core.prompts import MODES

SEARCH_BACKENDS = ("offline", "web", "recorded")


def _regular_file(ctx: click.Context, param, value: Path | None) -> Path | None:
    """An existing path must be a plain file: SQLite on a FIFO or a device blocks or fails."""
    if value is not None and value.exists() and not value.is_file():
        raise click.BadParameter(f"{value} is not a regular file")
    return value


db_option = click.option(
    "--db",
    "db_path",
    type=click.Path(path_type=Path, dir_okay=False),
    callback=_regular_file,
    default=None,
    help="Session database, in a folder that exists (default: sessions/playground.db here, "
    "or $PLAYGROUND_DB).",
)

corpus_option = click.option(
    "--corpus",
    "corpus_path",
    type=click.Path(path_type=Path, dir_okay=False),
    callback=_regular_file,
    default=None,
    help="Offline search corpus (default: the user cache).",
)

models_dir_option = click.option(
    "--models-dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Catalog folder (default: ./models, or $PLAYGROUND_MODELS_DIR).",
)

temperature_option = click.option(
    "--temperature",
    type=click.FloatRange(0.0, 5.0),
    default=0.0,
    show_default=True,
    help="0 = greedy.",
)

label_option = click.option("--label", required=True, type=click.Choice(LABELS))
mode_option = click.option("--mode", type=click.Choice(MODES), default=None)

tagger_option = click.option(
    "--tagger",
    default=None,
    help="Your name (default: config user.tagger, $PLAYGROUND_TAGGER, or the OS user).",
)


def json_option(help: str = "Print JSON (for scripts)."):
    return click.option("--json", "as_json", is_flag=True, help=help)


def lanes_option(default: str | None, help: str | None = None):
    shown = {"show_default": True} if default is not None else {}
    return click.option("--lanes", "lanes_text", default=default, help=help, **shown)


def max_tokens_option(default: int, most: int = 32768):
    return click.option(
        "--max-tokens", type=click.IntRange(1, most), default=default, show_default=True
    )


def seed_option(default: int | None, help: str | None = None):
    shown = {"show_default": True} if default is not None else {}
    return click.option("--seed", type=int, default=default, help=help, **shown)


SQLITE_INT = click.IntRange(1, 2**63 - 1)  # an id or a count SQLite can hold


def _remember_gpu_layers(ctx: click.Context, param, value):
    if value is not None:
        from playground.core.doctor import gpu_layers

        try:
            ctx.meta["gpu_layers"] = gpu_layers(value)
        except PlaygroundError as e:
            raise click.BadParameter(str(e)) from None
    return value


def models_options(f):
    """--models-dir, --base, --tuned and --gpu-layers: which models, for `catalog(...)`."""
    f = click.option(
        "--gpu-layers",
        default=None,
        metavar="N|all|auto",
        expose_value=False,
        callback=_remember_gpu_layers,
        help="Layers to offload to the GPU for every model (default: each model's catalog setting).",
    )(f)
    f = click.option("--tuned", "tuned", metavar="PATH", help="Use this GGUF as the tuned model.")(
        f
    )
    f = click.option("--base", "base", metavar="PATH", help="Use this GGUF as the base model.")(f)
    return models_dir_option(f)


def search_options(f):
    """--search-backend and --corpus: where +search lanes search."""
    f = click.option(
        "--search-backend",
        type=click.Choice(SEARCH_BACKENDS),
        default="offline",
        show_default=True,
        help="Where +search lanes search: the offline corpus, the web (ddgs), or results recorded in the database.",
    )(f)
    return corpus_option(f)


def catalog(models_dir: Path | None, base: str | None, tuned: str | None) -> Catalog:
    """The catalog the models options name, with --gpu-layers applied when it was given."""
    cat = Catalog.load(models_dir)
    if base:
        cat = cat.with_override("base", base)
    if tuned:
        cat = cat.with_override("tuned", tuned)
    ctx = click.get_current_context(silent=True)
    layers = ctx.meta.get("gpu_layers") if ctx is not None else None
    if layers is not None:
        cat = cat.with_gpu_layers(layers)
    return cat


def db_location(db_path: Path | None) -> Path:
    """The session database --db (or $PLAYGROUND_DB) names, whose folder must exist; only the
    default location (sessions/ here) is created when missing."""
    if db_path is None and not os.environ.get("PLAYGROUND_DB"):
        path = default_db_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
    path = (db_path or default_db_path()).expanduser()
    if not path.parent.is_dir():
        raise PlaygroundError(
            f"the folder {path.parent} of the session database {path.name} does not exist: "
            "create it first, or give another --db"
        )
    return path


def writable(path: Path) -> bool:
    """Whether SQLite could write *path* and its journal beside it."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def open_log(db_path: Path | None, must_exist: bool = True, reading: bool = False) -> SessionLog:
    """The session log --db names; reading commands refuse to create an empty one, and open a
    file they cannot write (a read-only copy, someone else's log) read-only."""
    path = (db_path or default_db_path()).expanduser()
    if must_exist and not path.exists():
        raise PlaygroundError(
            f"no session database at {path} yet: run `playground ask` first, or pass --db"
        )
    if reading and path.is_file() and not writable(path):
        return SessionLog(path, read_only=True)
    return SessionLog(db_location(db_path) if not must_exist else path)


def check_lanes(pg: Playground) -> None:
    """Every lane names a model the catalog knows, or one error that lists those that do not."""
    bad = [lane.error for lane in pg.lanes if lane.model_spec is None]
    if bad:
        raise PlaygroundError("; ".join(bad))
