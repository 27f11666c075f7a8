"""The shipped demo models and the commands around them, on the real files and real processes.

* the shipped weights meet the model card's thresholds (``cptr.demo.measure``, fewer samples than
  the card's 500 so it runs in CI);
* the card's hashes are the files' hashes;
* ``cptr demo`` runs the whole path (export, real Triton, client, sheet) and stops its server;
* ``python -m cptr.demo.train --quick`` rehearses every training step from nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cptr.demo import ASSET_DIR, missing_assets
from cptr.io import sha256_file
from tests.conftest import manifest_of

REPO = Path(__file__).resolve().parents[1]
CLI_TIMEOUT = 300

pytestmark = pytest.mark.skipif(bool(missing_assets()), reason="the demo models are not in the package")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# What the shipped models still miss (issue "faithful cartoons", open): the served path from photos. Their tests
# below are strict xfails: they fail the suite the day these figures are met, so the marks must then go.
SERVED_PHOTO_THRESHOLDS = ("served_cartoon_rate", "face_rate_served", "mesh served")


def _missed(m: dict) -> list[str]:
    from cptr.demo.measure import failures

    return failures(m)


@pytest.fixture(scope="module")
def measured() -> dict:
    """The model card's figures on n=200, latent seed 3: other latents than the card's (seed 0, n=500), fixed
    before measuring."""
    pytest.importorskip("mediapipe")
    from cptr.demo.measure import measure

    return measure(ASSET_DIR, n=200, seed=3)


def _brief(m: dict) -> str:
    return json.dumps(
        {k: v for k, v in m.items() if k != "mesh"} | {"mesh_ratios": {k: v["ratio"] for k, v in m.get("mesh", {}).items()}}, indent=1
    )


def test_shipped_demo_models_meet_the_thresholds(measured):
    """Every threshold of the model card but the served path's from photos: stylisation, the face mesh's
    source(W) vs target(W), the encoder's critic figures, the smile edit."""
    misses = [x for x in _missed(measured) if not x.startswith(SERVED_PHOTO_THRESHOLDS)]
    assert misses == [], _brief(measured)


@pytest.mark.xfail(
    strict=True,
    reason="open (faithful cartoons): served photos keep mouth 0.36 and height 0.70 of the "
    "ceiling (0.8 wanted), the critic calls 31% cartoon and mediapipe finds 85% faces (MODEL_CARD.md, n=500)",
)
def test_served_photo_thresholds(measured):
    misses = [x for x in _missed(measured) if x.startswith(SERVED_PHOTO_THRESHOLDS)]
    assert misses == [], "; ".join(misses)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """`cptr-export --style demo` (what a user serves by default) on the real Triton server, on loopback."""
    pytest.importorskip("pytriton")
    pytest.importorskip("tritonclient.grpc")
    from cptr.serving.server import TritonServer
    from tests.conftest import export_repository

    repo = export_repository(tmp_path_factory, "demo-served", ["--style", "demo"])
    with TritonServer(repo) as server:
        yield server


@pytest.fixture(scope="module")
def served_photos(demo_server) -> dict:
    """200 held-out photo renders (256 px PNGs) sent to `cartoonize` on the real server; the face mesh (mediapipe,
    trained by no one here) compares each photo as the server aligns it with its cartoon, next to the ceiling
    (the renderer's own aligned photo/cartoon pair); the critic and mediapipe's detector judge the cartoons."""
    pytest.importorskip("mediapipe")
    from cptr.client import CartoonClient
    from cptr.data.critic import critic_scores, load_critic
    from cptr.data.metrics import FaceDetector
    from cptr.data.structure import photo_structure, png_bytes
    from cptr.imaging import from_uint8

    served: list = []

    def cartoonize(pairs):
        with CartoonClient(demo_server.grpc_url, "grpc", timeout_s=120) as client:
            served[:] = client.cartoonize_many([png_bytes(p) for p in pairs.photos], style="demo", output="array", concurrency=4)
        return np.stack(served)

    judged = photo_structure(cartoonize, n=200)
    cartoons = np.stack(served)
    return {
        "judged": judged,
        "ratio": judged.ratios(),
        "cartoon_rate": float((critic_scores(load_critic(ASSET_DIR / "critic.pt"), from_uint8(cartoons)).domain_logit > 0).float().mean()),
        "face_rate": FaceDetector().rate(cartoons),
    }


def _figures(r: dict) -> str:
    j = r["judged"]
    return json.dumps(
        {
            "measured": j.measured.corr,
            "ceiling": j.ceiling.corr,
            "ratio": r["ratio"],
            "pairs": j.measured.n_pairs,
            "cartoon_rate": r["cartoon_rate"],
            "face_rate": r["face_rate"],
        }
    )


@pytest.mark.slow
def test_served_cartoons_keep_the_photos_pose(served_photos):
    """Through the real server, the cartoon keeps the photo's yaw (>= 0.8 of the ceiling; measured 0.93 at n=500),
    and a shuffled pairing keeps none (the floor)."""
    from cptr.demo.measure import THRESHOLDS

    j = served_photos["judged"]
    assert j.measured.n_pairs >= 150, _figures(served_photos)
    assert served_photos["ratio"]["yaw"] >= THRESHOLDS["mesh_served_ratio_min"], _figures(served_photos)
    assert abs(j.floor.corr["yaw"]) < 0.2, _figures(served_photos)


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="open (faithful cartoons): served photos keep mouth 0.36 and height 0.70 of the ceiling "
    "(0.8 wanted); the critic calls 31% of them cartoon and mediapipe finds 85% faces (90% wanted); MODEL_CARD.md",
)
def test_served_cartoons_keep_the_photos_face(served_photos):
    """The method's whole promise through the product: yaw, mouth and height each >= 0.8 of the ceiling; the critic
    calls >= 90% of the cartoons cartoon; mediapipe finds a face in >= 90%."""
    from cptr.demo.measure import MESH_SERVED_FEATURES, THRESHOLDS

    for f in MESH_SERVED_FEATURES:
        assert served_photos["ratio"][f] >= THRESHOLDS["mesh_served_ratio_min"], f"{f}: {_figures(served_photos)}"
    assert served_photos["cartoon_rate"] >= THRESHOLDS["served_cartoon_rate"], _figures(served_photos)
    assert served_photos["face_rate"] >= THRESHOLDS["face_rate_served"], _figures(served_photos)


@pytest.mark.slow
def test_served_paste_back_has_no_seam(demo_server):
    """The astronaut cartoonized and pasted back by the server: along the crop's square the composite keeps the
    photo's own gradients (tests/test_align.py's seam measure; the square paste-back gave 0.3 to 0.5)."""
    from skimage import data

    from cptr.align import align_face, detect_landmarks
    from cptr.client import CartoonClient
    from cptr.data.structure import png_bytes
    from tests.test_align import _border_gradient_change

    photo = data.astronaut()
    with CartoonClient(demo_server.grpc_url, "grpc", timeout_s=120) as client:
        pasted = client.cartoonize(png_bytes(photo), style="demo", paste_back=True, output="array")
    aligned = align_face(photo, detect_landmarks(photo)[0])
    assert pasted.shape == photo.shape
    assert _border_gradient_change(pasted, photo, aligned) <= 0.1
    centre = np.rint(aligned.to_photo(np.array([[127.5, 127.5]]))[0]).astype(int)
    assert np.abs(pasted[centre[1], centre[0]].astype(int) - photo[centre[1], centre[0]].astype(int)).max() > 0  # the face is the cartoon


def test_model_card_hashes_are_the_files():
    metrics = json.loads((ASSET_DIR / "metrics.json").read_text())
    card = (ASSET_DIR / "MODEL_CARD.md").read_text()
    assert metrics["sha256"], "metrics.json lists no files"
    for name, digest in metrics["sha256"].items():
        assert sha256_file(ASSET_DIR / name) == digest, name
        assert digest in card, f"{name}'s hash is not in MODEL_CARD.md"
    assert isinstance(metrics["misses"], list)  # what the card says is missed is what measure() found
    total = sum((ASSET_DIR / n).stat().st_size for n in metrics["sha256"])
    assert total <= 25 * 2**20, f"the demo models take {total / 2**20:.1f} MiB"


def test_cptr_demo_runs_the_whole_path(tmp_path):
    pytest.importorskip("tritonclient")
    out = tmp_path / "demo"
    r = subprocess.run(
        [sys.executable, "-m", "cptr.cli", "demo", "--out", str(out)], capture_output=True, text=True, env=_env(), timeout=CLI_TIMEOUT
    )
    assert r.returncode == 0, r.stdout + r.stderr
    sheet = out / "demo_sheet.png"
    assert f"contact sheet: {sheet}" in r.stdout
    with Image.open(sheet) as im:
        assert im.size[0] > 1000 and im.size[1] > 900  # 7 labelled rows of 128 px cells
    manifest = manifest_of(out / "triton_repo")
    assert manifest["style"] == "demo" and any(m.startswith("mapper_demo_smile") for m in manifest["models"])
    # the server it started is gone
    ps = subprocess.run(["pgrep", "-f", f"model-repository={out / 'triton_repo'}"], capture_output=True, text=True)
    assert ps.stdout.strip() == ""


def test_demo_train_quick_rehearsal_builds_every_file(tmp_path):
    work, assets = tmp_path / "work", tmp_path / "assets"
    cmd = [sys.executable, "-m", "cptr.demo.train", "--quick", "--work", str(work), "--assets", str(assets)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=CLI_TIMEOUT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for name in ("source.pt", "target.pt", "encoder.pt", "mapper_smile.pt", "critic.pt", "MODEL_CARD.md", "metrics.json"):
        assert (assets / name).is_file(), name
    from cptr.models.checkpoints import load_generator

    g = load_generator(assets / "target.pt")
    assert g.size == 64 and g.latent_avg is not None
    # the select step measured the run's checkpoints and the later steps started from its choice
    sel = json.loads((work / "source" / "selected.json").read_text())
    assert sel["rates"] and Path(sel["chosen"]).name in sel["rates"] and all(0 <= v <= 1 for v in sel["rates"].values())
    assert f"--source {sel['chosen']}" in (work / "commands.log").read_text()
    assert Path(sel["chosen"]).name in (assets / "MODEL_CARD.md").read_text()
    # shipped without per-pixel noise (the source baked from the choice, the target fine-tuned with --noise off);
    # the encoder and mapper trained on the baked source, the fine-tune on the run's checkpoint (its discriminator)
    assert sel["noise_mode"] == "none"
    for name in ("source.pt", "target.pt"):
        strengths = [p for n, p in load_generator(assets / name).named_parameters() if n.endswith("noise.weight")]
        assert strengths and all(torch.count_nonzero(p) == 0 for p in strengths), name
    commands = (work / "commands.log").read_text()
    assert commands.count(f"--generator {work / 'source' / 'shipped.pt'}") == 2 and "--noise off" in commands
    # the served recipe: the fine-tune runs after the encoder, on its latents, with the second critic's attribute loss
    finetune_cmd = next(line for line in commands.splitlines() if " finetune " in line)
    assert f"--encoder {work / 'encoder' / 'checkpoints' / 'encoder.pt'}" in finetune_cmd and "--encoder-fraction 0.5" in finetune_cmd
    assert f"--attribute-critic {work / 'perceptual.pt'}" in finetune_cmd and commands.index(" encoder ") < commands.index(" finetune ")
    # the encoder's perceptual loss is a second critic, trained on other renders than the judge, and not shipped
    from cptr.demo.train import QUICK

    assert (
        f"--seed {QUICK.perceptual_seed} --render-seed {QUICK.perceptual_render_seed}" in commands
        and f"--perceptual-weights {work / 'perceptual.pt'}" in commands
    )
    assert (work / "perceptual.pt").is_file() and not (assets / "perceptual.pt").exists()
    assert sha256_file(work / "perceptual.pt") != sha256_file(assets / "critic.pt")
    machines = json.loads((work / "machines.json").read_text())
    assert set(machines) >= {"data", "critic", "source", "encoder", "pack"} and all(len(v) == 1 for v in machines.values())
    assert f"Machine: {machines['source'][0]}." in (assets / "MODEL_CARD.md").read_text()
    # a second run finds every training step done and only packs and measures again
    again = subprocess.run(
        cmd + ["--steps", "data,critic,source,select,finetune,encoder,mapper"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=CLI_TIMEOUT,
    )
    assert again.returncode == 0 and again.stdout.count("done already") == 7, again.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "cptr.demo.train", "--quick"], capture_output=True, text=True, env=_env(), timeout=60, cwd=tmp_path
    )
    assert refused.returncode == 2 and "--assets" in refused.stderr


def test_model_card_names_each_machine_with_the_steps_it_ran():
    from cptr.demo.card import _machine_line

    assert _machine_line({"data": ["A"], "source": ["A"]}, {"data": 1.0, "source": 2.0}) == "Machine: A."
    line = _machine_line(
        {"data": ["A"], "critic": ["A", "B"], "encoder": ["B"], "measure": ["B"]}, {"data": 1.0, "critic": 2.0, "encoder": 3.0}
    )
    assert line.endswith("A (data, critic); B (critic, encoder, measure).") and line.startswith("Machines")
    assert _machine_line({}, {"data": 1.0}) == "Machine: not recorded."
