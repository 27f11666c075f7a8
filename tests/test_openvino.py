"""`cptr-export --engine openvino`: IR built from the verified ONNX, checked in image terms, served by Triton.

The exports run the real OpenVINO on this CPU. The bf16 -> fp32 fallback is driven through
``CPTR_OPENVINO_CAPABILITIES`` (the capability list OpenVINO reports, replaced); the code after it
is the real one. The native flavour (Triton's ``openvino`` backend) is not in the bundled server,
so it is checked as config text.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")

from cptr import contracts as C  # noqa: E402
from cptr.engines import openvino as ovx  # noqa: E402
from cptr.helptext import flags  # noqa: E402
from cptr.io import sha256_file  # noqa: E402
from tests.conftest import export_repository, make_tiny_generator, manifest_of  # noqa: E402

STYLE = "demo"
BF16_HERE = "BF16" in ovx.cpu_capabilities()


def _cli(args: list[str], env: dict[str, str] | None = None):
    from typer.testing import CliRunner

    from cptr.export.cli import app

    return CliRunner().invoke(app, args, env=env)


def _output(result) -> str:
    return result.output  # stdout and stderr together


@pytest.fixture(scope="module")
def tiny_synthesis(tmp_path_factory: pytest.TempPathFactory):
    """The catalogue's synthesis stage of a tiny 32 px generator, and its verified ONNX file."""
    from cptr.export import stages
    from cptr.export.onnx import export_stage

    stage = stages.synthesis(make_tiny_generator(32))
    path = tmp_path_factory.mktemp("ov_tiny") / "synthesis.onnx"
    export_stage(stage, path, "fp32", batch_sizes=(1, 2))
    return stage, path


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from cptr.models.checkpoints import save_generator

    root = tmp_path_factory.mktemp("ov_ckpt")
    return (save_generator(make_tiny_generator(32, seed=0), root / "s.pt"), save_generator(make_tiny_generator(32, seed=1), root / "t.pt"))


# --------------------------------------------------------------------------- engine, precision, fallback


def test_engine_config_maps_to_openvino_triton_and_python_parameters() -> None:
    cfg = ovx.EngineConfig("bf16", "throughput", "2", 4)
    assert cfg.streams == 2
    assert cfg.properties() == {
        "INFERENCE_PRECISION_HINT": "bf16",
        "PERFORMANCE_HINT": "THROUGHPUT",
        "NUM_STREAMS": "2",
        "INFERENCE_NUM_THREADS": 4,
    }
    assert cfg.triton_parameters() == {
        "PERFORMANCE_HINT": "THROUGHPUT",
        "NUM_STREAMS": "2",
        "INFERENCE_NUM_THREADS": "4",
        "HINT_BF16": "YES",
    }
    assert ovx.EngineConfig.from_parameters(cfg.python_parameters()) == cfg
    assert ovx.EngineConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    # fp32 is asked for explicitly: on a bf16 CPU OpenVINO's own default is bf16
    assert ovx.EngineConfig().properties()["INFERENCE_PRECISION_HINT"] == "f32"
    assert "HINT_BF16" not in ovx.EngineConfig().triton_parameters()
    assert ovx.EngineConfig(streams="auto").properties()["NUM_STREAMS"] == "AUTO"
    for bad in (
        {"precision": "fp16"},
        {"hint": "fast"},
        {"streams": 0},
        {"streams": "many"},
        {"threads": 0},
        {"static_batches": "0"},
        {"static_batches": "1,x"},
        {"static_batches": list(range(1, 10))},
    ):
        with pytest.raises(ValueError):
            ovx.EngineConfig(**bad)
    static = ovx.EngineConfig("bf16", static_batches="4, 1,4")
    assert static.static_batches == (1, 4) and ovx.EngineConfig(static_batches=[4, 1]) == static.with_precision("fp32")
    assert static.python_parameters()["openvino_static_batches"] == "1,4" and "openvino_static_batches" not in cfg.python_parameters()
    assert ovx.EngineConfig.from_parameters(static.python_parameters()) == static
    assert ovx.EngineConfig.from_dict(json.loads(json.dumps(static.to_dict()))) == static
    assert static.properties() == ovx.EngineConfig("bf16").properties()  # a compile-time shape, not a property


def test_resolve_precision() -> None:
    assert ovx.resolve_precision("bf16", ["FP32", "BF16"]) == ("bf16", None)
    assert ovx.resolve_precision("fp32", []) == ("fp32", None)
    precision, notice = ovx.resolve_precision("bf16", ["FP32", "INT8"])
    assert precision == "fp32" and "bf16 is not available on this CPU" in notice and "FP32, INT8" in notice
    with pytest.raises(ValueError):
        ovx.resolve_precision("fp16", ["FP16"])


def test_bf16_falls_back_to_fp32_on_a_cpu_without_it(tiny_synthesis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The capability list says no BF16: the engine compiles and runs f32, and says so."""
    stage, onnx_path = tiny_synthesis
    xml = tmp_path / "synthesis.xml"
    ovx.convert_onnx(onnx_path, xml)
    monkeypatch.setenv(ovx.CAPABILITIES_ENV, "FP32,INT8")
    assert ovx.cpu_capabilities() == ["FP32", "INT8"]
    engine = ovx.OpenVINOEngine(xml, ovx.EngineConfig("bf16"))
    assert engine.requested == "bf16" and engine.precision == "fp32" and "not available" in engine.notice
    assert engine.runtime_info()["inference_precision"] == "f32"  # OpenVINO really compiled f32
    quality = ovx.verify_engine(engine, stage, (1, 2))
    assert quality["max_abs"] < 1e-3 and quality["gate"].startswith("max abs")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_static_batch_models_serve_their_sizes_and_the_dynamic_one_the_rest(tiny_synthesis, tmp_path: Path, precision: str) -> None:
    stage, onnx_path = tiny_synthesis
    xml = tmp_path / "synthesis.xml"
    ovx.convert_onnx(onnx_path, xml)
    dynamic = ovx.OpenVINOEngine(xml, ovx.EngineConfig(precision))
    engine = ovx.OpenVINOEngine(xml, ovx.EngineConfig(precision, static_batches=(1, 2)))
    assert sorted(engine.static) == [1, 2] and dynamic.static == {}
    for batch, (compiled, _) in engine.static.items():
        assert [list(p.get_partial_shape().to_shape())[0] for p in compiled.inputs] == [batch]  # really compiled static
    assert engine.compiled.inputs[0].get_partial_shape().is_dynamic
    (name,) = engine.input_names
    rng = np.random.default_rng(0)
    for batch in (1, 2, 3):  # 3 is not a static size: the dynamic model serves it
        w = rng.standard_normal((batch, *stage.inputs[0].dims)).astype(np.float32)
        got, ref = engine({name: w}), dynamic({name: w})
        assert set(got) == set(engine.output_names) and got[engine.output_names[0]].shape[0] == batch
        out, want = got[engine.output_names[0]], ref[engine.output_names[0]]
        if engine.precision == "fp32":
            np.testing.assert_allclose(out, want, atol=1e-5, rtol=0)
        else:  # bf16 kernels planned for another shape may round differently; both stay near fp32
            assert ovx.psnr(out, want) >= ovx.DEFAULT_MIN_PSNR
    quality = ovx.verify_engine(engine, stage, (1, 3))  # the export's check runs through the static model at batch 1
    assert quality["psnr_db"] >= ovx.DEFAULT_MIN_PSNR
    assert engine.info()["config"]["static_batches"] == [1, 2]


@pytest.mark.skipif(not BF16_HERE, reason="this CPU has no bf16 (OpenVINO OPTIMIZATION_CAPABILITIES)")
def test_bf16_engine_is_bf16_and_passes_the_psnr_gate(tiny_synthesis, tmp_path: Path) -> None:
    stage, onnx_path = tiny_synthesis
    meta = ovx.build_openvino_engine(onnx_path, tmp_path / "synthesis.xml", stage, ovx.EngineConfig("bf16"), batch_sizes=(1, 2))
    assert meta["precision"] == "bf16" and meta["inference_precision"] == "bf16"
    q = meta["quality"]
    assert ovx.DEFAULT_MIN_PSNR <= q["psnr_db"] < 100 and 0 < q["max_abs"] < 0.5  # bf16 differs, a little
    assert meta["ir_sha256"] == sha256_file(tmp_path / "synthesis.xml")
    assert meta["ir_weights_sha256"] == sha256_file(tmp_path / "synthesis.bin")
    assert not list(tmp_path.glob(".*.tmp")), "the IR is written atomically"


def _corrupt_weights(xml: Path, relative_noise: float) -> int:
    """Perturb every f32 constant of an IR's .bin in place (offsets from the .xml); returns the count."""
    weights = xml.with_suffix(".bin")
    data = bytearray(weights.read_bytes())
    rng = np.random.default_rng(0)
    n = 0
    for layer in ET.parse(xml).getroot().iter("layer"):
        d = layer.find("data")
        if layer.get("type") != "Const" or d is None or d.get("element_type") != "f32":
            continue
        off, size = int(d.get("offset")), int(d.get("size"))
        values = np.frombuffer(bytes(data[off : off + size]), dtype=np.float32)
        noisy = values * (1 + relative_noise * rng.standard_normal(values.shape).astype(np.float32))
        data[off : off + size] = noisy.astype(np.float32).tobytes()
        n += 1
    weights.write_bytes(bytes(data))
    return n


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_quality_gate_refuses_a_corrupted_ir(tiny_synthesis, tmp_path: Path, precision: str) -> None:
    from cptr.export.onnx import VerificationError

    stage, onnx_path = tiny_synthesis
    xml = tmp_path / "synthesis.xml"
    ovx.convert_onnx(onnx_path, xml)
    assert _corrupt_weights(xml, 0.02) > 5  # 2% noise on every weight: about 11 dB
    engine = ovx.OpenVINOEngine(xml, ovx.EngineConfig(precision))
    gate = "below the bf16 gate of 35 dB" if engine.precision == "bf16" else "differs from fp32 PyTorch"
    with pytest.raises(VerificationError, match=gate):
        ovx.verify_engine(engine, stage, (1, 2))


def test_psnr_in_image_terms() -> None:
    ref = np.zeros((1, 3, 8, 8), np.float32)
    assert ovx.psnr(ref, ref) == float("inf")
    # one grey level of 255 everywhere, on [-1, 1]: 20 log10(255) dB
    assert ovx.psnr(ref + np.float32(2 / 255), ref) == pytest.approx(20 * np.log10(255), abs=1e-3)


def test_options_are_checked_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    cases = [
        (["--ov-min-psnr", "5", "--precision", "bf16"], "would pass visibly broken images"),
        (["--precision", "fp16"], "--engine openvino runs fp32 or bf16"),
        (["--plugins"], "OpenVINO cannot run"),
        (["--ov-streams", "lots"], "streams must be 'auto' or a number"),
        (["--ov-static-batch", "1,two"], "static batch sizes must be whole numbers"),
        (["--ov-static-batch", "8", "--batch-max", "4"], "larger than --batch-max 4"),
        (["--ov-static-batch", "1", "--backend", "native"], "apply to the python flavour"),
    ]
    for extra, message in cases:
        r = _cli(["--engine", "openvino", *extra, "--out", str(out), "--quiet"])
        assert r.exit_code == 1 and message in _output(r), (extra, _output(r))
    r = _cli(["--precision", "bf16", "--out", str(out), "--quiet"])
    assert r.exit_code == 1 and "add --engine openvino" in _output(r)
    r = _cli(["--ov-hint", "throughput", "--out", str(out), "--quiet"])
    assert r.exit_code == 1 and "add --engine openvino" in _output(r)
    r = _cli(["--ov-static-batch", "1", "--out", str(out), "--quiet"])
    assert r.exit_code == 1 and "--ov-static-batch apply to the OpenVINO engine" in _output(r)
    assert not out.exists()


def _tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` and its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_export_falls_back_to_fp32_with_a_notice(tiny_checkpoints, tmp_path: Path) -> None:
    src, tgt = tiny_checkpoints
    out = tmp_path / "repo"
    args = [*flags(source=src, target=tgt, style="tiny", engine="openvino", precision="bf16", out=out), "--quiet"]
    r = _cli(args, env={ovx.CAPABILITIES_ENV: "FP32"})
    assert r.exit_code == 0, _output(r)
    assert "note: --precision bf16: OpenVINO bf16 is not available on this CPU" in _output(r)
    manifest = manifest_of(out)
    assert manifest["precision"] == "fp32" and any("bf16 is not available" in n for n in manifest["notes"])
    for name in ("mapping_tiny", "synthesis_tiny"):
        ov = manifest["models"][name]["openvino"]
        assert (ov["requested_precision"], ov["precision"], ov["inference_precision"]) == ("bf16", "fp32", "f32")
        assert ov["quality"]["max_abs"] < 1e-3
    cfg = (out / "synthesis_tiny" / "config.pbtxt").read_text()
    assert re.search(r'key: "openvino_precision"\s+value: \{ string_value: "fp32" \}', cfg)  # served as verified


def test_unreachable_psnr_gate_fails_the_export_and_keeps_the_old_repository(tiny_checkpoints, tmp_path: Path) -> None:
    if not BF16_HERE:  # before the export: without bf16 it builds fp32, whose own gate passes
        pytest.skip("no bf16 on this CPU: the fp32 fallback is not held to the bf16 gate")
    src, tgt = tiny_checkpoints
    out = tmp_path / "repo"
    first = _cli(["--source", str(src), "--target", str(tgt), "--style", "tiny", "--out", str(out), "--quiet"])
    assert first.exit_code == 0, _output(first)
    before = _tree_bytes(out)
    r = _cli([*flags(source=src, target=tgt, style="tiny", engine="openvino", precision="bf16", ov_min_psnr=150, out=out), "--quiet"])
    assert r.exit_code == 1
    assert re.search(r"OpenVINO bf16 output 'w' at batch 1: PSNR of its image [\d.]+ dB .* below the bf16 gate of 150 dB", _output(r)), (
        _output(r)
    )
    assert _tree_bytes(out) == before and f"(the repository {out} is unchanged)" in _output(r)


# --------------------------------------------------------------------------- served by Triton


@pytest.fixture(scope="module")
def ov_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # batch 1 (cartoonize, one seed) runs on models compiled for it; the three seeds of generate on the dynamic ones
    return export_repository(
        tmp_path_factory, "openvino_engine", ["--style", STYLE, "--engine", "openvino", "--precision", "bf16", "--ov-static-batch", "1"]
    )


def test_repository_records_the_ir(ov_repo: Path) -> None:
    manifest = manifest_of(ov_repo)
    assert manifest["engine"] == "openvino" and manifest["versions"]["openvino"]
    assert manifest["precision"] == ("bf16" if BF16_HERE else "fp32")
    for name in (f"mapping_{STYLE}", f"synthesis_{STYLE}", f"encoder_{STYLE}"):
        entry = manifest["models"][name]
        assert entry["engine_file"] == f"{name}/1/model.xml" and entry["engine_weights_file"] == f"{name}/1/model.bin"
        assert entry["engine_sha256"] == sha256_file(ov_repo / entry["engine_file"]) == entry["openvino"]["ir_sha256"]
        assert entry["engine_weights_sha256"] == sha256_file(ov_repo / entry["engine_weights_file"])
        assert (ov_repo / entry["file"]).is_file()  # the ONNX source stays beside it
        q = entry["openvino"]["quality"]
        assert q["psnr_db"] >= ovx.DEFAULT_MIN_PSNR and set(q) >= {"batch1", "batch3", "max_abs", "gate"}
        cfg = (ov_repo / name / "config.pbtxt").read_text()
        assert 'backend: "python"' in cfg and re.search(r'key: "engine"\s+value: \{ string_value: "openvino" \}', cfg)
        assert re.search(r'key: "openvino_static_batches"\s+value: \{ string_value: "1" \}', cfg) and entry["openvino"]["config"][
            "static_batches"
        ] == [1]
    assert "image_max_abs" in manifest["models"][f"mapping_{STYLE}"]["openvino"]["quality"]["batch1"]  # judged by its image
    assert not list(ov_repo.glob(".staging*")) and not list(ov_repo.rglob("*.tmp"))


def test_served_openvino_engines(ov_repo: Path) -> None:
    from cptr.client import CartoonClient
    from cptr.serving.server import TritonServer
    from tests.test_serving import Reference

    pytest.importorskip("pytriton")
    precision = manifest_of(ov_repo)["precision"]
    ref = Reference(ov_repo)  # the ONNX files of the same export, run by ONNX Runtime in this process
    seeds, mix = [3, 11, 2**33], (5, 6)
    with TritonServer(ov_repo) as server:
        with CartoonClient(server.grpc_url, "grpc", timeout_s=120) as client:
            got = client.generate(seeds, style=STYLE, output="tensor")
            mixed = client.generate(seeds, style=STYLE, mix=mix, output="tensor")
            from skimage import data

            cartoon = client.cartoonize(data.astronaut(), style=STYLE, output="tensor")
        log = server.log_tail(100_000)
    for stage in ("mapping", "synthesis", "encoder"):  # the engines really served, in the export's precision
        assert f"{stage}_{STYLE}: serving OpenVINO engine model.xml ({precision}," in log, log[-3000:]
        assert re.search(rf"{stage}_{STYLE}: serving OpenVINO engine .*, static batch 1\)", log), log[-3000:]
    assert "not usable here" not in log
    for out, want in ((got, ref.generate(seeds)), (mixed, ref.generate(seeds, mix)), (cartoon, ref.cartoonize(data.astronaut()))):
        if precision == "bf16":  # two bf16 stages in a row (mapping or encoder, then synthesis)
            assert ovx.psnr(out, want) >= ovx.DEFAULT_MIN_PSNR and np.abs(out - want).max() > 0
        else:
            assert np.abs(out - want).max() < 1e-3


def test_native_flavour_configs_for_the_openvino_backend(ov_repo: Path, tmp_path: Path) -> None:
    """Triton's openvino backend is not in the bundled server: the configs are checked as text."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    from cptr.contracts import ExportBundle, StageArtifact
    from cptr.deploy.repository import read_repository
    from cptr.triton.writer import write_repository

    manifest = manifest_of(ov_repo)
    root = tmp_path / "native"
    root.mkdir()
    arts = {}
    specs = lambda es: [C.TensorSpec(e["name"], e["dtype"], tuple(e["dims"])) for e in es]  # noqa: E731
    for stage, precision in (("mapping", "fp32"), ("synthesis", "bf16")):
        entry = manifest["models"][f"{stage}_{STYLE}"]
        for key in ("file", "engine_file", "engine_weights_file"):
            (root / Path(entry[key]).name.replace("model", stage)).write_bytes((ov_repo / entry[key]).read_bytes())
        meta = {**entry["openvino"], "config": ovx.EngineConfig(precision, "throughput", 2, 4).to_dict()}
        arts[stage] = StageArtifact(
            stage,
            root / f"{stage}.onnx",
            specs(entry["inputs"]),
            specs(entry["outputs"]),
            extra={"openvino": meta, "openvino_path": str(root / f"{stage}.xml")},
        )
    bundle = ExportBundle(
        STYLE, manifest["size"], manifest["n_latent"], manifest["style_dim"], "bf16", 4, arts["mapping"], arts["synthesis"]
    )
    placed = write_repository(root, bundle, backend="native")
    assert placed[f"synthesis_{STYLE}"] == {
        "file": f"synthesis_{STYLE}/1/model.onnx",
        "engine_file": f"synthesis_{STYLE}/1/model.xml",
        "engine_weights_file": f"synthesis_{STYLE}/1/model.bin",
    }
    configs = {}
    for stage in ("mapping", "synthesis"):
        text = (root / f"{stage}_{STYLE}" / "config.pbtxt").read_text()
        cfg = configs[stage] = text_format.Parse(text, model_config_pb2.ModelConfig())
        assert cfg.backend == "openvino" and not cfg.platform and cfg.default_model_filename == "model.xml"
        assert [g.kind for g in cfg.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_CPU]
        assert cfg.max_batch_size == 4 and list(cfg.dynamic_batching.preferred_batch_size) == [2, 4]
        version = root / f"{stage}_{STYLE}" / "1"
        assert sorted(p.name for p in version.iterdir()) == ["model.bin", "model.onnx", "model.xml"]  # no model.py
        assert (version / "model.xml").read_bytes() == (ov_repo / f"{stage}_{STYLE}" / "1" / "model.xml").read_bytes()
    params = {k: v.string_value for k, v in configs["synthesis"].parameters.items()}
    assert params == {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": "2", "INFERENCE_NUM_THREADS": "4", "HINT_BF16": "YES"}
    assert "HINT_BF16" not in configs["mapping"].parameters
    assert "no parameter for f32" in (root / f"mapping_{STYLE}" / "config.pbtxt").read_text()  # said where it matters
    assert [(t.name, list(t.dims)) for t in configs["synthesis"].input] == [("w_plus", [manifest["n_latent"], manifest["style_dim"]])]
    info = read_repository(root)  # what `cptr deploy k8s` reads: openvino stages run on the CPU
    assert info.models[f"synthesis_{STYLE}"].backend == "openvino" and not info.models[f"synthesis_{STYLE}"].uses_gpu


# --------------------------------------------------------------------------- benchmark


def test_bench_openvino_engines_report_time_and_error(tmp_path: Path) -> None:
    from cptr.bench.cli import main

    code = main(
        [
            "--target",
            "onnx,openvino",
            "--model",
            "tiny",
            "--batch",
            "1,2",
            "--iters",
            "2",
            "--warmup",
            "1",
            "--pool",
            "2",
            "--check",
            "1",
            "--results-dir",
            str(tmp_path),
            "--no-record",
            "--no-plot",
            "--quiet",
        ]
    )
    assert code == 0
    run = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert run["machine"]["libraries"]["openvino"]
    rows = {(r["engine"], r["batch"]): r for r in run["results"]}
    for batch in (1, 2):
        fp32 = rows[("openvino-fp32", batch)]
        assert fp32["status"] == "ok" and len(fp32["latencies_ms"]) == 2 and fp32["error"]["max_abs"] < 1e-3
        assert fp32["info"]["inference_precision"] == "f32"
        onnx = rows[("onnx-fp32", batch)]
        assert onnx["status"] == "ok" and onnx["error"]["psnr_db"] > 100
        bf16 = rows[("openvino-bf16", batch if BF16_HERE else 0)]
        if BF16_HERE:
            assert bf16["status"] == "ok" and bf16["info"]["inference_precision"] == "bf16"
            assert ovx.DEFAULT_MIN_PSNR <= bf16["error"]["psnr_db"] < 100 and bf16["error"]["max_abs"] > 0
        else:
            assert bf16["status"] == "unavailable" and "bf16 is not available" in bf16["reason"]


def test_bench_triton_engines_are_checked(tmp_path: Path) -> None:
    from cptr.bench.cli import main
    from cptr.bench.targets import Context
    from cptr.bench.triton_target import TritonTarget
    from cptr.bench.workloads import build_workload

    with pytest.raises(SystemExit, match="unknown --triton-engines openvino-fp16"):
        main(["--target", "triton", "--triton-engines", "onnx,openvino-fp16", "--results-dir", str(tmp_path), "--no-record", "--quiet"])
    # with --url the server's own engines are measured: no embedded OpenVINO server is started
    ctx = Context(url="127.0.0.1:1", triton_engines=("openvino-bf16",), workdir=tmp_path)
    (u,) = TritonTarget().engines(build_workload("synthesis", "tiny"), ctx)
    assert u.name == "triton-grpc-openvino-bf16" and not u.failed and "--url" in u.reason


def test_bench_static_server_engines_export_the_runs_batch_sizes(tmp_path: Path) -> None:
    from cptr.bench.targets import Context
    from cptr.bench.triton_target import _export_engine, export_repository
    from cptr.bench.workloads import build_workload

    assert _export_engine("openvino-bf16") == {"engine": "openvino", "precision": "bf16"}
    assert _export_engine("openvino-fp32-static", (4, 1, 4)) == {"engine": "openvino", "precision": "fp32", "ov_static_batches": (1, 4)}
    ctx = Context(workdir=tmp_path, batches=(1, 2), batch_max=2, triton_engines=("openvino-fp32-static",))
    repo, style = export_repository(build_workload("synthesis", "tiny"), ctx, "openvino-fp32-static")
    manifest = manifest_of(repo)
    assert repo.name == "triton_repo-openvino-fp32-static" and manifest["engine"] == "openvino"
    assert manifest["models"][f"synthesis_{style}"]["openvino"]["config"]["static_batches"] == [1, 2]
