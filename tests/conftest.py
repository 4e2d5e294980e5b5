"""Shared fixtures. Tests run the real default models (small enough for two CPU cores).

Every test that loads a model is marked `slow`; `make test-fast` runs the others (`-m "not slow"`),
and a test without the mark that loads a model in this process fails, naming the mark.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

# Keep the user's cache and database out of the tests, before anything reads the environment.
_CACHE = tempfile.mkdtemp(prefix="playground-test-cache-")
os.environ["PLAYGROUND_CACHE_DIR"] = _CACHE
os.environ["PLAYGROUND_STATE_DIR"] = tempfile.mkdtemp(prefix="playground-test-state-")
os.environ.pop("PLAYGROUND_DB", None)
os.environ.pop("PLAYGROUND_MODELS_DIR", None)

from playground.core.catalog import Catalog  # noqa: E402
from playground.core.pool import ModelPool  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PLAYGROUND = [sys.executable, "-m", "playground.cli"]


@pytest.fixture(autouse=True)
def _models_only_in_slow_tests(request, monkeypatch):
    """The fast tier stays fast: loading a model in a test not marked slow is an error."""
    if request.node.get_closest_marker("slow") is not None:
        return
    import llama_cpp

    load = llama_cpp.Llama.__init__

    def refuse(self, *args, **kwargs):
        if kwargs.get("vocab_only"):  # a vocabulary alone (replays) is quick
            return load(self, *args, **kwargs)
        raise AssertionError(
            f"{request.node.nodeid} loads a model: mark it @pytest.mark.slow (see tests/conftest.py)"
        )

    monkeypatch.setattr(llama_cpp.Llama, "__init__", refuse)


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
    """A database file in a folder that exists (the CLI creates only its default folder)."""
    (tmp_path / "sessions").mkdir(exist_ok=True)
    return tmp_path / "sessions" / "test.db"


@pytest.fixture(scope="session")
def smollm2_path(catalog) -> Path:
    return catalog.resolve("tuned").path()
