"""ONNX export of the encoder and StyleCLIP mapper stages, verified in ONNX Runtime.

* ``encoder``: ``aligned`` [B, 3, 256, 256] in [-1, 1] (:data:`cptr.contracts.ALIGNED`) -> ``w_plus``
  [B, n_latent, D]; the average latent is a constant of the graph.
* ``mapper``: ``w_plus`` [B, n_latent, D] -> ``w_plus_edit`` [B, n_latent, D] = ``w + step * M(w)``.

Both go through :func:`cptr.export.onnx.export_module`: traced with a dynamic batch axis, checked
with ``onnx.checker``, written atomically and compared with PyTorch at two batch sizes
(tolerance 1e-3 fp32, 2e-2 fp16, relative to max(1, max|reference|)).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from cptr import contracts
from cptr.contracts import StageArtifact, TensorSpec
from cptr.export.onnx import default_inputs, export_module
from cptr.models.encoder import Encoder
from cptr.models.mapper import LevelsMapper, MappedEdit

W_PLUS_EDIT = "w_plus_edit"


def encoder_input_spec(encoder: Encoder) -> TensorSpec:
    """``ALIGNED`` for a 256 px encoder; same name and layout at other sizes (tests, custom encoders)."""
    if encoder.input_size == contracts.ALIGNED_SIZE:
        return contracts.ALIGNED
    return TensorSpec(contracts.ALIGNED.name, "FP32", (3, encoder.input_size, encoder.input_size))


def mapper_output_spec(n_latent: int, style_dim: int) -> TensorSpec:
    return contracts.w_plus(n_latent, style_dim, name=W_PLUS_EDIT)


def export_encoder(encoder: Encoder, out_path: str | Path, precision: str = "fp32", **kwargs: Any) -> StageArtifact:
    """Export ``encoder`` (a CPU fp32 eval copy) as the ``encoder`` stage; verified against PyTorch."""
    enc = copy.deepcopy(encoder).cpu().float().eval().requires_grad_(False)
    specs_in = [encoder_input_spec(enc)]
    specs_out = [contracts.w_plus(enc.n_latent, enc.style_dim)]
    make = kwargs.pop("make_inputs", None) or default_inputs(specs_in)
    extra = {"encoder": enc.config(), **kwargs.pop("extra", {})}
    return export_module(enc, make(2), specs_in, specs_out, out_path, precision, stage=contracts.ENCODER,
                         make_inputs=make, extra=extra, **kwargs)


def mapper_inputs(mapper: LevelsMapper, generator: torch.nn.Module | None = None, seed: int = 0):
    """W+ batches for verification: mapped random z of ``generator`` (when given) plus jitter, else N(0, 1)."""
    if generator is None:
        return default_inputs([contracts.w_plus(mapper.n_latent, mapper.style_dim)], seed)
    from cptr.export.onnx import synthesis_inputs

    return synthesis_inputs(generator, seed)


def export_mapper(
    mapper: LevelsMapper,
    out_path: str | Path,
    precision: str = "fp32",
    step: float | None = None,
    generator: torch.nn.Module | None = None,
    **kwargs: Any,
) -> StageArtifact:
    """Export ``w_plus -> w_plus + step * M(w_plus)`` as the ``mapper`` stage; verified against PyTorch.

    ``step`` defaults to the mapper's own (0.1, StyleCLIP's). ``generator`` makes the verification
    inputs realistic latents of that generator.
    """
    m = copy.deepcopy(mapper).cpu().float().eval().requires_grad_(False)
    module = MappedEdit(m, step)
    specs_in = [contracts.w_plus(m.n_latent, m.style_dim)]
    specs_out = [mapper_output_spec(m.n_latent, m.style_dim)]
    make = kwargs.pop("make_inputs", None) or mapper_inputs(m, generator)
    extra = {"mapper": {**m.opts(), "step": module.step}, **kwargs.pop("extra", {})}
    return export_module(module, make(2), specs_in, specs_out, out_path, precision, stage=contracts.MAPPER,
                         make_inputs=make, extra=extra, **kwargs)
