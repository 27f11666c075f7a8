"""`cptr-export --engine torch` repositories: Triton's Python models serve the compiled .pt2 engines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cptr.client import CartoonClient
from cptr.serving.server import TritonServer
from tests.conftest import export_repository
from tests.test_serving import STYLE, Reference


@pytest.fixture(scope="module")
def torch_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_repository(tmp_path_factory, "torch_engine", ["--style", STYLE, "--engine", "torch"])


def test_served_torch_engines_match_onnx(torch_repo: Path) -> None:
    for stage in ("mapping", "synthesis"):
        assert (torch_repo / f"{stage}_{STYLE}" / "1" / "model.pt2").is_file()
    ref = Reference(torch_repo)  # the ONNX files of the same export, run in this process
    seeds = [3, 11, 2**33]
    mix = (5, 6)
    with TritonServer(torch_repo) as server:
        with CartoonClient(server.grpc_url, "grpc", timeout_s=120) as client:
            got = client.generate(seeds, style=STYLE, output="tensor")
            mixed = client.generate(seeds, style=STYLE, mix=mix, output="tensor")
        log = server.log_tail(100_000)
    # the engines really served (no silent fallback to ONNX Runtime)
    assert f"mapping_{STYLE}: serving torch engine model.pt2 on cpu" in log
    assert f"synthesis_{STYLE}: serving torch engine model.pt2 on cpu" in log
    assert "not usable here" not in log
    assert np.abs(got - ref.generate(seeds)).max() < 1e-3
    assert np.abs(mixed - ref.generate(seeds, mix)).max() < 1e-3


def test_a_corrupted_engine_falls_back_to_onnx_runtime(torch_repo: Path, tmp_path: Path) -> None:
    """A `model.pt2` that cannot load (here: truncated to its first KiB) is not fatal: the stage logs why and
    serves `model.onnx` with ONNX Runtime; the intact mapping stage keeps its torch engine, and the answers match
    the in-process ONNX reference within 1e-3, the torch engines' bound above."""
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(torch_repo, repo)
    engine = repo / f"synthesis_{STYLE}" / "1" / "model.pt2"
    engine.write_bytes(engine.read_bytes()[:1024])
    ref = Reference(repo)
    seeds = [3, 11]
    with TritonServer(repo) as server:
        with CartoonClient(server.grpc_url, "grpc", timeout_s=120) as client:
            got = client.generate(seeds, style=STYLE, output="tensor")
        log = server.log_tail(100_000)
    assert f"synthesis_{STYLE}: torch engine {engine} not usable here" in log and "using ONNX Runtime" in log
    assert f"mapping_{STYLE}: serving torch engine model.pt2 on cpu" in log
    assert np.abs(got - ref.generate(seeds)).max() < 1e-3
