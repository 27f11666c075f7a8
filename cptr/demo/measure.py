"""The demo models' figures: what the model card reports and the CI test checks (one home for both).

All judged by the shipped face critic (:mod:`cptr.data.critic`) and mediapipe, on latents drawn
from the source's mapping network at truncation 0.7 (the served default):

* **stylisation**: share of target (alpha = 1) samples the critic calls cartoon, and of source
  samples it calls photo;
* **structure kept**: Pearson correlation of the critic's pose (yaw, roll), skin tone and hair colour
  between source(W) and target(W);
* **faces stay faces**: mediapipe face rate of stylised samples (alpha = 1 and the served 0.7);
* **encoder**: on held-out photo renders, the correlation of the critic's attributes of input and
  reconstruction, and the reconstruction MSE against that of the mean latent's image;
* **edit**: share of samples whose smile score rises under the smile mapper, and how far yaw and
  hair colour move.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cptr.data.faces import ATTRIBUTES

TRUNCATION = 0.7
HELD_OUT_SEED = 9_000_000  # renders never used in training (photo seeds 0..19,999; critic 5,000,000+)
STRUCTURE_ATTRS = ("yaw", "roll", "skin_tone", "hair_color")
ENCODER_ATTRS = ("yaw", "roll", "skin_tone", "hair_color", "face_width")
EDIT_BOUNDS = {"yaw": 0.1, "hair_color": 0.1}  # largest allowed mean |change| under the smile edit

# The thresholds the demo models must meet (issue: demo models and `cptr demo`).
THRESHOLDS = {
    "target_cartoon_rate": 0.9,
    "source_photo_rate": 0.9,
    "structure_corr_min": 0.7,
    "face_rate_stylised": 0.7,
    "encoder_corr_min": 0.8,
    "encoder_mse_ratio_max": 0.5,
    "edit_smile_up_rate": 0.9,
}


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def _structure_corr(cs, ct) -> dict[str, float]:
    """Correlation of the critic's STRUCTURE_ATTRS between source (``cs``) and target (``ct``) scores."""
    return {a: _corr(cs.attributes[:, ATTRIBUTES.index(a)].numpy(), ct.attributes[:, ATTRIBUTES.index(a)].numpy()) for a in STRUCTURE_ATTRS}


@torch.no_grad()
def measure(assets: Path, n: int = 500, seed: int = 0, faces: bool = True) -> dict:
    """Every card figure for the models in ``assets`` (``source.pt``, ``target.pt``, ``encoder.pt``,
    ``mapper_smile.pt``, ``critic.pt``), from ``n`` samples."""
    from cptr.styles.blend import blend_generators
    from cptr.models.checkpoints import load_generator
    from cptr.data.critic import critic_scores, load_critic
    from cptr.data.render import render_batch
    from cptr.imaging import from_uint8, to_uint8
    from cptr.models.encoder import load_encoder
    from cptr.models.mapper import load_mapper
    from cptr.training.mapper_train import render, sample_latents

    assets = Path(assets)
    source, target = load_generator(assets / "source.pt"), load_generator(assets / "target.pt")
    critic = load_critic(assets / "critic.pt")
    served = blend_generators(source, target, alpha=0.7)
    w = sample_latents(source, n, TRUNCATION, seed)
    src_img, tgt_img, served_img = render(source, w), render(target, w), render(served, w)
    cs, ct = critic_scores(critic, src_img), critic_scores(critic, tgt_img)
    idx = {a: ATTRIBUTES.index(a) for a in ATTRIBUTES}
    out: dict = {"n": n, "truncation": TRUNCATION}
    out["target_cartoon_rate"] = float((ct.domain_logit > 0).float().mean())
    out["source_photo_rate"] = float((cs.domain_logit < 0).float().mean())
    out["served_cartoon_rate"] = float((critic_scores(critic, served_img).domain_logit > 0).float().mean())
    out["structure_corr"] = _structure_corr(cs, ct)
    if faces:
        from cptr.data.metrics import FaceDetector

        det = FaceDetector()
        out["face_rate_source"] = det.rate(to_uint8(src_img))
        out["face_rate_stylised"] = det.rate(to_uint8(tgt_img))
        out["face_rate_served"] = det.rate(to_uint8(served_img))

    # encoder, on held-out photo renders
    enc = load_encoder(assets / "encoder.pt")
    # rendered at the encoder's input size (the served aligned crop's), compared at the generator's
    photos, _ = render_batch(range(HELD_OUT_SEED, HELD_OUT_SEED + n), "photo", enc.input_size)
    big = from_uint8(photos)
    x = torch.nn.functional.adaptive_avg_pool2d(big, source.size)
    rec = torch.cat([render(source, enc(big[i : i + 50])) for i in range(0, n, 50)])
    mean_img = render(source, source.latent_avg.reshape(1, 1, -1).expand(1, source.n_latent, -1))
    cx, cr = critic_scores(critic, x), critic_scores(critic, rec)
    out["encoder_corr"] = {a: _corr(cx.attributes[:, idx[a]].numpy(), cr.attributes[:, idx[a]].numpy()) for a in ENCODER_ATTRS}
    mse, mse_mean = float(((rec - x) ** 2).mean()), float(((mean_img - x) ** 2).mean())
    out["encoder_mse"], out["mean_latent_mse"], out["encoder_mse_ratio"] = mse, mse_mean, mse / mse_mean

    # edit
    mapper = load_mapper(assets / "mapper_smile.pt", n_latent=source.n_latent)
    edited = critic_scores(critic, render(source, mapper.edit(w)))
    d = (edited.attributes - cs.attributes).numpy()
    out["edit_smile_up_rate"] = float((d[:, idx["smile"]] > 0).mean())
    out["edit_smile_mean_change"] = float(d[:, idx["smile"]].mean())
    out["edit_mean_abs_change"] = {a: float(np.abs(d[:, idx[a]]).mean()) for a in ("yaw", "roll", "skin_tone", "hair_color")}
    out["edit_bounds"] = dict(EDIT_BOUNDS)
    return out


@torch.no_grad()
def structure_spread(assets: Path, n: int = 500, seeds: tuple[int, ...] = (1, 2)) -> dict[int, dict[str, float]]:
    """The structure correlations on other latents than the card's (one dict per seed): how much of a
    figure near its threshold is the particular latents it was measured on."""
    from cptr.data.critic import critic_scores, load_critic
    from cptr.models.checkpoints import load_generator
    from cptr.training.mapper_train import render, sample_latents

    assets = Path(assets)
    source, target = load_generator(assets / "source.pt"), load_generator(assets / "target.pt")
    critic = load_critic(assets / "critic.pt")
    out = {}
    for seed in seeds:
        w = sample_latents(source, n, TRUNCATION, seed)
        out[seed] = _structure_corr(critic_scores(critic, render(source, w)), critic_scores(critic, render(target, w)))
    return out


def failures(m: dict) -> list[str]:
    """The thresholds ``m`` misses (empty when every one is met)."""
    t, bad = THRESHOLDS, []
    for key in ("target_cartoon_rate", "source_photo_rate", "edit_smile_up_rate"):
        if m[key] < t[key]:
            bad.append(f"{key} {m[key]:.3f} < {t[key]}")
    if "face_rate_stylised" in m and m["face_rate_stylised"] < t["face_rate_stylised"]:
        bad.append(f"face_rate_stylised {m['face_rate_stylised']:.3f} < {t['face_rate_stylised']}")
    bad += [f"structure_corr[{a}] {v:.3f} < {t['structure_corr_min']}" for a, v in m["structure_corr"].items() if v < t["structure_corr_min"]]
    bad += [f"encoder_corr[{a}] {m['encoder_corr'][a]:.3f} < {t['encoder_corr_min']}" for a in ("yaw", "skin_tone", "hair_color") if m["encoder_corr"][a] < t["encoder_corr_min"]]
    if m["encoder_mse_ratio"] > t["encoder_mse_ratio_max"]:
        bad.append(f"encoder_mse_ratio {m['encoder_mse_ratio']:.3f} > {t['encoder_mse_ratio_max']}")
    bad += [f"edit |change| of {a} {m['edit_mean_abs_change'][a]:.3f} > {b}" for a, b in EDIT_BOUNDS.items() if m["edit_mean_abs_change"][a] > b]
    return bad
