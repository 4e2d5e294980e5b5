"""What the engine leans on in llama-cpp-python beyond its documented API, and the quiet terminal."""

import importlib
import subprocess
import sys
from types import SimpleNamespace

import pytest

from playground.core import applog
from playground.core.engine import PRIVATE_API, EngineError, check_llama_cpp

from .conftest import PLAYGROUND, ROOT


def test_the_module_level_names_exist():
    import llama_cpp

    missing = [n for n in PRIVATE_API["llama_cpp"] if not hasattr(llama_cpp, n)]
    assert not missing, f"llama-cpp-python {llama_cpp.__version__} lacks {missing}"
    for site in applog.SWAP_SITES:
        module = importlib.import_module(site)
        assert hasattr(module, "suppress_stdout_stderr"), (
            f"{site}.suppress_stdout_stderr moved: llama-cpp-python would swap file descriptors "
            "while a model loads, and the app would lose frames"
        )


def test_a_missing_attribute_is_named():
    fake = SimpleNamespace(
        _ctx=SimpleNamespace(),  # no KV-cache methods at all
        _model=None,
        _batch=None,
    )
    with pytest.raises(EngineError) as e:
        check_llama_cpp(fake)
    msg = str(e.value)
    assert "Llama._ctx.kv_cache_clear" in msg and "Llama.input_ids" in msg
    assert "pyproject.toml" in msg


@pytest.mark.slow
def test_a_loaded_model_has_every_private_attribute(tuned_model):
    check_llama_cpp(tuned_model.llm)  # raises, naming the attribute, if one is gone


def test_the_version_is_in_the_pinned_range():
    import llama_cpp
    from packaging.requirements import Requirement

    from playground.core.doctor import llama_cpp_requirement

    req = Requirement(llama_cpp_requirement())
    assert req.specifier, "pyproject.toml must pin llama-cpp-python to a tested range"
    assert req.specifier.contains(llama_cpp.__version__), (req, llama_cpp.__version__)


@pytest.mark.slow
def test_ask_prints_nothing_from_llama_cpp(tmp_path):
    """llama.cpp's log ("llama_kv_cache_iswa: using full-size SWA cache", model metadata) goes to
    the log file, not the terminal; --verbose shows it."""
    state = tmp_path / "state"
    env = {"PLAYGROUND_STATE_DIR": str(state), "PATH": "/usr/bin:/bin"}
    args = [
        *PLAYGROUND,
        "ask",
        "--db",
        str(tmp_path / "a.db"),
        "--max-tokens",
        "2",
        "--json",
        "What is 2+2?",
    ]
    quiet = subprocess.run(
        args, capture_output=True, text=True, timeout=300, cwd=ROOT, env=_env(env)
    )
    assert quiet.returncode == 0, quiet.stderr
    assert "llama" not in quiet.stderr.lower() and "swa" not in quiet.stderr.lower(), quiet.stderr
    logged = (state / applog.LOG_NAME).read_text()
    assert "playground.llama_cpp" in logged and "SWA" in logged

    loud = subprocess.run(
        [*PLAYGROUND, "--verbose", *args[len(PLAYGROUND) :]],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=_env(env),
    )
    assert loud.returncode == 0, loud.stderr
    assert "SWA" in loud.stderr


def _env(extra: dict) -> dict:
    import os

    env = dict(os.environ)
    env.update({k: v for k, v in extra.items() if k != "PATH"})
    env.setdefault("PYTHONPATH", str(ROOT))
    return env


def test_the_log_callback_joins_pieces_into_lines(caplog, monkeypatch):
    # applog.setup() (run by any earlier in-process CLI test) stops "playground" propagating to
    # the root logger, where caplog listens.
    monkeypatch.setattr(applog.log, "propagate", True)
    cb = applog._LlamaLog()
    with caplog.at_level("DEBUG", logger=applog.LLAMA_LOGGER):
        cb(2, b"llama_kv_cache: using ", None)
        cb(5, b"full-size SWA cache\nsecond ", None)
        cb(5, b"line\n", None)
        cb(3, b"\xffbroken\n", None)
    got = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert got == [
        ("WARNING", "llama_kv_cache: using full-size SWA cache"),
        ("WARNING", "second line"),
        ("ERROR", "\ufffdbroken"),
    ]


def test_no_fd_is_swapped_while_a_model_loads():
    """llama-cpp-python's stdout/stderr suppressor is replaced by a no-op, so the Textual app never
    loses a frame to /dev/null while a model loads."""
    applog.quiet_llama_cpp()
    for site in applog.SWAP_SITES:
        module = importlib.import_module(site)
        assert module.suppress_stdout_stderr is applog._NoSwap
    before = sys.stderr
    with applog._NoSwap(disable=False):
        assert sys.stderr is before
