"""The `playground` group: the one-line error for every command, --verbose, and the app itself.

With no command, `playground` opens the app; the commands are added here from their areas
(ask, sessions, lab, corpus, system) and all stay top-level: `playground export`, `playground probe`.
"""

from __future__ import annotations

import click

from playground.cli import ask, corpus, lab, sessions, system
from playground.cli import options as opt
from playground.core import applog
from playground.core.engine import Sampling
from playground.core.errors import PlaygroundError
from playground.core.lanespec import DEFAULT_LANES
from playground.core.locations import default_db_path
from playground.core.textsafe import visible


class PlaygroundGroup(click.Group):
    """Turns PlaygroundError into a one-line message and exit code 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PlaygroundError as e:
            click.secho(f"Error: {visible(str(e))}", fg="red", err=True)
            ctx.exit(1)


def app_options(f):
    """What the app needs: its lanes, sampling, the log, the models and the search backend."""
    f = opt.seed_option(None, "Seed for sampling (temperature > 0).")(f)
    f = opt.temperature_option(f)
    f = opt.max_tokens_option(256)(f)
    f = opt.lanes_option(
        DEFAULT_LANES, "Comma-separated MODEL:MODE[+abstain@T] lane specs (1 to 4)."
    )(f)
    f = opt.db_option(f)
    f = opt.models_options(f)
    return opt.search_options(f)


def run_app(
    lanes_text,
    db_path,
    models_dir,
    base,
    tuned,
    max_tokens,
    temperature,
    seed,
    search_backend,
    corpus_path,
) -> None:
    from playground.tui.app import make_app

    sampling = Sampling(temperature=temperature, seed=seed, max_tokens=max_tokens)
    app = make_app(
        lanes_text,
        db_path or default_db_path(),
        models_dir,
        base,
        tuned,
        sampling,
        search_backend=search_backend,
        corpus_path=corpus_path,
        gpu_layers=click.get_current_context().meta.get("gpu_layers"),
    )
    from playground.tui.shutdown import run

    run(app)


@click.group(cls=PlaygroundGroup, invoke_without_command=True)
@click.version_option(package_name="playground")
@click.option(
    "--verbose",
    is_flag=True,
    help="Also show the program's log (llama.cpp's messages included) on stderr; it always goes "
    "to playground.log in the state folder (~/.local/state/playground, $PLAYGROUND_STATE_DIR). "
    "Not for the app, which draws on the terminal.",
)
@app_options
@click.pass_context
def cli(ctx: click.Context, verbose: bool, **options) -> None:
    """Watch a base model and an instruction-tuned model answer the same question side by side,
    and see why language models hallucinate.

    With no command, opens the app on the default pair (or the lanes given)."""
    opens_app = ctx.invoked_subcommand in (None, "app", "demo", "replay", "review", "serve")
    applog.setup(verbose=verbose and not opens_app)
    if ctx.invoked_subcommand is None:
        run_app(**options)


@cli.command()
@app_options
def app(**options) -> None:
    """Open the app: lanes side by side, token view, prompt inspector, tagging (same as no command)."""
    run_app(**options)


for area in (ask, sessions, lab, corpus, system):
    for command in area.COMMANDS:
        cli.add_command(command)


def main() -> None:
    cli(prog_name="playground")
