"""The plugin-node ONNX graph (what TensorRT maps to CUDA plugins) runs in ONNX Runtime and matches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from cptr.export.stages import SynthesisReference
from cptr.models import set_fused_modconv
from cptr.ops import PLUGIN_NAMESPACE, export_plugin_nodes
from tests.conftest import make_tiny_generator, manifest_of

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime_extensions")
from cptr.engines.onnxruntime import ort_session  # noqa: E402
from cptr.engines.plugin_ops import has_plugin_nodes  # noqa: E402


def _export(module: torch.nn.Module, example: torch.Tensor, path: Path, plugins: bool) -> None:
    with export_plugin_nodes(plugins):
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["w_plus"],
            output_names=["image"],
            dynamic_axes={"w_plus": {0: "batch"}, "image": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def test_plugin_graph_matches_standard_graph(tmp_path: Path) -> None:
    g = set_fused_modconv(make_tiny_generator(32), False)
    m = SynthesisReference(g).eval()
    example = torch.randn(2, g.n_latent, g.style_dim)
    _export(m, example, tmp_path / "plugin.onnx", plugins=True)
    _export(m, example, tmp_path / "standard.onnx", plugins=False)

    model = onnx.load(str(tmp_path / "plugin.onnx"))
    ops = [n for n in model.graph.node if n.op_type in ("UpFirDn2d", "FusedBiasLeakyReLU")]
    # every FIR filter and every synthesis bias-act became a plugin node carrying the namespace
    assert sum(n.op_type == "UpFirDn2d" for n in ops) == 2 * len(g.to_rgbs)
    assert sum(n.op_type == "FusedBiasLeakyReLU" for n in ops) == g.num_layers
    for n in ops:  # node attributes are exactly the TensorRT plugin fields
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        assert attrs["plugin_namespace"] == PLUGIN_NAMESPACE.encode()
        if n.op_type == "UpFirDn2d":
            assert len(n.input) == 1 and attrs["kh"] == attrs["kw"] == 4 and len(attrs["kernel"]) == 16
            assert {"up", "down", "pad0", "pad1"} <= set(attrs)
        else:
            assert len(n.input) == 2 and abs(attrs["negative_slope"] - 0.2) < 1e-7 and abs(attrs["scale"] - 2**0.5) < 1e-6
    assert has_plugin_nodes(str(tmp_path / "plugin.onnx")) and not has_plugin_nodes(str(tmp_path / "standard.onnx"))

    plugin = ort_session(str(tmp_path / "plugin.onnx"))
    standard = ort_session(str(tmp_path / "standard.onnx"))
    for batch in (1, 3):
        w = torch.randn(batch, g.n_latent, g.style_dim)
        ref = m(w).detach().numpy()
        a = plugin.run(None, {"w_plus": w.numpy()})[0]
        b = standard.run(None, {"w_plus": w.numpy()})[0]
        assert np.abs(a - b).max() < 1e-4, "plugin graph differs from the standard graph"
        assert np.abs(a - ref).max() < 1e-4, "plugin graph differs from PyTorch"


@pytest.mark.parametrize("precision,tol", [("fp32", 1e-3), ("fp16", 2e-2)])
def test_export_synthesis_with_plugins_is_verified(tmp_path: Path, precision: str, tol: float) -> None:
    from cptr.export.onnx import export_synthesis

    g = make_tiny_generator(32)
    art = export_synthesis(g, tmp_path / "synthesis.onnx", precision, plugins=True)
    assert art.extra["plugins"] == ["UpFirDn2d", "FusedBiasLeakyReLU"]
    assert has_plugin_nodes(str(art.onnx_path))
    assert set(art.max_abs_error) == {"batch1", "batch3"}
    assert max(art.max_abs_error.values()) < tol
    model = onnx.load(str(art.onnx_path))
    # plugin nodes stay fp32 in an fp16 graph: their inputs come from Casts to float
    if precision == "fp16":
        producers = {o: n for n in model.graph.node for o in n.output}
        for n in model.graph.node:
            if n.op_type == "UpFirDn2d":
                assert producers[n.input[0]].op_type == "Cast"


def test_cli_plugins_flag_records_it_in_the_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    from typer.testing import CliRunner

    from cptr.export.cli import app

    monkeypatch.setenv("CPTR_HOME", str(tmp_path / "home"))
    out = tmp_path / "repo"
    result = CliRunner().invoke(app, ["--style", "demo", "--plugins", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = manifest_of(out)
    assert manifest["plugins"] is True
    assert has_plugin_nodes(str(out / "synthesis_demo" / "1" / "model.onnx"))
    assert not has_plugin_nodes(str(out / "mapping_demo" / "1" / "model.onnx"))
