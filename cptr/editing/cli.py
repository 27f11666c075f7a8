"""``cptr edit``: one text edit by latent optimisation (StyleCLIP), no mapper needed.

Thin: it resolves the input to a W+ (photo -> aligned -> the style's encoder, as the served path
does; a seed -> the style's mapping at ``--truncation``; or a saved ``.npy``), builds the text loss,
calls :func:`cptr.editing.optimize.optimize_latent` and writes the results.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cptr.imaging import grid, save_image, to_uint8
from cptr.io import atomic_path
from cptr.progress import StepProgress
from cptr.serving.stages import decode_and_align, seed_latents
from cptr.styles import StyleError, get_style, load_style_generators


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", err=True, fg="red")
    raise typer.Exit(2)


def edit(
    photo: Path | None = typer.Option(None, "--photo", help="A photo: aligned and encoded as the served path does."),
    seed: int | None = typer.Option(None, "--seed", help="A random face: z from this seed through the mapping network."),
    latent: Path | None = typer.Option(None, "--latent", help="A saved W+ (.npy, [n_latent, style_dim] or [1, n_latent, style_dim])."),
    prompt: str | None = typer.Option(None, "--prompt", help="Text to move towards (CLIP loss; needs --clip-weights)."),
    clip_weights: Path | None = typer.Option(None, "--clip-weights", help="OpenAI CLIP ViT-B-32.pt."),
    critic: str | None = typer.Option(
        None, "--critic", help="Stand-in for CLIP: raise this face-critic attribute (smile, yaw, hair_color, ...)."
    ),
    critic_weights: Path | None = typer.Option(None, "--critic-weights", help="Face critic weights [default: the shipped one]."),
    arcface_weights: Path | None = typer.Option(None, "--arcface-weights", help="model_ir_se50.pth, for --id-lambda > 0."),
    style: str = typer.Option("demo", "--style", help="Registered style: its source generator is edited, its blend renders the cartoon."),
    alpha: float | None = typer.Option(None, "--alpha", min=0.0, max=1.0, help="Blend weight of the cartoon image [default: the style's]."),
    steps: int = typer.Option(300, "--steps", min=1, help="Optimisation steps (StyleCLIP: 300)."),
    lr: float = typer.Option(0.1, "--lr", min=0.0, help="Peak learning rate of the cosine ramp (StyleCLIP: 0.1)."),
    l2_lambda: float = typer.Option(0.008, "--l2-lambda", min=0.0, help="Weight of ||w - w0||^2 in edit mode (StyleCLIP: 0.008)."),
    id_lambda: float = typer.Option(0.0, "--id-lambda", min=0.0, help="Weight of the ArcFace identity loss (StyleCLIP: 0)."),
    truncation: float = typer.Option(0.7, "--truncation", min=0.0, max=1.0, help="Truncation of --seed's latent (StyleCLIP: 0.7)."),
    mode: str = typer.Option("edit", "--mode", help="edit (text + L2 [+ id]) or free_generation (text only, from the mean latent)."),
    out: Path = typer.Option(Path("edit"), "--out", "-o", help="Output folder: edited.png, before_after.png, w_plus.npy [, steps.png]."),
    strip: int = typer.Option(0, "--strip", min=0, help="Also write steps.png with the image every N steps (0: no)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Edit one face with a text prompt by optimising its W+ latent (StyleCLIP's optimisation).

    Examples:

      cptr edit --seed 3 --critic smile --steps 50 -o edit_smile

      cptr edit --photo me.jpg --prompt "a smiling face" \\
          --clip-weights ViT-B-32.pt --style webtoon

      cptr edit --latent w.npy --prompt "angry" --clip-weights ViT-B-32.pt \\
          --id-lambda 0.005 --arcface-weights model_ir_se50.pth

    The final W+ (w_plus.npy) feeds the served synthesis unchanged: client.infer("synthesis_<style>", {"w_plus": w}).
    """
    import numpy as np
    import torch

    from cptr.editing.optimize import (
        OptimizeConfig,
        optimize_latent,
        synthesize,
    )  # torch: only when this runs (the module is imported without it)
    from cptr.styles.blend import blend_generators  # torch: only when this runs (the module is imported without it)

    if sum(x is not None for x in (photo, seed, latent)) != 1 and mode == "edit":
        _fail("give exactly one input: --photo, --seed or --latent")
    if (critic is None) == (prompt is None or clip_weights is None):
        _fail("give --prompt with --clip-weights (CLIP), or --critic ATTRIBUTE (the face critic's stand-in)")
    cfg = OptimizeConfig(steps=steps, lr=lr, l2_lambda=l2_lambda, id_lambda=id_lambda, mode=mode)
    try:
        cfg.validate()
        info = get_style(style)
        source, target = load_style_generators(style)
    except (ValueError, StyleError) as e:
        _fail(str(e))
    try:
        w0 = _initial_latent(source, info, photo, seed, latent, truncation, mode)
        text_loss, id_loss = _losses(prompt, clip_weights, critic, critic_weights, arcface_weights, id_lambda)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    with StepProgress(steps, "edit", enabled=not quiet) as prog:
        res = optimize_latent(source, w0, text_loss, cfg, id_loss, snapshot_every=strip, callback=prog.step)
    out.mkdir(parents=True, exist_ok=True)
    cartoon = blend_generators(source, target, info.alpha if alpha is None else alpha)
    with torch.no_grad():
        rows = [to_uint8(torch.cat([synthesize(g, res.w0), synthesize(g, res.w)])) for g in (source, cartoon)]
        save_image(to_uint8(synthesize(cartoon, res.w))[0], out / "edited.png")
        save_image(grid(np.concatenate(rows), cols=2), out / "before_after.png")
        if res.snapshots:
            save_image(
                grid(to_uint8(torch.cat([synthesize(cartoon, w) for w in [res.w0, *res.snapshots]])), cols=len(res.snapshots) + 1),
                out / "steps.png",
            )

    with atomic_path(out / "w_plus.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, res.w[0].cpu().numpy().astype(np.float32))
    last = res.history[-1]
    typer.echo(
        f"wrote {out}/edited.png, before_after.png (source and cartoon, before | after), w_plus.npy"
        + (", steps.png" if res.snapshots else "")
        + "; final "
        + ", ".join(f"{k} {v:.4g}" for k, v in last.items())
    )


def _initial_latent(source, info, photo, seed, latent, truncation: float, mode: str):
    import numpy as np
    import torch

    centre = source.latent_avg.reshape(1, 1, -1)
    n, d = source.n_latent, source.style_dim
    if mode == "free_generation" and photo is None and seed is None and latent is None:
        return centre.expand(1, n, d).clone()
    if latent is not None:
        w = torch.from_numpy(np.load(latent, allow_pickle=False)).float()
        w = w.reshape(1, *w.shape[-2:]) if w.ndim in (2, 3) else w
        if tuple(w.shape) != (1, n, d):
            raise ValueError(f"{latent} holds a latent of shape {tuple(w.shape)}; style '{info.name}' takes W+ [{n}, {d}]")
        return w
    if seed is not None:
        z = torch.from_numpy(seed_latents([seed], d))  # the served seed -> z rule
        with torch.no_grad():
            w = source.style(z).reshape(1, 1, d)
        return (centre + truncation * (w - centre)).expand(1, n, d).clone()
    from cptr.models.encoder import load_encoder  # torch: only when this runs (the module is imported without it)

    if not info.encoder:
        raise ValueError(f"style '{info.name}' has no encoder to invert a photo; register one (cptr styles add ... --encoder PATH)")
    _, aligned, _ = decode_and_align(Path(photo).read_bytes())
    with torch.no_grad():
        return load_encoder(info.encoder)(torch.from_numpy(aligned)[None])


def _losses(prompt, clip_weights, critic, critic_weights, arcface_weights, id_lambda: float):
    id_loss = None
    if id_lambda > 0:
        from cptr.models.arcface import IDLoss, load_arcface  # torch: only when this runs (the module is imported without it)

        if arcface_weights is None:
            raise ValueError("--id-lambda > 0 needs --arcface-weights model_ir_se50.pth")
        id_loss = IDLoss(load_arcface(arcface_weights))
    if critic is not None:
        from cptr.data.critic import AttributeLoss, load_critic  # torch: only when this runs (the module is imported without it)

        return AttributeLoss(load_critic(critic_weights), critic), id_loss
    from cptr.models.clip_loss import CLIPLoss  # torch: only when this runs (the module is imported without it)
    from cptr.models.clip_shim import load_clip  # torch: only when this runs (the module is imported without it)

    return CLIPLoss(load_clip(clip_weights), prompt), id_loss
