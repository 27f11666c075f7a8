"""The face critic: a small CNN trained on procedural renders that judges generated faces.

One trunk, three uses:

* **domain classifier**: ``domain_logit`` > 0 means *cartoon*, < 0 *photo*;
* **attribute regressor**: the :data:`~cptr.data.faces.ATTRIBUTES` of a face (yaw, roll, skin tone,
  hair colour, smile, ...), in the label units of :class:`~cptr.data.faces.FaceParams`;
* **feature network** for FID/KID where Inception weights are absent: the trunk's pooled
  ``FEATURE_DIM``-d features.

It sees 64 px images (others are resized). Training (:func:`train_critic`, ``cptr-train critic``)
renders both domains from the same seeds and perturbs every image with random blur, noise,
colour shifts and small shifts, in both domains alike, so that focus and noise (what a GAN gets
wrong) do not decide the domain: the outlines, flat fills and eye shapes do.

The weights ship in the package (``cptr/assets/demo/critic.pt``, a plain state dict read with
``weights_only=True``); :func:`load_critic` reads them.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cptr.data.faces import ATTRIBUTES, DOMAINS, GEOMETRY
from cptr.data.render import render_batch
from cptr.imaging import from_uint8
from cptr.io import atomic_path

CRITIC_SIZE = 64
CRITIC_RENDER_SEED = 5_000_000  # the shipped critic's training renders: seeds 5,000,000 + i
FEATURE_DIM = 128
ASSET = Path(__file__).resolve().parents[1] / "assets" / "demo" / "critic.pt"  # built beside the demo models


def _block(cin: int, cout: int) -> nn.Sequential:
    """Halve the resolution (strided conv), then one more conv at the new one."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=2, padding=1),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.2),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.2),
    )


@dataclass
class CriticOutput:
    domain_logit: torch.Tensor  # [B]
    attributes: torch.Tensor  # [B, len(ATTRIBUTES)]
    features: torch.Tensor  # [B, FEATURE_DIM]

    @property
    def cartoon_prob(self) -> torch.Tensor:
        return torch.sigmoid(self.domain_logit)


class FaceCritic(nn.Module):
    """64 px -> 32 -> 16 -> 8 -> 4 -> pooled features -> domain logit and attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(_block(3, 16), _block(16, 32), _block(32, 64), _block(64, FEATURE_DIM))
        self.domain = nn.Linear(FEATURE_DIM, 1)
        self.attributes = nn.Linear(FEATURE_DIM, len(ATTRIBUTES))

    @staticmethod
    def prepare(images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [-1, 1] -> [B, 3, 64, 64] (area/bilinear resize when needed)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}")
        if images.shape[-2:] != (CRITIC_SIZE, CRITIC_SIZE):
            mode = "area" if images.shape[-1] > CRITIC_SIZE else "bilinear"
            images = F.interpolate(
                images, size=(CRITIC_SIZE, CRITIC_SIZE), mode=mode, **({} if mode == "area" else {"align_corners": False})
            )
        return images

    def forward(self, images: torch.Tensor) -> CriticOutput:
        f = self.trunk(self.prepare(images)).mean((2, 3))
        return CriticOutput(self.domain(f)[:, 0], self.attributes(f), f)


def load_critic(path: str | os.PathLike | None = None, device: torch.device | str = "cpu") -> FaceCritic:
    """The shipped critic (or the state dict at ``path``), in eval mode."""
    p = Path(path) if path is not None else ASSET
    if not p.is_file():
        raise FileNotFoundError(f"critic weights {p} not found; train them with: cptr-train critic --out {p}")
    try:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
        raise ValueError(f"{p} is not a readable FaceCritic state dict: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    sd = sd.get("critic", sd) if isinstance(sd, dict) else sd
    net = FaceCritic()
    try:
        net.load_state_dict(sd, strict=True)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"{p} is not a FaceCritic state dict: {str(e).splitlines()[0]}") from None
    return net.to(device).eval().requires_grad_(False)


@torch.no_grad()
def critic_scores(critic: FaceCritic, images: torch.Tensor, batch: int = 256) -> CriticOutput:
    """Run the critic over many images [N, 3, H, W] in [-1, 1] in batches."""
    outs = [critic(images[i : i + batch].to(next(critic.parameters()).device)) for i in range(0, len(images), batch)]
    return CriticOutput(*(torch.cat([getattr(o, k).cpu() for o in outs]) for k in ("domain_logit", "attributes", "features")))


# ------------------------------------------------------------------------------------------ training
def perturb(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Domain-neutral nuisance: random blur, noise, colour gain/offset and a shift of up to 3 px."""
    b = images.shape[0]
    out = images
    sigma = torch.rand(b, generator=gen) * 1.2
    k = torch.arange(-2, 3, dtype=torch.float32)
    kern = torch.exp(-(k[None] ** 2) / (2 * sigma[:, None].clamp_min(1e-3) ** 2))
    kern = kern / kern.sum(1, keepdim=True)  # [B, 5]
    x = out.reshape(1, b * 3, *out.shape[-2:])
    kx = kern.repeat_interleave(3, 0)[:, None, None, :]
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), kx, groups=b * 3)
    x = F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), kx.transpose(2, 3), groups=b * 3)
    out = x.reshape_as(images)
    out = out * (1 + 0.1 * (torch.rand(b, 3, 1, 1, generator=gen) - 0.5)) + 0.1 * (torch.rand(b, 3, 1, 1, generator=gen) - 0.5)
    out = out + torch.randn(out.shape, generator=gen) * (torch.rand(b, 1, 1, 1, generator=gen) * 0.08)
    dx, dy = (int(v) for v in torch.randint(-3, 4, (2,), generator=gen))
    out = torch.roll(out, shifts=(dy, dx), dims=(2, 3))
    return out.clamp(-1, 1)


def _render_pairs(n: int, seed0: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` faces in both domains: images [2n, 3, 64, 64] in [-1, 1], domain [2n], labels [2n, A]."""

    imgs, labs = [], []
    for d in DOMAINS:
        im, lab = render_batch(range(seed0, seed0 + n), d, CRITIC_SIZE)
        imgs.append(from_uint8(im))
        labs.append(torch.from_numpy(lab))
    dom = torch.cat([torch.full((n,), float(i)) for i in range(len(DOMAINS))])
    return torch.cat(imgs), dom, torch.cat(labs)


@dataclass
class CriticReport:
    """Held-out quality of a trained critic (renders it never saw)."""

    domain_accuracy: float
    attribute_mae: dict[str, float]
    attribute_corr: dict[str, float]
    seconds: float

    def summary(self) -> str:
        corr = ", ".join(f"{k} {v:.2f}" for k, v in self.attribute_corr.items())
        return f"domain accuracy {self.domain_accuracy:.3f}; attribute correlation: {corr}"


def evaluate_critic(critic: FaceCritic, n: int = 500, seed0: int = 10_000_000) -> CriticReport:
    """Domain accuracy and per-attribute MAE/correlation on ``n`` held-out faces per domain."""
    t0 = time.perf_counter()
    images, dom, labels = _render_pairs(n, seed0)
    out = critic_scores(critic, images)
    acc = float(((out.domain_logit > 0).float() == dom).float().mean())
    mae, corr = {}, {}
    for j, name in enumerate(ATTRIBUTES):
        p, t = out.attributes[:, j].numpy(), labels[:, j].numpy()
        mae[name] = float(np.abs(p - t).mean())
        corr[name] = float(np.corrcoef(p, t)[0, 1]) if t.std() > 0 else float("nan")
    return CriticReport(acc, mae, corr, time.perf_counter() - t0)


def train_critic(
    n: int = 8000,
    steps: int = 2000,
    batch: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    render_seed: int = CRITIC_RENDER_SEED,
) -> FaceCritic:
    """Train a :class:`FaceCritic` on ``n`` faces rendered in both domains (seeds ``render_seed`` + i;
    the default keeps them apart from the demo's training data), with :func:`perturb` on every batch."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    images, dom, labels = _render_pairs(n, render_seed)
    net = FaceCritic()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    net.train()
    for step in range(steps):
        idx = torch.randint(0, len(images), (batch,), generator=gen)
        x = perturb(images[idx], gen)
        flip = torch.rand(batch, generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        y = labels[idx].clone()
        y[flip, 0] = -y[flip, 0]  # a mirrored face turns the other way
        y[flip, 1] = -y[flip, 1]
        out = net(x)
        loss_d = F.binary_cross_entropy_with_logits(out.domain_logit, dom[idx])
        loss_a = F.smooth_l1_loss(out.attributes, y, beta=0.1)
        loss = loss_d + 4 * loss_a
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress is not None:
            progress(step + 1, {"domain": loss_d.item(), "attributes": loss_a.item()})
    return net.eval().requires_grad_(False)


def save_critic(net: FaceCritic, path: str | os.PathLike) -> None:
    """Write the critic's state dict atomically."""

    with atomic_path(path) as tmp:
        torch.save({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, tmp)


class AttributeLoss(nn.Module):
    """A text-loss stand-in for when CLIP weights are absent: pushes one critic attribute up to
    ``target`` (``relu(target - attribute(image)).mean()``), e.g. ``AttributeLoss(critic, "smile")``
    for "a smiling face". It plugs in where :class:`cptr.models.clip_loss.CLIPLoss` does (the mapper
    trainer, ``cptr edit``); the critic stays frozen."""

    def __init__(self, critic: FaceCritic, attribute: str, target: float = 1.0):
        super().__init__()
        if attribute not in ATTRIBUTES:
            raise ValueError(f"unknown critic attribute {attribute!r}; choose one of: {', '.join(ATTRIBUTES)}")
        self.critic = critic.eval().requires_grad_(False)
        self.index = ATTRIBUTES.index(attribute)
        self.attribute, self.target = attribute, float(target)

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """The attribute per image [B]."""
        return self.critic(images).attributes[:, self.index]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.relu(self.target - self.score(images)).mean()


class AttributeMatchLoss(nn.Module):
    """How far an image's critic attributes are from a reference's: the mean squared difference of the
    ``attributes`` (default :data:`~cptr.data.faces.GEOMETRY`: pose, expression and face shape) that the
    critic regresses from each. An encoder's reconstruction of a photo is pushed to keep the photo's pose,
    mouth and face width, which pixel and feature distances weigh little at these sizes. Use a critic
    trained apart from the one that judges the results, as for :class:`PerceptualLoss`."""

    def __init__(self, critic: FaceCritic, attributes: tuple[str, ...] = GEOMETRY):
        super().__init__()
        unknown = [a for a in attributes if a not in ATTRIBUTES]
        if unknown or not attributes:
            raise ValueError(f"unknown critic attribute(s) {unknown or attributes}; choose from: {', '.join(ATTRIBUTES)}")
        self.critic = critic.eval().requires_grad_(False)
        self.register_buffer("index", torch.tensor([ATTRIBUTES.index(a) for a in attributes]), persistent=False)

    def forward(self, images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        if images.shape != reference.shape:
            raise ValueError(f"images {tuple(images.shape)} and reference {tuple(reference.shape)} differ in shape")
        a = self.critic(images).attributes[:, self.index]
        b = self.critic(reference).attributes[:, self.index]
        return (a - b).pow(2).mean()


class PerceptualLoss(nn.Module):
    """An LPIPS-style distance from a face critic's trunk, for where LPIPS' VGG/AlexNet weights are
    absent: at each of the four blocks (32, 16, 8 and 4 px) the features are unit-normalised over
    channels, and the squared difference is summed over channels and averaged over positions (LPIPS'
    unweighted baseline: there are no learnt per-channel weights); the four blocks' figures are summed. Both
    images are [B, 3, H, W] in [-1, 1]; the result is the batch mean. Use a critic trained apart
    from the one that judges the results (``cptr-train critic --render-seed``), so that the loss and
    the judge are different networks."""

    def __init__(self, critic: FaceCritic):
        super().__init__()
        self.critic = critic.eval().requires_grad_(False)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        out, h = [], self.critic.prepare(images)
        for block in self.critic.trunk:
            h = block(h)
            out.append(h / (h.pow(2).sum(1, keepdim=True) + 1e-10).sqrt())
        return out

    def forward(self, images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        if images.shape != reference.shape:
            raise ValueError(f"images {tuple(images.shape)} and reference {tuple(reference.shape)} differ in shape")
        return sum((a - b).pow(2).sum(1).mean() for a, b in zip(self.features(images), self.features(reference)))
