"""CUDA kernels, TensorRT plugins and the engine builder.

CPU part (runs here): the kernel sources compile with nvcc; the kernels' arithmetic, executed on the
CPU by testing/host_emulation.cpp (same building blocks, same tiling), matches the reference ops;
the plugin library builds against TensorRT headers and passes its smoke test; the autograd formula
of the extension matches autograd of the reference; the loaders fail cleanly without CUDA/TensorRT.
GPU part (``-m gpu`` on a CUDA machine): the compiled kernels against the reference, forward and
backward, fp32 and fp16, and a TensorRT engine with the plugins.
"""

from __future__ import annotations

import glob
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from cptr import ops
from cptr.engines import tensorrt as trt_builder
from cptr.ops import PLUGIN_NAMESPACE, PLUGIN_VERSION, fused_leaky_relu_ref, make_kernel, upfirdn2d_ref

PLUGINS = Path(trt_builder.PLUGIN_SOURCES)
CHECK_BUILD = PLUGINS / "check_build.sh"
BLUR = make_kernel([1, 3, 3, 1])

# Every upfirdn2d configuration StyleGAN2 (rosinality layout, blur [1, 3, 3, 1]) runs, forward and
# backward: (what, kernel, up, down, pad).
STYLEGAN2_CONFIGS = [
    ("ToRGB skip Upsample", BLUR * 4, 2, 1, (2, 1)),
    ("blur after transposed 3x3 conv", BLUR * 4, 1, 1, (1, 1)),
    ("blur before stride-2 3x3 conv", BLUR, 1, 1, (2, 2)),
    ("blur before stride-2 1x1 conv", BLUR, 1, 1, (1, 1)),
    ("Downsample (= backward of Upsample)", BLUR, 1, 2, (1, 1)),
]
TILED_PATH = {(2, 1): "tiled_up2_down1", (1, 1): "tiled_up1_down1", (1, 2): "tiled_up1_down2"}


def _nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
    return str(Path(home) / "bin" / "nvcc") if (Path(home) / "bin" / "nvcc").exists() else None


def _cuda_home(nvcc: str) -> Path:
    return Path(os.path.realpath(nvcc)).parent.parent


def _tensorrt_include() -> str | None:
    """TensorRT headers: $TENSORRT_INCLUDE, a system install, or a local copy under .ref/ (git-ignored)."""
    candidates = [os.environ.get("TENSORRT_INCLUDE", ""), "/usr/include/x86_64-linux-gnu", "/usr/local/tensorrt/include"]
    candidates += sorted(glob.glob(str(Path(__file__).resolve().parents[1] / ".ref" / "tensorrt-*" / "include")))
    return next((c for c in candidates if c and Path(c, "NvInfer.h").is_file()), None)


def _run_check(tmp: Path, steps: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "CPTR_CHECK_STEPS": steps, "BUILD_DIR": str(tmp), "ARCHS": "80", **env}
    nvcc = _nvcc()
    if nvcc:
        full_env["NVCC"] = nvcc
    return subprocess.run(["bash", str(CHECK_BUILD)], env=full_env, capture_output=True, text=True, timeout=300)


needs_nvcc = pytest.mark.skipif(_nvcc() is None, reason="nvcc (CUDA toolkit) not installed")


# ---------------------------------------------------------------------------- compile checks (CPU)


@needs_nvcc
def test_kernel_sources_compile_with_nvcc(tmp_path: Path) -> None:
    r = _run_check(tmp_path, "kernels")
    assert r.returncode == 0, r.stdout + r.stderr
    for std in ("c++17", "c++20"):
        for src in ("upfirdn2d", "bias_act"):
            assert (tmp_path / f"{src}_{std}.o").stat().st_size > 10_000


@needs_nvcc
@pytest.mark.skipif(_tensorrt_include() is None, reason="TensorRT headers not found (set TENSORRT_INCLUDE)")
def test_trt_plugin_library_builds_and_passes_smoke_test(tmp_path: Path) -> None:
    r = _run_check(tmp_path, "trt", TENSORRT_INCLUDE=_tensorrt_include() or "")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ALL OK" in r.stdout
    assert (tmp_path / "cmake" / "libcptr_trt_plugins.so").is_file()


@needs_nvcc
@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_torch_extension_source_parses(tmp_path: Path) -> None:
    import sys

    r = _run_check(tmp_path, "torch", PYTHON=sys.executable)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "skipped" not in r.stdout


# ------------------------------------------------------------- kernel arithmetic via host emulation


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if _nvcc() is None or shutil.which("g++") is None:
        pytest.skip("needs the CUDA headers (nvcc's toolkit) and g++")
    tmp = tmp_path_factory.mktemp("emulation")
    r = _run_check(tmp, "emulation")
    assert r.returncode == 0, r.stdout + r.stderr
    return tmp / "host_emulation"


_NP = {torch.float32: np.float32, torch.float16: np.float16, torch.float64: np.float64}
_NAME = {torch.float32: "float32", torch.float16: "float16", torch.float64: "float64"}


def _emulate_upfirdn2d(exe: Path, tmp: Path, x: torch.Tensor, k: torch.Tensor, up, down, pad) -> tuple[str, torch.Tensor | None]:
    n, c, h, w = x.shape
    kh, kw = k.shape
    x.numpy().tofile(tmp / "x")
    k.to(torch.float32).numpy().tofile(tmp / "k")
    args = [n * c, h, w, kh, kw, up[0], up[1], down[0], down[1], *pad]
    r = subprocess.run(
        [str(exe), "upfirdn2d", _NAME[x.dtype], *map(str, args), str(tmp / "k"), str(tmp / "x"), str(tmp / "y")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if r.returncode == 3:
        return "invalid", None
    assert r.returncode == 0, r.stderr
    info = dict(kv.split("=") for kv in r.stdout.split())
    y = np.fromfile(tmp / "y", dtype=_NP[x.dtype]).reshape(n, c, int(info["out_h"]), int(info["out_w"]))
    return info["path"], torch.from_numpy(y)


def _tol(dtype: torch.dtype) -> float:
    return {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-2}[dtype]


def _max_rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    return (y.double() - ref.double()).abs().max().item() / max(1.0, ref.double().abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
@pytest.mark.parametrize("what,kernel,up,down,pad", STYLEGAN2_CONFIGS, ids=[c[0] for c in STYLEGAN2_CONFIGS])
def test_emulated_tiled_kernels_match_reference(emulator: Path, tmp_path: Path, what, kernel, up, down, pad, dtype) -> None:
    torch.manual_seed(0)
    for shape in [(2, 3, 4, 4), (1, 2, 33, 33), (1, 2, 70, 45)]:  # one tile, edge tiles, several tiles
        x = torch.randn(*shape).to(dtype)
        path, y = _emulate_upfirdn2d(emulator, tmp_path, x, kernel, (up, up), (down, down), (*pad, *pad))
        assert path == TILED_PATH[(up, down)], f"{what} should use the tiled kernel, used {path}"
        ref = upfirdn2d_ref(x.double(), kernel.double(), up=up, down=down, pad=pad)
        assert y is not None and y.shape == ref.shape
        assert _max_rel_err(y, ref) < _tol(dtype), (what, shape, dtype)


def test_emulated_kernels_match_reference_on_random_configs(emulator: Path, tmp_path: Path) -> None:
    """General kernel (any up/down/pad/kernel, per axis) and tiled kernels with unusual pads."""
    rng = np.random.default_rng(0)
    checked = {"general": 0, "tiled": 0}
    for i in range(60):
        tiled = i % 3 == 0
        if tiled:
            kh = kw = 4
            u, d = [(1, 1), (2, 1), (1, 2)][i % 9 // 3]
            up, down = (u, u), (d, d)
        else:
            kh, kw = (int(v) for v in rng.integers(1, 8, 2))
            up, down = tuple(int(v) for v in rng.integers(1, 4, 2)), tuple(int(v) for v in rng.integers(1, 4, 2))
        pad = tuple(int(v) for v in rng.integers(-3, 6, 4))
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        x = torch.randn(2, 2, h, w, dtype=torch.float64)
        k = torch.randn(kh, kw, dtype=torch.float64)
        path, y = _emulate_upfirdn2d(emulator, tmp_path, x, k.float(), up, down, pad)
        out_h = (h * up[1] + pad[2] + pad[3] - kh) // down[1] + 1
        out_w = (w * up[0] + pad[0] + pad[1] - kw) // down[0] + 1
        if min(out_h, out_w) < 1:
            assert path == "invalid", (up, down, pad, kh, kw, h, w)
            continue
        # taps go through float32 (the launch API's type), so compare against float32 taps
        ref = upfirdn2d_ref(x, k.float().double(), up=up, down=down, pad=pad)
        assert y is not None and y.shape == ref.shape, (up, down, pad, kh, kw, h, w)
        assert _max_rel_err(y, ref) < 1e-12, (path, up, down, pad, kh, kw, h, w)
        checked["tiled" if path.startswith("tiled") else "general"] += 1
    assert checked["general"] >= 25 and checked["tiled"] >= 10, checked


def _emulate_bias_act(
    exe: Path, tmp: Path, x: torch.Tensor, bias: torch.Tensor, ref: torch.Tensor | None, slope: float, gain: float
) -> torch.Tensor:
    n, c = x.shape[:2]
    s = int(np.prod(x.shape[2:])) if x.ndim > 2 else 1
    x.numpy().tofile(tmp / "x")
    bias.numpy().tofile(tmp / "b")
    if ref is not None:
        ref.numpy().tofile(tmp / "r")
    r = subprocess.run(
        [
            str(exe),
            "bias_act",
            _NAME[x.dtype],
            _NAME[bias.dtype],
            str(n),
            str(c),
            str(s),
            repr(slope),
            repr(gain),
            str(tmp / "x"),
            str(tmp / "b"),
            str(tmp / "r") if ref is not None else "-",
            str(tmp / "y"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return torch.from_numpy(np.fromfile(tmp / "y", dtype=_NP[x.dtype]).reshape(x.shape))


@pytest.mark.parametrize(
    "dtype,bias_dtype",
    [(torch.float32, torch.float32), (torch.float16, torch.float16), (torch.float16, torch.float32), (torch.float64, torch.float64)],
)
@pytest.mark.parametrize("shape", [(4, 8), (2, 8, 5, 7)])
def test_emulated_bias_act_matches_reference(emulator: Path, tmp_path: Path, dtype, bias_dtype, shape) -> None:
    torch.manual_seed(1)
    slope, gain = 0.2, math.sqrt(2.0)  # the launch API takes them as double: exact in every dtype
    x = torch.randn(*shape, dtype=torch.float64)
    b = torch.randn(shape[1], dtype=torch.float64)
    xq, bq = x.to(dtype), b.to(bias_dtype)
    y = _emulate_bias_act(emulator, tmp_path, xq, bq, None, slope, gain)
    ref = fused_leaky_relu_ref(xq.double(), bq.double(), slope, gain)
    assert _max_rel_err(y, ref) < _tol(dtype)

    # gradient kernel, fed the saved output as rosinality's kernel is
    xr = xq.double().requires_grad_(True)
    out = fused_leaky_relu_ref(xr, bq.double(), slope, gain)
    g = torch.randn_like(out)
    (gx_ref,) = torch.autograd.grad(out, xr, g)
    gx = _emulate_bias_act(emulator, tmp_path, g.to(dtype), torch.zeros_like(bq), out.detach().to(dtype), slope, gain)
    assert _max_rel_err(gx, gx_ref) < _tol(dtype) * 4


# --------------------------------------------------------------------------------- pure CPU logic


def test_upfirdn2d_grad_config_matches_autograd() -> None:
    """The extension's backward (an upfirdn2d with the flipped kernel) equals autograd of the reference."""
    rng = np.random.default_rng(1)
    configs = [(k, (u, u), (d, d), (*p, *p)) for _, k, u, d, p in STYLEGAN2_CONFIGS]
    for _ in range(60):
        kh, kw = (int(v) for v in rng.integers(1, 6, 2))
        configs.append(
            (
                torch.randn(kh, kw),
                tuple(int(v) for v in rng.integers(1, 4, 2)),
                tuple(int(v) for v in rng.integers(1, 4, 2)),
                tuple(int(v) for v in rng.integers(-2, 5, 4)),
            )
        )
    n = 0
    for k, up, down, pad in configs:
        x = torch.randn(2, 3, 9, 11, dtype=torch.float64, requires_grad=True)
        k = k.double()
        y = upfirdn2d_ref(x, k, up=up, down=down, pad=pad)
        if y.numel() == 0:
            continue
        g = torch.randn_like(y)
        (gx_ref,) = torch.autograd.grad(y, x, g)
        g_up, g_down, g_pad = ops.upfirdn2d_grad_config((9, 11), tuple(k.shape), up, down, pad)
        gx = upfirdn2d_ref(g, k.flip([0, 1]), up=g_up, down=g_down, pad=g_pad)
        assert gx.shape == x.shape
        torch.testing.assert_close(gx, gx_ref, rtol=0, atol=1e-10)
        n += 1
    assert n > 40


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")
def test_kernels_load_returns_false_without_cuda() -> None:
    assert ops.load() is False
    assert "cuda" in (ops.unavailable_reason() or "").lower()
    assert not ops.is_loaded()
    with pytest.raises(RuntimeError, match="CUDA kernels unavailable"):
        ops.load(strict=True)
    # the reference ops keep working
    assert ops.upfirdn2d(torch.ones(1, 1, 4, 4), BLUR, pad=(1, 2)).shape == (1, 1, 4, 4)


def test_kernels_load_says_when_ninja_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A CUDA machine without ninja gets the install hint, not cpp_extension's build failure."""
    import torch.utils.cpp_extension as cpp_extension

    if ops.is_loaded():
        pytest.skip("the extension is already built in this process")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", str(tmp_path))
    monkeypatch.setattr(cpp_extension, "is_ninja_available", lambda: False)
    assert ops.load() is False
    assert "pip install ninja" in (ops.unavailable_reason() or "")
    assert not ops.is_loaded()


def test_trt_build_engine_fails_fast_without_tensorrt(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed")
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 4, 4])],
    )
    onnx.save(helper.make_model(graph), tmp_path / "m.onnx")
    with pytest.raises(trt_builder.TensorRTUnavailable, match="pip install tensorrt"):
        trt_builder.build_engine(tmp_path / "m.onnx", tmp_path / "m.plan")
    assert not (tmp_path / "m.plan").exists()
    with pytest.raises(ValueError, match="min <= opt <= max"):
        trt_builder.build_engine(tmp_path / "m.onnx", tmp_path / "m.plan", profile=(4, 2, 8))
    with pytest.raises(FileNotFoundError):
        trt_builder.build_engine(tmp_path / "missing.onnx", tmp_path / "m.plan")


# --------------------------------------------------------------------------------------- GPU tests

gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (torch.cuda.is_available() is False)")


@pytest.fixture(scope="module")
def cuda_ext() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    ops.load(strict=True)


def _cpu_ref_upfirdn2d(x: torch.Tensor, k: torch.Tensor, up, down, pad) -> torch.Tensor:
    return upfirdn2d_ref(x.detach().cpu().double(), k.cpu().double(), up=up, down=down, pad=pad)


@gpu
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("what,kernel,up,down,pad", STYLEGAN2_CONFIGS, ids=[c[0] for c in STYLEGAN2_CONFIGS])
def test_cuda_upfirdn2d_matches_reference(cuda_ext, what, kernel, up, down, pad, dtype) -> None:
    torch.manual_seed(0)
    for shape in [(2, 3, 4, 4), (4, 16, 33, 33), (2, 8, 128, 96), (1, 2, 256, 256)]:
        x = torch.randn(*shape, device="cuda").to(dtype)
        y = ops.upfirdn2d_cuda(x, kernel.cuda(), (up, up), (down, down), (*pad, *pad))
        ref = _cpu_ref_upfirdn2d(x, kernel, up, down, pad)
        assert y.dtype == dtype and y.shape == ref.shape
        assert _max_rel_err(y.cpu(), ref) < _tol(dtype), (what, shape)


@gpu
@needs_cuda
def test_cuda_upfirdn2d_general_path_matches_reference(cuda_ext) -> None:
    rng = np.random.default_rng(2)
    for _ in range(40):
        kh, kw = (int(v) for v in rng.integers(1, 9, 2))
        up, down = tuple(int(v) for v in rng.integers(1, 4, 2)), tuple(int(v) for v in rng.integers(1, 4, 2))
        pad = tuple(int(v) for v in rng.integers(-2, 6, 4))
        x = torch.randn(2, 3, int(rng.integers(4, 50)), int(rng.integers(4, 50)), device="cuda")
        k = torch.randn(kh, kw)
        ref = _cpu_ref_upfirdn2d(x, k, up, down, pad)
        if min(ref.shape[2:]) < 1:
            continue
        y = ops.upfirdn2d_cuda(x, k.cuda(), up, down, pad)
        assert _max_rel_err(y.cpu(), ref) < 1e-5, (kh, kw, up, down, pad)


@gpu
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("shape", [(8, 512), (4, 64, 32, 32)])
def test_cuda_fused_leaky_relu_matches_reference(cuda_ext, dtype, shape) -> None:
    torch.manual_seed(0)
    x = torch.randn(*shape, device="cuda", dtype=dtype)
    b = torch.randn(shape[1], device="cuda")
    y = ops.fused_leaky_relu_cuda(x, b, 0.2, math.sqrt(2.0))
    ref = fused_leaky_relu_ref(x.cpu().double(), b.cpu().to(dtype).double(), 0.2, math.sqrt(2.0))
    assert y.dtype == dtype and _max_rel_err(y.cpu(), ref) < _tol(dtype)


@gpu
@needs_cuda
@pytest.mark.parametrize("what,kernel,up,down,pad", STYLEGAN2_CONFIGS, ids=[c[0] for c in STYLEGAN2_CONFIGS])
def test_cuda_upfirdn2d_gradients_match_reference(cuda_ext, what, kernel, up, down, pad) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4, 17, 17, device="cuda", requires_grad=True)
    y = ops.upfirdn2d_cuda(x, kernel.cuda(), (up, up), (down, down), (*pad, *pad))
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    xr = x.detach().cpu().double().requires_grad_(True)
    yr = upfirdn2d_ref(xr, kernel.double(), up=up, down=down, pad=pad)
    (gx_ref,) = torch.autograd.grad(yr, xr, g.cpu().double())
    assert _max_rel_err(gx.cpu(), gx_ref) < 1e-5
    # float64 finite-difference checks of first and second derivatives through the CUDA kernels
    xs = torch.randn(1, 2, 6, 6, device="cuda", dtype=torch.float64, requires_grad=True)
    fn = lambda t: ops.upfirdn2d_cuda(t, kernel.cuda(), (up, up), (down, down), (*pad, *pad))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (xs,))
    assert torch.autograd.gradgradcheck(fn, (xs,))


@gpu
@needs_cuda
def test_cuda_fused_leaky_relu_gradients_match_reference(cuda_ext) -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 16, 8, 8, device="cuda", requires_grad=True)
    b = torch.randn(16, device="cuda", requires_grad=True)
    y = ops.fused_leaky_relu_cuda(x, b)
    g = torch.randn_like(y)
    gx, gb = torch.autograd.grad(y, (x, b), g)
    xr, br = x.detach().cpu().double().requires_grad_(True), b.detach().cpu().double().requires_grad_(True)
    gx_ref, gb_ref = torch.autograd.grad(fused_leaky_relu_ref(xr, br), (xr, br), g.cpu().double())
    assert _max_rel_err(gx.cpu(), gx_ref) < 1e-5 and _max_rel_err(gb.cpu(), gb_ref) < 1e-5
    xs = torch.randn(2, 3, 4, device="cuda", dtype=torch.float64, requires_grad=True)
    bs = torch.randn(3, device="cuda", dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ops.fused_leaky_relu_cuda, (xs, bs))
    assert torch.autograd.gradgradcheck(ops.fused_leaky_relu_cuda, (xs, bs))


@gpu
@needs_cuda
def test_generator_with_cuda_kernels_matches_reference(cuda_ext) -> None:
    from tests.conftest import make_tiny_generator

    g = make_tiny_generator(size=64).cuda()
    w = torch.randn(3, g.style_dim, device="cuda")
    with torch.no_grad():
        with ops.default_impl("ref"):
            ref, _ = g([w], input_is_latent=True, randomize_noise=False)
        out, _ = g([w], input_is_latent=True, randomize_noise=False)
    assert _max_rel_err(out.cpu(), ref.cpu()) < 1e-4


def _find_plugin_library(tmp: Path) -> Path | None:
    env = os.environ.get(trt_builder.PLUGIN_LIBRARY_ENV)
    if env:
        return Path(env)
    inc = _tensorrt_include()
    if inc is None or _nvcc() is None:
        return None
    build = tmp / "plugins"
    root = str(Path(inc).parent)
    subprocess.run(
        ["cmake", "-S", str(PLUGINS), "-B", str(build), f"-DTENSORRT_INCLUDE_DIR={inc}", f"-DTENSORRT_ROOT={root}"],
        check=True,
        capture_output=True,
    )
    subprocess.run(["cmake", "--build", str(build), "-j"], check=True, capture_output=True)
    return build / "libcptr_trt_plugins.so"


@gpu
@needs_cuda
def test_tensorrt_engine_with_plugins_matches_reference(tmp_path: Path) -> None:
    trt = pytest.importorskip("tensorrt")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    lib = _find_plugin_library(tmp_path)
    if lib is None:
        pytest.skip(f"no plugin library: set ${trt_builder.PLUGIN_LIBRARY_ENV} or TENSORRT_INCLUDE")
    kernel = (BLUR * 4).numpy().astype(np.float32)
    bias = np.random.default_rng(0).standard_normal(8).astype(np.float32)
    plugin = dict(plugin_namespace=PLUGIN_NAMESPACE, plugin_version=PLUGIN_VERSION)  # what the exporter writes on each node
    nodes = [
        helper.make_node(
            "UpFirDn2d",
            ["x"],
            ["u"],
            **plugin,
            up=2,
            down=1,
            pad0=2,
            pad1=1,
            kh=4,
            kw=4,
            kernel=kernel.ravel().tolist(),
        ),
        helper.make_node(
            "FusedBiasLeakyReLU",
            ["u", "bias"],
            ["y"],
            **plugin,
            negative_slope=0.2,
            scale=math.sqrt(2.0),
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "plugins",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 32, 32])],
        initializer=[numpy_helper.from_array(bias, "bias")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "p.onnx")
    meta = trt_builder.build_engine(
        tmp_path / "p.onnx", tmp_path / "p.plan", profile=(1, 2, 4), fp16=False, timing_cache=tmp_path / "cache", plugin_library=lib
    )
    assert meta["plugins"] and (tmp_path / "p.plan").stat().st_size == meta["plan_bytes"]
    assert (tmp_path / "cache").is_file()

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine((tmp_path / "p.plan").read_bytes())
    ctx = engine.create_execution_context()
    x = torch.randn(3, 8, 16, 16, device="cuda")
    y = torch.empty(3, 8, 32, 32, device="cuda")
    ctx.set_input_shape("x", tuple(x.shape))
    ctx.set_tensor_address("x", x.data_ptr())
    ctx.set_tensor_address("y", y.data_ptr())
    stream = torch.cuda.current_stream()
    assert ctx.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    ref = fused_leaky_relu_ref(upfirdn2d_ref(x.cpu().double(), BLUR.double() * 4, up=2, pad=(2, 1)), torch.from_numpy(bias).double())
    assert _max_rel_err(y.cpu(), ref) < 1e-5
