"""``cptr demo``: the whole product on the shipped demo models, in one command.

1. export the demo style (``cptr-export --style demo``: its own blend, :data:`cptr.demo.SERVED_ALPHA` and
   :data:`cptr.demo.SERVED_SWAP_RES`, unless ``alpha`` is given) into ``OUT/triton_repo``;
2. start the real Triton server on it (free loopback ports);
3. through the client (gRPC): cartoonize held-out photo-domain faces and scikit-image's astronaut
   (each also pasted back, and with the "smile" text edit), and generate faces with style mixing;
4. in process: sweep the blend weight alpha (0, 0.35, 0.7, 1) on the same latents;
5. write one labelled contact sheet, ``OUT/demo_sheet.png``; stop the server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cptr.align.demo import astronaut
from cptr.client import CartoonClient
from cptr.data.faces import render_face
from cptr.demo import DEMO_NAME, SERVED_ALPHA, SERVED_SWAP_RES, TRAIN_HINT, demo_generators, missing_assets
from cptr.imaging import save_image, to_uint8
from cptr.serving.server import TritonServer

CELL = 128  # every picture on the sheet is shown at this size
LABEL_W = 150
HELD_OUT_FACES = (9_000_001, 9_000_004, 9_000_007, 9_000_010)
GENERATE_SEEDS = (1, 2, 3, 4, 5)
MIX_SEED, MIX_LAYER = 42, 4
ALPHAS = (0.0, 0.35, 0.7, 1.0)


@dataclass
class DemoResult:
    sheet: Path
    repository: Path
    seconds: float
    notes: list[str]


def _cell(img: Image.Image | np.ndarray | None) -> Image.Image:
    if img is None:
        return Image.new("RGB", (CELL, CELL), (235, 235, 235))
    im = img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img))
    im = im.convert("RGB")
    w, h = im.size
    s = CELL / max(w, h)
    im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS)
    out = Image.new("RGB", (CELL, CELL), (255, 255, 255))
    out.paste(im, ((CELL - im.size[0]) // 2, (CELL - im.size[1]) // 2))
    return out


def _font(size: int = 11) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """DejaVu Sans where the system has it (even word spacing at small sizes), else Pillow's default."""
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default()


def contact_sheet(rows: list[tuple[str, list]], title: str, captions: dict[int, list[str]] | None = None) -> Image.Image:
    """Rows of pictures, each row labelled on the left; ``captions[row]`` labels its cells."""
    cols = max(len(r[1]) for r in rows)
    pad, cap_h, title_h = 6, 14, 28
    width = LABEL_W + cols * (CELL + pad) + pad
    row_h = CELL + pad + cap_h
    sheet = Image.new("RGB", (width, title_h + len(rows) * row_h + pad), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    font = _font()
    d.text((pad, 8), title, fill=(0, 0, 0), font=_font(12))
    for r, (label, cells) in enumerate(rows):
        y = title_h + r * row_h
        for k, line in enumerate(label.split("\n")):
            d.text((pad, y + CELL // 2 - 14 + 12 * k), line, fill=(20, 20, 20), font=font)
        for c, img in enumerate(cells):
            x = LABEL_W + pad + c * (CELL + pad)
            sheet.paste(_cell(img), (x, y))
            if captions and r in captions and c < len(captions[r]):
                d.text((x + 2, y + CELL + 1), captions[r][c], fill=(70, 70, 70), font=font)
    return sheet


def _astronaut() -> np.ndarray | None:
    """The astronaut photo (:func:`cptr.align.demo.astronaut`), or None without scikit-image."""

    try:
        return astronaut()
    except ImportError:
        return None


def run_demo(out: Path, alpha: float | None = None, log: Callable[[str], None] = print) -> DemoResult:
    """Run the whole demo into ``out``; returns where the sheet is."""
    import torch

    from cptr.export.cli import ExportOptions, run_export  # torch: only when this runs (the module is imported without it)
    from cptr.styles.blend import blend_generators  # torch: only when this runs (the module is imported without it)
    from cptr.training.mapper_train import sample_latents  # torch: only when this runs (the module is imported without it)

    t0 = time.perf_counter()
    if missing_assets():
        raise FileNotFoundError(f"the demo models are missing ({', '.join(p.name for p in missing_assets())}); {TRAIN_HINT}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    repo = out / "triton_repo"
    notes: list[str] = []
    alpha = SERVED_ALPHA if alpha is None else alpha
    blend = f"alpha {alpha:g}" + (f", swap {SERVED_SWAP_RES} px" if SERVED_SWAP_RES else "")
    log(f"[1/5] exporting the demo style ({blend}) to {repo}")
    run_export(ExportOptions(out=repo, style=DEMO_NAME, alpha=alpha, quiet=True))

    log("[2/5] starting the Triton server")
    photos = [render_face(s, "photo", 256)[0] for s in HELD_OUT_FACES]
    astronaut = _astronaut()
    inputs = photos + ([astronaut] if astronaut is not None else [])
    if astronaut is None:
        notes.append("scikit-image is not installed: no astronaut (pip install scikit-image)")
    with TritonServer(repo, log_path=out / "tritonserver.log") as server:  # started (and stopped) by the context
        client = CartoonClient(server.grpc_url)
        log(f"[3/5] cartoonizing {len(inputs)} photos, pasting back, editing (smile); generating faces through {server.grpc_url}")
        cartoons = [client.cartoonize(im, style=DEMO_NAME) for im in inputs]
        pasted = [client.cartoonize(im, style=DEMO_NAME, paste_back=True) for im in inputs]
        smiles = [client.cartoonize(im, style=DEMO_NAME, prompt="smile") for im in inputs]
        generated = client.generate(list(GENERATE_SEEDS), style=DEMO_NAME)
        mixed = client.generate(list(GENERATE_SEEDS), style=DEMO_NAME, mix=(MIX_SEED, MIX_LAYER))
        client.close()

    log("[4/5] sweeping alpha in process")
    source, target = demo_generators()
    w = sample_latents(source, 3, 0.7, seed=7)
    sweep = []
    with torch.no_grad():
        for a in ALPHAS:
            g = blend_generators(source, target, alpha=a)
            img, _ = g([w], input_is_latent=True, randomize_noise=False)
            sweep.append(to_uint8(img))
    sweep_cells = [sweep[j][i] for i in range(len(w)) for j in range(len(ALPHAS))][: 2 * len(ALPHAS)]

    log("[5/5] writing the contact sheet")
    n_in = len(inputs)
    in_caps = [f"held-out render {i + 1}" for i in range(len(photos))] + (["astronaut (skimage)"] if astronaut is not None else [])
    rows = [
        ("photo in", inputs),
        (f"cartoon\n(served, {blend})", cartoons),
        ("pasted back", pasted),
        ("cartoon + edit\n'smile' (mapper)", smiles),
        ("random faces\n(generate)", generated),
        (f"style mix:\ncoarse of each,\nlayers {MIX_LAYER}+ of seed {MIX_SEED}", mixed),
        ("alpha sweep\n(in process)\n2 faces", sweep_cells),
    ]
    captions = {
        0: in_caps,
        4: [f"seed {s}" for s in GENERATE_SEEDS],
        5: [f"seed {s} x {MIX_SEED}" for s in GENERATE_SEEDS],
        6: [f"alpha {a:g}" for a in ALPHAS] * 2,
    }
    title = f"CPTR demo: models trained by CPTR on procedural faces ({source.size} px), served by Triton; {n_in} photos, {len(GENERATE_SEEDS)} seeds"
    sheet = contact_sheet(rows, title, captions)
    path = out / "demo_sheet.png"
    save_image(sheet, path)
    if astronaut is not None:  # the paste-back at full size: where a seam would show
        save_image(pasted[-1], out / "astronaut_pasted_back.png")
    return DemoResult(path, repo, time.perf_counter() - t0, notes)
