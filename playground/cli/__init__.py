"""The `playground` console script: one module per area of commands, options declared once.

    root.py      the group: --verbose, the app (no command, or `app`)
    boundary.py  the one boundary: one-line errors, arguments checked, the app only on a terminal
    options.py   every option more than one command takes, and what they turn into
    ask.py       ask and its live view
    sessions.py  sessions, tag, agreement, export, replay, rerun, review, browse
    lab.py       probe, report, validity, interrogate
    corpus.py    corpus add, corpus search
    system.py    models, doctor, demo, serve

Every command stays top-level (`playground export`, `playground probe`); the areas are only where
the code lives. `python -m playground.cli` runs it too (`__main__.py`).
"""

from playground.cli.root import PlaygroundGroup, cli, main

__all__ = ["PlaygroundGroup", "cli", "main"]
