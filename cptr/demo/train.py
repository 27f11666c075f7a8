"""``python -m cptr.demo.train``: rebuild the shipped demo models from nothing, with CPTR's own commands.

Steps (each resumable: a finished step is skipped, an interrupted training resumes from its newest
checkpoint, so the script can be stopped and rerun at any time):

1. ``data``: ``cptr-train render`` photo faces (the source domain) and cartoon faces (the target);
2. ``critic``: ``cptr-train critic``, the face critic (metrics and the mapper's stand-in text loss), and a
   second one from other renders and another seed, whose features are the encoder's perceptual loss (a
   network apart from the judge);
3. ``source``: ``cptr-train source``, a StyleGAN2 from scratch on the photos, keeping every checkpoint;
   ``select``: the checkpoint of the run's later part whose samples are most often faces
   (:mod:`cptr.demo.select`), written as the shipped source with its per-pixel noise zeroed (NVlabs'
   ``noise_mode='none'``: more samples are faces, and FID is lower); the steps below start from it;
4. ``encoder``: ``cptr-train encoder`` for the source, with the second critic's perceptual loss;
5. ``finetune``: ``cptr-train finetune``, FreezeSG + structure loss on the cartoons (with the recipe's
   ``finetune_encoder_fraction``, part of each batch is the encoder's W+ of photos, as the server feeds it);
6. ``mapper``: ``cptr-train mapper --critic smile --levels medium`` for "a smiling face" (an expression
   lives in the medium layers; pose (coarse) and colour (fine) stay as they were);
7. ``pack``: the generators' ``g_ema`` (no optimiser state), encoder, mapper and critic into ``--assets``;
8. ``measure``: the model card's figures (:mod:`cptr.demo.measure`) and ``MODEL_CARD.md``.

Every command runs as its own process (``python -m cptr.training ...``), exactly as a user would
type it; its output (progress bars) streams through.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import typer

from cptr.data.structure import aligned_render_pairs
from cptr.demo import ASSET_DIR, SERVED_ALPHA, SERVED_SWAP_RES
from cptr.demo.card import write_card
from cptr.demo.measure import measure, structure_spread
from cptr.demo.select import bake, chosen, select
from cptr.helptext import flags, reflow_app
from cptr.io import atomic_path, atomic_write_text
from cptr.models.checkpoints import load_generator, save_generator
from cptr.options import option, options_command

STEPS = ("data", "critic", "source", "select", "encoder", "finetune", "mapper", "pack", "measure")
REDONE = ("pack", "measure")  # steps that run in full every time (never "done already")
CARTOON_SEED = 1_000_000  # cartoon faces are other faces than the photos (unpaired, as real data sets)


@dataclass(frozen=True)
class Recipe:
    """Sizes of every step (the defaults made the shipped models; ``--quick`` is a rehearsal)."""

    size: int = 64
    # Train on FFHQ-aligned renders (cptr-train render --align), framed as the server frames a photo: on raw
    # renders (smaller, rolled heads) the served path's aligned crops were out of the models' domain, and the
    # encoder's reconstructions kept yaw 0.73, mouth 0.43 and face height 0.51 of the mesh's measures.
    align: bool = True
    photos: int = 21_000  # about 20,300 once the faces the detector misses are left out
    cartoons: int = 10_500
    critic_faces: int = 8000
    critic_steps: int = 2000
    # The encoder's perceptual critic: another init seed, and renders apart from the judge's (5,000,000+) and the card's
    perceptual_seed: int = 1
    perceptual_render_seed: int = 6_000_000
    source_iters: int = 6000
    source_channels: str = "128,128,64,32,32"
    select_from: int = 4000  # candidates for the shipped source: checkpoints from here to source_iters
    select_n: int = 300
    source_noise: str = "none"  # the shipped source's noise mode: zeroed strengths (stored maps left a speckle that cost faces)
    # The fine-tune, chosen by `python -m cptr.demo.probe` (docs/structure_tradeoff.png): structure kept (face mesh,
    # source(W) vs target(W)) against cartoon-ness (critic), 600 iterations each, checkpoints every 150.
    finetune_iters: int = 600
    freeze_style: int = 4  # FreezeS: W+ entries the target takes from the source
    freeze_g: int = 3  # FreezeG: 4, 8 and 16 px stay the source's
    freeze_d: int = 1  # FreezeD: fromRGB and the 64 px block
    structure_loss: int = 3  # at 8, 16 and 32 px
    structure_weight: float = 10.0
    finetune_noise: str = "off"  # flat-filled cartoons: no per-pixel noise (the photo model's grain would carry over)
    encoder_steps: int = 2000
    # Weight of the perceptual critic's loss (pSp's LPIPS lambda). Without it (pixel losses only) 2000 steps
    # gave yaw correlation 0.30: the reconstructions kept a render's colours but looked ahead. With it: 0.926
    # (seed 0, shipped), 0.922 with --seed 1 (n=500 held-out renders).
    encoder_perceptual: float = 0.8
    # pSp's head (independent W+ entries) or e4e's (one w plus offsets), and e4e's delta regularisation weight:
    # docs/training.md measures how near W each keeps the photos' latents, and what that does to the served cartoons
    encoder_head: str = "psp"
    encoder_delta: float = 0.0
    # Share of each fine-tune batch drawn from the encoder's W+ of photos (cptr-train finetune --encoder-fraction), and
    # the weight of the perceptual critic's pose/expression/shape readings kept from the source (--attribute-weight)
    finetune_encoder_fraction: float = 0.0
    finetune_attribute_weight: float = 0.0
    mapper_steps: int = 600
    measure_n: int = 500


# The 128 px demo (one more synthesis block, 16 channels wide: about half again the cost of a 64 px iteration), made
# for the served path from photos (`python -m cptr.demo.probe --served`, docs/served_tradeoff.png): an encoder kept near
# W (e4e's head and delta regularisation), and a longer fine-tune with half of each batch that encoder's W+ of the
# photos and the second critic's pose, expression and face-shape readings kept from the source.
SERVED_RECIPE = dict(
    encoder_head="e4e", encoder_delta=1.0, finetune_encoder_fraction=0.5, finetune_attribute_weight=40.0, finetune_iters=1500
)
RECIPES = {64: Recipe(), 128: Recipe(size=128, source_channels="128,128,64,32,32,16", **SERVED_RECIPE)}
QUICK = Recipe(  # the served recipe's steps (encoder latents and attribute loss included), at tiny sizes
    **{k: v for k, v in SERVED_RECIPE.items() if k != "finetune_iters"},
    photos=64,
    cartoons=64,
    critic_faces=100,
    critic_steps=10,
    source_iters=4,
    source_channels="16,16,8,8,8",
    select_from=0,
    select_n=8,
    finetune_iters=2,
    encoder_steps=2,
    mapper_steps=2,
    measure_n=24,
)


RUN_FLAGS = flags(sample_every=250, save_every=250, keep=0, workers=1)  # the demo's training runs: checkpoints kept for selection
FINETUNE_FLAGS = flags(augment="none", r1=1, batch=8)  # the demo's fine-tunes: the recipe's and the probe's


def served_flags(encoder: Path, photos: Path, critic: Path, encoder_fraction: float, attribute_weight: float) -> list[str]:
    """A fine-tune's flags for the served path: ``encoder``'s latents of ``photos`` (with ``encoder_fraction`` > 0) and
    ``critic``'s attribute loss (with ``attribute_weight`` > 0); the recipe's and the probe's."""
    out = flags(encoder=encoder, encoder_images=photos, encoder_fraction=encoder_fraction) if encoder_fraction > 0 else []
    return out + (flags(attribute_critic=critic, attribute_weight=attribute_weight) if attribute_weight > 0 else [])


def _run(args: list[str], log: Path) -> None:
    cmd = [sys.executable, "-m", "cptr.training", *args]
    print("$ cptr-train " + " ".join(args), flush=True)
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
    subprocess.run(cmd, check=True)


def _latest(run: Path) -> Path | None:
    ckpts = sorted((run / "checkpoints").glob("[0-9]*.pt"))
    return ckpts[-1] if ckpts else None


def build(work: Path, assets: Path, recipe: Recipe, only: list[str], grow_from: Path | None = None) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    log = work / "commands.log"
    timings: dict[str, float] = _read_json(work / "timings.json")
    r = recipe
    photo, cartoon, critic, perceptual = work / "photo", work / "cartoon", work / "critic.pt", work / "perceptual.pt"
    source_last = work / "source" / "checkpoints" / f"{r.source_iters:06d}.pt"
    selection, shipped_source = work / "source" / "selected.json", work / "source" / "shipped.pt"
    target_ckpt = work / "finetune" / "checkpoints" / f"{r.finetune_iters:06d}.pt"
    encoder_ckpt, mapper_ckpt = work / "encoder" / "checkpoints" / "encoder.pt", work / "mapper" / "checkpoints" / "smile.pt"

    def step(name: str, done: bool, fn) -> None:
        if name not in only:
            return
        if done:
            print(f"== {name}: done already (skipped)", flush=True)
            return
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        fn()
        # re-read before writing: steps may run as parallel invocations (--steps encoder / --steps mapper),
        # and on other days or machines (each step's machine is recorded beside its time)
        path = work / "timings.json"
        timings.update({k: v for k, v in _read_json(path).items() if k != name})
        # a step that resumes (or finishes the parts left) adds to its time; pack and measure redo everything
        timings[name] = (0.0 if name in REDONE else timings.get(name, 0.0)) + time.perf_counter() - t0
        atomic_write_text(path, json.dumps(timings, indent=2))
        machines = _read_json(work / "machines.json")
        machines[name] = list(dict.fromkeys([*machines.get(name, []), _machine()]))  # every machine a step ran on
        atomic_write_text(work / "machines.json", json.dumps(machines, indent=2))

    aligned = ["--align"] if r.align else []

    def data() -> None:
        for domain, n, seed, out in (("photo", r.photos, 0, photo), ("cartoon", r.cartoons, CARTOON_SEED, cartoon)):
            if not (out / "meta.json").exists():
                _run(["render", *flags(domain=domain, n=n, size=r.size, seed=seed, out=out), *aligned], log)

    def trained(run: Path, args: list[str]) -> list[str]:
        return args + (["--resume"] if _latest(run) else [])

    step("data", (photo / "meta.json").exists() and (cartoon / "meta.json").exists(), data)

    def critics() -> None:
        sizes = flags(n=r.critic_faces, steps=r.critic_steps)
        if not critic.exists():
            _run(["critic", "--out", str(critic), *sizes], log)
        if not perceptual.exists():
            _run(["critic", *flags(out=perceptual, seed=r.perceptual_seed, render_seed=r.perceptual_render_seed), *sizes], log)

    step("critic", critic.exists() and perceptual.exists(), critics)
    source_flags = flags(
        data=photo, out=work / "source", size=r.size, channels=r.source_channels, iters=r.source_iters, path_reg=0, grow_from=grow_from
    )
    step("source", source_last.exists(), lambda: _run(trained(work / "source", ["source", *source_flags, *RUN_FLAGS]), log))

    def select_step() -> None:
        if not selection.exists():
            select(work / "source", r.select_from, r.source_iters, r.select_n, selection, r.source_noise)
        bake(chosen(selection), shipped_source, r.source_noise)

    step("select", selection.exists() and shipped_source.exists(), select_step)
    source_ckpt = chosen(selection) or source_last  # the run's checkpoint (with its discriminator): the fine-tune starts from it
    source_g = shipped_source if shipped_source.exists() else source_ckpt  # what the encoder, mapper and pack use
    if any(s in only for s in STEPS[STEPS.index("encoder") :]):
        print(f"== source checkpoint: {source_ckpt}" + ("" if selection.exists() else " (no selection yet: the last one)"), flush=True)
    encoder_flags = flags(
        generator=source_g,
        images=photo,
        out=work / "encoder",
        width="small",
        work_size=r.size,
        steps=r.encoder_steps,
        batch=16,
        lr="1e-3",
        lambda_id=0,
        sample_every=500,
        perceptual_weights=perceptual,
        lambda_perceptual=r.encoder_perceptual,
        save_every=0,
        device="cpu",
        head=r.encoder_head,
        lambda_delta=r.encoder_delta,
    )
    step("encoder", encoder_ckpt.exists(), lambda: _run(["encoder", *encoder_flags, "--no-register"], log))
    finetune_flags = flags(
        source=source_ckpt,
        data=cartoon,
        out=work / "finetune",
        freeze_style=r.freeze_style,
        freeze_g=r.freeze_g,
        freeze_d=r.freeze_d,
        structure_loss=r.structure_loss,
        structure_weight=r.structure_weight,
        noise=r.finetune_noise,
        iters=r.finetune_iters,
    )
    finetune_flags += served_flags(encoder_ckpt, photo, perceptual, r.finetune_encoder_fraction, r.finetune_attribute_weight)
    step(
        "finetune",
        target_ckpt.exists(),
        lambda: _run(trained(work / "finetune", ["finetune", *finetune_flags, *FINETUNE_FLAGS, *RUN_FLAGS]), log),
    )
    mapper_flags = flags(
        generator=source_g,
        prompt="a smiling face",
        name="smile",
        critic="smile",
        critic_weights=critic,
        lambda_id=0,
        levels="medium",
        steps=r.mapper_steps,
        batch=8,
        out=work / "mapper",
        sample_every=200,
        save_every=0,
        device="cpu",
    )
    step("mapper", mapper_ckpt.exists(), lambda: _run(["mapper", *mapper_flags, "--no-register"], log))
    step("pack", False, lambda: pack(source_g, target_ckpt, encoder_ckpt, mapper_ckpt, critic, assets))
    result: dict = {}

    def measure_step() -> None:
        pairs = aligned_render_pairs(r.measure_n)  # the held-out renders, aligned once for both
        m = measure(assets, n=r.measure_n, pairs=pairs)
        result.update(m)
        sel = json.loads(selection.read_text()) if selection.exists() else None
        spread = structure_spread(assets, n=r.measure_n, pairs=pairs)
        machines = {**_read_json(work / "machines.json"), "measure": [_machine()]}
        card_recipe = {**asdict(r), "grow_from": str(grow_from) if grow_from else None}
        write_card(assets, m, recipe=card_recipe, timings=timings, machines=machines, selection=sel, spread=spread)

    step("measure", False, measure_step)
    return result


def pack(source_ckpt: Path, target_ckpt: Path, encoder_ckpt: Path, mapper_ckpt: Path, critic: Path, assets: Path) -> None:
    """The shipped files: generators reduced to ``g_ema`` + ``latent_avg``; the rest copied."""

    assets.mkdir(parents=True, exist_ok=True)
    for ckpt, name in ((source_ckpt, "source.pt"), (target_ckpt, "target.pt")):
        save_generator(load_generator(ckpt), assets / name)
    for src, name in ((encoder_ckpt, "encoder.pt"), (mapper_ckpt, "mapper_smile.pt"), (critic, "critic.pt")):
        with atomic_path(assets / name) as tmp:
            shutil.copyfile(src, tmp)
    print(f"packed {', '.join(sorted(p.name for p in assets.glob('*.pt')))} into {assets}", flush=True)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


@dataclass
class DemoTrainOptions:
    """The options of ``python -m cptr.demo.train`` (each field one option: :mod:`cptr.options`)."""

    work: Path = option(Path("runs/demo"), help="Working folder: data, runs, logs.")
    assets: Path = option(ASSET_DIR, help="Where the shipped files go.")
    steps: str = option(",".join(STEPS), show_default=False, help="Comma list of steps to run (default: all): " + ", ".join(STEPS) + ".")
    size: int = option(Recipe().size, help=f"Output size of the models: {' or '.join(map(str, sorted(RECIPES)))}.")
    quick: bool = option(False, help="A rehearsal with tiny sizes (minutes): checks the whole path, makes useless models.")
    grow_from: Path | None = option(
        None, help="Start the source's shared layers from a smaller run's checkpoint (e.g. the 64 px run's for --size 128)."
    )
    source_iters: int | None = option(
        None, min=1, help=f"Iterations of the source generator (default {Recipe().source_iters}); more = better faces."
    )


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(help=__doc__)
@options_command(DemoTrainOptions)
def train_demo(a: DemoTrainOptions) -> None:
    only = [s.strip() for s in a.steps.split(",") if s.strip()]
    unknown = sorted(set(only) - set(STEPS))
    if unknown:
        raise typer.BadParameter(f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}", param_hint="--steps")
    if a.size not in RECIPES:
        raise typer.BadParameter(f"{a.size}; choose from {', '.join(map(str, sorted(RECIPES)))}", param_hint="--size")
    if a.quick and a.assets.resolve() == ASSET_DIR.resolve():
        raise typer.BadParameter("--quick makes useless models: give --assets a folder other than the package's", param_hint="--assets")
    t0 = time.perf_counter()
    try:
        recipe = QUICK if a.quick else RECIPES[a.size]
        if a.source_iters is not None:
            recipe = dataclasses.replace(recipe, source_iters=a.source_iters)
        build(a.work, a.assets, recipe, only, a.grow_from)
    except subprocess.CalledProcessError as e:
        typer.echo(
            f"error: a step failed (exit {e.returncode}): {' '.join(map(str, e.cmd))}; fix it and rerun: finished steps are kept",
            err=True,
        )
        raise typer.Exit(1) from None
    print(
        f"done in {time.perf_counter() - t0:.0f} s; models in {a.assets} (served as the blend at alpha {SERVED_ALPHA}, swap resolution {SERVED_SWAP_RES})"
    )


reflow_app(app)  # help paragraphs whole at any width (cptr.helptext)


def main(argv: list[str] | None = None) -> None:
    app(argv, prog_name="python -m cptr.demo.train")


if __name__ == "__main__":
    main()
