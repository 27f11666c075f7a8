"""The GPU device check, rehearsed on the CPU (docs/device_check.md).

``make wheelhouse`` into a temporary folder, then ``benchmarks/device_check.sh --dry-run``: a fresh venv
with no package index, into which only torch, numpy, onnx and onnxruntime (what the GPU machine has) are
linked from this environment; everything else must come from the wheelhouse. The install and CPU steps
pass, the GPU steps are skipped with "no CUDA", and it all fits the check's default 8-minute budget.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "device_check.sh"
MAX_MB = 60
GPU_STEPS = ("bench-256", "bench-graph", "bench-aoti", "bench-1024")
# pip's words for "could not reach the package index" (and what an offline resolver then says)
OFFLINE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution|Max retries exceeded"
    r"|Network is unreachable|ProxyError|ConnectTimeout|ReadTimeout|Could not fetch URL|No matching distribution found"
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(torch.cuda.is_available(), reason="the rehearsal is for CPU machines; here run the real check"),
    pytest.mark.skipif(shutil.which("make") is None or shutil.which("timeout") is None, reason="needs make and timeout (coreutils)"),
]


def _wheelhouse(tmp_path: Path) -> Path:
    """A fresh `make wheelhouse` of this tree; the existing dist/wheelhouse if PyPI cannot be reached."""
    dest = tmp_path / "wheelhouse"
    proc = subprocess.run(
        ["make", "-s", "wheelhouse", f"WHEELHOUSE={dest}", f"WHEELHOUSE_PY={sys.executable}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = proc.stdout + proc.stderr
    if proc.returncode == 0:
        size = re.search(r"(\d+) wheels, (\d+) MiB \((\d+) KiB\)", log)
        assert size, log[-2000:]
        assert int(size.group(3)) * 1024 <= MAX_MB * 1000**2, f"the wheelhouse is over {MAX_MB} MB: {size.group(0)}"
        return dest
    offline = OFFLINE.findall(log)
    assert offline, f"make wheelhouse failed, and not for want of a network:\n{log[-3000:]}"
    existing = ROOT / "dist" / "wheelhouse"
    if list(existing.glob("cptr-*.whl")):
        return existing
    pytest.skip(f"PyPI unreachable (make wheelhouse: {offline[-1]}) and no dist/wheelhouse to fall back on")


@pytest.mark.network
@pytest.mark.skipif(
    os.environ.get("CPTR_NETWORK_TESTS") != "1" and not list((ROOT / "dist" / "wheelhouse").glob("cptr-*.whl")),
    reason="builds the wheelhouse from the package index: set CPTR_NETWORK_TESTS=1 (or run `make wheelhouse` first)",
)
def test_dry_run_installs_offline_and_skips_only_the_gpu_steps(tmp_path: Path) -> None:
    wheelhouse = _wheelhouse(tmp_path) if os.environ.get("CPTR_NETWORK_TESTS") == "1" else ROOT / "dist" / "wheelhouse"
    names = [p.name for p in wheelhouse.iterdir()]
    assert any(n.startswith("cptr-") for n in names) and all(n.endswith(".whl") for n in names), names
    assert not [n for n in names if re.match(r"(torch|nvidia|triton|numpy)[-_]", n, re.I)], names
    assert sum(p.stat().st_size for p in wheelhouse.iterdir()) <= MAX_MB * 1000**2

    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "TMPDIR": str(tmp_path)}
    proc = subprocess.run(
        [str(SCRIPT), "--dry-run", "--wheelhouse", str(wheelhouse), "--python", sys.executable],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=720,
    )
    tail = (proc.stdout + proc.stderr)[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    steps = {s["name"]: s for s in summary["steps"]}
    assert proc.returncode == 0 and summary["counts"]["fail"] == 0, tail

    assert summary["mode"] == "dry-run" and summary["elapsed_s"] <= summary["budget_s"] == 480
    for name in ("install", "versions", "smoke"):
        assert steps[name]["status"] == "pass", (name, steps[name])
    assert "unchanged" in steps["install"]["reason"]  # the machine's torch and numpy were not replaced
    assert f"torch {torch.__version__}" in steps["install"]["reason"]
    for name in ("kernels", "pytest-gpu", *GPU_STEPS):
        assert steps[name]["status"] == "skipped" and "no CUDA" in steps[name]["reason"], (name, steps[name])
    assert "gpu tests collected" in steps["pytest-gpu"]["reason"]  # every module with gpu tests imported
    assert steps["plot"]["status"] == "skipped"

    versions = json.loads((out / "versions.json").read_text())
    assert versions["torch"] == torch.__version__ and versions["cuda_available"] is False
    md = (out / "summary.md").read_text()
    assert "| install | pass |" in md and "| bench-256 | skipped |" in md
    assert (out / "pytest-gpu.xml").is_file() and list((out / "smoke").glob("*.json"))
    for name in ("install", "versions", "smoke", "kernels", "pytest-gpu"):
        assert (out / "logs" / f"{name}.log").is_file(), name
    assert not list(tmp_path.glob("cptr-device-check.*")), "the temporary venv must be removed"
