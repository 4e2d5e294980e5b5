"""Shared fixtures. Tests run the real default models (small enough for two CPU cores)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

# Keep the user's cache and database out of the tests, before anything reads the environment.
_CACHE = tempfile.mkdtemp(prefix="playground-test-cache-")
os.environ["PLAYGROUND_CACHE_DIR"] = _CACHE
os.environ.pop("PLAYGROUND_DB", None)
os.environ.pop("PLAYGROUND_MODELS_DIR", None)

from playground.core.catalog import Catalog  # noqa: E402
from playground.core.lanes import ModelPool  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PLAYGROUND = [sys.executable, "-m", "playground.cli"]


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.load(ROOT / "models")


@pytest.fixture(scope="session")
def pool() -> ModelPool:
    p = ModelPool()
    yield p
    p.close()


@pytest.fixture(scope="session")
def base_model(catalog, pool):
    return pool.get(catalog.resolve("base"))[0]


@pytest.fixture(scope="session")
def tuned_model(catalog, pool):
    return pool.get(catalog.resolve("tuned"))[0]


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "sessions" / "test.db"


@pytest.fixture(scope="session")
def smollm2_path(catalog) -> Path:
    return catalog.resolve("tuned").path()
