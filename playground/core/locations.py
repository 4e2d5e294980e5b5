"""Where files live: the model catalog, the session database, the user cache, the program log."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
SOURCE_ROOT = PACKAGE_DIR.parent


def cache_dir() -> Path:
    """The user cache (sha256 cache and the like); PLAYGROUND_CACHE_DIR overrides."""
    if env := os.environ.get("PLAYGROUND_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "playground"


def state_dir() -> Path:
    """The program's own state (its log file); PLAYGROUND_STATE_DIR overrides."""
    if env := os.environ.get("PLAYGROUND_STATE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "playground"


def default_db_path() -> Path:
    """sessions/playground.db under the current directory; PLAYGROUND_DB overrides."""
    if env := os.environ.get("PLAYGROUND_DB"):
        return Path(env)
    return Path.cwd() / "sessions" / "playground.db"


def models_dir() -> Path:
    """The catalog folder: PLAYGROUND_MODELS_DIR, else ./models if it has a catalog, else the
    models/ folder of the source checkout this package runs from."""
    if env := os.environ.get("PLAYGROUND_MODELS_DIR"):
        return Path(env)
    here = Path.cwd() / "models"
    if (here / "models.toml").is_file():
        return here
    return SOURCE_ROOT / "models"
