"""The one StyleGAN2 training loop: from scratch (``cptr-train source``) and FreezeSG fine-tuning of a
real-face model on a new domain (``cptr-train finetune``).

From scratch (``TrainConfig.source`` empty, ``size`` set) is this same loop with nothing frozen, no
structure loss, and the mapping network trained: the W+ of the G and path-length passes is made
inside the generator's forward pass from ``z`` (style mixing as in rosinality's ``mixing_noise``), so
that gradients reach the mapping. ``latent_avg`` is then the mean of ``g_ema``'s mapping at each save.

One fine-tuning iteration (rosinality's StyleGAN2 loop with Cartoon-StyleGAN's FreezeSG and structure loss):

1. **D step**: fakes from the target on FreezeSG latents (:func:`freezesg_latents`), ADA on reals and
   fakes, non-saturating logistic loss; ADA's ``p`` is tuned from ``sign(D(real))``.
2. **R1** every ``d_reg_every`` steps (lazy, weight ``r1 / 2 * d_reg_every``).
3. **G step**: non-saturating loss on augmented fakes, plus the structure loss: the target's
   intermediates at the lowest ``structure_loss`` resolutions (8, 16, ... px) against the source's,
   both run on the target's W+ and the same noise maps, so only the weights differ (with the
   source's own mixed W+, the loss would also measure style-mixing differences).
4. **Path length** every ``g_reg_every`` steps when ``path_reg > 0``.
5. **EMA** of the trainable generator parameters into ``g_ema``.

Lazy regularisation rescales Adam's lr and betas by ``every / (every + 1)`` (as rosinality does).
Randomness comes from per-step streams (:mod:`cptr.training.rng`) and the data order from
:class:`~cptr.training.data.StepBatchSampler`; both depend on the seed and the *global* batch only.
Hence a resumed run repeats the uninterrupted one bit for bit on the same machine, and a
``torchrun`` run with ``W`` processes of batch ``B/W`` follows the single-process run of batch ``B``
up to float rounding (gradient averaging sums in another order), provided the per-process batch is
a multiple of 4 (the discriminator's minibatch-stddev group, which then covers the same samples).
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn, optim

from cptr.data.critic import AttributeMatchLoss, load_critic
from cptr.io import sha256_file
from cptr.models.checkpoints import CheckpointError
from cptr.models.encoder import Encoder, load_encoder
from cptr.models.stylegan2 import Discriminator, Generator, set_fused_modconv
from cptr.training import distributed as dist_utils
from cptr.training.augment import AdaptiveAugment, augment, sample_augment_params
from cptr.training.checkpointing import (
    FORMAT,
    latest_checkpoint,
    load_checkpoint,
    remove_stale_temp_files,
    save_checkpoint,
)
from cptr.training.config import FinetuneConfig, TrainConfig, locked_differences, parse_channels
from cptr.training.data import StepBatchSampler, hflip, open_dataset
from cptr.training.freeze import (
    FreezePlan,
    apply_trainable,
    discriminator_trainable,
    freezesg_latents,
    generator_trainable,
    is_noise_strength,
    mix_latents,
    set_requires_grad,
    silence_noise,
)
from cptr.training.losses import (
    d_logistic_loss,
    g_nonsaturating_loss,
    path_length_penalty,
    r1_penalty,
    structure_loss,
    structure_resolutions,
)
from cptr.training.monitor import STEP_STATS, CSVLog, TensorBoardLog, save_sample_grid
from cptr.training.rng import StepRandom, capture_rng_state, restore_rng_state, stream_seed
from cptr.training.source import load_source
from cptr.training.synthesis import SynthesisNetwork, synthesize


@dataclass
class FinetuneResult:
    """What a finished run produced."""

    out: Path
    checkpoint: Path | None
    iters: int
    start_iter: int
    seconds: float
    skipped_files: list[str] = field(default_factory=list)

    @property
    def iters_per_second(self) -> float:
        done = self.iters - self.start_iter
        return done / self.seconds if self.seconds > 0 else float("nan")


def _adam(params: list[nn.Parameter], lr: float, reg_every: int) -> optim.Adam:
    ratio = reg_every / (reg_every + 1)
    return optim.Adam(params, lr=lr * ratio, betas=(0.0**ratio, 0.99**ratio))


def grow(g: Generator, d: Discriminator, path: str | Path) -> int:
    """Initialise the blocks ``g`` and ``d`` share with a smaller run's checkpoint (its ``g_ema`` and ``d``), in place.

    A generator's layers are named from 4 px up (``convs.i``, ``to_rgbs.i``, ``noises.noise_i``), so the smaller
    one's names are the larger one's first layers; a discriminator's are named from the input down, so the smaller
    one's block ``convs.k`` (k >= 1) is the larger one's ``convs.k + (log2 size - log2 small)``; its fromRGB and the
    larger one's top blocks start from scratch. Only tensors of one shape are copied. Returns how many were."""

    ckpt = load_checkpoint(path)
    small_g = ckpt.get("g_ema") or ckpt.get("g")
    if not isinstance(small_g, dict):
        raise ValueError(f"{path} has no generator ('g_ema' or 'g') to grow from")
    copied = 0
    with torch.no_grad():
        own = g.state_dict()
        for name, t in small_g.items():
            if name in own and own[name].shape == t.shape:
                own[name].copy_(t)
                copied += 1
        small_d = ckpt.get("d")
        if isinstance(small_d, dict):
            own_d = d.state_dict()
            shift = int(math.log2(g.size)) - int(math.log2(int(ckpt.get("args", {}).get("size") or 0) or g.size))
            for name, t in small_d.items():
                parts = name.split(".")
                if parts[0] == "convs":
                    if parts[1] == "0":
                        continue  # fromRGB reads another resolution
                    parts[1] = str(int(parts[1]) + shift)
                target = ".".join(parts)
                if target in own_d and own_d[target].shape == t.shape:
                    own_d[target].copy_(t)
                    copied += 1
    if copied == 0:
        raise ValueError(f"{path} shares no layer of the same shape with this {g.size} px run (check --channels)")
    return copied


def _latent_avg(g: Generator, seed: int, n: int = 4096) -> torch.Tensor:
    gen = torch.Generator().manual_seed(stream_seed(seed, "latent-avg"))
    z = torch.randn(n, g.style_dim, generator=gen).to(g.input.input.device)
    with torch.no_grad():
        return g.style(z).mean(0)


class Finetuner:
    """One training run (create, then :meth:`run`). Use :func:`finetune` (alias :func:`train`) for the
    common case."""

    def __init__(self, cfg: FinetuneConfig, info: dist_utils.DistInfo, log: Callable[[str], None] = print):
        self.info = info
        self.device = info.device
        self._log = log
        self._quiet = cfg.quiet
        cfg = copy.deepcopy(cfg)
        cfg.world_size = info.world_size
        resume = self._find_resume(cfg)
        if resume is not None:
            path, ckpt = resume
            diffs = locked_differences(ckpt["args"], cfg)
            if diffs:
                raise ValueError(
                    f"cannot resume from {path}: these settings differ from the checkpoint's run "
                    "(drop the options, or start a new run with another --out):\n  " + "\n  ".join(diffs)
                )
            if not cfg.source:
                cfg.source = ckpt["args"]["source"]
            if not cfg.data:
                cfg.data = ckpt["args"]["data"]
        cfg.validate()
        if cfg.source:
            cfg.source = str(Path(cfg.source).resolve())  # resumable from any cwd
        cfg.data = str(Path(cfg.data).resolve())
        if cfg.encoder_fraction > 0:
            cfg.encoder, cfg.encoder_images = str(Path(cfg.encoder).resolve()), str(Path(cfg.encoder_images).resolve())
        if cfg.attribute_weight > 0:
            cfg.attribute_critic = str(Path(cfg.attribute_critic).resolve())
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.scratch = cfg.from_scratch

        # ---- models
        self.source: Generator | None = None
        self.source_sha256: str | None = None
        self.latent_avg: torch.Tensor | None = None
        if self.scratch:
            torch.manual_seed(cfg.seed)
            channels = parse_channels(cfg.channels, cfg.size) if cfg.channels else None
            base = Generator(
                cfg.size, style_dim=cfg.style_dim, n_mlp=cfg.n_mlp, channel_multiplier=cfg.channel_multiplier, channels=channels
            )
            base = base.to(self.device)
            d = Discriminator(cfg.size, channels=base.channels).to(self.device)
            if cfg.grow_from and resume is None:
                grown = grow(base, d, cfg.grow_from)
                self.log(
                    f"grown from {cfg.grow_from}: {grown} tensors of the generator and discriminator start from it, the rest from scratch"
                )
        else:
            if not Path(cfg.source).is_file():
                raise FileNotFoundError(f"source model {cfg.source} not found; pass --source PATH (a rosinality .pt or NVlabs .pkl)")
            self.source_sha256 = sha256_file(cfg.source)
            if resume is not None and resume[1].get("source_sha256") not in (None, self.source_sha256):
                raise ValueError(f"{cfg.source} is not the source model the checkpoint {resume[0]} was trained from (SHA-256 differs)")
            base, d = load_source(cfg.source, self.device)
            self.source = base
            if d is None:
                self.log(f"note: {cfg.source} has no discriminator ('d'); starting from a random one (FreezeD then freezes random layers)")
                torch.manual_seed(cfg.seed)
                d = Discriminator(base.size, channels=base.channels).to(self.device)
            self.latent_avg = base.latent_avg if base.latent_avg is not None else _latent_avg(base, cfg.seed)
        self.arch = base  # shapes: size, style_dim, n_latent, num_layers
        self.plan = FreezePlan(cfg.freeze_style, cfg.freeze_g, cfg.freeze_d)
        self.plan.validate(base, d)
        self.struct_res = structure_resolutions(base.size, cfg.structure_loss)
        frozen = self.plan.frozen_resolutions(base)
        if self.struct_res and frozen and max(self.struct_res) <= max(frozen):
            self.log(
                f"note: every layer feeding the structure loss ({self.struct_res} px) is frozen by --freeze-g {cfg.freeze_g}; it has no effect"
            )

        # Training runs the modulated convs in their shared-weight form (as NVlabs' trainer does): the
        # same function as the fused grouped conv, about 1.17x faster per step on CPU (benchmarks/train_step.py).
        # self.source (structure loss) is base itself; g and g_ema are copies of it.
        set_fused_modconv(base, False)
        self.g = copy.deepcopy(base).train()
        self.g_ema = copy.deepcopy(base).eval()
        self.d = d.train()
        g_trainable = generator_trainable(self.g, self.plan, train_mapping=self.scratch)
        if cfg.noise == "off":
            silence_noise(self.g, self.g_ema)
            g_trainable = {n: t and not is_noise_strength(n) for n, t in g_trainable.items()}
        self.g_params = apply_trainable(self.g, g_trainable)
        self.d_params = apply_trainable(self.d, discriminator_trainable(self.d, self.plan))
        self.g_ema.requires_grad_(False)
        names = [n for n, p in self.g.named_parameters() if p.requires_grad]
        ema_named = dict(self.g_ema.named_parameters())
        self.ema_params = [ema_named[n] for n in names]
        self.g_optim = _adam(self.g_params, cfg.lr, cfg.g_reg_every)
        self.d_optim = _adam(self.d_params, cfg.lr, cfg.d_reg_every)
        self.ada = AdaptiveAugment(cfg.ada_target, cfg.ada_length, cfg.ada_every)
        self.mean_path_length = torch.zeros((), device=self.device)
        self.start_iter = 0
        if resume is not None:
            self._load_state(*resume)

        self.g_net: nn.Module = SynthesisNetwork(self.g)
        self.d_net: nn.Module = self.d
        if info.distributed:
            self.g_net = dist_utils.ddp_wrap(self.g_net, self.device)
            self.d_net = dist_utils.ddp_wrap(self.d, self.device)

        self.bank: torch.Tensor | None = None
        if cfg.encoder_fraction > 0:
            self.bank = encoded_latents(load_encoder(cfg.encoder), cfg.encoder_images, cfg.encoder_n, self.device)
            if self.bank.shape[1:] != (base.n_latent, base.style_dim):
                raise ValueError(
                    f"{cfg.encoder} gives W+ {tuple(self.bank.shape[1:])}, the source takes ({base.n_latent}, {base.style_dim})"
                )
            self.log(f"encoder latents: {len(self.bank)} photos from {cfg.encoder_images}, {cfg.encoder_fraction:.0%} of each batch")

        self.attributes: AttributeMatchLoss | None = None
        if cfg.attribute_weight > 0:
            self.attributes = AttributeMatchLoss(load_critic(cfg.attribute_critic, device=self.device))
            self.log(f"attribute loss: {cfg.attribute_critic}'s pose, expression and face shape, weight {cfg.attribute_weight}")

        # ---- data
        self.dataset = open_dataset(cfg.data, base.size, workers=max(1, cfg.workers))
        self.skipped = [str(p) for p in getattr(self.dataset, "skipped", [])]
        self.log(f"data: {self.dataset.describe()}")
        if self.skipped:
            self.log(f"warning: {len(self.skipped)} unreadable image file(s) skipped, e.g. {self.skipped[0]}")
        self.mine = torch.arange(info.rank, cfg.global_batch, info.world_size, device=self.device)
        pb = max(1, cfg.batch // cfg.path_batch_shrink)
        self.path_batch_global = pb * info.world_size
        self.mine_path = torch.arange(info.rank, self.path_batch_global, info.world_size, device=self.device)

    # ------------------------------------------------------------------ setup helpers
    def log(self, msg: str) -> None:
        if self.info.is_main and not self._quiet:
            self._log(msg)

    def _find_resume(self, cfg: FinetuneConfig) -> tuple[Path, dict[str, Any]] | None:
        if cfg.resume_from:
            return Path(cfg.resume_from), load_checkpoint(cfg.resume_from)
        if not cfg.resume:
            return None
        if self.info.is_main:
            for p in remove_stale_temp_files(cfg.out):
                self.log(f"removed {p.name}: a checkpoint left half-written by an interrupted run")
        found = latest_checkpoint(cfg.out, warn=self.log)
        if found is None:
            raise CheckpointError(Path(cfg.out) / "checkpoints", "--resume found no readable checkpoint; start without --resume")
        return found

    def _load_state(self, path: Path, ckpt: dict[str, Any]) -> None:
        try:
            self.g.load_state_dict(ckpt["g"], strict=True)
            self.g_ema.load_state_dict(ckpt["g_ema"], strict=True)
            self.d.load_state_dict(ckpt["d"], strict=True)
            self.g_optim.load_state_dict(ckpt["g_optim"])
            self.d_optim.load_state_dict(ckpt["d_optim"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(path, f"does not fit this model: {str(e).splitlines()[0]}") from None
        if "ada" in ckpt:
            self.ada.load_state_dict(ckpt["ada"])
        else:
            self.ada.p = float(ckpt.get("ada_aug_p", 0.0))
        self.mean_path_length = torch.as_tensor(ckpt.get("mean_path_length", 0.0), dtype=torch.float32).to(self.device)
        self.start_iter = int(ckpt["iter"])
        if "rng" in ckpt:
            restore_rng_state(ckpt["rng"])
        self.log(f"resumed from {path} at iteration {self.start_iter}")

    # ------------------------------------------------------------------ one step
    def _draw(self, sr: StepRandom, stream: str, n_global: int, mine: torch.Tensor):
        """This rank's ``(z1, z2, crossover, noise)`` of one pass (``z2``/``crossover`` None without mixing)."""
        cfg, g = self.cfg, self.arch
        z1 = sr.randn(f"{stream}-z1", n_global, g.style_dim)[mine]
        z2, crossover = None, None
        if cfg.mixing > 0 and sr.uniform(f"{stream}-mix") < cfg.mixing:
            z2 = sr.randn(f"{stream}-z2", n_global, g.style_dim)[mine]
            crossover = sr.randint(f"{stream}-crossover", 1, g.n_latent)
        noise = [sr.randn(f"{stream}-noise{j}", *shape)[mine] for j, shape in enumerate(g.noise_shapes(n_global))]
        return z1, z2, crossover, noise

    def _latents(self, sr: StepRandom, stream: str, n_global: int, mine: torch.Tensor):
        """``(W+_src, W+_tgt, noise)`` without gradient: FreezeSG's pair through the frozen source mapping,
        or (from scratch) the trained generator's own mixed W+ twice."""
        z1, z2, crossover, noise = self._draw(sr, stream, n_global, mine)
        if self.scratch:
            with torch.no_grad():
                wp = mix_latents(self.g.style, self.arch.n_latent, z1, z2, crossover)
            return wp, wp, noise
        wp_src, wp_tgt = freezesg_latents(self.source.style, self.arch.n_latent, z1, z2, crossover, self.cfg.freeze_style)
        if self.bank is not None:  # the encoder's W+ as it is served: the same for source and target
            take = (sr.rand(f"{stream}-bank", n_global) < self.cfg.encoder_fraction)[mine]
            idx = torch.randint(len(self.bank), (n_global,), generator=sr.generator(f"{stream}-bank-index", cpu=True))[mine.cpu()]
            chosen = self.bank[idx.to(self.bank.device)]
            wp_src = torch.where(take[:, None, None], chosen, wp_src)
            wp_tgt = torch.where(take[:, None, None], chosen, wp_tgt)
        return wp_src, wp_tgt, noise

    def _generate(self, sr: StepRandom, stream: str, n_global: int, mine: torch.Tensor, latent_grad: bool = False):
        """The trained generator's pass with gradients: ``(outputs, W+, noise)``. From scratch the
        mapping runs inside ``g_net`` (it trains); fine-tuning feeds FreezeSG's target W+ (made
        a leaf with gradient when ``latent_grad``, for the path-length penalty)."""
        if self.scratch:
            z1, z2, crossover, noise = self._draw(sr, stream, n_global, mine)
            out = self.g_net(None, noise, styles=(z1, z2, crossover))
            return out, out["w_plus"], noise
        _, wp, noise = self._latents(sr, stream, n_global, mine)
        if latent_grad:
            wp = wp.detach().requires_grad_(True)
        return self.g_net(wp, noise), wp, noise

    def _augment(self, images: torch.Tensor, sr: StepRandom, stream: str) -> torch.Tensor:
        if self.cfg.augment == "none":
            return images
        params = sample_augment_params(self.cfg.global_batch, self.ada.p, self.arch.size, sr.generator(stream, cpu=True))
        return augment(images, params.select(self.mine.cpu()))

    def step(self, i: int, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """Train iteration ``i`` on this rank's real images [B, 3, S, S]; returns detached losses."""
        cfg = self.cfg
        sr = StepRandom(cfg.seed, i, self.device)
        real = real.to(self.device, non_blocking=True)
        real = hflip(real, (sr.rand("flip", cfg.global_batch) < 0.5)[self.mine])
        stats: dict[str, torch.Tensor] = {}

        # -- discriminator
        _, wp_tgt, noise = self._latents(sr, "d", cfg.global_batch, self.mine)
        with torch.no_grad():
            fake = synthesize(self.g, wp_tgt, noise).image
        set_requires_grad(self.d_params, True)
        fake_pred = self.d_net(self._augment(fake, sr, "d-aug-fake"))
        real_pred = self.d_net(self._augment(real, sr, "d-aug-real"))
        d_loss = d_logistic_loss(real_pred, fake_pred)
        self.d_optim.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optim.step()
        stats.update(d=d_loss.detach(), real_score=real_pred.detach().mean(), fake_score=fake_pred.detach().mean())
        if cfg.augment == "ada":
            self.ada.update(real_pred, reduce_sum=dist_utils.reduce_sum)

        if cfg.r1 > 0 and i % cfg.d_reg_every == 0:
            real_r = real.detach().requires_grad_(True)
            pred = self.d_net(self._augment(real_r, sr, "r1-aug"))
            r1 = r1_penalty(pred, real_r)
            self.d_optim.zero_grad(set_to_none=True)
            (cfg.r1 / 2 * r1 * cfg.d_reg_every + 0 * pred[0, 0]).backward()
            self.d_optim.step()
            stats["r1"] = r1.detach()
        set_requires_grad(self.d_params, False)

        # -- generator
        out, wp_tgt, noise = self._generate(sr, "g", cfg.global_batch, self.mine)
        fake_pred = self.d(self._augment(out["image"], sr, "g-aug"))
        g_loss = g_nonsaturating_loss(fake_pred)
        total = g_loss
        if self.struct_res or self.attributes is not None:
            with torch.no_grad():  # the source on the target's own W+ and noise: only the weights differ
                top = None if self.attributes is not None else max(self.struct_res)
                src = synthesize(self.source, wp_tgt, noise, max_resolution=top)
        if self.struct_res:
            kind = cfg.structure_target
            s_loss = structure_loss(out[kind], getattr(src, kind), self.struct_res)
            total = total + cfg.structure_weight * s_loss
            stats["structure"] = s_loss.detach()
        if self.attributes is not None:
            a_loss = self.attributes(out["image"], src.image)
            total = total + cfg.attribute_weight * a_loss
            stats["attributes"] = a_loss.detach()
        self.g_optim.zero_grad(set_to_none=True)
        total.backward()
        self.g_optim.step()
        stats["g"] = g_loss.detach()

        if cfg.path_reg > 0 and i % cfg.g_reg_every == 0:
            out, wp, noise = self._generate(sr, "pl", self.path_batch_global, self.mine_path, latent_grad=True)
            img = out["image"]
            img_noise = sr.randn("pl-image", self.path_batch_global, 3, img.shape[2], img.shape[3])[self.mine_path]
            pl, self.mean_path_length, lengths = path_length_penalty(
                img, wp, self.mean_path_length, img_noise, reduce_mean=dist_utils.reduce_mean
            )
            self.g_optim.zero_grad(set_to_none=True)
            (cfg.path_reg * cfg.g_reg_every * pl + 0 * img[0, 0, 0, 0]).backward()
            self.g_optim.step()
            stats.update(path=pl.detach(), path_length=lengths.detach().mean())

        with torch.no_grad():
            for pe, p in zip(self.ema_params, self.g_params):
                pe.mul_(cfg.ema).add_(p.detach(), alpha=1 - cfg.ema)
        return stats

    # ------------------------------------------------------------------ outputs
    def state(self, iters_done: int) -> dict[str, Any]:
        args = self.cfg.to_args()
        a = self.arch
        args.update(
            size=a.size,
            latent=a.style_dim,
            n_mlp=a.n_mlp,
            channel_multiplier=a.channel_multiplier,
            lr_mlp=a.lr_mlp,
            g_channels=",".join(str(a.channels[r]) for r in sorted(a.channels)),
        )
        latent_avg = self.latent_avg if self.latent_avg is not None else _latent_avg(self.g_ema, self.cfg.seed)
        return {
            "g": self.g.state_dict(),
            "d": self.d.state_dict(),
            "g_ema": self.g_ema.state_dict(),
            "g_optim": self.g_optim.state_dict(),
            "d_optim": self.d_optim.state_dict(),
            "args": args,
            "ada_aug_p": float(self.ada.p),
            "iter": int(iters_done),
            "latent_avg": latent_avg.detach().reshape(-1),
            "ada": self.ada.state_dict(),
            "mean_path_length": self.mean_path_length.detach().clone(),
            "rng": capture_rng_state(),
            "world_size": self.info.world_size,
            "source_sha256": self.source_sha256,
            "format": FORMAT,
        }

    def weights_digest(self) -> str:
        """SHA-256 of g, d and g_ema: equal on every rank of a healthy distributed run."""
        h = hashlib.sha256()
        for module in (self.g, self.d, self.g_ema):
            for k, v in module.state_dict().items():
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    @torch.no_grad()
    def write_samples(self, iters_done: int) -> Path:
        """Fine-tuning: the source's faces above the same latents through ``g_ema``. From scratch:
        ``g_ema``'s faces, untruncated above truncated to 0.7."""
        g = self.arch
        gen = torch.Generator().manual_seed(stream_seed(self.cfg.seed, "samples"))
        z = torch.randn(self.cfg.n_sample, g.style_dim, generator=gen).to(self.device)
        path = self.out / "samples" / f"{iters_done:06d}.png"
        if self.scratch:
            wp = mix_latents(self.g_ema.style, g.n_latent, z, None, None)
            centre = _latent_avg(self.g_ema, self.cfg.seed)
            top, bottom = synthesize(self.g_ema, wp).image, synthesize(self.g_ema, centre + 0.7 * (wp - centre)).image
        else:
            wp_src, wp_tgt = freezesg_latents(self.source.style, g.n_latent, z, None, None, self.cfg.freeze_style)
            top, bottom = synthesize(self.source, wp_src).image, synthesize(self.g_ema, wp_tgt).image
        save_sample_grid(top, bottom, path)
        return path

    # ------------------------------------------------------------------ loop
    def run(self) -> FinetuneResult:
        from tqdm import tqdm

        cfg, main = self.cfg, self.info.is_main
        if self.start_iter >= cfg.iters:
            self.log(f"nothing to do: the run is at iteration {self.start_iter} and --iters is {cfg.iters}")
            return FinetuneResult(self.out, None, cfg.iters, self.start_iter, 0.0, self.skipped)
        sampler = StepBatchSampler(
            len(self.dataset), cfg.global_batch, cfg.seed, self.info.rank, self.info.world_size, self.start_iter, cfg.iters
        )
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=sampler, num_workers=cfg.workers, pin_memory=self.device.type == "cuda"
        )
        csv_log = tb = None
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            csv_log = CSVLog(self.out / "log.csv", self.start_iter)
            tb = TensorBoardLog(self.out / "tensorboard")
        bar = tqdm(
            total=cfg.iters,
            initial=self.start_iter,
            disable=cfg.quiet or not main,
            dynamic_ncols=True,
            desc="train" if self.scratch else "finetune",
        )
        last_ckpt: Path | None = None
        t0 = t_log = time.perf_counter()
        i = self.start_iter
        carry: dict[str, torch.Tensor] = {}
        try:
            for i, real in enumerate(loader, start=self.start_iter):
                stats = self.step(i, real)
                carry.update({k: v for k, v in stats.items() if k in ("r1", "path", "path_length")})
                stats = {**carry, **stats}  # lazy regularisers: log their latest value
                done = i + 1
                bar.update(1)
                if done % cfg.log_every == 0 or done == cfg.iters:
                    keys = STEP_STATS
                    vec = torch.stack([stats.get(k, torch.tensor(float("nan"), device=self.device)).float() for k in keys])
                    vec = dist_utils.reduce_mean(vec).tolist()
                    now = time.perf_counter()
                    row = dict(zip(keys, vec), iter=done, ada_p=self.ada.p, r_t=self.ada.r_t, sec_per_iter=(now - t_log) / cfg.log_every)
                    t_log = now
                    bad = [k for k in ("d", "g") if not math.isfinite(row[k])]
                    if main:
                        csv_log.write(row)
                        tb.write(row)
                        bar.set_postfix(
                            {k: f"{row[k]:.3f}" for k in ("d", "g", "structure", "attributes", "r1") if math.isfinite(row[k])}
                            | {"p": f"{self.ada.p:.3f}"}
                        )
                    if bad:
                        raise FloatingPointError(f"iteration {done}: loss {bad[0]} is not finite; lower --lr or check the data")
                if main and (done % cfg.sample_every == 0 or done == cfg.iters):
                    self.write_samples(done)
                if done % cfg.save_every == 0 or done == cfg.iters:
                    replicas = dist_utils.all_gather_object(self.weights_digest())
                    if len(set(replicas)) != 1:
                        raise RuntimeError(
                            f"iteration {done}: the processes hold different weights (digests {replicas}); the run is not reproducible"
                        )
                    if main:
                        last_ckpt = save_checkpoint({**self.state(done), "replica_digests": replicas}, self.out, keep=cfg.keep or None)
            seconds = time.perf_counter() - t0
        finally:
            bar.close()
            if tb is not None:
                tb.close()
        dist_utils.barrier()
        result = FinetuneResult(self.out, last_ckpt, cfg.iters, self.start_iter, seconds, self.skipped)
        self.log(
            f"done: {cfg.iters - self.start_iter} iterations in {seconds:.1f}s ({result.iters_per_second:.2f} it/s); checkpoint {last_ckpt}"
        )
        return result


@torch.no_grad()
def encoded_latents(encoder: Encoder, images: str | Path, n: int, device: torch.device, batch: int = 64) -> torch.Tensor:
    """W+ ``[N, n_latent, style_dim]`` of the first ``n`` images (file order) of the folder or LMDB
    ``images``, each resized to the encoder's input as :func:`cptr.training.encoder_train.train_encoder` does."""
    data = open_dataset(images, encoder.input_size, workers=1)
    count = min(n, len(data))
    encoder = encoder.to(device).eval()
    out = [encoder(torch.stack([data[i] for i in range(s, min(s + batch, count))]).to(device)) for s in range(0, count, batch)]
    return torch.cat(out).contiguous()


def finetune(cfg: TrainConfig, log: Callable[[str], None] = print) -> FinetuneResult:
    """Run (or resume) a training run, from scratch (``cfg.size``, no ``cfg.source``) or fine-tuning
    ``cfg.source``; joins the torchrun process group when launched by torchrun."""
    info = dist_utils.init_distributed(cfg.device)
    try:
        return Finetuner(cfg, info, log=log).run()
    finally:
        if info.distributed:
            dist_utils.shutdown_distributed()


train = finetune  # the loop is the same for both: train(cfg) reads better for a from-scratch run
Trainer = Finetuner
