"""``python -m cptr.demo.probe``: choose the fine-tune recipe by measurement, structure kept against cartoon-ness.

Each variant is a short ``cptr-train finetune`` from the demo run's source checkpoint (its discriminator
included), with one of the method's knobs changed: FreezeS and FreezeG depth, the structure loss's
resolutions and weight, FreezeD. Every saved checkpoint is judged twice, on the same latents:

* **structure kept**: the face mesh's source(W) vs target(W) correlations over their ceiling
  (:func:`cptr.data.structure.generator_structure`), averaged over roll, yaw and height;
* **cartoon-ness**: the share of target samples the face critic calls cartoon (the critic guides the choice;
  the model card's figures certify the result).

Blends of one fine-tune (Toonify: alpha and ``swap_res``) are judged the same way without training. Results go to
``WORK/probe/results.jsonl`` (one line per checkpoint or blend) and the plot to ``--plot``: one point per variant
(its last checkpoint), lines through its earlier ones. The run is resumable: finished variants are skipped.

``--served`` judges what a user gets instead: the encoder's W+ of held-out photo renders through each checkpoint,
the face mesh comparing each aligned photo with its cartoon (:func:`cptr.data.structure.photo_structure`), the
critic's cartoon rate and mediapipe's face rate of those cartoons. Its variants (:data:`SERVED_VARIANTS`) also
fine-tune on the encoder's latents (``--encoder-fraction``) and keep the face's geometry through a critic
(``--attribute-weight``); they go to ``WORK/probe_served/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import typer

from cptr.data.critic import critic_scores, load_critic
from cptr.data.metrics import FaceDetector
from cptr.data.structure import AlignedPairs, FaceMesh, aligned_render_pairs, generator_structure, photo_structure
from cptr.demo.measure import encode_crops, synthesize
from cptr.demo.train import FINETUNE_FLAGS, served_flags
from cptr.helptext import flags, reflow_app
from cptr.imaging import from_uint8, to_uint8
from cptr.io import atomic_path
from cptr.models.checkpoints import load_generator
from cptr.models.encoder import load_encoder
from cptr.models.latents import render, sample_latents
from cptr.options import option, options_command
from cptr.styles.blend import blend_generators

# What the structure axis averages: the features the served path must keep (roll is taken out by alignment, so
# its ceiling is noise and its ratio can exceed 1); each ratio is capped at 1 so no feature makes up for another.
STRUCTURE = ("yaw", "mouth", "height")


def structure_score(ratio: dict[str, float]) -> float:
    """The mean of the :data:`STRUCTURE` ratios to the ceiling, each capped at 1."""
    return float(np.mean([min(ratio[f], 1.0) for f in STRUCTURE]))


@dataclass(frozen=True)
class Variant:
    """One fine-tune: the knobs that differ between variants (the rest is the demo recipe's)."""

    name: str
    freeze_style: int = 2
    freeze_g: int = 2
    freeze_d: int = 1
    structure_loss: int = 2
    structure_weight: float = 1.0

    encoder_fraction: float = 0.0  # share of each batch from the encoder's W+ of the photos (WORK's encoder)
    attribute_weight: float = 0.0  # the perceptual critic's geometry kept from the source (WORK/perceptual.pt)

    def args(self, work: Path, encoder: Path | None = None) -> list[str]:
        """The variant's ``cptr-train finetune`` flags; ``work`` holds the photos and critics, ``encoder`` the
        encoder for ``encoder_fraction`` (default: the work folder's)."""
        out = flags(
            freeze_style=self.freeze_style,
            freeze_g=self.freeze_g,
            freeze_d=self.freeze_d,
            structure_loss=self.structure_loss,
            structure_weight=self.structure_weight,
        )
        enc = encoder or work / "encoder" / "checkpoints" / "encoder.pt"
        return out + served_flags(enc, work / "photo", work / "perceptual.pt", self.encoder_fraction, self.attribute_weight)


VARIANTS = (
    Variant("g2-sl2"),  # the recipe of the previous demo models: FreezeS 2, FreezeG 2, FreezeD 1, structure loss at 8 and 16 px
    Variant("g2-sl3-w10", structure_loss=3, structure_weight=10),
    Variant("g3-sl3-w10", freeze_g=3, structure_loss=3, structure_weight=10),
    Variant("g3-sl3-w30", freeze_g=3, structure_loss=3, structure_weight=30),
    Variant("s4-g3-sl3-w10", freeze_style=4, freeze_g=3, structure_loss=3, structure_weight=10),  # chosen (the demo recipe)
)
# The served probe: the demo recipe's freezing and structure loss, longer, on the encoder's latents, with and
# without the attribute loss (weights 10 and 40)
_RECIPE = dict(freeze_style=4, freeze_g=3, structure_loss=3, structure_weight=10)
SERVED_VARIANTS = (
    Variant("s4-g3-sl3-w10", **_RECIPE),
    Variant("f05", **_RECIPE, encoder_fraction=0.5),
    Variant("f05-attr10", **_RECIPE, encoder_fraction=0.5, attribute_weight=10),
    Variant("f05-attr40", **_RECIPE, encoder_fraction=0.5, attribute_weight=40),
)
BLENDS = ((1.0, None), (0.85, None), (0.7, None), (1.0, 16), (1.0, 32))  # (alpha, swap_res) for the blend points


@torch.no_grad()
def judge(source, target, w: torch.Tensor, mesh: FaceMesh, critic, pairs) -> dict:
    """Mesh ratios and the critic's cartoon rate of ``target`` on latents ``w``."""
    n = len(w)
    j = generator_structure(source, target, n, 0.7, 0, mesh, pairs=pairs)
    img = torch.cat([render(target, w[i : i + 50]) for i in range(0, n, 50)])
    ratio = j.ratios()
    return {
        "corr": j.measured.corr,
        "ratio": ratio,
        "structure": structure_score(ratio),
        "cartoon": float((critic_scores(critic, img).domain_logit > 0).float().mean()),
        "pairs": j.measured.n_pairs,
    }


@torch.no_grad()
def judge_served(target, w_photos: torch.Tensor, mesh: FaceMesh, critic, detector: FaceDetector, pairs: AlignedPairs) -> dict:
    """What ``target`` serves from photos: ``w_photos`` (the encoder's W+ of ``pairs.photo_crops``) through it; the mesh
    compares each aligned photo with its cartoon; the critic's cartoon rate and mediapipe's face rate of the cartoons."""
    cartoons = to_uint8(synthesize(target, w_photos))
    j = photo_structure(lambda _: cartoons, pairs, mesh=mesh)
    ratio = j.ratios()
    return {
        "corr": j.measured.corr,
        "ratio": ratio,
        "structure": structure_score(ratio),
        "cartoon": float((critic_scores(critic, from_uint8(cartoons)).domain_logit > 0).float().mean()),
        "faces": detector.rate(cartoons),
        "pairs": j.measured.n_pairs,
    }


def run(
    work: Path,
    source_ckpt: Path,
    shipped: Path,
    data: Path,
    iters: int,
    every: int,
    n: int,
    variants: tuple[Variant, ...],
    blend_of: str | None,
    encoder: Path | None = None,
) -> Path:
    """Fine-tune each variant from ``source_ckpt`` (the run's checkpoint, with its discriminator); judge against
    ``shipped`` (the same source as shipped: per-pixel noise zeroed). With ``encoder`` the judge is the served path
    from photos (:func:`judge_served`), and the runs go to ``WORK/probe_served``."""
    out = work / ("probe_served" if encoder else "probe")
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    done = {(r["variant"], r.get("iter"), r.get("alpha"), r.get("swap_res")) for r in _read(results)}
    source = load_generator(shipped)
    critic, mesh, pairs = load_critic(), FaceMesh(), aligned_render_pairs(n)
    if encoder:
        w_photos, detector = encode_crops(load_encoder(encoder), pairs.photo_crops), FaceDetector()

        def judged(target) -> dict:
            return judge_served(target, w_photos, mesh, critic, detector, pairs)
    else:
        w = sample_latents(source, n, 0.7, 0)

        def judged(target) -> dict:
            return judge(source, target, w, mesh, critic, pairs)

    def record(row: dict) -> None:
        with open(results, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: v for k, v in row.items() if k != "corr"}), flush=True)

    for v in variants:
        run_dir = out / v.name
        last = run_dir / "checkpoints" / f"{iters:06d}.pt"
        if not last.exists():
            run = flags(
                source=source_ckpt,
                data=data,
                out=run_dir,
                noise="off",
                iters=iters,
                sample_every=iters,
                save_every=every,
                keep=0,
                workers=1,
            )
            cmd = [sys.executable, "-m", "cptr.training", "finetune", *run, *v.args(work, encoder), *FINETUNE_FLAGS, "--quiet"]
            if (run_dir / "checkpoints").exists():
                cmd.append("--resume")
            print("$ " + " ".join(cmd[2:]), flush=True)
            subprocess.run(cmd, check=True)
        for ck in sorted((run_dir / "checkpoints").glob("[0-9]*.pt")):
            if (v.name, int(ck.stem), None, None) not in done:
                record(
                    {
                        "variant": v.name,
                        "iter": int(ck.stem),
                        "alpha": None,
                        "swap_res": None,
                        **asdict(v),
                        **judged(load_generator(ck)),
                    }
                )
    if blend_of:
        target = load_generator(out / blend_of / "checkpoints" / f"{iters:06d}.pt")
        for alpha, swap in BLENDS:
            if (blend_of, iters, alpha, swap) not in done:
                g = blend_generators(source, target, alpha, swap)
                record({"variant": blend_of, "iter": iters, "alpha": alpha, "swap_res": swap, **judged(g)})
    return results


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def plot(results: Path, path: Path, chosen: str | None = None, served: bool = False) -> Path:
    """Structure kept (mesh, share of the ceiling) against cartoon-ness (critic): one point per variant, blends apart.
    ``served``: the figures are the served path's from photos (:func:`judge_served`)."""
    import matplotlib  # optional heavy dependency (the bench extra)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _read(results)
    fig, ax = plt.subplots(figsize=(7.5, 5.2), dpi=120)
    for name in dict.fromkeys(r["variant"] for r in rows):
        trained = sorted((r for r in rows if r["variant"] == name and r["alpha"] is None), key=lambda r: r["iter"])
        if not trained:
            continue
        xs, ys = [r["cartoon"] for r in trained], [structure_score(r["ratio"]) for r in trained]
        (line,) = ax.plot(xs, ys, "-", alpha=0.35)
        ax.plot(xs[-1], ys[-1], "o", color=line.get_color(), ms=9 if name == chosen else 6, label=f"{name} ({trained[-1]['iter']} it)")
        ax.annotate(f"{trained[0]['iter']}", (xs[0], ys[0]), fontsize=7, color=line.get_color())
    for r in rows:
        if r["alpha"] is not None and (r["alpha"], r["swap_res"]) != (1.0, None):
            y = structure_score(r["ratio"])
            ax.plot(r["cartoon"], y, "s", color="0.4", ms=5)
            ax.annotate(
                f"alpha {r['alpha']}" + (f", swap {r['swap_res']}" if r["swap_res"] else ""),
                (r["cartoon"], y),
                fontsize=7,
                color="0.3",
                xytext=(4, -8),
                textcoords="offset points",
            )
    ax.axhline(0.8, color="tab:red", lw=0.8, ls="--")
    ax.axvline(0.9, color="tab:red", lw=0.8, ls="--")
    first, last = min(r["iter"] for r in rows), max(r["iter"] for r in rows)
    if served:
        ax.set_xlabel("cartoon-ness: served cartoons of held-out photos the critic calls cartoon")
        ax.set_ylabel("structure kept, photo -> served cartoon:\nface-mesh corr. / ceiling (yaw, mouth, height; mean)")
    else:
        ax.set_xlabel("cartoon-ness: target samples the critic calls cartoon")
        ax.set_ylabel("structure kept, source(W) vs target(W):\nface-mesh corr. / ceiling (yaw, mouth, height; mean)")
    what = "served from photos" if served else "FreezeSG variants"
    ax.set_title(f"{what}, up to {last} iterations (lines: checkpoints from {first}); dashed: the bars", fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


@dataclass
class ProbeOptions:
    """The options of ``python -m cptr.demo.probe`` (each field one option: :mod:`cptr.options`)."""

    work: Path = option(Path("runs/demo"), help="The demo run's folder (python -m cptr.demo.train --work).")
    iters: int = option(600, min=1, help="Iterations of each short fine-tune.")
    every: int = option(150, min=1, help="Judge a checkpoint every N iterations.")
    n: int = option(200, min=1, help="Latents and held-out renders judged.")
    variants: str | None = option(
        None, show_default=False, help="Comma list of variants (default: all of the mode's): " + ", ".join(v.name for v in VARIANTS) + "."
    )
    blend_of: str | None = option(None, help="Also judge Toonify blends of this variant's last checkpoint.")
    served: bool = option(
        False,
        help="Judge the served path from photos (the encoder's W+ of held-out renders through each checkpoint) and probe the served variants: "
        + ", ".join(v.name for v in SERVED_VARIANTS)
        + ".",
    )
    encoder: Path | None = option(None, help="The encoder for --served and for the variants' encoder latents (default: WORK's).")
    plot: Path | None = option(
        None, help="Where the plot goes (default: docs/structure_tradeoff.png, docs/served_tradeoff.png with --served)."
    )
    chosen: str | None = option(None, help="The variant to mark as chosen on the plot.")


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(help=__doc__)
@options_command(ProbeOptions)
def probe(a: ProbeOptions) -> None:
    known = {v.name: v for v in (SERVED_VARIANTS if a.served else VARIANTS)}
    names = [s.strip() for s in a.variants.split(",") if s.strip()] if a.variants else list(known)
    if unknown := sorted(set(names) - set(known)):
        raise typer.BadParameter(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(known)}", param_hint="--variants")
    selection = a.work / "source" / "selected.json"
    if not selection.exists():
        raise typer.BadParameter(
            f"{selection} not found: run python -m cptr.demo.train --work {a.work} --steps data,source,select first", param_hint="--work"
        )
    source_ckpt = Path(json.loads(selection.read_text())["chosen"])
    results = run(
        a.work,
        source_ckpt,
        a.work / "source" / "shipped.pt",
        a.work / "cartoon",
        a.iters,
        a.every,
        a.n,
        tuple(known[n] for n in names),
        a.blend_of,
        (a.encoder or a.work / "encoder" / "checkpoints" / "encoder.pt") if a.served else None,
    )
    default_plot = Path("docs/served_tradeoff.png" if a.served else "docs/structure_tradeoff.png")
    print(f"wrote {plot(results, a.plot or default_plot, a.chosen, a.served)}")


reflow_app(app)  # help paragraphs whole at any width (cptr.helptext)


def main(argv: list[str] | None = None) -> None:
    app(argv, prog_name="python -m cptr.demo.probe")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
