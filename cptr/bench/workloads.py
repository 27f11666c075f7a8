"""What is measured: a stage of the data path on a given model, with its fp32 torch reference.

A :class:`Workload` names the stage's input and output tensors (from :mod:`cptr.contracts`), draws
random inputs, and holds the fp32 torch module every engine is compared against. Its graphs are the
stage catalogue's (:mod:`cptr.export.stages`), built from the same model and options as
``cptr-export`` builds them, so every engine measures the graph that is served.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cptr import contracts
from cptr.export import stages
from cptr.models import Generator
from cptr.models.checkpoints import load_generator
from cptr.serving.stages import mix_latents, seed_latents
from cptr.styles import DEMO_NAME, get_style, load_style_generators
from cptr.styles.blend import blend_generators

STAGES = ("synthesis", "mapping", "generate", "encoder", "mapper", "align", "pipeline")
NAMED_MODELS = ("demo", "ffhq256", "tiny")
# the official StyleGAN2 architecture (style_dim 512, 8 mapping layers, channel_multiplier=2), random weights
OFFICIAL_SIZES = {"ffhq256": 256, "ffhq512": 512, "ffhq1024": 1024}
# Every model name the benchmarks take (besides a checkpoint path).
MODELS = (*NAMED_MODELS, *(m for m in OFFICIAL_SIZES if m not in NAMED_MODELS))


def benchmark_model(value: str) -> str:
    """``value`` if it names one of :data:`MODELS` or an existing checkpoint file; else a ValueError naming ``--model``
    (an option's ``parse=``)."""
    if value not in MODELS and not Path(value).is_file():
        raise ValueError(f"--model {value!r} is neither one of {', '.join(MODELS)} nor an existing checkpoint file")
    return value


TINY_CONFIG = {"size": 32, "style_dim": 64, "n_mlp": 2, "channels": {4: 32, 8: 32, 16: 16, 32: 16}}


class WorkloadUnavailable(RuntimeError):
    """The stage cannot be measured here (a module or a dependency is missing); the message says why."""


@dataclass
class Workload:
    """One stage on one model: input/output contracts, an input sampler and the fp32 reference."""

    stage: str
    model_name: str
    inputs: list[contracts.TensorSpec]
    output: contracts.TensorSpec
    module: nn.Module | Callable[..., np.ndarray]  # fp32 reference on CPU: (*inputs) -> output
    sampler: Callable[[int, np.random.Generator], dict[str, np.ndarray]]
    generator: Generator | None = None
    info: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, Any] = field(default_factory=dict)  # catalogue stage key -> cptr.export.stages.Stage the engines build

    def sample(self, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """A fresh random input batch, keyed by contract tensor name."""
        feeds = self.sampler(batch, rng)
        for spec in self.inputs:
            arr = feeds[spec.name]
            if arr.shape[1:] != spec.dims or arr.dtype != spec.numpy_dtype:
                raise AssertionError(f"sampler made {spec.name} {arr.shape} {arr.dtype}, contract says {spec.dims} {spec.dtype}")
        return feeds

    @property
    def is_torch(self) -> bool:
        """True when the reference is a torch module (else a NumPy function, e.g. alignment)."""
        return isinstance(self.module, nn.Module)

    @torch.no_grad()
    def reference(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """The fp32 reference output for ``feeds`` (the figure every engine's error is measured against)."""
        if not self.is_torch:
            return np.asarray(self.module(*[feeds[s.name] for s in self.inputs]), dtype=np.float32)
        args = [torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in self.inputs]
        return self.module(*args).float().numpy()


def build_model(model: str, seed: int = 0) -> tuple[Generator, str]:
    """The generator named by ``--model``: ``demo``, ``ffhq256`` (random weights), ``tiny`` or a checkpoint path."""
    if model == "demo":  # exactly what `cptr-export --style demo` serves: the blended pair
        info = get_style(DEMO_NAME)
        source, target = load_style_generators(DEMO_NAME)
        g = blend_generators(source, target, info.alpha, info.swap_res, info.blend_width)
        return g.eval().requires_grad_(
            False
        ), f"embedded demo style blended at alpha={info.alpha:g} (the shipped models CPTR trained, cptr/assets/demo)"
    if model in OFFICIAL_SIZES:  # ffhq256 (the GPU benchmark's model), ffhq512, ffhq1024
        size = OFFICIAL_SIZES[model]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            g = Generator(size, style_dim=512, n_mlp=8, channel_multiplier=2)
        return g.eval().requires_grad_(False), f"{size} px, channel_multiplier=2 (official architecture), random weights"
    if model == "tiny":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            g = Generator(**TINY_CONFIG)
        return g.eval().requires_grad_(False), "tiny 32 px generator (smoke test)"
    path = Path(model)
    if not path.is_file():
        raise WorkloadUnavailable(f"--model {model!r} is neither one of {', '.join(NAMED_MODELS)} nor an existing checkpoint file")

    return load_generator(path).requires_grad_(False), f"checkpoint {path}"


def count_flops(module: nn.Module, *args: torch.Tensor) -> int | None:
    """Floating-point operations of one forward pass (multiply-add = 2), or None if uncountable."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(*args)
        return int(counter.get_total_flops())
    except Exception:  # noqa: BLE001 - the count is informative only
        return None


def _generator_info(g: Generator, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "size": g.size,
        "style_dim": g.style_dim,
        "n_latent": g.n_latent,
        "channels": {str(k): v for k, v in g.channels.items() if k <= g.size},
        "parameters": sum(p.numel() for p in g.parameters()),
    }


def _synthesis(g: Generator, model: str, description: str) -> Workload:
    stage = stages.synthesis(g)
    module = stages.SynthesisReference(g).eval()  # the generator as constructed, stored noise

    def sampler(batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        z = torch.from_numpy(rng.standard_normal((batch, g.style_dim), dtype=np.float32))
        with torch.no_grad():
            w = g.get_latent(z)  # realistic latents: mapped z, one per W+ entry plus a small spread
        w_plus = w[:, None, :] + 0.1 * torch.from_numpy(rng.standard_normal((batch, g.n_latent, g.style_dim), dtype=np.float32))
        return {"w_plus": w_plus.numpy()}

    info = _generator_info(g, description)
    flops = count_flops(module, torch.zeros(1, g.n_latent, g.style_dim))
    info["gflop_per_image"] = round(flops / 1e9, 3) if flops else None
    return Workload("synthesis", model, stage.served_inputs, stage.outputs[0], module, sampler, g, info, {stage.key: stage})


def served_truncation() -> float:
    """The truncation ``cptr-export`` bakes into the served mapping model (its default)."""
    return float(contracts.DEFAULT_TRUNCATION)


def _mapping(g: Generator, model: str, description: str) -> Workload:
    """``z -> w`` with the served truncation: the ``mapping_<style>`` model Triton runs."""

    psi = served_truncation()
    stage = stages.mapping(g, psi)
    module = stage.served_module

    def sampler(batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"z": rng.standard_normal((batch, g.style_dim), dtype=np.float32)}

    info = _generator_info(g, description)
    info["truncation"] = psi
    flops = count_flops(module, torch.zeros(1, g.style_dim))
    info["gflop_per_image"] = round(flops / 1e9, 4) if flops else None
    return Workload("mapping", model, stage.served_inputs, stage.outputs[0], module, sampler, g, info, {stage.key: stage})


class GenerateReference(nn.Module):
    """``seed [B, 1], mix [B, 2] -> image``, as the ``generate_<style>`` ensemble computes it.

    z from the seeds (:func:`cptr.serving.stages.seed_latents`), the served mapping (truncation
    fixed), style mixing (:func:`cptr.serving.stages.mix_latents`), then synthesis.
    """

    def __init__(self, mapping: nn.Module, synthesis: nn.Module, style_dim: int, n_latent: int):
        super().__init__()
        self.mapping, self.synthesis = mapping, synthesis
        self.style_dim, self.n_latent = style_dim, n_latent

    def forward(self, seed: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
        mix_np = mix.cpu().numpy()
        z = torch.from_numpy(seed_latents(seed.cpu().numpy(), self.style_dim)).to(self.synthesis.g.input.input)
        z_mix = torch.from_numpy(seed_latents(mix_np[:, 0], self.style_dim)).to(z)
        w, w_mix = self.mapping(z), self.mapping(z_mix)
        w_plus = mix_latents(w.float().cpu().numpy(), w_mix.float().cpu().numpy(), mix_np, self.n_latent)
        return self.synthesis(torch.from_numpy(w_plus).to(z))


def sample_seeds(batch: int, rng: np.random.Generator, n_latent: int) -> dict[str, np.ndarray]:
    """Random seeds; half of the requests mix in a second seed at a random W+ entry."""
    seed = rng.integers(0, 2**31, (batch, 1), dtype=np.int64)
    mix = np.stack([rng.integers(0, 2**31, batch), rng.integers(1, n_latent, batch) * (rng.random(batch) < 0.5)], 1)
    return {"seed": seed, "mix": mix.astype(np.int64)}


def _generate(g: Generator, model: str, description: str) -> Workload:
    psi = served_truncation()
    mapping, synthesis = stages.mapping(g, psi), stages.synthesis(g)
    module = GenerateReference(mapping.served_module, stages.SynthesisReference(g).eval(), g.style_dim, g.n_latent)
    info = _generator_info(g, description)
    info["truncation"] = psi
    flops = count_flops(module.synthesis, torch.zeros(1, g.n_latent, g.style_dim))
    info["gflop_per_image"] = round(flops / 1e9, 3) if flops else None
    return Workload(
        "generate",
        model,
        [contracts.SEED, contracts.MIX],
        contracts.image(g.size),
        module,
        lambda batch, rng: sample_seeds(batch, rng, g.n_latent),
        g,
        info,
        {"mapping": mapping, "synthesis": synthesis},
    )


def build_workload(stage: str, model: str, seed: int = 0) -> Workload:
    """The workload for ``--stage`` and ``--model``; raises :class:`WorkloadUnavailable` with the reason."""
    if stage not in STAGES:
        raise WorkloadUnavailable(f"unknown stage {stage!r}; choose one of: {', '.join(STAGES)}")
    builders = {"synthesis": _synthesis, "mapping": _mapping, "generate": _generate}
    extra = _extra_builders()
    if stage in builders:
        g, description = build_model(model, seed)
        return builders[stage](g, model, description)
    if stage in extra:
        return extra[stage](model, seed)
    raise WorkloadUnavailable(f"stage {stage!r} is not measurable yet in this checkout")


def _extra_builders() -> dict[str, Callable[[str, int], Workload]]:
    """Stages whose modules are written elsewhere (encoder, mapper, align, pipeline), when present."""
    from cptr.bench import stages_extra  # import cycle: that module imports this one

    return stages_extra.BUILDERS
