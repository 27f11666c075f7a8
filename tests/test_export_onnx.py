"""ONNX export: export-friendly ops, graphs verified in ONNX Runtime, the cptr-export command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from cptr import contracts
from cptr.engines.onnxruntime import ort_session, physical_cores
from cptr.export import onnx as ox
from cptr.export import rewrite, stages
from cptr.io import sha256_file
from cptr.models import set_fused_modconv
from cptr.ops import make_kernel, upfirdn2d_ref
from tests.conftest import make_tiny_generator, manifest_of

STANDARD_DOMAINS = {"", "ai.onnx"}


@pytest.fixture(scope="module")
def g64():
    return make_tiny_generator(64, seed=3)


# --------------------------------------------------------------------------- export-friendly ops


@pytest.mark.parametrize("pad", [(1, 1), (2, 1), (0, 0), (3, 2), (-1, 2)])
@pytest.mark.parametrize("taps", [[1, 3, 3, 1], [1, 2, 1], "2d"])
def test_fir_filter_matches_reference(pad, taps) -> None:
    torch.manual_seed(0)
    kernel = torch.rand(4, 3) if taps == "2d" else make_kernel(taps) * 4
    x = torch.randn(2, 5, 9, 9, dtype=torch.float64)
    ref = upfirdn2d_ref(x, kernel.double(), pad=pad)
    out = rewrite.FIRFilter(kernel, pad, 5).double()(x)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("pad", [(2, 1), (1, 1), (3, 3), (0, 0), (4, 2)])
@pytest.mark.parametrize("taps", [[1, 3, 3, 1], [1, 2, 1]])
def test_fir_upsample_matches_reference(pad, taps) -> None:
    torch.manual_seed(0)
    kernel = make_kernel(taps) * 4
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64)
    ref = upfirdn2d_ref(x, kernel.double(), up=2, pad=pad)
    out = rewrite.FIRUpsample2x(kernel, pad, 3).double()(x)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_export_synthesis_module_matches_generator_float64(g64) -> None:
    g = make_tiny_generator(64, seed=3).double()
    w = torch.randn(3, g.n_latent, g.style_dim, dtype=torch.float64)
    ref = stages.SynthesisReference(g)(w)  # fused modconv, reference ops
    set_fused_modconv(g, False)
    out = rewrite.ExportSynthesis(g).double()(w)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-9)


# --------------------------------------------------------------------------- graphs in ONNX Runtime


def _check_graph(path: Path, opset_min: int = 17) -> onnx.ModelProto:
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in STANDARD_DOMAINS) >= opset_min
    assert {n.domain for n in model.graph.node} <= STANDARD_DOMAINS
    for io in list(model.graph.input) + list(model.graph.output):
        assert io.type.tensor_type.elem_type == onnx.TensorProto.FLOAT, io.name
        assert io.type.tensor_type.shape.dim[0].dim_param, f"{io.name}: batch axis is not dynamic"
    return model


def test_synthesis_fp32_matches_pytorch_at_batch_1_and_3(tmp_path, g64) -> None:
    art = ox.export_synthesis(g64, tmp_path / "syn.onnx")
    assert set(art.max_abs_error) == {"batch1", "batch3"}
    assert max(art.max_abs_error.values()) < 1e-4
    model = _check_graph(art.onnx_path)
    assert [i.name for i in model.graph.input] == ["w_plus"] and [o.name for o in model.graph.output] == ["image"]
    # a batch size never seen at export time, against the generator with fused modconv
    w = stages.synthesis_inputs(g64, seed=9)(5)[0]
    out = ort_session(art.onnx_path).run(None, {"w_plus": w.numpy()})[0]
    with torch.no_grad():
        ref = stages.SynthesisReference(g64)(w).numpy()
    assert out.shape == (5, 3, 64, 64)
    assert np.abs(out - ref).max() < 1e-4


def test_synthesis_fp16_within_tolerance(tmp_path, g64) -> None:
    art = ox.export_synthesis(g64, tmp_path / "syn16.onnx", precision="fp16")
    model = _check_graph(art.onnx_path)
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    # Measured on this model (seed 3): 0.0070 at batch 1 and 0.0323 at batch 3, against images up to 25.3 in
    # magnitude (random weights), i.e. 0.13% of the image range. The exporter's own gate is 2e-2 x max(1, |image|).
    assert 0 < art.max_abs_error["batch1"] < 0.01 and 0 < art.max_abs_error["batch3"] < 0.05
    assert art.extra["precision"] == "fp16" and art.extra["tolerance"] == 2e-2


def test_mapping_truncation_default_and_override(tmp_path, g64) -> None:
    art = ox.export_mapping(g64, tmp_path / "map.onnx", default_truncation=0.5)
    assert [s.name for s in art.inputs] == ["z"] and art.extra["input_defaults"] == {"truncation": 0.5}
    assert set(art.max_abs_error) == {"batch1", "batch3", "batch1_defaults", "batch3_defaults"}
    sess = ort_session(art.onnx_path)
    assert [i.name for i in sess.get_inputs()] == ["z"]  # what Triton sees
    z = torch.randn(4, g64.style_dim)
    avg = stages.truncation_mean(g64)
    with torch.no_grad():
        w = g64.style(z)
    for psi in (0.5, None, 1.0, 0.0):
        feeds = {"z": z.numpy()}
        if psi is not None:
            feeds["truncation"] = np.full((4, 1), psi, np.float32)
        out = sess.run(None, feeds)[0]
        p = 0.5 if psi is None else psi
        np.testing.assert_allclose(out, (avg + p * (w - avg)).numpy(), atol=1e-4)


def test_generator_graph(tmp_path, g64) -> None:
    art = ox.export_generator(g64, tmp_path / "gen.onnx", batch_sizes=(2,))
    assert max(art.max_abs_error.values()) < 1e-4
    _check_graph(art.onnx_path)


def test_verification_fails_loudly_on_a_wrong_graph(tmp_path, g64) -> None:
    path = tmp_path / "syn.onnx"
    art = ox.export_synthesis(g64, path)
    before = path.read_bytes()
    # a different generator as the reference: refused, and the previous file stays as it was
    other = make_tiny_generator(64, seed=4)
    set_fused_modconv(other, False)
    with pytest.raises(ox.VerificationError, match="differs from PyTorch by .* at batch 1"):
        ox.export_module(
            rewrite.ExportSynthesis(set_fused_modconv(make_tiny_generator(64, seed=3), False)),
            stages.synthesis_inputs(g64)(1),
            art.inputs,
            art.outputs,
            path,
            reference=stages.SynthesisReference(other),
            make_inputs=stages.synthesis_inputs(g64),
        )
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["syn.onnx"]  # no temporary leftovers
    # tampered weights: one initializer scaled by 1.01
    model = onnx.load(str(path))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    arr = onnx.numpy_helper.to_array(init) * 1.01
    init.CopyFrom(onnx.numpy_helper.from_array(arr.astype(np.float32), init.name))
    bad = tmp_path / "tampered.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(ox.VerificationError, match="tolerance 0.001"):
        ox.verify_onnx(bad, stages.SynthesisReference(g64), art.inputs, art.outputs, stages.synthesis_inputs(g64), 1e-3)


def test_export_rejects_bad_options(tmp_path, g64) -> None:
    with pytest.raises(ox.ExportError, match="precision"):
        ox.export_synthesis(g64, tmp_path / "x.onnx", precision="int4")
    with pytest.raises(ox.ExportError, match="opset"):
        ox.export_synthesis(g64, tmp_path / "x.onnx", opset=13)


def test_runtime_session_options(tmp_path, g64) -> None:
    """The served sessions' options: every graph optimisation, sequential execution, one inter-op
    thread, the given (else physical-core) intra-op threads, no spinning unless asked."""
    import onnxruntime as ort

    from cptr.engines.onnxruntime import session_options

    assert 1 <= physical_cores() <= (os.cpu_count() or 1)
    so = session_options(threads=3)
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert so.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert (so.intra_op_num_threads, so.inter_op_num_threads) == (3, 1)
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert session_options(spin=True).get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert session_options().intra_op_num_threads == physical_cores()
    art = ox.export_mapping(g64, tmp_path / "m.onnx")
    sess = ort_session(art.onnx_path, threads=2, optimized_model_path=tmp_path / "opt.onnx")
    assert sess.get_session_options().intra_op_num_threads == 2 and sess.get_providers() == ["CPUExecutionProvider"]
    assert (tmp_path / "opt.onnx").is_file()  # the optimised graph ORT actually runs


# --------------------------------------------------------------------------- cptr-export


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("cptr-export")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "cptr.export.cli"]


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    out = root / "repo"
    env = {**os.environ, "CPTR_HOME": str(root / "home")}
    r = subprocess.run(
        [*_cli(), "--style", "demo", "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return out


def test_cli_demo_export_writes_verified_models(demo_export) -> None:
    out = demo_export
    manifest = manifest_of(out)
    from cptr.demo import SERVED_ALPHA

    assert manifest["style"] == "demo" and manifest["alpha"] == SERVED_ALPHA  # the demo style's own blend
    from cptr import demo

    assert manifest["source"] == f"sha256:{sha256_file(demo.SOURCE)}" and manifest["target"] == f"sha256:{sha256_file(demo.TARGET)}"
    assert manifest["opset"] >= 17 and manifest["precision"] == "fp32"
    for key in ("torch", "onnx", "onnxruntime", "cptr"):
        assert manifest["versions"][key]
    assert {"mapping_demo", "synthesis_demo", "encoder_demo"} <= set(manifest["models"])
    assert (out / "cartoonize_demo" / "config.pbtxt").is_file() and (out / "generate_demo" / "config.pbtxt").is_file()
    for name, entry in manifest["models"].items():
        path = out / entry["file"]
        assert path == out / name / "1" / "model.onnx" and path.is_file()
        assert sha256_file(path) == entry["sha256"]
        assert set(entry["max_abs_error"]) >= {"batch1", "batch3"}
        assert max(entry["max_abs_error"].values()) < 1e-3
    syn = ort_session(out / "synthesis_demo" / "1" / "model.onnx")
    w = np.zeros((1, manifest["n_latent"], manifest["style_dim"]), np.float32)
    assert syn.run(None, {"w_plus": w})[0].shape == (1, 3, 64, 64)  # the shipped 64 px demo models
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".repo.")]  # no temporary dirs left


def test_benchmark_measures_the_graphs_cptr_export_writes(demo_export, tmp_path) -> None:
    """The benchmark's mapping, synthesis, encoder and mapper graphs are the very files cptr-export serves."""
    from cptr.bench.targets import Context, export_onnx
    from cptr.bench.workloads import build_workload

    manifest = manifest_of(demo_export)
    served = {"mapping": "mapping_demo", "synthesis": "synthesis_demo", "encoder": "encoder_demo", "mapper": "mapper_demo_smile"}
    ctx = Context(workdir=tmp_path)
    for stage, model in served.items():
        wl = build_workload(stage, "demo")
        path = export_onnx(wl, "fp32", ctx)
        entry = manifest["models"][model]
        assert sha256_file(path) == entry["sha256"] == sha256_file(demo_export / entry["file"]), stage
        assert [s.name for s in wl.inputs] == [s["name"] for s in entry["inputs"]], stage  # what Triton sends


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def test_failed_export_leaves_previous_output_intact(demo_export, monkeypatch, tmp_path) -> None:
    from typer.testing import CliRunner

    from cptr.export import cli

    before = _snapshot(demo_export)
    real = ox.export_stage

    def synthesis_then_crash(stage, *args, **kwargs):
        art = real(stage, *args, **kwargs)  # files are staged in the temporary directory by now
        if stage.key == contracts.SYNTHESIS:
            raise KeyboardInterrupt("injected interruption")
        return art

    monkeypatch.setattr(ox, "export_stage", synthesis_then_crash)
    with pytest.raises(KeyboardInterrupt):
        cli.run_export(cli.ExportOptions(out=demo_export, style="demo", quiet=True))
    assert _snapshot(demo_export) == before
    monkeypatch.setattr(ox, "export_stage", real)
    # an invalid option detected only after the generators are loaded (swap_res of a 256 px style)
    r = CliRunner().invoke(cli.app, ["--style", "demo", "--swap-res", "48", "--out", str(demo_export), "--quiet"])
    assert r.exit_code == 1 and "swap_res must be one of" in r.output
    # a style that does not exist
    monkeypatch.setenv("CPTR_HOME", str(tmp_path / "home"))
    r = CliRunner().invoke(cli.app, ["--style", "webtoon", "--out", str(demo_export), "--quiet"])
    assert r.exit_code == 1 and "style 'webtoon' is not registered; known: demo" in r.output
    assert _snapshot(demo_export) == before
    assert not [p for p in demo_export.parent.iterdir() if p.name.startswith(".repo.")]


def test_cli_engine_trt_fails_clearly(tmp_path) -> None:
    from typer.testing import CliRunner

    from cptr.export import cli

    r = CliRunner().invoke(cli.app, ["--engine", "trt", "--out", str(tmp_path / "o"), "--quiet"])
    assert r.exit_code == 1 and "tensorrt" in r.output.lower()
    assert not (tmp_path / "o").exists()
    assert "is unchanged" not in r.output  # there was none
    (tmp_path / "old").mkdir()
    r = CliRunner().invoke(cli.app, ["--engine", "trt", "--out", str(tmp_path / "old"), "--quiet"])
    assert r.exit_code == 1 and f"(the repository {tmp_path / 'old'} is unchanged)" in r.output


def test_cli_tiny_checkpoints_with_encoder_and_injected_mapper(tmp_path) -> None:
    """--source/--target paths, an encoder and a mapper with latent injection (inject_k=3)."""
    from typer.testing import CliRunner

    from cptr.export import cli
    from cptr.models.checkpoints import save_generator
    from cptr.models.encoder import Encoder, save_encoder, small_encoder_config
    from cptr.models.mapper import LevelsMapper, save_mapper

    src, tgt = make_tiny_generator(64, seed=0), make_tiny_generator(64, seed=1)
    sp, tp = save_generator(src, tmp_path / "s.pt"), save_generator(tgt, tmp_path / "t.pt")
    torch.manual_seed(0)
    enc = Encoder(**small_encoder_config(src.n_latent, src.style_dim, input_size=64, width=8)).eval()
    ep = save_encoder(enc, tmp_path / "enc.pt")
    mapper = LevelsMapper(n_latent=src.n_latent, style_dim=src.style_dim, n_layers=2, lr_mul=1.0)
    with torch.no_grad():
        for p in mapper.parameters():
            p.normal_()
    mp = save_mapper(mapper, tmp_path / "smile.pt")
    out = tmp_path / "repo"
    args = [
        "--source",
        str(sp),
        "--target",
        str(tp),
        "--style",
        "tiny",
        "--alpha",
        "0.5",
        "--swap-res",
        "16",
        "--encoder",
        str(ep),
        "--mapper",
        f"smile={mp}",
        "--inject-k",
        "3",
        "--out",
        str(out),
        "--quiet",
    ]
    r = CliRunner().invoke(cli.app, args)
    assert r.exit_code == 0, r.output
    manifest = manifest_of(out)
    assert manifest["source"] == f"sha256:{sha256_file(sp)}" and manifest["swap_res"] == 16
    assert manifest["blend_weights"] == {"4": 0.0, "8": 0.0, "16": 0.5, "32": 0.5, "64": 0.5}
    assert {"mapping_tiny", "synthesis_tiny", "encoder_tiny", "mapper_tiny_smile"} <= set(manifest["models"])
    assert manifest["models"]["mapper_tiny_smile"]["inject_k"] == 3
    sess = ort_session(out / "mapper_tiny_smile" / "1" / "model.onnx")
    w = np.random.default_rng(0).normal(size=(2, src.n_latent, src.style_dim)).astype(np.float32)
    edited = sess.run(None, {sess.get_inputs()[0].name: w})[0]
    assert np.array_equal(edited[:, :3], w[:, :3])  # injected: the coarse entries are the input's
    assert np.abs(edited[:, 3:] - w[:, 3:]).max() > 1e-3  # the rest is edited
    assert (out / "cartoonize_tiny_smile" / "config.pbtxt").is_file()
    # a mapper file that is not a mapper: the export fails late, the repository stays as it was
    before = _snapshot(out)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    r = CliRunner().invoke(cli.app, [*args[:-3], "--mapper", f"frown={junk}", "--out", str(out), "--quiet"])
    assert r.exit_code == 1 and "mapper 'frown'" in r.output and "junk.pt" in r.output
    assert _snapshot(out) == before


def test_registered_style_exports_with_its_registry_settings(tmp_path, monkeypatch) -> None:
    """`cptr styles add` settings (alpha, swap_res, blend_width, inject_k, encoder, mapper) are what `cptr-export
    --style NAME` builds: the manifest records them and the exported synthesis is the blend they define (within the
    export's own 1e-3 gate, measured ~1e-6); an option typed on the command line overrides the registry's."""
    from typer.testing import CliRunner

    from cptr.export import cli
    from cptr.models.checkpoints import save_generator
    from cptr.models.encoder import Encoder, save_encoder, small_encoder_config
    from cptr.models.mapper import LevelsMapper, save_mapper
    from cptr.styles import add_style
    from cptr.styles.blend import blend_generators

    monkeypatch.setenv("CPTR_HOME", str(tmp_path / "home"))
    src, tgt = make_tiny_generator(64, seed=0), make_tiny_generator(64, seed=1)
    sp, tp = save_generator(src, tmp_path / "s.pt"), save_generator(tgt, tmp_path / "t.pt")
    torch.manual_seed(0)
    ep = save_encoder(Encoder(**small_encoder_config(src.n_latent, src.style_dim, input_size=64, width=8)).eval(), tmp_path / "enc.pt")
    mp = save_mapper(LevelsMapper(n_latent=src.n_latent, style_dim=src.style_dim, n_layers=2, lr_mul=1.0), tmp_path / "smile.pt")
    add_style("reg", sp, tp, alpha=0.4, swap_res=16, blend_width=0.5, inject_k=2, encoder=ep, mappers={"smile": str(mp)})
    out = tmp_path / "repo"
    r = CliRunner().invoke(cli.app, ["--style", "reg", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    m = manifest_of(out)
    assert (m["alpha"], m["swap_res"], m["blend_width"], m["inject_k"]) == (0.4, 16, 0.5, 2)
    assert m["models"]["mapper_reg_smile"]["inject_k"] == 2 and "encoder_reg" in m["models"]
    w = np.random.default_rng(1).normal(size=(2, src.n_latent, src.style_dim)).astype(np.float32)
    sess = ort_session(out / "synthesis_reg" / "1" / "model.onnx")
    got = sess.run(None, {sess.get_inputs()[0].name: w})[0]
    with torch.no_grad():
        want = blend_generators(src, tgt, 0.4, 16, 0.5)([torch.from_numpy(w)], input_is_latent=True, randomize_noise=False)[0].numpy()
        other = blend_generators(src, tgt, 0.7, None, None)([torch.from_numpy(w)], input_is_latent=True, randomize_noise=False)[0].numpy()
    assert np.abs(got - want).max() < 1e-3 and np.abs(got - other).max() > 1e-2
    # a typed option wins over the registry's
    r = CliRunner().invoke(cli.app, ["--style", "reg", "--alpha", "0.9", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert manifest_of(out)["alpha"] == 0.9
