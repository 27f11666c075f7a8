"""``MODEL_CARD.md`` and ``metrics.json`` of the shipped demo models, written from measured figures."""

from __future__ import annotations

import json
from pathlib import Path

from cptr.data.structure import FEATURES
from cptr.demo.measure import MESH_GENERATOR_FEATURES, MESH_MIN_CEILING, MESH_SERVED_FEATURES, THRESHOLDS, failures
from cptr.io import atomic_write_text, sha256_file

FILES = ("source.pt", "target.pt", "encoder.pt", "mapper_smile.pt", "critic.pt")


def _selection_lines(sel: dict | None) -> list[str]:
    if not sel:
        return []
    rates = ", ".join(f"{Path(k).stem.lstrip('0') or '0'} {v:.0%}" for k, v in sel["rates"].items())
    return [
        f"- shipped source: checkpoint `{Path(sel['chosen']).name}`, chosen by `cptr.demo.select` as the one whose samples mediapipe most",
        f"  often finds a face in ({sel['n']} samples at truncation {sel['truncation']}, latent seed {sel['seed']}, not the card's, "
        f"noise mode {sel.get('noise_mode', 'const')}): {rates};",
        *(
            [
                "  shipped with its per-pixel noise strengths set to 0 (NVlabs' `noise_mode='none'`, baked into the weights, so every",
                "  engine serves it): the stored noise maps left a fixed speckle that made fewer samples faces;",
            ]
            if sel.get("noise_mode") == "none"
            else []
        ),
    ]


def _fmt(d: dict) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in d.items())


def _resolutions(first: int, count: int) -> str:
    return " and ".join(f"{2 ** (first + i)} px" for i in range(count)) or "none"


def _mesh_row(label: str, report: dict, ratio: dict | None = None) -> str:
    cells = []
    for f in FEATURES:
        r = report["corr"][f]
        cells.append(f"{r:.2f}" + (f" ({ratio[f]:.0%})" if ratio and f in ratio else ""))
    return f"| {label} | " + " | ".join(cells) + f" | {report['n_pairs']} |"


def _mesh_lines(m: dict) -> list[str]:
    """The face mesh's table: each correlation, its share of the ceiling, and the ceiling and floor."""
    if "mesh" not in m:
        return []
    g, e, sv = m["mesh"]["generator"], m["mesh"]["encoder"], m["mesh"]["served"]
    served = m["served"]
    how = f"alpha {served['alpha']}" + (f", swap at {served['swap_res']} px" if served.get("swap_res") else "")
    return [
        "## Structure kept, judged by the face mesh",
        "",
        "mediapipe's 468-point face mesh (a network no one here trained) measures roll (eye line, degrees), yaw (nose tip",
        "off the eyes' midpoint, over the eye distance), mouth opening and face height. Each cell is the correlation",
        "between paired images, with its share of the ceiling in brackets; n = the pairs in which the mesh found both faces.",
        "Faces are FFHQ-aligned, as the server aligns a photo and as the models' training renders were, so roll is taken",
        "out (its ceiling is noise) and comes back through the paste-back, which keeps the photo's own pose.",
        "",
        "| pair | " + " | ".join(FEATURES) + " | n |",
        "|---|" + "---|" * (len(FEATURES) + 1),
        _mesh_row("ceiling: the renderer's photo vs its cartoon, aligned", g["ceiling"]),
        _mesh_row(f"source(W) vs target(W), truncation {m['truncation']}", g["measured"], g["ratio"]),
        _mesh_row("floor: source(W) vs another latent's target", g["floor"]),
        _mesh_row("encoder: aligned photo render vs its reconstruction", e["measured"], e["ratio"]),
        _mesh_row(f"served ({how}): aligned photo render vs its cartoon", sv["measured"], sv["ratio"]),
        _mesh_row("floor: a photo vs another photo's cartoon", sv["floor"]),
        "",
        f"Required: source(W) vs target(W) {', '.join(MESH_GENERATOR_FEATURES)} each >= {THRESHOLDS['mesh_generator_ratio_min']:.0%} of the ceiling; "
        f"served {', '.join(MESH_SERVED_FEATURES)} each >= {THRESHOLDS['mesh_served_ratio_min']:.0%}; a feature whose ceiling is under "
        f"{MESH_MIN_CEILING} has no signal to keep here and is shown, not required (now: "
        + (", ".join(f for f in FEATURES if g["ceiling"]["corr"][f] < MESH_MIN_CEILING) or "none")
        + ").",
        "",
        "The critic's structure figures (source(W) vs target(W): " + _fmt(m["structure_corr"]) + ") are shown for",
        "comparison only: the critic learnt the renderer's labels and helped train these models, so where it and the mesh",
        "disagree, this card trusts the mesh.",
        "",
    ]


def _machine_line(machines: dict[str, list[str]], timings: dict) -> str:
    """``Machine: ...`` when every step ran on one; else each machine with the steps that ran on it."""
    by: dict[str, list[str]] = {}
    for step in [*timings, *(k for k in machines if k not in timings)]:
        for machine in machines.get(step, []):
            by.setdefault(machine, []).append(step)
    if len(by) <= 1:
        return f"Machine: {next(iter(by), 'not recorded')}."
    return "Machines (steps run as separate, resumed invocations): " + "; ".join(f"{m} ({', '.join(s)})" for m, s in by.items()) + "."


def _train_commands(recipe: dict) -> list[str]:
    """The command lines that rebuild the models: one, or the 64 px run first when the source was grown from it."""
    if not recipe.get("grow_from"):
        size = f" --size {recipe['size']}" if recipe["size"] != 64 else ""
        return [f"python -m cptr.demo.train{size}   # resumable; runs the cptr-train commands below, then packs and measures"]
    return [
        "python -m cptr.demo.train --work runs/demo64 --assets runs/demo64/assets   # the 64 px models first",
        f"python -m cptr.demo.train --size {recipe['size']} --grow-from runs/demo64/source/checkpoints/{Path(recipe['grow_from']).name}",
    ]


def _finetune_extras(recipe: dict) -> str:
    """The fine-tune's served-path options, when the recipe uses them."""
    out = ""
    if recipe.get("finetune_encoder_fraction"):
        out += f"with {recipe['finetune_encoder_fraction']:.0%} of each batch the encoder's W+ of the photo renders (`--encoder-fraction`, the latents the server feeds it), "
    if recipe.get("finetune_attribute_weight"):
        out += f"the second critic's pose, expression and face-shape readings kept from the source (`--attribute-weight {recipe['finetune_attribute_weight']:g}`), "
    return out


def _probe_plots(recipe: dict) -> str:
    served = recipe.get("finetune_encoder_fraction") or recipe.get("finetune_attribute_weight")
    return "docs/structure_tradeoff.png" + (" and `--served`, docs/served_tradeoff.png" if served else "")


def _encoder_extras(recipe: dict) -> str:
    head = recipe.get("encoder_head", "psp")
    return (f" --head {head}" if head != "psp" else "") + (
        f" --lambda-delta {recipe['encoder_delta']:g}" if recipe.get("encoder_delta") else ""
    )


def _source_start(recipe: dict) -> str:
    if not recipe.get("grow_from"):
        return "from scratch"
    return f"grown from the 64 px run's last checkpoint (`--grow-from`: every layer the two share starts from it, the {recipe['size']} px block new)"


def write_card(
    assets: Path,
    m: dict,
    recipe: dict,
    timings: dict,
    machines: dict[str, list[str]],
    selection: dict | None = None,
    spread: dict | None = None,
) -> Path:
    """Write ``metrics.json`` and ``MODEL_CARD.md`` into ``assets``; returns the card's path."""
    assets = Path(assets)
    hashes = {f: sha256_file(assets / f) for f in FILES if (assets / f).exists()}
    sizes = {f: (assets / f).stat().st_size for f in hashes}
    misses = failures(m)
    atomic_write_text(
        assets / "metrics.json",
        json.dumps(
            {
                "metrics": m,
                "thresholds": THRESHOLDS,
                "misses": misses,
                "recipe": recipe,
                "selection": selection,
                "structure_other_seeds": spread,
                "timings_s": timings,
                "machines": machines,
                "sha256": hashes,
            },
            indent=2,
        )
        + "\n",
    )
    total_min = sum(timings.values()) / 60
    steps = ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items())
    lines = [
        "# CPTR demo models",
        "",
        "Trained by CPTR itself, on procedural faces it renders (`cptr.data.faces`): no FFHQ, cartoon data set,",
        "CLIP or ArcFace weights were used or are needed. They show the whole method working end to end; they are",
        f"not portrait models. Size {recipe['size']} px.",
        "",
        "## How they were made",
        "",
        "```bash",
        *_train_commands(recipe),
        "```",
        "",
        f"- data: `cptr-train render{' --align' if recipe.get('align') else ''}`, {recipe['photos']} photo-domain faces (seeds 0..) and {recipe['cartoons']} cartoon-domain faces (other seeds)"
        + (", each FFHQ-aligned as the server aligns a photo (faces the detector misses left out);" if recipe.get("align") else ";"),
        f"- critics: `cptr-train critic` ({recipe['critic_steps']} steps on {recipe['critic_faces']} faces per domain): the judge of every figure below",
        f"  (`critic.pt`), and a second one from other faces and another seed (`--seed {recipe['perceptual_seed']} --render-seed {recipe['perceptual_render_seed']}`), not shipped, whose",
        "  features are the encoder's perceptual loss: the encoder is not trained against the network that judges it;",
        f"- source: `cptr-train source`, {_source_start(recipe)}, {recipe['source_iters']} iterations, batch 16, widths {recipe['source_channels']}, style_dim 256, 4 mapping layers, R1 1, no path-length term;",
        *_selection_lines(selection),
        f"- target: `cptr-train finetune`, FreezeSG (FreezeS {recipe['freeze_style']}, FreezeG {recipe['freeze_g']} = {_resolutions(2, recipe['freeze_g'])}, "
        f"FreezeD {recipe['freeze_d']}) with the structure loss at {_resolutions(3, recipe['structure_loss'])} (weight {recipe.get('structure_weight', 1.0):g}), "
        + _finetune_extras(recipe)
        + f"{recipe['finetune_iters']} iterations, batch 8, chosen by `python -m cptr.demo.probe` ({_probe_plots(recipe)}), "
        f"per-pixel noise {'zeroed and frozen (`--noise off`: flat fills, no photo grain)' if recipe.get('finetune_noise') == 'off' else 'trained'};",
        f"- encoder: `cptr-train encoder --width small --work-size {recipe['size']} --images <photo renders> --perceptual-weights <second critic> "
        f"--lambda-perceptual {recipe.get('encoder_perceptual', 0)}{_encoder_extras(recipe)}`, {recipe['encoder_steps']} steps on the source's samples and the photo renders "
        "(the perceptual term stands in for pSp's LPIPS);",
        f"- mapper: `cptr-train mapper --critic smile --levels medium`, {recipe['mapper_steps']} steps (the expression layers only). **Its text loss is a stand-in**: the face critic's",
        '  smile score replaces CLIP\'s similarity to "a smiling face" (CLIP weights cannot be had here). With CLIP weights,',
        "  `cptr-train mapper --clip-weights ViT-B-32.pt` trains the real thing on the same code path.",
        "",
        _machine_line(machines, timings),
        f"Wall time of the steps: {steps} (total {total_min:.0f} min).",
        "",
        f"## Measured (n = {m['n']} samples at truncation {m['truncation']}; `cptr.demo.measure`)",
        "",
        "| what | measured | required |",
        "|---|---|---|",
        f"| target (alpha 1) samples the critic calls cartoon | {m['target_cartoon_rate']:.1%} | >= {THRESHOLDS['target_cartoon_rate']:.0%} |",
        f"| source samples the critic calls photo | {m['source_photo_rate']:.1%} | >= {THRESHOLDS['source_photo_rate']:.0%} |",
        f"| served default's cartoons of held-out photo renders called cartoon | {m['served_cartoon_rate']:.1%} | >= {THRESHOLDS['served_cartoon_rate']:.0%} |",
        f"| served default's random samples called cartoon | {m['served_sample_cartoon_rate']:.1%} | |",
    ]
    if "face_rate_stylised" in m:
        lines += [
            f"| mediapipe face rate: source / target samples / served cartoons of photos | {m['face_rate_source']:.1%} / {m['face_rate_stylised']:.1%} / {m['face_rate_served']:.1%} | served >= {THRESHOLDS['face_rate_served']:.0%} |",
        ]
    lines += [
        f"| encoder: attribute correlation, input vs reconstruction (held-out photo renders) | {_fmt(m['encoder_corr'])} | yaw, skin, hair >= {THRESHOLDS['encoder_corr_min']} |",
        f"| encoder: reconstruction MSE / mean-latent MSE | {m['encoder_mse']:.4f} / {m['mean_latent_mse']:.4f} = {m['encoder_mse_ratio']:.2f} | <= {THRESHOLDS['encoder_mse_ratio_max']} |",
        *(
            [
                f"| sharpness (mean luma gradient at {m['sharpness']['size']} px): served cartoons of photos / the renderer's cartoons of them | "
                f"{m['sharpness']['served']:.4f} / {m['sharpness']['renders']:.4f} = {m['sharpness']['ratio']:.2f} | |"
            ]
            if "sharpness" in m
            else []
        ),
        f"| smile edit: samples whose smile score rises | {m['edit_smile_up_rate']:.1%} (mean change {m['edit_smile_mean_change']:+.3f}) | >= {THRESHOLDS['edit_smile_up_rate']:.0%} |",
        f"| smile edit: mean abs change of other attributes | {_fmt(m['edit_mean_abs_change'])} | yaw, hair <= {m['edit_bounds']['yaw']} |",
        "",
        ("All thresholds are met." if not misses else "**Thresholds missed:** " + "; ".join(misses)),
        "",
        *(
            [
                f"The mesh's source(W) vs target(W) shares of the ceiling on other latents (latent seeds {', '.join(map(str, spread))}, same n): "
                + "; ".join(f"seed {k}: {_fmt(v)}" for k, v in spread.items())
                + ".",
                "",
            ]
            if spread
            else []
        ),
        *_mesh_lines(m),
        "## Limits",
        "",
        f"- {recipe['size']} px, trained on drawn faces: they know a few hair styles, skin tones, poses and expressions, nothing else.",
        "  Real photos (the astronaut) go through the real alignment and encoder but land on the nearest *drawn* face.",
        "- The smile mapper's loss is the critic's smile score, not CLIP: it learns what the critic calls a smile.",
        "- The critic judges the models it helped train (the mapper) and was trained on the same renderer as the",
        "  generators: its figures say the models learnt the renderer's domains, not that they generalise.",
        "- The encoder's perceptual critic is another network than the judge, but it learnt the same renderer and labels:",
        "  the encoder figures measure how well it inverts renders, judged by a close relative of its own loss.",
        "- Every training face was FFHQ-aligned by mediapipe's landmarks, as served photos are: the models know upright,",
        "  centred faces only; the paste-back puts the photo's own roll and position back.",
        "",
        "## Files",
        "",
        "| file | bytes | sha256 |",
        "|---|---|---|",
        *[f"| {f} | {sizes[f]} | `{h}` |" for f, h in hashes.items()],
        "",
    ]
    path = assets / "MODEL_CARD.md"
    atomic_write_text(path, "\n".join(lines))
    return path
