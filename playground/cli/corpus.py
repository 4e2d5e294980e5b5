"""`playground corpus`: the offline search corpus that +search lanes use without a network."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from playground.cli import options as opt
from playground.core.textsafe import json_safe, visible


@click.group()
def corpus() -> None:
    """The offline search corpus: what +search lanes find without a network."""


@corpus.command("add")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@opt.corpus_option
def corpus_add(paths, corpus_path):
    """Index Markdown, text or HTML files (re-adding a file replaces it)."""
    from playground.core.search.backends import Corpus, SearchError

    c = Corpus(corpus_path)
    added = skipped = 0
    for p in paths:
        try:
            n = c.add_file(p)
            added += 1
            click.echo(visible(f"added {p} ({n} passage{'s' if n != 1 else ''})"))
        except SearchError as e:
            skipped += 1
            click.secho(visible(f"skipped: {e}"), fg="yellow", err=True)
    click.echo(
        f"{added} file(s) added, {skipped} skipped; the corpus at {c.path} holds {c.count()} passages"
    )
    c.close()
    if skipped and not added:
        sys.exit(1)


@corpus.command("search")
@click.argument("query")
@opt.corpus_option
@opt.json_option()
def corpus_search(query, corpus_path, as_json):
    """Show what a model would get for QUERY from the offline corpus."""
    from playground.core.search.backends import Corpus
    from playground.core.search.tool import results_block

    results = Corpus(corpus_path).search(query)
    if as_json:
        click.echo(
            json_safe(json.dumps([r.as_dict() for r in results], indent=2, ensure_ascii=False))
        )
        return
    click.echo(visible(results_block(results, None, lambda t: len(t.split())).strip()))


COMMANDS = [corpus]
