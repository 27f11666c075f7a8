"""The AOTInductor engine: compiled on CPU here (and on CUDA when present), compared with eager."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cptr.engines.torch_aot import build_torch_engine, load_torch_engine
from cptr.export.rewrite import ExportSynthesis
from cptr.export.stages import SynthesisReference, inference_copy
from cptr.models import set_fused_modconv
from tests.conftest import make_tiny_generator


def _check_engine(tmp_path: Path, device: str, precision: str, tol: float) -> dict:
    g = set_fused_modconv(make_tiny_generator(32), False)
    eager = SynthesisReference(g).eval()
    path = tmp_path / "synthesis.pt2"
    # the module cptr-export compiles (buffer names become C++ identifiers in the AOTInductor wrapper)
    meta = build_torch_engine(
        ExportSynthesis(inference_copy(make_tiny_generator(32))),
        [torch.randn(2, g.n_latent, g.style_dim)],
        ["w_plus"],
        path,
        device=device,
        precision=precision,
        batch_max=8,
    )
    assert path.is_file() and not list(tmp_path.glob(".*tmp*")), "engine must be written atomically"
    engine = load_torch_engine(path, device)
    for batch in (1, 5):
        w = torch.randn(batch, g.n_latent, g.style_dim)
        with torch.no_grad():
            want = eager(w)
            got = engine(w.to(device)).float().cpu()
        assert got.shape == want.shape
        assert (got - want).abs().max().item() < tol
    return meta


def test_cpu_engine_matches_eager(tmp_path: Path) -> None:
    meta = _check_engine(tmp_path, "cpu", "fp32", 1e-4)
    assert meta["precision"] == "fp32" and meta["batch"] == [1, 8]


def test_fp16_needs_cuda(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fp16 torch engines are built for CUDA"):
        build_torch_engine(torch.nn.Identity(), [torch.zeros(1, 2)], ["x"], tmp_path / "x.pt2", device="cpu", precision="fp16")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fp16_engine_matches_eager(tmp_path: Path) -> None:
    _check_engine(tmp_path, "cuda", "fp16", 2e-2)
