"""Workloads beyond the generator: the encoder, a text mapper, and face alignment.

``--model`` keeps its meaning where it can: ``ffhq256`` is the full-size network with random
weights (pSp's IR-SE50 encoder; a levels mapper for 14 W+ entries), ``demo`` the networks the demo
style serves (its encoder, its mapper with the style's ``inject_k``), ``tiny`` a smoke-test size,
and a PATH a checkpoint of that network. The graphs the engines build are the stage catalogue's.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cptr import contracts
from cptr.bench.workloads import Workload, WorkloadUnavailable, build_model, count_flops
from cptr.export import stages
from cptr.models.encoder import Encoder, load_encoder, small_encoder_config
from cptr.models.mapper import LevelsMapper, load_mapper
from cptr.serving.stages import decode_and_align
from cptr.styles import DEMO_NAME, get_style
from cptr.styles.builtin import demo_encoder

DEMO_N_LATENT, DEMO_STYLE_DIM = 14, 512  # 256 px generators (ffhq256)
TINY_STYLE_DIM = 64


def _seeded(seed: int, make: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make().eval().requires_grad_(False)


def _encoder(model: str, seed: int) -> Workload:
    if model == "ffhq256":
        enc = _seeded(seed, lambda: Encoder(DEMO_N_LATENT, DEMO_STYLE_DIM))
        desc = "pSp/e4e IR-SE50 encoder (256 px input, 14 x 512 W+), random weights"
    elif model == "demo":
        enc, desc = demo_encoder(), "the demo style's encoder (cptr.styles.builtin.demo_encoder)"
    elif model == "tiny":
        enc = _seeded(seed, lambda: Encoder(**small_encoder_config(8, TINY_STYLE_DIM, width=8)))
        desc = "tiny encoder (smoke test), random weights"
    elif Path(model).is_file():
        enc, desc = load_encoder(model).eval().requires_grad_(False), f"encoder checkpoint {model}"
    else:
        raise WorkloadUnavailable(f"--model {model!r}: for --stage encoder use demo, ffhq256, tiny or an encoder checkpoint")
    if enc.input_size != contracts.ALIGNED_SIZE:
        raise WorkloadUnavailable(f"the encoder takes {enc.input_size} px input; the pipeline contract is {contracts.ALIGNED_SIZE} px")

    stage = stages.encoder(enc)

    def sampler(batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        # smooth random images in [-1, 1]: low-resolution noise upsampled (closer to photos than white noise)
        low = torch.from_numpy(rng.uniform(-1, 1, (batch, 3, 16, 16)).astype(np.float32))
        img = torch.nn.functional.interpolate(low, size=contracts.ALIGNED_SIZE, mode="bilinear", align_corners=False)
        return {contracts.ALIGNED.name: img.clamp(-1, 1).numpy()}

    example = [torch.zeros(1, *contracts.ALIGNED.dims)]
    flops = count_flops(enc, *example)
    info = {
        "description": desc,
        "parameters": sum(p.numel() for p in enc.parameters()),
        "gflop_per_image": round(flops / 1e9, 3) if flops else None,
        "config": enc.config(),
    }
    return Workload("encoder", model, stage.served_inputs, stage.outputs[0], enc, sampler, None, info, {stage.key: stage})


def _mapper(model: str, seed: int) -> Workload:
    inject_k = 0
    if model == "demo":  # what `cptr-export --style demo` serves: the style's first mapper, loaded as the exporter loads it
        info_style = get_style(DEMO_NAME)
        prompt, path = sorted(info_style.mappers.items())[0]
        g, _ = build_model("demo", seed)
        mapper = load_mapper(path, n_latent=g.n_latent).eval().requires_grad_(False)
        inject_k = info_style.inject_k
        desc = f"the demo style's {prompt!r} mapper ({mapper.n_latent} x {mapper.style_dim} W+, inject_k={inject_k})"
    elif model == "ffhq256":
        mapper = _seeded(seed, lambda: LevelsMapper(DEMO_N_LATENT, DEMO_STYLE_DIM))
        desc = "StyleCLIP levels mapper for 14 x 512 W+, random weights"
    elif model == "tiny":
        mapper = _seeded(seed, lambda: LevelsMapper(10, TINY_STYLE_DIM))
        desc = "levels mapper for 10 x 64 W+ (smoke test), random weights"
    elif Path(model).is_file():
        mapper, desc = load_mapper(model).eval().requires_grad_(False), f"mapper checkpoint {model}"
    else:
        raise WorkloadUnavailable(f"--model {model!r}: for --stage mapper use demo, ffhq256, tiny or a mapper checkpoint")
    stage = stages.mapper(mapper, inject_k=inject_k)
    module = stage.module
    n, d = mapper.n_latent, mapper.style_dim

    def sampler(batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"w_plus": rng.standard_normal((batch, n, d), dtype=np.float32)}

    flops = count_flops(module, torch.zeros(1, n, d))
    info = {
        "description": desc,
        "parameters": sum(p.numel() for p in module.parameters()),
        "gflop_per_image": round(flops / 1e9, 4) if flops else None,
    }
    return Workload("mapper", model, stage.served_inputs, stage.outputs[0], module, sampler, None, info, {stage.key: stage})


# --------------------------------------------------------------------------- face alignment


def photo_variants(seed: int = 0) -> Callable[[int, np.random.Generator], dict[str, np.ndarray]]:
    """A sampler of JPEG photos: scikit-image's astronaut, randomly scaled, shifted, flipped and re-encoded."""
    try:
        from skimage import data
    except ImportError as e:
        raise WorkloadUnavailable(f"the align/pipeline photos come from scikit-image ({e}); pip install scikit-image") from None
    from PIL import Image

    base = Image.fromarray(data.astronaut())

    def one(rng: np.random.Generator) -> bytes:
        side = int(rng.integers(640, 1280))
        img = base.resize((side, side), Image.Resampling.BICUBIC)
        dx, dy = (int(v) for v in rng.integers(-side // 16, side // 16 + 1, 2))
        img = img.rotate(float(rng.uniform(-8, 8)), resample=Image.Resampling.BILINEAR, translate=(dx, dy))
        if rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(rng.integers(80, 96)))
        return buf.getvalue()

    def sampler(batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        arr = np.empty((batch, 1), dtype=object)
        for i in range(batch):
            arr[i, 0] = one(rng)
        return {contracts.IMAGE_BYTES.name: arr}

    return sampler


class AlignReference:
    """``image_bytes [B, 1] -> aligned [B, 3, 256, 256]``: what the ``preprocess`` model runs."""

    def __call__(self, image_bytes: np.ndarray) -> np.ndarray:
        return np.stack([decode_and_align(bytes(b))[1] for b in np.asarray(image_bytes).reshape(-1)])


def _align(model: str, seed: int) -> Workload:
    try:
        import cptr.align  # noqa: F401
    except ImportError as e:
        raise WorkloadUnavailable(f"face alignment needs the [align] extra ({e}): pip install 'cptr[align]'") from None
    info = {
        "description": "decode JPEG + MediaPipe landmarks + FFHQ align (cptr.serving.stages.decode_and_align); "
        "photos: astronaut 640-1280 px, random shift/rotation/flip; --model is ignored"
    }
    return Workload("align", model, [contracts.IMAGE_BYTES], contracts.ALIGNED, AlignReference(), photo_variants(seed), None, info)


class PipelineReference:
    """``image_bytes [B, 1], paste_back [B, 1] -> image [B, 3, S, S]`` in one process.

    The ``cartoonize_<style>`` ensemble's computation: decode + align (NumPy/MediaPipe), the encoder
    and the synthesis in fp32 torch. Paste-back is not part of the tensor output.
    """

    def __init__(self, encoder: nn.Module, synthesis: nn.Module):
        self.encoder, self.synthesis = encoder, synthesis

    @torch.no_grad()
    def __call__(self, image_bytes: np.ndarray, paste_back: np.ndarray | None = None) -> np.ndarray:
        crops = np.stack([decode_and_align(bytes(b))[1] for b in np.asarray(image_bytes).reshape(-1)])
        return self.synthesis(self.encoder(torch.from_numpy(crops))).numpy()


def _pipeline(model: str, seed: int) -> Workload:
    if model != "demo":
        raise WorkloadUnavailable("the pipeline stage runs the demo style (the only style with a built-in encoder): use --model demo")
    try:
        import cptr.align  # noqa: F401
    except ImportError as e:
        raise WorkloadUnavailable(f"the pipeline needs the [align] extra ({e}): pip install 'cptr[align]'") from None

    g, desc = build_model("demo", seed)
    enc = demo_encoder()
    photos = photo_variants(seed)

    def sampler(batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {**photos(batch, rng), contracts.PASTE_BACK.name: np.zeros((batch, 1), np.int32)}

    info = {
        "description": f"photo JPEG -> align -> encoder -> synthesis; {desc}; photos: astronaut 640-1280 px, random shift/rotation/flip",
        "size": g.size,
    }
    graphs = {"encoder": stages.encoder(enc), "synthesis": stages.synthesis(g)}
    return Workload(
        "pipeline",
        model,
        [contracts.IMAGE_BYTES, contracts.PASTE_BACK],
        contracts.image(g.size),
        PipelineReference(enc, stages.SynthesisReference(g).eval()),
        sampler,
        None,
        info,
        graphs,
    )


BUILDERS: dict[str, Callable[[str, int], Workload]] = {
    "encoder": _encoder,
    "mapper": _mapper,
    "align": _align,
    "pipeline": _pipeline,
}
