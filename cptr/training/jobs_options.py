"""The options of ``cptr-train encoder`` and ``cptr-train mapper``, declared once as the jobs' dataclasses.

Each field is one option: default, flag and help (:func:`cptr.options.option`). The trainers
(:mod:`cptr.training.encoder_train`, :mod:`cptr.training.mapper_train`) take these objects; the
commands (:mod:`cptr.training.encoder_cli`, :mod:`cptr.training.mapper_cli`) are made from them.
Nothing heavy is imported here, so ``cptr-train --help`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cptr.contracts import DEFAULT_TRUNCATION
from cptr.options import option

# The options that mean the same in both jobs (each job keeps its own default).


def _out(default: str) -> Any:
    return option(Path(default), help="Output folder: checkpoints/, samples/.")


def _steps(default: int) -> Any:
    return option(default, min=1, help="Training steps.")


def _batch(default: int) -> Any:
    return option(default, min=1, help="Batch size.")


def _lr(default: float) -> Any:
    return option(default, min=0.0, help="Adam learning rate.")


_GENERATOR_HELP = "Generator checkpoint (rosinality .pt / NVlabs .pkl) instead of --style."
_SAMPLE_EVERY = "Write a sample grid every N steps (0: never)."
_SAVE_EVERY = "Write a checkpoint every N steps (0: only at the end)."
_REGISTER = "Set the result on --style in the registry."
_SEED = "Seed of the initial weights, latents and batches."
_DEVICE = "'auto' (CUDA when available), 'cpu' or 'cuda[:N]'."


@dataclass
class EncoderJob:
    """Everything ``cptr-train encoder`` trains from (its options; see that command's ``--help``)."""

    style: str | None = option(None, help="Registered style whose source generator the encoder inverts.")
    generator: Path | None = option(None, help=_GENERATOR_HELP)
    out: Path = _out("runs/encoder")
    width: str = option("full", help="'full' (pSp's IR-SE50 GradualStyleEncoder) or 'small' (one unit per stage).")
    work_size: int = option(
        256,
        help="Resolution the encoder's backbone works at: the 256 px aligned crop is area-pooled to it (smaller = faster, for small generators).",
    )
    head: str = option("psp", help="'psp' (independent W+ entries) or 'e4e' (one w plus deltas).")
    images: Path | None = option(None, help="Folder of aligned real faces for extra pixel/identity losses.")
    arcface_weights: Path | None = option(None, help="model_ir_se50.pth: adds the identity loss.")
    perceptual_weights: Path | None = option(
        None,
        help="A face critic's weights (cptr-train critic) whose features give an LPIPS-style loss, in place of pSp's LPIPS term. Use one trained apart from the critic that judges the results (--render-seed).",
    )
    lambda_latent: float = option(1.0, min=0.0, help="Weight of the W+ loss against the sampled latents.")
    lambda_l2: float = option(1.0, min=0.0, help="Weight of the pixel L2 loss.")
    lambda_l1: float = option(0.0, min=0.0, help="Weight of the pixel L1 loss.")
    lambda_id: float = option(0.1, min=0.0, help="Weight of the ArcFace identity loss (needs --arcface-weights).")
    lambda_perceptual: float = option(0.8, min=0.0, help="Weight of the --perceptual-weights loss (pSp's LPIPS lambda).")
    lambda_delta: float = option(
        0.0,
        min=0.0,
        help="Weight of e4e's delta regularisation: W+ entries 1.. pulled toward entry 0, so that W+ stays near W, where the generators were trained (0 = off).",
    )
    lambda_attributes: float = option(
        0.0,
        min=0.0,
        help="Weight of the pose, expression and face-shape attributes that the --perceptual-weights critic reads, matched between each reconstruction and its image (0 = off).",
    )
    steps: int = _steps(20000)
    batch: int = _batch(8)
    lr: float = _lr(1e-4)
    sample_every: int = option(1000, min=0, help=_SAMPLE_EVERY)
    save_every: int = option(5000, min=0, help=_SAVE_EVERY)
    register: bool = option(True, help=_REGISTER)
    seed: int = option(0, help=_SEED)
    device: str = option("auto", help=_DEVICE)
    quiet: bool = option(False, help="No progress bar.")


@dataclass
class MapperJob:
    """Everything ``cptr-train mapper`` trains from (its options; see that command's ``--help``)."""

    prompt: str = option(help="Text the edit should move towards, e.g. 'a really angry face'.")
    style: str | None = option(None, help="Registered style whose source generator is edited.")
    generator: Path | None = option(None, help=_GENERATOR_HELP)
    clip_weights: Path | None = option(None, help="OpenAI CLIP ViT-B-32.pt (TorchScript or state dict); read without running code.")
    critic: str | None = option(
        None,
        help="Stand-in for CLIP when its weights are absent: raise this attribute of the shipped face critic (smile, yaw, hair_color, ...) instead of the text loss.",
    )
    critic_weights: Path | None = option(None, help="Face critic weights for --critic (default: the shipped cptr/assets/demo/critic.pt).")
    arcface_weights: Path | None = option(None, help="model_ir_se50.pth for the identity loss (needed when --lambda-id > 0).")
    name: str | None = option(None, help="Prompt name in the registry and file names (default: from the prompt).")
    out: Path = _out("runs/mapper")
    images: Path | None = option(None, help="Folder of aligned faces: train on their encoder inversions instead of sampled latents.")
    encoder: Path | None = option(None, help="Encoder checkpoint for --images (default: the style's encoder).")
    lambda_clip: float = option(1.0, min=0.0, help="Weight of the CLIP (or critic) loss.")
    lambda_l2: float = option(0.8, min=0.0, help="Weight of the latent L2 loss (how far the edit may move W+).")
    lambda_id: float = option(0.1, min=0.0, help="Weight of the ArcFace identity loss (needs --arcface-weights).")
    steps: int = _steps(10000)
    batch: int = _batch(2)
    lr: float = _lr(0.5)
    n_latents: int = option(5000, min=1, help="Sampled training latents (without --images).")
    truncation: float = option(DEFAULT_TRUNCATION, min=0.0, max=1.0, help="Truncation psi of the sampled latents.")
    levels: str = option("coarse,medium,fine", help="Mapper levels to train (comma list).")
    sample_every: int = option(500, min=0, help=_SAMPLE_EVERY)
    save_every: int = option(2000, min=0, help=_SAVE_EVERY)
    with_decoder: bool = option(False, help="Also store the generator as 'decoder.*' (StyleCLIP's own code needs it).")
    register: bool = option(True, help=_REGISTER)
    seed: int = option(0, help=_SEED)
    device: str = option("auto", help=_DEVICE)
    quiet: bool = option(False, help="No progress bar.")
