"""What the numbers were measured on: CPU, GPU, memory, load and library versions."""

from __future__ import annotations

import datetime as _dt
import importlib
import importlib.metadata as md
import os
import platform
import shutil
import socket
import subprocess
import sys
from typing import Any

LIBRARIES = {
    # distribution name -> import name (None: read the version from metadata only)
    "torch": "torch",
    "onnxruntime": "onnxruntime",
    "onnx": "onnx",
    "openvino": None,
    "numpy": "numpy",
    "nvidia-pytriton": None,  # bundles tritonserver (its version is read from a live server)
    "tritonclient": None,
    "tensorrt": None,
    "mediapipe": None,
}


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def cpu_info() -> dict[str, Any]:
    """CPU model, logical/physical cores and the cores this process may use."""
    text = _read("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    cores = {(line_pkg, line_core) for line_pkg, line_core in _core_ids(text)}
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    return {
        "model": model or platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "logical_cores": os.cpu_count() or 0,
        "physical_cores": len(cores) or None,
        "usable_cores": usable,
    }


def _core_ids(cpuinfo: str) -> list[tuple[str, str]]:
    ids, pkg = [], "0"
    for line in cpuinfo.splitlines():
        if line.startswith("physical id"):
            pkg = line.split(":", 1)[1].strip()
        elif line.startswith("core id"):
            ids.append((pkg, line.split(":", 1)[1].strip()))
    return ids


def memory_gib() -> float | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return None


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def gpu_info() -> dict[str, Any]:
    """CUDA devices seen by torch and the driver version from nvidia-smi; empty without a GPU."""
    info: dict[str, Any] = {"cuda_available": False, "devices": []}
    try:
        import torch

        info["torch_cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            info["cuda_available"] = True
            info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            ).stdout.strip()
            info["nvidia_smi"] = out.splitlines()
            if out:
                info["driver"] = out.splitlines()[0].split(",")[1].strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in LIBRARIES:
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    try:
        import onnxruntime as ort

        versions["onnxruntime_providers"] = ",".join(ort.get_available_providers())
    except ImportError:
        pass
    return versions


def thread_settings() -> dict[str, Any]:
    out: dict[str, Any] = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if os.environ.get(k)}
    try:
        torch = importlib.import_module("torch")
        out["torch_threads"] = torch.get_num_threads()
        out["torch_interop_threads"] = torch.get_num_interop_threads()
    except ImportError:
        pass
    return out


def machine_info() -> dict[str, Any]:
    """Everything that explains a number: host, CPU, memory, GPU, load, threads and versions."""
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu_info(),
        "memory_gib": memory_gib(),
        "gpu": gpu_info(),
        "load_average_start": load_average(),
        "threads": thread_settings(),
        "libraries": library_versions(),
        "executable": sys.executable,
    }


def describe(machine: dict[str, Any]) -> str:
    """One line for a report: CPU, cores, memory, GPU."""
    cpu = machine.get("cpu", {})
    gpu = machine.get("gpu", {})
    gpus = ", ".join(gpu.get("devices") or []) or "no GPU"
    driver = f" (driver {gpu['driver']})" if gpu.get("driver") else ""
    return (
        f"{cpu.get('model', '?')}, {cpu.get('usable_cores', '?')} usable cores "
        f"({cpu.get('logical_cores', '?')} logical), {machine.get('memory_gib', '?')} GiB RAM, {gpus}{driver}"
    )
