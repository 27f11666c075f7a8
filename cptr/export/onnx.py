"""ONNX export of the generator stages, verified against PyTorch in ONNX Runtime.

Graphs (tensor names, dtypes and shapes from :mod:`cptr.contracts`; batch axis dynamic):

* ``mapping``: ``z`` [B, D] + ``truncation`` [B, 1] -> ``w`` [B, D]; the truncation centre
  (``latent_avg`` of the checkpoint, else ``mean_latent(4096)`` from a fixed seed) is a constant.
* ``synthesis``: ``w_plus`` [B, n_latent, D] -> ``image`` [B, 3, H, W] in [-1, 1]; the noise maps are
  constants, so the graph is deterministic.
* ``generator``: ``z`` + ``truncation`` -> ``image`` (both in one graph).

The synthesis graph is traced from :class:`ExportSynthesis`, a rewrite of the generator for
inference: every weight-only expression (equalised-lr scales, the demodulation energies, noise times
its strength, the leaky-ReLU gain folded into the next conv) is precomputed, the modulated convs use
static weights (the shared-weight form), and the FIR filters are separable depthwise convs /
transposed convs instead of zero-insertion + 2-D filtering. Verification always compares against
the *original* PyTorch generator, so the rewrite itself is checked on every export.

:func:`export_module` and :func:`verify_onnx` are generic and used for the encoder and mapper too.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cptr import contracts
from cptr.contracts import StageArtifact, TensorSpec
from cptr.io import atomic_path
from cptr.models.stylegan2 import Generator, ModulatedConv2d, StyledConv, ToRGB, Upsample

DEFAULT_OPSET = 17
TOLERANCES = {"fp32": 1e-3, "fp16": 2e-2}
PRECISIONS = tuple(TOLERANCES)
DEFAULT_BATCH_SIZES = (1, 3)
TRUNCATION_MEAN_SEED = 0
TRUNCATION_MEAN_SAMPLES = 4096
# Kept in fp32 inside fp16 graphs: style affines, demodulation energies and normalisations. They are
# tiny (per-sample vectors), and their sums of squares lose too much in fp16.
FP16_KEEP_FP32_OPS = ("MatMul", "Gemm", "ReduceSum", "ReduceMean", "Sqrt", "Reciprocal", "Div", "Pow", "Softmax")

InputFactory = Callable[[int], Sequence[torch.Tensor]]


class ExportError(RuntimeError):
    """An export could not be produced; the message says which stage and why."""


class VerificationError(ExportError):
    """ONNX Runtime output differs from PyTorch by more than the tolerance."""


# --------------------------------------------------------------------------- FIR filters for export


def separable_taps(kernel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(ky, kx)`` with ``outer(ky, kx) == kernel`` for a rank-1 2-D FIR kernel, else ``None``."""
    k = kernel.detach().double()
    total = k.sum()
    if total == 0:
        return None
    ky, kx = k.sum(1), k.sum(0) / total
    if not torch.allclose(torch.outer(ky, kx), k, rtol=1e-6, atol=1e-9):
        return None
    return ky.float(), kx.float()


class FIRFilter(nn.Module):
    """``upfirdn2d(x, kernel, pad=pad)`` (no resampling) as pad + depthwise convs.

    A separable kernel becomes a [1, K] and a [K, 1] depthwise conv (2K taps instead of K^2).
    """

    def __init__(self, kernel: torch.Tensor, pad: tuple[int, int], channels: int):
        super().__init__()
        self.pad = (int(pad[0]), int(pad[1]))
        self.channels = channels
        flipped = kernel.detach().float().flip([0, 1])  # upfirdn2d is a true convolution
        taps = separable_taps(flipped)
        if taps is None:
            self.register_buffer("weight", flipped.reshape(1, 1, *flipped.shape).repeat(channels, 1, 1, 1))
            self.register_buffer("weight_y", None)
        else:
            ky, kx = taps
            self.register_buffer("weight", kx.reshape(1, 1, 1, -1).repeat(channels, 1, 1, 1))
            self.register_buffer("weight_y", ky.reshape(1, 1, -1, 1).repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p0, p1 = self.pad
        if p0 == p1 and p0 > 0 and self.weight_y is not None:  # zero padding inside the convs: no Pad pass
            x = F.conv2d(x, self.weight, padding=(0, p0), groups=self.channels)
            return F.conv2d(x, self.weight_y, padding=(p0, 0), groups=self.channels)
        if p0 < 0 or p1 < 0:
            x = x[:, :, max(-p0, 0) : x.shape[2] - max(-p1, 0), max(-p0, 0) : x.shape[3] - max(-p1, 0)]
        if max(p0, p1) > 0:
            x = F.pad(x, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
        x = F.conv2d(x, self.weight, groups=self.channels)
        if self.weight_y is not None:
            x = F.conv2d(x, self.weight_y, groups=self.channels)
        return x


class FIRUpsample2x(nn.Module):
    """``upfirdn2d(x, kernel, up=2, pad=pad)`` as one depthwise stride-2 transposed conv (+ crop/pad).

    A transposed conv computes the full convolution of the zero-inserted input with its kernel;
    ``upfirdn2d`` keeps the window starting at ``K - 1 - pad0`` of it.
    """

    def __init__(self, kernel: torch.Tensor, pad: tuple[int, int], channels: int):
        super().__init__()
        kh, kw = kernel.shape
        if kh != kw:
            raise ValueError(f"FIRUpsample2x needs a square kernel, got {tuple(kernel.shape)}")
        self.k = kh
        self.pad = (int(pad[0]), int(pad[1]))
        self.channels = channels
        self.register_buffer("weight", kernel.detach().float().reshape(1, 1, kh, kw).repeat(channels, 1, 1, 1))
        start = self.k - 1 - self.pad[0]
        end = self.k - 2 - self.pad[1]  # samples dropped at the end of the full convolution
        self.crop = min(start, end, self.k - 1) if min(start, end) > 0 else 0
        self.extra = (start - self.crop, end - self.crop)  # > 0: crop more; < 0: zero-pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv_transpose2d(x, self.weight, stride=2, padding=self.crop, groups=self.channels)
        a, b = self.extra
        if a < 0 or b < 0:
            out = F.pad(out, [max(-a, 0), max(-b, 0), max(-a, 0), max(-b, 0)])
        if a > 0 or b > 0:
            out = out[:, :, max(a, 0) : out.shape[2] - max(b, 0), max(a, 0) : out.shape[3] - max(b, 0)]
        return out


# --------------------------------------------------------------------------- inference rewrite


class _Affine(nn.Module):
    """The style affine of a modulated conv: ``s = w @ A + b`` with its scales folded in."""

    def __init__(self, conv: ModulatedConv2d):
        super().__init__()
        lin = conv.modulation
        self.register_buffer("a", (lin.weight * lin.scale).t().contiguous().detach().clone())
        self.register_buffer("b", (lin.bias * lin.lr_mul).detach().clone())

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.b, w, self.a)


class ExportModConv(nn.Module):
    """Shared-weight modulated conv with precomputed weights; ``in_gain`` scales the input."""

    def __init__(self, conv: ModulatedConv2d, in_gain: float = 1.0):
        super().__init__()
        if conv.downsample:
            raise ValueError("downsampling modulated convs are not part of the generator")
        self.affine = _Affine(conv)
        w = (conv.weight[0] * conv.scale).detach()  # [out, in, k, k]
        self.demodulate = conv.demodulate
        if conv.demodulate:
            self.register_buffer("energy", w.square().sum(dim=(2, 3)).t().contiguous().clone())  # [in, out]
        self.upsample = conv.upsample
        self.padding = conv.padding
        if conv.upsample:
            self.register_buffer("weight", (w * in_gain).transpose(0, 1).contiguous().clone())  # [in, out, k, k]
            self.blur = FIRFilter(conv.blur.kernel, conv.blur.pad, conv.out_channel)
        else:
            self.register_buffer("weight", (w * in_gain).contiguous().clone())

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        s = self.affine(w)
        x = x * s.unsqueeze(-1).unsqueeze(-1)
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, self.weight, stride=2))
        else:
            out = F.conv2d(x, self.weight, padding=self.padding)
        if self.demodulate:
            d = torch.rsqrt((s * s) @ self.energy + 1e-8)
            out = out * d.unsqueeze(-1).unsqueeze(-1)
        return out


class ExportStyledConv(nn.Module):
    """Modulated conv + constant noise + bias + leaky ReLU; the ``sqrt(2)`` gain goes to consumers."""

    def __init__(self, layer: StyledConv, noise: torch.Tensor, in_gain: float):
        super().__init__()
        self.conv = ExportModConv(layer.conv, in_gain)
        self.register_buffer("noise", (layer.noise.weight * noise).detach().clone())  # [1, 1, H, W]
        self.register_buffer("bias", layer.activate.bias.detach().reshape(1, -1, 1, 1).clone())
        self.negative_slope = layer.activate.negative_slope
        self.gain = layer.activate.scale

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x, w) + self.noise + self.bias, self.negative_slope)


class ExportToRGB(nn.Module):
    def __init__(self, layer: ToRGB, in_gain: float, channels_skip: int = 3):
        super().__init__()
        self.conv = ExportModConv(layer.conv, in_gain)
        self.register_buffer("bias", layer.bias.detach().clone())
        up = getattr(layer, "upsample", None)
        self.upsample = FIRUpsample2x(up.kernel, up.pad, channels_skip) if isinstance(up, Upsample) else None

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, w) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class ExportSynthesis(nn.Module):
    """Deterministic synthesis ``W+ [B, n_latent, D] -> image [B, 3, H, W]`` rewritten for export.

    Numerically the generator's ``g([w_plus], input_is_latent=True, randomize_noise=False)`` (or with
    ``noise``), up to float rounding.
    """

    def __init__(self, g: Generator, noise: Sequence[torch.Tensor] | None = None):
        super().__init__()
        noise = list(noise) if noise is not None else g.const_noise()
        if len(noise) != g.num_layers:
            raise ValueError(f"expected {g.num_layers} noise maps, got {len(noise)}")
        self.n_latent, self.style_dim, self.size = g.n_latent, g.style_dim, g.size
        self.register_buffer("const_input", g.input.input.detach().clone())
        gain = g.conv1.activate.scale
        self.conv1 = ExportStyledConv(g.conv1, noise[0], in_gain=1.0)
        self.to_rgb1 = ExportToRGB(g.to_rgb1, in_gain=gain)
        self.convs = nn.ModuleList(ExportStyledConv(c, noise[i + 1], in_gain=gain) for i, c in enumerate(g.convs))
        self.to_rgbs = nn.ModuleList(ExportToRGB(t, in_gain=gain) for t in g.to_rgbs)

    def forward(self, w_plus: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.const_input, w_plus[:, 0])
        skip = self.to_rgb1(out, w_plus[:, 1])
        i = 1
        for conv_up, conv, to_rgb in zip(self.convs[::2], self.convs[1::2], self.to_rgbs):
            out = conv_up(out, w_plus[:, i])
            out = conv(out, w_plus[:, i + 1])
            skip = to_rgb(out, w_plus[:, i + 2], skip)
            i += 2
        return skip


# --------------------------------------------------------------------------- stage modules


def truncation_mean(g: Generator, samples: int = TRUNCATION_MEAN_SAMPLES, seed: int = TRUNCATION_MEAN_SEED) -> torch.Tensor:
    """The truncation centre [D]: ``g.latent_avg`` if the checkpoint has one, else a seeded mean."""
    avg = getattr(g, "latent_avg", None)
    if avg is not None:
        return avg.detach().reshape(-1).float().clone()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return g.mean_latent(samples).reshape(-1).float()


class MappingGraph(nn.Module):
    """``(z [B, D], truncation [B, 1]) -> w = avg + psi * (mapping(z) - avg)``."""

    def __init__(self, g: Generator, latent_avg: torch.Tensor | None = None):
        super().__init__()
        self.style = copy.deepcopy(g.style).eval()
        avg = truncation_mean(g) if latent_avg is None else latent_avg.detach().reshape(-1).float()
        self.register_buffer("latent_avg", avg.reshape(1, -1).clone())

    def forward(self, z: torch.Tensor, truncation: torch.Tensor) -> torch.Tensor:
        w = self.style(z)
        return self.latent_avg + truncation * (w - self.latent_avg)


class FixedTruncationMapping(nn.Module):
    """``z [B, D] -> w`` with the truncation psi baked in: the served ``mapping_<style>`` contract."""

    def __init__(self, mapping: MappingGraph, truncation: float):
        super().__init__()
        self.mapping = mapping
        self.register_buffer("psi", torch.tensor([[float(truncation)]]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mapping(z, self.psi.expand(z.shape[0], 1))


class SynthesisReference(nn.Module):
    """The PyTorch reference of the synthesis graph: the generator itself, constant noise."""

    def __init__(self, g: Generator):
        super().__init__()
        self.g = g

    def forward(self, w_plus: torch.Tensor) -> torch.Tensor:
        return self.g([w_plus], input_is_latent=True, randomize_noise=False)[0]


class GeneratorGraph(nn.Module):
    """``(z, truncation) -> image``: mapping and synthesis in one graph."""

    def __init__(self, mapping: nn.Module, synthesis: nn.Module, n_latent: int):
        super().__init__()
        self.mapping, self.synthesis, self.n_latent = mapping, synthesis, n_latent

    def forward(self, z: torch.Tensor, truncation: torch.Tensor) -> torch.Tensor:
        w = self.mapping(z, truncation)
        return self.synthesis(w.unsqueeze(1).repeat(1, self.n_latent, 1))


# --------------------------------------------------------------------------- generic export + verify


def default_inputs(specs: Sequence[TensorSpec], seed: int = 0) -> InputFactory:
    """Random inputs for ``specs``: N(0, 1); ``truncation`` in [0.5, 1]; images in [-1, 1]."""

    def make(batch: int) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(seed * 1000 + batch)
        out = []
        for spec in specs:
            shape = (batch, *spec.dims)
            if spec.dtype not in ("FP32", "FP16"):
                out.append(torch.zeros(shape, dtype=getattr(torch, spec.numpy_dtype.name)))
            elif spec.name == contracts.TRUNCATION.name:
                out.append(0.5 + 0.5 * torch.rand(shape, generator=gen))
            elif len(spec.dims) == 3 and spec.dims[0] == 3:
                out.append(torch.rand(shape, generator=gen) * 2 - 1)
            else:
                out.append(torch.randn(shape, generator=gen))
        return out

    return make


def _toposort(model: Any) -> None:
    """Sort graph nodes topologically in place (the fp16 converter appends casts at the end)."""
    g = model.graph
    ready = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    producer = {o: n for n in g.node for o in n.output}
    order, seen = [], set()
    for root in list(g.node):
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in seen:
                continue
            if expanded:
                seen.add(id(node))
                order.append(node)
                continue
            stack.append((node, True))
            for name in node.input:
                dep = producer.get(name)
                if name not in ready and dep is not None and id(dep) not in seen:
                    stack.append((dep, False))
    del g.node[:]
    g.node.extend(order)


def to_fp16(model: Any, keep_fp32_ops: Sequence[str] = FP16_KEEP_FP32_OPS) -> Any:
    """Convert an fp32 ONNX model to fp16 compute with fp32 inputs/outputs.

    Ops in ``keep_fp32_ops`` (affines, normalisation math) stay fp32; casts are inserted around them.
    """
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = convert_float_to_float16(
            model, keep_io_types=True, op_block_list=sorted(set(DEFAULT_OP_BLOCK_LIST) | set(keep_fp32_ops))
        )
    _toposort(out)
    return out


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().contiguous().numpy()


def verify_onnx(
    path: str | Path,
    reference: nn.Module,
    input_specs: Sequence[TensorSpec],
    output_specs: Sequence[TensorSpec],
    make_inputs: InputFactory,
    tolerance: float,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    stage: str = "model",
) -> dict[str, float]:
    """Run ``path`` in ONNX Runtime and ``reference`` in PyTorch on the same inputs.

    Returns ``{"batch1": max_abs_error, ...}`` (max over outputs). Raises :class:`VerificationError`
    when an error exceeds ``tolerance * max(1, max|reference|)`` (absolute for outputs in [-1, 1]), or
    when a shape or dtype differs from the contract.
    """
    from cptr.export.runtime import ort_session

    sess = ort_session(path)
    errors: dict[str, float] = {}
    for batch in batch_sizes:
        inputs = list(make_inputs(batch))
        with torch.no_grad():
            ref = reference(*inputs)
        refs = [ref] if isinstance(ref, torch.Tensor) else list(ref)
        feeds = {spec.name: _numpy(x).astype(spec.numpy_dtype) for spec, x in zip(input_specs, inputs)}
        outs = sess.run([s.name for s in output_specs], feeds)
        worst = 0.0
        for spec, r, o in zip(output_specs, refs, outs):
            r = _numpy(r.float())
            expected = (batch, *spec.dims)
            if o.shape != r.shape or any(d != -1 and d != a for d, a in zip(expected, o.shape)) or o.dtype != spec.numpy_dtype:
                raise VerificationError(
                    f"{stage}: output {spec.name!r} has shape {o.shape} {o.dtype}, expected {expected} {spec.numpy_dtype} "
                    f"(PyTorch gives {r.shape})"
                )
            if not np.isfinite(o).all():
                raise VerificationError(f"{stage}: output {spec.name!r} at batch {batch} has NaN/Inf values in ONNX Runtime")
            err = float(np.abs(o.astype(np.float64) - r).max())
            scale = max(1.0, float(np.abs(r).max()))
            if not err <= tolerance * scale:
                raise VerificationError(
                    f"{stage}: ONNX Runtime output {spec.name!r} differs from PyTorch by {err:.3g} at batch {batch} "
                    f"(tolerance {tolerance:g}{f' x {scale:.3g}' if scale > 1 else ''}); the export is wrong, not written"
                )
            worst = max(worst, err)
        errors[f"batch{batch}"] = worst
    return errors


def export_module(
    module: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    input_specs: Sequence[TensorSpec],
    output_specs: Sequence[TensorSpec],
    path: str | Path,
    precision: str = "fp32",
    *,
    stage: str = "model",
    reference: nn.Module | None = None,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    make_inputs: InputFactory | None = None,
    tolerance: float | None = None,
    keep_fp32_ops: Sequence[str] = FP16_KEEP_FP32_OPS,
    input_defaults: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> StageArtifact:
    """Export ``module`` to ``path`` (atomically), check it with ``onnx.checker`` and verify it.

    ``module`` is traced with the TorchScript exporter (``dynamo=False``; standard ops, opset
    ``opset``) with a dynamic batch axis on every input and output, named after ``input_specs`` /
    ``output_specs``. ``precision='fp16'`` converts the graph to fp16 compute with fp32 I/O.
    Verification (unless ``verify=False``) compares ONNX Runtime with ``reference`` (default:
    ``module``) at ``batch_sizes`` using ``make_inputs(batch)`` (default: :func:`default_inputs`)
    and fails with :class:`VerificationError` above ``tolerance`` (default :data:`TOLERANCES`).

    ``input_defaults`` (``{input name: value}``) turns inputs of shape [B, 1] into optional ones:
    the value is stored as an overridable initializer (shape [1, 1], broadcast over the batch), so
    runtimes that only see the required inputs (Triton) use it, and ONNX Runtime callers may still
    feed the tensor. Both ways are verified; the returned artifact lists only the required inputs.
    """
    import onnx

    if precision not in TOLERANCES:
        raise ExportError(f"precision must be one of {list(TOLERANCES)}, got {precision!r}")
    if opset < 17:
        raise ExportError(f"opset must be >= 17, got {opset}")
    if len(example_inputs) != len(input_specs):
        raise ExportError(f"{stage}: {len(example_inputs)} example inputs for {len(input_specs)} input specs")
    for spec, x in zip(input_specs, example_inputs):
        if tuple(x.shape[1:]) != tuple(d for d in spec.dims) and -1 not in spec.dims:
            raise ExportError(f"{stage}: example input {spec.name!r} has shape {tuple(x.shape)}, contract is [B, {', '.join(map(str, spec.dims))}]")
    module = module.eval()
    reference = (reference or module).eval()
    tolerance = TOLERANCES[precision] if tolerance is None else float(tolerance)
    make_inputs = make_inputs or default_inputs(input_specs)
    path = Path(path)
    names_in = [s.name for s in input_specs]
    names_out = [s.name for s in output_specs]
    dynamic = {n: {0: "batch"} for n in names_in + names_out}
    for spec in list(input_specs) + list(output_specs):
        for axis, d in enumerate(spec.dims, start=1):
            if d == -1:
                dynamic[spec.name][axis] = f"{spec.name}_{axis}"
    input_defaults = dict(input_defaults or {})
    for name in input_defaults:
        spec = next((s for s in input_specs if s.name == name), None)
        if spec is None or tuple(spec.dims) != (1,):
            raise ExportError(f"{stage}: input_defaults only apply to inputs of shape [B, 1]; {name!r} is not one")
        dynamic[name] = {0: f"{name}_batch"}  # may be 1 (the default) while the other inputs have B
    with atomic_path(path) as tmp:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                tuple(example_inputs),
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=names_in,
                output_names=names_out,
                dynamic_axes=dynamic,
                do_constant_folding=True,
            )
        model = onnx.load(str(tmp))
        for name, value in input_defaults.items():
            model.graph.initializer.append(onnx.numpy_helper.from_array(np.full((1, 1), value, dtype=np.float32), name))
        if precision == "fp16":
            model = to_fp16(model, keep_fp32_ops)
        model.producer_name = "cptr"
        model.doc_string = f"cptr {stage} ({precision})"
        try:
            onnx.checker.check_model(model, full_check=True)
        except onnx.checker.ValidationError as e:
            raise ExportError(f"{stage}: the exported graph fails onnx.checker: {str(e).splitlines()[0]}") from None
        onnx.save(model, str(tmp))
        errors = {}
        if verify:
            errors = verify_onnx(tmp, reference, input_specs, output_specs, make_inputs, tolerance, batch_sizes, stage=stage)
            if input_defaults:
                required = [s for s in input_specs if s.name not in input_defaults]
                idx = [i for i, s in enumerate(input_specs) if s.name not in input_defaults]

                def make_required(batch: int) -> list[torch.Tensor]:
                    full = list(make_inputs(batch))
                    return [full[i] for i in idx]

                def reference_defaults(*args: torch.Tensor) -> Any:
                    full, it = [], iter(args)
                    for s in input_specs:
                        full.append(torch.full((args[0].shape[0], 1), float(input_defaults[s.name])) if s.name in input_defaults else next(it))
                    return reference(*full)

                defaults = verify_onnx(tmp, reference_defaults, required, output_specs, make_required, tolerance, batch_sizes, stage=stage)
                errors.update({f"{k}_defaults": v for k, v in defaults.items()})
    info = {"precision": precision, "opset": opset, "tolerance": tolerance, "verified": bool(verify)}
    if input_defaults:
        info["input_defaults"] = {k: float(v) for k, v in input_defaults.items()}
    info.update(extra or {})
    inputs = [s for s in input_specs if s.name not in input_defaults]
    return StageArtifact(stage=stage, onnx_path=path, inputs=inputs, outputs=list(output_specs), max_abs_error=errors, extra=info)


# --------------------------------------------------------------------------- generator stages


def inference_copy(g: Generator) -> Generator:
    """A detached fp32 CPU copy in eval mode with static-weight (non-fused) modulated convs."""
    from cptr.models import set_fused_modconv

    out = copy.deepcopy(g).cpu().float().eval().requires_grad_(False)
    out.latent_avg = getattr(g, "latent_avg", None)
    return set_fused_modconv(out, False)


def synthesis_inputs(g: Generator, seed: int = 0, spread: float = 0.3) -> InputFactory:
    """Realistic W+ batches: mapped random z per sample, plus a per-entry perturbation."""
    mapping = copy.deepcopy(g.style).cpu().float().eval()

    def make(batch: int) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(seed * 1000 + batch)
        z = torch.randn(batch, g.style_dim, generator=gen)
        with torch.no_grad():
            w = mapping(z)
        jitter = spread * w.std() * torch.randn(batch, g.n_latent, g.style_dim, generator=gen)
        return [w.unsqueeze(1) + jitter]

    return make


def export_mapping(
    g: Generator,
    path: str | Path,
    precision: str = "fp32",
    latent_avg: torch.Tensor | None = None,
    default_truncation: float | None = None,
    **kwargs: Any,
) -> StageArtifact:
    """Export the mapping network with truncation: ``z``, ``truncation`` -> ``w``.

    With ``default_truncation`` the ``truncation`` input becomes optional (see
    :func:`export_module`'s ``input_defaults``): Triton sees only ``z``.
    """
    g = inference_copy(g)
    module = MappingGraph(g, latent_avg)
    specs_in = [contracts.z(g.style_dim), contracts.TRUNCATION]
    specs_out = [contracts.w(g.style_dim)]
    examples = default_inputs(specs_in)(2)
    if default_truncation is not None:
        kwargs["input_defaults"] = {contracts.TRUNCATION.name: float(default_truncation)}
    return export_module(module, examples, specs_in, specs_out, path, precision, stage=contracts.MAPPING, **kwargs)


def export_synthesis(
    g: Generator, path: str | Path, precision: str = "fp32", plugins: bool = False, **kwargs: Any
) -> StageArtifact:
    """Export the deterministic synthesis network: ``w_plus`` -> ``image`` (verified against ``g``).

    ``plugins=True`` emits every FIR filter and synthesis bias-act as a TensorRT plugin node
    (``UpFirDn2d``, ``FusedBiasLeakyReLU``; see :mod:`cptr.export.plugin_ops`) instead of standard
    ops; the plugin nodes stay fp32 in an fp16 graph. Verification runs them through ONNX Runtime's
    reference custom ops.
    """
    from cptr.models.ops import export_plugin_nodes

    g = inference_copy(g)
    module = SynthesisReference(g) if plugins else ExportSynthesis(g)
    specs_in = [contracts.w_plus(g.n_latent, g.style_dim)]
    specs_out = [contracts.image(g.size)]
    make = kwargs.pop("make_inputs", None) or synthesis_inputs(g)
    if plugins:
        from cptr.export.plugin_ops import PLUGIN_OPS

        kwargs["keep_fp32_ops"] = tuple(kwargs.get("keep_fp32_ops", FP16_KEEP_FP32_OPS)) + PLUGIN_OPS
        kwargs["extra"] = {**(kwargs.get("extra") or {}), "plugins": list(PLUGIN_OPS)}
    with export_plugin_nodes(plugins):
        return export_module(
            module, make(2), specs_in, specs_out, path, precision, stage=contracts.SYNTHESIS,
            reference=SynthesisReference(g), make_inputs=make, **kwargs,
        )


def export_generator(g: Generator, path: str | Path, precision: str = "fp32", **kwargs: Any) -> StageArtifact:
    """Export mapping + synthesis as one graph: ``z``, ``truncation`` -> ``image``."""
    g = inference_copy(g)
    mapping = MappingGraph(g)
    specs_in = [contracts.z(g.style_dim), contracts.TRUNCATION]
    specs_out = [contracts.image(g.size)]
    module = GeneratorGraph(mapping, ExportSynthesis(g), g.n_latent)
    reference = GeneratorGraph(mapping, SynthesisReference(g), g.n_latent)
    examples = default_inputs(specs_in)(2)
    return export_module(module, examples, specs_in, specs_out, path, precision, stage="generator", reference=reference, **kwargs)
