"""The session log in Datasette: where its executable is, and the canned queries it opens with."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from playground.core.db.queries import BROWSE_QUERIES


def datasette_executable() -> str | None:
    """`datasette` on the PATH, or beside this Python (a virtualenv not activated); None if absent."""
    beside = Path(sys.executable).parent / "datasette"
    return shutil.which("datasette") or (str(beside) if beside.exists() else None)


def datasette_metadata(name: str) -> dict[str, Any]:
    """Datasette metadata for the database called `name`: a title and the canned queries."""
    return {"title": "playground log", "databases": {name: {"queries": BROWSE_QUERIES}}}
