"""ONNX export of the catalogue's stages, verified against PyTorch in ONNX Runtime, and fp16 conversion.

:func:`export_stage` exports one :class:`cptr.export.stages.Stage`: its module is traced, checked
with ``onnx.checker``, written atomically, and compared in ONNX Runtime with the stage's PyTorch
reference at two batch sizes. What each graph is (its module, reference and tensor contract) is the
catalogue's business (:mod:`cptr.export.stages`); this module only exports and verifies.
:func:`export_mapping`, :func:`export_synthesis` and :func:`export_generator` name the common cases.

:func:`export_module` and :func:`verify_onnx` are generic.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cptr.contracts import StageArtifact, TensorSpec
from cptr.engines import ExportError, VerificationError
from cptr.engines.onnxruntime import ort_session
from cptr.engines.plugin_ops import PLUGIN_OPS
from cptr.export import stages
from cptr.export.stages import InputFactory, Stage, default_inputs
from cptr.io import atomic_path
from cptr.models.stylegan2 import Generator
from cptr.ops import export_plugin_nodes

DEFAULT_OPSET = 17
TOLERANCES = {"fp32": 1e-3, "fp16": 2e-2}
PRECISIONS = tuple(TOLERANCES)
DEFAULT_BATCH_SIZES = (1, 3)
# Kept in fp32 inside fp16 graphs: style affines, demodulation energies and normalisations. They are
# tiny (per-sample vectors), and their sums of squares lose too much in fp16.
FP16_KEEP_FP32_OPS = ("MatMul", "Gemm", "ReduceSum", "ReduceMean", "Sqrt", "Reciprocal", "Div", "Pow", "Softmax")


# --------------------------------------------------------------------------- generic export + verify


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
        out = convert_float_to_float16(model, keep_io_types=True, op_block_list=sorted(set(DEFAULT_OP_BLOCK_LIST) | set(keep_fp32_ops)))
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
            raise ExportError(
                f"{stage}: example input {spec.name!r} has shape {tuple(x.shape)}, contract is [B, {', '.join(map(str, spec.dims))}]"
            )
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
                        full.append(
                            torch.full((args[0].shape[0], 1), float(input_defaults[s.name])) if s.name in input_defaults else next(it)
                        )
                    return reference(*full)

                defaults = verify_onnx(tmp, reference_defaults, required, output_specs, make_required, tolerance, batch_sizes, stage=stage)
                errors.update({f"{k}_defaults": v for k, v in defaults.items()})
    info = {"precision": precision, "opset": opset, "tolerance": tolerance, "verified": bool(verify)}
    if input_defaults:
        info["input_defaults"] = {k: float(v) for k, v in input_defaults.items()}
    info.update(extra or {})
    inputs = [s for s in input_specs if s.name not in input_defaults]
    return StageArtifact(stage=stage, onnx_path=path, inputs=inputs, outputs=list(output_specs), max_abs_error=errors, extra=info)


# --------------------------------------------------------------------------- catalogue stages


def export_stage(stage: Stage, path: str | Path, precision: str = "fp32", **kwargs: Any) -> StageArtifact:
    """Export ``stage`` to ``path`` with :func:`export_module`, verified against ``stage.reference``.

    Its ``input_defaults`` become optional inputs; with ``stage.plugins`` the plugin nodes are emitted
    and kept fp32 in an fp16 graph. ``kwargs`` go to :func:`export_module` (``verify``, ``batch_sizes``,
    ``opset``, ``make_inputs``, ``extra``...).
    """

    make = kwargs.pop("make_inputs", None) or stage.make_inputs
    kwargs["extra"] = {**stage.extra, **(kwargs.get("extra") or {})}
    if stage.input_defaults:
        kwargs["input_defaults"] = dict(stage.input_defaults)
    if stage.plugins:
        kwargs["keep_fp32_ops"] = tuple(kwargs.get("keep_fp32_ops", FP16_KEEP_FP32_OPS)) + PLUGIN_OPS
    with export_plugin_nodes(stage.plugins):
        return export_module(
            stage.module,
            make(2),
            stage.inputs,
            stage.outputs,
            path,
            precision,
            stage=stage.key,
            reference=stage.reference,
            make_inputs=make,
            **kwargs,
        )


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
    return export_stage(stages.mapping(g, default_truncation, latent_avg), path, precision, **kwargs)


def export_synthesis(g: Generator, path: str | Path, precision: str = "fp32", plugins: bool = False, **kwargs: Any) -> StageArtifact:
    """Export the deterministic synthesis network: ``w_plus`` -> ``image`` (verified against ``g``).

    ``plugins=True`` emits every FIR filter and synthesis bias-act as a TensorRT plugin node; see
    :func:`cptr.export.stages.synthesis`. Verification runs them through ONNX Runtime's reference
    custom ops.
    """
    return export_stage(stages.synthesis(g, plugins), path, precision, **kwargs)


def export_generator(g: Generator, path: str | Path, precision: str = "fp32", **kwargs: Any) -> StageArtifact:
    """Export mapping + synthesis as one graph: ``z``, ``truncation`` -> ``image``."""
    return export_stage(stages.generator(g), path, precision, **kwargs)


def export_encoder(encoder: nn.Module, path: str | Path, precision: str = "fp32", **kwargs: Any) -> StageArtifact:
    """Export ``encoder`` (a CPU fp32 eval copy) as the ``encoder`` stage: ``aligned`` -> ``w_plus``."""
    return export_stage(stages.encoder(encoder), path, precision, **kwargs)


def export_mapper(
    mapper: nn.Module,
    path: str | Path,
    precision: str = "fp32",
    step: float | None = None,
    generator: Generator | None = None,
    inject_k: int = 0,
    **kwargs: Any,
) -> StageArtifact:
    """Export ``w_plus -> w_plus + step * M(w_plus)`` as the ``mapper`` stage (see :func:`cptr.export.stages.mapper`).

    ``generator`` makes the verification inputs realistic latents of that generator.
    """
    return export_stage(stages.mapper(mapper, generator, inject_k, step), path, precision, **kwargs)
