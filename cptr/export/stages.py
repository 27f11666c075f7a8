"""The stage catalogue: one description per servable stage, read by every builder.

A :class:`Stage` says, for one box of the data path, which module is built, which PyTorch reference
it is verified against, its input and output :class:`~cptr.contracts.TensorSpec`\\ s, how to make
example inputs, which inputs have defaults, and its Triton model name. The ONNX exporter
(:func:`cptr.export.onnx.export_stage`), the TensorRT builder (from that ONNX file), the
AOTInductor builder (:attr:`Stage.served_module`), ``cptr-export``, the Triton repository writer
and the benchmark all take their graphs from here; none of them builds one of its own.

Stages (tensor names, dtypes and shapes from :mod:`cptr.contracts`; batch axis dynamic):

* ``mapping``: ``z`` [B, D] -> ``w`` [B, D] with the truncation psi fixed. The ONNX graph keeps
  ``truncation`` [B, 1] as an optional input whose default is psi (Triton sends only ``z``; ONNX
  Runtime callers may feed their own); engines without optional inputs build
  :class:`FixedTruncationMapping`. The truncation centre (``latent_avg`` of the checkpoint, else
  ``mean_latent(4096)`` from a fixed seed) is a constant.
* ``synthesis``: ``w_plus`` [B, n_latent, D] -> ``image`` [B, 3, H, W] in [-1, 1], the inference
  rewrite :class:`~cptr.export.rewrite.ExportSynthesis` (or the generator itself with TensorRT
  plugin nodes); the noise maps are constants, so the graph is deterministic.
* ``generator``: ``z`` + ``truncation`` -> ``image`` (both in one graph; not served).
* ``encoder``: ``aligned`` [B, 3, 256, 256] -> ``w_plus``.
* ``mapper``: ``w_plus`` -> ``w_plus_edit`` = ``w + step * M(w)``; with ``inject_k > 0`` the first
  ``k`` W+ entries pass through unedited (FreezeSG latent injection).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cptr import contracts
from cptr.contracts import TensorSpec
from cptr.engines.plugin_ops import PLUGIN_OPS
from cptr.export.rewrite import ExportSynthesis
from cptr.models import set_fused_modconv
from cptr.models.mapper import MappedEdit
from cptr.models.stylegan2 import Generator
from cptr.styles.blend import InjectedLatentEdit

InputFactory = Callable[[int], Sequence[torch.Tensor]]

DEFAULT_TRUNCATION = contracts.DEFAULT_TRUNCATION
TRUNCATION_MEAN_SEED = 0
TRUNCATION_MEAN_SAMPLES = 4096
GENERATOR = contracts.GENERATOR


@dataclass
class Stage:
    """One servable stage: what every builder builds, and what it is checked against."""

    key: str  # a contracts stage name: mapping, synthesis, encoder, mapper or generator
    module: nn.Module  # the graph the exporters trace (eval mode, CPU, fp32)
    reference: nn.Module  # the PyTorch computation it must match (the original layers)
    inputs: list[TensorSpec]  # every graph input, including those with defaults
    outputs: list[TensorSpec]
    make_inputs: InputFactory  # batch -> example inputs, in the order of ``inputs``
    input_defaults: dict[str, float] = field(default_factory=dict)  # optional [B, 1] inputs and their value
    fixed: nn.Module | None = None  # ``module`` with the defaults baked in (engines without optional inputs)
    plugins: bool = False  # FIR filters and bias-act as TensorRT plugin nodes
    extra: dict[str, Any] = field(default_factory=dict)  # recorded in the artifact and the manifest

    @property
    def served_inputs(self) -> list[TensorSpec]:
        """The inputs a server sends (those without a default)."""
        return [s for s in self.inputs if s.name not in self.input_defaults]

    @property
    def served_module(self) -> nn.Module:
        """The module that takes exactly :attr:`served_inputs` (AOTInductor, CUDA graphs, the benchmark)."""
        return self.fixed if self.fixed is not None else self.module

    def served_examples(self, batch: int) -> list[torch.Tensor]:
        """Example inputs for :attr:`served_module`."""
        full = list(self.make_inputs(batch))
        return [x for s, x in zip(self.inputs, full) if s.name not in self.input_defaults]

    def model_name(self, style: str, prompt: str | None = None) -> str:
        """The Triton model name of this stage for ``style`` (and the mapper's ``prompt``)."""
        if self.key == contracts.MAPPER:
            if prompt is None:
                raise ValueError("a mapper's model name needs its prompt")
            return contracts.model_name(self.key, style, prompt)
        return contracts.model_name(self.key, style)


# --------------------------------------------------------------------------- input makers


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


def inference_copy(g: Generator) -> Generator:
    """A detached fp32 CPU copy in eval mode with static-weight (non-fused) modulated convs."""

    out = copy.deepcopy(g).cpu().float().eval().requires_grad_(False)
    out.latent_avg = getattr(g, "latent_avg", None)
    return set_fused_modconv(out, False)


def _frozen_copy(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module).cpu().float().eval().requires_grad_(False)


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


# --------------------------------------------------------------------------- the catalogue


def mapping(g: Generator, truncation: float | None = DEFAULT_TRUNCATION, latent_avg: torch.Tensor | None = None) -> Stage:
    """``z`` (+ optional ``truncation``, default ``truncation``) -> ``w``.

    ``truncation=None`` makes the ``truncation`` input required (no default, no fixed module).
    """
    gi = inference_copy(g)
    module = MappingGraph(gi, latent_avg).eval()
    specs_in = [contracts.z(gi.style_dim), contracts.TRUNCATION]
    defaults = {} if truncation is None else {contracts.TRUNCATION.name: float(truncation)}
    fixed = None if truncation is None else FixedTruncationMapping(module, float(truncation)).eval()
    return Stage(
        contracts.MAPPING,
        module,
        module,
        specs_in,
        [contracts.w(gi.style_dim)],
        default_inputs(specs_in),
        input_defaults=defaults,
        fixed=fixed,
    )


def synthesis(g: Generator, plugins: bool = False) -> Stage:
    """``w_plus`` -> ``image``: the inference rewrite, verified against the generator itself.

    ``plugins=True`` builds the generator itself with every FIR filter and synthesis bias-act emitted
    as a TensorRT plugin node (``UpFirDn2d``, ``FusedBiasLeakyReLU``; see
    :mod:`cptr.engines.plugin_ops`); those nodes stay fp32 in an fp16 graph.
    """

    gi = inference_copy(g)
    reference = SynthesisReference(gi).eval()
    module = reference if plugins else ExportSynthesis(gi).eval()
    extra: dict[str, Any] = {}
    if plugins:
        extra["plugins"] = list(PLUGIN_OPS)
    return Stage(
        contracts.SYNTHESIS,
        module,
        reference,
        [contracts.w_plus(gi.n_latent, gi.style_dim)],
        [contracts.image(gi.size)],
        synthesis_inputs(gi),
        plugins=plugins,
        extra=extra,
    )


def generator(g: Generator) -> Stage:
    """``z``, ``truncation`` -> ``image`` in one graph (``cptr-export --with-generator``)."""

    gi = inference_copy(g)
    graph_mapping = MappingGraph(gi)
    specs_in = [contracts.z(gi.style_dim), contracts.TRUNCATION]
    module = GeneratorGraph(graph_mapping, ExportSynthesis(gi), gi.n_latent).eval()
    reference = GeneratorGraph(graph_mapping, SynthesisReference(gi), gi.n_latent).eval()
    return Stage(GENERATOR, module, reference, specs_in, [contracts.image(gi.size)], default_inputs(specs_in))


def encoder_input_spec(enc: nn.Module) -> TensorSpec:
    """``ALIGNED`` for a 256 px encoder; same name and layout at other sizes (tests, custom encoders)."""
    if enc.input_size == contracts.ALIGNED_SIZE:
        return contracts.ALIGNED
    return TensorSpec(contracts.ALIGNED.name, "FP32", (3, enc.input_size, enc.input_size))


def encoder(enc: nn.Module) -> Stage:
    """``aligned`` -> ``w_plus`` (the average latent is a constant of the graph)."""
    e = _frozen_copy(enc)
    specs_in = [encoder_input_spec(e)]
    return Stage(
        contracts.ENCODER,
        e,
        e,
        specs_in,
        [contracts.w_plus(e.n_latent, e.style_dim)],
        default_inputs(specs_in),
        extra={"encoder": e.config()},
    )


def mapper_output_spec(n_latent: int, style_dim: int) -> TensorSpec:
    return contracts.w_plus(n_latent, style_dim, name=contracts.W_PLUS_EDIT)


def mapper(m: nn.Module, generator: Generator | None = None, inject_k: int = 0, step: float | None = None) -> Stage:
    """``w_plus`` -> ``w_plus_edit`` = ``w + step * M(w)``; the first ``inject_k`` entries unedited.

    ``step`` defaults to the mapper's own (0.1, StyleCLIP's). ``generator`` makes the example inputs
    realistic latents of that generator.
    """

    lm = _frozen_copy(m)
    edit = MappedEdit(lm, step).eval()
    extra: dict[str, Any] = {"mapper": {**lm.opts(), "step": edit.step}}
    module: nn.Module = edit
    if inject_k:
        module = InjectedLatentEdit(edit, inject_k).eval()
        extra["inject_k"] = int(inject_k)
    specs_in = [contracts.w_plus(lm.n_latent, lm.style_dim)]
    make = synthesis_inputs(generator) if generator is not None else default_inputs(specs_in)
    return Stage(contracts.MAPPER, module, module, specs_in, [mapper_output_spec(lm.n_latent, lm.style_dim)], make, extra=extra)
