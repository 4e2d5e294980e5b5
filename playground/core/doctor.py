"""`playground doctor`: what this machine and this llama.cpp build can do, and what to fix."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any, TypedDict

import psutil

from playground.core import cpuload
from playground.core.catalog import Catalog
from playground.core.engine import cpu_count
from playground.core.errors import PlaygroundError


def llama_cpp_requirement() -> str:
    """The llama-cpp-python version range this package declares (pyproject.toml), so a rebuild
    never installs a version the engine was not tested with."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        for req in requires("playground") or []:
            name = req.split(";")[0].strip()
            if name.lower().startswith("llama-cpp-python") and "[" not in name:
                return name.replace(" ", "")
    except PackageNotFoundError:
        pass
    return "llama-cpp-python"


GPU_FLAGS = {"CUDA (NVIDIA)": "GGML_CUDA", "Metal (Apple)": "GGML_METAL", "Vulkan": "GGML_VULKAN"}


def gpu_builds() -> dict[str, str]:
    """The command that rebuilds llama-cpp-python for each GPU backend (read when doctor runs,
    not at import: the package metadata lookup is not free)."""
    requirement = llama_cpp_requirement()
    return {
        name: f'CMAKE_ARGS="-D{flag}=on -DLLAVA_BUILD=OFF" .venv/bin/pip install --force-reinstall '
        f"--no-cache-dir --no-deps '{requirement}'"
        for name, flag in GPU_FLAGS.items()
    }


def gpu_layers(value: str | int | None) -> int | None:
    """--gpu-layers N | all | auto: None keeps each model's catalog setting."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    v = value.strip().lower()
    if v == "all":
        return -1
    if v == "auto":
        import llama_cpp

        return -1 if llama_cpp.llama_supports_gpu_offload() else 0
    if re.fullmatch(r"-?\d+", v) and int(v) >= -1:
        return int(v)
    raise PlaygroundError(f"--gpu-layers takes a number of layers, 'all' or 'auto', not {value!r}")


class GPUDevice(TypedDict):
    """One NVIDIA GPU as nvidia-smi reports it."""

    name: str
    memory_total_mb: int
    memory_free_mb: int


def nvidia_devices() -> list[GPUDevice]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    devices: list[GPUDevice] = []
    for line in out.strip().splitlines():
        name, total, free = (x.strip() for x in line.split(","))
        devices.append({"name": name, "memory_total_mb": int(total), "memory_free_mb": int(free)})
    return devices


def report(catalog: Catalog) -> dict[str, Any]:
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    backends = ["CPU"] + [
        name
        for name, flag in (
            ("CUDA", "CUDA"),
            ("Metal", "METAL"),
            ("Vulkan", "VULKAN"),
            ("SYCL", "SYCL"),
            ("HIP", "HIP"),
        )
        if flag in info.upper()
    ]
    cpu_features = sorted(set(re.findall(r"(\w+) = 1", info)))
    vm = psutil.virtual_memory()
    devices = nvidia_devices()
    models: list[dict[str, Any]] = []
    for spec in catalog.models.values():
        row: dict[str, Any] = {"id": spec.id, "kind": spec.kind, "n_gpu_layers": spec.n_gpu_layers}
        try:
            gg = spec.inspect()
            need = gg.size * 1.2 + 64e6  # weights plus room for the KV cache and buffers at 4k
            row.update(size_mb=round(gg.size / 1e6), fits_ram=need < vm.available)
            if devices:
                row["fits_gpu"] = need < devices[0]["memory_free_mb"] * 1e6
        except PlaygroundError as e:
            row.update(error=str(e))
        models.append(row)
    return {
        "llama_cpp_python": llama_cpp.__version__,
        "backends": backends,
        "gpu_offload": gpu,
        "cpu_features": cpu_features,
        "cpu_threads": cpu_count(),
        "cpu_busy_elsewhere": round(cpuload.WATCH.measure(), 2),
        "threads_per_lane_one_model": cpuload.WATCH.free_cores(),
        "threads_per_lane_two_models": max(1, cpuload.WATCH.free_cores() // 2),
        "memory_total_mb": round(vm.total / 1e6),
        "memory_available_mb": round(vm.available / 1e6),
        "gpu_devices": devices,
        "models": models,
        "install_gpu_build": {} if gpu else gpu_builds(),
    }
