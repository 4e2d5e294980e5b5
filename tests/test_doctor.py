"""`playground doctor` on this machine, --gpu-layers, and GPU offload where a GPU build exists."""

import json

import llama_cpp
import pytest
from click.testing import CliRunner

from playground.cli import cli
from playground.core.doctor import gpu_layers
from playground.core.errors import PlaygroundError


def test_doctor_on_this_machine():
    r = CliRunner().invoke(cli, ["doctor", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["backends"][0] == "CPU" and rep["cpu_threads"] >= 1
    assert {m["id"] for m in rep["models"]} >= {"gemma3-270m", "smollm2-135m-instruct"}
    assert all(m["fits_ram"] for m in rep["models"])
    if not rep["gpu_offload"]:
        assert "CUDA (NVIDIA)" in rep["install_gpu_build"]
        assert "-DGGML_CUDA=on" in rep["install_gpu_build"]["CUDA (NVIDIA)"]
    text = CliRunner().invoke(cli, ["doctor"]).output
    assert "backends: CPU" in text and "Catalog models" in text


def test_gpu_layers_values():
    assert gpu_layers("all") == -1 and gpu_layers("12") == 12 and gpu_layers(None) is None
    assert gpu_layers("auto") == (-1 if llama_cpp.llama_supports_gpu_offload() else 0)
    with pytest.raises(PlaygroundError, match="'all' or 'auto'"):
        gpu_layers("lots")


@pytest.mark.skipif(
    not llama_cpp.llama_supports_gpu_offload(),
    reason="this llama-cpp-python build has no GPU backend",
)
@pytest.mark.slow
def test_default_pair_fully_offloaded(tmp_path):
    r = CliRunner().invoke(
        cli,
        [
            "ask",
            "What is 2+2?",
            "--gpu-layers",
            "all",
            "--max-tokens",
            "16",
            "--json",
            "--db",
            str(tmp_path / "g.db"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert all(lane["status"] == "complete" for lane in json.loads(r.stdout)["lanes"])
